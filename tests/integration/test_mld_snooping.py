"""MLD snooping against real Linux hosts (issue 18): topologies/four-hosts.topo (h1..h4 on
VLAN 1) and topologies/two-vlans-trunk.topo plus trunk2, with IPv6 turned on in the hosts'
namespaces for each test (mld6.ipv6_up: no DAD, a 2001:db8::10:N address beside the
link-local fe80::ff:fe00:N; a fresh eth0 after the test).

RFC 4541 3 asks a snooping switch for MLD snooping beside IGMP snooping: IPv6 multicast
(33:33:xx:xx:xx:xx) goes only to the ports whose hosts joined the group (MLDv1, RFC 2710;
MLDv2, RFC 9777; source-specific joins, RFC 4604) and to multicast router ports (learned
from MLD queries from a non-zero source, PIMv6 hellos, RFC 4286 router advertisements, or
static); reports and Dones go to router ports only; ff02::1 and ff00::/15 are never snooped;
neighbour discovery never breaks (solicited-node groups are flooded while no member is known).
The switch as MLD querier: general queries from a link-local address to ff02::1 (hop limit
1, Router Alert), election by lowest address, specific queries after Done / TO_IN({}),
MLDv1 queries while an MLDv1 host is present.

Hosts join with real sockets (IPV6_JOIN_GROUP, MCAST_JOIN_SOURCE_GROUP, MCAST_BLOCK_SOURCE):
their kernels send the MLD messages. "Not delivered" is checked with a capture on the
host's eth0 (a socket filters by itself), "delivered" with a socket (a kernel drops a frame
whose checksum the switch left unfinished). Frames a host's kernel does not send (tagged
reports from the trunk hosts, PIMv6 hellos, MRD advertisements, queries from ::) are crafted.
"""

from __future__ import annotations

import re
import time

import pytest

import kernel_features
from lab import igmp_of, igmp_query, members, random_marker, sh, wait_until
from mld6 import (ALL_NODES, IS_EX, MRD_SOLICITATION, TO_EX, TO_IN, addresses6, eui64_link_local,
                  global_addr, group6, groups6, icmp6_in, ip6, ipv6_up, member6, members6,
                  mld_counter, mld_errors, mld_in, mld_query_frame, mld_v2_report_frame, mrd_advertisement_frame, ping6,
                  pim6_hello_frame, querier6, receiver6, router_ports6, same6, send_mld_query, send_udp6,
                  solicited_node, tcp6_transfer, udp6_frame, udp6_in)

G = "ff15::4242"          # transient, site-local scope
G2 = "ff15::4343"         # nobody joins it: unregistered
G_LINK = "ff02::4242"     # link scope, but not ff02::1: snooped
G_GLOBAL = "ff0e::4242"
G_SSM = "ff3e::1234"      # in ff3x::/32, the default SSM range
PORT = 5600
QA = "192.0.2.254"        # the switch's IGMP querier address in these tests
SW_LL = "fe80::53:4eff:fe4f:4f50"  # the switch's default MLD querier address (from its MAC)


# ---- fixtures -----------------------------------------------------------------------
@pytest.fixture
def six(four):
    """four-hosts.topo (h1..h4, VLAN 1); IPv6 is off on the hosts until the test calls
    ipv6_up; every host gets a fresh eth0 afterwards (no MLD state left behind)."""
    yield four
    four._joined_hosts.update(h.name for h in four.hosts.values() if h.addr)


@pytest.fixture
def vlans6(vlans):
    """two-vlans-trunk.topo plus trunk2 (see test_vlans.py); the access hosts get a fresh
    eth0 afterwards. The trunk hosts keep IPv6 off: they send crafted tagged frames."""
    yield vlans
    vlans._joined_hosts.update(h.name for h in vlans.hosts.values() if h.addr)


def _hosts(lab, *names):
    return [lab[n] for n in names]


def join6(host, group, port, sources=(), vlan: int = 1, timeout: float = 5.0):
    """Join group with a socket (any-source, or each of `sources`) and wait until the switch
    lists this host's port as an MLD member of group in vlan (with those sources)."""
    rx = receiver6(host, group, port, sources)
    sw = host.lab.switch

    def listed(s):
        e = member6(s, group, host.name, vlan)
        return e is not None and (not sources or {ip6(x) for x in sources} <= addresses6(e.get("sources")))

    sw.wait_status(listed, timeout=timeout, what=f"{host.name} listed as MLD member of {group} in VLAN {vlan}"
                   + (f" with sources {list(sources)}" if sources else ""))
    return rx


def _got_all(rx, sent, what, timeout: float = 3.0):
    want = set(sent)
    got: set = set()
    deadline = time.monotonic() + timeout
    while not want <= got and time.monotonic() < deadline:
        got.update(rx.collect(1, timeout=0.1, settle=0.0))
    missing = want - got
    assert not missing, f"{what}: received {len(want) - len(missing)} of {len(want)} datagrams"


def _reports_from_others(cap, pred=lambda m: True):
    """MLD reports and Dones that reached a capture's host (its own are outgoing)."""
    return mld_in(cap, lambda m: (m.is_report or m.is_done) and pred(m))


def _general_queries(cap, src=None):
    return mld_in(cap, lambda m: m.is_query and m.group == ip6("::") and (src is None or m.ip.src == ip6(src)))


def _check_query_frame(q, version: int, dst: str = ALL_NODES):
    """On the wire as RFC 2710 / RFC 9777 5.1 want: to dst (its 33:33 MAC), hop limit 1, a
    hop-by-hop Router Alert (value 0: MLD), a link-local source, a right checksum, the size
    of the version (24 bytes MLDv1, 28 + 16 per source MLDv2)."""
    f = q.frame
    assert q.ip.dst == ip6(dst), f"query to {q.ip.dst}, expected {dst}: {q}"
    assert f.dst == "33:33:" + ":".join(f"{b:02x}" for b in ip6(dst).packed[12:]), f"query to MAC {f.dst}: {q}"
    assert q.ip.hop_limit == 1, f"hop limit {q.ip.hop_limit}: {q}"
    assert q.ip.router_alert == 0, f"no hop-by-hop Router Alert (MLD): {q}"
    assert q.ip.src.is_link_local, f"query from {q.ip.src}, not a link-local address: {q}"
    assert q.ip.upper_checksum_ok, f"bad ICMPv6 checksum: {q}"
    assert q.ip.payload_length == len(q.raw) + 8 * len(q.ip.extension_headers), q
    if version == 1:
        assert len(q.raw) == 24, f"MLDv1 query of {len(q.raw)} bytes: {q}"
    else:
        assert len(q.raw) == 28 + 16 * len(q.query_sources), f"MLDv2 query of {len(q.raw)} bytes: {q}"


# ---- membership and delivery ------------------------------------------------------------
@pytest.mark.parametrize("mld,group", [(2, G), (1, G), (2, G_LINK)], ids=["mldv2", "mldv1", "mldv2-link-scope"])
def test_joined_hosts_receive_group_traffic_others_see_none(six, mld, group):
    """h1 and h2 (MLDv2 by default, or forced to MLDv1) join the group with a socket; the
    switch lists both as MLD members with their version; 20 datagrams from h4 reach both
    sockets, and h3, which did not join, sees none of them on its wire. A link-scope group
    other than ff02::1 (ff02::4242) is snooped too."""
    sw = six.start_switch()
    h1, h2, h3, h4 = _hosts(six, "h1", "h2", "h3", "h4")
    for h in (h1, h2, h3, h4):
        ipv6_up(h, mld_version=mld if h in (h1, h2) else 0)
    rx1 = join6(h1, group, PORT)
    rx2 = join6(h2, group, PORT)
    st = sw.status()
    assert members6(st, group) == {"h1", "h2"}, group6(st, group)
    for name in ("h1", "h2"):
        e = member6(st, group, name)
        assert e["version"] == mld and e["compatibility"] == mld, e
    assert not any(same6(g.get("group"), group) for g in st["groups"] if g.get("protocol") != "mld"), st["groups"]
    assert mld_counter(st, "received", "v2_report" if mld == 2 else "v1_report") >= 2, st.get("mld")

    cap3 = h3.capture()
    marker = random_marker("mld-data")
    sent = send_udp6(h4, group, PORT, count=20, marker=marker)
    _got_all(rx1, sent, f"h1 (joined {group}, MLDv{mld})")
    _got_all(rx2, sent, f"h2 (joined {group}, MLDv{mld})")
    cap3.stop(settle=0.2)
    leaked = udp6_in(cap3, group)
    assert leaked == [], f"h3 did not join {group} but saw {len(leaked)} of its datagrams: {leaked[:2]}"
    if kernel_features.has("tcx"):
        # Two members: each datagram is sent once and the kernel clones it to the other port
        # (egress replication), for IPv6 as for IPv4.
        cloned = sw.status()["datapath"]["cloned_frames"]
        assert cloned >= 20, f"{cloned} frames cloned for 20 datagrams to two members: no egress replication"


