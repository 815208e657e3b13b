"""A real multicast router behind a switch port: FRR's pimd (topologies/frr-router.topo).

zebra and pimd run in the `router` namespace (FrrRouter in lab.py: -N NAME --vty_socket DIR,
private files). The router's port is an ordinary port: RFC 4541 2.1.1 says the switch must
find the router from its IGMP queries and PIM hellos, send it the members' reports, and
send it (and only the members) the group's traffic. pimd is the LAN's IGMP querier here;
the switch does not query. The router's own view is read with vtysh.

Skipped only if FRR cannot be installed (scripts/install-deps.sh installs the Debian
package frr). On a kernel without multicast routing (CONFIG_IP_MROUTE unset; kernel_features.py,
forced with SNOOPSWITCH_TEST_MROUTE=0|1) pimd cannot open its mroute socket: it still sends
its queries and hellos, but keeps no IGMP groups and no routes, and the kernel routes no
multicast. The tests then check everything that does not need pimd's tables (what reaches
the router's eth0 and the members, the switch's own view) and skip only the rest, saying why.
"""

from __future__ import annotations

import os
import time

import pytest

import kernel_features
from lab import (REPO, FrrRouter, StubNetwork, frr_missing, members, port_entry, querier, random_marker,
                 router_ports, sh, wait_until)

G = "239.7.7.7"
PORT = 5070
ROUTER_ADDR = "192.0.2.100"

# FRR 8.4: query-max-response-time is in tenths of a second and must not exceed ten times
# the query interval (libyang checks it when the query interval is set: give it first).
IGMP_LINES = (" ip igmp\n"
              " ip igmp query-max-response-time 10\n"
              " ip igmp query-interval 4\n"
              " ip igmp last-member-query-interval 5\n"
              " ip igmp last-member-query-count 2\n")
PIM_LINES = " ip pim\n ip pim hello 5 17\n"  # hello every 5 s, holdtime 17 s
HOLDTIME = 17
# The router is its own rendezvous point, so that traffic from a source behind it
# (a stub network on eth1) is routed to the members on eth0 (PIM-SM, RFC 7761).
RP_LINE = f"ip pim rp {ROUTER_ADDR} 224.0.0.0/4\n"
FULL_CONFIG = "interface eth0\n" + PIM_LINES + IGMP_LINES


@pytest.fixture(scope="module", autouse=True)
def frr_installed():
    why = frr_missing()
    if why and os.geteuid() == 0:
        res = sh("bash", str(REPO / "scripts" / "install-deps.sh"), check=False, timeout=600)
        why = frr_missing()
        if why:
            why += f"; scripts/install-deps.sh said: {(res.stdout + res.stderr).strip()[-400:]}"
    if why:
        pytest.skip(f"FRR cannot run here: {why}")


def _start_frr(lab, config: str) -> FrrRouter:
    return FrrRouter(lab["router"], config).start()


def _frr_groups(frr: FrrRouter, ifname: str = "eth0") -> set[str]:
    """Groups that pimd has on ifname (show ip igmp groups json)."""
    data = frr.vtysh_json("show ip igmp groups json")
    return {g["group"] for g in (data.get(ifname) or {}).get("groups", [])}


def _reports_about(cap, group, src=None):
    return cap.igmp(lambda m: (m.is_report or m.is_leave) and m.mentions_group(group)
                    and (src is None or m.ip.src == src))


def _leaves_of(cap, group, src, after: float):
    """IGMPv3 reports from src, captured after `after`, with a CHANGE_TO_INCLUDE record for
    group (type 3: a socket's leave is TO_IN({})), or IGMPv2 leaves of it."""
    def leave(m):
        if m.ip.src != src or m.frame.time <= after:
            return False
        if m.is_leave:
            return m.group == group
        return m.type == 0x22 and (3, group) in m.v3_report_groups()
    return cap.igmp(leave)


