"""The datapath: TPACKET_V2 receive rings and forwarding threads
(topologies/four-hosts.topo: h1..h4 = 192.0.2.1-4, MACs 02:00:00:00:00:01-04).

A packet port reads small frames in place from its ring (512-byte slots: about 436 bytes
of frame); larger ones (MTU-sized, 64 KB GSO frames) the kernel marks TP_STATUS_COPY and
queues whole on the socket, read in ring order. With --threads N each further thread has
its own socket on every packet port, in a PACKET_FANOUT group (a flow by the CPU the kernel
received its first frame on, rollover when a ring is full), and decides frames in the one engine;
the main thread runs the timers and is woken when a frame moved the engine's deadlines.
Without --cpus, each thread is bound to a CPU whose frames it does not take.

Delivery is checked with real sockets, byte for byte: veth leaves checksums partial, so
a datagram reaches a socket only if the switch handed the kernel a valid virtio-net
header with it.

What needs more of the kernel (kernel_features.py) is checked where it has it: egress
replication's sockets and the kernel fast path need TCX (Linux 6.6 and later), threads placed
away from their senders need BPF (the fanout steering program), the host stack filter TCX.
Elsewhere a test checks what does not need them and then skips, saying why.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import time
from collections import Counter

import pytest

import kernel_features
from lab import (
    REPO,
    binary_path,
    in_netns,
    igmp_leave,
    igmp_report,
    members,
    port_entry,
    random_marker,
    run_refused,
    sh,
    tcp_transfer,
    udp_sender_socket,
    wait_until,
)

G = "239.5.5.5"
PORT = 5020
QA = "192.0.2.254"  # the switch's querier address

# Ring slots are 512 bytes; a frame of about 436 bytes still fits, i.e. a UDP payload of
# about 394. Every payload size from well below to well above that crosses, plus small
# frames, a 1000-byte one and full MTU frames (1472 = 1500 - 20 - 8).
BOUNDARY = list(range(370, 481))
FIXED_SIZES = [0, 1, 7, 18, 64, 200, 300, *BOUNDARY, 1000, 1400, 1471, 1472]

# Flags, and how many datagrams of one flow h4 sends at a time while the switch is
# stopped (SIGSTOP), before it lets it go on and waits for their delivery (None: all of
# them at once, both flows interleaved, the switch running). The tiny ring (64 KiB: 128
# slots a socket) gets bursts of 192 frames of one flow: more than one ring holds, less
# than the kernel puts into two with rollover (a ring takes frames until it has less than
# a quarter free, the excess of a big flow goes to a socket that has more, then each ring
# fills up: 96 + 96 + 32 = 224), so they arrive only if the excess rolled over.
# The switch's own datapath: unicast flows stay with its threads (--no-kernel-fast-path), except
# in the last variant, where the kernel forwards them once the switch has decided one frame.
USERSPACE = ["--no-kernel-fast-path"]
VARIANTS = {
    "threads-1": (["--threads", "1", *USERSPACE], None),
    "threads-2": (["--threads", "2", *USERSPACE], None),
    "no-ring": (["--ring-size", "0", *USERSPACE], None),
    "threads-2-tiny-ring": (["--threads", "2", "--ring-size", "64", *USERSPACE], 192),
    # One thread per CPU this test may use, each bound to its CPU.
    "pinned": (["--cpus", ",".join(map(str, sorted(os.sched_getaffinity(0))[:2])), *USERSPACE], None),
    "kernel-fast-path": (["--threads", "2", "--kernel-fast-path-frame", "1"], None),
}


def forwarding_threads(pid: int) -> dict[str, str]:
    """The forwarding threads of process `pid` (the main one and snoopswitch/N): their /proc
    folders by name ("main", "snoopswitch/1"...)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            comm = f.read().strip()
        if int(tid) == pid or comm.startswith("snoopswitch/"):
            out["main" if int(tid) == pid else comm] = f"/proc/{pid}/task/{tid}"
    return out


def thread_cpus(pid: int) -> dict[str, str]:
    """The forwarding threads of process `pid` and the CPUs each may run on."""
    out = {}
    for name, folder in forwarding_threads(pid).items():
        with open(f"{folder}/status") as f:
            out[name] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("Cpus_allowed_list"))
    return out


# ---- helpers ------------------------------------------------------------------------
def sized_payloads(rng: random.Random, sizes: list[int]) -> list[bytes]:
    """One payload of each size: its index and size first (where they fit), then random
    bytes, so that a payload swapped, cut or altered anywhere shows."""
    out = []
    for i, n in enumerate(sizes):
        body = rng.randbytes(n)
        out.append((struct.pack("!HH", i, n) + body[4:])[:n] if n >= 4 else body)
    return out


def send_interleaved(host, streams: dict[str, list[bytes]], port: int) -> None:
    """Send each destination's payloads from one socket of its own (one flow each),
    back to back, the destinations taking turns."""
    socks = {dst: in_netns(host.ns, udp_sender_socket, host.addr) for dst in streams}
    try:
        for i in range(max(len(p) for p in streams.values())):
            for dst, payloads in streams.items():
                if i < len(payloads):
                    socks[dst].sendto(payloads[i], (dst, port))
    finally:
        for s in socks.values():
            s.close()


