"""`snoopswitch capture` (topologies/four-hosts.topo): its file is pcapng with one interface
per switch port (if_name the port's name) and each frame's direction in its epb_flags, read
back by tshark, tcpdump and a small reader here; and a capture that cannot reach the switch,
or that the switch refuses, leaves an existing file as it was.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from lab import binary_path, sh, tshark_fields, wait_until

G1 = "239.6.8.1"
PORT = 5072
INBOUND, OUTBOUND = 1, 2


# ---- reading the file ---------------------------------------------------------------------
def pcapng_blocks(path) -> tuple[list[str], list[tuple[int, int, bytes]]]:
    """A small pcapng reader (little-endian sections, as the switch writes them): the
    interfaces' if_name in the order of their blocks, and each enhanced packet block as
    (interface id, epb_flags, frame). Fails the test on a malformed block."""
    data = Path(path).read_bytes()
    names: list[str] = []
    packets: list[tuple[int, int, bytes]] = []
    offset = 0
    assert data[:4] == b"\x0a\x0d\x0d\x0a", f"{path} does not start with a section header block"
    while offset < len(data):
        assert offset + 12 <= len(data), f"truncated block at {offset}"
        kind, length = struct.unpack_from("<II", data, offset)
        assert length >= 12 and length % 4 == 0 and offset + length <= len(data), f"bad block length {length} at {offset}"
        assert struct.unpack_from("<I", data, offset + length - 4)[0] == length, f"trailing length differs at {offset}"
        body = data[offset + 8:offset + length - 4]
        if kind == 0x0A0D0D0A:
            assert struct.unpack_from("<I", body, 0)[0] == 0x1A2B3C4D, "byte-order magic"
        elif kind == 1:
            linktype = struct.unpack_from("<H", body, 0)[0]
            assert linktype == 1, f"interface block with linktype {linktype}, not Ethernet"
            options = dict(parse_options(body[8:]))
            names.append(options.get(2, b"").decode())
        elif kind == 6:
            iface, _hi, _lo, caplen, origlen = struct.unpack_from("<IIIII", body, 0)
            assert caplen == origlen, "the switch's frames are whole"
            frame = body[20:20 + caplen]
            options = dict(parse_options(body[20 + (caplen + 3) // 4 * 4:]))
            assert 2 in options, "enhanced packet block without epb_flags"
            packets.append((iface, struct.unpack("<I", options[2])[0], frame))
        offset += length
    return names, packets


def parse_options(raw: bytes):
    i = 0
    while i + 4 <= len(raw):
        code, length = struct.unpack_from("<HH", raw, i)
        if code == 0:
            return
        yield code, raw[i + 4:i + 4 + length]
        i += 4 + (length + 3) // 4 * 4


FIELDS = ("frame.interface_name", "frame.packet_flags_direction", "eth.dst", "ip.src", "ip.dst", "udp.dstport",
          "icmp.type", "arp.opcode", "arp.src.proto_ipv4", "arp.dst.proto_ipv4")


def tshark_frames(path) -> list[dict[str, str]]:
    return tshark_fields(path, FIELDS)


def direction(frame: dict[str, str]) -> int:
    value = frame["frame.packet_flags_direction"]
    return int(value, 0) if value else 0


def where(frames, pred) -> list[tuple[str, int]]:
    """(interface name, direction) of the frames that satisfy pred, sorted."""
    return sorted((f["frame.interface_name"], direction(f)) for f in frames if pred(f))


def need_tools():
    for tool in ("tshark", "tcpdump"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            pytest.fail(f"{tool} not found (scripts/install-deps.sh installs it)")


def start_capture(lab, sw, path, *flags) -> subprocess.Popen:
    before = sw.log(200000).count("capture started")
    p = subprocess.Popen([str(binary_path()), "capture", str(path), *flags, "--control", sw.control],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lab._procs.append(p)
    wait_until(lambda: p.poll() is not None or sw.log(200000).count("capture started") > before, timeout=10,
               what="the switch's log line 'capture started'")
    assert p.poll() is None, f"capture exited {p.returncode}: {p.communicate()[1].strip()}"
    return p


def finish_capture(p: subprocess.Popen, stop: bool = True) -> int:
    """SIGINT (if stop) and wait: the frames the client says it wrote."""
    if stop:
        p.send_signal(signal.SIGINT)
    try:
        _out, err = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("capture still running 15 s after SIGINT")
    assert p.returncode == 0, f"capture exited {p.returncode}: {err.strip()}"
    m = re.search(r"(\d+) frames written", err)
    assert m, f"capture did not say how many frames it wrote: {err!r}"
    return int(m.group(1))


# ---- port and direction -------------------------------------------------------------------
def test_capture_is_pcapng_with_each_frames_port_and_direction(four):
    """A switch on h1..h3; a capture of every port; h1 joins G1, h2 (its neighbours
    forgotten) pings h3 once, then `port add h4` and h4 sends 10 datagrams to G1 (h1 gets
    10/10). Stopped with SIGINT, the file has an interface per port named h1, h2, h3 and,
    added during the capture, h4 after them. Read back with tshark: the datagrams are 10
    inbound on h4 and 10 outbound on h1, nowhere else; the echo request is inbound on h2 and
    outbound on h3 once, the reply the other way; each broadcast ARP request from h2 is
    inbound on h2 once and outbound once on h1 and on h3. tcpdump -r reads as many frames as
    were written, and so does the reader here, whose flags agree with tshark's."""
    need_tools()
    sw = four.start_switch(only=["h1", "h2", "h3"])
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    rx = h1.join(G1, PORT)
    for h in (h2, h3):
        h.run("ip", "neigh", "flush", "all")
    path = four.tmpdir / "ports.pcapng"
    p = start_capture(four, sw, path)

    assert h2.ping(h3.addr), "h2 cannot ping h3"
    r = sw.command("port", "add", "h4")
    assert r.returncode == 0, r.stderr
    sw.wait_status(lambda st: any(q["name"] == "h4" and q["link"] == "up" for q in st["ports"]), what="h4 up")
    sent = h4.send_udp(G1, PORT, count=10)
    got = rx.collect(10, timeout=3)
    assert sorted(got) == sorted(sent), f"h1 got {len(got)}/10 datagrams"
    written = finish_capture(p)

    names, packets = pcapng_blocks(path)
    assert names == ["h1", "h2", "h3", "h4"], f"interfaces in the file: {names}"
    assert len(packets) == written, f"the file holds {len(packets)} frames, the client said {written}"
    frames = tshark_frames(path)
    assert len(frames) == written, f"tshark read {len(frames)} frames of {written}"
    for f, (iface, flags, _frame) in zip(frames, packets):
        assert f["frame.interface_name"] == names[iface], f"tshark: {f['frame.interface_name']}, block: {names[iface]}"
        assert direction(f) == flags & 3, f"tshark's direction {direction(f)}, epb_flags {flags:#x}"
    assert {direction(f) for f in frames} == {INBOUND, OUTBOUND}, "not every frame is marked inbound or outbound"

    datagrams = where(frames, lambda f: f["ip.dst"] == G1 and f["udp.dstport"] == str(PORT))
    assert datagrams == sorted([("h1", OUTBOUND)] * 10 + [("h4", INBOUND)] * 10), f"the datagrams: {datagrams}"
    requests = where(frames, lambda f: f["icmp.type"] == "8" and f["ip.src"] == h2.addr and f["ip.dst"] == h3.addr)
    assert requests == [("h2", INBOUND), ("h3", OUTBOUND)], f"h2's echo request: {requests}"
    replies = where(frames, lambda f: f["icmp.type"] == "0" and f["ip.src"] == h3.addr and f["ip.dst"] == h2.addr)
    assert replies == [("h2", OUTBOUND), ("h3", INBOUND)], f"h3's echo reply: {replies}"
    arp = where(frames, lambda f: f["arp.opcode"] == "1" and f["eth.dst"] == "ff:ff:ff:ff:ff:ff"
                and f["arp.src.proto_ipv4"] == h2.addr and f["arp.dst.proto_ipv4"] == h3.addr)
    n = arp.count(("h2", INBOUND))
    assert n >= 1 and arp == sorted([("h1", OUTBOUND), ("h2", INBOUND), ("h3", OUTBOUND)] * n), \
        f"h2's broadcast ARP requests for h3: {arp}"

    r = sh("tcpdump", "-n", "-r", str(path), check=False, timeout=60)
    assert r.returncode == 0, f"tcpdump -r exited {r.returncode}: {r.stderr.strip()[-500:]}"
    # One line a frame, starting with its time; some decodes go on in indented lines.
    lines = [line for line in r.stdout.splitlines() if re.match(r"\d\d:\d\d:\d\d\.\d+ ", line)]
    assert len(lines) == written, f"tcpdump read {len(lines)} frames of {written}:\n{r.stdout[-3000:]}"
    assert sw.alive()