def _pimd_tables(what: str) -> None:
    """Skip (after the checks that need no multicast routing) where pimd keeps no tables."""
    __tracebackhide__ = True
    kernel_features.require("mroute", what)


def _wait_pimd_lists(frr: FrrRouter, group: str = G) -> None:
    """Where the kernel routes multicast, wait for pimd to list the group on eth0; elsewhere
    pimd never will (its test skips that check at its end)."""
    if kernel_features.has("mroute"):
        wait_until(lambda: group in _frr_groups(frr), timeout=8, what=f"pimd listing {group} on eth0 (show ip igmp groups)")


@pytest.mark.parametrize("config,reasons", [
    ("interface eth0\n" + IGMP_LINES, {"igmp-query"}),
    ("interface eth0\n" + PIM_LINES, {"pim-hello"}),
    (FULL_CONFIG, {"igmp-query", "pim-hello"}),
], ids=["igmp-only", "pim-only", "pim-and-igmp"])
def test_frr_port_becomes_a_learned_router_port(frr_lab, config, reasons):
    """pimd on the router's (ordinary) port makes it a learned router port: from its IGMP
    queries (reason igmp-query, for about the other querier present interval), from its
    PIM hellos (reason pim-hello, for the hello's holdtime), or from both. With IGMP on,
    the switch lists pimd (192.0.2.100) as the VLAN's other querier."""
    sw = frr_lab.start_switch(default_flags=True)
    assert "router" not in router_ports(sw.status()), "a router port before the router started"
    frr = _start_frr(frr_lab, config)
    rp = sw.wait_status(lambda s: router_ports(s, 1).get("router"), timeout=8,
                        what="the router's port learned as a router port")
    assert rp["kind"] == "learned" and rp["reason"] in reasons, rp
    assert port_entry(sw.status(), "router")["router"] == "learned"
    received = sw.status()["igmp"]["received"]
    if "pim-hello" in reasons:
        sw.wait_status(lambda s: s["igmp"]["received"].get("pim_hello", 0) >= 1, timeout=8,
                       what="pimd's PIM hello counted")
    if "igmp-query" in reasons:
        q = sw.wait_status(lambda s: querier(s, 1).get("address") == ROUTER_ADDR and querier(s, 1), timeout=8,
                           what=f"{ROUTER_ADDR} (pimd) as the VLAN's querier")
        assert q["role"] == "other", q
    else:
        assert not any(k.startswith("query") for k in received), f"pimd sent queries without 'ip igmp': {received}"
    rp = router_ports(sw.status(), 1)["router"]
    if rp["reason"] == "pim-hello":
        assert 0 < rp["expires_in"] <= HOLDTIME, f"router port from a hello with holdtime {HOLDTIME}: {rp}"
    else:
        # other querier present interval: robustness 2 * query interval 4 + response 1 / 2
        assert 0 < rp["expires_in"] <= 2 * 4 + 1, f"router port from pimd's queries: {rp}"
    assert set(router_ports(sw.status())) == {"router"}, router_ports(sw.status())
    assert frr.alive(), frr.log()


