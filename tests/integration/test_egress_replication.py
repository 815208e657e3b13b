"""Egress replication (topologies/four-hosts.topo): a frame for several packet ports leaves the
switch once, on one of them, and the kernel clones it out of the others (a TCX egress program),
as the kernel bridge floods with clones of one buffer.

What a member must see is what it saw before: every frame of its group, once, in order, intact;
the switch's counters count the clones on the ports they left by; a member whose interface is
created anew (a new ifindex) still gets its clones; without replication nothing changes but the
cost.

Replication needs TCX (Linux 6.6 and later; kernel_features.py). Where the kernel has none the
switch sends a copy to each member: the tests check the delivery all the same, then skip what
is about the clones, saying so.
"""

from __future__ import annotations

import re

import kernel_features
from lab import port_entry, random_marker, wait_until

G = "239.1.2.3"
PORT = 5000
COUNT = 2000


def numbers(payloads: list[bytes], marker: bytes) -> list[int]:
    """The sequence numbers lab.numbered_payloads writes after the marker (" #00042 ")."""
    return [int(p[len(marker) + 2:len(marker) + 7]) for p in payloads]


def send_and_collect(sender, receivers: dict, marker: bytes, count: int = COUNT) -> dict:
    sent = sender.send_udp(G, PORT, count=count, marker=marker, size=120, interval=0)
    assert numbers(sent, marker) == list(range(count)), "the sender's numbering is not what this test reads"
    return {name: rx.collect(count, timeout=5, marker=marker) for name, rx in receivers.items()}


def assert_all_once_in_order(got: dict, marker: bytes, count: int = COUNT) -> None:
    for name, payloads in got.items():
        seen = numbers(payloads, marker)
        assert len(seen) == len(set(seen)), f"{name} got {len(seen) - len(set(seen))} duplicates"
        assert seen == list(range(count)), \
            f"{name} got {len(seen)} of {count}, first out of order at {next((i for i, (a, b) in enumerate(zip(seen, seen[1:])) if b <= a), None)}"


def test_a_groups_frames_reach_every_member_once_and_in_order_as_clones_of_one_send(four):
    """h1, h2 and h3 join a group; h4 sends it 2,000 numbered datagrams as fast as it can. The
    switch sends each frame once, on one member's port, and the kernel clones it to the other
    two: the status says every port replicates and counts two clones a frame. Each member
    gets all 2,000, once each, in the order sent; the switch counts each on every member's
    port, and each member port's interface sent at least that many."""
    sw = four.start_switch()
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    rx = {h.name: h.join(G, PORT) for h in (h1, h2, h3)}
    st = sw.status()
    tcx = kernel_features.has("tcx")
    if tcx:
        assert st["datapath"]["replicating_ports"] == 4, st["datapath"]
        assert re.search(r"\n  egress replication: on 4 ports, \d+ frames cloned\n", sw.status_text())
    before = {n: port_entry(st, n)["tx_frames"] for n in rx}
    kernel_before = {n: four.switch_tx_packets(n) for n in rx}
    cloned_before = st["datapath"]["cloned_frames"]
    marker = random_marker("clones")
    assert_all_once_in_order(send_and_collect(h4, rx, marker), marker)
    st = sw.status()
    for n in rx:
        counted = port_entry(st, n)["tx_frames"] - before[n]
        kernel = four.switch_tx_packets(n) - kernel_before[n]
        assert counted >= COUNT, f"the switch counted {counted} frames out of {n} for {COUNT} delivered"
        assert kernel >= COUNT, f"{n}'s interface sent {kernel} frames for {COUNT} delivered"
    kernel_features.require("tcx", "egress replication (4 replicating ports, 2 clones a frame)")
    cloned = st["datapath"]["cloned_frames"] - cloned_before
    assert cloned >= 2 * COUNT, f"the kernel cloned {cloned} frames for {COUNT} sent to 3 members: not replicated"


def test_without_egress_replication_the_threads_send_a_copy_to_each_member(four):
    """--no-egress-replication: the same delivery (all, once, in order), no port replicating,
    no clone counted, and the status says so."""
    sw = four.start_switch("--no-egress-replication")
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    rx = {h.name: h.join(G, PORT) for h in (h1, h2, h3)}
    marker = random_marker("copies")
    assert_all_once_in_order(send_and_collect(h4, rx, marker), marker)
    st = sw.status()
    assert (st["datapath"]["replicating_ports"], st["datapath"]["cloned_frames"]) == (0, 0), st["datapath"]
    assert "\n  egress replication: off\n" in sw.status_text()


def test_a_member_whose_interface_is_created_anew_gets_its_clones_again(four):
    """h1, h2 and h3 are members; h3's frames are clones (h1's port, the first, carries them).
    h3's interface is deleted and created again with a new ifindex: once h3 has joined again,
    it gets every frame again (the switch wrote its lists anew, with the new index) and so do
    the others. One forwarding thread: the one that wrote the list before is the one that sends."""
    sw = four.start_switch("--threads", "1")
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    rx = {h.name: h.join(G, PORT) for h in (h1, h2, h3)}
    marker = random_marker("before")
    assert_all_once_in_order(send_and_collect(h4, rx, marker, count=200), marker, count=200)
    old = four.switch_ifindex("h3")
    rx["h3"].close()
    four.delete_host_link("h3")
    try:
        sw.wait_status(lambda s: port_entry(s, "h3")["link"] == "down", timeout=3, what="h3 down")
    finally:
        four.link_host("h3")
    new = four.switch_ifindex("h3")
    assert new != old, "the interface came back with its old ifindex: the test proves nothing"
    sw.wait_status(lambda s: port_entry(s, "h3")["link"] == "up" and port_entry(s, "h3")["ifindex"] == new,
                   timeout=5, what=f"h3 up on ifindex {new}")
    rx["h3"] = h3.join(G, PORT)
    marker = random_marker("after")
    got = send_and_collect(h4, rx, marker, count=200)
    assert_all_once_in_order(got, marker, count=200)
    kernel_features.require("tcx", "egress replication (the clones to an interface created anew)")
    assert wait_until(lambda: sw.status()["datapath"]["cloned_frames"] > 0, timeout=1, what="clones counted")