def test_capture_of_one_port_with_count_names_that_port_alone(four):
    """`capture --port h1 --count 4` while h4 sends 10 datagrams to h1's group: the client
    stops by itself after 4 frames; the file has one interface, h1, and 4 outbound frames."""
    need_tools()
    sw = four.start_switch()
    h1, h4 = four["h1"], four["h4"]
    rx = h1.join(G1, PORT)
    path = four.tmpdir / "h1.pcapng"
    p = start_capture(four, sw, path, "--port", "h1", "--count", "4")
    sent = h4.send_udp(G1, PORT, count=10)
    assert sorted(rx.collect(10, timeout=3)) == sorted(sent)
    assert finish_capture(p, stop=False) == 4
    names, packets = pcapng_blocks(path)
    assert names == ["h1"], f"interfaces of a --port h1 capture: {names}"
    assert [(iface, flags & 3) for iface, flags, _ in packets] == [(0, OUTBOUND)] * 4, packets
    frames = tshark_frames(path)
    assert where(frames, lambda f: True) == [("h1", OUTBOUND)] * 4, frames


# ---- a capture that does not start writes nothing -----------------------------------------
KEEP = b"an earlier capture, not to be lost\n" * 100


def assert_untouched(r: subprocess.CompletedProcess, path: Path, before: os.stat_result, what: str) -> str:
    err = r.stderr.strip()
    assert r.returncode == 1, f"{what}: capture exited {r.returncode}: {err}"
    assert len(err.splitlines()) == 1 and err.startswith("snoopswitch: "), f"{what}: not one error line: {err!r}"
    assert path.read_bytes() == KEEP, f"{what}: the existing file was changed ({path.stat().st_size} bytes)"
    assert path.stat().st_mtime_ns == before.st_mtime_ns, f"{what}: the existing file was written to"
    return err