@pytest.mark.parametrize("mld", [2, 1], ids=["mldv2-to-in", "mldv1-done"])
def test_leave_prunes_after_specific_queries_while_the_other_member_keeps_the_group(six, mld):
    """As querier (last member query interval 1 s, count 2), when h2 leaves (MLDv1 Done, or
    MLDv2 TO_IN({})) the switch sends group-specific queries (to the group, max response =
    1 s) and prunes h2's port when nobody answers
    from it, within about 3 s; h1, still joined, keeps receiving; h2's wire sees no more data."""
    sw = six.start_switch("--querier", "--querier-address", QA, "--query-interval", "10",
                          "--query-response-interval", "1")
    h1, h2, h3, h4 = _hosts(six, "h1", "h2", "h3", "h4")
    for h in (h1, h2, h3, h4):
        ipv6_up(h, mld_version=mld if h in (h1, h2) else 0)
    rx1 = join6(h1, G, PORT)
    rx2 = join6(h2, G, PORT)
    before = random_marker("before")
    sent = send_udp6(h4, G, PORT, count=10, marker=before)
    _got_all(rx1, sent, "h1 before the leave")
    _got_all(rx2, sent, "h2 before the leave")

    cap2 = h2.capture()
    t0 = time.monotonic()
    rx2.leave()
    sw.wait_status(lambda s: "h2" not in members6(s, G), timeout=6,
                   what="h2 pruned from the group after the unanswered group-specific queries")
    took = time.monotonic() - t0
    assert "h1" in members6(sw.status(), G), "the other member h1 was pruned too"
    assert took <= 4.5, f"h2 pruned only {took:.1f}s after its leave (2 queries 1 s apart)"
    assert took >= 0.9, f"h2 pruned {took:.2f}s after its leave: before the last member queries could be answered"
    time.sleep(0.2)
    gsq = mld_in(cap2, lambda m: m.is_query and m.group == ip6(G))
    assert len(gsq) >= 2, f"expected 2 group-specific queries for {G} at h2 after its leave, saw {gsq}"
    for q in gsq:
        # MLDv2 hosts only: MLDv2 queries. Which format an MLDv1 host gets is
        # test_mldv1_queries_with_an_mldv1_host_or_when_asked's question.
        _check_query_frame(q, 2 if mld == 2 else q.query_version, dst=G)
        assert q.ip.src == ip6(SW_LL), f"group-specific query from {q.ip.src}, expected the switch's {SW_LL}"
        assert q.max_resp_ms == 1000, f"max response {q.max_resp_ms} ms, expected the last member query interval"
    st = sw.status()
    assert mld_counter(st, "sent", "group_query") >= 2, st.get("mld")
    if mld == 1:
        assert mld_counter(st, "received", "done") >= 1, st.get("mld")

    cap2.stop()
    cap2 = h2.capture()
    after = random_marker("after")
    sent = send_udp6(h4, G, PORT, count=20, marker=after)
    _got_all(rx1, sent, "h1 (still joined) after h2 left")
    cap2.stop(settle=0.2)
    leaked = udp6_in(cap2, G, marker=after)
    assert leaked == [], f"h2 left (pruned after {took:.1f}s) but still saw {len(leaked)} datagrams of {G}"


@pytest.mark.parametrize("mld", [2, 1], ids=["mldv2-to-in", "mldv1-done"])
def test_fast_leave_port_is_pruned_at_once(six, mld):
    """On a :fast-leave port, h2's leave removes it from the group within 1 s (no query
    round, no querier here); h1 keeps receiving, h2's wire sees nothing more."""
    sw = six.start_switch(suffixes={"h2": ":fast-leave"})
    h1, h2, h4 = _hosts(six, "h1", "h2", "h4")
    for h in (h1, h2, h4):
        ipv6_up(h, mld_version=mld if h in (h1, h2) else 0)
    rx1 = join6(h1, G, PORT)
    rx2 = join6(h2, G, PORT)
    sent = send_udp6(h4, G, PORT, count=10, marker=random_marker("before"))
    _got_all(rx2, sent, "h2 before its leave")
    rx2.leave()
    sw.wait_status(lambda s: "h2" not in members6(s, G), timeout=1.0,
                   what="h2 pruned within 1 s of its leave (fast leave)")
    assert "h1" in members6(sw.status(), G)
    cap2 = h2.capture()
    after = random_marker("after")
    sent = send_udp6(h4, G, PORT, count=20, marker=after)
    _got_all(rx1, sent, "h1 after h2's fast leave")
    cap2.stop(settle=0.2)
    leaked = udp6_in(cap2, G, marker=after)
    assert leaked == [], f"h2 left a fast-leave port but still saw {len(leaked)} datagrams of {G}"


# ---- sources ----------------------------------------------------------------------------
def test_source_specific_join_gets_only_its_source(six):
    """h1 joins (S1, ff3e::1234) and h2 joins (S2, ff3e::1234) with MCAST_JOIN_SOURCE_GROUP
    (INCLUDE mode: MLDv2 ALLOW records); the status shows each in include mode with its
    source. S1 (h3) and S2 (h4) both send: each receiver gets its own source's datagrams, and
    no frame of the other source reaches its wire."""
    sw = six.start_switch()
    h1, h2, h3, h4 = _hosts(six, "h1", "h2", "h3", "h4")
    for h in (h1, h2, h3, h4):
        ipv6_up(h)
    s1, s2 = global_addr(h3), global_addr(h4)
    rx1 = join6(h1, G_SSM, PORT, sources=[s1])
    rx2 = join6(h2, G_SSM, PORT, sources=[s2])
    st = sw.status()
    for name, src in (("h1", s1), ("h2", s2)):
        e = member6(st, G_SSM, name)
        assert e["mode"] == "include" and addresses6(e["sources"]) == {ip6(src)}, e
        assert e["version"] == 2, e
    caps = {"h1": h1.capture(), "h2": h2.capture()}
    m1, m2 = random_marker("from-s1"), random_marker("from-s2")
    sent1 = send_udp6(h3, G_SSM, PORT, count=20, marker=m1)
    sent2 = send_udp6(h4, G_SSM, PORT, count=20, marker=m2)
    _got_all(rx1, sent1, "h1 (INCLUDE {S1}) from S1")
    _got_all(rx2, sent2, "h2 (INCLUDE {S2}) from S2")
    for cap in caps.values():
        cap.stop(settle=0.2)
    assert len(udp6_in(caps["h1"], G_SSM, src=s1)) == 20, "h1's capture missed S1's frames (harness problem)"
    leaked1 = udp6_in(caps["h1"], G_SSM, src=s2)
    leaked2 = udp6_in(caps["h2"], G_SSM, src=s1)
    assert leaked1 == [], f"h1 joined (S1, G) only but {len(leaked1)} frames from S2 reached it"
    assert leaked2 == [], f"h2 joined (S2, G) only but {len(leaked2)} frames from S1 reached it"


@pytest.mark.parametrize("ssm_range", [None, "ff35::/16"], ids=["default-ssm-range", "mld-ssm-range-elsewhere"])
def test_any_source_join_in_the_ssm_range_is_ignored(six, ssm_range):
    """RFC 4604: in the SSM range (ff3x::/32 by default) an any-source join (EXCLUDE {}) is
    ignored. h1 joins ff3e::1234 for any source, then ff15::4242: once the second join is
    listed, the first was read and not taken; S1's datagrams to ff3e::1234 do not reach h1.
    With --mld-ssm-range ff35::/16, ff3e::1234 is outside the range: the same join is taken
    and h1 gets the datagrams."""
    sw = six.start_switch(*(["--mld-ssm-range", ssm_range] if ssm_range else []))
    h1, h3 = _hosts(six, "h1", "h3")
    ipv6_up(h1)
    ipv6_up(h3)
    rx_ssm = receiver6(h1, G_SSM, PORT)
    join6(h1, G, PORT + 1)
    time.sleep(0.2)
    st = sw.status()
    marker = random_marker("ssm-asm")
    if ssm_range:
        assert "h1" in members6(st, G_SSM), f"outside --mld-ssm-range, h1's join was not taken: {group6(st, G_SSM)}"
        sent = send_udp6(h3, G_SSM, PORT, count=20, marker=marker)
        _got_all(rx_ssm, sent, f"h1 (any-source member of {G_SSM}, outside the SSM range)")
        return
    assert "h1" not in members6(st, G_SSM), f"an any-source join in the SSM range was taken: {group6(st, G_SSM)}"
    cap1 = h1.capture()
    send_udp6(h3, G_SSM, PORT, count=20, marker=marker)
    cap1.stop(settle=0.3)
    leaked = udp6_in(cap1, G_SSM, marker=marker)
    assert leaked == [], f"h1's any-source join of {G_SSM} got it {len(leaked)} datagrams"
    assert rx_ssm.drain() == []


