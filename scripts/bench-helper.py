#!/usr/bin/python3
"""Helpers for scripts/bench.sh: real socket joins (IPv4 and IPv6), join/leave latency from
one capture, IGMP report floods, CPU time, status parsing and the result table.

Runs with Debian's /usr/bin/python3 and its standard library only.
"""
import argparse
import ipaddress
import json
import os
import signal
import socket
import statistics
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35          # Linux asm-generic; not exported by Python's socket module
IP_ADD_MEMBERSHIP = 35
IP_DROP_MEMBERSHIP = 36


def ifindex(name):
    return socket.if_nametoindex(name)


def mreqn(group, iface):
    return struct.pack("4s4si", socket.inet_aton(group), socket.inet_aton("0.0.0.0"), ifindex(iface))


# ---------------------------------------------------------------- joins

def cmd_hold_join(args):
    """Join GROUP on IFACE with a real socket and hold it until SIGTERM: an IPv4 group with
    IP_ADD_MEMBERSHIP (an IGMP report), an IPv6 one with IPV6_JOIN_GROUP (an MLD report)."""
    if ":" in args.group:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        mreq = socket.inet_pton(socket.AF_INET6, args.group) + struct.pack("@I", ifindex(args.iface))
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IP, IP_ADD_MEMBERSHIP, mreqn(args.group, args.iface))
    print("joined", args.group, flush=True)
    # bench.sh stops it with SIGINT first, which a background job of a script starts ignoring.
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


# ---------------------------------------------------------------- latency

class Capture:
    """A packet socket on one interface that sees the host's own transmissions too, with
    kernel timestamps (one clock for both directions)."""

    def __init__(self, iface):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.bind((iface, 0))

    def read(self, until):
        """Yields (timestamp, outgoing, frame) until the monotonic deadline `until`."""
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                data, anc, _flags, addr = self.sock.recvmsg(2048, 64)
            except socket.timeout:
                return
            stamp = None
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", raw[:16])
                    stamp = sec + nsec / 1e9
            if stamp is None:
                stamp = time.time()
            yield stamp, addr[2] == PACKET_OUTGOING, data


def ipv4(frame):
    """(protocol, destination, payload) of an untagged IPv4 frame, or None."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 0x0F) * 4
    return frame[23], socket.inet_ntoa(frame[30:34]), frame[14 + ihl:]


def igmp_events(payload):
    """[(kind, group)] with kind 'join' or 'leave' for each group an IGMP message reports."""
    if len(payload) < 8:
        return []
    kind = payload[0]
    if kind in (0x12, 0x16):
        return [("join", socket.inet_ntoa(payload[4:8]))]
    if kind == 0x17:
        return [("leave", socket.inet_ntoa(payload[4:8]))]
    if kind != 0x22:
        return []
    events = []
    count = struct.unpack("!H", payload[6:8])[0]
    offset = 8
    for _ in range(count):
        if offset + 8 > len(payload):
            break
        rtype, aux, nsrc = payload[offset], payload[offset + 1], struct.unpack("!H", payload[offset + 2:offset + 4])[0]
        group = socket.inet_ntoa(payload[offset + 4:offset + 8])
        if rtype in (2, 4) or (rtype in (1, 5) and nsrc > 0):
            events.append(("join", group))
        elif rtype in (1, 3) and nsrc == 0:
            events.append(("leave", group))
        offset += 8 + 4 * nsrc + 4 * aux
    return events


def cmd_latency(args):
    """Trials of: listen (no group traffic expected), join, first group datagram, leave, last
    group datagram. Times are kernel capture timestamps on the member's interface."""
    cap = Capture(args.iface)
    results = {"join_ms": [], "leave_ms": [], "problems": []}

    def classify(frame, outgoing):
        parsed = ipv4(frame)
        if parsed is None:
            return None, None
        proto, dst, payload = parsed
        if outgoing and proto == 2:
            for kind, group in igmp_events(payload):
                if group == args.group:
                    return kind, None
            return None, None
        if not outgoing and proto == 17 and dst == args.group:
            return "data", None
        return None, None

    for trial in range(args.trials):
        # Quiet period: the group is not joined, so none of its traffic may arrive.
        list(cap.read(time.monotonic() + 0.05))     # drain
        stray = sum(1 for _t, out, f in cap.read(time.monotonic() + args.pre) if classify(f, out)[0] == "data")
        if stray:
            results["problems"].append(f"trial {trial}: {stray} group frames arrived before the join (flooded)")
            list(cap.read(time.monotonic() + args.between))
            continue

        member = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        member.setsockopt(socket.IPPROTO_IP, IP_ADD_MEMBERSHIP, mreqn(args.group, args.iface))
        t_report = t_first = None
        for stamp, out, frame in cap.read(time.monotonic() + args.window):
            kind, _ = classify(frame, out)
            if kind == "join" and t_report is None:
                t_report = stamp
            elif kind == "data" and t_report is not None and t_first is None:
                t_first = stamp
        if t_report is None:
            results["problems"].append(f"trial {trial}: no report seen leaving the member")
        elif t_first is None:
            results["problems"].append(f"trial {trial}: no group frame within {args.window * 1000:.0f} ms of the report")
        else:
            results["join_ms"].append((t_first - t_report) * 1000)

        member.setsockopt(socket.IPPROTO_IP, IP_DROP_MEMBERSHIP, mreqn(args.group, args.iface))
        member.close()
        t_leave = t_last = None
        deadline = time.monotonic() + args.window
        for stamp, out, frame in cap.read(deadline):
            kind, _ = classify(frame, out)
            if kind == "leave" and t_leave is None:
                t_leave = stamp
            elif kind == "data":
                t_last = stamp
        if t_leave is None:
            results["problems"].append(f"trial {trial}: no leave seen leaving the member")
        elif t_last is not None and t_last - t_leave > args.window - 0.1:
            results["problems"].append(f"trial {trial}: group frames still arriving {args.window * 1000:.0f} ms after the leave")
        else:
            # No frame at all after the leave: pruned at once (0).
            results["leave_ms"].append(max(0.0, (t_last - t_leave) * 1000) if t_last is not None else 0.0)
        list(cap.read(time.monotonic() + args.between))

    for key in ("join_ms", "leave_ms"):
        values = results[key]
        results[key + "_median"] = statistics.median(values) if values else None
    print(json.dumps(results))


