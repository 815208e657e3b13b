"""Self-checks of the harness itself, without the switch: two namespaces joined by a bare
veth pair. If these fail, the machine (or the harness) is at fault, not snoopswitch."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import textwrap
import time

import pytest

from lab import (
    REPO,
    TOPOLOGIES,
    Capture,
    Receiver,
    Topology,
    delete_netns,
    igmp_of,
    igmp_query,
    igmp_report,
    in_netns,
    mcast_mac,
    netns_list,
    pim_hello,
    random_marker,
    send_frames,
    send_udp,
    sh,
    udp_frame,
    unique_lab_name,
    decode_max_resp,
    decode_qqic,
)

MAC_A, MAC_B = "02:00:00:00:aa:01", "02:00:00:00:aa:02"


@pytest.fixture(scope="module")
def pair():
    """Namespaces <x>-a (192.0.2.1) and <x>-b (192.0.2.2), eth0 to eth0, no switch."""
    name = unique_lab_name()
    a, b = f"{name}-a", f"{name}-b"
    made = []
    try:
        for ns in (a, b):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b)
        for ns, mac, addr in ((a, MAC_A, "192.0.2.1/24"), (b, MAC_B, "192.0.2.2/24")):
            sh("ip", "-n", ns, "link", "set", "eth0", "address", mac)
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "addr", "add", addr, "dev", "eth0")
            sh("ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
        yield a, b
    finally:
        for ns in made:
            delete_netns(ns)


def test_topology_files_parse():
    """Every file in topologies/ parses; the three required labs have the expected shape."""
    files = sorted(TOPOLOGIES.glob("*.topo"))
    assert {f.name for f in files} >= {"four-hosts.topo", "two-vlans-trunk.topo", "mrouter.topo"}
    for f in files:
        Topology.load(str(f))
    four = Topology.load("four-hosts.topo")
    assert [h.name for h in four.hosts] == ["h1", "h2", "h3", "h4"]
    assert [h.mac for h in four.hosts] == [f"02:00:00:00:00:0{i}" for i in range(1, 5)]
    vl = Topology.load("two-vlans-trunk.topo")
    suffixes = {h.name: h.suffix for h in vl.hosts}
    assert suffixes["trunk"] == ":tagged=10,20"
    assert {s for n, s in suffixes.items() if n != "trunk"} == {":pvid=10", ":pvid=20"}
    mr = Topology.load("mrouter.topo")
    assert any(h.suffix == ":router" for h in mr.hosts)


def test_multicast_socket_delivery_over_bare_veth(pair):
    """Sender, joined receiver and capture agree on a direct veth (offloads on)."""
    a, b = pair
    group, port, marker = "239.255.0.1", 5001, random_marker()
    rx = Receiver(b, group, port)
    cap = Capture(b)
    try:
        sent = send_udp(a, group, port, count=20, marker=marker, src_addr="192.0.2.1")
        got = rx.collect(20, timeout=3, marker=marker)
        assert sorted(got) == sorted(sent)
        frames = cap.stop(settle=0.1)
        data = [f for f in frames if not f.outgoing and marker in f.data]
        assert len(data) == 20
        assert all(f.dst == mcast_mac(group) for f in data)
        assert all(f.checksum_deliverable for f in data)
        # The join made b's kernel send a report, which the capture saw going out.
        reports = [igmp_of(f) for f in frames if f.outgoing and igmp_of(f) is not None]
        assert any(m.is_report and m.mentions_group(group) for m in reports), reports
    finally:
        rx.close()
        cap.stop()


def test_tagged_frames_keep_their_tag_in_the_capture(pair):
    """The kernel strips the 802.1Q tag on receive; the capture puts it back from
    PACKET_AUXDATA (VID and priority), and scapy's own L2 socket does the same."""
    a, b = pair
    marker = random_marker("tag")
    frame = udp_frame(MAC_A, "ff:ff:ff:ff:ff:ff", "192.0.2.1", "192.0.2.255", 5002, marker, vlan=10, pcp=5)

    def scapy_listen():
        from scapy.arch.linux import L2ListenSocket

        return L2ListenSocket(iface="eth0")

    cap = Capture(b)
    sl = in_netns(b, scapy_listen)
    try:
        send_frames(a, [frame])
        got = cap.wait_for(lambda f: marker in f.data, timeout=3, what="tagged frame")
        assert got[0].vlan == 10 and got[0].pcp == 5, got
        from scapy.layers.l2 import Dot1Q

        sl.ins.settimeout(0.5)
        deadline = time.monotonic() + 3
        seen = None
        while time.monotonic() < deadline and seen is None:
            try:
                pkt = sl.recv()
            except (socket.timeout, OSError):
                continue
            if pkt is not None and marker in bytes(pkt):
                seen = pkt
        assert seen is not None and seen.haslayer(Dot1Q), seen
        assert seen[Dot1Q].vlan == 10 and seen[Dot1Q].prio == 5
    finally:
        sl.close()
        cap.stop()


