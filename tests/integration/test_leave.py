"""Leaving a group (topologies/four-hosts.topo).

RFC 3376 6.4 / RFC 2236 3: on a leave (IGMPv2 Leave, or an IGMPv3 TO_IN({}) report)
the querier sends Last Member Query Count group-specific queries, Last Member Query
Interval apart, and stops forwarding when no report answers. RFC 4541 2.1.1 (fast
leave): a port known to have one host may be pruned at once.
"""

from __future__ import annotations

import time

import pytest

from lab import decode_max_resp, igmp_of, igmp_report, members, querier, random_marker

G = "239.2.2.2"
PORT = 5010


@pytest.mark.parametrize("host_igmp", [2, 3], ids=["v2-leave", "v3-to-in-empty"])
def test_fast_leave_port_is_pruned_at_once(four, host_igmp):
    """On a :fast-leave port a leave removes the port from the group immediately
    (no group-specific query round); delivery to it stops while the other member on
    a normal port keeps receiving."""
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    for h in (h1, h2):
        h.igmp_version(host_igmp)
    sw = four.start_switch(suffixes={"h2": ":fast-leave"})
    st = sw.status()
    assert [p["fast_leave"] for p in st["ports"] if p["name"] == "h2"] == [True]
    rx1 = h1.join(G, PORT)
    rx2 = h2.join(G, PORT)
    marker = random_marker("before")
    sent = h4.send_udp(G, PORT, count=20, marker=marker)
    assert len(rx1.collect(20, timeout=3, marker=marker)) == 20
    assert len(rx2.collect(20, timeout=3, marker=marker)) == 20

    t0 = time.monotonic()
    rx2.leave()
    sw.wait_status(lambda s: "h2" not in members(s, G), timeout=1.0,
                   what="h2 pruned from the group within 1 s of its leave (fast leave)")
    took = time.monotonic() - t0
    assert "h1" in members(sw.status(), G)

    cap = h2.capture()
    marker = random_marker("after")
    sent = h4.send_udp(G, PORT, count=20, marker=marker)
    got = rx1.collect(20, timeout=3, marker=marker)
    assert sorted(got) == sorted(sent), f"remaining member h1 received {len(got)} of 20"
    cap.stop(settle=0.2)
    leaked = cap.to_group(G)
    assert leaked == [], f"h2 left (fast leave, pruned after {took:.2f}s) but still saw {len(leaked)} frames to {G}"


@pytest.mark.parametrize("host_igmp", [2, 3], ids=["v2-leave", "v3-to-in-empty"])
def test_leave_with_querier_sends_group_specific_queries_then_prunes(four, host_igmp):
    """As querier, on a leave from a normal port the switch sends last-member-query-count
    group-specific queries (to the group, max resp = last member query interval),
    last-member-query-interval apart, and prunes the port when no report comes back;
    another member on another port keeps receiving."""
    lmqc, lmqi = 3, 0.2
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    for h in (h1, h3):
        h.igmp_version(host_igmp)
    sw = four.start_switch("--querier", "--querier-address", "192.0.2.254", "--query-interval", "10",
                           "--query-response-interval", "1", "--last-member-query-interval", str(lmqi),
                           "--last-member-query-count", str(lmqc))
    rx1 = h1.join(G, PORT)
    rx3 = h3.join(G, PORT)
    assert members(sw.status(), G) == {"h1", "h3"}
    cap1 = h1.capture()
    time.sleep(0.1)

    t0 = time.monotonic()
    rx1.leave()
    sw.wait_status(lambda s: "h1" not in members(s, G), timeout=lmqc * lmqi + 3,
                   what="h1 pruned after the group-specific queries went unanswered")
    pruned_after = time.monotonic() - t0
    assert "h3" in members(sw.status(), G), "the other member h3 was pruned too"
    time.sleep(0.3)
    gsq = cap1.igmp(lambda m: m.is_query and m.group == G and m.ip.src == "192.0.2.254")
    assert gsq, f"no group-specific query for {G} reached h1 after its leave"
    # Each leave message may start a round (an IGMPv3 host repeats its TO_IN({}) report,
    # RFC 3376 6.4.2 "Send Q(G)" for each); a round is last-member-query-count queries.
    leaves = [f for f in cap1.outgoing() if (m := igmp_of(f)) is not None and (
        (m.is_leave and m.group == G) or (m.type == 0x22 and (3, G) in m.v3_report_groups()))]
    assert leaves, "h1's kernel sent no leave (harness problem)"
    assert lmqc <= len(gsq) <= lmqc * len(leaves), \
        f"expected {lmqc} group-specific queries per leave ({len(leaves)} leaves), saw {len(gsq)}: {gsq}"
    gaps = [b.frame.time - a.frame.time for a, b in zip(gsq[:lmqc], gsq[1:lmqc])]
    assert all(lmqi * 0.5 <= g <= lmqi * 2 + 0.1 for g in gaps), f"queries not {lmqi}s apart: {gaps}"
    for q in gsq:
        assert q.ip.dst == G and q.ip.ttl == 1 and q.ip.router_alert and q.checksum_ok and q.ip.header_checksum_ok
        assert abs(decode_max_resp(q.code) - lmqi) < 0.05, f"max resp {decode_max_resp(q.code)} != LMQI {lmqi}"
    assert pruned_after >= (lmqc - 1) * lmqi, f"pruned after {pruned_after:.2f}s: too early for {lmqc} queries"
    assert pruned_after <= lmqc * lmqi + 1.5, f"pruned only after {pruned_after:.2f}s"
    st = sw.status()
    assert st["igmp"]["sent"].get("group_query", 0) >= lmqc

    cap1.stop()
    cap1 = h1.capture()
    marker = random_marker("after")
    sent = h4.send_udp(G, PORT, count=20, marker=marker)
    got = rx3.collect(20, timeout=3, marker=marker)
    assert sorted(got) == sorted(sent), f"remaining member h3 received {len(got)} of 20"
    cap1.stop(settle=0.2)
    leaked = cap1.to_group(G)
    assert leaked == [], f"h1 was pruned but still saw {len(leaked)} frames to {G}"


