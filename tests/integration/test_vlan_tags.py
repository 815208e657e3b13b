"""802.1ad S-tags and the DEI bit (topologies/two-vlans-trunk.topo plus trunk2).

snoopswitch is an IEEE 802.1Q (customer VLAN) bridge. A frame whose outer tag is an 802.1ad
service tag (TPID 0x88A8) belongs to a provider's VLAN, which the switch takes no part in:
it is dropped and counted (reason s_tagged), never read as the C-VLAN of the same number
and re-tagged 0x8100. The drop eligible indicator (DEI, IEEE 802.1Q 6.9.3) of a C-tagged
frame is kept on tagged egress, as its priority is.
"""

from __future__ import annotations

import time

from lab import port_entry, random_marker, udp_frame

PORT = 5031
BCAST = "ff:ff:ff:ff:ff:ff"


def _s_tagged(src_mac, s_vid, marker, c_vid=None, subnet="192.0.2"):
    """A broadcast UDP frame under an 802.1ad S-tag (and a C-tag inside it when c_vid is set)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

    frame = Ether(src=src_mac, dst=BCAST) / Dot1AD(vlan=s_vid)
    if c_vid is not None:
        frame = frame / Dot1Q(vlan=c_vid)
    return bytes(frame / IP(src=f"{subnet}.77", dst=f"{subnet}.255", ttl=1) / UDP(sport=40000, dport=PORT) / marker)


def _s_tagged_drops(status) -> int:
    return int((status.get("drops_by_reason") or {}).get("s_tagged", 0))


def test_s_tagged_frames_are_dropped_and_counted(vlans):
    """Frames under an S-tag with VID 10 (alone, or with a C-tag 10 inside) from the trunk,
    and one from an access port, reach no host in any VLAN; each is counted as s_tagged.
    A C-tagged frame sent after them still crosses (the switch read on)."""
    sw = vlans.start_switch()
    trunk, v10a = vlans["trunk"], vlans["v10a"]
    others = [h for h in vlans.hosts.values() if h.name != "trunk"]
    caps = {h.name: h.capture() for h in others}
    before = _s_tagged_drops(sw.status())
    m_s, m_qinq, m_access = random_marker("s10"), random_marker("qinq"), random_marker("s-access")
    trunk.send_frames([_s_tagged(trunk.mac, 10, m_s) for _ in range(5)])
    trunk.send_frames([_s_tagged(trunk.mac, 10, m_qinq, c_vid=10) for _ in range(5)])
    v10a.send_frames([_s_tagged(v10a.mac, 10, m_access) for _ in range(5)])
    ok = random_marker("ok")
    rx = vlans["v10b"].receiver(None, PORT)
    trunk.send_frames([udp_frame(trunk.mac, BCAST, "192.0.2.77", "192.0.2.255", PORT, ok, vlan=10)])
    assert len(rx.collect(1, timeout=3, marker=ok)) == 1, "a C-tagged broadcast after the S-tagged ones did not cross"
    st = sw.wait_status(lambda s: s if _s_tagged_drops(s) >= before + 15 else None, timeout=3,
                        what="15 frames counted as s_tagged drops")
    assert port_entry(st, "trunk")["drops"] >= 10, port_entry(st, "trunk")
    time.sleep(0.1)
    for name, cap in caps.items():
        cap.stop()
        leaked = cap.with_marker(m_s) + cap.with_marker(m_qinq) + cap.with_marker(m_access)
        assert leaked == [], f"S-tagged frames reached {name}: {leaked[:2]}"


def test_drop_eligible_bit_is_kept_trunk_to_trunk(vlans):
    """A frame tagged VLAN 20, priority 3, DEI set, from the trunk leaves trunk2 tagged VLAN 20
    with priority 3 and DEI still set; one without DEI leaves without it."""
    vlans.start_switch()
    trunk, trunk2 = vlans["trunk"], vlans["trunk2"]
    cap = trunk2.capture()
    with_dei, without = random_marker("dei1"), random_marker("dei0")

    def frame(marker, dei):
        raw = bytearray(udp_frame(trunk.mac, BCAST, "198.51.100.77", "198.51.100.255", PORT, marker, vlan=20, pcp=3))
        if dei:
            raw[14] |= 0x10          # the DEI bit of the TCI, between priority and VID
        return bytes(raw)

    trunk.send_frames([frame(with_dei, True), frame(without, False)])
    got = cap.wait_for(lambda f: with_dei in f.data, timeout=3, what="the DEI frame at trunk2")[0]
    assert got.vlan == 20 and got.pcp == 3 and got.data[14] & 0x10, f"at trunk2: {got} (TCI {got.data[14:16].hex()})"
    plain = cap.wait_for(lambda f: without in f.data, timeout=3, what="the frame without DEI at trunk2")[0]
    assert plain.vlan == 20 and plain.pcp == 3 and not plain.data[14] & 0x10, f"TCI {plain.data[14:16].hex()}"
    cap.stop()