def delivery_problems(sent: list[bytes], got: list[bytes], ordered: bool) -> list[str]:
    """What is wrong with `got` as the delivery of `sent` (empty: all of it, intact,
    once each, and in order if `ordered`)."""
    problems = []
    missing, extra = Counter(sent) - Counter(got), Counter(got) - Counter(sent)
    known = set(sent)
    if missing:
        problems.append(f"{sum(missing.values())} of {len(sent)} missing, payload sizes "
                        f"{sorted(len(p) for p in missing.elements())}")
    foreign = [p for p in extra.elements() if p not in known]
    if foreign:
        problems.append(f"{len(foreign)} not among those sent (corrupted), sizes {sorted(len(p) for p in foreign)[:20]}")
    if sum(extra.values()) > len(foreign):
        problems.append(f"{sum(extra.values()) - len(foreign)} duplicates")
    if ordered and not problems and got != sent:
        at = next(i for i, (a, b) in enumerate(zip(got, sent)) if a != b)
        problems.append(f"out of order from position {at}: sizes sent {[len(p) for p in sent[at:at + 6]]}, "
                        f"received {[len(p) for p in got[at:at + 6]]}")
    return problems


def packet_sockets_per_port(lab, status: dict) -> dict[str, tuple[int, int]]:
    """How many AF_PACKET sockets are bound to each port's interface in the switch's
    namespace, receiving (bound to a protocol) and only sending (protocol 0)
    (/proc/net/packet lists the protocol and ifindex of each)."""

    def read():
        with open("/proc/thread-self/net/packet") as f:
            return f.read()

    by_index: dict[int, list[int]] = {}
    for line in in_netns(lab.sw_ns, read).splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5:
            counts = by_index.setdefault(int(cols[4]), [0, 0])
            counts[0 if int(cols[3], 16) else 1] += 1
    return {p["name"]: tuple(by_index.get(p["ifindex"], [0, 0])) for p in status["ports"]}


def overruns(status: dict) -> int:
    return int((status.get("drops_by_reason") or {}).get("socket_overrun", 0) or 0)


def port_counts(status: dict, names) -> dict[str, tuple[int, int]]:
    """(rx_frames, tx_frames) of each named port."""
    return {n: (port_entry(status, n)["rx_frames"], port_entry(status, n)["tx_frames"]) for n in names}


# ---- every frame size, every datapath -------------------------------------------------
@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_every_frame_size_crosses_intact(four, variant):
    """h4 sends datagrams of every size from empty to a full MTU frame (each size around
    the ring slot's limit, about 394 bytes of payload, one by one) to h3 (unicast) and to
    a group h1 and h2 joined, three times over in shuffled order, so that small frames
    read in place and large ones read from the socket's queue interleave: back to back,
    all at once (the tiny ring: in bursts of 192 of one flow into the stopped switch, see
    VARIANTS). Every receiver gets every payload once, byte for byte, and (except with the
    tiny ring, where rollover spreads a flow over two sockets) in the order sent; the
    non-member h3 gets no frame of the group. With --threads N each port has N receiving
    packet sockets and 2N that only send: N that bypass the interface's queueing layer and N
    that go through it, to the egress replication program."""
    flags, burst = VARIANTS[variant]
    sw = four.start_switch(*flags)
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    tcx = kernel_features.has("tcx")
    if "--threads" in flags and tcx:
        threads = int(flags[flags.index("--threads") + 1])
        status = sw.status()
        assert status["datapath"]["replicating_ports"] == len(four.hosts), status["datapath"]
        socks = packet_sockets_per_port(four, status)
        assert socks == {n: (threads, 2 * threads) for n in four.hosts}, \
            f"(receiving, sending) packet sockets per port with --threads {threads}: {socks}"
    if "--cpus" in flags:
        sw.status()  # answered once the threads run
        cpus = flags[flags.index("--cpus") + 1].split(",")
        want = {"main": cpus[0], **{f"snoopswitch/{i}": cpu for i, cpu in enumerate(cpus) if i > 0}}
        assert thread_cpus(sw.proc.pid) == want, f"--cpus {','.join(cpus)}: threads and their CPUs {thread_cpus(sw.proc.pid)}"

    rxs = {"h1": h1.join(G, PORT), "h2": h2.join(G, PORT), "h3": h3.receiver(None, PORT)}
    # Both ways, so that with the kernel fast path both flows are the kernel's before the test.
    assert h4.ping(h3.addr) and h3.ping(h4.addr), "h4 and h3 cannot ping each other"
    if variant == "kernel-fast-path" and tcx:
        sw.wait_status(lambda s: s["datapath"]["kernel_flows"] >= 2, what="the kernel forwarding h3's and h4's flows")
    cap3 = h3.capture()
    seed = random.getrandbits(32)
    rng = random.Random(seed)
    sizes = FIXED_SIZES + rng.sample(range(1, 1473), 8)
    sizes = [n for _ in range(3) for n in rng.sample(sizes, len(sizes))]
    sent = {h3.addr: sized_payloads(rng, sizes), G: sized_payloads(rng, sizes)}
    receivers = {h3.addr: ["h3"], G: ["h1", "h2"]}
    got: dict[str, list[bytes]] = {name: [] for name in rxs}
    if burst is None:
        send_interleaved(h4, sent, PORT)
        for dst, names in receivers.items():
            for name in names:
                got[name] += rxs[name].collect(len(sent[dst]), timeout=5)
    else:
        for i in range(0, len(sizes), burst):
            for dst, names in receivers.items():
                chunk = sent[dst][i:i + burst]
                sw.send_signal(signal.SIGSTOP)
                try:
                    send_interleaved(h4, {dst: chunk}, PORT)
                    time.sleep(0.1)  # every frame through the kernel into the rings
                finally:
                    sw.send_signal(signal.SIGCONT)
                for name in names:
                    got[name] += rxs[name].collect(len(chunk), timeout=3, settle=0.05)
    cap3.stop(settle=0.1)
    st = sw.status()
    problems = {name: delivery_problems(sent[dst], got[name], ordered=burst is None)
                for dst, names in receivers.items() for name in names}
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, (f"{variant} (seed {seed}, socket_overrun {overruns(st)}): datagrams from h4 to h3 "
                          f"(unicast) and to {G} (h1, h2): {problems}")
    leaked = cap3.to_group(G)
    assert leaked == [], f"{variant}: non-member h3 saw {len(leaked)} frames to {G}: {leaked[:3]}"
    if "--threads" in flags:
        kernel_features.require("tcx", "the replicating ports and their sending sockets (egress replication)"
                                + (", the unicast flows in the kernel (the fast path)" if variant == "kernel-fast-path" else ""))