def test_frr_receives_the_members_reports(frr_lab):
    """h1 and h2 join the group with sockets; their reports (answers to pimd's queries,
    too) reach the router: pimd lists the group on eth0; the non-member h3 sees none of
    those reports (they go to router ports only). Without multicast routing in the kernel
    pimd lists nothing: everything else is checked, then the test skips."""
    sw = frr_lab.start_switch(default_flags=True)
    h1, h2, h3, router = (frr_lab[n] for n in ("h1", "h2", "h3", "router"))
    rcap, cap3 = router.capture(), h3.capture()
    frr = _start_frr(frr_lab, FULL_CONFIG)
    sw.wait_status(lambda s: "router" in router_ports(s), timeout=8, what="router port learned from pimd")
    h1.join(G, PORT)
    h2.join(G, PORT)
    _wait_pimd_lists(frr)
    for h in (h1, h2):
        wait_until(lambda: _reports_about(rcap, G, h.addr), timeout=3, what=f"{h.name}'s report at the router")
    # pimd's general query (every 4 s) is answered by both members; their answers must reach it too.
    t_query = time.monotonic()
    wait_until(lambda: rcap.outgoing(lambda f: f.ip is not None and f.ip.proto == 2 and f.ip.dst == "224.0.0.1"
                                     and f.time > t_query),
               timeout=6, what="a general query from pimd")
    for h in (h1, h2):
        wait_until(lambda: [m for m in _reports_about(rcap, G, h.addr) if m.frame.time > t_query], timeout=3,
                   what=f"{h.name}'s answer to pimd's query at the router")
    assert members(sw.status(), G) == {"h1", "h2"}
    time.sleep(0.2)
    cap3.stop()
    leaked = _reports_about(cap3, G)
    assert leaked == [], f"non-member h3 received the members' reports: {leaked}"
    assert frr.alive(), frr.log()
    _pimd_tables(f"pimd's IGMP group table (show ip igmp groups: {G} on eth0, version 3)")
    data = frr.vtysh_json("show ip igmp groups json")
    entry = [g for g in data["eth0"]["groups"] if g["group"] == G][0]
    assert entry["version"] == 3, entry


def test_traffic_from_the_router_reaches_members_only(frr_lab):
    """A sender on the router's eth0 (in the router's namespace, beside pimd) sends to the
    group: both members' sockets get every datagram, the non-member h3 sees no frame of
    the group. Without multicast routing in the kernel pimd does not list the group: the
    datagrams are checked all the same, then the test skips."""
    sw = frr_lab.start_switch(default_flags=True)
    h1, h2, h3, router = (frr_lab[n] for n in ("h1", "h2", "h3", "router"))
    frr = _start_frr(frr_lab, FULL_CONFIG)
    sw.wait_status(lambda s: "router" in router_ports(s), timeout=8, what="router port learned from pimd")
    rx1, rx2 = h1.join(G, PORT), h2.join(G, PORT)
    _wait_pimd_lists(frr)
    cap3 = h3.capture()
    marker = random_marker("from-router")
    sent = router.send_udp(G, PORT, count=20, marker=marker)
    for name, rx in (("h1", rx1), ("h2", rx2)):
        got = rx.collect(20, timeout=3, marker=marker)
        assert sorted(got) == sorted(sent), f"member {name} received {len(got)} of 20 datagrams from the router"
    cap3.stop(settle=0.2)
    leaked = cap3.to_group(G)
    assert leaked == [], f"non-member h3 saw {len(leaked)} frames of {G}: {leaked[:3]}"
    assert members(sw.status(), G) == {"h1", "h2"}
    assert frr.alive(), frr.log()
    _pimd_tables(f"pimd listing {G} on eth0 (show ip igmp groups) before the router sent")


