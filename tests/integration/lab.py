"""Harness for the snoopswitch integration tests.

A *lab* is a set of network namespaces: one for the switch (``<lab>-sw``) and one per
host (``<lab>-<host>``), each host joined to the switch by a veth pair whose host end is
``eth0`` (fixed MAC, ``02:00:00:00:00:NN``) and whose switch end carries the host's
name. Nothing is ever created in the root namespace: every veth pair is created straight
into the two namespaces it joins.

Sockets are opened *inside* a namespace by a short-lived thread that calls setns(2)
(:func:`in_netns`); a socket stays in the namespace it was created in, so the tests can
use it from any thread afterwards. This is much faster than one process per action and
lets a test hold a joined multicast socket, a capture and a sender at the same time.

Everything here is plain Python + scapy (for crafting and dissecting frames); the
captures are AF_PACKET sockets with PACKET_AUXDATA, so VLAN tags that the kernel strips
on receive are put back into the frame bytes (see :class:`Capture`).
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import kernel_features

REPO = Path(__file__).resolve().parents[2]
TOPOLOGIES = REPO / "topologies"

# Namespaces and temp dirs made by this harness: sst<pid>x<n>-<host>, /tmp/snoopswitch-it-<pid>-*
NS_PREFIX = "sst"
TMP_PREFIX = "snoopswitch-it-"

# ---- Linux constants ----------------------------------------------------------------
CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_8021Q = 0x8100
SOL_PACKET = 263
PACKET_AUXDATA = 8
SO_RCVBUFFORCE = 33
PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST, PACKET_OUTGOING = range(5)
TP_STATUS_CSUMNOTREADY = 1 << 3
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
TP_STATUS_CSUM_VALID = 1 << 7
IP_MULTICAST_ALL = 49

_libc = ctypes.CDLL(None, use_errno=True)


def binary_path() -> Path:
    """The switch binary: $SNOOPSWITCH, else <repo>/.build/debug/snoopswitch."""
    env = os.environ.get("SNOOPSWITCH")
    return Path(env).resolve() if env else REPO / ".build" / "debug" / "snoopswitch"


def run_refused(lab, args, tag: str) -> tuple[int, str, bool]:
    """Run `snoopswitch run ARGS --control <tmp>` in the switch namespace, where it must refuse
    to start and exit by itself. Returns (exit code, stderr, whether the control socket ever
    appeared); fails the test if it keeps running."""
    import pytest
    ctl = str(lab.tmpdir / f"refused-{tag}.sock")
    cmd = [str(binary_path()), "run", *args, "--control", ctl]
    p = subprocess.Popen(["ip", "netns", "exec", lab.sw_ns, *cmd], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = False
    deadline = time.monotonic() + 10
    while p.poll() is None and time.monotonic() < deadline:
        seen = seen or os.path.exists(ctl)
        time.sleep(0.02)
    if p.poll() is None:
        p.kill()
        p.communicate(timeout=5)
        if os.path.exists(ctl):
            os.unlink(ctl)
        pytest.fail(f"`{' '.join(cmd)}` kept running (it should have refused to start)")
    _out, err = p.communicate(timeout=5)
    seen = seen or os.path.exists(ctl)
    if os.path.exists(ctl):
        os.unlink(ctl)
    return p.returncode, err, seen


def default_port_suffix() -> str:
    """Appended to every port spec the lab builds: $SNOOPSWITCH_PORT_SUFFIX (e.g. ":pcap"
    to run the suite through libpcap ports), else nothing."""
    return os.environ.get("SNOOPSWITCH_PORT_SUFFIX", "")


# ---- running things in namespaces ---------------------------------------------------
def in_netns(ns: str, fn: Callable, *args, **kwargs):
    """Run fn(*args, **kwargs) in a fresh thread that has joined network namespace ns.

    Sockets created by fn live in ns for good; the thread itself ends with fn.
    """
    box: dict = {}

    def target():
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({ns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    t = threading.Thread(target=target, name=f"netns-{ns}", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def sh(*cmd: str, check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    """Run a command (no shell), capture its output, raise with both on failure."""
    res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise RuntimeError(
            f"command failed ({res.returncode}): {' '.join(cmd)}\nstdout: {res.stdout}\nstderr: {res.stderr}"
        )
    return res


def netns_list() -> list[str]:
    out = sh("ip", "netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def delete_netns(ns: str) -> None:
    """Kill whatever still runs in ns (it was started for the lab), then delete ns."""
    res = sh("ip", "netns", "pids", ns, check=False)
    for pid in res.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    sh("ip", "netns", "del", ns, check=False)


def cleanup_stale() -> list[str]:
    """Remove namespaces and temp dirs left by crashed earlier runs of this harness
    (their names carry the pid of a process that no longer exists)."""
    removed = []
    pat = re.compile(rf"^{NS_PREFIX}(\d+)x\d+-")
    for ns in netns_list():
        m = pat.match(ns)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            delete_netns(ns)
            removed.append(ns)
    tmp = Path(tempfile.gettempdir())
    for d in tmp.glob(f"{TMP_PREFIX}*"):
        m = re.match(rf"^{TMP_PREFIX}(\d+)-", d.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(str(d))
    return removed


_lab_counter = 0


def unique_lab_name() -> str:
    global _lab_counter
    _lab_counter += 1
    return f"{NS_PREFIX}{os.getpid()}x{_lab_counter}"


def wait_until(predicate: Callable, timeout: float = 5.0, interval: float = 0.05, what: str = "condition"):
    """Poll predicate() until it returns something truthy; return that value.

    On timeout raise AssertionError naming `what` and the last value (or exception) seen.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except Exception as exc:  # keep polling; report the last one
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


