// Linux definitions that Glibc's Swift overlay does not bring in: packet sockets,
// auxdata, TUN/TAP, virtio-net headers, batched send/receive, and the function-like
// macros (ioctl numbers, CMSG_*) that do not cross into Swift.
#ifndef CLINUX_H
#define CLINUX_H

#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/eventfd.h>
#include <pthread.h>
#include <sched.h>
#include <malloc.h>
#include <sys/un.h>
#include <net/if.h>
#include <net/ethernet.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <linux/sockios.h>
#include <signal.h>
#include <string.h>
#include <stdint.h>
#include <time.h>

static const int clinux_ETH_P_ALL = ETH_P_ALL;
static const int clinux_SOL_PACKET = SOL_PACKET;
static const int clinux_PACKET_AUXDATA = PACKET_AUXDATA;
static const int clinux_PACKET_VNET_HDR = PACKET_VNET_HDR;
static const int clinux_PACKET_IGNORE_OUTGOING = PACKET_IGNORE_OUTGOING;
static const int clinux_PACKET_ADD_MEMBERSHIP = PACKET_ADD_MEMBERSHIP;
static const int clinux_PACKET_QDISC_BYPASS = PACKET_QDISC_BYPASS;
static const int clinux_MSG_DONTWAIT = MSG_DONTWAIT;
static const int clinux_MSG_NOSIGNAL = MSG_NOSIGNAL;
static const int clinux_PACKET_STATISTICS = PACKET_STATISTICS;
static const int clinux_PACKET_MR_PROMISC = PACKET_MR_PROMISC;
static const unsigned clinux_TP_STATUS_VLAN_VALID = TP_STATUS_VLAN_VALID;
static const unsigned clinux_TP_STATUS_VLAN_TPID_VALID = TP_STATUS_VLAN_TPID_VALID;
static const unsigned clinux_TP_STATUS_CSUMNOTREADY = TP_STATUS_CSUMNOTREADY;
static const int clinux_PACKET_VERSION = PACKET_VERSION;
static const int clinux_TPACKET_V2 = TPACKET_V2;
static const int clinux_PACKET_RX_RING = PACKET_RX_RING;
static const int clinux_PACKET_COPY_THRESH = PACKET_COPY_THRESH;
static const int clinux_PACKET_FANOUT = PACKET_FANOUT;
static const int clinux_PACKET_FANOUT_HASH = PACKET_FANOUT_HASH;
static const int clinux_PACKET_FANOUT_EBPF = PACKET_FANOUT_EBPF;
static const int clinux_PACKET_FANOUT_FLAG_ROLLOVER = PACKET_FANOUT_FLAG_ROLLOVER;
static const int clinux_PACKET_FANOUT_FLAG_UNIQUEID = PACKET_FANOUT_FLAG_UNIQUEID;
static const unsigned clinux_TP_STATUS_USER = TP_STATUS_USER;
static const unsigned clinux_TP_STATUS_COPY = TP_STATUS_COPY;
static const unsigned long clinux_SIOCGIFFLAGS = SIOCGIFFLAGS;
static const unsigned long clinux_SIOCGIFMTU = SIOCGIFMTU;
static const unsigned long clinux_SIOCGIFHWADDR = SIOCGIFHWADDR;
static const int clinux_IFF_UP = IFF_UP;
static const int clinux_IFF_RUNNING = IFF_RUNNING;

static const unsigned long clinux_TUNSETIFF = TUNSETIFF;
static const unsigned long clinux_TUNSETOFFLOAD = TUNSETOFFLOAD;
static const unsigned long clinux_TUNSETVNETHDRSZ = TUNSETVNETHDRSZ;
static const int clinux_IFF_TAP = IFF_TAP;
static const int clinux_IFF_NO_PI = IFF_NO_PI;
static const int clinux_IFF_VNET_HDR = IFF_VNET_HDR;
static const unsigned clinux_TUN_OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;

/// Creates (or attaches to) the TAP device `name` on an open /dev/net/tun descriptor.
static inline int clinux_tun_set_iff(int fd, const char *name, short flags) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_flags = flags;
    return ioctl(fd, TUNSETIFF, &ifr);
}

