"""IPv6 and MLD helpers for the integration tests (test_mld_snooping.py): real Linux hosts
with IPv6 on their eth0, sockets that join groups (IPV6_JOIN_GROUP, MCAST_JOIN_SOURCE_GROUP,
MCAST_BLOCK_SOURCE), MLD queries sent by a host's kernel through a raw ICMPv6 socket, frames
crafted byte by byte (struct, no scapy) for what a host's kernel does not send (tagged
reports from a trunk host, PIMv6 hellos, MRD advertisements, queries from ::), and views of
captured IPv6 frames (extension headers walked, router alert, ICMPv6 checksum, MLD fields).

The lab's namespaces start with IPv6 off (lab.Lab._make_ns). :func:`ipv6_up` turns it on
for one host's eth0 (no DAD, so the link-local address is usable at once) and marks the host
so that the per-test reset gives it a fresh eth0 (IPv6 off again, no MLD state left: a
Linux host keeps repeating reports and Dones, and stays in MLDv1 mode for minutes after an
MLDv1 query). The switch's namespace keeps IPv6 off: its port interfaces must not speak.

Addresses: 2001:db8::/32 (documentation), fe80::/64 link-local, groups in ff0e::/16,
ff15::/16, ff3e::/32.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from lab import Capture, Frame, Host, Receiver, in_netns, inet_checksum, mac_bytes, sh, wait_until

ETH_P_IPV6 = 0x86DD
NH_HOPOPTS, NH_ROUTING, NH_FRAGMENT, NH_DSTOPTS = 0, 43, 44, 60
NH_UDP, NH_ICMPV6, NH_PIM = 17, 58, 103
MLD_QUERY, MLD_V1_REPORT, MLD_DONE, MLD_V2_REPORT = 130, 131, 132, 143
MRD_ADVERTISEMENT, MRD_SOLICITATION, MRD_TERMINATION = 151, 152, 153
MLD_REPORTS = (MLD_V1_REPORT, MLD_DONE, MLD_V2_REPORT)
# MLDv2 record types (RFC 9777 5.2.12)
IS_IN, IS_EX, TO_IN, TO_EX, ALLOW, BLOCK = 1, 2, 3, 4, 5, 6

# Linux socket options (linux/in6.h, linux/in.h)
IPV6_MULTICAST_IF = 17
IPV6_MULTICAST_HOPS = 18
IPV6_MULTICAST_LOOP = 19
IPV6_JOIN_GROUP = 20
IPV6_LEAVE_GROUP = 21
IPV6_MULTICAST_ALL = 29
IPV6_HOPOPTS = 54
MCAST_JOIN_GROUP = 42
MCAST_BLOCK_SOURCE = 43
MCAST_UNBLOCK_SOURCE = 44
MCAST_LEAVE_GROUP = 45
MCAST_JOIN_SOURCE_GROUP = 46
MCAST_LEAVE_SOURCE_GROUP = 47

ALL_NODES = "ff02::1"
ALL_ROUTERS = "ff02::2"
ALL_MLDV2_ROUTERS = "ff02::16"
ALL_PIM_ROUTERS = "ff02::d"
ALL_SNOOPERS = "ff02::6a"


# ---- addresses ----------------------------------------------------------------------
def ip6(a) -> ipaddress.IPv6Address:
    """An IPv6 address from text (a %scope suffix dropped) or 16 bytes."""
    if isinstance(a, (bytes, bytearray)):
        return ipaddress.IPv6Address(bytes(a))
    if isinstance(a, ipaddress.IPv6Address):
        return a
    return ipaddress.IPv6Address(str(a).split("%", 1)[0])


def same6(a, b) -> bool:
    try:
        return ip6(a) == ip6(b)
    except (ValueError, TypeError):
        return False


def mcast_mac6(group) -> str:
    """The Ethernet address of an IPv6 multicast group (RFC 2464 7: 33:33 + low 32 bits)."""
    b = ip6(group).packed
    return "33:33:" + ":".join(f"{x:02x}" for x in b[12:])


def solicited_node(addr) -> str:
    """ff02::1:ffXX:XXXX of a unicast address (RFC 4291 2.7.1)."""
    b = ip6(addr).packed
    return str(ipaddress.IPv6Address(bytes.fromhex("ff0200000000000000000001ff") + b[13:]))


def eui64_link_local(mac: str) -> str:
    b = mac_bytes(mac)
    iid = bytes([b[0] ^ 0x02, b[1], b[2], 0xFF, 0xFE, b[3], b[4], b[5]])
    return str(ipaddress.IPv6Address(b"\xfe\x80" + b"\0" * 6 + iid))


def host_index(host: Host) -> int:
    return int(host.mac.split(":")[-1], 16)


def global_addr(host: Host) -> str:
    """The 2001:db8:: address ipv6_up gives a host: 2001:db8::10:N, N from its MAC (so its
    solicited-node group, ff02::1:ff10:N, is not the one of its link-local, ff02::1:ff00:N)."""
    return f"2001:db8::10:{host_index(host):x}"


# ---- hosts --------------------------------------------------------------------------
def _addresses(host: Host) -> list[tuple[str, str, bool]]:
    """(address, scope, tentative) of eth0's IPv6 addresses."""
    out = sh("ip", "-n", host.ns, "-6", "-o", "addr", "show", "dev", "eth0").stdout
    res = []
    for line in out.splitlines():
        m = re.search(r"inet6 (\S+)/\d+ scope (\S+)", line)
        if m:
            res.append((m.group(1), m.group(2), "tentative" in line))
    return res


