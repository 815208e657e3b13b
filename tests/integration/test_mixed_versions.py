"""IGMPv1, v2 and v3 hosts on one switch (topologies/mixed-versions.topo).

RFC 3376 7 (interoperation with older versions): the switch, as querier with IGMPv3
queries, keeps each port's state in the compatibility mode of the oldest report heard
on it (README: state per (VLAN, group, port)). A v2 host leaves with a Leave, a v3 host
with a TO_IN({}) record; each is pruned after the last member query time while the other
ports keep receiving. A v1 host never leaves: its port stays a member (v2 leaves on it
are ignored, RFC 3376 7.3.2) until the group membership interval runs out.

The hosts are real Linux hosts: net.ipv4.conf.eth0.force_igmp_version is set before they
join; the switch runs with the topology file's flags (query interval 5 s, response 1 s,
robustness 3: GMI 16 s, longer than an IGMPv1 host's gap between reports; last member
query interval 0.2 s, count 2: LMQT 0.4 s).
"""

from __future__ import annotations

import time

from lab import igmp_leave, igmp_of, member_entry, members, random_marker, wait_until

G = "239.8.8.8"
PORT = 5080
QI, QRI, ROBUSTNESS, LMQI, LMQC = 5, 1, 3, 0.2, 2
GMI = ROBUSTNESS * QI + QRI
LMQT = LMQC * LMQI


def _versions(status, group, ports):
    out = {}
    for p in ports:
        e = member_entry(status, group, p)
        if e is not None:
            out[p] = (e["version"], e["compatibility"])
    return out


def _expect_delivery(src, receivers: dict, tag: str):
    """src sends 20 datagrams; each receiver socket must get all of them."""
    marker = random_marker(tag)
    sent = src.send_udp(G, PORT, count=20, marker=marker)
    for name, rx in receivers.items():
        got = rx.collect(20, timeout=3, marker=marker)
        assert sorted(got) == sorted(sent), f"{tag}: member {name} received {len(got)} of 20 datagrams"
    return marker


def test_v1_v2_v3_hosts_receive_and_v2_v3_leave_one_by_one(mixed):
    """hv1 (IGMPv1), hv2 (IGMPv2) and hv3 (IGMPv3) join the group: status lists each port
    with its version and compatibility mode; each receives the traffic. hv2's socket closes
    (a v2 Leave): hv2 is pruned within the last member query time and sees no frame of the
    group, hv1 and hv3 still receive. hv3 leaves (TO_IN({})): hv3 is pruned likewise and
    sees nothing, hv1 still receives."""
    hv1, hv2, hv3, src = (mixed[n] for n in ("hv1", "hv2", "hv3", "src"))
    hv1.igmp_version(1)
    hv2.igmp_version(2)
    hv3.igmp_version(0)
    sw = mixed.start_switch(default_flags=True)
    rx1, rx2, rx3 = hv1.join(G, PORT), hv2.join(G, PORT), hv3.join(G, PORT)
    st = sw.wait_status(lambda s: members(s, G) == {"hv1", "hv2", "hv3"} and s, timeout=3, what="three members")
    vers = _versions(st, G, ("hv1", "hv2", "hv3"))
    assert vers == {"hv1": (1, 1), "hv2": (2, 2), "hv3": (3, 3)}, f"(version, compatibility) per port: {vers}"
    _expect_delivery(src, {"hv1": rx1, "hv2": rx2, "hv3": rx3}, "all-three")

    # hv2: closing the socket drops the membership; the v2 kernel sends a Leave to 224.0.0.2.
    cap2 = hv2.capture()
    t0 = time.monotonic()
    rx2.close()
    sw.wait_status(lambda s: "hv2" not in members(s, G), timeout=LMQT + 2.5,
                   what="hv2 pruned after its IGMPv2 leave")
    took2 = time.monotonic() - t0
    print(f"hv2 pruned {took2:.2f}s after its leave")
    leaves = [m for f in cap2.outgoing() if (m := igmp_of(f)) is not None and m.is_leave and m.group == G]
    assert leaves, "hv2's kernel sent no IGMPv2 Leave (harness problem)"
    assert took2 <= LMQT + 1.5, f"hv2 pruned {took2:.2f}s after its leave (last member query time {LMQT}s)"
    assert members(sw.status(), G) == {"hv1", "hv3"}, "hv2's leave changed another port's membership"
    cap2.stop()
    cap2 = hv2.capture()
    _expect_delivery(src, {"hv1": rx1, "hv3": rx3}, "after-v2-leave")
    cap2.stop(settle=0.2)
    leaked = cap2.data_to_group(G)
    assert leaked == [], f"hv2 left (pruned after {took2:.2f}s) but saw {len(leaked)} frames of {G}"

    # hv3: IP_DROP_MEMBERSHIP; the v3 kernel sends a TO_IN({}) record (a leave).
    cap3 = hv3.capture()
    t0 = time.monotonic()
    rx3.leave()
    sw.wait_status(lambda s: "hv3" not in members(s, G), timeout=LMQT + 2.5,
                   what="hv3 pruned after its TO_IN({}) report")
    took3 = time.monotonic() - t0
    print(f"hv3 pruned {took3:.2f}s after its leave")
    to_in = [m for f in cap3.outgoing() if (m := igmp_of(f)) is not None and m.type == 0x22
             and (3, G) in m.v3_report_groups()]
    assert to_in, "hv3's kernel sent no TO_IN({}) record (harness problem)"
    assert took3 <= LMQT + 1.5, f"hv3 pruned {took3:.2f}s after its leave (last member query time {LMQT}s)"
    st = sw.status()
    assert members(st, G) == {"hv1"}, f"members after hv3's leave: {members(st, G)}"
    assert _versions(st, G, ("hv1",)) == {"hv1": (1, 1)}
    cap3.stop()
    cap3 = hv3.capture()
    _expect_delivery(src, {"hv1": rx1}, "after-v3-leave")
    cap3.stop(settle=0.2)
    leaked = cap3.data_to_group(G)
    assert leaked == [], f"hv3 left (pruned after {took3:.2f}s) but saw {len(leaked)} frames of {G}"
    assert st["igmp"]["sent"].get("group_query", 0) >= 1, st["igmp"]