def test_capture_that_cannot_reach_the_switch_leaves_the_file_alone(snoopswitch):
    """An existing file and `capture FILE --control PATH` where PATH is missing, a socket
    nobody listens on (refused), or a socket in a directory the user may not enter
    (permission denied, as nobody): each is one error line and exit 1, and the file is
    unchanged byte for byte, never written to."""
    with tempfile.TemporaryDirectory(prefix="snoopswitch-capture-") as tmp:
        tmp = Path(tmp)
        os.chmod(tmp, 0o755)
        keep = tmp / "keep.pcapng"
        keep.write_bytes(KEEP)
        os.chmod(keep, 0o666)  # even nobody could truncate it
        before = keep.stat()

        def capture(control, user=()):
            return subprocess.run([*user, str(snoopswitch), "capture", str(keep), "--control", str(control)],
                                  capture_output=True, text=True, timeout=20)

        err = assert_untouched(capture(tmp / "missing.sock"), keep, before, "no socket")
        assert "missing.sock" in err, err

        refused = tmp / "refused.sock"
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(refused))
        s.close()
        err = assert_untouched(capture(refused), keep, before, "connection refused")
        assert "refused" in err.lower(), err

        private = tmp / "private"
        private.mkdir(mode=0o700)
        listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listening.bind(str(private / "switch.sock"))
            listening.listen(1)
            nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            err = assert_untouched(capture(private / "switch.sock", nobody), keep, before, "permission denied")
            assert "permission denied" in err.lower(), err
        finally:
            listening.close()


def test_a_capture_the_switch_refuses_leaves_the_file_alone(four):
    """`capture FILE --port nosuch`: the switch answers with an error, the client says it in
    one line and exits 1, and the existing FILE is unchanged."""
    sw = four.start_switch()
    keep = four.tmpdir / "keep.pcapng"
    keep.write_bytes(KEEP)
    before = keep.stat()
    r = subprocess.run([str(binary_path()), "capture", str(keep), "--port", "nosuch", "--control", sw.control],
                       capture_output=True, text=True, timeout=20)
    err = assert_untouched(r, keep, before, "--port nosuch")
    assert "no port named nosuch" in err, err
    assert sw.alive()
