"""IGMPv3 source filtering end to end (topologies/source-filtering.topo).

RFC 3376 6.3/6.4: the switch keeps each port's filter mode and source records, and sends
a frame from S to G out of a member port only if that port's state admits S. RFC 4604:
in the SSM range (232/8) only INCLUDE-mode (source-specific) membership counts; an
any-source join there is ignored (counted as ssm_ignored).

Receivers are real Linux sockets: IP_ADD_SOURCE_MEMBERSHIP (INCLUDE mode), plain
IP_ADD_MEMBERSHIP (EXCLUDE({})), IP_BLOCK_SOURCE / IP_UNBLOCK_SOURCE (EXCLUDE with a
list); the hosts' kernels send the IGMPv3 records. S1 = s1 (192.0.2.11), S2 = s2
(192.0.2.12). A socket filters sources itself, so "not forwarded" is checked with a
capture on the receiver's interface (zero frames from the excluded source) while another
member did receive that source's datagrams.
"""

from __future__ import annotations

import time

from lab import (block_source, member_entry, member_excluded, member_sources, members, random_marker,
                 source_receiver, udp_from, unblock_source)

G = "239.9.9.9"
G_SSM = "232.1.1.1"
PORT = 5090
LMQT = 2 * 0.2  # robustness 2 * last member query interval 0.2 s (topology file)


def _wait_member(sw, group, port, pred, what):
    return sw.wait_status(lambda s: (e := member_entry(s, group, port)) is not None and pred(e) and e,
                          timeout=LMQT + 3, what=what)


def _send_both(lab, group):
    """s1 and s2 each send 20 datagrams to group; returns (sent by s1, sent by s2)."""
    m1, m2 = random_marker("from-s1"), random_marker("from-s2")
    return lab["s1"].send_udp(group, PORT, count=20, marker=m1), lab["s2"].send_udp(group, PORT, count=20, marker=m2)


def _got(rx, sent, what, timeout: float = 3.0):
    """rx's socket must get every datagram of `sent` (a list of sent payloads, or a tuple
    of such lists: read together, as one socket's queue holds them mixed)."""
    lists = sent if isinstance(sent, tuple) else (sent,)
    want = {p for lst in lists for p in lst}
    got: set = set()
    deadline = time.monotonic() + timeout
    while not want <= got and time.monotonic() < deadline:
        got.update(rx.collect(1, timeout=0.1, settle=0.0))
    missing = want - got
    assert not missing, f"{what}: received {len(want) - len(missing)} of {len(want)} datagrams; " \
                        f"missing e.g. {min(missing)[:28]!r}"


def test_include_member_gets_only_its_source_exclude_member_gets_both(sources):
    """r1 joins (S1, G) only (INCLUDE {S1}); r2 joins G for any source (EXCLUDE {}).
    Status shows r1 in include mode listing S1, r2 in exclude mode. S1 and S2 send: r1's
    socket gets S1's datagrams and r1's interface sees no frame from S2; r2 gets both."""
    sw = sources.start_switch(default_flags=True)
    r1, r2 = sources["r1"], sources["r2"]
    s1, s2 = sources["s1"].addr, sources["s2"].addr
    rx1 = source_receiver(r1, G, PORT, [s1])
    e1 = _wait_member(sw, G, "r1", lambda e: member_sources(e) == {s1}, "r1 a member of G in INCLUDE {S1}")
    assert e1["mode"] == "include" and member_excluded(e1) == set(), e1
    rx2 = r2.join(G, PORT)
    e2 = member_entry(sw.status(), G, "r2")
    assert e2["mode"] == "exclude" and member_excluded(e2) == set(), e2
    assert all(src["expires_in"] > 0 for src in e1["sources"]), e1

    cap1 = r1.capture()
    sent1, sent2 = _send_both(sources, G)
    _got(rx1, sent1, "r1 (INCLUDE {S1}) from S1")
    _got(rx2, (sent1, sent2), "r2 (EXCLUDE {}) from S1 and S2")
    cap1.stop(settle=0.2)
    assert len(udp_from(cap1, s1, G)) == 20, "r1's capture missed S1's frames (harness problem)"
    leaked = udp_from(cap1, s2, G)
    assert leaked == [], f"r1 joined (S1, G) only but S2's frames reached its port: {len(leaked)} {leaked[:3]}"


