"""Hostile and unusual input (topologies/four-hosts.topo).

RFC 2236 2.3 / RFC 3376 4.1.2, 7.1: messages with a bad checksum or a length that does
not fit their type are ignored; a switch must also survive IP headers that are
truncated or lie about their length. None of it may crash the switch or disturb the
forwarding of real traffic. RFC 4541 2.1.1 (3): unrecognized IGMP messages are flooded
to all other ports.
"""

from __future__ import annotations

import random
import socket
import struct

from lab import error_total, inet_checksum, mac_bytes, mcast_mac, members, random_marker

G = "239.6.6.6"
PORT = 5050


def _ip(src, dst, payload, proto=2, ttl=1, ihl_words=6, total=None, flags_frag=0, version=4, fix_checksum=True):
    opts = b"\x94\x04\x00\x00" if ihl_words == 6 else b""
    hdr_len = 20 + len(opts)
    total = hdr_len + len(payload) if total is None else total
    hdr = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl_words, 0xC0, total & 0xFFFF, random.getrandbits(16),
                      flags_frag, ttl, proto, 0, socket.inet_aton(src), socket.inet_aton(dst)) + opts
    if fix_checksum:
        hdr = hdr[:10] + struct.pack("!H", inet_checksum(hdr)) + hdr[12:]
    return hdr + payload


def _igmp(type_, code, group, rest=b"", good=True):
    body = struct.pack("!BBH4s", type_, code, 0, socket.inet_aton(group)) + rest
    c = inet_checksum(body)
    if not good:
        c ^= 0x5A5A
    return body[:2] + struct.pack("!H", c) + body[4:]


def _eth(src_mac, dst_ip, l3, ethertype=0x0800):
    return mac_bytes(mcast_mac(dst_ip)) + mac_bytes(src_mac) + struct.pack("!H", ethertype) + l3


def hostile_frames(src_mac, src_ip, n, rng):
    """n malformed IGMP/IPv4 frames of a dozen kinds, reproducible from rng."""
    dsts = ["224.0.0.1", "224.0.0.2", "224.0.0.22", G, "239.6.6.7"]
    out = []
    for i in range(n):
        kind = i % 12
        dst = rng.choice(dsts)
        if kind == 0:  # valid shapes, bad IGMP checksum
            msg = rng.choice([
                _igmp(0x16, 0, G, good=False), _igmp(0x17, 0, G, good=False), _igmp(0x11, 100, "0.0.0.0", good=False),
                _igmp(0x11, 10, "0.0.0.0", b"\x02\x7d\x00\x00", good=False),
                _igmp(0x22, 0, "0.0.0.0", struct.pack("!BBH4s", 4, 0, 0, socket.inet_aton(G)), good=False),
            ])
            out.append(_eth(src_mac, dst, _ip(src_ip, dst, msg)))
        elif kind == 1:  # IGMP shorter than 8 octets
            msg = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 8)))
            out.append(_eth(src_mac, dst, _ip(src_ip, dst, msg)))
        elif kind == 2:  # unknown type, good checksum
            msg = _igmp(rng.randrange(0x50, 0xFF), rng.getrandbits(8), G)
            out.append(_eth(src_mac, dst, _ip(src_ip, dst, msg)))
        elif kind == 3:  # query of 9..11 octets (neither v2 nor v3)
            msg = _igmp(0x11, 10, "0.0.0.0", bytes(rng.randrange(1, 4)))
            out.append(_eth(src_mac, "224.0.0.1", _ip(src_ip, "224.0.0.1", msg)))
        elif kind == 4:  # v3 report claiming more records than it has
            nrec = rng.randrange(2, 600)
            rec = struct.pack("!BBH4s", 4, 0, 0, socket.inet_aton("239.6.6.8"))
            msg = _igmp(0x22, 0, "0.0.0.0", rec)
            msg = msg[:6] + struct.pack("!H", nrec) + msg[8:]
            msg = msg[:2] + b"\0\0" + msg[4:]
            msg = msg[:2] + struct.pack("!H", inet_checksum(msg)) + msg[4:]
            out.append(_eth(src_mac, "224.0.0.22", _ip(src_ip, "224.0.0.22", msg)))
        elif kind == 5:  # v3 query claiming thousands of sources
            msg = _igmp(0x11, 10, G, struct.pack("!BBH", 2, 10, rng.randrange(100, 65536)))
            out.append(_eth(src_mac, G, _ip(src_ip, G, msg)))
        elif kind == 6:  # truncated IP header
            l3 = _ip(src_ip, dst, _igmp(0x16, 0, G))[: rng.randrange(0, 20)]
            out.append(_eth(src_mac, dst, l3))
        elif kind == 7:  # IHL below 5, or above what is there
            ihl = rng.choice([0, 1, 4, 15])
            l3 = _ip(src_ip, dst, _igmp(0x16, 0, G), ihl_words=6)
            l3 = bytes([(4 << 4) | ihl]) + l3[1:]
            out.append(_eth(src_mac, dst, l3))
        elif kind == 8:  # total length larger than the frame, or smaller than the header
            total = rng.choice([rng.randrange(60, 65536), rng.randrange(0, 24)])
            out.append(_eth(src_mac, dst, _ip(src_ip, dst, _igmp(0x16, 0, G), total=total)))
        elif kind == 9:  # bad IP header checksum
            l3 = _ip(src_ip, dst, _igmp(0x16, 0, G), fix_checksum=False)
            l3 = l3[:10] + b"\xde\xad" + l3[12:]
            out.append(_eth(src_mac, dst, l3))
        elif kind == 10:  # random bytes as IGMP, random length
            msg = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 120)))
            out.append(_eth(src_mac, dst, _ip(src_ip, dst, msg)))
        else:  # fragments, IP version 6 in an IPv4 frame, TTL 0
            variant = rng.randrange(3)
            if variant == 0:
                l3 = _ip(src_ip, dst, _igmp(0x16, 0, G), flags_frag=0x2000 | rng.randrange(0, 0x1FFF))
            elif variant == 1:
                l3 = _ip(src_ip, dst, _igmp(0x16, 0, G), version=6)
            else:
                l3 = _ip(src_ip, dst, _igmp(0x16, 0, G, good=False), ttl=0)
            out.append(_eth(src_mac, dst, l3))
    return out


