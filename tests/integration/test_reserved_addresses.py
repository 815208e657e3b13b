"""IEEE 802.1Q reserved addresses (topologies/four-hosts.topo).

IEEE 802.1Q 8.6.3, Table 8-1: frames to 01:80:C2:00:00:01 to 0F (PAUSE, slow protocols
such as LACP, 802.1X, LLDP, ...) stay on their link, as the Linux bridge and Open vSwitch
keep them; 01:80:C2:00:00:00 (spanning tree) is relayed, as by a Linux bridge with STP off.
`--forward-reserved LIST` (config file key `forward-reserved`, re-read on SIGHUP) relays
chosen ones, as the bridge's group_fwd_mask does; PAUSE and LACP are refused as the kernel
refuses them there. Each frame kept back is counted as a drop with reason reserved_address.
"""

from __future__ import annotations

import re
import signal

from lab import http_get, random_marker, run_refused, wait_until

# Destination, EtherType (or an 802.3 length), what it is.
STP = ("01:80:c2:00:00:00", 0x0026, "STP BPDU (802.3 length + LLC 42 42 03)")
PAUSE = ("01:80:c2:00:00:01", 0x8808, "PAUSE")
LACP = ("01:80:c2:00:00:02", 0x8809, "LACPDU")
EAPOL = ("01:80:c2:00:00:03", 0x888E, "802.1X EAPOL-Start")
LLDP = ("01:80:c2:00:00:0e", 0x88CC, "LLDPDU")
KEPT = (PAUSE, LACP, EAPOL, LLDP)


def frame(src_mac: str, kind: tuple, marker: bytes) -> bytes:
    dst, ethertype, _ = kind
    payload = (b"\x42\x42\x03" if ethertype < 0x600 else b"") + marker
    payload += bytes(max(0, 46 - len(payload)))
    return bytes.fromhex(dst.replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) + ethertype.to_bytes(2, "big") + payload


def reserved_drops(sw) -> int:
    return int((sw.status().get("drops_by_reason") or {}).get("reserved_address", 0) or 0)


def send_each(host, kinds, count: int = 3) -> dict[str, bytes]:
    """`count` frames of each kind from `host`, each kind with its own marker."""
    markers = {}
    for kind in kinds:
        marker = random_marker(kind[2].split()[0].lower())
        host.send_frames([frame(host.mac, kind, marker)] * count)
        markers[kind[2]] = marker
    return markers


def test_link_protocols_stay_on_their_link_and_spanning_tree_is_relayed(four):
    """PAUSE, LACP, 802.1X and LLDP frames from h1 reach neither h2 nor h3; h1's STP BPDUs
    reach both. The status counts each frame kept back under reserved_address, the metrics
    page and the status text too."""
    sw = four.start_switch("--metrics", "127.0.0.1:9431")
    h1, h2, h3 = four["h1"], four["h2"], four["h3"]
    caps = {h.name: h.capture() for h in (h2, h3)}
    kept = send_each(h1, KEPT)
    stp = send_each(h1, [STP])
    for name, cap in caps.items():
        cap.wait_for(lambda f: stp[STP[2]] in f.data, count=3, timeout=3, what=f"h1's STP BPDUs at {name}")
    wait_until(lambda: reserved_drops(sw) >= 3 * len(KEPT), timeout=3, what="12 reserved_address drops")
    for name, cap in caps.items():
        cap.stop(settle=0.3)
        for what, marker in kept.items():
            assert cap.with_marker(marker) == [], f"{what} from h1 was relayed to {name}"
        assert all(f.dst == STP[0] for f in cap.with_marker(stp[STP[2]]))
    assert reserved_drops(sw) == 3 * len(KEPT)
    assert "reserved_address 12" in sw.status_text()
    code, _, body = http_get(four.sw_ns, "http://127.0.0.1:9431/metrics")
    assert code == 200 and re.search(rb'reason="reserved_address"\} 12(\.0)?\n', body), body.decode(errors="replace")[-2000:]


def test_forward_reserved_relays_the_chosen_ones(four):
    """--forward-reserved lldp,0x3: h1's LLDP and 802.1X frames reach h2; PAUSE and LACP
    still do not."""
    sw = four.start_switch("--forward-reserved", "lldp,0x3")
    h1, h2 = four["h1"], four["h2"]
    cap = h2.capture()
    markers = send_each(h1, KEPT)
    for kind in (LLDP, EAPOL):
        cap.wait_for(lambda f: markers[kind[2]] in f.data, count=3, timeout=3, what=f"h1's {kind[2]} at h2")
    wait_until(lambda: reserved_drops(sw) >= 6, timeout=3, what="PAUSE and LACP counted as kept back")
    cap.stop(settle=0.3)
    for kind in (PAUSE, LACP):
        assert cap.with_marker(markers[kind[2]]) == [], f"{kind[2]} relayed"
    assert reserved_drops(sw) == 6


def test_pause_and_lacp_are_refused_in_one_line(four):
    """--forward-reserved lldp,pause (or 2): one line on stderr naming the address, a
    non-zero exit, no control socket."""
    for value, address in (("lldp,pause", "01:80:c2:00:00:01"), ("2", "01:80:c2:00:00:02")):
        code, err, seen = run_refused(four, ["--port", "h1", "--forward-reserved", value], f"reserved-{value}")
        lines = err.strip().splitlines()
        assert code != 0 and not seen, (code, err)
        assert len(lines) == 1 and "--forward-reserved" in lines[0] and address in lines[0], err


def test_config_file_key_and_sighup(four):
    """`forward-reserved lldp` in the configuration file relays LLDP; the file rewritten
    without it and SIGHUP: LLDP stays on its link again."""
    path = four.tmpdir / "reserved.conf"
    path.write_text("port h1\nport h2\nforward-reserved lldp\n")
    sw = four.start_switch("--config", str(path), only=[])
    h1, h2 = four["h1"], four["h2"]
    cap = h2.capture()
    m = send_each(h1, [LLDP], count=1)[LLDP[2]]
    cap.wait_for(lambda f: m in f.data, timeout=3, what="LLDP relayed per the file")
    cap.stop()

    path.write_text("port h1\nport h2\n")
    sw.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration re-read" in sw.log(20000), timeout=5, what="the re-read logged")
    cap = h2.capture()
    m = send_each(h1, [LLDP], count=1)[LLDP[2]]
    wait_until(lambda: reserved_drops(sw) >= 1, timeout=3, what="LLDP kept back after SIGHUP")
    cap.stop(settle=0.3)
    assert cap.with_marker(m) == [], "LLDP still relayed after SIGHUP removed forward-reserved"