# ---------------------------------------------------------------- report flood

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def send_raw(iface, frames, burst=200, pause=0.002):
    """Sends Ethernet frames out of IFACE through a packet socket, waiting where its buffer is
    full and pausing after every BURST frames; frames is a function of this host's MAC that
    yields them. Returns how many were sent."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((iface, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    with open(f"/sys/class/net/{iface}/address") as f:
        own = bytes.fromhex(f.read().strip().replace(":", ""))
    sent = 0
    for frame in frames(own):
        while True:
            try:
                sock.send(frame)
                break
            except BlockingIOError:
                time.sleep(0.001)
        sent += 1
        if sent % burst == 0:
            time.sleep(pause)
    return sent


def cmd_source_macs(args):
    """One frame from each source MAC listed in FILE (one a line), to this host's own MAC:
    the switch learns every address and forwards nothing."""
    def frames(own):
        with open(args.file) as f:
            for line in f:
                src = bytes.fromhex(line.strip().replace(":", ""))
                yield own + src + b"\x88\xb5" + bytes(46)   # local experimental EtherType
    print(send_raw(args.iface, frames))


def cmd_reports(args):
    """IGMPv2 membership reports for COUNT consecutive groups from BASE, from this host."""
    src_ip = socket.inet_aton(args.source)
    base = struct.unpack("!I", socket.inet_aton(args.base))[0]

    def frames(src_mac):
        for i in range(args.count):
            group = struct.pack("!I", base + i)
            mac = b"\x01\x00\x5e" + bytes([group[1] & 0x7F, group[2], group[3]])
            igmp = bytearray(b"\x16\x00\x00\x00" + group)
            struct.pack_into("!H", igmp, 2, checksum(bytes(igmp)))
            ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x46, 0xC0, 32, i & 0xFFFF, 0, 1, 2, 0, src_ip, group)
                           + b"\x94\x04\x00\x00")
            struct.pack_into("!H", ip, 10, checksum(bytes(ip)))
            yield mac + src_mac + b"\x08\x00" + bytes(ip) + bytes(igmp)
    print(send_raw(args.iface, frames, burst=args.burst, pause=args.pause))


def cmd_ipv6_bytes(args):
    """An IPv6 address as trafgen's comma-separated bytes."""
    print(", ".join(f"0x{b:02x}" for b in ipaddress.IPv6Address(args.address).packed))


# ---------------------------------------------------------------- status parsing

def same_address(text, group):
    """Whether TEXT names the address GROUP (IPv6 has several spellings of one address)."""
    try:
        return ipaddress.ip_address(str(text).split("%")[0]) == group
    except ValueError:
        return False


