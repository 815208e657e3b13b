// SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only
// The host stack filter (Sources/Ports/HostStackFilter.swift), on a port's TCX ingress hook:
// every frame is dropped. The switch's packet sockets had their copy before the hook runs, so
// only the namespace's own IP stack misses it, as it misses the frames of a bridge's port.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "tcx.h"

SEC(SNOOP_TCX_SECTION)
int host_stack_drop(struct __sk_buff *skb)
{
    return SNOOP_TCX_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
