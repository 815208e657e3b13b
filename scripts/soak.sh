#!/usr/bin/env bash
# soak.sh: a bounded soak test of snoopswitch in network namespaces.
#
#   scripts/soak.sh [--minutes N] [--keep DIR]
#
#   --minutes N   length of the traffic phase (default 10; fractions allowed; setup and
#                 the analysis add about half a minute)
#   --keep DIR    copy the switch log, the agents' results and the report into DIR
#
# Topology: six hosts h1..h6 (192.0.2.1-6) and a hostile host hx (192.0.2.66, port
# :query-guard) on one switch with --querier (query interval 10 s). During the run:
#   - 1,000 groups (239.20.0.0-239.20.3.231, UDP port 20000+i); group i is sent by host
#     h(1 + i mod 6), one numbered datagram every 2 s (500 datagrams/s in all);
#   - each host (one python process holding a socket per group it may join) joins about
#     half of the other hosts' groups at start, then joins and leaves groups at random
#     (4 changes a second per host), through real sockets: its kernel speaks IGMPv3,
#     answers the switch's queries, re-reports when its link comes back;
#   - unicast: ping h5 -> h6 (5/s) and ping h1 -> h3, iperf3 TCP h5 -> h6 at 20 Mbit/s;
#   - link flaps at random (h1..h4, at the host end or at the switch end, 0.5-3 s down);
#   - hx fuzzes (random and truncated IGMP/IPv4 frames), floods IGMP reports, sends
#     spoofed leaves for the real groups, rogue queries and PIM hellos, random source MACs;
#   - the switch's VmRSS is sampled every 2 s, its status polled every 5 s.
# Checks at the end (exit status 1 if one fails):
#   - every member received every datagram sent to a group it had joined, sent from
#     2 s after the join until its leave (outside link-flap windows of the member or the
#     sender), and no datagram twice;
#   - no non-member received any (each host captures every frame to 239.20.0.0/16 on its
#     eth0; a frame for a group it had not joined, 3 s after a leave, is a leak);
#   - ping h5 -> h6 lost nothing, iperf3 reached 80 % of its rate;
#   - the switch stayed up, answered status, exits 0 on SIGTERM, and its memory stayed
#     flat (the last quarter's peak within 10 % / 4 MB of the peak in the quarter after a
#     warm-up of 30 s or a quarter of the run);
# and prints one table. Everything it creates (namespaces, processes, files) is removed
# on exit, also on failure or Ctrl-C.
# SOAK_SWITCH_FLAGS adds flags to the switch's command line (e.g. "--vlan 1:no-snooping"
# floods every group, to see the non-member check fail).
# Needs root, Debian's /usr/bin/python3 (scapy not needed), iproute2, iputils-ping,
# iperf3. The switch binary: $SNOOPSWITCH, else .build/debug/snoopswitch.
set -euo pipefail

PROG=$(basename "$0")
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
MINUTES=10
KEEP=""

usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "$PROG: $*" >&2; exit 2; }