def test_block_sends_a_group_and_source_specific_query_and_prunes_that_source(six):
    """As querier: h1 joins (S1, G) and (S2, G) (INCLUDE {S1, S2}), then drops S2 (a BLOCK
    {S2} record). The switch sends group-and-source-specific queries for (G, {S2}) (to G,
    MLDv2, listing S2 only), and when h1 does not answer for S2, S2 leaves h1's sources within
    about 3 s while S1 stays; then S1's datagrams still reach h1 and S2's no longer do."""
    sw = six.start_switch("--querier", "--querier-address", QA, "--query-interval", "10",
                          "--query-response-interval", "1")
    h1, h3, h4 = _hosts(six, "h1", "h3", "h4")
    for h in (h1, h3, h4):
        ipv6_up(h)
    s1, s2 = global_addr(h3), global_addr(h4)
    rx = join6(h1, G, PORT, sources=[s1, s2])
    cap = h1.capture()
    rx.drop_source(s2)
    sw.wait_status(lambda s: (e := member6(s, G, "h1")) is not None and addresses6(e.get("sources")) == {ip6(s1)},
                   timeout=6, what="S2 pruned from h1's sources, S1 kept")
    time.sleep(0.2)
    gssq = mld_in(cap, lambda m: m.is_query and m.group == ip6(G) and m.query_version == 2 and m.query_sources)
    assert gssq, f"no group-and-source-specific query for {G} reached h1 after its BLOCK"
    for q in gssq:
        _check_query_frame(q, 2, dst=G)
        assert q.query_sources == [ip6(s2)], f"the query lists {q.query_sources}, expected S2 only"
        assert q.ip.src == ip6(SW_LL), q
    assert mld_counter(sw.status(), "sent", "group_source_query") >= 1, sw.status().get("mld")
    cap.stop()
    cap = h1.capture()
    m1, m2 = random_marker("s1-after"), random_marker("s2-after")
    sent1 = send_udp6(h3, G, PORT, count=20, marker=m1)
    send_udp6(h4, G, PORT, count=20, marker=m2)
    _got_all(rx, sent1, "h1 from S1 (still included)")
    cap.stop(settle=0.2)
    leaked = udp6_in(cap, G, src=s2)
    assert leaked == [], f"h1 dropped S2 but {len(leaked)} frames from S2 still reached it"


def test_exclude_mode_member_blocking_a_source_gets_the_other_source_only(six):
    """h1 joins ff15::4242 for any source, then blocks S2 (MCAST_BLOCK_SOURCE: EXCLUDE {S2});
    h2 joins for any source. S1 and S2 send: h1 gets S1's datagrams and its wire sees none of
    S2's; h2 gets both."""
    sw = six.start_switch()
    h1, h2, h3, h4 = _hosts(six, "h1", "h2", "h3", "h4")
    for h in (h1, h2, h3, h4):
        ipv6_up(h)
    s1, s2 = global_addr(h3), global_addr(h4)
    rx1 = join6(h1, G, PORT)
    rx1.block(s2)
    e = sw.wait_status(lambda s: (e := member6(s, G, "h1")) is not None and addresses6(e.get("excluded")) == {ip6(s2)}
                       and e, timeout=3, what="h1 in EXCLUDE {S2}")
    assert e["mode"] == "exclude", e
    rx2 = join6(h2, G, PORT)
    cap1 = h1.capture()
    m1, m2 = random_marker("from-s1"), random_marker("from-s2")
    sent1 = send_udp6(h3, G, PORT, count=20, marker=m1)
    sent2 = send_udp6(h4, G, PORT, count=20, marker=m2)
    _got_all(rx1, sent1, "h1 (EXCLUDE {S2}) from S1")
    _got_all(rx2, sent1 + sent2, "h2 (EXCLUDE {}) from S1 and S2")
    cap1.stop(settle=0.2)
    leaked = udp6_in(cap1, G, src=s2)
    assert leaked == [], f"h1 blocked S2 but {len(leaked)} frames from S2 reached it"


# ---- router ports -----------------------------------------------------------------------
@pytest.mark.parametrize("query_version", [2, 1], ids=["mldv2-query", "mldv1-query"])
def test_host_sending_mld_queries_becomes_a_router_port_and_gets_the_reports(six, query_version):
    """h4's kernel sends an MLD general query (raw ICMPv6 socket, from its link-local
    address, hop limit 1, Router Alert): it reaches the other hosts and h4's port becomes a
    learned MLD router port (reason mld-query), not an IGMP one. Then h1's report when it
    joins, and its Done / TO_IN({}) when it leaves, reach h4 and no other host; no host port
    sees any other host's reports (answers to the query included); group data reaches the
    member and the router port only."""
    sw = six.start_switch()
    h1, h2, h3, h4 = _hosts(six, "h1", "h2", "h3", "h4")
    lls = {h.name: ipv6_up(h) for h in (h1, h2, h3, h4)}
    caps = {h.name: h.capture() for h in (h1, h2, h3, h4)}
    send_mld_query(h4, version=query_version, max_resp_ms=500)
    rp = sw.wait_status(lambda s: router_ports6(s, 1).get("h4"), timeout=3, what="h4 as a learned MLD router port")
    assert rp["kind"] == "learned" and rp["reason"] == "mld-query", rp
    assert rp.get("expires_in") is not None and rp["expires_in"] > 0, rp
    st = sw.status()
    assert set(router_ports6(st)) == {"h4"}, router_ports6(st)
    assert not [r for r in st.get("router_ports", []) if r["port"] == "h4" and r.get("protocol") == "igmp"], \
        f"an MLD query made h4 an IGMP router port: {st['router_ports']}"
    assert mld_counter(st, "received", f"query_v{query_version}") >= 1, st.get("mld")
    for name in ("h1", "h2", "h3"):
        wait_until(lambda: mld_in(caps[name], lambda m: m.is_query and m.ip.src == ip6(lls["h4"])), timeout=2,
                   what=f"h4's query forwarded to {name}")

    rx = receiver6(h1, G, PORT)
    wait_until(lambda: _reports_from_others(caps["h4"], lambda m: m.ip.src == ip6(lls["h1"]) and m.mentions(G)),
               timeout=3, what="h1's report for G at router port h4")
    marker = random_marker("to-router")
    sent = send_udp6(h3, G, PORT, count=20, marker=marker)
    _got_all(rx, sent, "member h1")
    caps["h4"].wait_for(lambda f: marker in f.data, count=20, timeout=3, what="group data at router port h4")
    rx.leave()
    wait_until(lambda: _reports_from_others(caps["h4"], lambda m: m.ip.src == ip6(lls["h1"]) and m.mentions(G)
                                            and (m.is_done or any(t == TO_IN for t, g, _ in m.records() if g == ip6(G)))),
               timeout=3, what="h1's Done / TO_IN({}) for G at router port h4")
    time.sleep(1.0)  # the answers to h4's query (max response 0.5 s) are all out
    for name in ("h1", "h2", "h3"):
        caps[name].stop()
        leaked = _reports_from_others(caps[name])
        assert leaked == [], f"host port {name} received MLD reports/Dones of other hosts: {leaked[:4]}"
    assert udp6_in(caps["h2"], G) == [], "non-member h2 saw group data"
    answers = _reports_from_others(caps["h4"], lambda m: m.ip.src != ip6(lls["h4"]))
    assert {m.ip.src for m in answers} >= {ip6(lls[n]) for n in ("h1", "h2", "h3")}, \
        f"router port h4 did not get every host's answer to its query: {answers}"


def test_query_from_unspecified_address_makes_no_router_port(six):
    """An MLD query from :: (a snooping switch's proxy query; RFC 9777 5.1.14 has it
    discarded) does not make its port a router port; a PIMv6 hello sent afterwards on another
    port shows the switch got that far."""
    sw = six.start_switch()
    h3, h4 = six["h3"], six["h4"]
    h4.send_frames([mld_query_frame(h4.mac, "::", max_resp_ms=1000)])
    sw.wait_status(lambda s: mld_counter(s, "received", "query_v2") >= 1
                   or mld_errors(s) >= 1,
                   timeout=2, what="the query from :: counted (as a query, or as an error)")
    h3.send_frames([pim6_hello_frame(h3.mac, eui64_link_local(h3.mac))])
    sw.wait_status(lambda s: "h3" in router_ports6(s), timeout=2, what="h3 an MLD router port (PIMv6 hello)")
    assert "h4" not in router_ports6(sw.status()), "a query from :: made h4 a router port"


