"""Observing the switch (topologies/four-hosts.topo): `snoopswitch capture` writes pcapng files
that tshark reads and decodes (each frame with its port and direction), and `--metrics` serves the Prometheus text format over HTTP
with figures that agree with the status.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import pytest

import kernel_features
from lab import binary_path, http_get, members, port_entry, random_marker, sh, tshark_fields, wait_until

G1, G2, G3 = "239.3.3.1", "239.3.3.2", "239.3.3.3"
PORT = 5090
METRICS = "127.0.0.1:9419"


# ---- capture ----------------------------------------------------------------------------
FIELDS = ("frame.number", "frame.interface_name", "frame.packet_flags_direction", "ip.src", "ip.dst", "igmp.type",
          "udp.dstport", "icmp.type", "pim.type", "icmpv6.type")
# query, v1 report, done, v2 report (RFC 9777, RFC 2710); router discovery (RFC 4286)
MLD_TYPES = {"130", "131", "132", "143", "151", "152", "153"}


def tshark_frames(path) -> list[dict[str, str]]:
    return tshark_fields(path, FIELDS)

def test_capture_files_open_in_tshark_with_igmp_decoded(four):
    """Three captures at once while h1 and h2 join, h4 sends 20 datagrams to h1's group,
    h2 pings h3 and the switch queries: `capture FILE --duration 4` (every port),
    `--control-only` and `--port h1`. Each exits 0 after about 4 s; tshark reads each file
    (as many frames as the client said it wrote); reports and queries decode as IGMP; the
    group's UDP datagrams are in the full capture, once inbound on h4 and once outbound on
    h1 each, in h1's (outbound), not in the control-only one; h2's pings to h3 are in the full
    capture and not in h1's, every frame of which is on interface h1."""
    if shutil.which("tshark") is None:
        pytest.fail("tshark not found (Debian package tshark; scripts/install-deps.sh installs it)")
    sw = four.start_switch("--querier", "--querier-address", "192.0.2.254", "--query-interval", "2",
                           "--query-response-interval", "1")
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    files = {kind: four.tmpdir / f"capture-{kind}.pcapng" for kind in ("all", "control", "h1")}
    extra = {"all": [], "control": ["--control-only"], "h1": ["--port", "h1"]}
    procs = {}
    t0 = time.monotonic()
    for kind, path in files.items():
        procs[kind] = subprocess.Popen([str(binary_path()), "capture", str(path), *extra[kind], "--duration", "4",
                                        "--control", sw.control],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        four._procs.append(procs[kind])
    # The switch logs each capture client it registered.
    wait_until(lambda: sw.log(50000).count("capture started") >= 3, timeout=5,
               what="the switch's log line 'capture started' for each of the 3 captures")

    rx1 = h1.join(G1, PORT)
    h2.join(G2, PORT)
    marker = random_marker("cap")
    sent = h4.send_udp(G1, PORT, count=20, marker=marker)
    assert sorted(rx1.collect(20, timeout=3, marker=marker)) == sorted(sent), "h1 did not receive 20/20"
    assert h2.ping(h3.addr), "h2 cannot ping h3"
    late = [kind for kind, p in procs.items() if p.poll() is not None]
    assert not late, f"captures {late} ended before the traffic did ({time.monotonic() - t0:.1f}s): machine too slow?"

    written = {}
    for kind, p in procs.items():
        try:
            _out, err = p.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            pytest.fail(f"capture {kind} still running 15 s after --duration 4")
        assert p.returncode == 0, f"capture {kind} exited {p.returncode}: {err.strip()}"
        m = re.search(r"(\d+) frames written", err)
        assert m, f"capture {kind} did not say how many frames it wrote: {err!r}"
        written[kind] = int(m.group(1))
    elapsed = time.monotonic() - t0
    assert elapsed >= 4.0, f"the --duration 4 captures ended after {elapsed:.1f}s"

    frames = {kind: tshark_frames(path) for kind, path in files.items()}
    for kind in files:
        assert len(frames[kind]) == written[kind], \
            f"{kind}: tshark read {len(frames[kind])} frames, the client said it wrote {written[kind]}"

    def igmp(kind) -> set[tuple[str, int]]:
        # (source, IGMP type) of the frames decoded as IGMP: 0x11 query, 0x16 v2 / 0x22 v3 report
        return {(f["ip.src"], int(f["igmp.type"].split(",")[0], 0)) for f in frames[kind] if f.get("igmp.type")}

    def udp_to_group(kind) -> list[dict]:
        return [f for f in frames[kind] if f.get("ip.dst") == G1 and f.get("udp.dstport") == str(PORT)]

    def pings(kind) -> list[dict]:
        return [f for f in frames[kind] if f.get("icmp.type") and f["ip.src"] == h2.addr and f["ip.dst"] == h3.addr]

    for kind in ("all", "control", "h1"):
        seen = igmp(kind)
        assert (h1.addr, 0x22) in seen, f"{kind}: no IGMPv3 report from h1 decoded as IGMP: {sorted(seen)}"
        assert ("192.0.2.254", 0x11) in seen, f"{kind}: no IGMP query from the switch decoded as IGMP: {sorted(seen)}"
    assert (h2.addr, 0x22) in igmp("control"), "the control-only capture lacks h2's report"
    def port_and_direction(found: list[dict]) -> list[tuple[str, int]]:
        return sorted((f["frame.interface_name"], int(f["frame.packet_flags_direction"], 0)) for f in found)

    # epb_flags direction: 1 inbound, 2 outbound
    assert port_and_direction(udp_to_group("all")) == [("h1", 2)] * 20 + [("h4", 1)] * 20, \
        f"the full capture's frames of the 20 datagrams: {port_and_direction(udp_to_group('all'))}"
    assert port_and_direction(udp_to_group("h1")) == [("h1", 2)] * 20, \
        f"h1's capture's frames of the 20 datagrams: {port_and_direction(udp_to_group('h1'))}"
    assert {f["frame.interface_name"] for f in frames["h1"]} == {"h1"}, "the --port h1 capture has other ports' frames"
    assert {f["frame.interface_name"] for f in frames["all"]} == {"h1", "h2", "h3", "h4"}
    assert udp_to_group("control") == [], f"the --control-only capture has UDP data: {udp_to_group('control')[:3]}"
    # The querier queries for MLD too: MLD is control, as IGMP and PIM are.
    other = [f for f in frames["control"]
             if not f.get("igmp.type") and not f.get("pim.type") and f.get("icmpv6.type", "").split(",")[0] not in MLD_TYPES]
    assert other == [], f"the --control-only capture has frames that are not IGMP/MLD/PIM: {other[:3]}"
    assert pings("all"), "the full capture lacks h2's pings to h3"
    assert pings("h1") == [], f"the --port h1 capture has h2 -> h3 pings: {pings('h1')[:3]}"
    assert sw.alive()


# ---- metrics ----------------------------------------------------------------------------
def scrape(lab) -> dict[tuple, float]:
    """GET /metrics from inside the switch's namespace; parse it with prometheus_client.
    Returns {(sample name, frozenset(labels)): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    code, headers, body = http_get(lab.sw_ns, f"http://{METRICS}/metrics")
    assert code == 200, f"GET /metrics answered {code}: {body[:200]!r}"
    assert headers.get("Content-Type", "").startswith("text/plain"), headers
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(m: dict, name: str, **labels) -> float:
    key = (name, frozenset(labels.items()))
    assert key in m, f"no sample {name}{labels}; have: {sorted(k for k in m if k[0] == name)}"
    return m[key]


def test_metrics_endpoint_serves_prometheus_text_matching_the_status(four):
    """`--metrics 127.0.0.1:9419 --querier`: GET /metrics (urllib, inside the switch's
    namespace) parses as Prometheus text; after pings and group traffic each port's frame
    and byte counters lie between the status read just before and just after; groups per
    VLAN follow joins (2, then 3), memberships and MAC entries agree with the status,
    querier{role="us",vlan="1"} is 1; GET /other is 404 and the switch keeps serving."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        pytest.fail("prometheus_client not importable (Debian package python3-prometheus-client)")
    sw = four.start_switch("--querier", "--querier-address", "192.0.2.254", "--metrics", METRICS)
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    assert h1.ping(h2.addr) and h3.ping(h4.addr)
    h1.run("ping", "-c", "2", "-i", "0.2", "-s", "1200", h2.addr)
    rx1 = h1.join(G1, PORT)
    h2.join(G2, PORT)
    marker = random_marker("met")
    sent = h4.send_udp(G1, PORT, count=20, marker=marker)
    assert sorted(rx1.collect(20, timeout=3, marker=marker)) == sorted(sent)

    before = sw.status()
    m = scrape(four)
    after = sw.status()
    for p in four.hosts:
        for metric, key in (("snoopswitch_port_receive_frames_total", "rx_frames"),
                            ("snoopswitch_port_transmit_frames_total", "tx_frames"),
                            ("snoopswitch_port_receive_bytes_total", "rx_bytes"),
                            ("snoopswitch_port_transmit_bytes_total", "tx_bytes")):
            v = sample(m, metric, port=p)
            lo, hi = port_entry(before, p)[key], port_entry(after, p)[key]
            assert lo <= v <= hi, f"{metric}{{port={p}}} = {v}, status said {lo} before and {hi} after"
        assert sample(m, "snoopswitch_port_up", port=p) == 1
    assert sample(m, "snoopswitch_port_receive_frames_total", port="h4") >= 20
    assert sample(m, "snoopswitch_port_transmit_frames_total", port="h1") >= 20
    assert sample(m, "snoopswitch_groups", protocol="igmp", vlan="1") == 2
    assert sample(m, "snoopswitch_memberships", protocol="igmp", vlan="1") == 2
    assert sample(m, "snoopswitch_mac_entries") in (len(before["macs"]), len(after["macs"])), \
        f"mac_entries {sample(m, 'snoopswitch_mac_entries')}, status: {len(before['macs'])} / {len(after['macs'])}"
    # h1 pinged h2 with 1,200-byte pings: that flow and its way back are the kernel's (the
    # fast path takes flows with frames of 1,024 bytes and more).
    assert sample(m, "snoopswitch_kernel_flows") in (before["datapath"]["kernel_flows"], after["datapath"]["kernel_flows"])
    fast_path = kernel_features.has("tcx")  # the kernel fast path needs TCX
    if fast_path:
        assert sample(m, "snoopswitch_kernel_flows") >= 2
    assert sample(m, "snoopswitch_querier", protocol="igmp", role="us", vlan="1") == 1
    assert sample(m, "snoopswitch_querier", protocol="igmp", role="other", vlan="1") == 0
    assert sample(m, "snoopswitch_igmp_sent_total", type="general_query") >= 1

    h3.join(G3, PORT)
    assert members(sw.status(), G3) == {"h3"}
    m = scrape(four)
    assert sample(m, "snoopswitch_groups", protocol="igmp", vlan="1") == 3, "groups gauge did not follow a third join"
    assert sample(m, "snoopswitch_memberships", protocol="igmp", vlan="1") == 3

    code, _headers, body = http_get(four.sw_ns, f"http://{METRICS}/other")
    assert code == 404, f"GET /other answered {code}: {body[:200]!r}"
    if shutil.which("curl"):  # a second client, as Prometheus' scraper would be
        r = sh("ip", "netns", "exec", four.sw_ns, "curl", "-sS", "--noproxy", "*", "-o", "/dev/null",
               "-w", "%{http_code}", f"http://{METRICS}/metrics", check=False)
        assert r.stdout.strip() == "200", f"curl GET /metrics: {r.stdout!r} {r.stderr.strip()}"
    assert sw.alive()
    assert scrape(four), "no metrics after the 404"
    if not fast_path:
        kernel_features.require("tcx", "the kernel fast path's flows in the metrics (snoopswitch_kernel_flows >= 2)")
