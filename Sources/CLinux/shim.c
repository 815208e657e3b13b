// SPDX-License-Identifier: BSD-2-Clause
// The BPF program instructions in this file: BSD-2-Clause OR GPL-2.0-only (see LICENSE).
// Batched socket calls: glibc declares them only under _GNU_SOURCE, which must not leak into
// the header Swift imports (it would clash with the Glibc module's view of the same headers).
#define _GNU_SOURCE 1
#include <sys/socket.h>
#include <sched.h>
#include <pthread.h>
#include <errno.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/bpf.h>
#include <linux/if_packet.h>
#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "CLinux.h"

_Static_assert(sizeof(struct clinux_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr layout");

int clinux_recvmmsg(int fd, struct clinux_mmsghdr *msgs, unsigned int n, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)msgs, n, flags, NULL);
}

int clinux_sendmmsg(int fd, struct clinux_mmsghdr *msgs, unsigned int n, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)msgs, n, flags);
}

int clinux_usable_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? n : 1;
}

int clinux_allowed_cpus(int *cpus, int capacity) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
    int n = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && n < capacity; cpu++) {
        if (CPU_ISSET(cpu, &set)) cpus[n++] = cpu;
    }
    return n;
}

int clinux_set_thread_name(pthread_t thread, const char *name) {
    return pthread_setname_np(thread, name);
}

int clinux_pin_thread(pthread_t thread, int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(thread, sizeof(set), &set);
}

int clinux_cpu_allowed(int cpu) {
    cpu_set_t set;
    if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
    return CPU_ISSET(cpu, &set) ? 1 : 0;
}

int clinux_set_nice(int nice) {
    // PRIO_PROCESS with 0 is the calling thread on Linux (nice is per thread).
    return setpriority(PRIO_PROCESS, 0, nice) == 0 ? 0 : errno;
}

int clinux_nice(void) {
    errno = 0;
    return getpriority(PRIO_PROCESS, 0);
}

// Not in the 6.1 headers Debian ships; the kernel's ABI value since 6.6.
#define CLINUX_BPF_TCX_INGRESS 46
#define CLINUX_BPF_TCX_EGRESS 47
// What a TCX program returns to drop the frame.
#define CLINUX_TCX_DROP 2

static int load_program(enum bpf_prog_type type, const struct bpf_insn *program, unsigned count, const char *name,
                        char *log, unsigned log_size) {
    union bpf_attr load;
    memset(&load, 0, sizeof(load));
    load.prog_type = type;
    load.insns = (uint64_t)(uintptr_t)program;
    load.insn_cnt = count;
    // The programs are BSD-2-Clause OR GPL-2.0-only (LICENSE): GPL-compatible to the kernel.
    load.license = (uint64_t)(uintptr_t)"Dual BSD/GPL";
    if (log && log_size) {
        log[0] = 0;
        load.log_buf = (uint64_t)(uintptr_t)log;
        load.log_size = log_size;
        load.log_level = 1;
    }
    strncpy(load.prog_name, name, sizeof(load.prog_name) - 1);
    int prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof(load));
    if (prog < 0 && errno == ENOSPC && load.log_level) {
        // The program passed, but its trace overflowed the log: load it again without one.
        load.log_buf = 0;
        load.log_size = 0;
        load.log_level = 0;
        prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof(load));
    }
    return prog >= 0 ? prog : -errno;
}

static int tcx_attach(int ifindex, int prog, int attach_type) {
    union bpf_attr link;
    memset(&link, 0, sizeof(link));
    link.link_create.prog_fd = (uint32_t)prog;
    link.link_create.target_ifindex = (uint32_t)ifindex;
    link.link_create.attach_type = attach_type;
    int fd = (int)syscall(SYS_bpf, BPF_LINK_CREATE, &link, sizeof(link));
    return fd >= 0 ? fd : -errno;
}

int clinux_tcx_ingress_attach(int ifindex, int prog) { return tcx_attach(ifindex, prog, CLINUX_BPF_TCX_INGRESS); }

int clinux_tcx_egress_attach(int ifindex, int prog) { return tcx_attach(ifindex, prog, CLINUX_BPF_TCX_EGRESS); }

int clinux_tcx_ingress_drop(int ifindex) {
    struct bpf_insn program[2];
    memset(program, 0, sizeof(program));
    program[0].code = BPF_ALU64 | BPF_MOV | BPF_K;  // r0 = TCX_DROP
    program[0].dst_reg = BPF_REG_0;
    program[0].imm = CLINUX_TCX_DROP;
    program[1].code = BPF_JMP | BPF_EXIT;
    int prog = load_program(BPF_PROG_TYPE_SCHED_CLS, program, 2, "snoopswitch_rx", NULL, 0);
    if (prog < 0) return prog;
    int fd = clinux_tcx_ingress_attach(ifindex, prog);
    close(prog);  // the link holds the program
    return fd;
}