@pytest.mark.parametrize("kind", ["pim-hello", "mrd-advertisement"])
def test_pim6_hello_and_mrd_advertisement_make_router_ports(six, kind):
    """A PIMv6 hello (to ff02::d) or a Multicast Router Advertisement (ICMPv6 151 to ff02::6a,
    RFC 4286) makes its port a learned MLD router port with that reason; data for an IPv6 group
    nobody joined then reaches that port and no host port."""
    sw = six.start_switch()
    h1, h2, h3, h4 = _hosts(six, "h1", "h2", "h3", "h4")
    ll3 = eui64_link_local(h3.mac)
    frame = pim6_hello_frame(h3.mac, ll3) if kind == "pim-hello" else mrd_advertisement_frame(h3.mac, ll3)
    h3.send_frames([frame])
    rp = sw.wait_status(lambda s: router_ports6(s, 1).get("h3"), timeout=2, what=f"h3 an MLD router port ({kind})")
    assert rp["kind"] == "learned" and rp["reason"] == kind, rp
    st = sw.status()
    assert mld_counter(st, "received", kind.replace("-", "_")) >= 1, st.get("mld")
    caps = {h.name: h.capture() for h in (h1, h2, h3)}
    marker = random_marker("unreg6")
    src = "2001:db8::10:4"
    h4.send_frames([udp6_frame(h4.mac, src, G2, PORT, marker + b" #%02d" % i) for i in range(10)])
    caps["h3"].wait_for(lambda f: marker in f.data, count=10, timeout=3, what="unregistered group data at router port h3")
    time.sleep(0.2)
    for name in ("h1", "h2"):
        caps[name].stop()
        assert caps[name].with_marker(marker) == [], f"host port {name} got data of unregistered group {G2}"


def test_static_router_port_gets_reports_and_unregistered_ipv6_groups(six):
    """A static :router port (h4) gets h1's MLD report (h2 and h3 do not), the data of a
    group h1 joined, and the data of an IPv6 group nobody joined (which no host port gets)."""
    sw = six.start_switch(suffixes={"h4": ":router"})
    h1, h2, h3, h4 = _hosts(six, "h1", "h2", "h3", "h4")
    lls = {h.name: ipv6_up(h) for h in (h1, h2, h3, h4)}
    st = sw.status()
    rp = router_ports6(st).get("h4")
    assert rp and rp["kind"] == "static" and rp.get("expires_in") is None, st.get("router_ports")
    caps = {h.name: h.capture() for h in (h2, h3, h4)}
    rx = join6(h1, G, PORT)
    wait_until(lambda: _reports_from_others(caps["h4"], lambda m: m.ip.src == ip6(lls["h1"]) and m.mentions(G)),
               timeout=3, what="h1's report at the static router port")
    m_unreg, m_reg = random_marker("unreg"), random_marker("reg")
    send_udp6(h3, G2, PORT, count=20, marker=m_unreg)
    sent = send_udp6(h3, G, PORT, count=20, marker=m_reg)
    _got_all(rx, sent, "member h1")
    caps["h4"].wait_for(lambda f: m_unreg in f.data, count=20, timeout=3, what=f"unregistered {G2} at the router port")
    caps["h4"].wait_for(lambda f: m_reg in f.data, count=20, timeout=3, what=f"registered {G} at the router port")
    time.sleep(0.2)
    caps["h2"].stop()
    caps["h3"].stop()
    assert udp6_in(caps["h2"], G2) == [] and udp6_in(caps["h2"], G) == [], "host port h2 got group data"
    for name in ("h2", "h3"):
        leaked = _reports_from_others(caps[name], lambda m: m.ip.src == ip6(lls["h1"]))
        assert leaked == [], f"host port {name} received h1's MLD reports: {leaked}"


def test_router_ports_and_groups_are_per_protocol(six):
    """An MLD query makes h4 an MLD router port, an IGMP query makes h3 an IGMP router port:
    unregistered IPv6 data goes to h4 only, unregistered IPv4 data to h3 only. An IPv4 member
    (h1, of 239.6.6.6) and an IPv6 member (h2, of ff15::4242) each get their own group only."""
    sw = six.start_switch()
    h1, h2, h3, h4 = _hosts(six, "h1", "h2", "h3", "h4")
    for h in (h1, h2, h4):
        ipv6_up(h)
    send_mld_query(h4, max_resp_ms=500)
    h3.send_frames([igmp_query(h3.mac, "192.0.2.100", version=3, max_resp=0.5)])
    sw.wait_status(lambda s: set(router_ports6(s)) == {"h4"}
                   and {r["port"] for r in s.get("router_ports", []) if r.get("protocol") == "igmp"} == {"h3"},
                   timeout=3, what="h4 the MLD router port and h3 the IGMP one")
    g4 = "239.6.6.6"
    rx4 = h1.join(g4, PORT)
    rx6 = join6(h2, G, PORT)
    st = sw.status()
    assert members(st, g4) == {"h1"} and members6(st, G) == {"h2"}, st["groups"]
    caps = {h.name: h.capture() for h in (h1, h2, h3, h4)}
    m4, m6, u4, u6 = (random_marker(t) for t in ("v4", "v6", "unreg-v4", "unreg-v6"))
    sent4 = six["h4"].send_udp(g4, PORT, count=10, marker=m4)
    sent6 = send_udp6(h1, G, PORT, count=10, marker=m6)
    six["h2"].send_udp("239.6.6.7", PORT, count=10, marker=u4)
    send_udp6(h1, G2, PORT, count=10, marker=u6)
    _got_all(rx4, sent4, "IPv4 member h1")
    _got_all(rx6, sent6, "IPv6 member h2")
    caps["h4"].wait_for(lambda f: u6 in f.data, count=10, timeout=3, what="unregistered IPv6 data at MLD router port h4")
    caps["h3"].wait_for(lambda f: u4 in f.data, count=10, timeout=3, what="unregistered IPv4 data at IGMP router port h3")
    time.sleep(0.2)
    for cap in caps.values():
        cap.stop()
    assert caps["h4"].with_marker(u4) == [], "the MLD router port h4 got unregistered IPv4 data"
    assert caps["h3"].with_marker(u6) == [], "the IGMP router port h3 got unregistered IPv6 data"
    assert caps["h2"].with_marker(m4) == [], "IPv6 member h2 got IPv4 group data"
    assert caps["h1"].with_marker(m6) == [] and caps["h1"].with_marker(u4) == [], "h1 got data it did not join"
    assert caps["h2"].with_marker(u6) == [], "h2 got unregistered IPv6 data"


def test_report_from_unspecified_address_is_accepted(six):
    """RFC 3590: a host without a usable link-local address yet reports from ::. An MLDv2
    report from :: for ff0e::4242 makes h1 a member."""
    sw = six.start_switch()
    h1 = six["h1"]
    h1.send_frames([mld_v2_report_frame(h1.mac, "::", [(IS_EX, G_GLOBAL, [])])])
    sw.wait_status(lambda s: "h1" in members6(s, G_GLOBAL), timeout=2, what=f"h1 member of {G_GLOBAL} (report from ::)")


def test_reports_failing_rfc_9777_checks_are_discarded(six):
    """RFC 9777 5.2.13: a report whose source is neither link-local nor ::, or whose hop limit
    is not 1, or that lacks the Router Alert option, is discarded (counted as an MLD error,
    no membership); the same report done right makes h1 a member."""
    sw = six.start_switch()
    h1 = six["h1"]
    ll1 = eui64_link_local(h1.mac)
    before = mld_errors(sw.status())
    h1.send_frames([
        mld_v2_report_frame(h1.mac, "2001:db8::10:1", [(IS_EX, G_GLOBAL, [])]),
        mld_v2_report_frame(h1.mac, ll1, [(IS_EX, G_GLOBAL, [])], hop_limit=2),
        mld_v2_report_frame(h1.mac, ll1, [(IS_EX, G_GLOBAL, [])], router_alert=False),
    ])
    sw.wait_status(lambda s: mld_errors(s) >= before + 3, timeout=2, what="three MLD errors counted")
    assert "h1" not in members6(sw.status(), G_GLOBAL), group6(sw.status(), G_GLOBAL)
    h1.send_frames([mld_v2_report_frame(h1.mac, ll1, [(IS_EX, G_GLOBAL, [])])])
    sw.wait_status(lambda s: "h1" in members6(s, G_GLOBAL), timeout=2, what="h1 a member after a valid report")