def cmd_members(args):
    """Members of GROUP from a switch's own view, read on stdin."""
    text = sys.stdin.read()
    group = ipaddress.ip_address(args.group)
    if args.kind == "snoopswitch":
        doc = json.loads(text)
        # Groups of either family: every top-level list of group objects ("groups", and any
        # list an IPv6 table is kept in apart).
        n = sum(len(g.get("members") or []) for key, rows in doc.items() if isinstance(rows, list)
                for g in rows if isinstance(g, dict) and same_address(g.get("group"), group))
    elif args.kind == "bridge":
        doc = json.loads(text or "[]")
        n = sum(1 for block in doc for e in block.get("mdb", []) if same_address(e.get("grp"), group))
    else:  # ovs-appctl mdb/show: " port  VLAN  GROUP  Age"
        n = sum(1 for line in text.splitlines() if any(same_address(w, group) for w in line.split()))
    print(n)


def cmd_groups(_args):
    doc = json.loads(sys.stdin.read())
    print(len(doc.get("groups") or []))


# ---------------------------------------------------------------- CPU

def cpu_ns(pid):
    """CPU time of every thread of `pid`, in ns (schedstat), or from /proc/PID/stat ticks."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        return total
    except (OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def cmd_cpu(args):
    """Percent of one core used by PID over SECONDS."""
    start_cpu, start = cpu_ns(args.pid), time.monotonic()
    time.sleep(args.seconds)
    used, elapsed = cpu_ns(args.pid) - start_cpu, time.monotonic() - start
    print(f"{100.0 * used / (elapsed * 1e9):.3f}")


# ---------------------------------------------------------------- table

FIGURES = [
    # key, label, unit, better, target text, target check (ratio vs bridge or absolute)
    ("uc_rate", "64-byte unicast, frames/s delivered (generator on one core)", "rate", "higher", "1.5x bridge"),
    ("mc_rate", "64-byte multicast to 3 members, frames/s delivered (sum)", "rate", "higher", "1.5x bridge"),
    ("mc6_rate", "64-byte IPv6 multicast to 3 members, frames/s delivered (sum)", "rate", "higher", "1.5x bridge"),
    ("tcp", "TCP between two hosts, default offloads (iperf3), Gbit/s", "gbit", "higher", "0.8x bridge"),
    ("join_ms", "report -> first forwarded frame, median ms", "ms", "lower", "< 1 ms"),
    ("leave_ms", "leave on a fast-leave port -> last forwarded frame, median ms", "ms", "lower", "< 5 ms"),
    ("mem_mib", "resident memory with 100,000 groups learned, MiB", "mib", "lower", "< 64 MiB"),
    ("cpu_idle", "CPU with no traffic, % of one core", "pct", "lower", "near 0"),
    ("hash_flood", "64-byte unicast with 8,192 colliding source MACs learned from another host, % of the rate without", "pct", "higher", "> 90 %"),
    ("uc_gen", "  generator sent during the unicast run, frames/s", "rate", "info", ""),
    ("mc_gen", "  generator sent during the multicast run, frames/s", "rate", "info", ""),
    ("mc6_gen", "  generator sent during the IPv6 multicast run, frames/s", "rate", "info", ""),
    ("mc_stray", "  frames at the 2 hosts that joined nothing during the multicast run, frames/s (pruned: about 0)", "rate", "info", ""),
    ("mc6_stray", "  frames at the 2 hosts that joined nothing during the IPv6 multicast run, frames/s (pruned: about 0)", "rate", "info", ""),
]
# A multicast figure whose frames also reached the hosts that joined nothing at this fraction of
# the members' rate or more was flooded, not snooped: its verdict says so whatever its rate.
FLOODED = 0.01
COLUMNS = [("snoopswitch", "snoopswitch"), ("bridge", "kernel bridge"), ("ovs", "OVS userspace")]


def fmt(value, unit):
    if value is None:
        return "n/a"
    if unit == "rate":
        return f"{value:,.0f}"
    if unit == "gbit":
        return f"{value:.2f}"
    if unit in ("ms",):
        return f"{value:.3f}"
    if unit == "mib":
        return f"{value:.1f}"
    if unit == "pct":
        return f"{value:.2f}"
    return str(value)


def verdict(key, values):
    ours, bridge = values.get(("snoopswitch", key)), values.get(("bridge", key))
    if key.endswith("_gen") or key.endswith("_stray"):
        return None
    if ours is None:
        return "not measured"
    if key in ("mc_rate", "mc6_rate"):
        stray = values.get(("snoopswitch", key[:-len("_rate")] + "_stray"))
        if stray is not None and stray >= FLOODED * max(ours / 3, 1):
            return "MISSED: flooded to the hosts that joined nothing"
    if key in ("uc_rate", "mc_rate", "mc6_rate"):
        return None if bridge in (None, 0) else ("met" if ours / bridge >= 1.5 else "MISSED")
    if key == "tcp":
        return None if bridge in (None, 0) else ("met" if ours / bridge >= 0.8 else "MISSED")
    if key == "join_ms":
        return "met" if ours < 1 else "MISSED"
    if key == "leave_ms":
        return "met" if ours < 5 else "MISSED"
    if key == "mem_mib":
        return "met" if ours < 64 else "MISSED"
    if key == "cpu_idle":
        return "met" if ours < 1 else "MISSED"
    if key == "hash_flood":
        return "met" if ours > 90 else "MISSED"
    return None


def round_notes(rounds):
    """One line per frame-rate figure measured in more than one round: each round's figures and
    snoopswitch's ratio to the bridge in that round."""
    lines = []
    for key, label, unit, better, _target in FIGURES:
        if unit != "rate" or better == "info":
            continue
        ours, bridge = rounds.get(("snoopswitch", key), []), rounds.get(("bridge", key), [])
        if max(len(ours), len(bridge)) < 2:
            continue
        parts = []
        for i in range(max(len(ours), len(bridge))):
            a = ours[i] if i < len(ours) else None
            b = bridge[i] if i < len(bridge) else None
            ratio = f" = {a / b:.2f}x" if a is not None and b else ""
            parts.append(f"{fmt(a, unit)} / {fmt(b, unit)}{ratio}")
        ratios = sorted(a / b for a, b in zip(ours, bridge) if a is not None and b)
        paired = f" (the median of the rounds' own ratios: {statistics.median(ratios):.2f}x)" if ratios else ""
        lines.append(f"{label.split(',')[0]}, snoopswitch / bridge by round: " + "; ".join(parts) + paired)
    return lines