def link_local(host: Host) -> str:
    for addr, scope, _ in _addresses(host):
        if scope == "link":
            return addr
    raise AssertionError(f"{host.name} has no IPv6 link-local address on eth0: {_addresses(host)}")


def ipv6_up(host: Host, with_global: bool = True, mld_version: int = 0, unsolicited_ms: Optional[int] = None) -> str:
    """Turn IPv6 on on host's eth0: no DAD (addresses usable at once), no router
    advertisements taken, MLD version forced to `mld_version` (0: the kernel's default,
    MLDv2), optionally a shorter unsolicited report interval; a 2001:db8::10:N/64 address
    besides the link-local. Waits until the link-local address is there and not tentative;
    returns it. The host gets a fresh eth0 at the end of the test (lab.reset_hosts)."""
    host.lab._joined_hosts.add(host.name)
    for key, value in (("accept_dad", 0), ("dad_transmits", 0), ("accept_ra", 0), ("router_solicitations", 0),
                       ("force_mld_version", mld_version)):
        host.sysctl(f"net.ipv6.conf.eth0.{key}", value)
    if unsolicited_ms is not None:
        host.sysctl("net.ipv6.conf.eth0.mldv2_unsolicited_report_interval", unsolicited_ms)
        host.sysctl("net.ipv6.conf.eth0.mldv1_unsolicited_report_interval", unsolicited_ms)
    host.sysctl("net.ipv6.conf.eth0.disable_ipv6", 0)
    if with_global:
        sh("ip", "-n", host.ns, "-6", "addr", "add", f"{global_addr(host)}/64", "dev", "eth0", "nodad")
    expected = eui64_link_local(host.mac)

    def ready():
        addrs = _addresses(host)
        ok = any(a == expected and scope == "link" and not tent for a, scope, tent in addrs)
        if with_global:
            ok = ok and any(same6(a, global_addr(host)) and not tent for a, _, tent in addrs)
        return ok

    wait_until(ready, timeout=5, what=f"{host.name}'s IPv6 addresses ({expected}) usable")
    return expected


def force_mld_version(host: Host, version: int) -> None:
    host.lab._joined_hosts.add(host.name)
    host.sysctl("net.ipv6.conf.eth0.force_mld_version", version)


def ping6(host: Host, addr: str, count: int = 2, iface: Optional[str] = "eth0", timeout: float = 3) -> tuple[bool, str]:
    """`ping -6` from host (to addr%eth0 for a link-local or multicast link-scope address).
    Returns (success, output)."""
    target = addr
    cmd = ["ping", "-6", "-c", str(count), "-i", "0.2", "-W", str(int(max(1, timeout)))]
    if iface:
        cmd += ["-I", iface]
    r = host.run(*cmd, target, check=False, timeout=timeout * count + 5)
    return r.returncode == 0, r.stdout + r.stderr