def test_v3_is_include_empty_prunes_a_fast_leave_port(four):
    """An IGMPv3 report with a MODE_IS_INCLUDE({}) record for the group (no sources: the
    host no longer listens) counts as a leave: a :fast-leave port is pruned at once."""
    sw = four.start_switch(suffixes={"h2": ":fast-leave"})
    h2 = four["h2"]
    h2.send_frames([igmp_report(h2.mac, h2.addr, G, version=3, record_type=2)])  # IS_EX({}): a member
    sw.wait_status(lambda s: "h2" in members(s, G), timeout=2, what="h2 member after its IS_EX({}) report")
    h2.send_frames([igmp_report(h2.mac, h2.addr, G, version=3, record_type=1)])  # IS_IN({})
    sw.wait_status(lambda s: "h2" not in members(s, G), timeout=1.0,
                   what="h2 pruned within 1 s of its IS_IN({}) report (fast leave)")


def test_membership_expires_without_reports_but_answering_members_stay(four):
    """As querier (QI 2 s, QRI 1 s, robustness 2: group membership interval 2*2+1 = 5 s),
    a port whose host reported once and then stays silent is pruned after about the
    group membership interval, while a host that answers the queries stays a member."""
    sw = four.start_switch("--querier", "--querier-address", "192.0.2.254", "--query-interval", "2",
                           "--query-response-interval", "1")
    h1, h3, h4 = four["h1"], four["h3"], four["h4"]
    rx1 = h1.join(G, PORT)  # a real member: its kernel answers every query
    # h3 reports without joining: its kernel will not answer the queries.
    h3.send_frames([igmp_report(h3.mac, h3.addr, G, version=2)])
    sw.wait_status(lambda s: "h3" in members(s, G), timeout=2, what="h3 member after its report")
    t0 = time.monotonic()
    g = [g for g in sw.status()["groups"] if g["group"] == G and g["vlan"] == 1][0]
    exp = {m["port"]: m["expires_in"] for m in g["members"]}
    assert 3.5 <= exp["h3"] <= 5.2, f"h3 expires in {exp['h3']}, expected about 5 s (GMI)"
    sw.wait_status(lambda s: "h3" not in members(s, G), timeout=7, what="h3 pruned after the GMI")
    gone = time.monotonic() - t0
    assert gone >= 3.5, f"h3 pruned after {gone:.1f}s, before the 5 s group membership interval"
    time.sleep(max(0.0, t0 + 6.5 - time.monotonic()))  # past h1's first GMI too
    st = sw.status()
    assert "h1" in members(st, G), "h1 answers the queries but lost its membership"
    assert querier(st).get("role") == "us"
    marker = random_marker("still")
    sent = h4.send_udp(G, PORT, count=20, marker=marker)
    assert sorted(rx1.collect(20, timeout=3, marker=marker)) == sorted(sent)
