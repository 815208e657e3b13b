"""Timers after a leave follow the elected querier; a router's goodbye takes back only what
its protocol taught (topologies/four-hosts.topo, topologies/mrouter.topo).

RFC 3376 6.6.1 (a router that is not the querier) and RFC 2236 3: when another querier is
elected, a leave changes no timer by itself; the querier's group-specific query lowers the
group timer to its last member query time, its QRV (IGMPv2: our last member query count)
times the query's max response time. A router whose last member query interval is longer
than ours (1 s x 2 here) keeps its members until its own queries run out.
RFC 7761 4.9.2: a PIM hello with holdtime 0 times out the neighbor at once, holdtime 0xFFFF
never; neither touches a static router port nor one a query keeps.
"""

from __future__ import annotations

import threading
import time

import pytest

from lab import (igmp_leave, igmp_query, igmp_report, members, pim_hello, querier, random_marker, router_ports,
                 wait_until)

G = "239.16.4.4"
PORT = 5164
US = "192.0.2.254"


@pytest.mark.parametrize("version,max_resp,qrv,lmqt", [(2, 4.0, 2, 8.0), (3, 3.0, 3, 9.0)], ids=["igmpv2", "igmpv3"])
def test_a_router_with_a_longer_last_member_query_time_keeps_its_member(four, version, max_resp, qrv, lmqt):
    """h4 is a router at 192.0.2.4 (below our 192.0.2.254: it is the querier) whose group-specific
    queries after a leave carry a max response time of MAX_RESP (v3: QRV QRV). h1 reports G and
    leaves it (crafted: h1's own stack never answers). h1 keeps getting h2's datagrams to G
    past our own last member query time (2 s) and until the router's runs out (LMQT s after
    its first query), then no more."""
    sw = four.start_switch("--querier", "--querier-address", US)
    h1, h2, h4 = four["h1"], four["h2"], four["h4"]
    h4.send_frames([igmp_query(h4.mac, h4.addr, version=version, max_resp=1.0, qrv=qrv, qqic=125)])
    sw.wait_status(lambda s: querier(s).get("role") == "other", timeout=3, what="the router elected")
    h1.send_frames([igmp_report(h1.mac, h1.addr, G, version=version)])
    sw.wait_status(lambda s: "h1" in members(s, G), timeout=3, what="h1 a member of G")

    cap = h1.capture()
    marker = random_marker("lmqt")
    stop = threading.Event()

    def source():
        while not stop.is_set():
            h2.send_udp(G, PORT, count=1, marker=marker)
            stop.wait(0.1)

    sender = threading.Thread(target=source, daemon=True)
    sender.start()
    try:
        cap.wait_for(lambda f: marker in f.data, count=3, timeout=3, what="G's data at h1 while a member")
        leave = (igmp_leave(h1.mac, h1.addr, G) if version == 2
                 else igmp_report(h1.mac, h1.addr, G, version=3, record_type=3))   # TO_IN({})
        h1.send_frames([leave])
        # The router asks, LMQC times, max_resp apart (its last member query interval).
        q = igmp_query(h4.mac, h4.addr, version=version, group=G, max_resp=max_resp, qrv=qrv, qqic=125)
        h4.send_frames([q])
        first = time.monotonic()
        time.sleep(max_resp)
        h4.send_frames([q])
        time.sleep(max(0.0, first + lmqt - 1.0 - time.monotonic()))
        assert "h1" in members(sw.status(), G), \
            f"h1 pruned before the router's last member query time ({lmqt} s after its first query)"
        wait_until(lambda: "h1" not in members(sw.status(), G), timeout=3,
                   what=f"h1 pruned once the router's LMQT ({lmqt} s) ran out")
        pruned = time.monotonic()
        time.sleep(1.0)
    finally:
        stop.set()
        sender.join()
    cap.stop(settle=0.2)
    got = [f.time - first for f in cap.with_marker(marker)]
    assert any(3.0 <= t <= lmqt - 1.0 for t in got), \
        f"no datagram at h1 between 3 s and {lmqt - 1} s after the router's query: {[round(t, 1) for t in got]}"
    late = [round(t, 2) for t in got if t > pruned - first + 0.3]
    assert late == [], f"datagrams at h1 after it was pruned: {late}"
    assert lmqt - 0.3 <= pruned - first <= lmqt + 1.5, f"pruned {pruned - first:.1f} s after the query, {lmqt} s expected"


def test_pim_goodbye_keeps_a_static_router_port(mrouter):
    """The router on a static :router port says hello (holdtime 105) and goodbye (holdtime 0):
    it stays a static router port and keeps getting unregistered groups' data."""
    sw = mrouter.start_switch(default_flags=True)
    h2, router = mrouter["h2"], mrouter["router"]
    router.send_frames([pim_hello(router.mac, router.addr, holdtime=105)])
    sw.wait_status(lambda s: s["igmp"]["received"].get("pim_hello", 0) >= 1, timeout=3, what="the hello heard")
    router.send_frames([pim_hello(router.mac, router.addr, holdtime=0)])
    sw.wait_status(lambda s: s["igmp"]["received"].get("pim_hello", 0) >= 2, timeout=3, what="the goodbye heard")
    rp = router_ports(sw.status()).get("router")
    assert rp and rp["kind"] == "static", rp
    cap = router.capture()
    marker = random_marker("static")
    h2.send_udp("239.16.9.9", PORT, count=5, marker=marker)
    cap.wait_for(lambda f: marker in f.data, count=5, timeout=3, what="unregistered data at the static router port")


def test_pim_goodbye_keeps_a_port_a_query_taught(four):
    """h4 queries (a router port for the other querier present interval) and is a PIM neighbor;
    its hello with holdtime 0 takes back the PIM neighbor only: h4 stays a router port, by
    igmp-query. A hello with holdtime 0xFFFF on h3 makes a router port that never expires."""
    sw = four.start_switch()
    h3, h4 = four["h3"], four["h4"]
    # Its QQIC of 125 s: the router port lasts the querier's own other querier present
    # interval, 2 x 125 + 1 / 2 = 250.5 s (RFC 3376 8.5).
    h4.send_frames([igmp_query(h4.mac, h4.addr, version=3, max_resp=1.0, qqic=125)])
    h4.send_frames([pim_hello(h4.mac, h4.addr, holdtime=1000)])
    sw.wait_status(lambda s: (router_ports(s).get("h4") or {}).get("reason") == "pim-hello", timeout=3,
                   what="h4 a router port by its hello (1000 s outlasts the query's 255 s)")
    h4.send_frames([pim_hello(h4.mac, h4.addr, holdtime=0)])
    rp = sw.wait_status(lambda s: (router_ports(s).get("h4") or {}) if (router_ports(s).get("h4") or {}).get("reason") != "pim-hello" else None,
                        timeout=3, what="the hello's part taken back")
    assert rp.get("reason") == "igmp-query" and 200 < (rp.get("expires_in") or 0) <= 255, rp

    h3.send_frames([pim_hello(h3.mac, h3.addr, holdtime=0xFFFF)])
    rp = sw.wait_status(lambda s: router_ports(s).get("h3"), timeout=3, what="h3 a router port")
    assert rp["reason"] == "pim-hello" and rp["expires_in"] is None, rp
    rows = [line.split() for line in sw.status_text().splitlines()]
    assert ["1", "IGMP", "h3", "learned", "pim-hello", "never"] in rows, sw.status_text()