# ---- sockets ------------------------------------------------------------------------
def sockaddr_in6(addr: str, port: int = 0, scope_id: int = 0) -> bytes:
    """struct sockaddr_in6 (28 bytes) padded to a sockaddr_storage (128 bytes)."""
    sa = struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, 0) + ip6(addr).packed + struct.pack("=I", scope_id)
    return sa.ljust(128, b"\0")


def group_req(ifindex: int, group: str) -> bytes:
    """struct group_req on x86_64: gr_interface (u32), 4 bytes of padding, gr_group."""
    return struct.pack("=I4x", ifindex) + sockaddr_in6(group)


def group_source_req(ifindex: int, group: str, source: str) -> bytes:
    """struct group_source_req on x86_64 (264 bytes): gsr_interface (u32), 4 bytes of
    padding (sockaddr_storage is 8-aligned), gsr_group and gsr_source (128 bytes each)."""
    data = struct.pack("=I4x", ifindex) + sockaddr_in6(group) + sockaddr_in6(source)
    assert len(data) == 264
    return data


def ipv6_mreq(group: str, ifindex: int) -> bytes:
    return ip6(group).packed + struct.pack("=I", ifindex)


def _needs_scope(addr: str) -> bool:
    a = ip6(addr)
    return a.is_link_local or (a.is_multicast and (a.packed[1] & 0x0F) <= 2)


class Receiver6(Receiver):
    """A UDP socket in a host's namespace bound to group:port (IPV6_MULTICAST_ALL off: only
    the groups this socket joined are delivered to it) that joined the group on eth0:
    any-source (IPV6_JOIN_GROUP, EXCLUDE {}), or source-specific (MCAST_JOIN_SOURCE_GROUP for
    each of `sources`, INCLUDE). The host's kernel sends the MLD reports. With group=None a
    plain socket on [::]:port. collect()/drain() as for IPv4 receivers."""

    def __init__(self, ns: str, group: Optional[str], port: int, sources: Iterable[str] = (), ifname: str = "eth0"):
        self.sources = list(sources)
        super().__init__(ns, group, port, ifname)

    def _open(self):
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        ifindex = socket.if_nametoindex(self.ifname)
        if self.group is None:
            s.bind(("::", self.port))
        else:
            s.bind((self.group, self.port, 0, ifindex if _needs_scope(self.group) else 0))
            self._ifindex = ifindex
            self._join(s)
        s.settimeout(0.05)
        return s, ifindex

    def _join(self, s) -> None:
        if self.sources:
            for src in self.sources:
                s.setsockopt(socket.IPPROTO_IPV6, MCAST_JOIN_SOURCE_GROUP, group_source_req(self._ifindex, self.group, src))
        else:
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_JOIN_GROUP, ipv6_mreq(self.group, self._ifindex))

    def leave(self):
        """IPV6_LEAVE_GROUP (or MCAST_LEAVE_SOURCE_GROUP of each source): the host's kernel
        sends a Done (MLDv1) or a TO_IN({}) / BLOCK record (MLDv2)."""
        if self.joined:
            if self.sources:
                for src in self.sources:
                    self.sock.setsockopt(socket.IPPROTO_IPV6, MCAST_LEAVE_SOURCE_GROUP,
                                         group_source_req(self._ifindex, self.group, src))
            else:
                self.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_LEAVE_GROUP, ipv6_mreq(self.group, self._ifindex))
            self.joined = False

    def join(self):
        if not self.joined:
            self._join(self.sock)
            self.joined = True

    def drop_source(self, source: str) -> None:
        """MCAST_LEAVE_SOURCE_GROUP of one source of a source-specific member: the host's
        kernel sends BLOCK({source})."""
        self.sock.setsockopt(socket.IPPROTO_IPV6, MCAST_LEAVE_SOURCE_GROUP, group_source_req(self._ifindex, self.group, source))
        self.sources.remove(source)

    def block(self, source: str) -> None:
        """MCAST_BLOCK_SOURCE on an any-source member: EXCLUDE {source} (a BLOCK record)."""
        self.sock.setsockopt(socket.IPPROTO_IPV6, MCAST_BLOCK_SOURCE, group_source_req(self._ifindex, self.group, source))