while (($#)); do
    case "$1" in
    --minutes) [[ $# -ge 2 ]] || usage; MINUTES=$2; shift 2 ;;
    --minutes=*) MINUTES=${1#*=}; shift ;;
    --keep) [[ $# -ge 2 ]] || usage; KEEP=$2; shift 2 ;;
    -h | --help) usage ;;
    *) echo "$PROG: unknown argument '$1'" >&2; usage ;;
    esac
done
[[ "$MINUTES" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--minutes wants a number of minutes, got '$MINUTES'"
awk -v m="$MINUTES" 'BEGIN { exit !(m >= 0.25 && m <= 1440) }' || die "--minutes must be between 0.25 and 1440"
[[ $(id -u) -eq 0 ]] || die "run as root (network namespaces, AF_PACKET)"
PYTHON=/usr/bin/python3
[[ -x $PYTHON ]] || die "$PYTHON not found"
for tool in ip ping iperf3; do command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh)"; done
BIN=${SNOOPSWITCH:-$REPO_DIR/.build/debug/snoopswitch}
[[ -x "$BIN" ]] || die "snoopswitch binary not found at $BIN (swift build, or set SNOOPSWITCH)"
export SNOOPSWITCH=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

LAB="soak$$"
WORK=$(mktemp -d "/tmp/snoopswitch-soak-$$-XXXXXX")
PY_PID=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$PY_PID" ]] && kill -0 "$PY_PID" 2>/dev/null; then
        kill -TERM "$PY_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$PY_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$PY_PID" 2>/dev/null || true
    fi
    # Whatever the python side could not remove: the lab's namespaces and what runs in them.
    local ns pid
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${LAB}-" || true); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    [[ -n "$PY_PID" ]] && rm -rf /tmp/snoopswitch-it-"$PY_PID"-* 2>/dev/null
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cat >"$WORK/soak.py" <<'PYTHON_EOF'
"""The soak's orchestrator (role main) and its agents (role agent: one per host; role
hostile). Written out and started by scripts/soak.sh; uses tests/integration/lab.py."""

import argparse
import heapq
import json
import os
import random
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

N_GROUPS = 1000
N_HOSTS = 6
SEND_PERIOD = 2.0          # each group: one datagram every 2 s
CHURN_PER_S = 4.0          # joins + leaves per second per host
INITIAL_FRACTION = 0.5     # share of eligible groups joined at start (over RAMP_S)
RAMP_S = 5.0
SETTLE_S = 2.0             # a join counts from 2 s after it
LEAVE_GRACE_S = 3.0        # frames may still come 3 s after a leave (last member query time 1 s)
LEAVE_MARGIN_S = 1.0       # ... and a datagram sent less than 1 s before a leave may arrive after it
QI, QRI, LMQI = 10, 2, 0.5
FLAP_GRACE = {"host": 3.0, "switch": QI + QRI + 2.0}  # the host re-reports on its own link up only
SENDER_FLAP_GRACE = 1.0
MAGIC = b"SOAK"
IP_MULTICAST_ALL = 49
SO_TIMESTAMPNS = 35
PACKET_OUTGOING = 4


def gaddr(g):
    return f"239.20.{g >> 8}.{g & 0xFF}"


def gport(g):
    return 20000 + g


# ================================================================ agent (a host)
def agent_main(cfg):
    host, idx, out_path = cfg["host"], cfg["index"], cfg["out"]
    addr = cfg["addr"]
    rng = random.Random(cfg["seed"])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    own = [g for g in range(N_GROUPS) if g % N_HOSTS == idx]
    eligible = [g for g in range(N_GROUPS) if g % N_HOSTS != idx]
    ifindex = socket.if_nametoindex("eth0")
    sel = selectors.DefaultSelector()
    socks = {}
    for g in eligible:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 262144)
        s.bind((gaddr(g), gport(g)))
        s.setblocking(False)
        socks[g] = s
        sel.register(s, selectors.EVENT_READ, g)
    # Capture of every frame to 239.20.0.0/16 (UDP) on eth0, with kernel timestamps.
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    cap.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
    bpf = [  # ldh [12]; jne 0x800; ld [30]; and 0xffff0000; jne 0xef140000; ldb [23]; jne 17; ret all; ret 0
        (0x28, 0, 0, 12), (0x15, 0, 6, 0x0800), (0x20, 0, 0, 30), (0x54, 0, 0, 0xFFFF0000),
        (0x15, 0, 3, 0xEF140000), (0x30, 0, 0, 23), (0x15, 0, 1, 17), (0x06, 0, 0, 0x40000), (0x06, 0, 0, 0),
    ]
    import ctypes
    prog = b"".join(struct.pack("HBBI", *ins) for ins in bpf)
    buf = ctypes.create_string_buffer(prog)
    fprog = struct.pack("HL", len(bpf), ctypes.addressof(buf))
    cap.setsockopt(socket.SOL_SOCKET, 26, fprog)  # SO_ATTACH_FILTER
    cap.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    cap.bind(("eth0", 0x0800))
    cap.setblocking(False)
    sel.register(cap, selectors.EVENT_READ, -1)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(addr))
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    tx.setblocking(False)

    state = {"traffic": True, "run": True}
    signal.signal(signal.SIGUSR1, lambda *_: state.__setitem__("traffic", False))
    signal.signal(signal.SIGTERM, lambda *_: state.__setitem__("run", False))

    joined = {g: False for g in eligible}
    intervals = {g: [] for g in eligible}
    received = {g: set() for g in eligible}
    sent = {g: [] for g in own}
    stats = {"dups": 0, "send_errors": 0, "churn_skipped_link_down": 0, "joins": 0, "leaves": 0,
             "captured": 0, "captured_in_grace": 0, "echo": 0, "bad_payload": 0,
             "capture_errors": 0}
    leaks = []
    rt_off = time.time() - time.monotonic()

    def mreq(g):
        return struct.pack("4s4si", socket.inet_aton(gaddr(g)), b"\0\0\0\0", ifindex)

    def link_up():
        try:
            with open("/sys/class/net/eth0/operstate") as f:
                return f.read().strip() == "up"
        except OSError:
            return False

    def join(g):
        t = time.monotonic()
        socks[g].setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq(g))
        joined[g] = True
        intervals[g].append([t, None])
        stats["joins"] += 1

    def leave(g):
        socks[g].setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, mreq(g))
        joined[g] = False
        intervals[g][-1][1] = time.monotonic()
        stats["leaves"] += 1

    def member_or_grace(g, t):
        for tj, tl in reversed(intervals[g]):
            if tj <= t and (tl is None or t <= tl + LEAVE_GRACE_S):
                return "member" if tl is None or t <= tl else "grace"
        return None

    t0 = time.monotonic()
    events = []  # (time, kind, group)
    for k, g in enumerate(own):
        heapq.heappush(events, (t0 + 0.5 + SEND_PERIOD * k / max(1, len(own)), 0, g))
    initial = rng.sample(eligible, int(len(eligible) * INITIAL_FRACTION))
    for k, g in enumerate(initial):
        heapq.heappush(events, (t0 + RAMP_S * k / len(initial), 1, g))
    heapq.heappush(events, (t0 + RAMP_S + rng.expovariate(CHURN_PER_S), 2, -1))
    with open(out_path + ".ready", "w") as f:
        f.write("ready\n")
    seqs = {g: 0 for g in own}
    t_traffic_end = None
    while state["run"]:
        now = time.monotonic()
        if not state["traffic"] and t_traffic_end is None:
            t_traffic_end = now
            events = []
        while events and events[0][0] <= now:
            t, kind, g = heapq.heappop(events)
            if kind == 0:  # send
                payload = MAGIC + struct.pack("!HId", g, seqs[g], time.monotonic())
                try:
                    tsend = time.monotonic()
                    tx.sendto(payload.ljust(64, b"."), (gaddr(g), gport(g)))
                    sent[g].append([seqs[g], tsend])
                except OSError:
                    stats["send_errors"] += 1
                seqs[g] += 1
                heapq.heappush(events, (t + SEND_PERIOD, 0, g))
            elif kind == 1:  # initial join
                if not joined[g]:
                    join(g)
            else:  # churn
                if link_up():
                    g = rng.choice(eligible)
                    (leave if joined[g] else join)(g)
                else:
                    stats["churn_skipped_link_down"] += 1
                heapq.heappush(events, (now + rng.expovariate(CHURN_PER_S), 2, -1))
        timeout = 0.05
        if events:
            timeout = max(0.0, min(timeout, events[0][0] - time.monotonic()))
        for key, _ in sel.select(timeout):
            g = key.data
            if g >= 0:
                s = socks[g]
                for _ in range(64):
                    try:
                        d = s.recv(2048)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        stats["recv_errors"] = stats.get("recv_errors", 0) + 1
                        break
                    if len(d) < 18 or d[:4] != MAGIC:
                        stats["bad_payload"] += 1
                        continue
                    rg, seq, _ts = struct.unpack("!HId", d[4:18])
                    if rg != g:
                        stats["bad_payload"] += 1
                    elif seq in received[g]:
                        stats["dups"] += 1
                    else:
                        received[g].add(seq)
            else:
                for _ in range(256):
                    try:
                        d, anc, _fl, a = cap.recvmsg(2048, 64)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:  # ENETDOWN while eth0 is down: the socket lives on
                        stats["capture_errors"] += 1
                        break
                    if a[2] == PACKET_OUTGOING or len(d) < 14 + 20 + 8 + 18:
                        continue
                    ts = None
                    for lvl, typ, data in anc:
                        if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS and len(data) >= 16:
                            sec, nsec = struct.unpack("qq", data[:16])
                            ts = sec + nsec / 1e9 - rt_off
                    ts = ts if ts is not None else time.monotonic()
                    ihl = (d[14] & 0x0F) * 4
                    p = d[14 + ihl + 8:]
                    if p[:4] != MAGIC:
                        continue
                    rg, seq, _t = struct.unpack("!HId", p[4:18])
                    stats["captured"] += 1
                    if rg % N_HOSTS == idx:
                        stats["echo"] += 1  # our own datagram came back to us
                        continue
                    where = member_or_grace(rg, ts)
                    if where == "grace":
                        stats["captured_in_grace"] += 1
                    elif where is None:
                        last = [iv[1] for iv in intervals.get(rg, []) if iv[1] is not None and iv[1] <= ts]
                        leaks.append([rg, seq, round(ts, 3), round(max(last), 3) if last else None])
    t_end = time.monotonic()
    res = {
        "host": host, "t0": t0, "t_traffic_end": t_traffic_end or t_end, "t_end": t_end,
        "sent": {g: v for g, v in sent.items()},
        "intervals": {g: v for g, v in intervals.items() if v},
        "received": {g: sorted(v) for g, v in received.items() if v},
        "stats": stats, "leaks": leaks[:200], "leak_count": len(leaks),
    }
    with open(out_path + ".tmp", "w") as f:
        json.dump(res, f)
    os.rename(out_path + ".tmp", out_path)