static inline int clinux_ioctl_int(int fd, unsigned long request, int value) {
    return ioctl(fd, request, value);
}

static inline int clinux_ioctl_intp(int fd, unsigned long request, int *value) {
    return ioctl(fd, request, value);
}

/// The auxiliary data of a received packet (the VLAN tag the kernel stripped, checksum state).
static inline int clinux_read_auxdata(struct msghdr *msg, struct tpacket_auxdata *out) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA &&
            c->cmsg_len >= CMSG_LEN(sizeof(struct tpacket_auxdata))) {
            memcpy(out, CMSG_DATA(c), sizeof(*out));
            return 1;
        }
    }
    return 0;
}

static inline size_t clinux_auxdata_space(void) { return CMSG_SPACE(sizeof(struct tpacket_auxdata)); }

/// Room for one SO_MARK control message.
static inline size_t clinux_mark_space(void) { return CMSG_SPACE(sizeof(uint32_t)); }
/// Writes an SO_MARK control message (the frame's skb->mark) at `buffer`; returns its length.
static inline size_t clinux_write_mark(void *buffer, uint32_t mark) {
    struct cmsghdr *header = (struct cmsghdr *)buffer;
    header->cmsg_len = CMSG_LEN(sizeof(uint32_t));
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SO_MARK;
    memcpy(CMSG_DATA(header), &mark, sizeof(mark));
    return CMSG_SPACE(sizeof(uint32_t));
}

static inline int clinux_ioctl_ifreq(int fd, unsigned long request, struct ifreq *ifr) {
    return ioctl(fd, request, ifr);
}

/// The status word of a TPACKET_V2 ring slot, shared with the kernel: read with acquire (the
/// frame's bytes are visible once the kernel's status is), handed back with release.
static inline unsigned clinux_ring_status(const struct tpacket2_hdr *h) {
    return __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
}
static inline void clinux_ring_release(struct tpacket2_hdr *h) {
    __atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
}

/// Hands freed heap memory back to the system.
static inline void clinux_release_free_memory(void) { malloc_trim(0); }

/// How many CPUs this process may run on.
int clinux_usable_cpus(void);
/// The CPUs the process may run on, in ascending order: up to `capacity` of them into `cpus`; returns how many.
int clinux_allowed_cpus(int *cpus, int capacity);
/// Binds a thread to one CPU; 0 or an errno.
int clinux_pin_thread(pthread_t thread, int cpu);
/// Whether this process may run on `cpu`.
int clinux_cpu_allowed(int cpu);

/// Sets the calling thread's nice value (threads it starts later inherit it); 0 or an errno.
int clinux_set_nice(int nice);
/// The calling thread's nice value.
int clinux_nice(void);

/// PACKET_FANOUT_DATA: gives a fanout group its BPF program (PACKET_FANOUT_EBPF). 0 or -errno.
int clinux_fanout_set_program(int socket, int prog);
/// SO_ATTACH_BPF: gives a socket its BPF filter. 0 or -errno.
int clinux_attach_socket_filter(int socket, int prog);

/// Names a thread (top -H, ps -L show it).
int clinux_set_thread_name(pthread_t thread, const char *name);

/// `struct mmsghdr`, which glibc declares only under _GNU_SOURCE (the layout is the kernel's).
struct clinux_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

/// recvmmsg and sendmmsg, compiled in shim.c where _GNU_SOURCE declares them.
int clinux_recvmmsg(int fd, struct clinux_mmsghdr *msgs, unsigned int n, int flags);
int clinux_sendmmsg(int fd, struct clinux_mmsghdr *msgs, unsigned int n, int flags);

/// A signalfd for SIGINT, SIGTERM and SIGHUP, blocking their default delivery.
static inline int clinux_signalfd_for_termination(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* The monotonic clock in nanoseconds: the one clock of the datapath (Ports) and of the
   control socket's deadlines (Control), both of which import this module. */
static inline int64_t clinux_monotonic_nanoseconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