def test_exclude_member_blocking_a_source_gets_the_other_source_only(sources):
    """r1 joins G for any source, then blocks S2 (IP_BLOCK_SOURCE: EXCLUDE {S2}); r2 joins G
    for any source. Once the switch lists S2 as excluded on r1's port (after the
    group-and-source-specific queries go unanswered), r1 gets S1's datagrams and sees no
    frame from S2, while r2 gets both. After IP_UNBLOCK_SOURCE (ALLOW {S2}) r1 gets S2's
    datagrams again."""
    sw = sources.start_switch(default_flags=True)
    r1, r2 = sources["r1"], sources["r2"]
    s1, s2 = sources["s1"].addr, sources["s2"].addr
    rx1 = r1.join(G, PORT)
    block_source(rx1, s2, r1.addr)
    e1 = _wait_member(sw, G, "r1", lambda e: e["mode"] == "exclude" and s2 in member_excluded(e),
                      "S2 excluded on r1's port after its BLOCK")
    assert s1 not in member_excluded(e1), e1
    rx2 = r2.join(G, PORT)
    e2 = member_entry(sw.status(), G, "r2")
    assert e2["mode"] == "exclude" and member_excluded(e2) == set(), f"r1's block changed r2's state: {e2}"

    cap1 = r1.capture()
    sent1, sent2 = _send_both(sources, G)
    _got(rx1, sent1, "r1 (EXCLUDE {S2}) from S1")
    _got(rx2, (sent1, sent2), "r2 (EXCLUDE {}) from S1 and S2")
    cap1.stop(settle=0.2)
    leaked = udp_from(cap1, s2, G)
    assert leaked == [], f"r1 blocked S2 but S2's frames reached its port: {len(leaked)} {leaked[:3]}"

    unblock_source(rx1, s2, r1.addr)
    _wait_member(sw, G, "r1", lambda e: s2 not in member_excluded(e), "S2 no longer excluded on r1's port")
    sent1, sent2 = _send_both(sources, G)
    _got(rx1, (sent1, sent2), "r1 (S2 unblocked) from S1 and S2")


def test_include_member_dropping_a_source_stops_getting_it(sources):
    """r1 joins (S1, G) and (S2, G) (INCLUDE {S1, S2}) and gets both; r2 joins G for any
    source. r1 drops S2 (IP_DROP_SOURCE_MEMBERSHIP: BLOCK {S2}); after the last member
    query time the switch lists only S1 on r1's port, r1 sees no frame from S2 but still
    gets S1's, and r2 still gets both."""
    sw = sources.start_switch(default_flags=True)
    r1, r2 = sources["r1"], sources["r2"]
    s1, s2 = sources["s1"].addr, sources["s2"].addr
    rx1 = source_receiver(r1, G, PORT, [s1, s2])
    _wait_member(sw, G, "r1", lambda e: e["mode"] == "include" and member_sources(e) == {s1, s2},
                 "r1 in INCLUDE {S1, S2}")
    rx2 = r2.join(G, PORT)
    sent1, sent2 = _send_both(sources, G)
    _got(rx1, (sent1, sent2), "r1 (INCLUDE {S1, S2}) from S1 and S2")
    rx2.drain()

    rx1.drop_source(s2)
    e1 = _wait_member(sw, G, "r1", lambda e: member_sources(e) == {s1}, "S2 gone from r1's INCLUDE list")
    assert e1["mode"] == "include", e1

    cap1 = r1.capture()
    sent1, sent2 = _send_both(sources, G)
    _got(rx1, sent1, "r1 (INCLUDE {S1}) from S1")
    _got(rx2, (sent1, sent2), "r2 (EXCLUDE {}) from S1 and S2")
    cap1.stop(settle=0.2)
    leaked = udp_from(cap1, s2, G)
    assert leaked == [], f"r1 dropped S2 but S2's frames reached its port: {len(leaked)} {leaked[:3]}"


def test_ssm_range_ignores_any_source_join_and_takes_source_specific_join(sources):
    """In the SSM range, r2's any-source join of 232.1.1.1 (an EXCLUDE record) is ignored:
    ssm_ignored rises and r2 is no member. r1's source-specific join of (S1, 232.1.1.1) is
    registered (INCLUDE {S1}) and S1's datagrams reach r1's socket, while r2's interface
    sees no frame of the group and r1's sees none from S2."""
    sw = sources.start_switch(default_flags=True)
    r1, r2 = sources["r1"], sources["r2"]
    s1, s2 = sources["s1"].addr, sources["s2"].addr

    def ssm_ignored(st):
        return int(st["igmp"].get("errors", {}).get("ssm_ignored", 0) or 0)

    before = ssm_ignored(sw.status())
    rx2 = r2.receiver(G_SSM, PORT)  # IP_ADD_MEMBERSHIP: EXCLUDE({}) for an SSM group
    sw.wait_status(lambda s: ssm_ignored(s) > before, timeout=3, what="r2's any-source SSM join counted as ssm_ignored")
    rx1 = source_receiver(r1, G_SSM, PORT, [s1])
    e1 = _wait_member(sw, G_SSM, "r1", lambda e: member_sources(e) == {s1}, "r1 a member of (S1, 232.1.1.1)")
    assert e1["mode"] == "include", e1
    st = sw.status()
    assert "r2" not in members(st, G_SSM), f"any-source join of an SSM group registered: {member_entry(st, G_SSM, 'r2')}"

    cap1, cap2 = r1.capture(), r2.capture()
    sent1, sent2 = _send_both(sources, G_SSM)
    _got(rx1, sent1, "r1 (S1, 232.1.1.1) from S1")
    cap1.stop(settle=0.2)
    cap2.stop()
    leaked2 = cap2.to_group(G_SSM)
    assert leaked2 == [], f"r2's any-source SSM join (ignored) still got {len(leaked2)} frames: {leaked2[:3]}"
    leaked1 = udp_from(cap1, s2, G_SSM)
    assert leaked1 == [], f"r1 joined (S1, 232.1.1.1) only but got {len(leaked1)} frames from S2"
    assert rx2.drain() == []
    st = sw.status()
    assert "r2" not in members(st, G_SSM)
    assert ssm_ignored(st) > before
