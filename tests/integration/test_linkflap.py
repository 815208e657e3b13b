"""Link down and up on a port (topologies/four-hosts.topo).

When a port's link goes down, the switch forgets what it learned there (MAC entries,
group memberships: IEEE 802.1Q 8.8.3 flushes the port's dynamic entries, RFC 4541's
membership state is per port) and keeps serving the other ports; when the link comes
back the port forwards again and the host's new report registers it again.
"""

from __future__ import annotations

import pytest

from lab import macs, members, port_entry, random_marker

G = "239.5.5.5"
PORT = 5040


@pytest.mark.parametrize("end", ["host", "switch"], ids=["host-eth0-down", "switch-port-down"])
def test_link_flap_flushes_port_state_and_recovers(four, end):
    """Set h1's veth down (at the host end: carrier lost on the switch port; or the
    switch's own end): status shows h1's link down and no MAC entry or membership on it,
    while h2 keeps receiving and h3 can still ping h4; bring it up: h1's port is up
    again, h1 re-joins and receives again."""
    sw = four.start_switch()
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    assert h1.ping(h4.addr)
    rx1 = h1.join(G, PORT)
    rx2 = h2.join(G, PORT)
    sw.wait_status(lambda s: macs(s).get((1, h1.mac)) == "h1", timeout=3, what="h1's MAC learned on h1")
    marker = random_marker("before")
    h4.send_udp(G, PORT, count=20, marker=marker)
    assert len(rx1.collect(20, timeout=3, marker=marker)) == 20

    def set_link(up: bool):
        if end == "host":
            h1.set_link(up)
        else:
            four.set_switch_port_link("h1", up)

    set_link(False)
    st = sw.wait_status(
        lambda s: s if (port_entry(s, "h1")["link"] == "down" and "h1" not in members(s, G)
                        and not any(m["port"] == "h1" for m in s["macs"])) else None,
        timeout=3, what="h1 down with its memberships and MAC entries flushed")
    assert members(st, G) == {"h2"}, st["groups"]

    marker = random_marker("during")
    sent = h4.send_udp(G, PORT, count=20, marker=marker)
    got = rx2.collect(20, timeout=3, marker=marker)
    assert sorted(got) == sorted(sent), f"h2 received {len(got)} of 20 while h1 was down"
    assert h3.ping(h4.addr), "h3 could not ping h4 while h1 was down"

    set_link(True)
    sw.wait_status(lambda s: port_entry(s, "h1")["link"] == "up", timeout=3, what="h1's link up again")
    rx1.rejoin()
    sw.wait_status(lambda s: "h1" in members(s, G), timeout=3, what="h1 member again after its report")
    marker = random_marker("after")
    sent = h4.send_udp(G, PORT, count=20, marker=marker)
    got = rx1.collect(20, timeout=3, marker=marker)
    assert sorted(got) == sorted(sent), f"h1 received {len(got)} of 20 after its link came back"
    assert len(rx2.collect(20, timeout=3, marker=marker)) == 20
    assert h1.ping(h4.addr), "h1 cannot ping h4 after its link came back"