def test_igmp_crafting_round_trips_through_the_parser(pair):
    """Crafted queries, reports and PIM hellos have correct checksums and fields."""
    a, b = pair
    q3 = igmp_query(MAC_A, "192.0.2.1", version=3, max_resp=1.0, qrv=3, qqic=2)
    q2 = igmp_query(MAC_A, "192.0.2.1", version=2, max_resp=1.0)
    r2 = igmp_report(MAC_A, "192.0.2.1", "239.1.2.3", version=2)
    r3 = igmp_report(MAC_A, "192.0.2.1", "239.1.2.3", version=3)
    hello = pim_hello(MAC_A, "192.0.2.1")
    cap = Capture(b)
    try:
        send_frames(a, [q3, q2, r2, r3, hello])
        frames = cap.wait_for(lambda f: f.src == MAC_A and f.ip is not None and f.ip.proto in (2, 103), count=5,
                              timeout=3, what="crafted frames")
    finally:
        cap.stop()
    msgs = [igmp_of(f) for f in frames if f.ip.proto == 2]
    assert len(msgs) == 4
    for m in msgs:
        assert m.checksum_ok and m.ip.header_checksum_ok and m.ip.router_alert and m.ip.ttl == 1
    v3, v2, rep2, rep3 = msgs
    assert v3.is_query and v3.query_version == 3 and v3.qrv == 3 and decode_qqic(v3.qqic) == 2
    assert decode_max_resp(v3.code) == 1.0 and v3.frame.dst == "01:00:5e:00:00:01"
    assert v2.is_query and v2.query_version == 2 and len(v2.raw) == 8
    assert rep2.type == 0x16 and rep2.group == "239.1.2.3" and rep2.ip.dst == "239.1.2.3"
    assert rep3.type == 0x22 and rep3.v3_report_groups() == [(4, "239.1.2.3")]
    pim = [f for f in frames if f.ip.proto == 103][0]
    assert pim.ip.dst == "224.0.0.13" and pim.dst == "01:00:5e:00:00:0d"


def test_sockets_opened_in_a_namespace_stay_there(pair):
    """in_netns: a socket made in namespace a sees a's interfaces, not the root's."""
    a, _ = pair

    def addrs():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("192.0.2.2", 9))
        return s.getsockname()[0], socket.if_nametoindex("eth0")

    local, _ifindex = in_netns(a, addrs)
    assert local == "192.0.2.1"


