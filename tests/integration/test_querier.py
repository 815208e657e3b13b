"""The switch as IGMP querier (topologies/four-hosts.topo).

RFC 3376 4.1 / 8, RFC 2236 2 / 3, RFC 4541 2.1.1: general queries are sent to
224.0.0.1 with IP TTL 1 and the Router Alert option; an IGMPv3 query carries the
robustness variable (QRV) and the query interval (QQIC); startup queries go out a
quarter of the query interval apart; a querier hearing a query from a lower address
stops querying until the other querier present interval (robustness * QI + QRI/2)
passes without one.
"""

from __future__ import annotations

import time

import pytest

from lab import decode_max_resp, decode_qqic, igmp_query, querier, random_marker, wait_until

QA = "192.0.2.254"


def _general_queries(cap, src):
    return cap.igmp(lambda m: m.is_query and m.group == "0.0.0.0" and m.ip.src == src)


def test_general_queries_are_well_formed_igmpv3(four):
    """--querier --querier-address 192.0.2.254: every host port receives IGMPv3 general
    queries from 192.0.2.254 to 224.0.0.1 (MAC 01:00:5e:00:00:01), TTL 1, Router Alert,
    correct IP and IGMP checksums, Max Resp Code = query response interval,
    QRV = robustness, QQIC = query interval, no sources."""
    caps = {h.name: h.capture() for h in four.hosts.values()}
    sw = four.start_switch("--querier", "--querier-address", QA, "--query-interval", "2",
                           "--query-response-interval", "1", "--robustness", "3")
    for name, cap in caps.items():
        wait_until(lambda: _general_queries(cap, QA), timeout=3, what=f"a general query at {name}")
    for name, cap in caps.items():
        cap.stop()
        for q in _general_queries(cap, QA):
            f = q.frame
            assert f.dst == "01:00:5e:00:00:01", f"{name}: query to MAC {f.dst}"
            assert not f.tagged, f"{name}: query on an access port is tagged"
            assert q.ip.dst == "224.0.0.1"
            assert q.ip.ttl == 1, f"TTL {q.ip.ttl}"
            assert q.ip.header_checksum_ok, "bad IP header checksum"
            assert q.ip.router_alert, "no Router Alert option"
            assert q.ip.total_length == len(q.ip.header) + len(q.raw)
            assert q.checksum_ok, "bad IGMP checksum"
            assert q.query_version == 3 and len(q.raw) == 12, f"IGMP length {len(q.raw)}"
            assert decode_max_resp(q.code) == pytest.approx(1.0), f"max resp code {q.code}"
            assert q.qrv == 3, f"QRV {q.qrv} != robustness 3"
            assert decode_qqic(q.qqic) == 2, f"QQIC {q.qqic} != query interval 2"
            assert q.num_sources == 0 and q.s_flag == 0
    st = sw.status()
    q = querier(st, 1)
    assert q.get("role") == "us" and q.get("address") == QA, q
    assert st["igmp"]["sent"].get("general_query", 0) >= 1


@pytest.mark.parametrize("version,code", [(2, 10), (1, 0)], ids=["v2", "v1"])
def test_igmp_version_selects_query_format(four, version, code):
    """--igmp-version 2 sends IGMPv2 general queries (8-byte IGMP, Max Resp Time in
    tenths of a second); --igmp-version 1 sends IGMPv1 queries (8 bytes, code 0)."""
    cap = four["h1"].capture()
    four.start_switch("--querier", "--querier-address", QA, "--igmp-version", str(version),
                      "--query-interval", "2", "--query-response-interval", "1")
    wait_until(lambda: _general_queries(cap, QA), timeout=3, what="a general query")
    cap.stop()
    for q in _general_queries(cap, QA):
        assert len(q.raw) == 8 and q.ip.total_length == len(q.ip.header) + 8, f"IGMP length {len(q.raw)}"
        assert q.type == 0x11 and q.code == code, f"code {q.code}, expected {code}"
        assert q.query_version == version
        assert q.checksum_ok and q.ip.header_checksum_ok and q.ip.ttl == 1 and q.ip.dst == "224.0.0.1"