# ---- TCP: GSO frames through the queue path -------------------------------------------
@pytest.mark.parametrize("variant", ["threads-2", "no-ring", "threads-2-tiny-ring", "kernel-fast-path"])
def test_tcp_with_default_offloads_crosses_intact(four, variant):
    """8 MB of TCP from h2 to h1 with the hosts' default offloads arrive intact (length
    and SHA-256): h2 hands its veth GSO frames far larger than a ring slot (and the MTU),
    which the switch reads from the socket's queue, while h1's ACKs fit the ring. With the
    kernel fast path the kernel carries the connection after its first frames, and the
    status counts what it forwarded."""
    sw = four.start_switch(*VARIANTS[variant][0])
    h1, h2 = four["h1"], four["h2"]
    cap = h2.capture()
    result = tcp_transfer(h1.ns, h1.addr, h2.ns, nbytes=8 << 20, port=5202, timeout=20)
    cap.stop()
    print(f"{variant}: {result}")
    st = sw.status()
    assert result.ok, f"{variant}: {result}; socket_overrun {overruns(st)}"
    biggest = max((f.orig_len for f in cap.outgoing()), default=0)
    assert biggest > 1514, f"h2 never sent a frame larger than the MTU (largest {biggest}): GSO was not exercised"
    if variant == "kernel-fast-path":
        kernel_features.require("tcx", "the connection carried by the kernel (the fast path)")
        assert st["datapath"]["kernel_flows"] >= 2, f"no kernel flows after the transfer: {st['datapath']}"
        rx = port_entry(st, "h2")["rx_bytes"]
        assert rx >= 8 << 20, f"h2's port counted {rx} bytes received of the 8 MiB the kernel forwarded"


# ---- IGMP on any thread ---------------------------------------------------------------
def test_reports_for_500_groups_are_all_learned_with_two_threads(four):
    """With --threads 2, h3's IGMPv2 reports for 500 groups (each to its group: 500 flows,
    spread over both threads' sockets) and real joins of h1 and h2 are all learned."""
    sw = four.start_switch("--threads", "2", "--igmp-rate", "100000")
    h1, h2, h3 = four["h1"], four["h2"], four["h3"]
    groups = [f"239.60.{i >> 8}.{i & 0xFF}" for i in range(1, 501)]
    h3.send_frames([igmp_report(h3.mac, h3.addr, g, version=2) for g in groups])
    h1.join("239.61.0.1", PORT)
    h2.join("239.61.0.2", PORT)

    def learned(st):
        return {g["group"] for g in st.get("groups", []) if any(m["port"] == "h3" for m in g.get("members", []))}

    try:
        sw.wait_status(lambda s: learned(s) >= set(groups), timeout=5, what="h3 member of all 500 groups")
    except AssertionError:
        st = sw.status()
        missing = sorted(set(groups) - learned(st))
        raise AssertionError(f"{len(missing)} of 500 groups not learned on h3 (e.g. {missing[:10]}); "
                             f"h3 rx_frames {port_entry(st, 'h3')['rx_frames']}, igmp {st['igmp']}, "
                             f"drops {st.get('drops_by_reason')}") from None
    st = sw.status()
    assert members(st, "239.61.0.1") == {"h1"} and members(st, "239.61.0.2") == {"h2"}
    assert len(learned(st)) == 500, f"h3 lists {len(learned(st))} groups, sent reports for 500"