// ---- the kernel fast path for unicast flows ------------------------------------------------

_Static_assert(sizeof(struct clinux_flow_key) == 16, "flow key layout");
_Static_assert(sizeof(struct clinux_flow_value) == 32, "flow value layout");

static int map_call(int command, int map, const void *key, void *value, uint64_t flags) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_fd = (uint32_t)map;
    attr.key = (uint64_t)(uintptr_t)key;
    attr.value = (uint64_t)(uintptr_t)value;
    attr.flags = flags;
    return syscall(SYS_bpf, command, &attr, sizeof(attr)) == 0 ? 0 : -errno;
}

int clinux_flow_map_create(unsigned max_entries) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_type = BPF_MAP_TYPE_HASH;
    attr.key_size = sizeof(struct clinux_flow_key);
    attr.value_size = sizeof(struct clinux_flow_value);
    attr.max_entries = max_entries;
    strncpy(attr.map_name, "snoopswitch_fl", sizeof(attr.map_name) - 1);
    int fd = (int)syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
    return fd >= 0 ? fd : -errno;
}

int clinux_flow_gate_create(void) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 256;
    strncpy(attr.map_name, "snoopswitch_gt", sizeof(attr.map_name) - 1);
    int fd = (int)syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
    return fd >= 0 ? fd : -errno;
}

int clinux_flow_gate_set(int gate, uint32_t slot, uint32_t flows) {
    return map_call(BPF_MAP_UPDATE_ELEM, gate, &slot, &flows, BPF_ANY);
}

int clinux_flow_map_insert(int map, const struct clinux_flow_key *key, const struct clinux_flow_value *value) {
    return map_call(BPF_MAP_UPDATE_ELEM, map, key, (void *)value, BPF_ANY);
}

int clinux_flow_map_lookup(int map, const struct clinux_flow_key *key, struct clinux_flow_value *value) {
    return map_call(BPF_MAP_LOOKUP_ELEM, map, key, value, 0);
}

int clinux_flow_map_delete(int map, const struct clinux_flow_key *key) {
    return map_call(BPF_MAP_DELETE_ELEM, map, key, NULL, 0);
}

#define INSN(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
#define MOV64_REG(d, s) INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV64_IMM(d, i) INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define ADD64_IMM(d, i) INSN(BPF_ALU64 | BPF_ADD | BPF_K, d, 0, 0, i)
#define LDX(size, d, s, o) INSN(BPF_LDX | BPF_MEM | (size), d, s, o, 0)
#define STX(size, d, s, o) INSN(BPF_STX | BPF_MEM | (size), d, s, o, 0)
#define ATOMIC_ADD64(d, s, o) INSN(BPF_STX | BPF_ATOMIC | BPF_DW, d, s, o, BPF_ADD)
#define JNE_IMM(d, i, o) INSN(BPF_JMP | BPF_JNE | BPF_K, d, 0, o, i)
#define JEQ_IMM(d, i, o) INSN(BPF_JMP | BPF_JEQ | BPF_K, d, 0, o, i)
#define CALL(f) INSN(BPF_JMP | BPF_CALL, 0, 0, 0, f)
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
#define LD_MAP_FD(d, fd) INSN(BPF_LD | BPF_DW | BPF_IMM, d, BPF_PSEUDO_MAP_FD, 0, fd), INSN(0, 0, 0, 0, 0)
#define CTX(field) ((short)offsetof(struct __sk_buff, field))