def test_startup_queries_come_a_quarter_interval_apart(four):
    """At startup the querier sends robustness (2) general queries a quarter of the query
    interval apart (4 s / 4 = 1 s), then one per query interval."""
    cap = four["h1"].capture()
    t_start = time.monotonic()
    four.start_switch("--querier", "--querier-address", QA, "--query-interval", "4",
                      "--query-response-interval", "1")
    wait_until(lambda: len(_general_queries(cap, QA)) >= 2, timeout=3, what="two startup queries")
    time.sleep(max(0.0, t_start + 3.5 - time.monotonic()))
    cap.stop()
    qs = _general_queries(cap, QA)
    times = [q.frame.time for q in qs]
    assert len(qs) == 2, f"expected 2 startup queries in the first 3.5 s, got {len(qs)} at {[round(t - t_start, 2) for t in times]}"
    gap = times[1] - times[0]
    assert 0.6 <= gap <= 1.4, f"startup queries {gap:.2f}s apart, expected 1 s"


def test_lower_address_querier_wins_then_times_out(four):
    """A query from a lower address (192.0.2.10 < 192.0.2.100) makes the switch a
    non-querier (role "other"), and it sends no query while that querier is present;
    after the other querier present interval (2*2 + 1/2 = 4.5 s) without a query it
    resumes querying."""
    me, other = "192.0.2.100", "192.0.2.10"
    h1, h4 = four["h1"], four["h4"]
    sw = four.start_switch("--querier", "--querier-address", me, "--query-interval", "2",
                           "--query-response-interval", "1")
    sw.wait_status(lambda s: querier(s).get("role") == "us", timeout=3, what="switch is the querier")
    h4.send_frames([igmp_query(h4.mac, other, version=3, max_resp=1.0, qrv=2, qqic=2)])
    t_other = time.monotonic()
    q = sw.wait_status(lambda s: querier(s) if querier(s).get("role") == "other" else None, timeout=2,
                       what="role 'other' after a query from a lower address")
    assert q.get("address") == other, q
    assert q.get("other_querier_expires_in") is not None and 3.0 <= q["other_querier_expires_in"] <= 4.6, q
    assert sw.status()["igmp"]["received"].get("query_v3", 0) >= 1

    cap = h1.capture()
    time.sleep(2.5)  # more than a query interval
    mine = _general_queries(cap, me)
    assert mine == [], f"switch kept querying while a lower querier was present: {mine}"

    sw.wait_status(lambda s: querier(s).get("role") == "us", timeout=4.5 + 2.0 - (time.monotonic() - t_other),
                   what="switch querier again after the other querier present interval")
    resumed = time.monotonic() - t_other
    assert resumed >= 4.0, f"resumed after {resumed:.2f}s, before the 4.5 s other querier present interval"
    wait_until(lambda: _general_queries(cap, me), timeout=3, what="queries from the switch again")
    cap.stop()


def test_higher_address_querier_does_not_silence_the_switch(four):
    """A query from a higher address (192.0.2.200 > 192.0.2.100) does not stop the
    switch from querying."""
    me = "192.0.2.100"
    h1, h4 = four["h1"], four["h4"]
    sw = four.start_switch("--querier", "--querier-address", me, "--query-interval", "2",
                           "--query-response-interval", "1")
    sw.wait_status(lambda s: querier(s).get("role") == "us", timeout=3, what="switch is the querier")
    h4.send_frames([igmp_query(h4.mac, "192.0.2.200", version=3, max_resp=1.0, qrv=2, qqic=2)])
    cap = h1.capture()
    sw.wait_status(lambda s: s["igmp"]["received"].get("query_v3", 0) >= 1, timeout=2, what="query counted")
    assert querier(sw.status()).get("role") == "us"
    wait_until(lambda: _general_queries(cap, me), timeout=3, what="the switch's next general query")
    cap.stop()
    assert querier(sw.status()).get("role") == "us"