def test_fast_leave_with_two_threads_prunes_at_once(four):
    """With --threads 2, a leave on a :fast-leave port removes it from the group within a
    second, whichever thread read it; the member on a normal port keeps receiving and
    the pruned port sees no more of the group."""
    sw = four.start_switch("--threads", "2", suffixes={"h2": ":fast-leave"})
    h1, h2, h4 = four["h1"], four["h2"], four["h4"]
    rx1, rx2 = h1.join(G, PORT), h2.join(G, PORT)
    marker = random_marker("before")
    sent = h4.send_udp(G, PORT, count=20, marker=marker)
    for name, rx in (("h1", rx1), ("h2", rx2)):
        got = rx.collect(20, timeout=3, marker=marker)
        assert sorted(got) == sorted(sent), f"{name} received {len(got)} of 20 before the leave"

    rx2.leave()
    sw.wait_status(lambda s: "h2" not in members(s, G), timeout=1.0,
                   what="h2 pruned within 1 s of its leave (fast leave)")
    assert "h1" in members(sw.status(), G)
    cap2 = h2.capture()
    marker = random_marker("after")
    sent = h4.send_udp(G, PORT, count=20, marker=marker)
    got = rx1.collect(20, timeout=3, marker=marker)
    assert sorted(got) == sorted(sent), f"remaining member h1 received {len(got)} of 20 after h2's leave"
    cap2.stop(settle=0.2)
    leaked = cap2.to_group(G)
    assert leaked == [], f"h2 left (fast leave) but still saw {len(leaked)} frames to {G}"


def test_leave_on_any_thread_gets_its_group_specific_queries_on_time(four):
    """With --threads 2, as querier with the default query interval (125 s: the main
    thread's next own deadline is the startup query, 31 s away), each of eight leaves
    (an IGMPv2 leave and an IGMPv3 TO_IN({}) from each host: eight flows, so that the
    other thread reads some of them) is followed by last-member-query-count
    group-specific queries, last-member-query-interval apart, and the port is pruned.
    The leaves come one at a time and nothing asks the switch anything while the
    queries are due, so the queries after the first come only if the thread that read
    the leave woke the main thread."""
    lmqi, lmqc = 0.25, 3
    sw = four.start_switch("--threads", "2", "--querier", "--querier-address", QA,
                           "--last-member-query-interval", str(lmqi), "--last-member-query-count", str(lmqc))
    caps = {h.name: h.capture() for h in four.hosts.values()}
    late = []
    for k, (host, version) in enumerate((h, v) for v in (2, 3) for h in four.hosts.values()):
        group = f"239.62.{k}.1"
        # Crafted reports: no socket of the host joins, so its kernel answers no query.
        host.send_frames([igmp_report(host.mac, host.addr, group, version=version, record_type=2)])
        sw.wait_status(lambda s: host.name in members(s, group), timeout=2,
                       what=f"{host.name} member of {group} after its v{version} report")
        time.sleep(0.2)  # the main thread back to waiting for its next deadline
        t0 = time.monotonic()
        if version == 2:
            host.send_frames([igmp_leave(host.mac, host.addr, group)])
        else:
            host.send_frames([igmp_report(host.mac, host.addr, group, version=3, record_type=3)])  # TO_IN({})
        window = (lmqc - 1) * lmqi + 0.8
        time.sleep(window)  # no status request meanwhile: it would wake the main thread
        gsq = caps[host.name].igmp(lambda m: m.is_query and m.group == group and m.ip.src == QA)
        times = [round(q.frame.time - t0, 2) for q in gsq if q.frame.time <= t0 + window]
        print(f"{host.name} v{version} {group}: group-specific queries at {times}")
        if len(times) < lmqc:
            late.append(f"{host.name} v{version} leave of {group}: {len(times)} group-specific queries within "
                        f"{window:.2f}s (at {times}), expected {lmqc}, {lmqi}s apart")
        sw.wait_status(lambda s: host.name not in members(s, group), timeout=lmqi * lmqc + 2,
                       what=f"{host.name} pruned from {group} after the unanswered queries")
    assert not late, "group-specific queries came late (main thread not woken?):\n" + "\n".join(late)


