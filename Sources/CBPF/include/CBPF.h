// SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only
// What the BPF programs (programs/*.bpf.c, run by the kernel) and the switch (Swift, which
// loads them with libbpf) share: the layouts of the maps' keys and values, and the numbers
// both sides must agree on. Plain <linux/types.h> types, so that clang -target bpf and Swift's
// importer read the same header.
#ifndef CBPF_H
#define CBPF_H

#include <linux/types.h>

// ---- the kernel fast path (fast_path.bpf.c) ----------------------------------------------

/// A flow in map `flows`: frames from `source` to `destination` arriving on interface `ifindex`.
struct snoop_flow_key {
    __u32 ifindex;
    __u8 destination[6];
    __u8 source[6];
};
/// Where the flow leaves (interface `egress`); the programs count `frames` and `bytes` and stamp
/// `last_used` (CLOCK_MONOTONIC ns), the switch reads them.
struct snoop_flow_value {
    __u32 egress;
    __u32 reserved;
    __u64 frames;
    __u64 bytes;
    __u64 last_used;
};
/// Map `flow_gate`: how many flows each ingress interface has, by interface index modulo this.
/// The programs look a frame up in `flows` only where its slot is not 0.
#define SNOOP_FLOW_GATE_SLOTS 256

// ---- egress replication (egress_replication.bpf.c) ---------------------------------------

/// A frame the switch sends on one port with a mark of SNOOP_REPLICA_MARK_TAG | list carries
/// the list's other ports: the program on the port's TCX egress clones it out of each.
#define SNOOP_REPLICA_MARK_TAG 0x53500000u
#define SNOOP_REPLICA_MARK_MASK 0xfff00000u
#define SNOOP_REPLICA_LIST_MAX 0x000fffffu
#define SNOOP_REPLICAS_MAX 31
/// An entry of map `replica_lists` (an array): `count` interfaces of `ifindex`.
struct snoop_replica_list {
    __u32 count;
    __u32 ifindex[SNOOP_REPLICAS_MAX];
};

// ---- fanout steering (fanout_steering.bpf.c) ---------------------------------------------

/// A destination and source MAC pair with no frame for this long (20 ms) is steered anew: it
/// has none left in any ring (a full 1 MiB ring drains in under 10 ms).
#define SNOOP_STEERING_IDLE_NS 20000000u

// ---- attaching --------------------------------------------------------------------------

/// The TCX attach types (bpf_link_create), the kernel's ABI since Linux 6.6; Debian 12's
/// <linux/bpf.h> is 6.1's and lacks them.
#define SNOOP_BPF_TCX_INGRESS 46
#define SNOOP_BPF_TCX_EGRESS 47

_Static_assert(sizeof(struct snoop_flow_key) == 16, "flow key layout");
_Static_assert(sizeof(struct snoop_flow_value) == 32, "flow value layout");
_Static_assert(sizeof(struct snoop_replica_list) == 128, "replica list layout");

#endif
