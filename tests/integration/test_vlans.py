"""802.1Q VLANs (topologies/two-vlans-trunk.topo plus a second trunk host, trunk2).

IEEE 802.1Q: an access port classifies untagged frames into its PVID and sends
untagged; a trunk port carries its VLANs tagged; frames with a VID not allowed on the
ingress port are dropped; broadcast, unknown unicast and multicast never cross from one
VLAN to another; the priority (PCP) of a tagged frame is kept on tagged egress.
RFC 4541: IGMP snooping state is per VLAN.

The trunk hosts have no VLAN devices (no 8021q module here): they send tagged frames
through an AF_PACKET socket and the captures put the tag back from PACKET_AUXDATA.
"""

from __future__ import annotations

import time

from lab import group_vlans, igmp_report, members, port_entry, random_marker, udp_frame, wait_until

G = "239.4.4.4"
PORT = 5030
BCAST = "ff:ff:ff:ff:ff:ff"


def _tagged_bcast(src, vlan, marker, pcp=0, subnet="192.0.2"):
    return udp_frame(src.mac, BCAST, f"{subnet}.77", f"{subnet}.255", PORT, marker, vlan=vlan, pcp=pcp)


def test_tagged_frame_from_trunk_reaches_its_vlan_untagged_only(vlans):
    """A broadcast tagged VLAN 10 from the trunk host reaches both VLAN 10 access hosts
    untagged (their sockets get it) and trunk2 tagged 10, and never a VLAN 20 host; a
    unicast tagged 10 to v10a's MAC reaches v10a."""
    vlans.start_switch()
    trunk, trunk2 = vlans["trunk"], vlans["trunk2"]
    v10a, v10b, v20a, v20b = (vlans[n] for n in ("v10a", "v10b", "v20a", "v20b"))
    rxa, rxb = v10a.receiver(None, PORT), v10b.receiver(None, PORT)
    caps = {h.name: h.capture() for h in (v10a, v20a, v20b, trunk2)}
    marker = random_marker("t10")
    trunk.send_frames([_tagged_bcast(trunk, 10, marker)])
    assert len(rxa.collect(1, timeout=3, marker=marker)) == 1, "v10a's socket did not get the VLAN 10 broadcast"
    assert len(rxb.collect(1, timeout=3, marker=marker)) == 1, "v10b's socket did not get the VLAN 10 broadcast"
    t2 = caps["trunk2"].wait_for(lambda f: marker in f.data, timeout=3, what="the broadcast at trunk2")
    assert t2[0].vlan == 10, f"at trunk2: {t2[0]}"

    unicast = random_marker("u10")
    trunk.send_frames([udp_frame(trunk.mac, v10a.mac, "192.0.2.77", v10a.addr, PORT, unicast, vlan=10)])
    assert len(rxa.collect(1, timeout=3, marker=unicast)) == 1, "v10a's socket did not get the VLAN 10 unicast"
    time.sleep(0.2)
    for cap in caps.values():
        cap.stop()
    at_v10a = caps["v10a"].with_marker(marker)
    assert at_v10a and all(not f.tagged for f in at_v10a), f"at v10a: {at_v10a}"
    for name in ("v20a", "v20b"):
        leaked = caps[name].with_marker(marker) + caps[name].with_marker(unicast)
        assert leaked == [], f"VLAN 10 frames reached {name}: {leaked}"


def test_access_frame_leaves_the_trunk_tagged_with_its_vlan(vlans):
    """An untagged broadcast from VLAN 20 access host v20a reaches v20b and leaves the
    trunk tagged VID 20 (priority 0), and reaches no VLAN 10 host."""
    vlans.start_switch()
    trunk, v10a, v10b, v20a, v20b = (vlans[n] for n in ("trunk", "v10a", "v10b", "v20a", "v20b"))
    rx = v20b.receiver(None, PORT)
    caps = {h.name: h.capture() for h in (trunk, v10a, v10b)}
    marker = random_marker("a20")
    sent = v20a.send_udp("198.51.100.255", PORT, count=5, marker=marker)
    got = rx.collect(5, timeout=3, marker=marker)
    assert sorted(got) == sorted(sent), f"v20b got {len(got)} of 5 broadcasts"
    at_trunk = caps["trunk"].wait_for(lambda f: marker in f.data, count=5, timeout=3, what="broadcasts at trunk")
    assert all(f.vlan == 20 and f.pcp == 0 for f in at_trunk), f"at trunk: {at_trunk}"
    time.sleep(0.2)
    for name in ("v10a", "v10b"):
        caps[name].stop()
        assert caps[name].with_marker(marker) == [], f"VLAN 20 broadcast reached {name}"