STUB = textwrap.dedent(
    """\
    #!/usr/bin/python3
    # Stand-in for snoopswitch used to check lab.sh without the real switch.
    import os, signal, socket, sys, time
    args = sys.argv[1:]
    if args[0] == "status":
        print("PORT (stub status)")
        sys.exit(0)
    ctl = args[args.index("--control") + 1]
    ports = [args[i + 1] for i, a in enumerate(args) if a == "--port"]
    for p in ports:
        name = p.split(":")[0]
        if not os.path.exists(f"/sys/class/net/{name}"):
            print(f"error: no interface {name}", file=sys.stderr)
            sys.exit(1)
    print("stub ports:", " ".join(ports), "flags:", " ".join(a for a in args if a.startswith("--") and a != "--port"), flush=True)
    s = socket.socket(socket.AF_UNIX)
    s.bind(ctl)
    def bye(*_):
        os.unlink(ctl)
        sys.exit(0)
    signal.signal(signal.SIGTERM, bye)
    while True:
        time.sleep(1)
    """
)


def test_lab_sh_up_exec_down(tmp_path):
    """scripts/lab.sh builds a lab from a topology file and removes every trace of it."""
    stub = tmp_path / "snoopswitch"
    stub.write_text(STUB)
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    lab = f"{unique_lab_name()}"
    script = str(REPO / "scripts" / "lab.sh")
    env = dict(os.environ, SNOOPSWITCH=str(stub))
    try:
        up = subprocess.run(["bash", script, "up", str(TOPOLOGIES / "two-vlans-trunk.topo"), lab], env=env,
                            capture_output=True, text=True, timeout=60)
        assert up.returncode == 0, up.stderr
        assert {f"{lab}-sw", f"{lab}-v10a", f"{lab}-trunk"} <= set(netns_list())
        log = open(f"/run/snoopswitch-lab/{lab}/switch.log").read()
        assert "v10a:pvid=10" in log and "trunk:tagged=10,20" in log and "--querier" in log
        ex = subprocess.run(["bash", script, "exec", lab, "v10a", "ip", "-br", "addr", "show", "eth0"], env=env,
                            capture_output=True, text=True, timeout=30)
        assert ex.returncode == 0 and "192.0.2.1/24" in ex.stdout, ex.stdout + ex.stderr
        mac = subprocess.run(["bash", script, "exec", lab, "v20b", "cat", "/sys/class/net/eth0/address"], env=env,
                             capture_output=True, text=True, timeout=30)
        assert mac.stdout.strip() == "02:00:00:00:00:04"
        st = subprocess.run(["bash", script, "status", lab], env=env, capture_output=True, text=True, timeout=30)
        assert st.returncode == 0 and "PORT" in st.stdout
        again = subprocess.run(["bash", script, "up", str(TOPOLOGIES / "two-vlans-trunk.topo"), lab], env=env,
                               capture_output=True, text=True, timeout=60)
        assert again.returncode != 0 and "already exists" in again.stderr
    finally:
        down = subprocess.run(["bash", script, "down", lab], env=env, capture_output=True, text=True, timeout=60)
    assert down.returncode == 0, down.stderr
    assert not [ns for ns in netns_list() if ns.startswith(lab + "-")]
    assert not os.path.exists(f"/run/snoopswitch-{lab}.sock")
    assert not os.path.exists(f"/run/snoopswitch-lab/{lab}")


def test_lab_sh_cleans_up_when_the_switch_fails(tmp_path):
    """A switch that exits at once leaves no namespace behind (lab.sh up fails cleanly)."""
    stub = tmp_path / "snoopswitch"
    stub.write_text("#!/bin/sh\necho 'error: simulated failure' >&2\nexit 1\n")
    stub.chmod(0o755)
    lab = unique_lab_name()
    r = subprocess.run(["bash", str(REPO / "scripts" / "lab.sh"), "up", str(TOPOLOGIES / "four-hosts.topo"), lab],
                       env=dict(os.environ, SNOOPSWITCH=str(stub)), capture_output=True, text=True, timeout=60)
    leftovers = [ns for ns in netns_list() if ns.startswith(lab + "-")]
    for ns in leftovers:
        delete_netns(ns)
    assert r.returncode != 0
    assert "simulated failure" in r.stderr
    assert not leftovers
