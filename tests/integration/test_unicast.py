"""Unicast bridging (topologies/four-hosts.topo): MAC learning, flooding of unknown
unicast and broadcast, and bulk TCP with the hosts' default offloads (partial
checksums, GSO frames far larger than the MTU)."""

from __future__ import annotations

import hashlib
import itertools
import socket
import subprocess
import threading
import time

from lab import in_netns, macs, random_marker, udp_frame

TCP_BYTES = 20 * 1024 * 1024


def test_ping_between_all_hosts(four):
    """Every host reaches every other host (ARP broadcast is flooded, replies are
    forwarded by learned MAC)."""
    four.start_switch()
    hosts = list(four.hosts.values())
    procs = []
    for a, b in itertools.permutations(hosts, 2):
        p = a.popen("ping", "-c", "2", "-i", "0.2", "-W", "2", "-q", b.addr,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append((a.name, b.name, p))
    failed = []
    for a, b, p in procs:
        out, _ = p.communicate(timeout=15)
        if p.returncode != 0:
            failed.append(f"{a} -> {b}: {out.strip().splitlines()[-2:]}")
    assert not failed, "pings failed:\n" + "\n".join(failed)


def test_mac_table_lists_each_host_on_its_port(four):
    """After traffic, the status MAC table holds each host's MAC on VLAN 1 at the port
    named after the host."""
    sw = four.start_switch()
    for h in four.hosts.values():
        other = four["h1"] if h.name != "h1" else four["h2"]
        assert h.ping(other.addr), f"{h.name} cannot ping {other.name}"
    expected = {(1, h.mac): h.name for h in four.hosts.values()}

    def table_ok(st):
        table = macs(st)
        return all(table.get(k) == v for k, v in expected.items())

    sw.wait_status(table_ok, timeout=3, what="MAC table with h1..h4 on their ports")
    for entry in sw.status()["macs"]:
        if (entry["vlan"], entry["mac"].lower()) in expected:
            assert entry["age_seconds"] >= 0


def test_unknown_unicast_is_flooded_known_unicast_is_not(four):
    """A frame to a MAC the switch has not learned goes to every other port of the VLAN;
    once the destination is learned, unicast goes to its port only."""
    four.start_switch()
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    caps = {h.name: h.capture() for h in (h1, h2, h3)}
    marker = random_marker("unknown")
    h4.send_frames([udp_frame(h4.mac, "02:00:00:00:00:99", h4.addr, "192.0.2.99", 7, marker)])
    for name, cap in caps.items():
        cap.wait_for(lambda f: marker in f.data, timeout=3, what="flooded unknown unicast")
    # Learn h2 (it talks), then unicast from h4 to h2 must not show up at h1 or h3.
    assert h2.ping(h4.addr) and h4.ping(h2.addr)
    rx = h2.receiver(None, 5005)
    marker2 = random_marker("known")
    sent = h4.send_udp(h2.addr, 5005, count=10, marker=marker2)
    got = rx.collect(10, timeout=3, marker=marker2)
    assert sorted(got) == sorted(sent)
    for name in ("h1", "h3"):
        caps[name].stop(settle=0.1)
        leaked = caps[name].with_marker(marker2)
        assert leaked == [], f"{name} saw {len(leaked)} frames of unicast h4 -> h2"


def test_tcp_bulk_transfer_with_default_offloads(four):
    """20 MB of TCP from h2 to h1 arrive intact with the hosts' default offloads: the
    sender hands its veth GSO frames larger than the MTU with partial checksums,
    and the switch must deliver them so that the receiving kernel accepts them."""
    four.start_switch()
    h1, h2 = four["h1"], four["h2"]
    port = 5201

    def listen():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((h1.addr, port))
        s.listen(1)
        s.settimeout(15)
        return s

    def connect():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(15)
        s.connect((h1.addr, port))
        return s

    srv = in_netns(h1.ns, listen)
    cap = h2.capture()  # to see the GSO frames leave h2
    result: dict = {}

    def serve():
        try:
            conn, _ = srv.accept()
            conn.settimeout(15)
            digest, n = hashlib.sha256(), 0
            while True:
                chunk = conn.recv(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                n += len(chunk)
            conn.close()
            result["bytes"], result["sha"] = n, digest.hexdigest()
        except Exception as exc:
            result["error"] = exc

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    block = bytes(range(256)) * 4096  # 1 MiB
    expected = hashlib.sha256(block * (TCP_BYTES // len(block))).hexdigest()
    start = time.monotonic()
    try:
        cli = in_netns(h2.ns, connect)
        for _ in range(TCP_BYTES // len(block)):
            cli.sendall(block)
        cli.shutdown(socket.SHUT_WR)
        t.join(timeout=20)
        cli.close()
    finally:
        srv.close()
    elapsed = time.monotonic() - start
    assert "error" not in result, f"receiver failed: {result.get('error')!r} after {result.get('bytes')} bytes"
    assert result.get("bytes") == TCP_BYTES, f"received {result.get('bytes')} of {TCP_BYTES} bytes in {elapsed:.1f}s"
    assert result["sha"] == expected, "data corrupted in transit"
    cap.stop()
    biggest = max((f.orig_len for f in cap.outgoing()), default=0)
    print(f"20 MB in {elapsed:.2f}s ({TCP_BYTES * 8 / elapsed / 1e6:.0f} Mbit/s); largest frame h2 sent: {biggest} bytes")
    assert biggest > 1514, "h2 never sent a frame larger than the MTU: GSO was not exercised"


def test_mac_entries_age_out(four):
    """With --fdb-aging 1, a MAC entry disappears about a second after its host last
    sent a frame (IEEE 802.1Q ageing time); the host's next frame learns it again."""
    sw = four.start_switch("--fdb-aging", "1")
    h1, h2 = four["h1"], four["h2"]
    h1.send_frames([udp_frame(h1.mac, "ff:ff:ff:ff:ff:ff", h1.addr, "192.0.2.255", 9, b"hello")])
    sw.wait_status(lambda s: macs(s).get((1, h1.mac)) == "h1", timeout=2, what="h1's MAC learned")
    t0 = time.monotonic()
    sw.wait_status(lambda s: (1, h1.mac) not in macs(s), timeout=4, what="h1's MAC aged out")
    assert time.monotonic() - t0 >= 0.5, "h1's MAC vanished well before the 1 s ageing time"
    h1.send_frames([udp_frame(h1.mac, "ff:ff:ff:ff:ff:ff", h1.addr, "192.0.2.255", 9, b"again")])
    sw.wait_status(lambda s: macs(s).get((1, h1.mac)) == "h1", timeout=2, what="h1's MAC learned again")