# ---- addresses ----------------------------------------------------------------------
def mcast_mac(group: str) -> str:
    """The Ethernet address of an IPv4 multicast group (01:00:5e + low 23 bits)."""
    b = ipaddress.IPv4Address(group).packed
    return "01:00:5e:%02x:%02x:%02x" % (b[1] & 0x7F, b[2], b[3])


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def mac_str(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


# ---- captured frames ----------------------------------------------------------------
@dataclass
class Frame:
    """One frame seen by a :class:`Capture`, with its 802.1Q tag put back if the kernel
    had moved it into auxdata."""

    time: float
    data: bytes
    pkttype: int
    status: int  # tpacket auxdata tp_status
    orig_len: int

    @property
    def outgoing(self) -> bool:
        return self.pkttype == PACKET_OUTGOING

    @property
    def dst(self) -> str:
        return mac_str(self.data[0:6])

    @property
    def src(self) -> str:
        return mac_str(self.data[6:12])

    @property
    def tagged(self) -> bool:
        return len(self.data) >= 18 and struct.unpack("!H", self.data[12:14])[0] == ETH_P_8021Q

    @property
    def vlan(self) -> Optional[int]:
        return (struct.unpack("!H", self.data[14:16])[0] & 0x0FFF) if self.tagged else None

    @property
    def pcp(self) -> Optional[int]:
        return (self.data[14] >> 5) if self.tagged else None

    @property
    def ethertype(self) -> int:
        off = 16 if self.tagged else 12
        return struct.unpack("!H", self.data[off : off + 2])[0] if len(self.data) >= off + 2 else -1

    @property
    def l3(self) -> bytes:
        return self.data[18:] if self.tagged else self.data[14:]

    @property
    def ip(self) -> Optional["IPv4"]:
        if self.ethertype != ETH_P_IP:
            return None
        return IPv4.parse(self.l3)

    @property
    def checksum_deliverable(self) -> bool:
        """True if a receiving kernel would accept this frame's transport checksum:
        the kernel marked it partial (to be finished, CHECKSUM_PARTIAL) or already
        verified, or the UDP/TCP checksum in the bytes is right."""
        if self.status & (TP_STATUS_CSUMNOTREADY | TP_STATUS_CSUM_VALID):
            return True
        ip = self.ip
        if ip is None or not ip.complete:
            return False
        if ip.proto == 17:
            if len(ip.payload) < 8:
                return False
            if struct.unpack("!H", ip.payload[6:8])[0] == 0:
                return True  # no UDP checksum
        elif ip.proto != 6:
            return True
        pseudo = ip.src_b + ip.dst_b + struct.pack("!BBH", 0, ip.proto, len(ip.payload))
        return inet_checksum(pseudo + ip.payload) == 0

    def scapy(self):
        from scapy.layers.l2 import Ether

        return Ether(self.data)

    def __repr__(self) -> str:
        ip = self.ip
        desc = f"{ip.src}->{ip.dst} proto {ip.proto}" if ip else f"type {self.ethertype:#06x}"
        tag = f" vlan {self.vlan} pcp {self.pcp}" if self.tagged else ""
        return f"<Frame {self.src}->{self.dst}{tag} {desc} len {self.orig_len} pkttype {self.pkttype}>"


@dataclass
class IPv4:
    header: bytes
    payload: bytes
    total_length: int
    complete: bool

    @classmethod
    def parse(cls, b: bytes) -> Optional["IPv4"]:
        if len(b) < 20 or b[0] >> 4 != 4:
            return None
        ihl = (b[0] & 0x0F) * 4
        total = struct.unpack("!H", b[2:4])[0]
        if ihl < 20 or len(b) < ihl:
            return None
        complete = ihl <= total <= len(b)
        end = total if complete else len(b)
        return cls(header=b[:ihl], payload=b[ihl:end], total_length=total, complete=complete)

    @property
    def ttl(self) -> int:
        return self.header[8]

    @property
    def proto(self) -> int:
        return self.header[9]

    @property
    def src_b(self) -> bytes:
        return self.header[12:16]

    @property
    def dst_b(self) -> bytes:
        return self.header[16:20]

    @property
    def src(self) -> str:
        return socket.inet_ntoa(self.src_b)

    @property
    def dst(self) -> str:
        return socket.inet_ntoa(self.dst_b)

    @property
    def options(self) -> bytes:
        return self.header[20:]

    @property
    def header_checksum_ok(self) -> bool:
        return inet_checksum(self.header) == 0

    @property
    def router_alert(self) -> bool:
        """Router Alert option (RFC 2113: type 148, length 4, value 0) present."""
        opts, i = self.options, 0
        while i < len(opts):
            t = opts[i]
            if t == 0:
                break
            if t == 1:
                i += 1
                continue
            if i + 1 >= len(opts):
                break
            ln = opts[i + 1]
            if t == 148 and ln == 4 and opts[i + 2 : i + 4] == b"\0\0":
                return True
            i += max(ln, 2)
        return False


@dataclass
class Igmp:
    """An IGMP message as found on the wire (fields decoded by hand, not by scapy's
    version guessing)."""

    ip: IPv4
    frame: Frame

    @property
    def raw(self) -> bytes:
        return self.ip.payload

    @property
    def type(self) -> int:
        return self.raw[0]

    @property
    def code(self) -> int:
        return self.raw[1]

    @property
    def group(self) -> str:
        return socket.inet_ntoa(self.raw[4:8])

    @property
    def checksum_ok(self) -> bool:
        return inet_checksum(self.raw) == 0

    @property
    def is_query(self) -> bool:
        return self.type == 0x11

    @property
    def is_report(self) -> bool:
        return self.type in (0x12, 0x16, 0x22)

    @property
    def is_leave(self) -> bool:
        return self.type == 0x17

    @property
    def query_version(self) -> int:
        """RFC 3376 7.1: 8 octets and code 0 = v1, 8 octets = v2, >= 12 octets = v3."""
        if len(self.raw) >= 12:
            return 3
        return 1 if self.code == 0 else 2

    # IGMPv3 query fields (RFC 3376 4.1)
    @property
    def s_flag(self) -> int:
        return (self.raw[8] >> 3) & 1

    @property
    def qrv(self) -> int:
        return self.raw[8] & 0x07

    @property
    def qqic(self) -> int:
        return self.raw[9]

    @property
    def num_sources(self) -> int:
        return struct.unpack("!H", self.raw[10:12])[0]

    def v3_report_groups(self) -> list[tuple[int, str]]:
        """(record type, group) of each record of an IGMPv3 report."""
        out, n, off = [], struct.unpack("!H", self.raw[6:8])[0], 8
        for _ in range(n):
            if off + 8 > len(self.raw):
                break
            rtype, auxlen, nsrc = self.raw[off], self.raw[off + 1], struct.unpack("!H", self.raw[off + 2 : off + 4])[0]
            out.append((rtype, socket.inet_ntoa(self.raw[off + 4 : off + 8])))
            off += 8 + 4 * nsrc + 4 * auxlen
        return out

    def mentions_group(self, group: str) -> bool:
        if self.type == 0x22:
            return any(g == group for _, g in self.v3_report_groups())
        return self.group == group

    def __repr__(self) -> str:
        return f"<IGMP type {self.type:#04x} code {self.code} group {self.group} from {self.ip.src} to {self.ip.dst} len {len(self.raw)}>"


def igmp_of(frame: Frame) -> Optional[Igmp]:
    ip = frame.ip
    if ip is None or ip.proto != 2 or len(ip.payload) < 8:
        return None
    return Igmp(ip, frame)


def decode_max_resp(code: int) -> float:
    """IGMPv3 Max Resp Code (RFC 3376 4.1.1) in seconds."""
    if code < 128:
        return code / 10.0
    exp, mant = (code >> 4) & 0x07, code & 0x0F
    return ((mant | 0x10) << (exp + 3)) / 10.0


def decode_qqic(code: int) -> float:
    """IGMPv3 QQIC (RFC 3376 4.1.7) in seconds."""
    if code < 128:
        return float(code)
    exp, mant = (code >> 4) & 0x07, code & 0x0F
    return float((mant | 0x10) << (exp + 3))


# ---- sockets in a namespace ---------------------------------------------------------
def _open_packet_socket(ifname: str, rcvbuf: int = 8 << 20) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # receives nothing until bound
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.bind((ifname, ETH_P_ALL))
    return s


class Capture:
    """Every frame on an interface of a namespace, read by a background thread from an
    AF_PACKET socket (PACKET_AUXDATA on: a VLAN tag that the kernel stripped on receive
    is put back into the bytes; the auxdata status tells partial checksums).

    Use as a context manager, or start()/stop(). Frames are in .frames (incoming and
    outgoing; filter with .incoming())."""

    def __init__(self, ns: str, ifname: str = "eth0", label: str = ""):
        self.ns, self.ifname, self.label = ns, ifname, label or f"{ns}/{ifname}"
        self.frames: list[Frame] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = in_netns(ns, _open_packet_socket, ifname)
        self._sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.label}", daemon=True)
        self._thread.start()

    def _run(self):
        cmsg_space = socket.CMSG_SPACE(32)
        while not self._stop.is_set():
            try:
                data, anc, _flags, addr = self._sock.recvmsg(1 << 18, cmsg_space)
            except socket.timeout:
                continue
            except OSError:
                break
            status = 0
            for level, ctype, cdata in anc:
                if level == SOL_PACKET and ctype == PACKET_AUXDATA and len(cdata) >= 20:
                    status, tp_len, _snap, _mac, _net, tci, tpid = struct.unpack("IIIHHHH", cdata[:20])
                    if status & TP_STATUS_VLAN_VALID or tci:
                        if not status & TP_STATUS_VLAN_TPID_VALID:
                            tpid = ETH_P_8021Q
                        data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
            with self._lock:
                self.frames.append(Frame(time.monotonic(), data, addr[2], status, len(data)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self, settle: float = 0.0) -> list[Frame]:
        """Stop after reading for `settle` more seconds; return all frames."""
        if settle:
            time.sleep(settle)
        self._stop.set()
        self._thread.join(timeout=2)
        try:
            self._sock.close()
        except OSError:
            pass
        return self.snapshot()

    close = stop

    def snapshot(self) -> list[Frame]:
        with self._lock:
            return list(self.frames)

    def incoming(self, pred: Callable[[Frame], bool] = lambda f: True) -> list[Frame]:
        return [f for f in self.snapshot() if not f.outgoing and pred(f)]

    def outgoing(self, pred: Callable[[Frame], bool] = lambda f: True) -> list[Frame]:
        return [f for f in self.snapshot() if f.outgoing and pred(f)]

    def to_group(self, group: str) -> list[Frame]:
        """Incoming frames addressed to group (by MAC or by IP destination)."""
        gmac = mcast_mac(group)

        def pred(f: Frame) -> bool:
            ip = f.ip
            return f.dst == gmac or (ip is not None and ip.dst == group)

        return self.incoming(pred)

    def data_to_group(self, group: str) -> list[Frame]:
        """Incoming frames addressed to group other than IGMP: the group's data, without the
        group-specific queries a querier sends to every port (RFC 3376 6.6.3.1), which reach a
        port after its host left when another report for the group restarts them."""
        return [f for f in self.to_group(group) if f.ip is None or f.ip.proto != 2]

    def udp_to(self, group: str, port: int, marker: Optional[bytes] = None) -> list[Frame]:
        """Incoming UDP frames to group:port (optionally carrying marker)."""

        def pred(f: Frame) -> bool:
            ip = f.ip
            if ip is None or ip.proto != 17 or ip.dst != group or len(ip.payload) < 8:
                return False
            if struct.unpack("!H", ip.payload[2:4])[0] != port:
                return False
            return marker is None or marker in ip.payload

        return self.incoming(pred)

    def with_marker(self, marker: bytes, incoming_only: bool = True) -> list[Frame]:
        frames = self.incoming() if incoming_only else self.snapshot()
        return [f for f in frames if marker in f.data]

    def igmp(self, pred: Callable[[Igmp], bool] = lambda m: True) -> list[Igmp]:
        out = []
        for f in self.incoming():
            m = igmp_of(f)
            if m is not None and pred(m):
                out.append(m)
        return out

    def wait_for(self, pred: Callable[[Frame], bool], count: int = 1, timeout: float = 5.0, what: str = "frames"):
        return wait_until(
            lambda: (lambda fs: fs if len(fs) >= count else None)(self.incoming(pred)),
            timeout=timeout,
            what=f"{count} {what} on {self.label}",
        )


class Receiver:
    """A UDP socket in a host's namespace that joined `group` on eth0
    (IP_ADD_MEMBERSHIP: the host's kernel sends the IGMP report) and counts datagrams.
    With group=None it is a plain socket on the port (unicast and broadcast)."""

    def __init__(self, ns: str, group: Optional[str], port: int, ifname: str = "eth0"):
        self.ns, self.group, self.port, self.ifname = ns, group, port, ifname
        self.payloads: list[bytes] = []
        self.sock, self._ifindex = in_netns(ns, self._open)
        self.joined = group is not None

    def _open(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        ifindex = socket.if_nametoindex(self.ifname)
        if self.group is None:
            s.bind(("", self.port))
        else:
            s.bind((self.group, self.port))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, self._mreqn(ifindex))
        s.settimeout(0.05)
        return s, ifindex

    def _mreqn(self, ifindex: int) -> bytes:
        return struct.pack("4s4si", socket.inet_aton(self.group), socket.inet_aton("0.0.0.0"), ifindex)

    def leave(self):
        """IP_DROP_MEMBERSHIP: the host's kernel sends a leave (v2) or TO_IN({}) report (v3)."""
        if self.joined:
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, self._mreqn(self._ifindex))
            self.joined = False

    def join(self):
        if not self.joined:
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, self._mreqn(self._ifindex))
            self.joined = True

    def rejoin(self):
        """Leave and join again: the kernel sends a fresh unsolicited report."""
        self.leave()
        self.join()

    def drain(self) -> list[bytes]:
        """Read whatever is queued right now."""
        got = []
        while True:
            try:
                got.append(self.sock.recv(65536))
            except (socket.timeout, BlockingIOError):
                break
        self.payloads.extend(got)
        return got

    def collect(self, expected: int, timeout: float = 3.0, marker: Optional[bytes] = None, settle: float = 0.2) -> list[bytes]:
        """Read until `expected` datagrams (with marker, if given) arrived or timeout;
        then keep reading for `settle` seconds to catch duplicates. Returns them."""
        deadline = time.monotonic() + timeout
        got: list[bytes] = []
        settle_until = None
        while True:
            now = time.monotonic()
            if settle_until is None and (len(got) >= expected or now >= deadline):
                settle_until = now + settle
            if settle_until is not None and now >= settle_until:
                break
            try:
                d = self.sock.recv(65536)
            except (socket.timeout, BlockingIOError):
                continue
            self.payloads.append(d)
            if marker is None or marker in d:
                got.append(d)
        return got

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def udp_sender_socket(src_addr: Optional[str], ttl: int = 1, broadcast: bool = False, tos: int = 0) -> socket.socket:
    """A UDP socket that sends group datagrams out of the interface with `src_addr` (call it
    in the host's namespace: in_netns), not looped back to the host itself."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if src_addr:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src_addr))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    if broadcast:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    if tos:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
    return s


def numbered_payloads(marker: bytes, count: int, size: int = 200) -> list[bytes]:
    return [(marker + b" #%05d " % i).ljust(size, b".") for i in range(count)]


def send_udp(ns: str, dst: str, port: int, count: int = 20, marker: bytes = b"snoop", size: int = 200,
             interval: float = 0.002, src_addr: Optional[str] = None, ttl: int = 1, tos: int = 0) -> list[bytes]:
    """Send `count` numbered UDP datagrams from namespace ns to dst:port. Returns them."""
    broadcast = dst == "255.255.255.255" or dst.endswith(".255")
    s = in_netns(ns, udp_sender_socket, src_addr, ttl, broadcast, tos)
    payloads = numbered_payloads(marker, count, size)
    try:
        for p in payloads:
            s.sendto(p, (dst, port))
            if interval:
                time.sleep(interval)
    finally:
        s.close()
    return payloads


def _raw_socket(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.bind((ifname, 0))
    return s


def send_frames(ns: str, frames: Iterable, ifname: str = "eth0", interval: float = 0.0) -> int:
    """Send raw Ethernet frames (bytes or scapy packets, 802.1Q tags inline) out of
    ns's interface through an AF_PACKET socket. Returns how many were sent."""
    s = in_netns(ns, _raw_socket, ifname)
    n = 0
    try:
        for fr in frames:
            data = fr if isinstance(fr, (bytes, bytearray)) else bytes(fr)
            while True:
                try:
                    s.send(data)
                    break
                except OSError as exc:  # queue full: wait a little
                    if exc.errno not in (errno.ENOBUFS, errno.EAGAIN):
                        raise
                    time.sleep(0.001)
            n += 1
            if interval:
                time.sleep(interval)
    finally:
        s.close()
    return n