def cmd_table(args):
    values, notes, rounds = {}, [], {}
    with open(args.results) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            kind, rest = line.split("|", 1)
            if kind == "note":
                notes.append(rest)
                continue
            column, key, value = rest.split("|", 2)
            rounds.setdefault((column, key), []).append(None if value in ("", "n/a") else float(value))
    # A figure measured in several rounds is their median (rounds without a figure left out).
    for where, measured in rounds.items():
        present = [v for v in measured if v is not None]
        values[where] = statistics.median(present) if present else None
    notes += round_notes(rounds)

    def ratio(key, peer):
        ours, theirs = values.get(("snoopswitch", key)), values.get((peer, key))
        if ours is None or theirs is None:
            return "n/a"
        if theirs == 0:
            return "inf" if ours > 0 else "n/a"
        return f"{ours / theirs:.2f}x"

    header = ["figure"] + [name for _c, name in COLUMNS] + ["snoopswitch / bridge", "snoopswitch / OVS", "target", "verdict"]
    rows = []
    for key, label, unit, better, target in FIGURES:
        if not any((c, key) in rounds for c, _n in COLUMNS):
            continue            # a figure this run did not set out to measure (--figures, --only)
        row = [label] + [fmt(values.get((c, key)), unit) for c, _n in COLUMNS]
        row += ["", "", target] if better == "info" else [ratio(key, "bridge"), ratio(key, "ovs"), target]
        row.append(verdict(key, values) or "")
        rows.append(row)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(args.title + "\n\n" + text)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("hold-join"); p.add_argument("iface"); p.add_argument("group"); p.set_defaults(fn=cmd_hold_join)
    p = sub.add_parser("latency"); p.add_argument("iface"); p.add_argument("group")
    p.add_argument("--trials", type=int, default=5); p.add_argument("--pre", type=float, default=0.2)
    p.add_argument("--window", type=float, default=0.5); p.add_argument("--between", type=float, default=1.0)
    p.set_defaults(fn=cmd_latency)
    p = sub.add_parser("reports"); p.add_argument("iface"); p.add_argument("count", type=int)
    p.add_argument("base"); p.add_argument("source"); p.add_argument("--burst", type=int, default=200)
    p.add_argument("--pause", type=float, default=0.002); p.set_defaults(fn=cmd_reports)
    p = sub.add_parser("source-macs"); p.add_argument("iface"); p.add_argument("file"); p.set_defaults(fn=cmd_source_macs)
    p = sub.add_parser("members"); p.add_argument("kind"); p.add_argument("group"); p.set_defaults(fn=cmd_members)
    p = sub.add_parser("groups"); p.set_defaults(fn=cmd_groups)
    p = sub.add_parser("ipv6-bytes"); p.add_argument("address"); p.set_defaults(fn=cmd_ipv6_bytes)
    p = sub.add_parser("cpu"); p.add_argument("pid", type=int); p.add_argument("seconds", type=float); p.set_defaults(fn=cmd_cpu)
    p = sub.add_parser("table"); p.add_argument("results"); p.add_argument("--out"); p.add_argument("--title", default="")
    p.set_defaults(fn=cmd_table)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