# ================================================================ hostile host
def hostile_main(cfg):
    rng = random.Random(cfg["seed"])
    mac = bytes(int(x, 16) for x in cfg["mac"].split(":"))
    addr = cfg["addr"]
    victims = cfg["victims"]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.bind(("eth0", 0))
    run = {"on": True}
    signal.signal(signal.SIGTERM, lambda *_: run.__setitem__("on", False))
    counts = {"fuzz": 0, "report_flood": 0, "spoofed_leave": 0, "rogue_query": 0, "mac_flood": 0, "errors": 0}

    def csum(b):
        if len(b) % 2:
            b += b"\0"
        t = sum(struct.unpack(f"!{len(b) // 2}H", b))
        while t >> 16:
            t = (t & 0xFFFF) + (t >> 16)
        return (~t) & 0xFFFF

    def mmac(ip):
        b = socket.inet_aton(ip)
        return bytes([1, 0, 0x5E, b[1] & 0x7F, b[2], b[3]])

    def ip4(src, dst, payload, proto=2, ra=True, fix=True, total=None, ttl=1):
        opts = b"\x94\x04\x00\x00" if ra else b""
        hl = 20 + len(opts)
        hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | (hl // 4), 0xC0, (total if total is not None else hl + len(payload)) & 0xFFFF,
                          rng.getrandbits(16), 0, ttl, proto, 0, socket.inet_aton(src), socket.inet_aton(dst)) + opts
        if fix:
            hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
        return hdr + payload

    def igmp(t, code, group, rest=b"", good=True):
        b = struct.pack("!BBH4s", t, code, 0, socket.inet_aton(group)) + rest
        c = csum(b) ^ (0 if good else 0x5A5A)
        return b[:2] + struct.pack("!H", c) + b[4:]

    def v3(src, recs):
        body = b"".join(struct.pack("!BBH4s", rt, 0, len(srcs), socket.inet_aton(g)) +
                        b"".join(socket.inet_aton(x) for x in srcs) for rt, g, srcs in recs)
        m = struct.pack("!BBHHH", 0x22, 0, 0, 0, len(recs)) + body
        m = m[:2] + struct.pack("!H", csum(m)) + m[4:]
        return mmac("224.0.0.22") + mac + b"\x08\x00" + ip4(src, "224.0.0.22", m)

    def eth(dst_ip, l3, src_mac=mac):
        return mmac(dst_ip) + src_mac + b"\x08\x00" + l3

    def real_group():
        g = rng.randrange(N_GROUPS)
        return f"239.20.{g >> 8}.{g & 0xFF}"

    def fuzz():
        k = rng.randrange(8)
        dst = rng.choice(["224.0.0.1", "224.0.0.2", "224.0.0.22", real_group()])
        if k == 0:
            return eth(dst, ip4(addr, dst, bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 64)))))
        if k == 1:
            return eth(dst, ip4(addr, dst, igmp(0x16, 0, real_group()))[: rng.randrange(0, 24)])
        if k == 2:
            return eth(dst, ip4(addr, dst, igmp(rng.choice([0x11, 0x16, 0x17, 0x22]), rng.getrandbits(8), real_group(), good=False)))
        if k == 3:
            m = igmp(0x22, 0, "0.0.0.0", struct.pack("!BBH4s", 4, 0, 0, socket.inet_aton(real_group())))
            m = m[:6] + struct.pack("!H", rng.randrange(2, 2000)) + m[8:]
            m = m[:2] + b"\0\0" + m[4:]
            m = m[:2] + struct.pack("!H", csum(m)) + m[4:]
            return eth("224.0.0.22", ip4(addr, "224.0.0.22", m))
        if k == 4:
            return eth(dst, ip4(addr, dst, igmp(0x16, 0, real_group()), total=rng.choice([0, 7, 19, 400, 65535])))
        if k == 5:
            l3 = ip4(addr, dst, igmp(0x16, 0, real_group()))
            return eth(dst, bytes([(4 << 4) | rng.choice([0, 3, 15])]) + l3[1:])
        if k == 6:
            m = igmp(0x11, 10, real_group(), struct.pack("!BBH", 2, 10, rng.randrange(100, 65536)))
            return eth("224.0.0.1", ip4(addr, "224.0.0.1", m))
        frame = eth(dst, ip4(addr, dst, igmp(0x16, 0, real_group())))
        return frame[: rng.randrange(14, len(frame))]

    def send(frame, kind):
        try:
            s.send(frame)
            counts[kind] += 1
        except OSError:
            counts["errors"] += 1

    nxt = time.monotonic()
    while run["on"]:
        for _ in range(100):
            send(fuzz(), "fuzz")
        for _ in range(1500):  # report flood: above the 1000/s per-port rate
            g = f"239.200.{rng.randrange(256)}.{rng.randrange(256)}"
            send(eth(g, ip4(addr, g, igmp(0x16, 0, g))), "report_flood")
        for _ in range(10):  # spoofed leaves / TO_IN({}) / BLOCK for the real groups, as the real hosts
            g, v = real_group(), rng.choice(victims)
            send(eth("224.0.0.2", ip4(v, "224.0.0.2", igmp(0x17, 0, g))), "spoofed_leave")
            send(v3(v, [(3, g, [])]), "spoofed_leave")
            send(v3(v, [(6, g, [rng.choice(victims)])]), "spoofed_leave")
        for q in (igmp(0x11, 10, "0.0.0.0", b"\x02\x0a\x00\x00"), igmp(0x11, 10, "0.0.0.0")):
            send(eth("224.0.0.1", ip4("192.0.2.1", "224.0.0.1", q)), "rogue_query")
        for _ in range(100):
            src = bytes([0x02 | (rng.getrandbits(8) & 0xFC)]) + rng.getrandbits(40).to_bytes(5, "big")
            send(b"\x02\x00\x00\x00\x99\x99" + src + b"\x88\xb5" + b"soak-mac-flood".ljust(46, b"."), "mac_flood")
        nxt += 1.0
        time.sleep(max(0.0, nxt - time.monotonic()))
    print(json.dumps(counts))