def receiver6(host: Host, group: Optional[str], port: int, sources: Iterable[str] = ()) -> Receiver6:
    """A Receiver6 of host (closed with the test; the host gets a fresh eth0 afterwards)."""
    r = Receiver6(host.ns, group, port, sources)
    host.lab._closables.append(r)
    host.lab._joined_hosts.add(host.name)
    return r


def _udp6_sender(src: Optional[str], hops: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    ifindex = socket.if_nametoindex("eth0")
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_IF, ifindex)
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_HOPS, hops)
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0)
    if src:
        s.bind((src, 0, 0, ifindex if _needs_scope(src) else 0))
    return s


def send_udp6(host: Host, group: str, port: int, count: int = 20, marker: bytes = b"snoop6", size: int = 200,
              src: Optional[str] = None, hops: int = 8, interval: float = 0.002) -> list[bytes]:
    """count numbered datagrams from host (source address `src`; by default its 2001:db8::
    address, or its link-local one for a link-scope group) to group:port out of eth0,
    not looped back to host itself. Returns the payloads."""
    from lab import numbered_payloads

    if src is None:
        src = link_local(host) if _needs_scope(group) else global_addr(host)
    s = in_netns(host.ns, _udp6_sender, src, hops)
    payloads = numbered_payloads(marker, count, size)
    scope = in_netns(host.ns, socket.if_nametoindex, "eth0") if _needs_scope(group) else 0
    try:
        for p in payloads:
            s.sendto(p, (group, port, 0, scope))
            if interval:
                time.sleep(interval)
    finally:
        s.close()
    return payloads


# ---- MLD queries from a host's kernel ---------------------------------------------
ROUTER_ALERT_HBH = bytes([0, 0, 5, 2, 0, 0, 1, 0])  # next header (kernel's), len 0, RA (MLD), PadN


def mld_query_body(version: int = 2, group: str = "::", max_resp_ms: int = 1000, qrv: int = 2, qqic: int = 10,
                   sources: Iterable[str] = (), s_flag: bool = False) -> bytes:
    """An MLD query (checksum 0: the kernel or ipv6_frame fills it). MLDv1: 24 bytes, Max
    Response Delay in ms; MLDv2 (RFC 9777 5.1): Maximum Response Code, flags, QRV, QQIC, sources."""
    srcs = [ip6(s).packed for s in sources]
    if version == 1:
        return struct.pack("!BBHHH", MLD_QUERY, 0, 0, max_resp_ms, 0) + ip6(group).packed
    assert max_resp_ms < 32768
    return (struct.pack("!BBHHH", MLD_QUERY, 0, 0, max_resp_ms, 0) + ip6(group).packed
            + struct.pack("!BBH", (0x08 if s_flag else 0) | (qrv & 7), qqic, len(srcs)) + b"".join(srcs))


def _raw_icmp6(src: str, hopopts: bool) -> socket.socket:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    ifindex = socket.if_nametoindex("eth0")
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_IF, ifindex)
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 1)
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0)
    if hopopts:
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_HOPOPTS, ROUTER_ALERT_HBH)
    s.bind((src, 0, 0, ifindex if _needs_scope(src) else 0))
    return s


def send_icmp6_from_host(host: Host, body: bytes, src: str, dst: str = ALL_NODES, router_alert: bool = True) -> None:
    """An ICMPv6 message (body with a zero checksum: the kernel computes it) sent by host's
    kernel through a raw ICMPv6 socket from `src` (one of its addresses) to dst out of eth0,
    hop limit 1, with a hop-by-hop Router Alert option (MLD) unless router_alert=False."""
    s = in_netns(host.ns, _raw_icmp6, src, router_alert)
    try:
        scope = in_netns(host.ns, socket.if_nametoindex, "eth0")
        s.sendto(body, (dst, 0, 0, scope))
    finally:
        s.close()


