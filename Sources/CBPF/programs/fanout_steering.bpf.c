// SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only
// Fanout steering (Sources/Ports/FanoutSteering.swift): the program of a port's fanout group
// (PACKET_FANOUT_EBPF) picks the socket, one per forwarding thread, that gets a frame. A
// destination and source MAC pair goes where its first frame was received (the kernel takes the
// CPU modulo the sockets) and stays there while its frames keep coming, so that they stay in
// order when the sender moves to another CPU; a pair idle for SNOOP_STEERING_IDLE_NS has
// nothing left in flight and is steered anew.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "CBPF.h"

struct steering_key {
    __u8 destination[6];
    __u8 source[6];
};

struct steering_value {
    __u32 cpu;       // where the pair's frames go
    __u32 reserved;
    __u64 last_ns;   // its last frame
};

// The switch sets max_entries (the pairs it keeps) before loading.
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, struct steering_key);
    __type(value, struct steering_value);
} steering_pairs SEC(".maps");

SEC("socket")
int fanout_steer(struct __sk_buff *skb)
{
    struct steering_key key;
    // From the link-layer header: the frame's data starts at its network header here.
    if (bpf_skb_load_bytes_relative(skb, 0, &key, sizeof(key), BPF_HDR_START_MAC))
        return 0;
    __u64 now = bpf_ktime_get_ns();
    struct steering_value *pair = bpf_map_lookup_elem(&steering_pairs, &key);
    if (pair) {
        __u64 idle = now - pair->last_ns;
        pair->last_ns = now;
        if (idle <= SNOOP_STEERING_IDLE_NS)
            return pair->cpu;  // nothing of it may be in flight elsewhere: the same socket
        // Idle: it goes where its frames arrive now.
        pair->cpu = bpf_get_smp_processor_id();
        return pair->cpu;
    }
    // New: where its first frame arrives.
    struct steering_value first = { .cpu = bpf_get_smp_processor_id(), .last_ns = now };
    bpf_map_update_elem(&steering_pairs, &key, &first, BPF_ANY);
    return first.cpu;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