# ---- frame crafting (scapy) ---------------------------------------------------------
def _l2(src_mac: str, dst_mac: str, vlan: Optional[int], pcp: int = 0):
    from scapy.layers.l2 import Dot1Q, Ether

    eth = Ether(src=src_mac, dst=dst_mac)
    return eth / Dot1Q(vlan=vlan, prio=pcp) if vlan is not None else eth


def igmp_query(src_mac: str, src_ip: str, version: int = 3, group: str = "0.0.0.0", max_resp: float = 1.0,
               qrv: int = 2, qqic: int = 10, vlan: Optional[int] = None) -> bytes:
    """An IGMP query frame with router alert, TTL 1; general (to 224.0.0.1) unless group."""
    from scapy.contrib.igmp import IGMP
    from scapy.contrib.igmpv3 import IGMPv3, IGMPv3mq
    from scapy.layers.inet import IP, IPOption_Router_Alert

    dst_ip = "224.0.0.1" if group == "0.0.0.0" else group
    ip = IP(src=src_ip, dst=dst_ip, ttl=1, tos=0xC0, options=[IPOption_Router_Alert()])
    code = int(round(max_resp * 10))
    if version == 3:
        igmp = IGMPv3(type=0x11, mrcode=min(code, 127)) / IGMPv3mq(gaddr=group, qrv=qrv, qqic=qqic)
    else:
        igmp = IGMP(type=0x11, mrcode=0 if version == 1 else code, gaddr=group)
    return bytes(_l2(src_mac, mcast_mac(dst_ip), vlan) / ip / igmp)


