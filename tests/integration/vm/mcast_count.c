/*
 * mcast_count: the guest side of tests/integration/test_vm.py.
 *
 * Runs in the VM's initramfs (linked statically, started by vm/init), after eth0 is up
 * with its address. Joins GROUP on IFNAME with IP_ADD_MEMBERSHIP (the guest's kernel
 * sends the IGMP report), then counts the UDP datagrams to GROUP:PORT that carry
 * TOKEN:
 *
 *     "TOKEN #NNNNN ..."   a numbered data datagram (counted once per number)
 *     "TOKEN END ..."      the sender is done: stop and report
 *
 * until an END datagram arrives or SECONDS pass. It prints, on the console:
 *
 *     VMJOINED group=G port=P ifindex=N
 *     VMRESULT received=N unique=U duplicates=D other=O end=yes|no seconds=S
 *
 * `other` counts datagrams on the port without the token. Exit status 0 when the
 * VMRESULT line was printed. The init script powers the VM off afterwards.
 *
 *     mcast_count IFNAME GROUP PORT TOKEN SECONDS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SEQ 100000

static unsigned char seen[MAX_SEQ];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(const char *what) {
    printf("VMERROR %s: %s\n", what, strerror(errno));
    fflush(stdout);
    exit(2);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        printf("VMERROR usage: mcast_count IFNAME GROUP PORT TOKEN SECONDS\n");
        return 2;
    }
    const char *ifname = argv[1], *group = argv[2], *token = argv[4];
    int port = atoi(argv[3]);
    double seconds = atof(argv[5]);
    size_t toklen = strlen(token);
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct in_addr gaddr;
    if (inet_pton(AF_INET, group, &gaddr) != 1) {
        printf("VMERROR bad group %s\n", group);
        return 2;
    }
    unsigned ifindex = if_nametoindex(ifname);
    if (ifindex == 0) fail("if_nametoindex");

    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) fail("socket");
    int one = 1, zero = 0, rcvbuf = 1 << 20;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    /* only datagrams of groups this socket joined */
    setsockopt(s, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero);

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = gaddr};
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) fail("bind");

    struct ip_mreqn mreq = {.imr_multiaddr = gaddr, .imr_ifindex = (int)ifindex};
    if (setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof mreq) < 0) fail("IP_ADD_MEMBERSHIP");
    printf("VMJOINED group=%s port=%d ifindex=%u\n", group, port, ifindex);

    long received = 0, unique = 0, duplicates = 0, other = 0;
    int end = 0;
    double start = now(), deadline = start + seconds;
    char buf[2048];
    while (!end) {
        double left = deadline - now();
        if (left <= 0) break;
        struct pollfd pfd = {.fd = s, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (r < 0) {
            if (errno == EINTR) continue;
            fail("poll");
        }
        if (r == 0) continue;
        ssize_t n = recv(s, buf, sizeof buf - 1, 0);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            fail("recv");
        }
        buf[n] = 0;
        if ((size_t)n <= toklen + 1 || memcmp(buf, token, toklen) != 0 || buf[toklen] != ' ') {
            other++;
            continue;
        }
        const char *rest = buf + toklen + 1;
        if (strncmp(rest, "END", 3) == 0) {
            end = 1;
        } else if (rest[0] == '#') {
            long seq = strtol(rest + 1, NULL, 10);
            received++;
            if (seq >= 0 && seq < MAX_SEQ) {
                if (seen[seq]) {
                    duplicates++;
                } else {
                    seen[seq] = 1;
                    unique++;
                }
            }
        } else {
            other++;
        }
    }
    printf("VMRESULT received=%ld unique=%ld duplicates=%ld other=%ld end=%s seconds=%.1f\n", received, unique,
           duplicates, other, end ? "yes" : "no", now() - start);
    close(s);
    return 0;
}