def send_mld_query(host: Host, src: Optional[str] = None, version: int = 2, group: str = "::",
                   max_resp_ms: int = 1000, **kw) -> None:
    """A general (or group-specific) MLD query sent by host's kernel from its link-local
    address (or src), to ff02::1 (or the group)."""
    dst = ALL_NODES if same6(group, "::") else group
    send_icmp6_from_host(host, mld_query_body(version, group, max_resp_ms, **kw), src or link_local(host), dst)


# ---- crafted frames -----------------------------------------------------------------
def _checksum6(src: bytes, dst: bytes, nh: int, upper: bytes) -> int:
    pseudo = src + dst + struct.pack("!I3xB", len(upper), nh)
    return inet_checksum(pseudo + upper)


_CSUM_OFFSET = {NH_ICMPV6: 2, NH_UDP: 6, NH_PIM: 2}


def ipv6_packet(src: str, dst: str, nh: int, upper: bytes, hop_limit: int = 1, router_alert: bool = False) -> bytes:
    """An IPv6 packet with the upper-layer checksum filled in (ICMPv6, UDP, PIM), and a
    hop-by-hop header with Router Alert (value 0, MLD) before the upper layer if asked."""
    s, d = ip6(src).packed, ip6(dst).packed
    off = _CSUM_OFFSET.get(nh)
    if off is not None:
        upper = upper[:off] + b"\0\0" + upper[off + 2:]
        c = _checksum6(s, d, nh, upper)
        if nh == NH_UDP and c == 0:
            c = 0xFFFF
        upper = upper[:off] + struct.pack("!H", c) + upper[off + 2:]
    ext, first = b"", nh
    if router_alert:
        ext = bytes([nh]) + ROUTER_ALERT_HBH[1:]
        first = NH_HOPOPTS
    payload = ext + upper
    return struct.pack("!IHBB", 6 << 28, len(payload), first, hop_limit) + s + d + payload


def ether(src_mac: str, dst_mac: str, ethertype: int, payload: bytes, vlan: Optional[int] = None, pcp: int = 0) -> bytes:
    hdr = mac_bytes(dst_mac) + mac_bytes(src_mac)
    if vlan is not None:
        hdr += struct.pack("!HH", 0x8100, (pcp << 13) | vlan)
    return hdr + struct.pack("!H", ethertype) + payload


def ipv6_frame(src_mac: str, src: str, dst: str, nh: int, upper: bytes, vlan: Optional[int] = None, pcp: int = 0,
               hop_limit: int = 1, router_alert: bool = False, dst_mac: Optional[str] = None) -> bytes:
    pkt = ipv6_packet(src, dst, nh, upper, hop_limit, router_alert)
    return ether(src_mac, dst_mac or mcast_mac6(dst), ETH_P_IPV6, pkt, vlan, pcp)


def mld_v2_report_frame(src_mac: str, src: str, records: Iterable[tuple[int, str, Iterable[str]]],
                        vlan: Optional[int] = None, hop_limit: int = 1, router_alert: bool = True) -> bytes:
    """An MLDv2 report (to ff02::16, hop limit 1, Router Alert: unless told otherwise) with
    records (type, group, sources)."""
    recs = b""
    n = 0
    for rtype, group, sources in records:
        srcs = [ip6(x).packed for x in sources]
        recs += struct.pack("!BBH", rtype, 0, len(srcs)) + ip6(group).packed + b"".join(srcs)
        n += 1
    body = struct.pack("!BBHHH", MLD_V2_REPORT, 0, 0, 0, n) + recs
    return ipv6_frame(src_mac, src, ALL_MLDV2_ROUTERS, NH_ICMPV6, body, vlan=vlan, hop_limit=hop_limit,
                      router_alert=router_alert)


def mld_query_frame(src_mac: str, src: str, version: int = 2, group: str = "::", vlan: Optional[int] = None,
                    **kw) -> bytes:
    dst = ALL_NODES if same6(group, "::") else group
    return ipv6_frame(src_mac, src, dst, NH_ICMPV6, mld_query_body(version, group, **kw), vlan=vlan, router_alert=True)