# ---- status counters --------------------------------------------------------------------
def test_status_counts_frames_of_both_threads(four):
    """With --threads 2, h4 sends 200 datagrams to a group h1 joined and 200 unicast to h3,
    each in 8 flows (a new source port each: the flows spread over both threads'
    sockets): h1's and h3's tx_frames grow by at least 200 and h4's rx_frames by at
    least 400, while h2, which gets neither, grows by far less."""
    sw = four.start_switch("--threads", "2")
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    rx1 = h1.join(G, PORT)
    rx3 = h3.receiver(None, PORT)
    assert h4.ping(h3.addr) and h3.ping(h4.addr)
    time.sleep(0.2)
    before = port_counts(sw.status(), four.hosts)
    marker = random_marker("count")
    for _ in range(8):
        h4.send_udp(G, PORT, count=25, marker=marker, interval=0)
        h4.send_udp(h3.addr, PORT, count=25, marker=marker, interval=0)
    assert len(rx1.collect(200, timeout=3, marker=marker)) == 200, "h1 did not receive all 200 group datagrams"
    assert len(rx3.collect(200, timeout=3, marker=marker)) == 200, "h3 did not receive all 200 unicast datagrams"

    def grown(st):
        now = port_counts(st, four.hosts)
        d = {n: (now[n][0] - before[n][0], now[n][1] - before[n][1]) for n in now}
        return d if d["h1"][1] >= 200 and d["h3"][1] >= 200 and d["h4"][0] >= 400 else None

    try:
        d = sw.wait_status(grown, timeout=3, what="tx_frames of h1 and h3 grown by 200, rx_frames of h4 by 400")
    except AssertionError:
        now = port_counts(sw.status(), four.hosts)
        raise AssertionError(f"(rx_frames, tx_frames) before {before}, after {now}: the switch sent 200 "
                             f"datagrams to h1 and to h3 each, and received 400 from h4") from None
    assert d["h2"][1] < 20, f"h2 got no datagram but its tx_frames grew by {d['h2'][1]}: {d}"