def test_priority_bits_are_kept_trunk_to_trunk(vlans):
    """A frame tagged VLAN 20 priority 5 from the trunk host leaves trunk2 tagged VLAN 20
    with priority 5, and reaches the VLAN 20 access host untagged."""
    vlans.start_switch()
    trunk, trunk2, v20a = vlans["trunk"], vlans["trunk2"], vlans["v20a"]
    rx = v20a.receiver(None, PORT)
    cap = trunk2.capture()
    marker = random_marker("pcp")
    trunk.send_frames([_tagged_bcast(trunk, 20, marker, pcp=5, subnet="198.51.100")])
    assert len(rx.collect(1, timeout=3, marker=marker)) == 1, "v20a's socket did not get the frame"
    got = cap.wait_for(lambda f: marker in f.data, timeout=3, what="the frame at trunk2")
    assert got[0].vlan == 20 and got[0].pcp == 5, f"at trunk2: {got[0]} (expected VLAN 20, priority 5)"


def test_frames_with_vlans_not_allowed_on_the_port_are_dropped(vlans):
    """A frame tagged VLAN 30 on a trunk allowing 10 and 20, or tagged VLAN 20 on a
    VLAN 10 access port, is dropped (no host receives it) and counted in the port's drops."""
    sw = vlans.start_switch()
    trunk, v10a = vlans["trunk"], vlans["v10a"]
    others = [h for h in vlans.hosts.values() if h.name != "trunk"]
    caps = {h.name: h.capture() for h in others}
    st0 = sw.status()
    drops_trunk0 = port_entry(st0, "trunk")["drops"]
    drops_v10a0 = port_entry(st0, "v10a")["drops"]
    m30, m20 = random_marker("v30"), random_marker("v20-on-access")
    trunk.send_frames([_tagged_bcast(trunk, 30, m30) for _ in range(10)])
    v10a.send_frames([udp_frame(v10a.mac, BCAST, "198.51.100.77", "198.51.100.255", PORT, m20, vlan=20)
                      for _ in range(10)])
    # Something allowed, sent afterwards, shows the switch got this far.
    ok = random_marker("ok")
    rx = vlans["v10b"].receiver(None, PORT)
    trunk.send_frames([_tagged_bcast(trunk, 10, ok)])
    assert len(rx.collect(1, timeout=3, marker=ok)) == 1
    st = sw.wait_status(lambda s: s if port_entry(s, "trunk")["drops"] >= drops_trunk0 + 10 else None, timeout=2,
                        what="10 more drops on trunk (VLAN 30 not allowed)")
    assert port_entry(st, "v10a")["drops"] >= drops_v10a0 + 10, f"v10a drops: {port_entry(st, 'v10a')}"
    time.sleep(0.1)
    for name, cap in caps.items():
        cap.stop()
        leaked = cap.with_marker(m30) + cap.with_marker(m20)
        assert leaked == [], f"{name} received frames of a VLAN not allowed on the ingress port: {leaked[:2]}"


def test_broadcast_stays_in_its_vlan(vlans):
    """A broadcast from VLAN 10 access host v10a reaches v10b and the trunks tagged 10,
    and no VLAN 20 port."""
    vlans.start_switch()
    v10a, v10b, v20a, v20b, trunk = (vlans[n] for n in ("v10a", "v10b", "v20a", "v20b", "trunk"))
    rx = v10b.receiver(None, PORT)
    caps = {h.name: h.capture() for h in (v20a, v20b, trunk)}
    marker = random_marker("b10")
    sent = v10a.send_udp("192.0.2.255", PORT, count=5, marker=marker)
    assert sorted(rx.collect(5, timeout=3, marker=marker)) == sorted(sent)
    at_trunk = caps["trunk"].wait_for(lambda f: marker in f.data, count=5, timeout=3, what="broadcasts at trunk")
    assert all(f.vlan == 10 for f in at_trunk), at_trunk
    time.sleep(0.2)
    for name in ("v20a", "v20b"):
        caps[name].stop()
        assert caps[name].with_marker(marker) == [], f"VLAN 10 broadcast reached {name}"