def test_malformed_igmp_flood_is_survived_and_counted(four):
    """3,000 malformed IGMP and IPv4 frames from h3 (bad checksums, short and overlong
    messages, unknown types, truncated or lying IP headers) leave the switch running,
    raise its IGMP error counters, and do not disturb a member's group traffic."""
    sw = four.start_switch()
    h1, h3, h4 = four["h1"], four["h3"], four["h4"]
    rx = h1.join(G, PORT)
    before = sw.status()["igmp"]["errors"]
    frames = hostile_frames(h3.mac, h3.addr, 3000, random.Random(4541))
    h3.send_frames(frames)
    st = sw.wait_status(lambda s: s if error_total(s) >= sum(before.values()) + 50 else None, timeout=5,
                        what="IGMP error counters rising after the malformed frames")
    assert sw.alive(), f"switch died:\n{sw.log()}"
    errors = st["igmp"]["errors"]
    print("error counters after the flood:", errors)
    assert errors.get("bad_checksum", 0) > before.get("bad_checksum", 0), errors
    assert (errors.get("truncated", 0) + errors.get("bad_length", 0)
            > before.get("truncated", 0) + before.get("bad_length", 0)), errors

    assert "h1" in members(sw.status(), G), "h1's membership was lost in the flood"
    marker = random_marker("after")
    sent = h4.send_udp(G, PORT, count=20, marker=marker)
    got = rx.collect(20, timeout=3, marker=marker)
    assert sorted(got) == sorted(sent), f"member h1 received {len(got)} of 20 after the flood"
    assert h3.ping(h4.addr), "h3 cannot ping h4 after the flood"


def test_unrecognized_igmp_messages_are_flooded_to_all_other_ports(four):
    """RFC 4541 2.1.1 (3): a snooping switch must flood all unrecognized IGMP messages
    to all other ports (and must not use information beyond the network layer header).
    IGMP messages of types snooping does not know (mtrace 0x1f, an unassigned 0x99),
    addressed to a registered group, an unregistered group and 224.0.0.4, reach every
    other port."""
    sw = four.start_switch()
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    h1.join(G, PORT)
    caps = {h.name: h.capture() for h in (h1, h2, h4)}
    sent = []
    for type_ in (0x1F, 0x99):
        for dst in (G, "239.6.6.9", "224.0.0.4"):
            msg = _igmp(type_, 0, dst, random_marker("unk"))
            sent.append((type_, dst, msg))
    h3.send_frames([_eth(h3.mac, dst, _ip(h3.addr, dst, msg)) for _, dst, msg in sent])
    for name, cap in caps.items():
        for type_, dst, msg in sent:
            cap.wait_for(lambda f, msg=msg: msg in f.data, timeout=2,
                         what=f"IGMP type {type_:#04x} to {dst} flooded to {name}")
    assert sw.alive()