def test_groups_per_port_limit_holds_for_mld(six):
    """--max-groups-per-port 2: of four groups in one MLDv2 report, the port holds two; the
    refusals are counted (mld.errors limit_groups_per_port)."""
    sw = six.start_switch("--max-groups-per-port", "2")
    h1 = six["h1"]
    groups = [f"ff0e::77:{i}" for i in range(1, 5)]
    h1.send_frames([mld_v2_report_frame(h1.mac, eui64_link_local(h1.mac), [(IS_EX, g, []) for g in groups])])
    st = sw.wait_status(lambda s: mld_counter(s, "errors", "limit_groups_per_port") >= 2 and s, timeout=2,
                        what="two refusals counted as limit_groups_per_port")
    held = [g for g in groups if "h1" in members6(st, g)]
    assert len(held) == 2, f"h1 holds {held} (limit 2): {groups6(st)}"


def test_flood_unregistered_floods_unregistered_ipv6_groups(six):
    """With --flood-unregistered, data to an IPv6 group nobody joined reaches every other port;
    a group h1 joined still goes to h1 only."""
    sw = six.start_switch("--flood-unregistered")
    h1, h2, h3, h4 = _hosts(six, "h1", "h2", "h3", "h4")
    for h in (h1, h4):
        ipv6_up(h)
    rx = join6(h1, G, PORT)
    caps = {h.name: h.capture() for h in (h1, h2, h3)}
    m_unreg, m_reg = random_marker("unreg6"), random_marker("reg6")
    send_udp6(h4, G2, PORT, count=10, marker=m_unreg)
    sent = send_udp6(h4, G, PORT, count=10, marker=m_reg)
    _got_all(rx, sent, "member h1")
    for name, cap in caps.items():
        cap.wait_for(lambda f: m_unreg in f.data, count=10, timeout=3, what=f"flooded {G2} at {name}")
    time.sleep(0.2)
    for name in ("h2", "h3"):
        caps[name].stop()
        assert caps[name].with_marker(m_reg) == [], f"non-member {name} got registered group {G}"


def test_silent_member_expires_after_the_listener_interval_answering_member_stays(six):
    """As querier (query interval 2 s, response interval 1 s, robustness 2: multicast address
    listening interval 2*2+1 = 5 s): h3's port, from one crafted report and then silence, is
    pruned after about 5 s; h1, a real host that answers the queries, stays a member."""
    sw = six.start_switch("--querier", "--querier-address", QA, "--query-interval", "2",
                          "--query-response-interval", "1")
    h1, h3 = six["h1"], six["h3"]
    ipv6_up(h1)
    join6(h1, G, PORT)
    h3.send_frames([mld_v2_report_frame(h3.mac, eui64_link_local(h3.mac), [(IS_EX, G, [])])])
    e = sw.wait_status(lambda s: member6(s, G, "h3"), timeout=2, what="h3 a member after its report")
    t0 = time.monotonic()
    assert 3.5 <= e["expires_in"] <= 5.2, f"h3 expires in {e['expires_in']}, expected about 5 s"
    sw.wait_status(lambda s: member6(s, G, "h3") is None, timeout=7, what="h3 pruned after the listening interval")
    gone = time.monotonic() - t0
    assert 3.0 <= gone <= 6.0, f"h3 pruned after {gone:.1f}s, expected about 5 s"
    assert "h1" in members6(sw.status(), G), "h1 answers the queries but was pruned"


def test_querier_learns_the_groups_of_hosts_that_came_up_before_it(six):
    """Hosts configure IPv6 before the switch starts; the switch, as querier, queries at start
    and learns their solicited-node groups from the answers (what README says closes the gap
    of a host whose report was lost)."""
    h1, h2 = six["h1"], six["h2"]
    lls = {h.name: ipv6_up(h, unsolicited_ms=50) for h in (h1, h2)}
    time.sleep(0.5)
    sw = six.start_switch("--querier", "--querier-address", QA, "--query-interval", "4",
                          "--query-response-interval", "1")
    for h in (h1, h2):
        for g in (solicited_node(global_addr(h)), solicited_node(lls[h.name])):
            sw.wait_status(lambda s: members6(s, g) == {h.name}, timeout=3,
                           what=f"{h.name} listed in its solicited-node group {g} after the startup query")


def test_mdb_add_and_del_take_ipv6_groups(six):
    """`snoopswitch mdb add h3 ff15::4343` makes h3 a static MLD member: IPv6 data to the
    group reaches h3 and not h2; `mdb del` removes it and the data stops."""
    sw = six.start_switch()
    h2, h3, h4 = _hosts(six, "h2", "h3", "h4")
    r = sw.command("mdb", "add", "h3", G2, "--vlan", "1")
    assert r.returncode == 0, f"mdb add of an IPv6 group failed: {r.stdout} {r.stderr}"
    e = sw.wait_status(lambda s: member6(s, G2, "h3"), timeout=2, what="h3 a static MLD member")
    assert e.get("is_static") is True, e
    caps = {h.name: h.capture() for h in (h2, h3)}
    marker = random_marker("static6")
    h4.send_frames([udp6_frame(h4.mac, "2001:db8::10:4", G2, PORT, marker + b" #%02d" % i) for i in range(10)])
    caps["h3"].wait_for(lambda f: marker in f.data, count=10, timeout=3, what="static group data at h3")
    time.sleep(0.2)
    caps["h2"].stop()
    assert caps["h2"].with_marker(marker) == [], "h2 got the data of a group statically on h3 only"
    r = sw.command("mdb", "del", "h3", G2, "--vlan", "1")
    assert r.returncode == 0, f"mdb del of an IPv6 group failed: {r.stdout} {r.stderr}"
    sw.wait_status(lambda s: member6(s, G2, "h3") is None, timeout=2, what="h3's static membership gone")
    caps["h3"].stop()
    cap3 = h3.capture()
    marker2 = random_marker("after-del")
    h4.send_frames([udp6_frame(h4.mac, "2001:db8::10:4", G2, PORT, marker2 + b" #%02d" % i) for i in range(10)])
    cap3.stop(settle=0.3)
    assert cap3.with_marker(marker2) == [], "h3 still got the group after mdb del"


# ---- neighbour discovery and the groups never snooped -------------------------------
def _ping_ok(src, addr, what):
    ok, out = ping6(src, addr)
    assert ok, f"ping -6 from {src.name} to {addr} ({what}) failed:\n{out}"


def test_ping6_global_and_link_local_with_snooping(six):
    """With the switch up before the hosts configure IPv6, it hears their solicited-node
    reports and lists them; `ping -6` h1 -> h2 (2001:db8::10:2, and fe80::ff:fe00:2%eth0)
    and back works, and h3, a member of neither of h2's solicited-node groups, sees none of
    the neighbour solicitations to them."""
    sw = six.start_switch()
    h1, h2, h3 = _hosts(six, "h1", "h2", "h3")
    cap3 = h3.capture()
    lls = {h.name: ipv6_up(h) for h in (h1, h2, h3)}
    sn = {h.name: (solicited_node(global_addr(h)), solicited_node(lls[h.name])) for h in (h1, h2)}
    for name, groups in sn.items():
        for g in groups:
            sw.wait_status(lambda s: members6(s, g) == {name}, timeout=3,
                           what=f"{name} listed as the member of its solicited-node group {g}")
    _ping_ok(h1, global_addr(h2), "global")
    _ping_ok(h1, f"{lls['h2']}%eth0", "link-local")
    _ping_ok(h2, global_addr(h1), "global, back")
    _ping_ok(h2, f"{lls['h1']}%eth0", "link-local, back")
    cap3.stop(settle=0.1)
    ns_to_h2 = icmp6_in(cap3, lambda m: m.type == 135 and any(m.ip.dst == ip6(g) for g in sn["h2"]))
    assert ns_to_h2 == [], f"h3 saw neighbour solicitations to h2's solicited-node groups: {ns_to_h2[:3]}"


def test_ping6_reaches_hosts_whose_solicited_node_reports_the_switch_never_heard(six):
    """The hosts configure IPv6 (and send their solicited-node reports) before the switch
    starts, without a querier to ask again: the switch knows none of those groups, and must
    still carry neighbour discovery: ping -6 to global and link-local addresses works."""
    h1, h2, h3 = _hosts(six, "h1", "h2", "h3")
    lls = {h.name: ipv6_up(h, unsolicited_ms=50) for h in (h1, h2, h3)}
    time.sleep(0.5)  # their reports (robustness 2, 50 ms apart) are over
    sw = six.start_switch()
    time.sleep(0.3)
    st = sw.status()
    known = [g for h in (h1, h2, h3) for g in (solicited_node(global_addr(h)), solicited_node(lls[h.name]))
             if members6(st, g)]
    assert not known, f"precondition: the switch heard solicited-node reports it should not have: {known}"
    _ping_ok(h1, global_addr(h2), "global, never reported")
    _ping_ok(h2, f"{lls['h3']}%eth0", "link-local, never reported")
    _ping_ok(h3, global_addr(h1), "global, never reported")
    _ping_ok(h3, f"{lls['h2']}%eth0", "link-local, never reported")