def test_igmp_membership_is_per_vlan(vlans):
    """Joining 239.4.4.4 in VLAN 10 makes no member in VLAN 20 and vice versa; a tagged
    report from the trunk joins it in that VLAN only; group data stays in its VLAN and
    reaches its members there (the trunk tagged with that VLAN)."""
    sw = vlans.start_switch()
    v10a, v10b, v20a, v20b, trunk = (vlans[n] for n in ("v10a", "v10b", "v20a", "v20b", "trunk"))
    rx10 = v10a.join(G, PORT, vlan=10)
    st = sw.status()
    assert members(st, G, 10) == {"v10a"} and members(st, G, 20) == set(), st["groups"]
    rx20 = v20a.join(G, PORT, vlan=20)
    trunk.send_frames([igmp_report(trunk.mac, "198.51.100.50", G, version=2, vlan=20)])
    sw.wait_status(lambda s: members(s, G, 20) == {"v20a", "trunk"}, timeout=3,
                   what="v20a and trunk members in VLAN 20")
    st = sw.status()
    assert members(st, G, 10) == {"v10a"}, st["groups"]
    assert group_vlans(st, G) == {10, 20}

    caps = {h.name: h.capture() for h in (v10a, v20a, trunk)}
    m10, m20 = random_marker("g10"), random_marker("g20")
    sent10 = v10b.send_udp(G, PORT, count=20, marker=m10)
    sent20 = v20b.send_udp(G, PORT, count=20, marker=m20)
    assert sorted(rx10.collect(20, timeout=3, marker=m10)) == sorted(sent10), "v10a missed VLAN 10 group data"
    assert sorted(rx20.collect(20, timeout=3, marker=m20)) == sorted(sent20), "v20a missed VLAN 20 group data"
    at_trunk = caps["trunk"].wait_for(lambda f: m20 in f.data, count=20, timeout=3, what="VLAN 20 group data at trunk")
    assert all(f.vlan == 20 for f in at_trunk)
    time.sleep(0.2)
    for cap in caps.values():
        cap.stop()
    assert caps["v10a"].with_marker(m20) == [], "VLAN 20 group data reached v10a"
    assert caps["v20a"].with_marker(m10) == [], "VLAN 10 group data reached v20a"
    assert caps["trunk"].with_marker(m10) == [], "VLAN 10 group data reached the trunk (no member or router in VLAN 10 there)"


def test_querier_queries_every_vlan_tagged_on_trunks(vlans):
    """With --querier, general queries go out in each VLAN: untagged on the access ports
    of that VLAN, tagged with the VLAN on the trunks; status has a querier per VLAN."""
    caps = {n: vlans[n].capture() for n in ("v10a", "v20a", "trunk")}
    sw = vlans.start_switch("--querier", "--querier-address", "192.0.2.254", "--query-interval", "2",
                            "--query-response-interval", "1")

    def queries(name, vlan=None):
        return caps[name].igmp(lambda m: m.is_query and m.group == "0.0.0.0" and m.frame.vlan == vlan)

    wait_until(lambda: queries("v10a"), timeout=3, what="an untagged query at v10a")
    wait_until(lambda: queries("v20a"), timeout=3, what="an untagged query at v20a")
    wait_until(lambda: queries("trunk", 10), timeout=3, what="a query tagged 10 at the trunk")
    wait_until(lambda: queries("trunk", 20), timeout=3, what="a query tagged 20 at the trunk")
    assert not caps["trunk"].igmp(lambda m: m.is_query and not m.frame.tagged), "untagged query on a trunk-only port"
    roles = {q["vlan"]: q["role"] for q in sw.status()["queriers"] if q["protocol"] == "igmp"}
    assert roles.get(10) == "us" and roles.get(20) == "us", roles