def igmp_report(src_mac: str, src_ip: str, group: str, version: int = 2, vlan: Optional[int] = None,
                record_type: int = 4) -> bytes:
    """A membership report: v1/v2 to the group, v3 (one record, default EXCLUDE({}) = join) to 224.0.0.22."""
    from scapy.contrib.igmp import IGMP
    from scapy.contrib.igmpv3 import IGMPv3, IGMPv3gr, IGMPv3mr
    from scapy.layers.inet import IP, IPOption_Router_Alert

    if version == 3:
        ip = IP(src=src_ip, dst="224.0.0.22", ttl=1, tos=0xC0, options=[IPOption_Router_Alert()])
        igmp = IGMPv3(type=0x22) / IGMPv3mr(records=[IGMPv3gr(rtype=record_type, maddr=group)])
        dst = "224.0.0.22"
    else:
        ip = IP(src=src_ip, dst=group, ttl=1, tos=0xC0, options=[IPOption_Router_Alert()])
        igmp = IGMP(type=0x12 if version == 1 else 0x16, mrcode=0, gaddr=group)
        dst = group
    return bytes(_l2(src_mac, mcast_mac(dst), vlan) / ip / igmp)


def igmp_leave(src_mac: str, src_ip: str, group: str, vlan: Optional[int] = None) -> bytes:
    from scapy.contrib.igmp import IGMP
    from scapy.layers.inet import IP, IPOption_Router_Alert

    ip = IP(src=src_ip, dst="224.0.0.2", ttl=1, tos=0xC0, options=[IPOption_Router_Alert()])
    return bytes(_l2(src_mac, mcast_mac("224.0.0.2"), vlan) / ip / IGMP(type=0x17, mrcode=0, gaddr=group))


def pim_hello(src_mac: str, src_ip: str, holdtime: int = 105, vlan: Optional[int] = None) -> bytes:
    """A PIMv2 Hello (RFC 7761 4.9.2) to ALL-PIM-ROUTERS 224.0.0.13, IP protocol 103, TTL 1."""
    from scapy.contrib.pim import PIMv2Hdr, PIMv2Hello, PIMv2HelloHoldtime
    from scapy.layers.inet import IP

    ip = IP(src=src_ip, dst="224.0.0.13", ttl=1, proto=103)
    pkt = ip / PIMv2Hdr(type=0) / PIMv2Hello(option=[PIMv2HelloHoldtime(holdtime=holdtime)])
    return bytes(_l2(src_mac, mcast_mac("224.0.0.13"), vlan) / pkt)


def udp_frame(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, dport: int, payload: bytes,
              vlan: Optional[int] = None, pcp: int = 0, ttl: int = 1) -> bytes:
    """A complete UDP/IPv4 frame with correct checksums (optionally 802.1Q tagged)."""
    from scapy.layers.inet import IP, UDP

    return bytes(_l2(src_mac, dst_mac, vlan, pcp) / IP(src=src_ip, dst=dst_ip, ttl=ttl) / UDP(sport=40000, dport=dport) / payload)


# ---- topology -----------------------------------------------------------------------
@dataclass
class HostSpec:
    name: str
    cidr: Optional[str]  # "192.0.2.1/24" or None
    suffix: str = ""
    mac: str = ""
    cidr6: Optional[str] = None  # "2001:db8::1/64": the host's IPv6 is on


@dataclass
class Topology:
    switch_flags: list[str] = field(default_factory=list)
    hosts: list[HostSpec] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, source: str = "<topology>") -> "Topology":
        """Parse the line format of topologies/*.topo (see four-hosts.topo)."""
        topo = cls()
        for lineno, line in enumerate(text.splitlines(), 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            where = f"{source}:{lineno}"
            if words[0] == "switch":
                topo.switch_flags += words[1:]
            elif words[0] == "host":
                if len(words) < 3:
                    raise ValueError(f"{where}: expected 'host NAME ADDRESS|- [:SUFFIX] [mac=MAC]'")
                name, addr = words[1], words[2]
                if not re.fullmatch(r"[A-Za-z0-9_]{1,15}", name) or name == "sw":
                    raise ValueError(f"{where}: bad host name {name!r}")
                if any(h.name == name for h in topo.hosts):
                    raise ValueError(f"{where}: host {name!r} defined twice")
                suffix, mac = "", ""
                cidr6 = None
                for tok in words[3:]:
                    if tok.startswith(":"):
                        suffix += tok
                    elif tok.startswith("mac="):
                        mac = tok[4:].lower()
                    elif ":" in tok and "/" in tok:
                        ipaddress.IPv6Interface(tok)  # validates
                        cidr6 = tok
                    else:
                        raise ValueError(f"{where}: unexpected {tok!r}")
                if addr != "-":
                    ipaddress.IPv4Interface(addr)  # validates
                topo.hosts.append(HostSpec(name, None if addr == "-" else addr, suffix, mac, cidr6))
            else:
                raise ValueError(f"{where}: unknown statement {words[0]!r}")
        for i, h in enumerate(topo.hosts, 1):
            if not h.mac:
                h.mac = f"02:00:00:00:00:{i:02x}"
        return topo

    @classmethod
    def load(cls, name_or_path: str) -> "Topology":
        p = Path(name_or_path)
        if not p.exists():
            p = TOPOLOGIES / name_or_path
        return cls.parse(p.read_text(), str(p))


# ---- hosts, switch, lab -------------------------------------------------------------
class Host:
    def __init__(self, lab: "Lab", spec: HostSpec):
        self.lab, self.spec = lab, spec
        self.name = spec.name
        self.ns = f"{lab.name}-{spec.name}"
        self.mac = spec.mac
        self.cidr = spec.cidr
        self.addr = spec.cidr.split("/")[0] if spec.cidr else None
        self.suffix = spec.suffix

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.addr} {self.mac}>"

    # commands
    def run(self, *cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.ns, *cmd, check=check, timeout=timeout)

    def popen(self, *cmd: str, **kw) -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", self.ns, *cmd], **kw)
        self.lab._procs.append(p)
        return p

    def sysctl(self, key: str, value) -> None:
        path = "/proc/sys/" + key.replace(".", "/")

        def write():
            with open(path, "w") as f:
                f.write(str(value))

        in_netns(self.ns, write)

    def igmp_version(self, version: int) -> None:
        """Force the host kernel's IGMP version on eth0 (0 = default, v3)."""
        self.sysctl("net.ipv4.conf.eth0.force_igmp_version", version)

    def ping(self, addr: str, count: int = 1, timeout: float = 2) -> bool:
        r = self.run("ping", "-c", str(count), "-W", str(int(max(1, timeout))), "-i", "0.2", "-q", addr, check=False,
                     timeout=timeout * count + 5)
        return r.returncode == 0

    # links
    def set_link(self, up: bool) -> None:
        """Bring the host's eth0 down or up (routes through it are restored on up)."""
        sh("ip", "-n", self.ns, "link", "set", "eth0", "up" if up else "down")
        if up and self.addr:
            sh("ip", "-n", self.ns, "route", "replace", "224.0.0.0/4", "dev", "eth0")

    def igmp_compat_mode(self) -> str:
        """The kernel's IGMP mode on eth0 from /proc/net/igmp: "V3", or "V2"/"V1" while
        an older-version querier was heard (that lasts minutes) or the version is forced."""

        def read():
            with open("/proc/thread-self/net/igmp") as f:
                return f.read()

        for line in in_netns(self.ns, read).splitlines():
            parts = line.split()
            if len(parts) >= 5 and parts[1] == "eth0" and parts[2] == ":":
                return parts[4]
        return "V3"

    # sockets
    def receiver(self, group: Optional[str], port: int) -> Receiver:
        """A socket joined to group on eth0 (or, group=None, listening on port only)."""
        r = Receiver(self.ns, group, port)
        self.lab._closables.append(r)
        if group is not None:
            self.lab._joined_hosts.add(self.name)
        return r

    def join(self, group: str, port: int, vlan: int = 1, timeout: float = 5.0) -> Receiver:
        """Join group with a socket and wait until the switch lists this host's port as a
        member of group in vlan."""
        r = self.receiver(group, port)
        sw = self.lab.switch
        assert sw is not None, "start the switch first"
        sw.wait_status(lambda st: self.name in members(st, group, vlan), timeout=timeout,
                       what=f"{self.name} listed as member of {group} in VLAN {vlan}")
        return r

    def capture(self) -> Capture:
        c = Capture(self.ns, "eth0", label=self.name)
        self.lab._closables.append(c)
        return c

    def send_udp(self, dst: str, port: int, count: int = 20, marker: bytes = b"snoop", **kw) -> list[bytes]:
        return send_udp(self.ns, dst, port, count=count, marker=marker, src_addr=self.addr, **kw)

    def send_frames(self, frames: Iterable, interval: float = 0.0) -> int:
        return send_frames(self.ns, frames, interval=interval)

    def in_ns(self, fn: Callable, *args, **kw):
        return in_netns(self.ns, fn, *args, **kw)