// Looks up the flow of the frame in r6's context, its key built at r10-16: r0 = the map's value,
// or a jump to the miss. Tagged frames (the kernel moved the tag to the skb) always miss, and so
// do frames of an interface with no flow (the gate: flows by ingress interface index modulo 256),
// at the cost of an array lookup rather than a copy and a hash lookup: the switch's own traffic
// (floods of small frames) pays almost nothing for the fast path.
#define LOOKUP_FLOW(gate, map, after)                                    \
    LDX(BPF_W, BPF_REG_0, BPF_REG_6, CTX(vlan_present)),                 \
    JNE_IMM(BPF_REG_0, 0, (after) + 26),                                  \
    LDX(BPF_W, BPF_REG_0, BPF_REG_6, CTX(ifindex)),                       \
    INSN(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_0, 0, 0, 255),              \
    STX(BPF_W, BPF_REG_10, BPF_REG_0, -20),                               \
    LD_MAP_FD(BPF_REG_1, gate),                                           \
    MOV64_REG(BPF_REG_2, BPF_REG_10),                                     \
    ADD64_IMM(BPF_REG_2, -20),                                            \
    CALL(BPF_FUNC_map_lookup_elem),                                       \
    JEQ_IMM(BPF_REG_0, 0, (after) + 17),                                  \
    LDX(BPF_W, BPF_REG_0, BPF_REG_0, 0),                                  \
    JEQ_IMM(BPF_REG_0, 0, (after) + 15),                                  \
    MOV64_REG(BPF_REG_1, BPF_REG_6),                                      \
    MOV64_IMM(BPF_REG_2, 0),                                              \
    MOV64_REG(BPF_REG_3, BPF_REG_10),                                     \
    ADD64_IMM(BPF_REG_3, -12),                                            \
    MOV64_IMM(BPF_REG_4, 12),                                             \
    CALL(BPF_FUNC_skb_load_bytes),    /* destination and source MACs */  \
    JNE_IMM(BPF_REG_0, 0, (after) + 8),                                   \
    LDX(BPF_W, BPF_REG_0, BPF_REG_6, CTX(ifindex)),                       \
    STX(BPF_W, BPF_REG_10, BPF_REG_0, -16),                               \
    LD_MAP_FD(BPF_REG_1, map),                                            \
    MOV64_REG(BPF_REG_2, BPF_REG_10),                                     \
    ADD64_IMM(BPF_REG_2, -16),                                            \
    CALL(BPF_FUNC_map_lookup_elem),                                       \
    JEQ_IMM(BPF_REG_0, 0, (after))
// LOOKUP_FLOW is 28 instructions; a miss jumps `after` instructions past its end.

int clinux_fast_path_tcx_program(int gate, int map, int drop_misses, char *log, unsigned log_size) {
    const int miss = drop_misses ? CLINUX_TCX_DROP : -1;  // TCX_NEXT: on to the host's stack
    struct bpf_insn program[] = {
        MOV64_REG(BPF_REG_6, BPF_REG_1),
        LOOKUP_FLOW(gate, map, 11),
        // A flow the switch installed: count it, note when, send it out of the egress port.
        MOV64_REG(BPF_REG_7, BPF_REG_0),
        MOV64_IMM(BPF_REG_1, 1),
        ATOMIC_ADD64(BPF_REG_7, BPF_REG_1, offsetof(struct clinux_flow_value, frames)),
        LDX(BPF_W, BPF_REG_1, BPF_REG_6, CTX(len)),
        ATOMIC_ADD64(BPF_REG_7, BPF_REG_1, offsetof(struct clinux_flow_value, bytes)),
        CALL(BPF_FUNC_ktime_get_ns),
        STX(BPF_DW, BPF_REG_7, BPF_REG_0, offsetof(struct clinux_flow_value, last_used)),
        LDX(BPF_W, BPF_REG_1, BPF_REG_7, offsetof(struct clinux_flow_value, egress)),
        MOV64_IMM(BPF_REG_2, 0),
        CALL(BPF_FUNC_redirect),
        EXIT(),
        // The switch's: its packet sockets have the frame already.
        MOV64_IMM(BPF_REG_0, miss),
        EXIT(),
    };
    return load_program(BPF_PROG_TYPE_SCHED_CLS, program, sizeof(program) / sizeof(program[0]), "snoopswitch_fp",
                        log, log_size);
}

int clinux_fast_path_socket_filter(int gate, int map, char *log, unsigned log_size) {
    struct bpf_insn program[] = {
        MOV64_REG(BPF_REG_6, BPF_REG_1),
        // Outgoing frames (a fanout group hears them on kernels before 6.9) are never the
        // switch's: those of the fast path, the namespace's own.
        LDX(BPF_W, BPF_REG_0, BPF_REG_6, CTX(pkt_type)),
        JEQ_IMM(BPF_REG_0, PACKET_OUTGOING, 28),  // past LOOKUP_FLOW: not for this socket
        LOOKUP_FLOW(gate, map, 2),
        MOV64_IMM(BPF_REG_0, 0),           // the fast path forwards it: not for this socket
        EXIT(),
        INSN(BPF_ALU | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, -1),  // all of the frame
        EXIT(),
    };
    return load_program(BPF_PROG_TYPE_SOCKET_FILTER, program, sizeof(program) / sizeof(program[0]), "snoopswitch_sf",
                        log, log_size);
}