def test_flood_solicited_node_floods_known_solicited_node_groups(six):
    """With --flood-solicited-node, neighbour solicitations to h2's solicited-node group
    reach h3 too, though the switch read h2's reports (without it, they reach h2 only:
    test_ping6_global_and_link_local_with_snooping)."""
    sw = six.start_switch("--flood-solicited-node")
    h1, h2, h3 = _hosts(six, "h1", "h2", "h3")
    cap3 = h3.capture()
    for h in (h1, h2, h3):
        ipv6_up(h)
    # h2's kernel reported its solicited-node groups when its addresses came up; its report
    # for G, sent after them on the same flow, is read after them: once it is listed, so
    # were they read.
    join6(h2, G, PORT)
    _ping_ok(h1, global_addr(h2), "global")
    cap3.stop(settle=0.1)
    g = ip6(solicited_node(global_addr(h2)))
    assert icmp6_in(cap3, lambda m: m.type == 135 and m.ip.dst == g), \
        f"with --flood-solicited-node h3 saw no neighbour solicitation to {g}"


@pytest.mark.parametrize("suffix", [None, ":pcap"], ids=["packet-ports", "pcap-ports"])
def test_tcp_over_ipv6_is_carried_intact(six, suffix):
    """8 MiB over one TCP connection between 2001:db8:: addresses, with MLD snooping on and the
    hosts' default offloads (h1 hands its veth TSO frames above the MTU, partial checksums):
    all of it arrives, intact; through packet ports (virtio-net headers) and through :pcap
    ports (the switch finishes checksums and cuts GSO frames itself, as test_pcap_ports.py
    checks for IPv4)."""
    sw = six.start_switch(port_suffix=suffix)
    h1, h2 = six["h1"], six["h2"]
    ipv6_up(h1)
    ipv6_up(h2)
    _ping_ok(h1, global_addr(h2), "before the transfer")
    cap = h1.capture()
    got, intact, err = tcp6_transfer(h2, h1, timeout=10)
    cap.stop()
    biggest = max((f.orig_len for f in cap.outgoing()), default=0)
    assert err is None and got == 8 << 20 and intact, \
        f"received {got} of {8 << 20} bytes, intact {intact}, error {err}; largest frame h1 sent: {biggest}"
    assert biggest > 1514, "h1 never sent a frame larger than the MTU: GSO was not exercised"
    if suffix is None and kernel_features.has("tcx"):
        # A bulk flow between packet ports goes to the kernel fast path, its way back with it,
        # whatever the network layer.
        flows = sw.status()["datapath"]["kernel_flows"]
        assert flows >= 2, f"{flows} kernel flows after an 8 MiB IPv6 transfer: the fast path did not take it"


def test_all_nodes_is_flooded_and_never_snooped(six):
    """UDP to ff02::1 from h4 reaches h1, h2 and h3 (sockets joined to ff02::1); `ping -6
    ff02::1` from h4 is answered by all three; ff02::1 never appears in the group table."""
    sw = six.start_switch()
    h1, h2, h3, h4 = _hosts(six, "h1", "h2", "h3", "h4")
    lls = {h.name: ipv6_up(h) for h in (h1, h2, h3, h4)}
    rxs = {h.name: receiver6(h, ALL_NODES, PORT) for h in (h1, h2, h3)}
    marker = random_marker("all-nodes")
    sent = send_udp6(h4, ALL_NODES, PORT, count=20, marker=marker)
    for name, rx in rxs.items():
        _got_all(rx, sent, f"{name} (ff02::1)")
    ok, out = ping6(h4, ALL_NODES, count=2)
    assert ok, out
    answered = {ip6(a) for a in re.findall(r"from (fe80::[0-9a-f:]+)", out)}
    assert answered >= {ip6(lls[n]) for n in ("h1", "h2", "h3")}, f"ping ff02::1 answered by {answered}:\n{out}"
    st = sw.status()
    assert not [g for g in st["groups"] if same6(g.get("group"), ALL_NODES)], st["groups"]


def test_reserved_and_interface_local_scopes_are_never_snooped(six):
    """Groups in ff00::/15 (ff00::/16 reserved, ff01::/16 interface-local) are never snooped:
    a report naming them makes no entry, and frames to them reach every port; a report for
    ff0e::4242 in the same message does make h1 a member, and its data reaches h1 only."""
    sw = six.start_switch()
    h1, h2, h3, h4 = _hosts(six, "h1", "h2", "h3", "h4")
    ll1 = eui64_link_local(h1.mac)
    h1.send_frames([mld_v2_report_frame(h1.mac, ll1, [(IS_EX, "ff01::4242", []), (IS_EX, "ff00::4242", []),
                                                      (IS_EX, G_GLOBAL, [])])])
    st = sw.wait_status(lambda s: "h1" in members6(s, G_GLOBAL) and s, timeout=2, what=f"h1 member of {G_GLOBAL}")
    listed = [g for g in st["groups"] if str(g.get("group", "")).startswith(("ff00:", "ff01:"))]
    assert listed == [], f"groups of ff00::/15 were snooped: {listed}"
    caps = {h.name: h.capture() for h in (h1, h2, h3)}
    marks = {g: random_marker(g.split(":")[0]) for g in ("ff01::4242", "ff00::4242", G_GLOBAL)}
    for g, m in marks.items():
        h4.send_frames([udp6_frame(h4.mac, "2001:db8::10:4", g, PORT, m + b" #%02d" % i) for i in range(5)])
    for name, cap in caps.items():
        for g in ("ff01::4242", "ff00::4242"):
            cap.wait_for(lambda f, m=marks[g]: m in f.data, count=5, timeout=3, what=f"frames to {g} (flooded)")
    caps["h1"].wait_for(lambda f: marks[G_GLOBAL] in f.data, count=5, timeout=3, what=f"{G_GLOBAL} data at member h1")
    time.sleep(0.2)
    for name in ("h2", "h3"):
        caps[name].stop()
        assert caps[name].with_marker(marks[G_GLOBAL]) == [], f"non-member {name} got {G_GLOBAL}"


# ---- VLANs --------------------------------------------------------------------------
def test_mld_membership_is_per_vlan_and_trunks_keep_tags(vlans6):
    """v10a joins ff15::4242 in VLAN 10: no member in VLAN 20. Data from v20b (VLAN 20, no
    member there) reaches no port; data from v10b reaches v10a only. Tagged MLDv2 reports make
    trunk a member in VLAN 20 and trunk2 in VLAN 10: then v20b's data leaves trunk tagged 20
    and reaches nobody in VLAN 10; data tagged 10 priority 5 from trunk reaches v10a untagged
    and trunk2 tagged 10 priority 5, and no VLAN 20 port."""
    lab = vlans6
    sw = lab.start_switch()
    v10a, v10b, v20a, v20b, trunk, trunk2 = _hosts(lab, "v10a", "v10b", "v20a", "v20b", "trunk", "trunk2")
    for h in (v10a, v10b, v20a, v20b):
        ipv6_up(h)
    rx10 = join6(v10a, G, PORT, vlan=10)
    st = sw.status()
    assert members6(st, G, 10) == {"v10a"} and members6(st, G, 20) == set(), [g for g in st["groups"]]
    caps = {h.name: h.capture() for h in (v10a, v20a, trunk, trunk2)}
    m20 = random_marker("v20-no-member")
    send_udp6(v20b, G, PORT, count=10, marker=m20)
    m10 = random_marker("v10")
    sent10 = send_udp6(v10b, G, PORT, count=10, marker=m10)
    _got_all(rx10, sent10, "v10a from v10b (VLAN 10)")
    time.sleep(0.2)
    for name, cap in caps.items():
        assert cap.with_marker(m20) == [], f"{name} got VLAN 20 data of {G} (no member in VLAN 20)"
        if name != "v10a":
            assert cap.with_marker(m10) == [], f"{name} got VLAN 10 data of {G} (not a member)"

    trunk.send_frames([mld_v2_report_frame(trunk.mac, eui64_link_local(trunk.mac), [(TO_EX, G, [])], vlan=20)])
    trunk2.send_frames([mld_v2_report_frame(trunk2.mac, eui64_link_local(trunk2.mac), [(TO_EX, G, [])], vlan=10)])
    sw.wait_status(lambda s: members6(s, G, 20) == {"trunk"} and members6(s, G, 10) == {"v10a", "trunk2"},
                   timeout=3, what="trunk a member in VLAN 20 and trunk2 in VLAN 10")
    m20b = random_marker("v20-to-trunk")
    send_udp6(v20b, G, PORT, count=10, marker=m20b)
    at_trunk = caps["trunk"].wait_for(lambda f: m20b in f.data, count=10, timeout=3, what="VLAN 20 data at trunk")
    assert all(f.vlan == 20 for f in at_trunk), f"VLAN 20 data left trunk as {[f.vlan for f in at_trunk]}"
    m10t = random_marker("t10")
    payloads = [m10t + b" #%02d" % i for i in range(10)]
    trunk.send_frames([udp6_frame(trunk.mac, "2001:db8::77", G, PORT, p, vlan=10, pcp=5) for p in payloads])
    _got_all(rx10, payloads, "v10a from trunk (tagged VLAN 10)")
    at_t2 = caps["trunk2"].wait_for(lambda f: m10t in f.data, count=10, timeout=3, what="VLAN 10 data at trunk2")
    assert all(f.vlan == 10 and f.pcp == 5 for f in at_t2), f"at trunk2: {[(f.vlan, f.pcp) for f in at_t2]}"
    time.sleep(0.2)
    for cap in caps.values():
        cap.stop()
    assert all(not f.tagged for f in caps["v10a"].with_marker(m10t)), "VLAN 10 data reached access port v10a tagged"
    for name in ("v10a", "trunk2", "v20a"):
        assert caps[name].with_marker(m20b) == [], f"{name} got VLAN 20 data"
    for name in ("v20a", "trunk"):
        assert caps[name].with_marker(m10t) == [], f"{name} got VLAN 10 data"