def test_v1_member_ignores_leaves_and_expires_after_the_membership_interval(mixed):
    """hv1 (IGMPv1) and hv3 (IGMPv3) are members. An IGMPv2 Leave for the group sent from
    hv1's port is ignored (counted as ignored_in_v1_mode): hv1 stays a member past the last
    member query time and keeps receiving. Then hv1 reports once more and its socket
    closes (a v1 host sends nothing): the port stays a member for the group membership
    interval (16 s) after that report, then is pruned; hv1 sees no frame of the group
    afterwards while hv3 still receives."""
    hv1, hv3, src = mixed["hv1"], mixed["hv3"], mixed["src"]
    hv1.igmp_version(1)
    hv3.igmp_version(0)
    sw = mixed.start_switch(default_flags=True)
    rx1, rx3 = hv1.join(G, PORT), hv3.join(G, PORT)
    sw.wait_status(lambda s: (e := member_entry(s, G, "hv1")) and e["compatibility"] == 1, timeout=3,
                   what="hv1 in IGMPv1 compatibility mode")

    before = sw.status()["igmp"].get("errors", {}).get("ignored_in_v1_mode", 0)
    hv1.send_frames([igmp_leave(hv1.mac, hv1.addr, G)])
    sw.wait_status(lambda s: s["igmp"].get("errors", {}).get("ignored_in_v1_mode", 0) > before, timeout=2,
                   what="the v2 leave on the v1 port counted as ignored_in_v1_mode")
    time.sleep(LMQT + 0.6)
    assert "hv1" in members(sw.status(), G), "a v2 leave pruned a port in IGMPv1 compatibility mode"
    _expect_delivery(src, {"hv1": rx1, "hv3": rx3}, "after-ignored-leave")

    # A fresh join makes hv1 report now (a v1 host sends nothing on leaving); then its
    # socket closes and it stops answering queries: that report keeps it for one GMI.
    cap1 = hv1.capture()
    rx1.rejoin()
    wait_until(lambda: [m for f in cap1.outgoing() if (m := igmp_of(f)) is not None and m.type == 0x12
                        and m.group == G], timeout=2, what="hv1's unsolicited IGMPv1 report")
    t_report = time.monotonic()
    rx1.close()
    time.sleep(LMQT + 0.6)
    assert "hv1" in members(sw.status(), G), "hv1 (IGMPv1: no leave) was pruned right after its socket closed"
    n_reports = len([f for f in cap1.outgoing() if (m := igmp_of(f)) is not None and m.is_report])
    sw.wait_status(lambda s: "hv1" not in members(s, G), timeout=GMI + 2,
                   what="hv1 pruned once the group membership interval ran out")
    gone = time.monotonic() - t_report
    print(f"hv1 pruned {gone:.2f}s after its last report")
    later = [f for f in cap1.outgoing() if (m := igmp_of(f)) is not None and m.is_report]
    assert len(later) == n_reports, f"hv1 still reported after its socket closed: {later[n_reports:]}"
    assert [m for f in cap1.outgoing() if (m := igmp_of(f)) is not None and m.is_leave] == [], "a v1 host sent a leave"
    assert GMI - 1.0 <= gone <= GMI + 1.0, f"hv1 pruned {gone:.1f}s after its last report (GMI {GMI}s)"
    assert members(sw.status(), G) == {"hv3"}
    cap1.stop()
    cap1 = hv1.capture()
    _expect_delivery(src, {"hv3": rx3}, "after-v1-expiry")
    cap1.stop(settle=0.2)
    leaked = cap1.to_group(G)
    assert leaked == [], f"hv1's membership expired but it saw {len(leaked)} frames of {G}"
