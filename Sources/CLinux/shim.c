// SPDX-License-Identifier: BSD-2-Clause
// Batched socket calls: glibc declares them only under _GNU_SOURCE, which must not leak into
// the header Swift imports (it would clash with the Glibc module's view of the same headers).
#define _GNU_SOURCE 1
#include <sys/socket.h>
#include <sched.h>
#include <pthread.h>
#include <errno.h>
#include <unistd.h>
#include <sys/resource.h>
#include <linux/if_packet.h>
#include <stdint.h>
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

// ---- giving sockets their BPF programs (Sources/CBPF/programs) ----------------------------

int clinux_attach_socket_filter(int socket, int prog) {
    return setsockopt(socket, SOL_SOCKET, SO_ATTACH_BPF, &prog, sizeof(prog)) == 0 ? 0 : -errno;
}

#ifndef PACKET_FANOUT_DATA
#define PACKET_FANOUT_DATA 22
#endif

int clinux_fanout_set_program(int socket, int prog) {
    return setsockopt(socket, SOL_PACKET, PACKET_FANOUT_DATA, &prog, sizeof(prog)) == 0 ? 0 : -errno;
}