int clinux_attach_socket_filter(int socket, int prog) {
    return setsockopt(socket, SOL_SOCKET, SO_ATTACH_BPF, &prog, sizeof(prog)) == 0 ? 0 : -errno;
}

// ---- sharing a port's frames among the forwarding threads ----------------------------------

#ifndef PACKET_FANOUT_DATA
#define PACKET_FANOUT_DATA 22
#endif
#define SUB64_REG(d, s) INSN(BPF_ALU64 | BPF_SUB | BPF_X, d, s, 0, 0)
#define JGT_IMM(d, i, o) INSN(BPF_JMP | BPF_JGT | BPF_K, d, 0, o, i)
#define LD_ABS_W(k) INSN(BPF_LD | BPF_ABS | BPF_W, 0, 0, 0, k)

int clinux_steering_map_create(unsigned max_entries) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_type = BPF_MAP_TYPE_LRU_HASH;
    attr.key_size = 12;    // destination and source MAC
    attr.value_size = 16;  // the CPU the pair was first received on; its last frame, ns
    attr.max_entries = max_entries;
    strncpy(attr.map_name, "snoopswitch_st", sizeof(attr.map_name) - 1);
    int fd = (int)syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
    return fd >= 0 ? fd : -errno;
}

int clinux_steering_program(int map, uint32_t idle_ns, char *log, unsigned log_size) {
    struct bpf_insn program[] = {
        MOV64_REG(BPF_REG_6, BPF_REG_1),
        // The key: the frame's destination and source MAC, from its link-layer header (the
        // frame's data starts at its network header here).
        LD_ABS_W(SKF_LL_OFF + 0),
        STX(BPF_W, BPF_REG_10, BPF_REG_0, -16),
        LD_ABS_W(SKF_LL_OFF + 4),
        STX(BPF_W, BPF_REG_10, BPF_REG_0, -12),
        LD_ABS_W(SKF_LL_OFF + 8),
        STX(BPF_W, BPF_REG_10, BPF_REG_0, -8),
        CALL(BPF_FUNC_ktime_get_ns),
        MOV64_REG(BPF_REG_7, BPF_REG_0),
        LD_MAP_FD(BPF_REG_1, map),
        MOV64_REG(BPF_REG_2, BPF_REG_10),
        ADD64_IMM(BPF_REG_2, -16),
        CALL(BPF_FUNC_map_lookup_elem),
        JEQ_IMM(BPF_REG_0, 0, 11),                         // a new pair
        // A known pair keeps its socket while its frames keep coming.
        MOV64_REG(BPF_REG_8, BPF_REG_0),
        LDX(BPF_DW, BPF_REG_1, BPF_REG_8, 8),
        MOV64_REG(BPF_REG_2, BPF_REG_7),
        SUB64_REG(BPF_REG_2, BPF_REG_1),
        STX(BPF_DW, BPF_REG_8, BPF_REG_7, 8),
        JGT_IMM(BPF_REG_2, (int32_t)idle_ns, 2),           // idle long enough: nothing in flight
        LDX(BPF_W, BPF_REG_0, BPF_REG_8, 0),
        EXIT(),
        // Idle: it goes where its frames arrive now.
        CALL(BPF_FUNC_get_smp_processor_id),
        STX(BPF_W, BPF_REG_8, BPF_REG_0, 0),
        EXIT(),
        // New: where its first frame arrives.
        CALL(BPF_FUNC_get_smp_processor_id),
        MOV64_REG(BPF_REG_9, BPF_REG_0),
        STX(BPF_W, BPF_REG_10, BPF_REG_9, -32),
        MOV64_IMM(BPF_REG_1, 0),
        STX(BPF_W, BPF_REG_10, BPF_REG_1, -28),
        STX(BPF_DW, BPF_REG_10, BPF_REG_7, -24),
        LD_MAP_FD(BPF_REG_1, map),
        MOV64_REG(BPF_REG_2, BPF_REG_10),
        ADD64_IMM(BPF_REG_2, -16),
        MOV64_REG(BPF_REG_3, BPF_REG_10),
        ADD64_IMM(BPF_REG_3, -32),
        MOV64_IMM(BPF_REG_4, BPF_ANY),
        CALL(BPF_FUNC_map_update_elem),
        MOV64_REG(BPF_REG_0, BPF_REG_9),
        EXIT(),
    };
    return load_program(BPF_PROG_TYPE_SOCKET_FILTER, program, sizeof(program) / sizeof(program[0]), "snoopswitch_fo",
                        log, log_size);
}