def pim6_hello_frame(src_mac: str, src: str, holdtime: int = 105, vlan: Optional[int] = None) -> bytes:
    """A PIMv2 Hello (RFC 7761 4.9.2) over IPv6 to ff02::d, next header 103, hop limit 1,
    checksum over the IPv6 pseudo-header (4.9), a Holdtime option."""
    body = struct.pack("!BBH", 0x20, 0, 0) + struct.pack("!HHH", 1, 2, holdtime)
    return ipv6_frame(src_mac, src, ALL_PIM_ROUTERS, NH_PIM, body, vlan=vlan)


def mrd_advertisement_frame(src_mac: str, src: str, interval: int = 20, query_interval: int = 125,
                            robustness: int = 2, vlan: Optional[int] = None) -> bytes:
    """A Multicast Router Advertisement (RFC 4286 3) to ff02::6a, hop limit 1, Router Alert."""
    body = struct.pack("!BBHHH", MRD_ADVERTISEMENT, interval, 0, query_interval, robustness)
    return ipv6_frame(src_mac, src, ALL_SNOOPERS, NH_ICMPV6, body, vlan=vlan, router_alert=True)


def udp6_frame(src_mac: str, src: str, dst: str, dport: int, payload: bytes, vlan: Optional[int] = None,
               pcp: int = 0, hop_limit: int = 8, dst_mac: Optional[str] = None) -> bytes:
    upper = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
    return ipv6_frame(src_mac, src, dst, NH_UDP, upper, vlan=vlan, pcp=pcp, hop_limit=hop_limit, dst_mac=dst_mac)


# ---- captured frames ----------------------------------------------------------------
@dataclass
class IPv6View:
    frame: Frame
    src: ipaddress.IPv6Address
    dst: ipaddress.IPv6Address
    hop_limit: int
    payload_length: int
    nh: int  # the upper layer's next header after the walk
    upper: bytes
    router_alert: Optional[int]  # the Router Alert value in a hop-by-hop header, else None
    extension_headers: list[int]

    @classmethod
    def parse(cls, frame: Frame) -> Optional["IPv6View"]:
        if frame.ethertype != ETH_P_IPV6:
            return None
        l3 = frame.l3
        if len(l3) < 40 or l3[0] >> 4 != 6:
            return None
        plen, nh, hlim = struct.unpack("!HBB", l3[4:8])
        data = l3[40:40 + plen]
        ra, exts = None, []
        while nh in (NH_HOPOPTS, NH_ROUTING, NH_DSTOPTS, NH_FRAGMENT):
            if len(data) < 8:
                return None
            hlen = 8 if nh == NH_FRAGMENT else (data[1] + 1) * 8
            if nh == NH_HOPOPTS:
                i = 2
                while i < min(hlen, len(data)):
                    t = data[i]
                    if t == 0:
                        i += 1
                        continue
                    ln = data[i + 1]
                    if t == 5 and ln == 2:
                        ra = struct.unpack("!H", data[i + 2:i + 4])[0]
                    i += 2 + ln
            exts.append(nh)
            nh, data = data[0], data[hlen:]
        return cls(frame, ip6(l3[8:24]), ip6(l3[24:40]), hlim, plen, nh, bytes(data), ra, exts)

    @property
    def upper_checksum_ok(self) -> bool:
        return _checksum6(self.src.packed, self.dst.packed, self.nh, self.upper) == 0

    @property
    def udp_dport(self) -> Optional[int]:
        if self.nh != NH_UDP or len(self.upper) < 8:
            return None
        return struct.unpack("!H", self.upper[2:4])[0]


def ipv6_of(frame: Frame) -> Optional[IPv6View]:
    return IPv6View.parse(frame)


