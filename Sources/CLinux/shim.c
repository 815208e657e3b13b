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
// What a TCX program returns to drop the frame.
#define CLINUX_TCX_DROP 2

int clinux_tcx_ingress_drop(int ifindex) {
    struct bpf_insn program[2];
    memset(program, 0, sizeof(program));
    program[0].code = BPF_ALU64 | BPF_MOV | BPF_K;  // r0 = TCX_DROP
    program[0].dst_reg = BPF_REG_0;
    program[0].imm = CLINUX_TCX_DROP;
    program[1].code = BPF_JMP | BPF_EXIT;
    union bpf_attr load;
    memset(&load, 0, sizeof(load));
    load.prog_type = BPF_PROG_TYPE_SCHED_CLS;
    load.insns = (uint64_t)(uintptr_t)program;
    load.insn_cnt = 2;
    load.license = (uint64_t)(uintptr_t)"GPL";
    memcpy(load.prog_name, "snoopswitch_rx", 15);
    int prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof(load));
    if (prog < 0) return -errno;
    union bpf_attr link;
    memset(&link, 0, sizeof(link));
    link.link_create.prog_fd = (uint32_t)prog;
    link.link_create.target_ifindex = (uint32_t)ifindex;
    link.link_create.attach_type = CLINUX_BPF_TCX_INGRESS;
    int fd = (int)syscall(SYS_bpf, BPF_LINK_CREATE, &link, sizeof(link));
    int error = errno;
    close(prog);  // the link holds the program
    return fd >= 0 ? fd : -error;
}
