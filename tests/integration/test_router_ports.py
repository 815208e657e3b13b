"""Multicast router ports (topologies/four-hosts.topo and topologies/mrouter.topo).

RFC 4541 2.1.1: a port is a multicast router port when IGMP queries (from a nonzero
source) or PIM hellos arrive on it, or when configured; membership reports and leaves
are forwarded to router ports only, never to other host ports; router ports receive
all multicast data (registered or not).
"""

from __future__ import annotations

import time

import pytest

from lab import igmp_query, members, pim_hello, random_marker, router_ports, port_entry, wait_until

G, G_UNREG = "239.3.3.3", "239.3.3.4"
PORT = 5020


def _igmp_about(cap, group, src=None):
    """Reports and leaves about `group` that reached the capture's host."""
    return cap.igmp(lambda m: (m.is_report or m.is_leave) and m.mentions_group(group) and (src is None or m.ip.src == src))


def test_igmp_query_makes_a_learned_router_port(four):
    """A general query from 192.0.2.100 arriving on h4's port is forwarded to every other
    port and makes h4 a learned router port (reason igmp-query, with an expiry)."""
    sw = four.start_switch()
    h4 = four["h4"]
    caps = {n: four[n].capture() for n in ("h1", "h2", "h3")}
    h4.send_frames([igmp_query(h4.mac, "192.0.2.100", version=2, max_resp=1.0)])
    rp = sw.wait_status(lambda s: router_ports(s, 1).get("h4"), timeout=2, what="h4 as a learned router port")
    for name, cap in caps.items():  # queries go to every port of the VLAN
        wait_until(lambda: cap.igmp(lambda m: m.is_query and m.ip.src == "192.0.2.100"), timeout=2,
                   what=f"h4's query forwarded to {name}")
    assert rp["kind"] == "learned" and rp["reason"] == "igmp-query", rp
    assert rp["expires_in"] is not None and rp["expires_in"] > 0, rp
    st = sw.status()
    assert port_entry(st, "h4")["router"] == "learned"
    assert set(router_ports(st)) == {"h4"}, router_ports(st)


def test_query_from_address_zero_does_not_make_a_router_port(four):
    """A query with source 0.0.0.0 (a snooping switch's proxy query) does not mark its
    port as a router port."""
    sw = four.start_switch()
    h3, h4 = four["h3"], four["h4"]
    h4.send_frames([igmp_query(h4.mac, "0.0.0.0", version=3, max_resp=1.0)])
    sw.wait_status(lambda s: s["igmp"]["received"].get("query_v3", 0) >= 1, timeout=2, what="the query counted")
    # A PIM hello sent afterwards on h3 is the sign that the switch processed both frames.
    h3.send_frames([pim_hello(h3.mac, h3.addr)])
    sw.wait_status(lambda s: "h3" in router_ports(s), timeout=2, what="h3 router port (PIM hello)")
    assert "h4" not in router_ports(sw.status()), "a query from 0.0.0.0 made h4 a router port"


def test_pim_hello_makes_a_learned_router_port(four):
    """A PIMv2 hello (IP protocol 103 to 224.0.0.13) marks its port as a router port
    (reason pim-hello)."""
    sw = four.start_switch()
    h3 = four["h3"]
    h3.send_frames([pim_hello(h3.mac, h3.addr)])
    rp = sw.wait_status(lambda s: router_ports(s, 1).get("h3"), timeout=2, what="h3 as a learned router port")
    assert rp["kind"] == "learned" and rp["reason"] == "pim-hello", rp
    assert port_entry(sw.status(), "h3")["router"] == "learned"
    assert sw.status()["igmp"]["received"].get("pim_hello", 0) >= 1


