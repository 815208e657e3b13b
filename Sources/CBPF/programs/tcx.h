// SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only
// What a program on a TCX hook returns: enum tcx_action_base of Linux 6.6's <linux/bpf.h>,
// under names of our own, since Debian 12's headers (6.1's) lack it and newer ones have it.
#ifndef SNOOP_TCX_H
#define SNOOP_TCX_H

#define SNOOP_TCX_NEXT (-1)  // on to the next program on the hook, then on its way
#define SNOOP_TCX_PASS 0     // on its way, past any later program
#define SNOOP_TCX_DROP 2     // dropped
// (TCX_REDIRECT, 7, is what bpf_redirect() returns.)

// libbpf 1.3 and later name the sections "tcx/ingress" and "tcx/egress"; Debian 12's libbpf
// 1.1 knows only "tc" (a BPF_PROG_TYPE_SCHED_CLS program with no expected attach type, which
// is all the kernel asks of a program attached to a TCX hook).
#define SNOOP_TCX_SECTION "tc"

#endif
