"""The kernel fast path (topologies/four-hosts.topo: h1..h4 = 192.0.2.1-4, MACs
02:00:00:00:00:01-04). Once the switch has decided a frame of at least 1,024 bytes (here
mostly --kernel-fast-path-frame 1: any frame) from a station to another learned station,
between untagged packet ports, the kernel forwards the rest of that flow (ingress port,
destination MAC, source MAC), and the flow back, itself: a BPF program on the port's TCX ingress
hook redirects it, and a filter keeps it from the switch's sockets. The switch counts what
the kernel forwarded, keeps its sources learned, and takes a flow back as soon as it would
decide it otherwise (a station moved, a link went down) or a capture wants every frame.

The fast path needs TCX (Linux 6.6 and later; kernel_features.py): where the kernel has none,
the tests of it skip, saying so, and those that run without it (--no-kernel-fast-path, frames
of the switch's own namespace) run everywhere.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from kernel_features import needs
from lab import binary_path, macs, port_entry, random_marker, send_frames, udp_frame, wait_until


# Every flow to the kernel, small frames too (pings): the default takes those with a frame of
# 1,024 bytes or more (test_small_frame_flows_stay_with_the_switch_bulk_ones_go_to_the_kernel).
ANY = ["--kernel-fast-path-frame", "1"]


def flows(sw) -> int:
    return sw.status()["datapath"]["kernel_flows"]


def settle_flows(sw, at_least: int, what: str = "the kernel's flows"):
    return wait_until(lambda: flows(sw) >= at_least, timeout=5, what=f"{what} (at least {at_least})")


NEEDS_TCX = needs("tcx", "the kernel fast path")


@pytest.mark.parametrize("flags", [pytest.param([], marks=NEEDS_TCX), ["--no-kernel-fast-path"]],
                         ids=["fast-path", "no-fast-path"])
def test_an_established_flow_crosses_a_stopped_switch_and_a_new_one_does_not(four, flags):
    """h2 and h1 ping each other; then the switch process is stopped (SIGSTOP). With the
    fast path, h2's pings to h1 still cross (the kernel has the flow), while h3, which the
    switch has not heard yet, cannot reach h1 (its ARP broadcast needs the switch). Once the
    switch runs again, h2's port counts the frames the kernel forwarded meanwhile. Without
    the fast path nothing crosses a stopped switch."""
    sw = four.start_switch("--threads", "2", *ANY, *flags)
    h1, h2, h3 = four["h1"], four["h2"], four["h3"]
    assert h2.ping(h1.addr) and h1.ping(h2.addr), "h1 and h2 cannot ping each other"
    fast = not flags
    if fast:
        settle_flows(sw, 2)
    before = port_entry(sw.status(), "h2")["rx_frames"]
    sw.send_signal(signal.SIGSTOP)
    try:
        established = h2.ping(h1.addr, count=5, timeout=3)
        fresh = h3.ping(h1.addr, count=1, timeout=1)
    finally:
        sw.send_signal(signal.SIGCONT)
    assert not fresh, "h3 reached h1 through a stopped switch: a frame the switch never decided was forwarded"
    if not fast:
        assert not established, "h2 reached h1 through a stopped switch without the kernel fast path"
        assert sw.status()["datapath"]["fast_path_ports"] == 0
        return
    assert established, "h2's established flow to h1 did not cross the stopped switch"
    counted = port_entry(sw.status(), "h2")["rx_frames"] - before
    assert counted >= 5, f"h2's port counted {counted} frames received while stopped; the kernel forwarded 5 pings"


@NEEDS_TCX
def test_a_station_move_takes_its_flows_back_at_once(four):
    """h2 and h1 exchange frames: the kernel carries both flows. Then h1's MAC speaks from
    h3's port (the station moved, or a host claims it): the very next datagrams from h2 to
    h1's MAC go to h3's port, as the switch now decides, not where the kernel sent them.
    When h1 speaks again from its own port, its flows come back and h1 receives again."""
    sw = four.start_switch("--threads", "2", *ANY)
    h1, h2, h3 = four["h1"], four["h2"], four["h3"]
    assert h2.ping(h1.addr) and h1.ping(h2.addr)
    settle_flows(sw, 2)
    rx1 = h1.receiver(None, 5311)
    cap3 = h3.capture()
    h3.send_frames([udp_frame(h1.mac, "ff:ff:ff:ff:ff:ff", h1.addr, "192.0.2.255", 9, b"moved")])
    sw.wait_status(lambda s: macs(s).get((1, h1.mac)) == "h3", what="h1's MAC learned on h3's port")
    moved = random_marker("moved")
    h2.send_udp(h1.addr, 5311, count=5, marker=moved)
    wait_until(lambda: len(cap3.with_marker(moved)) >= 5, timeout=3,
               what="h2's 5 datagrams to h1's MAC at h3's port, where the switch now has that MAC")
    got = rx1.collect(5, timeout=0.5, marker=moved)
    assert got == [], f"h1 received {len(got)} datagrams sent after its MAC moved to h3's port"
    cap3.stop()

    assert h1.ping(h2.addr), "h1 cannot reach h2 after speaking from its own port again"
    sw.wait_status(lambda s: macs(s).get((1, h1.mac)) == "h1", what="h1's MAC back on h1's port")
    back = random_marker("back")
    h2.send_udp(h1.addr, 5311, count=10, marker=back)
    assert len(rx1.collect(10, timeout=3, marker=back)) == 10, "h1 did not get h2's datagrams after moving back"
    assert flows(sw) >= 2, "h1's and h2's flows did not come back to the kernel"


@NEEDS_TCX
def test_a_link_going_down_takes_its_flows_back(four):
    """h1's link goes down: the switch forgets h1's MAC and the kernel forgets every flow
    to or from h1's port; back up, h1 and h2 reach each other again."""
    sw = four.start_switch(*ANY)
    h1, h2 = four["h1"], four["h2"]
    assert h2.ping(h1.addr) and h1.ping(h2.addr)
    settle_flows(sw, 2)
    h1.set_link(False)
    try:
        sw.wait_status(lambda s: s["datapath"]["kernel_flows"] == 0, what="no kernel flows once h1's link is down")
    finally:
        h1.set_link(True)
    wait_until(lambda: h2.ping(h1.addr), timeout=10, what="h2 reaching h1 once its link is back")