@pytest.mark.parametrize("host_igmp", [2, 3], ids=["igmpv2", "igmpv3"])
def test_reports_and_leaves_reach_router_port_only(four, host_igmp):
    """Once h4 is a learned router port, h1's report (join) and leave reach h4 and no
    other host port; data for the group reaches the member and the router port only."""
    sw = four.start_switch()
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    h1.igmp_version(host_igmp)
    h4.send_frames([igmp_query(h4.mac, "192.0.2.100", version=host_igmp, max_resp=1.0)])
    sw.wait_status(lambda s: "h4" in router_ports(s), timeout=2, what="h4 as a learned router port")
    caps = {h.name: h.capture() for h in (h2, h3, h4)}
    rx = h1.join(G, PORT)
    wait_until(lambda: _igmp_about(caps["h4"], G, h1.addr), timeout=3, what="h1's report at router port h4")

    marker = random_marker()
    sent = h3.send_udp(G, PORT, count=20, marker=marker)
    got = rx.collect(20, timeout=3, marker=marker)
    assert sorted(got) == sorted(sent), f"member h1 received {len(got)} of 20"
    caps["h4"].wait_for(lambda f: marker in f.data, count=20, timeout=3, what="group data at router port h4")

    rx.leave()
    if host_igmp == 2:
        wait_until(lambda: caps["h4"].igmp(lambda m: m.is_leave and m.group == G), timeout=3,
                   what="h1's leave at router port h4")
    else:
        wait_until(lambda: caps["h4"].igmp(lambda m: m.type == 0x22 and (3, G) in m.v3_report_groups()),
                   timeout=3, what="h1's TO_IN({}) report at router port h4")
    time.sleep(0.3)
    for name in ("h2", "h3"):
        caps[name].stop()
        leaked = _igmp_about(caps[name], G)
        assert leaked == [], f"host port {name} received IGMP reports/leaves of another host: {leaked}"
        if name == "h2":
            data = caps[name].with_marker(marker)
            assert data == [], f"non-member h2 saw {len(data)} frames of {G}"


def test_static_router_port_gets_reports_and_all_group_data(mrouter):
    """A static :router port is listed as such, receives h1's report but h2/h3 do not,
    and receives data for an unregistered group (which no host port gets) as well as
    for a registered group."""
    sw = mrouter.start_switch(default_flags=True)
    h1, h2, h3, router = (mrouter[n] for n in ("h1", "h2", "h3", "router"))
    st = sw.status()
    rp = router_ports(st).get("router")
    assert rp and rp["kind"] == "static" and rp["reason"] == "static" and rp.get("expires_in") is None, rp
    assert port_entry(st, "router")["router"] == "static"

    caps = {h.name: h.capture() for h in (h2, h3, router)}
    rx = h1.join(G, PORT)
    wait_until(lambda: _igmp_about(caps["router"], G, h1.addr), timeout=3, what="h1's report at the router")

    m_unreg, m_reg = random_marker("unreg"), random_marker("reg")
    h2.send_udp(G_UNREG, PORT, count=20, marker=m_unreg)
    sent = h2.send_udp(G, PORT, count=20, marker=m_reg)
    got = rx.collect(20, timeout=3, marker=m_reg)
    assert sorted(got) == sorted(sent), f"member h1 received {len(got)} of 20"
    rcap = caps["router"]
    rcap.wait_for(lambda f: m_unreg in f.data, count=20, timeout=3, what="unregistered group data at the router")
    rcap.wait_for(lambda f: m_reg in f.data, count=20, timeout=3, what="registered group data at the router")
    time.sleep(0.2)
    for name, cap in caps.items():
        cap.stop()
    bad = [f for f in rcap.udp_to(G_UNREG, PORT, m_unreg) if not f.checksum_deliverable]
    assert not bad, f"router got unregistered-group frames with broken UDP checksums: {bad[:2]}"
    assert len(rcap.udp_to(G_UNREG, PORT, m_unreg)) == 20
    h3cap = caps["h3"]
    assert _igmp_about(h3cap, G) == [], "h3 received h1's report"
    assert h3cap.to_group(G_UNREG) == [], "h3 received unregistered group data"
    assert h3cap.with_marker(m_reg) == [], "h3 (not a member) received registered group data"
    assert members(sw.status(), G) == {"h1"}