class Mld:
    """An ICMPv6 MLD (or MRD) message of a captured frame."""

    def __init__(self, ip: IPv6View):
        self.ip, self.frame, self.raw = ip, ip.frame, ip.upper
        self.type, self.code = self.raw[0], self.raw[1]

    @property
    def is_query(self) -> bool:
        return self.type == MLD_QUERY

    @property
    def is_report(self) -> bool:
        return self.type in (MLD_V1_REPORT, MLD_V2_REPORT)

    @property
    def is_done(self) -> bool:
        return self.type == MLD_DONE

    @property
    def query_version(self) -> int:
        return 1 if len(self.raw) == 24 else 2

    @property
    def group(self) -> Optional[ipaddress.IPv6Address]:
        """The Multicast Address field of a query, an MLDv1 report or a Done."""
        if self.type in (MLD_QUERY, MLD_V1_REPORT, MLD_DONE) and len(self.raw) >= 24:
            return ip6(self.raw[8:24])
        return None

    @property
    def max_resp_ms(self) -> float:
        code = struct.unpack("!H", self.raw[4:6])[0]
        if self.query_version == 1 or code < 32768:
            return float(code)
        exp, mant = (code >> 12) & 7, code & 0x0FFF
        return float((mant | 0x1000) << (exp + 3))

    @property
    def s_flag(self) -> int:
        return (self.raw[24] >> 3) & 1

    @property
    def qrv(self) -> int:
        return self.raw[24] & 7

    @property
    def qqic(self) -> int:
        return self.raw[25]

    @property
    def query_sources(self) -> list[ipaddress.IPv6Address]:
        n = struct.unpack("!H", self.raw[26:28])[0]
        return [ip6(self.raw[28 + 16 * i:44 + 16 * i]) for i in range(n)]

    def records(self) -> list[tuple[int, ipaddress.IPv6Address, list[ipaddress.IPv6Address]]]:
        """(record type, group, sources) of each record of an MLDv2 report."""
        out, n, off = [], struct.unpack("!H", self.raw[6:8])[0], 8
        for _ in range(n):
            if off + 20 > len(self.raw):
                break
            rtype, aux, nsrc = struct.unpack("!BBH", self.raw[off:off + 4])
            group = ip6(self.raw[off + 4:off + 20])
            srcs = [ip6(self.raw[off + 20 + 16 * i:off + 36 + 16 * i]) for i in range(nsrc)]
            out.append((rtype, group, srcs))
            off += 20 + 16 * nsrc + 4 * aux
        return out

    def mentions(self, group) -> bool:
        g = ip6(group)
        if self.type == MLD_V2_REPORT:
            return any(rg == g for _, rg, _ in self.records())
        return self.group == g

    def __repr__(self) -> str:
        extra = f" group {self.group}" if self.group is not None else ""
        if self.type == MLD_V2_REPORT:
            extra = f" records {[(t, str(g), [str(s) for s in ss]) for t, g, ss in self.records()]}"
        return (f"<ICMPv6 type {self.type} len {len(self.raw)}{extra} from {self.ip.src} to {self.ip.dst} "
                f"hlim {self.ip.hop_limit} ra {self.ip.router_alert} {'out' if self.frame.outgoing else 'in'} "
                f"vlan {self.frame.vlan}>")


def icmp6_of(frame: Frame) -> Optional[Mld]:
    ip = ipv6_of(frame)
    if ip is None or ip.nh != NH_ICMPV6 or len(ip.upper) < 4:
        return None
    return Mld(ip)


def mld_of(frame: Frame) -> Optional[Mld]:
    m = icmp6_of(frame)
    if m is None or m.type not in (MLD_QUERY, MLD_V1_REPORT, MLD_DONE, MLD_V2_REPORT):
        return None
    return m


def mld_in(cap: Capture, pred: Callable[[Mld], bool] = lambda m: True) -> list[Mld]:
    """Incoming MLD messages at a capture that satisfy pred."""
    return [m for f in cap.incoming() if (m := mld_of(f)) is not None and pred(m)]


def icmp6_in(cap: Capture, pred: Callable[[Mld], bool] = lambda m: True) -> list[Mld]:
    return [m for f in cap.incoming() if (m := icmp6_of(f)) is not None and pred(m)]


