"""The central cases through libpcap ports (`--port NAME:pcap`, topologies/four-hosts.topo).

libpcap gives the switch no virtio-net header: it must finish partial checksums and segment
GSO frames in software, so a joined socket receives the group's datagrams and TCP with the
hosts' default offloads completes. Every switch here is started with ":pcap" appended to each
port spec (the harness's port_suffix; SNOOPSWITCH_PORT_SUFFIX=":pcap" does the same for the
whole suite).
"""

from __future__ import annotations

import itertools
import subprocess
import time

import pytest

from lab import members, random_marker, tcp_transfer

PCAP = ":pcap"
G = "239.10.10.10"
PORT = 5100
TCP_BYTES = 8 << 20


def packet_rings(pid: int) -> int:
    """Memory-mapped packet socket rings of a process (libpcap on Linux always reads through
    a TPACKET ring; the switch's own AF_PACKET ports do not map one)."""
    with open(f"/proc/{pid}/maps") as f:
        return sum(1 for line in f if line.rstrip().endswith("]") and " socket:[" in line)


def start(lab, *flags, **kw):
    sw = lab.start_switch(*flags, port_suffix=PCAP, **kw)
    specs = [sw.args[i + 1] for i, a in enumerate(sw.args) if a == "--port"]
    assert specs and all(spec.endswith(PCAP) for spec in specs), sw.args
    rings = packet_rings(sw.proc.pid)
    assert rings >= len(sw.status()["ports"]), \
        f"the switch maps {rings} packet rings for {len(sw.status()['ports'])} ports: are its ports really libpcap ports?"
    return sw


def test_pcap_member_receives_non_member_sees_nothing(four):
    """Through :pcap ports, h1 (joined) receives 20/20 of h4's datagrams to G with a
    socket (so their UDP checksums were finished), while non-members h2 and h3 capture
    no frame of G."""
    sw = start(four)
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    rx = h1.join(G, PORT)
    assert members(sw.status(), G) == {"h1"}
    caps = {h.name: h.capture() for h in (h2, h3)}
    marker = random_marker("pcap")
    sent = h4.send_udp(G, PORT, count=20, marker=marker)
    got = rx.collect(20, timeout=5, marker=marker)
    assert sorted(got) == sorted(sent), f"h1 received {len(got)} of 20 datagrams through :pcap ports"
    for name, cap in caps.items():
        cap.stop(settle=0.3)
        frames = cap.to_group(G)
        assert frames == [], f"non-member {name} saw {len(frames)} frames to {G}: {frames[:3]}"


def test_pcap_ping_between_all_hosts(four):
    """Every host pings every other host through :pcap ports."""
    start(four)
    procs = []
    for a, b in itertools.permutations(four.hosts.values(), 2):
        p = a.popen("ping", "-c", "2", "-i", "0.2", "-W", "2", "-q", b.addr,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append((a.name, b.name, p))
    failed = []
    for a, b, p in procs:
        out, _ = p.communicate(timeout=20)
        if p.returncode != 0:
            failed.append(f"{a} -> {b}: {out.strip().splitlines()[-2:]}")
    assert not failed, "pings failed through :pcap ports:\n" + "\n".join(failed)


def test_pcap_tcp_with_default_offloads(four):
    """8 MB of TCP from h2 to h1 and from h1 to h3 arrive intact through :pcap ports with
    the hosts' default offloads: the senders hand their veths GSO frames above the MTU with
    partial checksums, which the switch must segment and finish in software."""
    start(four)
    h1, h2, h3 = four["h1"], four["h2"], four["h3"]
    cap = h2.capture()
    r1 = tcp_transfer(h1.ns, h1.addr, h2.ns, TCP_BYTES, port=5211, timeout=30)
    assert r1.ok, f"TCP h2 -> h1 through :pcap ports: {r1}"
    r2 = tcp_transfer(h3.ns, h3.addr, h1.ns, TCP_BYTES, port=5212, timeout=30)
    assert r2.ok, f"TCP h1 -> h3 through :pcap ports: {r2}"
    cap.stop()
    biggest = max((f.orig_len for f in cap.outgoing()), default=0)
    print(f"h2 -> h1: {r1}; h1 -> h3: {r2}; largest frame h2 sent: {biggest}")
    assert biggest > 1514, "h2 never sent a frame larger than the MTU: GSO was not exercised"


@pytest.mark.parametrize("host_igmp", [2, 3], ids=["v2-leave", "v3-to-in-empty"])
def test_pcap_fast_leave_stops_delivery(four, host_igmp):
    """On a :fast-leave:pcap port, h2's leave prunes it at once: h2's wire gets no frame of
    G afterwards while h1 (still joined, normal port) receives 20/20."""
    h1, h2, h4 = four["h1"], four["h2"], four["h4"]
    for h in (h1, h2):
        h.igmp_version(host_igmp)
    sw = start(four, suffixes={"h2": ":fast-leave"})
    rx1 = h1.join(G, PORT)
    rx2 = h2.join(G, PORT)
    marker = random_marker("before")
    sent = h4.send_udp(G, PORT, count=20, marker=marker)
    assert sorted(rx2.collect(20, timeout=5, marker=marker)) == sorted(sent), "h2 did not receive before leaving"
    assert len(rx1.collect(20, timeout=5, marker=marker)) == 20
    t0 = time.monotonic()
    rx2.leave()
    sw.wait_status(lambda s: "h2" not in members(s, G), timeout=1.5,
                   what="h2 pruned within 1.5 s of its leave (fast leave, :pcap port)")
    took = time.monotonic() - t0
    cap = h2.capture()
    marker = random_marker("after")
    sent = h4.send_udp(G, PORT, count=20, marker=marker)
    got = rx1.collect(20, timeout=5, marker=marker)
    assert sorted(got) == sorted(sent), f"remaining member h1 received {len(got)} of 20"
    cap.stop(settle=0.3)
    leaked = cap.to_group(G)
    assert leaked == [], f"h2 left (pruned after {took:.2f}s) but still saw {len(leaked)} frames to {G}"


def test_pcap_suffix_reaches_the_port_specs(four, monkeypatch):
    """The harness's switch: port_suffix=":pcap" and $SNOOPSWITCH_PORT_SUFFIX append the
    suffix to every port spec (after the host's own), and nothing is appended by default."""
    monkeypatch.delenv("SNOOPSWITCH_PORT_SUFFIX", raising=False)
    assert four.port_specs({"h2": ":fast-leave"}, only=["h1", "h2"]) == ["--port", "h1", "--port", "h2:fast-leave"]
    assert four.port_specs({"h2": ":fast-leave"}, only=["h1", "h2"], port_suffix=PCAP) == \
        ["--port", "h1:pcap", "--port", "h2:fast-leave:pcap"]
    monkeypatch.setenv("SNOOPSWITCH_PORT_SUFFIX", PCAP)
    assert four.port_specs(only=["h1"]) == ["--port", "h1:pcap"]
    assert four.port_specs(only=["h1"], port_suffix="") == ["--port", "h1"]