def test_tagged_mld_query_makes_a_router_port_in_its_vlan_only(vlans6):
    """An MLD query tagged VLAN 20 from the trunk host reaches the VLAN 20 access hosts (not
    VLAN 10's) and makes trunk an MLD router port of VLAN 20 only; v20a's report when it joins
    then leaves trunk tagged 20, while v10a's (VLAN 10 has no router port) reaches no port."""
    lab = vlans6
    sw = lab.start_switch()
    v10a, v10b, v20a, v20b, trunk, trunk2 = _hosts(lab, "v10a", "v10b", "v20a", "v20b", "trunk", "trunk2")
    lls = {h.name: ipv6_up(h) for h in (v10a, v10b, v20a, v20b)}
    caps = {h.name: h.capture() for h in (v10a, v10b, v20a, v20b, trunk, trunk2)}
    ll_trunk = eui64_link_local(trunk.mac)
    trunk.send_frames([mld_query_frame(trunk.mac, ll_trunk, vlan=20, max_resp_ms=500)])
    rp = sw.wait_status(lambda s: router_ports6(s, 20).get("trunk"), timeout=2, what="trunk an MLD router port of VLAN 20")
    assert rp["reason"] == "mld-query", rp
    assert "trunk" not in router_ports6(sw.status(), 10), router_ports6(sw.status())
    wait_until(lambda: mld_in(caps["v20a"], lambda m: m.is_query and m.ip.src == ip6(ll_trunk)), timeout=2,
               what="the VLAN 20 query at v20a")
    at_t2 = wait_until(lambda: mld_in(caps["trunk2"], lambda m: m.is_query and m.ip.src == ip6(ll_trunk)), timeout=2,
                       what="the VLAN 20 query at trunk2")
    assert all(m.frame.vlan == 20 for m in at_t2), at_t2
    join6(v20a, G, PORT, vlan=20)
    join6(v10a, G, PORT, vlan=10)
    reports = wait_until(lambda: _reports_from_others(caps["trunk"], lambda m: m.ip.src == ip6(lls["v20a"]) and m.mentions(G)),
                         timeout=3, what="v20a's report at trunk")
    assert all(m.frame.vlan == 20 for m in reports), f"v20a's reports left trunk as {reports}"
    time.sleep(0.7)
    for cap in caps.values():
        cap.stop()
    for name in ("v10a", "v10b"):
        q = mld_in(caps[name], lambda m: m.is_query and m.ip.src == ip6(ll_trunk))
        assert q == [], f"the VLAN 20 query reached {name}"
    leaked = _reports_from_others(caps["trunk"], lambda m: m.ip.src == ip6(lls["v10a"]))
    assert leaked == [], f"v10a's reports reached trunk (no router port in VLAN 10): {leaked}"
    for name in ("v10b", "v20b", "trunk2"):
        leaked = _reports_from_others(caps[name])
        assert leaked == [], f"{name} received MLD reports of other hosts: {leaked[:3]}"


def test_no_mld_snooping_vlan_floods_ipv6_multicast(vlans6):
    """--vlan 20:no-mld-snooping: IPv6 multicast to a group nobody joined is flooded in VLAN
    20 (v20a, and trunk tagged 20) while VLAN 10 still snoops (v10a gets nothing of it)."""
    lab = vlans6
    lab.start_switch("--vlan", "20:no-mld-snooping")
    v10a, v10b, v20a, v20b, trunk = _hosts(lab, "v10a", "v10b", "v20a", "v20b", "trunk")
    for h in (v10a, v10b, v20a, v20b):
        ipv6_up(h)
    caps = {h.name: h.capture() for h in (v10a, v20a, trunk)}
    m20, m10 = random_marker("flood20"), random_marker("snoop10")
    send_udp6(v20b, G2, PORT, count=10, marker=m20)
    send_udp6(v10b, G2, PORT, count=10, marker=m10)
    caps["v20a"].wait_for(lambda f: m20 in f.data, count=10, timeout=3, what="flooded VLAN 20 data at v20a")
    at_trunk = caps["trunk"].wait_for(lambda f: m20 in f.data, count=10, timeout=3, what="flooded VLAN 20 data at trunk")
    assert all(f.vlan == 20 for f in at_trunk)
    time.sleep(0.2)
    for cap in caps.values():
        cap.stop()
    assert caps["v10a"].with_marker(m10) == [], "VLAN 10 (snooping) flooded an unregistered IPv6 group to v10a"
    assert caps["trunk"].with_marker(m10) == [], "VLAN 10 (snooping) flooded an unregistered IPv6 group to trunk"
    assert caps["v10a"].with_marker(m20) == [], "VLAN 20 data reached VLAN 10"


# ---- the switch as MLD querier -------------------------------------------------------
@pytest.mark.parametrize("address", [None, "fe80::5"], ids=["default-address", "mld-querier-address"])
def test_switch_sends_well_formed_mld_general_queries(six, address):
    """--querier (query interval 2 s, response interval 1 s): every host port receives MLDv2
    general queries to ff02::1 from the switch's link-local address (by default
    fe80::53:4eff:fe4f:4f50, else --mld-querier-address), hop limit 1, Router Alert, right
    checksum, 28 bytes, max response 1000 ms, QRV 2, QQIC 2, no sources; the status lists the
    switch as MLD querier ("us", that address) beside the IGMP querier."""
    expected = address or SW_LL
    caps = {h.name: h.capture() for h in six.hosts.values()}
    extra = ["--mld-querier-address", address] if address else []
    sw = six.start_switch("--querier", "--querier-address", QA, "--query-interval", "2",
                          "--query-response-interval", "1", *extra)
    for name, cap in caps.items():
        wait_until(lambda: _general_queries(cap, expected), timeout=3, what=f"an MLD general query at {name}")
    for name, cap in caps.items():
        cap.stop()
        qs = _general_queries(cap)
        assert all(q.ip.src == ip6(expected) for q in qs), f"{name}: queries from {[str(q.ip.src) for q in qs]}"
        for q in qs:
            _check_query_frame(q, 2)
            assert not q.frame.tagged, f"{name}: a query on an access port is tagged"
            assert q.max_resp_ms == 1000, f"max response {q.max_resp_ms} ms"
            assert q.qrv == 2 and q.qqic == 2 and q.s_flag == 0 and q.query_sources == [], q
    st = sw.status()
    q6 = querier6(st, 1, "mld")
    assert q6.get("role") == "us" and same6(q6.get("address"), expected), st.get("queriers")
    q4 = querier6(st, 1, "igmp")
    assert q4.get("role") == "us" and q4.get("address") == QA, st.get("queriers")
    assert mld_counter(st, "sent", "general_query") >= 1, st.get("mld")