class Switch:
    """A `snoopswitch run` process in the lab's switch namespace."""

    def __init__(self, lab: "Lab", args: list[str]):
        self.lab = lab
        self.args = args
        self.control = str(lab.tmpdir / "snoopswitch.sock")
        self.log_path = lab.tmpdir / f"switch-{len(lab.switch_history)}.log"
        self.cmd = [str(binary_path()), "run", *args, "--control", self.control]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.sw_ns, *self.cmd],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.stopped = False

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-tail:].decode(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = 15.0) -> "Switch":
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.control):
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"snoopswitch exited with {self.proc.returncode} before creating its control socket\n"
                    f"command: {' '.join(self.cmd)}\nlog:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"no control socket after {timeout}s\ncommand: {' '.join(self.cmd)}\nlog:\n{self.log()}")
            time.sleep(0.02)
        return self

    def status(self) -> dict:
        r = subprocess.run([str(binary_path()), "status", "--control", self.control, "--json"],
                           capture_output=True, text=True, timeout=5)
        if r.returncode != 0:
            raise RuntimeError(f"snoopswitch status failed ({r.returncode}): {r.stderr.strip()}")
        return json.loads(r.stdout)

    def status_text(self) -> str:
        r = subprocess.run([str(binary_path()), "status", "--control", self.control],
                           capture_output=True, text=True, timeout=5)
        if r.returncode != 0:
            raise RuntimeError(f"snoopswitch status failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def wait_status(self, pred: Callable[[dict], object], timeout: float = 5.0, what: str = "status") -> object:
        """Poll the status JSON until pred(status) is truthy; returns that value."""
        last: dict = {}

        def check():
            nonlocal last
            if not self.alive():
                raise AssertionError(f"switch died (exit {self.proc.returncode}); log:\n{self.log()}")
            last = self.status()
            return pred(last)

        try:
            return wait_until(check, timeout=timeout, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlast status: {json.dumps(last, indent=1)[:3000]}") from None

    def command(self, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
        """Run `snoopswitch ARGS --control <this switch's socket>` (e.g. "port", "add", "h5")
        and return the finished process (not checked: tests look at the exit code)."""
        return subprocess.run([str(binary_path()), *args, "--control", self.control],
                              capture_output=True, text=True, timeout=timeout)

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> Optional[int]:
        """Signal the switch and wait; SIGKILL if it lingers. Returns its exit code."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.stopped = True
        self._log.close()
        return self.proc.returncode


class Lab:
    """Namespaces, veth pairs and hosts of one topology, and the switch driving them."""

    def __init__(self, topology: Topology, name: Optional[str] = None):
        self.topology = topology
        self.name = name or unique_lab_name()
        self.sw_ns = f"{self.name}-sw"
        self.hosts: dict[str, Host] = {}
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-"))
        self.switch: Optional[Switch] = None
        self.switch_history: list[Switch] = []
        self._closables: list = []
        self._joined_hosts: set[str] = set()
        self._procs: list[subprocess.Popen] = []
        self._created: list[str] = []

    @classmethod
    def from_topology(cls, name_or_path: str, extra_hosts: Iterable[HostSpec] = ()) -> "Lab":
        topo = Topology.load(name_or_path)
        for h in extra_hosts:
            if not h.mac:
                h.mac = f"02:00:00:00:00:{len(topo.hosts) + 1:02x}"
            topo.hosts.append(h)
        return cls(topo)

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    # creation / destruction
    def _make_ns(self, ns: str) -> None:
        sh("ip", "netns", "add", ns)
        self._created.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")

        def quiet_ipv6():
            for key in ("all", "default"):
                with open(f"/proc/sys/net/ipv6/conf/{key}/disable_ipv6", "w") as f:
                    f.write("1")

        in_netns(ns, quiet_ipv6)

    def create(self) -> "Lab":
        try:
            self._make_ns(self.sw_ns)
            for spec in self.topology.hosts:
                h = Host(self, spec)
                self.hosts[h.name] = h
                self._make_ns(h.ns)
                self._link_host(h)
            self.wait_links_up()
        except BaseException:
            self.destroy()
            raise
        return self

    def _oper_states(self, ns: str) -> dict[str, str]:
        out = sh("ip", "-n", ns, "-o", "link", "show").stdout
        states = {}
        for line in out.splitlines():
            m = re.match(r"\d+:\s+([^:@\s]+)[@:].*\bstate (\S+)", line)
            if m:
                states[m.group(1)] = m.group(2)
        return states

    def wait_links_up(self, timeout: float = 5.0) -> None:
        """Wait until every veth end (both sides) is operationally up. The kernel
        publishes carrier changes through linkwatch, up to a second late; a switch
        started before that would rightly see its ports down."""

        def all_up():
            sw = self._oper_states(self.sw_ns)
            if any(sw.get(n) != "UP" for n in self.hosts):
                return False
            return all(self._oper_states(h.ns).get("eth0") == "UP" for h in self.hosts.values())

        wait_until(all_up, timeout=timeout, interval=0.05, what="all lab links operationally up")

    def close_sockets(self) -> None:
        while self._closables:
            try:
                self._closables.pop().close()
            except Exception:
                pass
        while self._procs:
            p = self._procs.pop()
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass

    def destroy(self) -> None:
        try:
            self.stop_switch()
        finally:
            self.close_sockets()
            for ns in reversed(self._created):
                delete_netns(ns)
            self._created.clear()
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def reset_hosts(self) -> None:
        """Undo what a test may have changed on hosts: links up, routes back, default IGMP."""
        self.close_sockets()
        for h in self.hosts.values():
            sh("ip", "-n", self.sw_ns, "link", "set", h.name, "up")
            h.set_link(True)
            if h.addr:
                h.igmp_version(0)
                if h.name in self._joined_hosts or h.igmp_compat_mode() != "V3":
                    # The host's kernel keeps IGMP state beyond the test: an IGMPv3 leave
                    # is repeated up to a second later (it would reach the next test's
                    # switch), and after an IGMPv1/v2 query it speaks v2 for minutes. No
                    # knob resets either, so the host gets a new veth pair (a new eth0).
                    self._recreate_link(h)
        self._joined_hosts.clear()
        self.wait_links_up()

    def _link_host(self, h: "Host") -> None:
        sh("ip", "-n", self.sw_ns, "link", "add", h.name, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
        sh("ip", "-n", h.ns, "link", "set", "eth0", "address", h.mac)
        sh("ip", "-n", h.ns, "link", "set", "eth0", "up")
        sh("ip", "-n", self.sw_ns, "link", "set", h.name, "up")
        if h.cidr:
            sh("ip", "-n", h.ns, "addr", "add", h.cidr, "dev", "eth0")
            sh("ip", "-n", h.ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
        if h.spec.cidr6:
            sh("ip", "netns", "exec", h.ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0",
               "net.ipv6.conf.default.disable_ipv6=0", "net.ipv6.conf.eth0.disable_ipv6=0")
            sh("ip", "-n", h.ns, "addr", "add", h.spec.cidr6, "dev", "eth0", "nodad")

    def _recreate_link(self, h: "Host") -> None:
        sh("ip", "-n", self.sw_ns, "link", "del", h.name)
        self._link_host(h)

    # the switch
    def port_specs(self, suffixes: Optional[dict[str, str]] = None, only: Optional[Iterable[str]] = None,
                   port_suffix: Optional[str] = None) -> list[str]:
        """`--port SPEC` for each host (or each of `only`); SPEC = name + the host's suffix
        (or suffixes[name]) + port_suffix (default: $SNOOPSWITCH_PORT_SUFFIX, e.g. ":pcap")."""
        suffixes = suffixes or {}
        extra = default_port_suffix() if port_suffix is None else port_suffix
        names = list(only) if only is not None else list(self.hosts)
        out = []
        for n in names:
            out += ["--port", n + suffixes.get(n, self.hosts[n].suffix) + extra]
        return out

    def start_switch(self, *flags: str, default_flags: bool = False, suffixes: Optional[dict[str, str]] = None,
                     only: Optional[Iterable[str]] = None, wait: bool = True, port_suffix: Optional[str] = None) -> Switch:
        """Start `snoopswitch run` with a port per host (spec = name + suffix, override
        per host with suffixes={name: ":router"}; port_suffix, e.g. ":pcap", is appended to
        every spec, by default $SNOOPSWITCH_PORT_SUFFIX or nothing) and `flags` (plus the
        topology file's switch flags if default_flags; without what needs TCX where the tests are
        told to take TCX as absent, kernel_features.switch_flags). Waits for the control socket."""
        self.stop_switch()
        args = self.port_specs(suffixes, only, port_suffix) + (self.topology.switch_flags if default_flags else []) + list(flags)
        args += kernel_features.switch_flags(args)
        sw = Switch(self, args)
        self.switch = sw
        self.switch_history.append(sw)
        if wait:
            sw.wait_ready()
        return sw

    def stop_switch(self) -> Optional[int]:
        if self.switch is None:
            return None
        sw, self.switch = self.switch, None
        return sw.stop()

    def set_switch_port_link(self, host: str, up: bool) -> None:
        sh("ip", "-n", self.sw_ns, "link", "set", host, "up" if up else "down")

    def delete_host_link(self, host: str) -> None:
        """Delete host's veth pair (both ends go: the switch port's interface vanishes).
        Call link_host() again before the test ends (the per-test reset expects it)."""
        sh("ip", "-n", self.sw_ns, "link", "del", host)

    def link_host(self, host: str) -> None:
        """Create host's veth pair again under the same names, with its MAC, address and
        multicast route, both ends up (after delete_host_link: a VM restarted)."""
        self._link_host(self.hosts[host])

    def has_switch_interface(self, name: str) -> bool:
        return sh("ip", "-n", self.sw_ns, "link", "show", name, check=False).returncode == 0

    def switch_ifindex(self, name: str) -> int:
        """The index of interface `name` in the switch's namespace."""
        return int(sh("ip", "-n", self.sw_ns, "-o", "link", "show", name).stdout.split(":", 1)[0])

    def switch_tx_packets(self, name: str) -> int:
        """What the kernel counts as sent by interface `name` in the switch's namespace."""
        return int(sh("ip", "netns", "exec", self.sw_ns, "cat", f"/sys/class/net/{name}/statistics/tx_packets").stdout)

    def namespace(self, name: str) -> str:
        """A bare namespace <lab>-<name> (lo up, IPv6 off) for this test only: it is deleted,
        with whatever was moved into it, when the test's sockets are closed."""
        ns = f"{self.name}-{name}"
        self._make_ns(ns)
        self._closables.append(_NamespaceCloser(self, ns))
        return ns


class _NamespaceCloser:
    def __init__(self, lab: "Lab", ns: str):
        self.lab, self.ns = lab, ns

    def close(self) -> None:
        delete_netns(self.ns)
        if self.ns in self.lab._created:
            self.lab._created.remove(self.ns)


# ---- TCP and HTTP through namespaces --------------------------------------------------
@dataclass
class TcpResult:
    sent: int
    received: Optional[int]
    intact: bool
    seconds: float
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.received == self.sent and self.intact

    def __str__(self) -> str:
        rate = self.sent * 8 / self.seconds / 1e6 if self.seconds > 0 else 0
        return (f"{self.received} of {self.sent} bytes in {self.seconds:.2f}s ({rate:.0f} Mbit/s), "
                f"{'intact' if self.intact else 'CORRUPTED or incomplete'}" + (f", error: {self.error}" if self.error else ""))


def tcp_transfer(server_ns: str, server_addr: str, client_ns: str, nbytes: int = 4 << 20, port: int = 5201,
                 timeout: float = 20.0) -> TcpResult:
    """Send nbytes over one TCP connection from a socket in client_ns to a listener on
    server_addr:port in server_ns (both with the namespaces' default offloads) and
    check length and SHA-256 of what arrived."""
    import hashlib

    def listen():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((server_addr, port))
        s.listen(1)
        s.settimeout(timeout)
        return s

    def connect():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((server_addr, port))
        return s

    block = bytes(range(256)) * 4096  # 1 MiB
    chunks = [block] * (nbytes // len(block)) + ([block[: nbytes % len(block)]] if nbytes % len(block) else [])
    expected = hashlib.sha256(b"".join(chunks)).hexdigest()
    srv = in_netns(server_ns, listen)
    result: dict = {}

    def serve():
        try:
            conn, _ = srv.accept()
            conn.settimeout(timeout)
            digest, n = hashlib.sha256(), 0
            try:
                while True:
                    chunk = conn.recv(1 << 20)
                    if not chunk:
                        break
                    digest.update(chunk)
                    n += len(chunk)
            finally:
                result["bytes"], result["sha"] = n, digest.hexdigest()
                conn.close()
        except Exception as exc:
            result["error"] = f"receiver: {exc!r}"

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    start = time.monotonic()
    cli = None
    try:
        cli = in_netns(client_ns, connect)
        for c in chunks:
            cli.sendall(c)
        cli.shutdown(socket.SHUT_WR)
        t.join(timeout=timeout)
    except Exception as exc:
        result.setdefault("error", f"sender: {exc!r}")
        t.join(timeout=timeout)
    finally:
        if cli is not None:
            cli.close()
        srv.close()
    elapsed = time.monotonic() - start
    return TcpResult(sent=nbytes, received=result.get("bytes"), intact=result.get("sha") == expected,
                     seconds=elapsed, error=result.get("error"))


def http_get(ns: str, url: str, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """GET url with urllib from inside namespace ns: (status code, headers, body);
    an HTTP error status is returned, not raised."""
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy

    def get():
        try:
            with opener.open(url, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers or {}), exc.read()

    return in_netns(ns, get)


# ---- status JSON helpers ------------------------------------------------------------
def control_request(path: str, data: bytes, shut: bool = True, timeout: float = 10.0) -> tuple[bytes, Optional[str]]:
    """Send `data` on a fresh connection; return (answer bytes, error name if the
    connection was reset or refused on the way)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    err = None
    out = b""
    try:
        s.connect(path)
        try:
            if data:
                s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except OSError as exc:
            err = errno.errorcode.get(exc.errno, str(exc))
        while True:
            try:
                b = s.recv(65536)
            except OSError as exc:
                err = err or errno.errorcode.get(exc.errno, str(exc))
                break
            if not b:
                break
            out += b
    finally:
        s.close()
    return out, err


def port_entry(status: dict, name: str) -> dict:
    for p in status.get("ports", []):
        if p.get("name") == name:
            return p
    raise KeyError(f"no port {name!r} in status")


def members(status: dict, group: str, vlan: int = 1) -> set[str]:
    """Names of the ports that are members of group in vlan."""
    for g in status.get("groups", []):
        if g.get("group") == group and g.get("vlan") == vlan:
            return {m["port"] for m in g.get("members", [])}
    return set()


def group_vlans(status: dict, group: str) -> set[int]:
    return {g["vlan"] for g in status.get("groups", []) if g.get("group") == group and g.get("members")}


def router_ports(status: dict, vlan: Optional[int] = None, protocol: str = "igmp") -> dict[str, dict]:
    """IPv4 ("igmp") or IPv6 ("mld") router ports, by port."""
    return {r["port"]: r for r in status.get("router_ports", [])
            if (vlan is None or r.get("vlan") == vlan) and r.get("protocol", "igmp") == protocol}


def macs(status: dict) -> dict[tuple[int, str], str]:
    """(vlan, mac) -> port."""
    return {(m["vlan"], m["mac"].lower()): m["port"] for m in status.get("macs", [])}


def querier(status: dict, vlan: int = 1, protocol: str = "igmp") -> dict:
    for q in status.get("queriers", []):
        if q.get("vlan") == vlan and q.get("protocol", "igmp") == protocol:
            return q
    return {}


def counter(status: dict, section: str, kind: str) -> int:
    return int(status.get("igmp", {}).get(section, {}).get(kind, 0) or 0)


def error_total(status: dict) -> int:
    return sum(int(v or 0) for v in status.get("igmp", {}).get("errors", {}).values())


def random_marker(tag: str = "m") -> bytes:
    return f"{tag}-{random.getrandbits(48):012x}".encode()


# ---- source-specific sockets (RFC 3678 on Linux) ------------------------------------
IP_UNBLOCK_SOURCE = 37
IP_BLOCK_SOURCE = 38
IP_ADD_SOURCE_MEMBERSHIP = 39
IP_DROP_SOURCE_MEMBERSHIP = 40


def mreq_source(group: str, iface_addr: str, source: str) -> bytes:
    """struct ip_mreq_source as Linux lays it out: imr_multiaddr, imr_interface, imr_sourceaddr."""
    return struct.pack("4s4s4s", socket.inet_aton(group), socket.inet_aton(iface_addr), socket.inet_aton(source))


class SourceReceiver(Receiver):
    """A UDP socket in a host's namespace joined to (source, group) for each of `sources`
    with IP_ADD_SOURCE_MEMBERSHIP on the interface with address iface_addr: the host's
    kernel is in INCLUDE mode for the group and sends IGMPv3 ALLOW/TO_IN records."""

    def __init__(self, ns: str, group: str, port: int, sources: Iterable[str], iface_addr: str, ifname: str = "eth0"):
        self.sources = list(sources)
        self.iface_addr = iface_addr
        super().__init__(ns, group, port, ifname)

    def _open(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind((self.group, self.port))
        for src in self.sources:
            s.setsockopt(socket.IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, mreq_source(self.group, self.iface_addr, src))
        s.settimeout(0.05)
        return s, socket.if_nametoindex(self.ifname)

    def leave(self):
        """IP_DROP_SOURCE_MEMBERSHIP of every source: the kernel sends BLOCK / TO_IN({})."""
        if self.joined:
            for src in self.sources:
                self.sock.setsockopt(socket.IPPROTO_IP, IP_DROP_SOURCE_MEMBERSHIP,
                                     mreq_source(self.group, self.iface_addr, src))
            self.joined = False

    def join(self):
        if not self.joined:
            for src in self.sources:
                self.sock.setsockopt(socket.IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP,
                                     mreq_source(self.group, self.iface_addr, src))
            self.joined = True

    def drop_source(self, source: str) -> None:
        """IP_DROP_SOURCE_MEMBERSHIP of one source: the kernel sends BLOCK({source})."""
        self.sock.setsockopt(socket.IPPROTO_IP, IP_DROP_SOURCE_MEMBERSHIP,
                             mreq_source(self.group, self.iface_addr, source))
        self.sources.remove(source)


def block_source(rx: Receiver, source: str, iface_addr: str = "0.0.0.0") -> None:
    """IP_BLOCK_SOURCE on an any-source (EXCLUDE mode) receiver: its host's kernel adds
    source to the group's exclude list and sends a BLOCK (or TO_EX) record."""
    rx.sock.setsockopt(socket.IPPROTO_IP, IP_BLOCK_SOURCE, mreq_source(rx.group, iface_addr, source))


def unblock_source(rx: Receiver, source: str, iface_addr: str = "0.0.0.0") -> None:
    rx.sock.setsockopt(socket.IPPROTO_IP, IP_UNBLOCK_SOURCE, mreq_source(rx.group, iface_addr, source))


def source_receiver(host: "Host", group: str, port: int, sources: Iterable[str]) -> SourceReceiver:
    """A socket of host joined to (S, group) for each S in sources (closed with the test)."""
    r = SourceReceiver(host.ns, group, port, sources, host.addr or "0.0.0.0")
    host.lab._closables.append(r)
    host.lab._joined_hosts.add(host.name)
    return r


def member_entry(status: dict, group: str, port: str, vlan: int = 1) -> Optional[dict]:
    """The status entry of port's membership of group in vlan (mode, sources, version...), or None."""
    for g in status.get("groups", []):
        if g.get("group") == group and g.get("vlan") == vlan:
            for m in g.get("members", []):
                if m.get("port") == port:
                    return m
    return None


def member_sources(entry: Optional[dict]) -> set[str]:
    """Addresses of the (forwarded) source records of a member entry."""
    return {s["address"] if isinstance(s, dict) else s for s in (entry or {}).get("sources") or []}


def member_excluded(entry: Optional[dict]) -> set[str]:
    """Addresses of the excluded source records of a member entry."""
    return {s["address"] if isinstance(s, dict) else s for s in (entry or {}).get("excluded") or []}


def udp_from(cap: Capture, src: str, group: str) -> list[Frame]:
    """Incoming IPv4 UDP frames from src to group on a capture."""
    return cap.incoming(lambda f: (ip := f.ip) is not None and ip.proto == 17 and ip.src == src and ip.dst == group)


# ---- FRR (a real multicast router: zebra + pimd in a namespace) ----------------------
FRR_DAEMONS = Path("/usr/lib/frr")


def frr_missing() -> Optional[str]:
    """Why FRR cannot run here (None if zebra, pimd and vtysh are installed)."""
    for p in (FRR_DAEMONS / "zebra", FRR_DAEMONS / "pimd"):
        if not os.access(p, os.X_OK):
            return f"{p} not found (Debian package frr)"
    if shutil.which("vtysh") is None:
        return "vtysh not found (Debian package frr)"
    return None


class FrrRouter:
    """zebra and pimd of FRR running in a host's namespace, with private config, pid, log,
    zserv and vty files in a temp dir of their own (-N NAME --vty_socket DIR), so several
    can run at once and none touches /etc/frr's daemons. `pimd_config` is the text of
    pimd's configuration (e.g. an `interface eth0` block with `ip pim` and `ip igmp`).

    The daemons run in the foreground as children of this process (their pids are ours to
    kill); they drop to the frr user as packaged, keeping the capabilities they need.
    close() stops both and removes every file; the lab also does at the end of the test."""

    def __init__(self, host: "Host", pimd_config: str):
        self.host = host
        self.name = f"{host.ns}-frr"
        self.dir = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-frr-"))
        self.dir.chmod(0o755)
        shutil.chown(self.dir, "frr", "frr")
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: list = []
        (self.dir / "zebra.conf").write_text("hostname router\n")
        (self.dir / "pimd.conf").write_text("hostname router\n" + pimd_config)
        host.lab._closables.append(self)
        # pimd's sockets join 224.0.0.13/.22/.2: the host's kernel leaves them when pimd
        # stops, repeating its reports for a second; the host gets a fresh link afterwards.
        host.lab._joined_hosts.add(host.name)

    def _start(self, daemon: str) -> subprocess.Popen:
        log = open(self.dir / f"{daemon}.stdout", "wb")
        self._logs.append(log)
        cmd = [str(FRR_DAEMONS / daemon), "-N", self.name, "--vty_socket", str(self.dir),
               "-f", str(self.dir / f"{daemon}.conf"), "-i", str(self.dir / f"{daemon}.pid"),
               "-z", str(self.dir / "zserv.api"), "--log", f"file:{self.dir / (daemon + '.log')}"]
        p = subprocess.Popen(["ip", "netns", "exec", self.host.ns, *cmd], stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT)
        self.procs[daemon] = p
        return p

    def _wait_socket(self, path: Path, daemon: str, timeout: float) -> None:
        def ready():
            p = self.procs[daemon]
            if p.poll() is not None:
                raise RuntimeError(f"{daemon} exited with {p.returncode}; log:\n{self.log(daemon)}")
            return path.exists()

        try:
            wait_until(ready, timeout=timeout, what=f"{daemon}'s socket {path}")
        except AssertionError as exc:
            raise RuntimeError(f"{exc}\nlog:\n{self.log(daemon)}") from None

    def start(self, timeout: float = 10.0) -> "FrrRouter":
        """Start zebra, wait for its zserv and vty sockets, start pimd, wait for its vty
        socket and for `show ip pim interface` to answer."""
        try:
            self._start("zebra")
            self._wait_socket(self.dir / "zserv.api", "zebra", timeout)
            self._wait_socket(self.dir / "zebra.vty", "zebra", timeout)
            self._start("pimd")
            self._wait_socket(self.dir / "pimd.vty", "pimd", timeout)
            wait_until(lambda: "eth0" in self.vtysh("show ip pim interface", check=False), timeout=timeout,
                       what="pimd to list eth0 as a PIM interface")
        except BaseException:
            self.close()
            raise
        return self

    def vtysh(self, *commands: str, check: bool = True) -> str:
        args = ["vtysh", "--vty_socket", str(self.dir)]
        for c in commands:
            args += ["-c", c]
        return sh(*args, check=check, timeout=10).stdout

    def vtysh_json(self, command: str) -> object:
        out = self.vtysh(command)
        return json.loads(out) if out.strip() else {}

    def log(self, daemon: str = "pimd", tail: int = 3000) -> str:
        text = ""
        for name in (f"{daemon}.stdout", f"{daemon}.log"):
            try:
                text += f"--- {name}\n" + (self.dir / name).read_bytes()[-tail:].decode(errors="replace")
            except OSError:
                pass
        return text

    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs.values())

    def close(self) -> None:
        for daemon in ("pimd", "zebra"):
            p = self.procs.get(daemon)
            if p is None or p.poll() is not None:
                continue
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        self.procs.clear()
        while self._logs:
            self._logs.pop().close()
        shutil.rmtree(self.dir, ignore_errors=True)
        # -N NAME makes the daemons create /var/run/frr/NAME (empty when -i, -z and
        # --vty_socket point elsewhere): remove it, and only it.
        shutil.rmtree(Path("/var/run/frr") / self.name, ignore_errors=True)

    stop = close


class StubNetwork:
    """A network behind a lab host: a namespace <lab>-<name> joined to the host's namespace
    by a veth pair (`host_ifname` on the host's side, eth0 on the stub's), both ends
    addressed, the stub routing everything through the host (e.g. a source behind a
    multicast router). close() (also at the end of the test) deletes the namespace and,
    with it, the pair."""

    def __init__(self, host: "Host", name: str, host_ifname: str, host_cidr: str, stub_cidr: str):
        self.host, self.host_ifname = host, host_ifname
        self.ns = f"{host.lab.name}-{name}"
        self.addr = stub_cidr.split("/")[0]
        self.gateway = host_cidr.split("/")[0]
        sh("ip", "netns", "add", self.ns)
        host.lab._closables.append(self)
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        sh("ip", "-n", host.ns, "link", "add", host_ifname, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        sh("ip", "-n", host.ns, "addr", "add", host_cidr, "dev", host_ifname)
        sh("ip", "-n", host.ns, "link", "set", host_ifname, "up")
        sh("ip", "-n", self.ns, "addr", "add", stub_cidr, "dev", "eth0")
        sh("ip", "-n", self.ns, "link", "set", "eth0", "up")
        sh("ip", "-n", self.ns, "route", "add", "default", "via", self.gateway)

    def send_udp(self, dst: str, port: int, count: int = 20, marker: bytes = b"snoop", ttl: int = 8, **kw) -> list[bytes]:
        """Datagrams from the stub's address (TTL 8 by default, so that a router forwards them)."""
        return send_udp(self.ns, dst, port, count=count, marker=marker, src_addr=self.addr, ttl=ttl, **kw)

    def close(self) -> None:
        if self.ns in netns_list():
            delete_netns(self.ns)


# ---- a VM on a tap (qemu) -------------------------------------------------------------
QEMU = "qemu-system-x86_64"


class QemuVm:
    """A qemu-system-x86_64 VM started in namespace `ns` (`ip netns exec`), its virtio NIC
    (MAC `mac`) on a tap that qemu creates there as `ifname`
    (`-netdev tap,ifname=IFNAME,script=no,downscript=no,vhost=off`): attach that tap to
    the switch as a port. It boots `kernel` and `initrd` with `append` (the serial console,
    ttyS0, goes to `console_path`: read it with console() / wait_console()), without
    firmware ROMs or default devices, under TCG unless `accel` says otherwise
    ($SNOOPSWITCH_VM_ACCEL, e.g. "kvm", overrides the default). -no-reboot: a guest that
    powers off, reboots or panics (with panic=-1) ends qemu. close() kills it."""

    def __init__(self, ns: str, ifname: str, mac: str, kernel: Path, initrd: Path, append: str,
                 console_path: Path, memory_mb: int = 256, accel: Optional[str] = None):
        self.ns, self.ifname, self.mac = ns, ifname, mac
        self.console_path = Path(console_path)
        self.output_path = self.console_path.with_name(self.console_path.name + ".qemu")
        self.accel = accel or os.environ.get("SNOOPSWITCH_VM_ACCEL", "tcg")
        self.cmd = [
            QEMU, "-nodefaults", "-no-user-config", "-machine", f"pc,accel={self.accel}", "-m", str(memory_mb),
            "-smp", "1", "-display", "none", "-monitor", "none", "-serial", f"file:{self.console_path}",
            "-no-reboot", "-kernel", str(kernel), "-initrd", str(initrd), "-append", append,
            "-netdev", f"tap,id=n0,ifname={ifname},script=no,downscript=no,vhost=off",
            "-device", f"virtio-net-pci,netdev=n0,mac={mac},romfile=",
        ]
        self._out = open(self.output_path, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, *self.cmd], stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def console(self) -> str:
        try:
            return self.console_path.read_bytes().decode(errors="replace")
        except OSError:
            return ""

    def console_lines(self) -> str:
        """The console up to its last newline: a line the guest is still writing (the serial
        port hands it over a few bytes at a time) is not read half-way."""
        text = self.console()
        return text[:text.rfind("\n") + 1]

    def qemu_output(self) -> str:
        try:
            return self.output_path.read_bytes()[-3000:].decode(errors="replace")
        except OSError:
            return ""

    def describe(self, tail: int = 4000) -> str:
        """qemu's state, its own output and the tail of the console, for failure messages."""
        state = "running" if self.alive() else f"exited with {self.proc.returncode}"
        return (f"qemu {state} after {time.monotonic() - self.started:.1f}s\ncommand: {' '.join(self.cmd)}\n"
                f"--- qemu output\n{self.qemu_output()}\n--- console (tail)\n{self.console()[-tail:]}")

    def wait_console(self, pattern: str, timeout: float, what: str = "") -> "re.Match":
        """Wait until a console line matches the regex `pattern`; return the match. Fails
        (AssertionError with the console) on timeout, or if qemu exits first."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.console_lines())
            if m:
                return m
            if not self.alive():
                m = rx.search(self.console_lines())  # written just before it exited
                if m:
                    return m
                raise AssertionError(f"the VM ended before {what or pattern!r}\n{self.describe()}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or pattern!r} on the "
                                     f"VM's console\n{self.describe()}")
            time.sleep(0.1)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"qemu still running {timeout:.0f}s later\n{self.describe()}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._out.close()

    stop = close


def start_vm(lab: "Lab", ifname: str, mac: str, kernel: Path, initrd: Path, append: str,
             timeout: float = 20.0, **kw) -> QemuVm:
    """A :class:`QemuVm` in the lab's switch namespace whose tap is `ifname` (console in the
    lab's temp dir); waits until qemu has created the tap. Killed when the test's sockets
    are closed (and with the switch namespace at the latest)."""
    vm = QemuVm(lab.sw_ns, ifname, mac, kernel, initrd, append, lab.tmpdir / f"{ifname}.console", **kw)
    lab._closables.append(vm)

    deadline = time.monotonic() + timeout
    while not lab.has_switch_interface(ifname):
        if not vm.alive():
            raise AssertionError(f"qemu exited before creating the tap {ifname}\n{vm.describe()}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"no tap {ifname} {timeout:.0f}s after starting qemu\n{vm.describe()}")
        time.sleep(0.1)
    return vm


def tshark_fields(path, fields: Iterable[str]) -> list[dict[str, str]]:
    """Every frame of a capture file as tshark decodes it (`tshark -r FILE -T fields`): a dict
    of `fields`, empty where tshark's dissectors found no such field (igmp.type is set only for
    frames decoded as IGMP). Fails the test if tshark cannot read the file."""
    fields = list(fields)
    args = ["tshark", "-n", "-r", str(path), "-T", "fields"]
    for f in fields:
        args += ["-e", f]
    r = sh(*args, check=False, timeout=60)
    assert r.returncode == 0, f"tshark -r {path} exited {r.returncode}: {r.stderr.strip()[-500:]}"
    return [dict(zip(fields, line.split("\t"))) for line in r.stdout.splitlines() if line.strip()]
