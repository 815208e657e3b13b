"""The querier in a VLAN without snooping (topologies/two-vlans-trunk.topo).

`--querier` with `--vlan 20:no-snooping`: VLAN 20 floods every multicast frame, IGMP
included, and tracks no membership; our querier there still takes part in the election
(RFC 3376 6.6.2, RFC 2236 3): it yields to a querier with a lower address heard in VLAN 20
and takes over again once that querier has been quiet for the other querier present
interval (robustness x query interval + query response interval / 2 = 4.5 s here). The
election is per VLAN: VLAN 10 keeps our querier.
"""

from __future__ import annotations

import threading
import time

from lab import igmp_query, querier, random_marker, wait_until

US = "203.0.113.254"
ROUTER = "198.51.100.2"   # v20b's address: below ours


def _ours(cap, since: float = 0.0):
    return cap.igmp(lambda m: m.is_query and m.ip.src == US and m.frame.time >= since)


def test_querier_in_a_vlan_without_snooping_yields_to_a_lower_address(vlans):
    caps = {n: vlans[n].capture() for n in ("v10a", "v20a")}
    sw = vlans.start_switch("--querier", "--querier-address", US, "--query-interval", "2",
                            "--query-response-interval", "1", "--vlan", "20:no-snooping")
    v20a, v20b = vlans["v20a"], vlans["v20b"]
    wait_until(lambda: _ours(caps["v20a"]), timeout=3, what="our query in VLAN 20 at v20a")
    assert querier(sw.status(), 20).get("role") == "us"

    # A router behind v20b queries every second for 6 s (well within 4.5 s of each other).
    stop = threading.Event()

    def router():
        while not stop.is_set():
            v20b.send_frames([igmp_query(v20b.mac, ROUTER, version=3, max_resp=1.0, qqic=2)])
            stop.wait(1.0)

    first = time.monotonic()
    thread = threading.Thread(target=router, daemon=True)
    thread.start()
    try:
        st = sw.wait_status(lambda s: querier(s, 20) if querier(s, 20).get("role") == "other" else None,
                            timeout=3, what="VLAN 20's querier yielding to the router")
        assert st.get("address") == ROUTER, st
        assert querier(sw.status(), 10).get("role") == "us", "VLAN 10 yielded to a query heard in VLAN 20"
        # Still a VLAN without snooping: the router's queries and unregistered data flood.
        wait_until(lambda: caps["v20a"].igmp(lambda m: m.is_query and m.ip.src == ROUTER), timeout=3,
                   what="the router's query flooded to v20a")
        marker = random_marker("flood")
        v20b.send_udp("239.20.20.20", 5120, count=3, marker=marker)
        caps["v20a"].wait_for(lambda f: marker in f.data, count=3, timeout=3, what="unregistered data flooded in VLAN 20")
        time.sleep(6)
    finally:
        stop.set()
        thread.join()
    last = time.monotonic()
    grace = first + 0.5   # a query of ours may have been on its way as the router's first arrived
    during = [m for m in _ours(caps["v20a"], grace) if m.frame.time <= last]
    assert during == [], f"{len(during)} queries of ours in VLAN 20 while the router was the querier"
    assert [m for m in _ours(caps["v10a"], grace) if m.frame.time <= last], "VLAN 10 got no query of ours meanwhile"

    # The router goes quiet: 4.5 s later we query VLAN 20 again.
    wait_until(lambda: _ours(caps["v20a"], last), timeout=8, what="our queries in VLAN 20 again")
    resumed = _ours(caps["v20a"], last)[0].frame.time - last
    assert 3.0 <= resumed <= 6.5, f"took over {resumed:.1f} s after the router's last query (4.5 s expected)"
    assert querier(sw.status(), 20).get("role") == "us"