@pytest.mark.parametrize("flags,igmp,mld", [
    (["--querier", "--vlan", "1:no-mld-querier"], True, False),
    (["--vlan", "1:mld-querier"], False, True),
], ids=["querier-but-no-mld-querier", "mld-querier-only"])
def test_per_vlan_mld_querier_setting(six, flags, igmp, mld):
    """`--querier --vlan 1:no-mld-querier`: IGMP queries go on in VLAN 1, MLD queries do not;
    `--vlan 1:mld-querier` alone: MLD queries, no IGMP ones."""
    cap = six["h1"].capture()
    sw = six.start_switch("--querier-address", QA, "--query-interval", "1", "--query-response-interval", "0.5", *flags)
    time.sleep(2.5)  # startup queries come a quarter interval apart
    cap.stop()
    igmp_q = [m for f in cap.incoming() if (m := igmp_of(f)) is not None and m.is_query]
    mld_q = mld_in(cap, lambda m: m.is_query)
    st = sw.status()
    if igmp:
        assert len(igmp_q) >= 2, f"no IGMP queries in 2.5 s: {igmp_q}"
        assert querier6(st, 1, "igmp").get("role") == "us", st.get("queriers")
    else:
        assert igmp_q == [], f"IGMP queries without --querier: {igmp_q}"
    if mld:
        assert len(mld_q) >= 2, f"no MLD queries in 2.5 s: {mld_q}"
        assert querier6(st, 1, "mld").get("role") == "us", st.get("queriers")
    else:
        assert mld_q == [], f"MLD queries in a VLAN set to no-mld-querier: {mld_q}"
        assert querier6(st, 1, "mld").get("role") != "us", st.get("queriers")
        assert mld_counter(st, "sent", "general_query") == 0, st.get("mld")


@pytest.mark.parametrize("lower", [True, False], ids=["lower-address-wins", "higher-address-loses"])
def test_mld_querier_election_by_lowest_address(six, lower):
    """A host's kernel sends an MLDv2 general query. From its link-local fe80::ff:fe00:4
    (below the switch's fe80::53:4eff:fe4f:4f50) it wins: the switch's MLD querier role turns
    "other" with that address and no query of the switch follows (for 3 s, below the other
    querier present interval 2*2+0.5 s), while its IGMP queries go on. From fe80::ff00:0:0:4
    (above) it loses: the switch stays "us" and keeps querying."""
    sw = six.start_switch("--querier", "--querier-address", QA, "--query-interval", "2",
                          "--query-response-interval", "1")
    h1, h4 = six["h1"], six["h4"]
    ll4 = ipv6_up(h4, with_global=False)
    cap = h1.capture()
    wait_until(lambda: _general_queries(cap, SW_LL), timeout=3, what="the switch querying")
    src = ll4
    if not lower:
        src = "fe80::ff00:0:0:4"
        sh("ip", "-n", h4.ns, "-6", "addr", "add", f"{src}/64", "dev", "eth0", "nodad")
    send_mld_query(h4, src=src, max_resp_ms=1000, qqic=2)
    wait_until(lambda: _general_queries(cap, src), timeout=2, what="h4's query at h1")
    if lower:
        q = sw.wait_status(lambda s: (q := querier6(s, 1, "mld")).get("role") == "other" and q, timeout=2,
                           what="the switch's MLD querier role 'other'")
        assert same6(q.get("address"), ll4), f"the querier is {q}, expected h4's {ll4}"
        t0 = time.monotonic()
        time.sleep(3.0)
        cap.stop()
        late = [q for q in _general_queries(cap, SW_LL) if q.frame.time > t0]
        assert late == [], f"the switch kept querying after losing the election: {late}"
        igmp_q = [m for f in cap.incoming() if f.time > t0 and (m := igmp_of(f)) is not None and m.is_query]
        assert igmp_q, "the switch's IGMP queries stopped too (only its MLD querier lost)"
        assert querier6(sw.status(), 1, "igmp").get("role") == "us"
    else:
        t0 = time.monotonic()
        wait_until(lambda: [q for q in _general_queries(cap, SW_LL) if q.frame.time > t0], timeout=3,
                   what="the switch querying on after a query from a higher address")
        q = querier6(sw.status(), 1, "mld")
        assert q.get("role") == "us" and same6(q.get("address"), SW_LL), q


@pytest.mark.parametrize("how", ["host-general", "host-group-specific", "querier", "flag", "vlan-flag"])
def test_mldv1_queries_with_an_mldv1_host_or_querier_or_when_asked(six, how):
    """The switch queries with MLDv2 (28 bytes) until:
    host-general: an MLDv1 host (force_mld_version=1) reports; the general queries stay MLDv2,
    which the MLDv1 host answers with MLDv1 reports (an MLDv1 general query would put every
    MLDv2 host of the link in MLDv1 mode, without source filtering, for as long: README, "MLD
    snooping and neighbour discovery");
    host-group-specific: the group-specific queries after that host's Done are MLDv1 (RFC
    9777 8.3.2: the group is in MLDv1 compatibility mode);
    querier: an MLDv1 querier with a higher address than the switch's (which stays querier)
    is heard: its next general queries are MLDv1 (RFC 9777 8.3.1), the status says version 1;
    flag / vlan-flag: --mld-version 1 (or --vlan 1:mld-version=1): MLDv1 from the start."""
    flags = {"flag": ["--mld-version", "1"], "vlan-flag": ["--vlan", "1:mld-version=1"]}.get(how, [])
    h1, h2, h4 = six["h1"], six["h2"], six["h4"]
    cap = h2.capture()
    sw = six.start_switch("--querier", "--querier-address", QA, "--query-interval", "2",
                          "--query-response-interval", "1", *flags)
    first = wait_until(lambda: _general_queries(cap, SW_LL), timeout=3, what="a first MLD general query")[0]
    if how in ("flag", "vlan-flag"):
        _check_query_frame(first, 1)
        assert first.max_resp_ms == 1000, f"Maximum Response Delay {first.max_resp_ms} ms"
        assert querier6(sw.status(), 1).get("version") == 1, sw.status().get("queriers")
        return
    _check_query_frame(first, 2)
    if how == "querier":
        ipv6_up(h4, with_global=False)
        higher = "fe80::ff00:0:0:4"
        sh("ip", "-n", h4.ns, "-6", "addr", "add", f"{higher}/64", "dev", "eth0", "nodad")
        send_mld_query(h4, src=higher, version=1, max_resp_ms=1000)
        sw.wait_status(lambda s: querier6(s, 1).get("version") == 1, timeout=2,
                       what="the switch's MLD querier at version 1 after an MLDv1 query")
        q = querier6(sw.status(), 1)
        assert q.get("role") == "us" and same6(q.get("address"), SW_LL), q
        t0 = time.monotonic()
        later = wait_until(lambda: [q for q in _general_queries(cap, SW_LL) if q.frame.time > t0], timeout=4,
                           what="a general query of the switch after the MLDv1 querier's")
        _check_query_frame(later[0], 1)
        return
    ipv6_up(h1, mld_version=1)
    cap1 = h1.capture()
    rx = join6(h1, G, PORT)
    assert member6(sw.status(), G, "h1")["version"] == 1
    if how == "host-general":
        t0 = time.monotonic()
        later = wait_until(lambda: [q for q in _general_queries(cap, SW_LL) if q.frame.time > t0], timeout=4,
                           what="a general query after the MLDv1 host's report")
        _check_query_frame(later[0], 2)
        # The host's answer is an MLDv1 report (a capture on h1 sees only what comes in).
        reports = mld_counter(sw.status(), "received", "v1_report")
        wait_until(lambda: mld_counter(sw.status(), "received", "v1_report") > reports, timeout=3,
                   what="the MLDv1 host's report answering the MLDv2 general query")
        assert member6(sw.status(), G, "h1")["version"] == 1
        return
    rx.leave()
    gsq = wait_until(lambda: mld_in(cap1, lambda m: m.is_query and m.group == ip6(G)), timeout=3,
                     what="a group-specific query after the MLDv1 host's Done")
    _check_query_frame(gsq[0], 1, dst=G)
    assert gsq[0].max_resp_ms == 1000, f"Maximum Response Delay {gsq[0].max_resp_ms} ms"


def test_switch_solicits_multicast_routers_at_start(six):
    """At start the switch sends a Multicast Router Solicitation (ICMPv6 152, RFC 4286) to
    ff02::2, hop limit 1, and counts it."""
    cap = six["h1"].capture()
    sw = six.start_switch()
    sol = wait_until(lambda: icmp6_in(cap, lambda m: m.type == MRD_SOLICITATION), timeout=3,
                     what="a multicast router solicitation")
    m = sol[0]
    assert m.ip.dst == ip6("ff02::2") and m.ip.hop_limit == 1 and m.ip.upper_checksum_ok, m
    assert m.ip.src.is_link_local, m
    assert mld_counter(sw.status(), "sent", "mrd_solicitation") >= 1, sw.status().get("mld")
