// Batched socket calls: glibc declares them only under _GNU_SOURCE, which must not leak into
// the header Swift imports (it would clash with the Glibc module's view of the same headers).
#define _GNU_SOURCE 1
#include <sys/socket.h>
#include <sched.h>
#include <pthread.h>
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