def thread_ticks(pid: int) -> dict[str, int]:
    """CPU time (user + system, in clock ticks) of the forwarding threads of process `pid`."""
    out = {}
    for name, folder in forwarding_threads(pid).items():
        with open(f"{folder}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out[name] = int(fields[11]) + int(fields[12])
    return out


FLOOD = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dst, payload = (sys.argv[1], int(sys.argv[2])), bytes(32)
start = time.monotonic()
for burst in range(int(float(sys.argv[3]) * 400)):   # 100 datagrams every 2.5 ms: 40,000 a second
    for _ in range(100):
        try:
            s.sendto(payload, dst)
        except OSError:
            pass
    time.sleep(max(0.0, start + (burst + 1) / 400 - time.monotonic()))
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
@kernel_features.needs("bpf", "forwarding threads bound away from the CPUs whose flows they take (fanout steering)")
def test_a_flood_is_forwarded_from_another_cpu_than_its_senders(four):
    """Without --cpus, thread i of n takes the frames the kernel receives on CPUs c with
    c % n == i (on a veth, the CPU of their sender) and is bound to a CPU whose frames it does
    not take. h1, pinned to one CPU, sends h3 40,000 small datagrams a second for 3 s (a rate
    a debug build keeps up with, so that no ring overflows into the other thread's): the
    thread bound to another CPU forwards them, the thread bound to h1's CPU does next to
    nothing, and h1 keeps its CPU. The status and the log say where each thread runs."""
    allowed = sorted(os.sched_getaffinity(0))[:2]
    # The switch inherits an affinity of two CPUs, so that its placement is known.
    mask = os.sched_getaffinity(0)
    os.sched_setaffinity(0, allowed)
    try:
        sw = four.start_switch("--threads", "2", "--no-kernel-fast-path")
    finally:
        os.sched_setaffinity(0, mask)
    bound = sw.status()["datapath"]["thread_cpus"]
    assert bound == [allowed[1], allowed[0]], f"threads bound to CPUs {bound}, expected {[allowed[1], allowed[0]]}"
    assert thread_cpus(sw.proc.pid) == {"main": str(allowed[1]), "snoopswitch/1": str(allowed[0])}
    assert f"0 on CPU {allowed[1]} (flows first seen on CPU {allowed[0]})" in sw.log() \
        and f"1 on CPU {allowed[0]} (flows first seen on CPU {allowed[1]})" in sw.log(), sw.log()
    text = sw.status_text()
    assert re.search(rf"\n  threads: +2 forwarding threads at nice -10, bound to CPUs {allowed[1]},{allowed[0]}\n", text), text
    h1, h3 = four["h1"], four["h3"]
    assert h1.ping(h3.addr) and h3.ping(h1.addr)
    sender_cpu = allowed[0]
    on_sender = "main" if bound[0] == sender_cpu else "snoopswitch/1"
    elsewhere = "snoopswitch/1" if on_sender == "main" else "main"
    before = thread_ticks(sw.proc.pid)
    h1.run("taskset", "-c", str(sender_cpu), "/usr/bin/python3", "-c", FLOOD, h3.addr, str(PORT), "3.0", timeout=20)
    after = thread_ticks(sw.proc.pid)
    used = {name: after[name] - before[name] for name in after}
    assert used[elsewhere] >= 15, f"the thread away from h1's CPU {sender_cpu} used {used[elsewhere]} ticks in 3 s: {used}"
    assert used[on_sender] * 5 <= used[elsewhere], \
        f"the thread on h1's CPU {sender_cpu} did a share of the forwarding: CPU ticks by thread {used}"


MIGRATING_SENDER = """
import os, socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dst, cpus, marker, n = (sys.argv[1], int(sys.argv[2])), [int(c) for c in sys.argv[3].split(",")], sys.argv[4].encode(), 0
for _ in range(6):
    for cpu in cpus:                      # 400 back to back on one CPU, then at once on the other
        os.sched_setaffinity(0, {cpu})
        for _ in range(400):
            s.sendto(marker + struct.pack("!I", n) + bytes(16), dst)
            n += 1
    time.sleep(0.05)
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
@pytest.mark.parametrize("flags", [[], ["--cpus", ",".join(map(str, sorted(os.sched_getaffinity(0))[:2]))]],
                         ids=["placed", "pinned"])
def test_a_sender_moving_between_cpus_keeps_its_frames_in_order(four, flags):
    """The threads share a port's frames by the CPU a flow's first frame arrives on; a sender
    that moves to another CPU mid-stream must not have its frames forwarded by two threads at
    once (IEEE 802.1Q: the frames of a destination and source pair stay in order). h1 sends
    h3 400 numbered datagrams from one CPU and, at once, 400 from the other, six times over
    (a backlog for the first thread when the second burst starts, far from a full ring): h3
    gets them in the order sent."""
    sw = four.start_switch("--threads", "2", "--no-kernel-fast-path", *flags)
    h1, h3 = four["h1"], four["h3"]
    rx = h3.receiver(None, PORT)
    assert h1.ping(h3.addr) and h3.ping(h1.addr)
    marker = random_marker("order")
    cpus = ",".join(map(str, sorted(os.sched_getaffinity(0))[:2]))
    h1.run("/usr/bin/python3", "-c", MIGRATING_SENDER, h3.addr, str(PORT), cpus, marker.decode(), timeout=30)
    got = [struct.unpack("!I", d[len(marker):len(marker) + 4])[0] for d in rx.collect(4800, timeout=5, marker=marker)]
    overruns = sw.status()["datapath"]
    assert len(got) >= 4800 * 0.95, f"h3 got {len(got)} of 4,800 datagrams ({overruns})"
    out_of_order = [(i, a, b) for i, (a, b) in enumerate(zip(got, got[1:])) if b <= a]
    assert not out_of_order, f"{len(out_of_order)} datagrams arrived after a later one, first {out_of_order[:5]}"


# ---- the host's own stack ---------------------------------------------------------------
STACK_ADDR = "192.0.2.201"  # given to the switch namespace's end of h1's veth


def _give_port_an_address(four):
    sh("ip", "-n", four.sw_ns, "addr", "add", f"{STACK_ADDR}/24", "dev", "h1")


def _take_port_address(four):
    sh("ip", "-n", four.sw_ns, "addr", "del", f"{STACK_ADDR}/24", "dev", "h1", check=False)
    for h in ("h1", "h2"):
        sh("ip", "-n", four[h].ns, "neigh", "flush", "dev", "eth0", check=False)


@kernel_features.needs("tcx", "the host stack filter")
def test_host_stack_never_sees_a_ports_frames_and_gets_them_back_when_the_switch_dies(four):
    """The switch namespace's end of h1's veth gets an address of its own. Before the switch
    runs, h1 pings it: the namespace's stack answers. While the switch runs, that stack sees
    nothing arriving on a port, as behind a bridge port: the ping goes unanswered (not even
    ARP), while h1 and h2 still reach each other through the switch, and the status says
    4 of 4 packet ports are kept from the host stack. Killed (SIGKILL, no clean-up of its
    own), the switch leaves nothing behind: the address answers again."""
    _give_port_an_address(four)
    try:
        h1, h2 = four["h1"], four["h2"]
        assert h1.ping(STACK_ADDR), "without the switch the namespace's stack should answer on h1's veth"
        sh("ip", "-n", h1.ns, "neigh", "flush", "dev", "eth0")
        sw = four.start_switch()
        dp = sw.status()["datapath"]
        assert (dp["packet_ports"], dp["host_stack_filtered_ports"]) == (4, 4), f"datapath status: {dp}"
        assert re.search(r"\n  host stack filter: +host IP stack kept off 4 of 4 packet ports\n", sw.status_text())
        assert h1.ping(h2.addr) and h2.ping(h1.addr), "forwarding broke with the host stack filter"
        assert not h1.ping(STACK_ADDR, count=2), "the switch namespace's stack answered a frame of a switch port"
        sw.stop(signal.SIGKILL)
        os.unlink(sw.control)  # stale: the next test's switch must not be taken as up before it binds
        assert wait_until(lambda: h1.ping(STACK_ADDR), timeout=5, what="the address answering after SIGKILL"), \
            "the filter outlived the switch that attached it"
    finally:
        _take_port_address(four)


def test_without_host_stack_filter_the_namespace_stack_answers_on_a_port(four):
    """--no-host-stack-filter: the stack of the switch namespace keeps its view of the port's
    frames (as before the filter existed): the address on h1's veth answers while the switch
    forwards, and the status says 0 of 4 ports are filtered."""
    _give_port_an_address(four)
    try:
        h1, h2 = four["h1"], four["h2"]
        sw = four.start_switch("--no-host-stack-filter")
        dp = sw.status()["datapath"]
        assert (dp["packet_ports"], dp["host_stack_filtered_ports"]) == (4, 0), f"datapath status: {dp}"
        assert h1.ping(h2.addr), "forwarding broke"
        assert h1.ping(STACK_ADDR), "the namespace's stack did not answer with the filter turned off"
    finally:
        _take_port_address(four)


# ---- scheduling priority ----------------------------------------------------------------
def thread_nices(pid: int) -> dict[str, int]:
    """The nice value of every thread of `pid` (field 19 of /proc/PID/task/TID/stat)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            out[f"{f.read().strip()}[{tid}]"] = int(fields[16])
    return out


@pytest.mark.parametrize("flags,nice", [([], -10), (["--nice", "0"], 0), (["--nice", "5"], 5), (["--nice", "-7"], -7)],
                         ids=["default", "nice-0", "nice-5", "nice-minus-7"])
def test_forwarding_threads_run_at_the_nice_value_asked_for(four, flags, nice):
    """By default the forwarding threads of the switch (the main one and snoopswitch/N) run
    at nice -10 (ahead of the hosts' processes, like the kernel's forwarding in softirq);
    --nice N sets N (a negative N too, written as a separate word). The status thread
    (snoopswitch-st) and the kernel fast path's (snoopswitch-fp) run at nice 0, or N if N is
    higher: they never run ahead of forwarding. The status reports the forwarding threads'
    value, and the switch forwards."""
    sw = four.start_switch("--threads", "2", *flags)
    status = sw.status()  # answered once the threads run, named
    nices = thread_nices(sw.proc.pid)
    assert len([n for n in nices if n.startswith("snoopswitch/")]) == 1, f"threads: {nices}"
    worker = {name: n for name, n in nices.items() if name.startswith(("snoopswitch-st[", "snoopswitch-fp["))}
    assert sorted(worker.values()) == [max(0, nice)] * 2, \
        f"expected the status and fast path threads at nice {max(0, nice)}: {nices}"
    forwarding = {name: n for name, n in nices.items() if name not in worker}
    assert set(forwarding.values()) == {nice}, f"expected every forwarding thread at nice {nice}: {nices}"
    assert status["datapath"]["nice"] == nice
    assert re.search(rf"forwarding threads? at nice {nice}(\n|, bound to)", sw.status_text())
    assert four["h1"].ping(four["h2"].addr)


def autogroup_nice(pid: str | int) -> int | None:
    """The nice value of the scheduling group (autogroup) of `pid`'s session; None where the
    session is init's, which has no group of its own (the kernel then shows an empty file:
    a test run started by a service manager without a session of its own, as on CI)."""
    with open(f"/proc/{pid}/autogroup") as f:
        text = f.read()
    return int(text.split("nice")[1]) if "nice" in text else None


def autogroups_enabled() -> bool:
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            return f.read().strip() == "1" and os.path.exists("/proc/self/autogroup")
    except OSError:
        return False


@contextlib.contextmanager
def own_switch(four, tag: str, args: list[str], wrapper: list[str] = (), new_session: bool = False):
    """`snoopswitch run ARGS` started by the test itself (after `wrapper`, e.g. setpriv, in a
    session of its own if asked), up once its control socket exists; yields (process, control
    socket path, log path), and stops it and removes the socket afterwards."""
    control = str(four.tmpdir / f"{tag}.sock")
    log = four.tmpdir / f"{tag}.log"
    with open(log, "wb") as out:
        p = subprocess.Popen(["ip", "netns", "exec", four.sw_ns, *wrapper, str(binary_path()), "run", *args,
                              "--control", control],
                             stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=new_session)
    try:
        wait_until(lambda: os.path.exists(control) or p.poll() is not None, timeout=15, what="the control socket")
        assert p.poll() is None, f"the switch ({args}, {wrapper}) exited: {log.read_text()}"
        yield p, control, log
    finally:
        p.terminate()
        p.wait(timeout=10)
        if os.path.exists(control):
            os.unlink(control)


@pytest.mark.skipif(not autogroups_enabled(), reason="the kernel does not group tasks by session")
def test_a_switch_leading_its_own_session_ranks_its_session_group_and_no_other(four):
    """The kernel shares the CPU evenly between sessions, whatever the nice of their threads.
    Started in a session of its own (as systemd or setsid start it), the switch sets its
    session's group to its nice value (-10 by default, --nice 3 here: 3); started from this
    test's session, it leaves that session's group as it was."""
    before = autogroup_nice("self")
    four.start_switch()
    assert autogroup_nice("self") == before, "a switch in the test's session changed that session's group"
    four.stop_switch()
    for flags, nice in (([], -10), (["--nice", "3"], 3)):
        with own_switch(four, f"own-session{nice}", ["--port", "h1", *flags], new_session=True) as (p, _, _):
            assert os.getsid(p.pid) == p.pid, "test assumption: the switch leads its session"
            assert autogroup_nice(p.pid) == nice, f"session group of a switch run with {flags or 'defaults'}"
    assert autogroup_nice("self") == before


def unit_capabilities() -> list[str]:
    """The capabilities contrib/snoopswitch.service bounds the service to, as setpriv names them."""
    unit = REPO / "contrib" / "snoopswitch.service"
    line = next(l for l in unit.read_text().splitlines() if l.startswith("CapabilityBoundingSet="))
    return [c.removeprefix("CAP_").lower() for c in line.split("=", 1)[1].split()]


def run_with_capabilities(four, caps: list[str], tag: str) -> tuple[dict, str]:
    """Runs the switch on h1 and h2 with only `caps` (setpriv's bounding set, as systemd's
    CapabilityBoundingSet does); returns its status and its log."""
    wrapper = ["setpriv", "--bounding-set=-all," + ",".join("+" + c for c in caps)]
    with own_switch(four, f"caps-{tag}", ["--port", "h1", "--port", "h2"], wrapper=wrapper) as (_, control, log):
        r = subprocess.run([str(binary_path()), "status", "--control", control, "--json"],
                           capture_output=True, text=True, timeout=5, check=True)
        assert four["h1"].ping(four["h2"].addr), f"no forwarding with {caps}"
        return json.loads(r.stdout), log.read_text()


def test_the_service_units_capabilities_suffice_and_without_them_the_switch_falls_back(four):
    """With only the capabilities contrib/snoopswitch.service grants, the switch runs as by
    default: nice -10, both ports kept from the host stack, on the kernel fast path and
    replicating on egress, no warning. Without CAP_SYS_NICE and CAP_BPF it still forwards, at
    nice 0 with no filter, no fast path and no replication, its threads sharing the ports'
    frames by flow hash where the scheduler puts them, and says why in one warning each.
    Where the kernel has no TCX or refuses BPF, what needs them is left out with the unit's
    capabilities too (the test skips at its end)."""
    caps = unit_capabilities()
    assert {"sys_nice", "bpf", "net_raw", "net_admin"} <= set(caps), f"unit capabilities: {caps}"
    status, log = run_with_capabilities(four, caps, "unit")
    dp = status["datapath"]
    assert (dp["nice"], dp["packet_ports"]) == (-10, 2), f"{dp}\n{log}"
    kernel_has_all = kernel_features.has("bpf") and kernel_features.has("tcx")
    if kernel_features.has("tcx"):
        assert (dp["host_stack_filtered_ports"], dp["fast_path_ports"], dp["replicating_ports"]) == (2, 2, 2), \
            f"{dp}\n{log}"
    if dp["threads"] > 1 and kernel_features.has("bpf"):
        assert None not in dp["thread_cpus"], f"threads not bound away from their senders: {dp}\n{log}"
    if kernel_has_all:
        assert "warning" not in log, log
    fewer = [c for c in caps if c not in ("sys_nice", "bpf")]
    status, log = run_with_capabilities(four, fewer, "fewer")
    dp = status["datapath"]
    assert (dp["nice"], dp["host_stack_filtered_ports"], dp["fast_path_ports"], dp["replicating_ports"]) == (0, 0, 0, 0), \
        f"{dp}\n{log}"
    warnings = [l for l in log.splitlines() if "warning" in l]
    if dp["threads"] > 1:
        assert dp["thread_cpus"] == [None] * dp["threads"], f"{dp}\n{log}"
        assert len(warnings) == 5 and "flow hash" in warnings[1], log
        del warnings[1]
    assert len(warnings) == 4 and "nice -10" in warnings[0] and "fast path" in warnings[1] \
        and "egress replication" in warnings[2] and "TCX" in warnings[3], log
    kernel_features.require("bpf", "the unit's capabilities giving the fanout steering program")
    kernel_features.require("tcx", "the unit's capabilities giving the host stack filter, the kernel fast path "
                                   "and egress replication")


# ---- bad values -------------------------------------------------------------------------
BAD = {
    "threads-0": (["--threads", "0"], "--threads"),
    "threads-65": (["--threads", "65"], "--threads"),
    "ring-size-negative": (["--ring-size=-1"], "--ring-size"),
    "cpus-unknown": (["--cpus", "4095"], "--cpus"),
    "cpus-twice": (["--cpus", "0,0"], "--cpus"),
    "cpus-garbage": (["--cpus", "0-"], "--cpus"),
    "nice-20": (["--nice", "20"], "--nice"),
    "nice-below": (["--nice=-21"], "--nice"),
    "nice-word": (["--nice", "high"], "--nice"),
    "fast-path-frame-0": (["--kernel-fast-path-frame", "0"], "--kernel-fast-path-frame"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_thread_or_ring_value_is_refused_with_one_line(four, case):
    """--threads 0, --threads 65, --ring-size=-1, a CPU the switch may not use, one listed
    twice, a bad range, a nice value out of -20..19 or not a number: a non-zero exit, one line on stderr
    naming the flag, and no control socket."""
    args, flag = BAD[case]
    rc, err, seen = run_refused(four, ["--port", "h1", *args], case)
    assert rc != 0, f"exit code 0 for {args}"
    lines = err.rstrip("\n").split("\n")
    assert err.strip() and len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert flag in err, f"the refusal does not name {flag}: {err.strip()!r}"
    assert not seen, "the control socket was created although the command line was bad"