# ================================================================ orchestrator
def main(args):
    sys.path.insert(0, os.path.join(args.repo, "tests", "integration"))
    from lab import HostSpec, Lab, Topology, sh, wait_until  # noqa: E402

    t_wall0 = time.monotonic()
    duration = args.minutes * 60.0
    work = args.work
    rng = random.Random(args.seed)
    topo = Topology()
    for i in range(1, N_HOSTS + 1):
        topo.hosts.append(HostSpec(f"h{i}", f"192.0.2.{i}/24", "", f"02:00:00:00:00:{i:02x}"))
    topo.hosts.append(HostSpec("hx", "192.0.2.66/24", ":query-guard", "02:00:00:00:00:66"))
    lab = Lab(topo, name=args.lab)
    procs = []
    results = {}
    checks = []  # (name, ok (True/False/None=info), detail)
    rss = []
    polls = {"ok": 0, "failed": 0, "max_s": 0.0, "groups_max": 0, "hx_groups_max": 0, "hx_macs_max": 0,
             "hx_router": 0, "not_querier": 0}
    flaps = []
    stop = threading.Event()
    exit_code = 1
    switch_log = ""

    def on_term(*_):
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, on_term)
    try:
        print(f"soak: lab {args.lab}, {N_HOSTS} hosts + hostile, {N_GROUPS} groups, {args.minutes:g} min", flush=True)
        lab.create()
        sw = lab.start_switch("--querier", "--querier-address", "192.0.2.254", "--query-interval", str(QI),
                              "--query-response-interval", str(QRI), "--last-member-query-interval", str(LMQI),
                              "--max-groups-per-port", "4096", "--max-macs-per-port", "1000",
                              *os.environ.get("SOAK_SWITCH_FLAGS", "").split())
        pid = sw.proc.pid

        def control(req, timeout=30.0):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(sw.control)
                s.sendall(req + b"\n")
                out = b""
                while True:
                    b = s.recv(1 << 20)
                    if not b:
                        return out
                    out += b
            finally:
                s.close()  # only after reading to the end: a closed reader would kill the switch (SIGPIPE)

        def vmrss():
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
            return None

        # agents
        hosts = [lab[f"h{i}"] for i in range(1, N_HOSTS + 1)]
        for i, h in enumerate(hosts):
            cfg = {"host": h.name, "index": i, "addr": h.addr, "seed": rng.getrandbits(32),
                   "out": os.path.join(work, f"agent-{h.name}.json")}
            cpath = os.path.join(work, f"agent-{h.name}.cfg")
            with open(cpath, "w") as f:
                json.dump(cfg, f)
            p = h.popen(sys.executable, __file__, "agent", cpath, stdout=subprocess.DEVNULL,
                        stderr=open(os.path.join(work, f"agent-{h.name}.err"), "w"))
            procs.append(("agent", h, p, cfg))
        for _, h, p, cfg in procs:
            wait_until(lambda: os.path.exists(cfg["out"] + ".ready") or p.poll() is not None, timeout=60,
                       what=f"agent {h.name} ready")
            if p.poll() is not None:
                raise RuntimeError(f"agent {h.name} exited {p.returncode}: "
                                   f"{open(os.path.join(work, f'agent-{h.name}.err')).read()[-2000:]}")
        hx = lab["hx"]
        hcfg = {"mac": hx.mac, "addr": hx.addr, "seed": rng.getrandbits(32), "victims": [h.addr for h in hosts]}
        hpath = os.path.join(work, "hostile.cfg")
        with open(hpath, "w") as f:
            json.dump(hcfg, f)
        hostile = hx.popen(sys.executable, __file__, "hostile", hpath, stdout=subprocess.PIPE,
                           stderr=open(os.path.join(work, "hostile.err"), "w"), text=True)
        h5, h6, h1 = lab["h5"], lab["h6"], lab["h1"]
        h6.popen("iperf3", "-s", "-1", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: h6.run("ss", "-Hltn", "sport = :5201", check=False).stdout.strip(), timeout=20,
                   what="iperf3 server listening in h6")
        t_start = time.monotonic()
        n_ping = int(duration / 0.2)
        ping56 = h5.popen("ping", "-i", "0.2", "-W", "2", "-c", str(n_ping), "-q", h6.addr,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ping13 = h1.popen("ping", "-i", "0.2", "-W", "2", "-c", str(n_ping), "-q", lab["h3"].addr,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        iperf_out = os.path.join(work, "iperf3.json")
        iperf_c = h5.popen("iperf3", "-c", h6.addr, "-t", str(max(5, int(duration - 5))), "-b", "20M", "-J",
                           stdout=open(iperf_out, "w"), stderr=subprocess.STDOUT)

        def sampler():
            while not stop.is_set():
                try:
                    v = vmrss()
                    if v:
                        rss.append((time.monotonic() - t_start, v))
                except OSError:
                    pass
                stop.wait(2.0)

        def poller():
            while not stop.wait(5.0):
                t = time.monotonic()
                try:
                    st = json.loads(control(b"status"))
                    polls["ok"] += 1
                    polls["groups_max"] = max(polls["groups_max"], len(st.get("groups", [])))
                    hx_groups = sum(1 for g in st.get("groups", []) for m in g.get("members", []) if m["port"] == "hx")
                    polls["hx_groups_max"] = max(polls["hx_groups_max"], hx_groups)
                    polls["hx_macs_max"] = max(polls["hx_macs_max"],
                                               sum(1 for m in st.get("macs", []) if m["port"] == "hx"))
                    polls["hx_router"] += any(r["port"] == "hx" for r in st.get("router_ports", []))
                    polls["not_querier"] += not any(q.get("vlan") == 1 and q.get("role") == "us"
                                                    for q in st.get("queriers", []))
                except Exception:
                    polls["failed"] += 1
                polls["max_s"] = max(polls["max_s"], time.monotonic() - t)

        threads = [threading.Thread(target=sampler, daemon=True), threading.Thread(target=poller, daemon=True)]
        for t in threads:
            t.start()
        # link flaps, at random, until the end
        next_report = t_start + 30
        while True:
            now = time.monotonic()
            if now - t_start >= duration - 8:
                break
            if now >= next_report:
                print(f"soak: {now - t_start:5.0f}s  VmRSS {rss[-1][1] if rss else '?'} kB  flaps {len(flaps)}  "
                      f"status polls {polls['ok']}", flush=True)
                next_report += 30
            if sw.proc.poll() is not None:
                break
            wait = rng.uniform(6, 16)
            time.sleep(min(wait, max(0.0, duration - 8 - (time.monotonic() - t_start))))
            if time.monotonic() - t_start >= duration - 8 or sw.proc.poll() is not None:
                break
            victim = lab[f"h{rng.randrange(1, 5)}"]
            kind = rng.choice(["host", "host", "switch"])
            down_s = rng.uniform(0.5, 3.0)
            t_down = time.monotonic()
            if kind == "host":
                sh("ip", "-n", victim.ns, "link", "set", "eth0", "down")
            else:
                sh("ip", "-n", lab.sw_ns, "link", "set", victim.name, "down")
            time.sleep(down_s)
            if kind == "host":
                sh("ip", "-n", victim.ns, "link", "set", "eth0", "up")
                sh("ip", "-n", victim.ns, "route", "replace", "224.0.0.0/4", "dev", "eth0")
            else:
                sh("ip", "-n", lab.sw_ns, "link", "set", victim.name, "up")
            t_up = time.monotonic()
            flaps.append({"host": victim.name, "kind": kind, "down": t_down, "up": t_up})
        while time.monotonic() - t_start < duration and sw.proc.poll() is None:
            time.sleep(0.5)
        # stop: traffic first, then the receivers
        t_stop = time.monotonic()
        for _, h, p, cfg in procs:
            p.send_signal(signal.SIGUSR1)
        time.sleep(3.0)
        for _, h, p, cfg in procs:
            p.send_signal(signal.SIGTERM)
        for _, h, p, cfg in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
            try:
                with open(cfg["out"]) as f:
                    results[h.name] = json.load(f)
            except (OSError, ValueError) as exc:
                results[h.name] = None
                checks.append((f"agent {h.name}", False, f"no result ({exc}); exit {p.returncode}; "
                               f"{open(os.path.join(work, f'agent-{h.name}.err')).read()[-500:]}"))
        hostile.send_signal(signal.SIGTERM)
        try:
            hostile_out, _ = hostile.communicate(timeout=20)
            hostile_counts = json.loads(hostile_out.strip().splitlines()[-1])
        except Exception as exc:
            hostile.kill()
            hostile_counts = {"error": str(exc)}
        stop.set()
        for t in threads:
            t.join(timeout=35)
        for p in (ping56, ping13, iperf_c):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        kernel_drops = "?"
        try:
            parts = []
            for ln in json.loads(sh("ip", "-n", lab.sw_ns, "-s", "-j", "link", "show").stdout):
                st64 = ln.get("stats64", {})
                tx_d, rx_d = st64.get("tx", {}).get("dropped", 0), st64.get("rx", {}).get("dropped", 0)
                if tx_d or rx_d:
                    parts.append(f"sw/{ln['ifname']} tx {tx_d} rx {rx_d}")
            for h in hosts:
                ln = json.loads(sh("ip", "-n", h.ns, "-s", "-j", "link", "show", "eth0").stdout)[0]
                rx_d = ln.get("stats64", {}).get("rx", {}).get("dropped", 0)
                snmp = h.run("cat", "/proc/net/snmp").stdout.splitlines()
                udp = [l.split()[1:] for l in snmp if l.startswith("Udp:")]
                udp = dict(zip(udp[0], udp[1])) if len(udp) == 2 else {}
                bad = {k: v for k, v in udp.items() if k in ("InErrors", "RcvbufErrors", "InCsumErrors") and v != "0"}
                if rx_d or bad:
                    parts.append(f"{h.name}/eth0 rx {rx_d} {bad or ''}".strip())
            kernel_drops = ("; ".join(parts) or "none") + \
                " (host rx drops include the hostile's frames of an unknown ethertype, flooded to every host)"
        except Exception as exc:
            kernel_drops = f"? ({exc})"
        alive = sw.proc.poll() is None
        final_status = None
        if alive:
            try:
                final_status = json.loads(control(b"status"))
            except Exception as exc:
                final_status = {"error": str(exc)}
        t_run = time.monotonic() - t_start

        # ---- analysis ---------------------------------------------------------------
        send_time = {}  # group -> {seq: t}
        for name, r in results.items():
            if r:
                for g, lst in r["sent"].items():
                    send_time[int(g)] = {s: t for s, t in lst}
        flap_by_host = {}
        for fl in flaps:
            flap_by_host.setdefault(fl["host"], []).append(fl)

        def excluded(host, t, grace_of):
            for fl in flap_by_host.get(host, []):
                if fl["down"] - 0.3 <= t <= fl["up"] + grace_of(fl):
                    return True
            return False

        expected_n = missing_n = excluded_n = 0
        missing_examples = []
        per_host = {}
        for name, r in results.items():
            if not r:
                continue
            exp = miss = 0
            for g_s, ivs in r["intervals"].items():
                g = int(g_s)
                sender = f"h{g % N_HOSTS + 1}"
                got = set(r["received"].get(g_s, []))
                times = send_time.get(g, {})
                for tj, tl in ivs:
                    end = (tl if tl is not None else r["t_traffic_end"]) - LEAVE_MARGIN_S
                    for seq, ts in times.items():
                        if not (tj + SETTLE_S <= ts <= end):
                            continue
                        if excluded(name, ts, lambda fl: FLAP_GRACE[fl["kind"]]) or \
                                excluded(sender, ts, lambda fl: SENDER_FLAP_GRACE):
                            excluded_n += 1
                            continue
                        exp += 1
                        if seq not in got:
                            miss += 1
                            if len(missing_examples) < 8:
                                missing_examples.append(f"{name} {gaddr(g)} #{seq} sent at "
                                                        f"{ts - t_start:.1f}s (joined {tj - t_start:.1f}s)")
            per_host[name] = (exp, miss)
            expected_n += exp
            missing_n += miss
        dups = sum(r["stats"]["dups"] for r in results.values() if r)
        leaks = sum(r["leak_count"] for r in results.values() if r)
        echo = sum(r["stats"]["echo"] for r in results.values() if r)
        captured = sum(r["stats"]["captured"] for r in results.values() if r)
        in_grace = sum(r["stats"]["captured_in_grace"] for r in results.values() if r)
        leak_examples = [f"{n} {gaddr(l[0])} #{l[1]} at {l[2] - t_start:.1f}s (left {l[3] - t_start:.1f}s)"
                         if l[3] else f"{n} {gaddr(l[0])} #{l[1]} at {l[2] - t_start:.1f}s (never joined)"
                         for n, r in results.items() if r for l in r["leaks"][:3]]
        joins = sum(r["stats"]["joins"] for r in results.values() if r)
        leaves = sum(r["stats"]["leaves"] for r in results.values() if r)
        sent_total = sum(len(v) for v in send_time.values())

        checks.append(("switch alive", alive and final_status is not None and "error" not in final_status,
                       f"pid {pid}, ran {t_run:.0f}s" if alive else f"exited {sw.proc.returncode}"))
        checks.append(("multicast delivery", missing_n == 0 and expected_n > 0,
                       f"{expected_n - missing_n}/{expected_n} expected datagrams received "
                       f"({sent_total} sent, {excluded_n} in flap windows not counted)"
                       + ("; missed e.g. " + "; ".join(missing_examples[:4]) if missing_n else "")))
        checks.append(("no duplicates", dups == 0, f"{dups} datagrams received twice"))
        checks.append(("no non-member delivery", leaks == 0 and echo == 0,
                       f"{leaks} frames at non-members, {echo} echoed to their sender "
                       f"({captured} frames captured, {in_grace} within {LEAVE_GRACE_S:g}s of a leave)"
                       + ("; e.g. " + "; ".join(leak_examples[:4]) if leaks else "")))
        checks.append(("group churn", None, f"{joins} joins, {leaves} leaves by {len(results)} hosts"))
        flap_desc = ", ".join(f"{fl['host']}@{fl['kind']}" for fl in flaps[:12]) + (" ..." if len(flaps) > 12 else "")
        checks.append(("link flaps", None, f"{len(flaps)}: {flap_desc}"))

        def ping_result(p):
            out = p.stdout.read() if p.stdout else ""
            import re
            m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
            return (int(m.group(1)), int(m.group(2))) if m else (0, 0)

        tx56, rx56 = ping_result(ping56)
        tx13, rx13 = ping_result(ping13)
        checks.append(("ping h5->h6", tx56 > 0 and rx56 == tx56, f"{rx56}/{tx56} replies"))
        checks.append(("ping h1->h3 (flapping)", None, f"{rx13}/{tx13} replies"))
        try:
            with open(iperf_out) as f:
                ij = json.load(f)
            bps = ij["end"]["sum_received"]["bits_per_second"]
            iperf_ok = bps >= 0.8 * 20e6
            iperf_detail = f"{bps / 1e6:.1f} Mbit/s received (target 20), {ij['end']['sum_sent'].get('retransmits', '?')} retransmits"
        except Exception as exc:
            iperf_ok, iperf_detail = False, f"iperf3 failed: {exc}"
        checks.append(("iperf3 TCP h5->h6", iperf_ok, iperf_detail))
        checks.append(("hostile traffic", None, ", ".join(f"{k} {v}" for k, v in hostile_counts.items())))
        if isinstance(final_status, dict) and "igmp" in final_status:
            errs = final_status["igmp"].get("errors", {})
            drops = final_status.get("drops_by_reason") or {}
            contained = (polls["ok"] > 0 and polls["hx_groups_max"] <= 4096 and polls["hx_macs_max"] <= 1000
                         and polls["hx_router"] == 0 and polls["not_querier"] == 0)
            checks.append(("hostile contained", contained,
                           f"hx at most {polls['hx_groups_max']} groups (limit 4096), {polls['hx_macs_max']} MACs "
                           f"(limit 1000); router port in {polls['hx_router']} polls, switch not querier in "
                           f"{polls['not_querier']}; errors " + ", ".join(f"{k} {v}" for k, v in sorted(errs.items()))
                           + "; drops " + ", ".join(f"{k} {v}" for k, v in sorted(drops.items()))))
        checks.append(("kernel drops", None, kernel_drops))
        checks.append(("status polls", polls["failed"] == 0 and polls["ok"] > 0,
                       f"{polls['ok']} ok, {polls['failed']} failed, slowest {polls['max_s']:.2f}s, "
                       f"up to {polls['groups_max']} groups listed"))
        if rss:
            # after a warm-up (the hosts' initial joins, the hostile filling its limits), the peak
            # of the last quarter may exceed the peak of the quarter after the warm-up by 10 % / 4 MB
            vals = [v for _, v in rss]
            warm = max(30.0, duration / 4)
            base = [v for t, v in rss if warm <= t <= warm + duration / 4] or vals[: max(1, len(vals) // 2)]
            last = [v for t, v in rss if t >= duration * 3 / 4] or vals[-max(1, len(vals) // 4):]
            flat = max(last) <= max(base) + max(4096, max(base) // 10)
            checks.append(("memory (VmRSS)", flat,
                           f"first {vals[0] / 1024:.1f} MB, max {max(vals) / 1024:.1f} MB, last {vals[-1] / 1024:.1f} MB "
                           f"({len(vals)} samples; peak after warm-up {max(base) / 1024:.1f}, "
                           f"in the last quarter {max(last) / 1024:.1f})"))
        else:
            checks.append(("memory (VmRSS)", False, "no samples"))
        if alive:
            rc = lab.stop_switch()
            checks.append(("clean exit on SIGTERM", rc == 0 and not os.path.exists(sw.control),
                           f"exit {rc}, control socket {'left' if os.path.exists(sw.control) else 'removed'}"))
        switch_log = sw.log(20000)

        # ---- report -----------------------------------------------------------------
        failed = [c for c in checks if c[1] is False]
        w = max(len(c[0]) for c in checks)
        report = [f"snoopswitch soak: {args.minutes:g} min of traffic, {N_HOSTS} hosts + 1 hostile, {N_GROUPS} groups, "
                  f"{len(flaps)} link flaps; total {time.monotonic() - t_wall0:.0f}s",
                  f"{'CHECK'.ljust(w)}  RESULT  DETAIL"]
        for name, ok, detail in checks:
            res = "info" if ok is None else ("PASS" if ok else "FAIL")
            report.append(f"{name.ljust(w)}  {res.ljust(6)}  {detail}")
        report.append("per host (expected/missed): " + ", ".join(f"{n} {e}/{m}" for n, (e, m) in sorted(per_host.items())))
        report.append(f"RESULT: {'PASS' if not failed else 'FAIL (' + ', '.join(c[0] for c in failed) + ')'}")
        print()
        print("\n".join(report), flush=True)
        if failed and switch_log:
            print("--- switch log (tail) ---")
            print(switch_log[-3000:])
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            with open(os.path.join(args.keep, "switch.log"), "w") as f:
                f.write(switch_log)
            with open(os.path.join(args.keep, "report.txt"), "w") as f:
                f.write("\n".join(report) + "\n")
            with open(os.path.join(args.keep, "results.json"), "w") as f:
                json.dump({"checks": checks, "flaps": flaps, "rss": rss, "polls": polls, "t_start": t_start,
                           "hostile": hostile_counts}, f)
            for name in results:
                src = os.path.join(work, f"agent-{name}.json")
                if os.path.exists(src):
                    os.replace(src, os.path.join(args.keep, f"agent-{name}.json"))
        exit_code = 0 if not failed else 1
    finally:
        stop.set()
        for _, h, p, cfg in procs:
            if p.poll() is None:
                p.kill()
        try:
            lab.destroy()
        except Exception as exc:
            print(f"soak: cleanup: {exc}", file=sys.stderr)
    return exit_code


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "agent":
        with open(sys.argv[2]) as f:
            agent_main(json.load(f))
    elif role == "hostile":
        with open(sys.argv[2]) as f:
            hostile_main(json.load(f))
    else:
        ap = argparse.ArgumentParser()
        ap.add_argument("--lab", required=True)
        ap.add_argument("--minutes", type=float, required=True)
        ap.add_argument("--work", required=True)
        ap.add_argument("--repo", required=True)
        ap.add_argument("--keep", default="")
        ap.add_argument("--seed", type=int, default=int(time.time()))
        a = ap.parse_args(sys.argv[2:])
        sys.exit(main(a))
PYTHON_EOF

"$PYTHON" "$WORK/soak.py" main --lab "$LAB" --minutes "$MINUTES" --work "$WORK" --repo "$REPO_DIR" \
    ${KEEP:+--keep "$KEEP"} &
PY_PID=$!
set +e
wait "$PY_PID"
RC=$?
set -e
PY_PID_DONE=$PY_PID
PY_PID=""
# the python side removed its lab; cleanup() sweeps anything left and the work dir
[[ -n "$PY_PID_DONE" ]] && rm -rf /tmp/snoopswitch-it-"$PY_PID_DONE"-* 2>/dev/null
exit "$RC"
