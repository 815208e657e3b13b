// SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only
// Egress replication (Sources/Ports/EgressReplication.swift), on a port's TCX egress hook: a
// frame the switch sends with a mark naming a list of other ports is cloned out of each of
// them, and goes on out of this one; the kernel bridge floods so, with clones of one buffer.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "CBPF.h"
#include "tcx.h"

// Each forwarding thread writes its own slice; the switch sets max_entries (threads times
// lists per thread) before loading.
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1024);
    __type(key, __u32);
    __type(value, struct snoop_replica_list);
} replica_lists SEC(".maps");

SEC(SNOOP_TCX_SECTION)
int replicate(struct __sk_buff *skb)
{
    __u32 mark = skb->mark;
    if ((mark & SNOOP_REPLICA_MARK_MASK) != SNOOP_REPLICA_MARK_TAG)
        return SNOOP_TCX_NEXT;  // not the switch's: on untouched
    __u32 list = mark & SNOOP_REPLICA_LIST_MAX;
    // The mark is the switch's word to this program alone: the clones and the frame leave
    // without it.
    skb->mark = 0;
    struct snoop_replica_list *replicas = bpf_map_lookup_elem(&replica_lists, &list);
    if (!replicas)
        return SNOOP_TCX_PASS;
    __u32 count = replicas->count;
    for (__u32 i = 0; i < SNOOP_REPLICAS_MAX && i < count; i++)
        bpf_clone_redirect(skb, replicas->ifindex[i], 0);  // out of it (egress)
    return SNOOP_TCX_PASS;  // out of this port
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