def test_traffic_routed_by_pimd_from_a_source_behind_it_reaches_members_only(frr_lab):
    """A source on a network behind the router (198.51.100.10 on the router's eth1) sends
    to the group; pimd (its own RP) routes it onto eth0 because h1 and h2 joined there.
    Both members' sockets get the datagrams (TTL decremented by the router); the non-member
    h3 sees no frame of the group. Without multicast routing in the kernel nothing is routed:
    the test checks the switch's view (the router's port, the members, nothing of the group
    at h3 while the source sends), then skips."""
    sw = frr_lab.start_switch(default_flags=True)
    h1, h2, h3, router = (frr_lab[n] for n in ("h1", "h2", "h3", "router"))
    stub = StubNetwork(router, "upstream", "eth1", "198.51.100.1/24", "198.51.100.10/24")
    frr = _start_frr(frr_lab, RP_LINE + FULL_CONFIG + "interface eth1\n ip pim\n")
    sw.wait_status(lambda s: "router" in router_ports(s), timeout=8, what="router port learned from pimd")
    rx1, rx2 = h1.join(G, PORT), h2.join(G, PORT)
    _wait_pimd_lists(frr)
    cap3 = h3.capture()
    if not kernel_features.has("mroute"):
        stub.send_udp(G, PORT, count=5, marker=random_marker("unrouted"), interval=0.01)
        cap3.stop(settle=0.5)
        leaked = cap3.to_group(G)
        assert leaked == [], f"non-member h3 saw {len(leaked)} frames of {G}: {leaked[:3]}"
        assert members(sw.status(), G) == {"h1", "h2"}
        assert "router" in router_ports(sw.status()), "the router's port is no router port any more"
        assert frr.alive(), frr.log()
        _pimd_tables(f"traffic routed by pimd from {stub.addr} behind the router to the members")

    # The first datagram of a new source is an upcall for pimd, which then installs the
    # (S,G) route: send a few until the route carries them to h1.
    def primed():
        m = random_marker("prime")
        stub.send_udp(G, PORT, count=3, marker=m, interval=0.01)
        return rx1.collect(1, timeout=0.5, marker=m, settle=0.0)

    wait_until(primed, timeout=8, interval=0.1, what="pimd routing the source's traffic onto eth0")
    marker = random_marker("routed")
    sent = stub.send_udp(G, PORT, count=20, marker=marker)
    for name, rx in (("h1", rx1), ("h2", rx2)):
        got = rx.collect(20, timeout=3, marker=marker)
        assert sorted(got) == sorted(sent), f"member {name} received {len(got)} of 20 routed datagrams"
    mroutes = frr.vtysh("show ip mroute")
    assert stub.addr in mroutes, f"no (S,G) route for {stub.addr} in pimd:\n{mroutes}"
    cap3.stop(settle=0.2)
    leaked = cap3.to_group(G)
    assert leaked == [], f"non-member h3 saw {len(leaked)} frames of {G}: {leaked[:3]}"
    assert frr.alive(), frr.log()


def test_leaves_answered_by_pimd_queries(frr_lab):
    """h2 leaves (IGMPv3 TO_IN({})): pimd sends group-specific queries, h1 answers them,
    the switch (not the querier) prunes h2 only, and h1 keeps getting the router's traffic
    while h2 sees none. Then h1 leaves too: the switch prunes it and pimd drops the group.
    Without multicast routing in the kernel pimd keeps no groups, so it neither queries
    after a leave nor lists or drops the group: the leaves at the router's eth0 and the
    switch's part are checked all the same, then the test skips."""
    mroute = kernel_features.has("mroute")
    sw = frr_lab.start_switch(default_flags=True)
    h1, h2, h3, router = (frr_lab[n] for n in ("h1", "h2", "h3", "router"))
    frr = _start_frr(frr_lab, FULL_CONFIG)
    sw.wait_status(lambda s: "router" in router_ports(s), timeout=8, what="router port learned from pimd")
    rx1, rx2 = h1.join(G, PORT), h2.join(G, PORT)
    _wait_pimd_lists(frr)
    cap1, rcap = h1.capture(), router.capture()

    t0 = time.monotonic()
    rx2.leave()
    # A switch that is not the querier lowers no timer on a leave: the elected querier's
    # group-specific queries do (RFC 3376 6.6.1). Without them (no multicast routing: pimd
    # answers no leave) h2 goes when its group membership interval runs out: robustness 2 x
    # query interval 4 s + response time 1 s after its last report.
    sw.wait_status(lambda s: "h2" not in members(s, G), timeout=5 if mroute else 2 * 4 + 1 + 2,
                   what="h2 pruned after its leave")
    pruned = time.monotonic() - t0
    wait_until(lambda: _leaves_of(rcap, G, h2.addr, t0), timeout=3, what=f"h2's leave of {G} at the router")
    if mroute:
        wait_until(lambda: cap1.igmp(lambda m: m.is_query and m.group == G and m.ip.src == ROUTER_ADDR), timeout=3,
                   what=f"pimd's group-specific query for {G} at h1")
    assert "h1" in members(sw.status(), G), "h1 was pruned together with h2"
    time.sleep(1.5)  # past pimd's last member query time (2 * 0.5 s): h1's answer kept the group
    if mroute:
        assert G in _frr_groups(frr), "pimd dropped the group although h1 is still a member"
    assert members(sw.status(), G) == {"h1"}

    cap2 = h2.capture()
    marker = random_marker("after-leave")
    sent = router.send_udp(G, PORT, count=20, marker=marker)
    got = rx1.collect(20, timeout=3, marker=marker)
    assert sorted(got) == sorted(sent), f"remaining member h1 received {len(got)} of 20"
    cap2.stop(settle=0.2)
    leaked = cap2.to_group(G)
    assert leaked == [], f"h2 left (pruned after {pruned:.2f}s) but saw {len(leaked)} frames of {G}"

    t1 = time.monotonic()
    rx1.leave()
    sw.wait_status(lambda s: "h1" not in members(s, G), timeout=5 if mroute else 2 * 4 + 1 + 2,
                   what="h1 pruned after its leave")
    wait_until(lambda: _leaves_of(rcap, G, h1.addr, t1), timeout=3, what=f"h1's leave of {G} at the router")
    if mroute:
        wait_until(lambda: G not in _frr_groups(frr), timeout=6, what=f"pimd dropping {G} after the last member left")
    assert frr.alive(), frr.log()
    _pimd_tables(f"pimd's group-specific queries after the leaves and its IGMP group table ({G} kept, then dropped)")