def udp6_in(cap: Capture, group=None, port: Optional[int] = None, marker: Optional[bytes] = None,
            src=None) -> list[Frame]:
    """Incoming IPv6 UDP frames (to group, to port, carrying marker, from src: each if given)."""
    out = []
    for f in cap.incoming():
        ip = ipv6_of(f)
        if ip is None or ip.nh != NH_UDP:
            continue
        if group is not None and ip.dst != ip6(group):
            continue
        if src is not None and ip.src != ip6(src):
            continue
        if port is not None and ip.udp_dport != port:
            continue
        if marker is not None and marker not in ip.upper:
            continue
        out.append(f)
    return out


# ---- status JSON ----------------------------------------------------------------------
def groups6(status: dict, vlan: Optional[int] = None) -> list[dict]:
    return [g for g in status.get("groups", []) if g.get("protocol") == "mld"
            and (vlan is None or g.get("vlan") == vlan)]


def group6(status: dict, group: str, vlan: int = 1) -> Optional[dict]:
    for g in groups6(status, vlan):
        if same6(g.get("group"), group):
            return g
    return None


def members6(status: dict, group: str, vlan: int = 1) -> set[str]:
    """Ports listed as members of the MLD group in vlan."""
    g = group6(status, group, vlan)
    return {m["port"] for m in (g or {}).get("members", [])}


def member6(status: dict, group: str, port: str, vlan: int = 1) -> Optional[dict]:
    for m in (group6(status, group, vlan) or {}).get("members", []):
        if m.get("port") == port:
            return m
    return None


def addresses6(entries) -> set[ipaddress.IPv6Address]:
    """Source addresses of a member entry's `sources` / `excluded` list (texts or objects)."""
    return {ip6(s["address"] if isinstance(s, dict) else s) for s in entries or []}


def router_ports6(status: dict, vlan: Optional[int] = None) -> dict[str, dict]:
    """MLD router ports (protocol "mld") of vlan: port -> entry."""
    return {r["port"]: r for r in status.get("router_ports", [])
            if r.get("protocol") == "mld" and (vlan is None or r.get("vlan") == vlan)}


def querier6(status: dict, vlan: int = 1, protocol: str = "mld") -> dict:
    for q in status.get("queriers", []):
        if q.get("vlan") == vlan and q.get("protocol") == protocol:
            return q
    return {}


def mld_counter(status: dict, section: str, name: str) -> int:
    return int(((status.get("mld") or {}).get(section) or {}).get(name, 0) or 0)


def mld_errors(status: dict) -> int:
    """The sum of the `mld.errors` counters."""
    return sum(int(v or 0) for v in ((status.get("mld") or {}).get("errors") or {}).values())


# ---- TCP over IPv6 ---------------------------------------------------------------------
def tcp6_transfer(server: Host, client: Host, nbytes: int = 8 << 20, port: int = 5601, timeout: float = 20.0):
    """Send nbytes over one TCP connection from client to server's 2001:db8:: address (the
    namespaces' default offloads: TSO/GSO frames, partial checksums) and return (bytes
    received, whether their SHA-256 matches what was sent, error or None)."""
    import hashlib
    import threading

    addr = global_addr(server)

    def listen():
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(1)
        s.settimeout(timeout)
        return s

    def connect():
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((addr, port))
        return s

    block = bytes(range(256)) * 4096
    chunks = [block] * (nbytes // len(block))
    expected = hashlib.sha256(b"".join(chunks)).hexdigest()
    srv = in_netns(server.ns, listen)
    result: dict = {}

    def serve():
        try:
            conn, _ = srv.accept()
            conn.settimeout(timeout)
            digest, n = hashlib.sha256(), 0
            while True:
                chunk = conn.recv(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                n += len(chunk)
            conn.close()
            result["bytes"], result["sha"] = n, digest.hexdigest()
        except Exception as exc:
            result["error"] = f"receiver: {exc!r}"

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    cli = None
    try:
        cli = in_netns(client.ns, connect)
        for c in chunks:
            cli.sendall(c)
        cli.shutdown(socket.SHUT_WR)
    except Exception as exc:
        result.setdefault("error", f"sender: {exc!r}")
    finally:
        t.join(timeout=timeout)
        if cli is not None:
            cli.close()
        srv.close()
    return result.get("bytes"), result.get("sha") == expected, result.get("error")
