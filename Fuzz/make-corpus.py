#!/usr/bin/python3
"""Writes the fuzzer's seed corpus (Fuzz/corpus): real frames, each behind the 3 control bytes
of Fuzz/FuzzFrames.swift (port and flags, then a VLAN tag). Run with Debian's python3 (scapy)."""
import hashlib, os
from scapy.all import Ether, IP, Dot1Q, UDP, Raw, raw
from scapy.contrib.igmp import IGMP
from scapy.contrib.igmpv3 import IGMPv3, IGMPv3mq, IGMPv3mr, IGMPv3gr

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
os.makedirs(here, exist_ok=True)

# Captured with tcpdump -xx from a Linux 6.18 host joining and leaving (see Tests/WireTests/CapturedFrames.swift).
captured = [
    "01005e01020302000000000208004 6c000200000400001023111c0000202ef0102039404000016 00f8faef010203",
    "01005e00000202000000000208004 6c000200000400001024213c0000202e00000029404000017 00f7faef010203",
    "01005e00001602000000000208004 6c000280000400001024 1f7c0000202e00000169404000022 00e5f30000000104000000ef040506",
    "01005e00001602000000000208004 6c000280000400001024 1f7c0000202e00000169404000022 00e6f30000000103000000ef040506",
]
# MLD, captured from a Linux 6.18 host and a Linux bridge querier (see Tests/WireTests/CapturedMLDFrames.swift):
# v2 join, v2 source join, v1 report, v1 Done, v2 group query, v2 group-and-source query, v1 general query.
captured += [
    "33330000001602000000000286dd6000000000240001fe80000000000000000000fffe000002ff0200000000000000000000000000163a000502000001008f002eb40000000104000000ff150000000000000000000000004242",
    "33330000001602000000000286dd6000000000340001fe80000000000000000000fffe000002ff0200000000000000000000000000163a000502000001008f00ff300000000105000001ff35000000000000000000000000424220010db8000000000000000000000099",
    "33330000424302000000000286dd6000000000200001fe80000000000000000000fffe000002ff1500000000000000000000000042433a000502000001008300fc7700000000ff150000000000000000000000004243",
    "33330000000202000000000286dd6000000000200001fe80000000000000000000fffe000002ff0200000000000000000000000000023a0005020000010084003dcc00000000ff150000000000000000000000004243",
    "33330000424402000000000186dd6000000000240001fe80000000000000000000fffe000001ff1500000000000000000000000042443a000502000000008200f70d03e80000ff150000000000000000000000004244027d0000",
    "33330000424402000000000186dd6000000000340001fe80000000000000000000fffe000001ff3500000000000000000000000042443a000502000000008200c86a03e80000ff350000000000000000000000004244027d000120010db8000000000000000000000099",
    "33330000000102000000000186dd6000000000200001fe80000000000000000000fffe000001ff0200000000000000000000000000013a0005020000000082005a172710000000000000000000000000000000000000",
]
frames = [bytes.fromhex(h.replace(" ", "")) for h in captured]

host = "02:00:00:00:00:01"
ra = [b"\x94\x04\x00\x00"]
def ip(dst, src="192.0.2.1"):
    return IP(src=src, dst=dst, ttl=1, options=[__import__("scapy.layers.inet", fromlist=["IPOption_Router_Alert"]).IPOption_Router_Alert()])
frames += [
    raw(Ether(src=host, dst="01:00:5e:00:00:01") / ip("224.0.0.1", "192.0.2.100") / IGMPv3(type=0x11) / IGMPv3mq(qrv=2, qqic=125)),
    raw(Ether(src=host, dst="01:00:5e:00:00:01") / ip("224.0.0.1", "192.0.2.100") / IGMP(type=0x11, mrcode=100)),
    raw(Ether(src=host, dst="01:00:5e:00:00:16") / ip("224.0.0.22") / IGMPv3(type=0x22) /
        IGMPv3mr(records=[IGMPv3gr(rtype=1, maddr="232.1.1.1", srcaddrs=["198.51.100.1", "198.51.100.2"]),
                          IGMPv3gr(rtype=6, maddr="239.1.1.1", srcaddrs=["198.51.100.3"])])),
    raw(Ether(src=host, dst="01:00:5e:01:01:01") / IP(src="198.51.100.1", dst="239.1.1.1") / UDP(dport=5000) / Raw(b"x" * 20)),
    raw(Ether(src=host, dst="02:00:00:00:00:02") / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(dport=5000) / Raw(b"y" * 20)),
    raw(Ether(src=host, dst="ff:ff:ff:ff:ff:ff", type=0x0806) / Raw(bytes(28))),
    # PIM hello with holdtime 105 to 224.0.0.13
    raw(Ether(src=host, dst="01:00:5e:00:00:0d") / IP(src="192.0.2.50", dst="224.0.0.13", proto=103, ttl=1) /
        Raw(bytes.fromhex("2000d4ae00010002 0069".replace(" ", "")))),
    # an inline 802.1Q tag (the kernel usually strips it)
    raw(Ether(src=host, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=10, prio=5) / IP(src="192.0.2.1", dst="192.0.2.255") / UDP()),
]
for i, frame in enumerate(frames):
    for control, tag in [(0x00, b"\x00\x00"), (0x06, b"\xa0\x0a"), (0x13, b"\x00\x14")]:
        data = bytes([control]) + tag + frame
        name = hashlib.sha1(data).hexdigest()[:16]
        with open(os.path.join(here, name), "wb") as f:
            f.write(data)
print(f"{len(os.listdir(here))} seeds in {here}")
