// SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only
// The kernel fast path (Sources/Ports/KernelFastPath.swift). The switch decides the first frame
// of a unicast flow itself, then puts the flow in `flows`; from then on the program on the
// ingress port's TCX hook counts the flow's frames and redirects them out of the egress
// interface, and the filter on the switch's packet sockets keeps those frames from them.
#include <linux/bpf.h>
#include <linux/if_packet.h>
#include <bpf/bpf_helpers.h>
#include "CBPF.h"
#include "tcx.h"

// The switch sets max_entries (the capacity it was given) before loading.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, struct snoop_flow_key);
    __type(value, struct snoop_flow_value);
} flows SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, SNOOP_FLOW_GATE_SLOTS);
    __type(key, __u32);
    __type(value, __u32);
} flow_gate SEC(".maps");

// The flow of the frame, or NULL. Tagged frames (the kernel moved the tag to the skb) are never
// in the table. A frame of an interface with no flow (the gate) costs an array lookup rather
// than a copy and a hash lookup: the switch's own traffic (floods of small frames) pays almost
// nothing for the fast path.
static __always_inline struct snoop_flow_value *lookup_flow(struct __sk_buff *skb)
{
    if (skb->vlan_present)
        return NULL;
    __u32 slot = skb->ifindex % SNOOP_FLOW_GATE_SLOTS;
    __u32 *count = bpf_map_lookup_elem(&flow_gate, &slot);
    if (!count || *count == 0)
        return NULL;
    struct snoop_flow_key key = { .ifindex = skb->ifindex };
    // The destination and source MACs, one after the other as in the frame.
    if (bpf_skb_load_bytes(skb, 0, key.destination, sizeof(key.destination) + sizeof(key.source)))
        return NULL;
    return bpf_map_lookup_elem(&flows, &key);
}

// A flow the switch installed: count it, note when, send it out of the egress interface.
static __always_inline int forward(struct __sk_buff *skb, struct snoop_flow_value *flow)
{
    __sync_fetch_and_add(&flow->frames, 1);
    __sync_fetch_and_add(&flow->bytes, skb->len);
    flow->last_used = bpf_ktime_get_ns();
    return bpf_redirect(flow->egress, 0);
}

// On the TCX ingress hook of each port, one or the other (KernelFastPath's `dropMisses`). A
// frame of no flow is the switch's, whose packet sockets have it already: on to the host's
// stack, or dropped (the host stack filter, in the same program).
SEC(SNOOP_TCX_SECTION)
int fast_path_next(struct __sk_buff *skb)
{
    struct snoop_flow_value *flow = lookup_flow(skb);
    return flow ? forward(skb, flow) : SNOOP_TCX_NEXT;
}

SEC(SNOOP_TCX_SECTION)
int fast_path_drop(struct __sk_buff *skb)
{
    struct snoop_flow_value *flow = lookup_flow(skb);
    return flow ? forward(skb, flow) : SNOOP_TCX_DROP;
}

// The filter of the packet sockets (SO_ATTACH_BPF): it returns how much of the frame the
// socket gets. A frame of a flow is not theirs (the TCX program forwards it), any other frame
// is, whole. Outgoing frames (a fanout group hears them on kernels before 6.9) are never the
// switch's: those of the fast path, the namespace's own.
SEC("socket")
int fast_path_sock(struct __sk_buff *skb)
{
    if (skb->pkt_type == PACKET_OUTGOING || lookup_flow(skb))
        return 0;
    return -1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