def test_pimd_shutdown_hello_with_holdtime_zero_ends_the_router_port(frr_lab):
    """With PIM only (no IGMP queries), the router's port is a router port for the hellos'
    holdtime and gets the group's traffic besides the member h1. When pimd stops it sends a
    hello with holdtime 0 (RFC 7761 4.3.1: the neighbor is gone at once): the port stops
    being a router port right away, and the group's traffic reaches h1 only."""
    sw = frr_lab.start_switch(default_flags=True)
    h1, h2, router = frr_lab["h1"], frr_lab["h2"], frr_lab["router"]
    frr = _start_frr(frr_lab, "interface eth0\n" + PIM_LINES)
    sw.wait_status(lambda s: router_ports(s, 1).get("router", {}).get("reason") == "pim-hello", timeout=8,
                   what="router port learned from pimd's hello")
    rx1 = h1.join(G, PORT)
    rcap = router.capture()
    marker = random_marker("with-router")
    sent = h2.send_udp(G, PORT, count=20, marker=marker)
    assert sorted(rx1.collect(20, timeout=3, marker=marker)) == sorted(sent), "member h1 missed datagrams"
    rcap.wait_for(lambda f: marker in f.data, count=20, timeout=3, what="group data at the router port")

    t0 = time.monotonic()
    frr.close()
    wait_until(lambda: rcap.outgoing(lambda f: f.ip is not None and f.ip.proto == 103 and len(f.ip.payload) >= 8
                                     and f.ip.payload[4:8] == b"\x00\x01\x00\x02" and f.ip.payload[8:10] == b"\x00\x00"),
               timeout=3, what="pimd's goodbye hello (holdtime 0)")
    sw.wait_status(lambda s: "router" not in router_ports(s), timeout=1.5,
                   what=f"the router port gone after the holdtime-0 hello (holdtime was {HOLDTIME}s)")
    gone = time.monotonic() - t0
    assert gone < HOLDTIME / 2, f"router port gone {gone:.1f}s after pimd stopped"
    rcap.stop()
    rcap = router.capture()
    marker = random_marker("router-gone")
    sent = h2.send_udp(G, PORT, count=20, marker=marker)
    assert sorted(rx1.collect(20, timeout=3, marker=marker)) == sorted(sent), "member h1 missed datagrams"
    rcap.stop(settle=0.2)
    leaked = rcap.to_group(G)
    assert leaked == [], f"the router's port is no router port any more but got {len(leaked)} frames of {G}"