@NEEDS_TCX
def test_a_capture_sees_every_frame_of_a_flow_the_kernel_had(four):
    """While `snoopswitch capture` runs, the switch forwards every frame itself, so the
    capture holds h2's pings to h1 although the kernel carried that flow before; afterwards
    the kernel takes the flow again."""
    sw = four.start_switch(*ANY)
    h1, h2 = four["h1"], four["h2"]
    assert h2.ping(h1.addr) and h1.ping(h2.addr)
    settle_flows(sw, 2)
    path = four.tmpdir / "fast-path.pcap"
    proc = subprocess.Popen([str(binary_path()), "capture", str(path), "--port", "h1", "--duration", "3",
                             "--control", sw.control], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    four._procs.append(proc)
    wait_until(lambda: "capture started" in sw.log(50000), timeout=5, what="the switch's log line 'capture started'")
    assert flows(sw) == 0, "the kernel kept flows while a capture ran"
    assert h2.ping(h1.addr, count=5)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, f"capture exited {proc.returncode}: {err.strip()}"
    from scapy.layers.inet import ICMP, IP
    from scapy.utils import rdpcap
    pings = [p for p in rdpcap(str(path)) if p.haslayer(ICMP) and p[IP].src == h2.addr and p[ICMP].type == 8]
    assert len(pings) >= 5, f"the capture of h1's port holds {len(pings)} of h2's 5 echo requests"
    time.sleep(0.5)
    assert h2.ping(h1.addr) and h1.ping(h2.addr)
    settle_flows(sw, 2, "the flows back in the kernel after the capture")


@pytest.mark.parametrize("flags", [[], ["--no-kernel-fast-path"]], ids=["fast-path", "no-fast-path"])
def test_frames_the_switch_namespace_sends_on_a_port_are_not_switched(four, flags):
    """A frame the switch's own namespace sends out of port h1 (its IPv6 chatter, say) goes
    to h1's host only: with two forwarding threads the ports' sockets share a fanout group,
    which hears outgoing frames unless told not to. h2 never sees it and the switch does not
    learn its source."""
    sw = four.start_switch("--threads", "2", *ANY, *flags)
    h2 = four["h2"]
    assert h2.ping(four["h1"].addr)
    cap2 = h2.capture()
    marker = random_marker("own")
    stranger = "02:00:00:00:99:99"
    send_frames(four.sw_ns, [udp_frame(stranger, "ff:ff:ff:ff:ff:ff", "198.51.100.9", "198.51.100.255", 9, marker)] * 3,
                ifname="h1")
    time.sleep(0.5)
    cap2.stop()
    assert cap2.with_marker(marker) == [], "h2 received a frame the switch's namespace sent out of port h1"
    assert (1, stranger) not in macs(sw.status()), "the switch learned the source of a frame its namespace sent"


@NEEDS_TCX
def test_small_frame_flows_stay_with_the_switch_bulk_ones_go_to_the_kernel(four):
    """By default a flow goes to the kernel once it carries a frame of 1,024 bytes or more,
    and its way back with it: pings of 56 bytes leave the kernel's table empty, one ping of
    1,200 bytes fills it with h2's flow to h1 and h1's back."""
    sw = four.start_switch()
    h1, h2 = four["h1"], four["h2"]
    assert h2.ping(h1.addr, count=3) and h1.ping(h2.addr, count=3)
    assert flows(sw) == 0, "small pings went to the kernel"
    h2.run("ping", "-c", "1", "-s", "1200", h1.addr)
    settle_flows(sw, 2, "h2's flow to h1 and its way back, after a 1,200-byte ping")