int clinux_fanout_set_program(int socket, int prog) {
    return setsockopt(socket, SOL_PACKET, PACKET_FANOUT_DATA, &prog, sizeof(prog)) == 0 ? 0 : -errno;
}

// ---- egress replication ----------------------------------------------------------------------

_Static_assert(sizeof(struct clinux_replica_list) == 128, "replica list layout");
#define RSH64_IMM(d, i) INSN(BPF_ALU64 | BPF_RSH | BPF_K, d, 0, 0, i)
#define AND64_IMM(d, i) INSN(BPF_ALU64 | BPF_AND | BPF_K, d, 0, 0, i)
#define JLE_IMM(d, i, o) INSN(BPF_JMP | BPF_JLE | BPF_K, d, 0, o, i)

int clinux_replica_map_create(unsigned max_entries) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = sizeof(struct clinux_replica_list);
    attr.max_entries = max_entries;
    strncpy(attr.map_name, "snoopswitch_rl", sizeof(attr.map_name) - 1);
    int fd = (int)syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
    return fd >= 0 ? fd : -errno;
}

int clinux_replica_map_set(int map, uint32_t list, const struct clinux_replica_list *value) {
    return map_call(BPF_MAP_UPDATE_ELEM, map, &list, (void *)value, BPF_ANY);
}

int clinux_replication_program(int map, char *log, unsigned log_size) {
    enum { most = 24 + 5 * CLINUX_REPLICAS_MAX };
    struct bpf_insn program[most];
    int n = 0, to_pass[CLINUX_REPLICAS_MAX + 1], passes = 0, to_next;
    program[n++] = MOV64_REG(BPF_REG_6, BPF_REG_1);
    program[n++] = LDX(BPF_W, BPF_REG_0, BPF_REG_6, CTX(mark));
    program[n++] = MOV64_REG(BPF_REG_1, BPF_REG_0);
    program[n++] = AND64_IMM(BPF_REG_1, (int32_t)CLINUX_REPLICA_MARK_MASK);
    program[n++] = RSH64_IMM(BPF_REG_1, 20);
    to_next = n;
    program[n++] = JNE_IMM(BPF_REG_1, CLINUX_REPLICA_MARK_TAG >> 20, 0);   // not ours: on untouched
    program[n++] = AND64_IMM(BPF_REG_0, CLINUX_REPLICA_LIST_MAX);
    program[n++] = STX(BPF_W, BPF_REG_10, BPF_REG_0, -4);
    // The mark is the switch's word to this program alone: the clones and the frame leave without it.
    program[n++] = MOV64_IMM(BPF_REG_1, 0);
    program[n++] = STX(BPF_W, BPF_REG_6, BPF_REG_1, CTX(mark));
    struct bpf_insn load_map[] = { LD_MAP_FD(BPF_REG_1, map) };
    program[n++] = load_map[0];
    program[n++] = load_map[1];
    program[n++] = MOV64_REG(BPF_REG_2, BPF_REG_10);
    program[n++] = ADD64_IMM(BPF_REG_2, -4);
    program[n++] = CALL(BPF_FUNC_map_lookup_elem);
    to_pass[passes++] = n;
    program[n++] = JEQ_IMM(BPF_REG_0, 0, 0);
    program[n++] = MOV64_REG(BPF_REG_7, BPF_REG_0);
    program[n++] = LDX(BPF_W, BPF_REG_8, BPF_REG_7, 0);
    for (int i = 0; i < CLINUX_REPLICAS_MAX; i++) {
        to_pass[passes++] = n;
        program[n++] = JLE_IMM(BPF_REG_8, i, 0);                              // the list's end
        program[n++] = MOV64_REG(BPF_REG_1, BPF_REG_6);
        program[n++] = LDX(BPF_W, BPF_REG_2, BPF_REG_7, 4 + 4 * i);
        program[n++] = MOV64_IMM(BPF_REG_3, 0);                                // out of it (egress)
        program[n++] = CALL(BPF_FUNC_clone_redirect);
    }
    int pass = n;
    program[n++] = MOV64_IMM(BPF_REG_0, 0);                                    // TCX_PASS: out of this port
    program[n++] = EXIT();
    int next = n;
    program[n++] = MOV64_IMM(BPF_REG_0, -1);                                   // TCX_NEXT
    program[n++] = EXIT();
    for (int i = 0; i < passes; i++) program[to_pass[i]].off = (short)(pass - to_pass[i] - 1);
    program[to_next].off = (short)(next - to_next - 1);
    return load_program(BPF_PROG_TYPE_SCHED_CLS, program, (unsigned)n, "snoopswitch_rp", log, log_size);
}
