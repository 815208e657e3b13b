"""Multicast data forwarding on one VLAN (topologies/four-hosts.topo).

RFC 4541 2.1.2: a snooping switch forwards data for a registered group only to the
ports with members (and router ports); unregistered groups go to router ports only
unless configured to flood them; 224.0.0.0/24 (link-local) is always flooded.
"""

from __future__ import annotations

from lab import members, random_marker

G1, G2 = "239.1.1.1", "239.1.1.2"
PORT = 5000


def test_member_receives_group_traffic_non_member_sees_none(four):
    """A host that joined 239.1.1.1 gets every datagram sent to it; hosts on the same
    VLAN that did not join see no frame of that group on their wire."""
    sw = four.start_switch()
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    rx = h1.join(G1, PORT)
    assert members(sw.status(), G1) == {"h1"}
    caps = {h.name: h.capture() for h in (h2, h3)}
    marker = random_marker()
    sent = h4.send_udp(G1, PORT, count=20, marker=marker)
    got = rx.collect(20, timeout=3, marker=marker)
    assert sorted(got) == sorted(sent), f"h1 received {len(got)} of 20 datagrams"
    for name, cap in caps.items():
        cap.stop(settle=0.2)
        frames = cap.to_group(G1)
        assert frames == [], f"non-member {name} saw {len(frames)} frames to {G1}: {frames[:3]}"


def test_unregistered_group_reaches_no_host_port_by_default(four):
    """Without --flood-unregistered, data for a group nobody joined reaches no host port
    (there is no router port here), while a registered group is still delivered."""
    four.start_switch()
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    rx = h1.join(G1, PORT)
    caps = {h.name: h.capture() for h in (h1, h2, h3)}
    m_unreg, m_reg = random_marker("unreg"), random_marker("reg")
    h4.send_udp(G2, PORT, count=20, marker=m_unreg)
    sent = h4.send_udp(G1, PORT, count=20, marker=m_reg)
    got = rx.collect(20, timeout=3, marker=m_reg)
    assert sorted(got) == sorted(sent), f"member h1 received {len(got)} of 20 datagrams of {G1}"
    for name, cap in caps.items():
        cap.stop(settle=0.2)
        frames = cap.to_group(G2)
        assert frames == [], f"{name} saw {len(frames)} frames of unregistered group {G2}: {frames[:3]}"


def test_flood_unregistered_sends_unregistered_groups_to_every_port(four):
    """With --flood-unregistered, data for a group nobody joined reaches every other port
    of the VLAN (intact, so a kernel would accept it); a registered group still goes
    to its members only."""
    four.start_switch("--flood-unregistered")
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    rx = h1.join(G1, PORT)
    caps = {h.name: h.capture() for h in (h1, h2, h3)}
    m_unreg, m_reg = random_marker("unreg"), random_marker("reg")
    h4.send_udp(G2, PORT, count=20, marker=m_unreg)
    sent = h4.send_udp(G1, PORT, count=20, marker=m_reg)
    got = rx.collect(20, timeout=3, marker=m_reg)
    assert sorted(got) == sorted(sent), f"member h1 received {len(got)} of 20 datagrams of {G1}"
    for name, cap in caps.items():
        cap.wait_for(lambda f: m_unreg in f.data, count=20, timeout=3, what=f"flooded frames of {G2}")
        cap.stop(settle=0.2)
        frames = cap.udp_to(G2, PORT, m_unreg)
        assert len(frames) == 20, f"{name} saw {len(frames)} of 20 flooded frames of {G2}"
        bad = [f for f in frames if not f.checksum_deliverable]
        assert not bad, f"{name}: {len(bad)} flooded frames have a broken UDP checksum: {bad[:2]}"
        if name != "h1":
            leaked = cap.udp_to(G1, PORT, m_reg)
            assert leaked == [], f"non-member {name} saw {len(leaked)} frames of registered group {G1}"


def test_link_local_groups_are_flooded(four):
    """Data to 224.0.0.0/24 is flooded to every port of the VLAN, joined or not
    (RFC 4541 2.1.2 (2))."""
    four.start_switch()
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    group = "224.0.0.123"
    rx = h1.receiver(group, PORT)
    caps = {h.name: h.capture() for h in (h2, h3)}
    marker = random_marker("ll")
    sent = h4.send_udp(group, PORT, count=20, marker=marker)
    got = rx.collect(20, timeout=3, marker=marker)
    assert sorted(got) == sorted(sent), f"h1 (joined) received {len(got)} of 20 link-local datagrams"
    for name, cap in caps.items():
        cap.wait_for(lambda f: marker in f.data, count=20, timeout=3, what="link-local frames")
        cap.stop(settle=0.1)
        frames = cap.udp_to(group, PORT, marker)
        assert len(frames) == 20, f"{name} (not joined) saw {len(frames)} of 20 frames to {group}"
