"""The configuration file: `snoopswitch run --config FILE` (topologies/four-hosts.topo).

The file holds the flags of `run` without their dashes, one a line. Flags on the command
line override it (a `--port`/`--vlan` replaces the file's of the same name, other flags
take the command line's value). A bad file: one stderr line naming FILE and the line, a
non-zero exit, no control socket. SIGHUP re-reads the file and applies the difference; a
broken file on SIGHUP leaves the running switch as it was.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from lab import binary_path, port_entry, querier, random_marker, run_refused, udp_frame, wait_until

G = "239.4.4.4"
PORT = 5080

BASE_FILE = """\
# snoopswitch test configuration
port h1
port h2:fast-leave
port h3:router
port h4:pvid=10:tagged=20:query-guard

querier                       # with election
querier-address 192.0.2.254
query-interval 5
query-response-interval 2
vlan 1:igmp-version=2
vlan 20:no-querier
"""

# The same switch as BASE_FILE, as flags.
BASE_FLAGS = [
    "--port", "h1", "--port", "h2:fast-leave", "--port", "h3:router", "--port", "h4:pvid=10:tagged=20:query-guard",
    "--querier", "--querier-address", "192.0.2.254", "--query-interval", "5", "--query-response-interval", "2",
    "--vlan", "1:igmp-version=2", "--vlan", "20:no-querier",
]


def write_config(lab, text: str, name: str = "snoopswitch.conf") -> str:
    path = lab.tmpdir / name
    path.write_text(text)
    return str(path)


def port_view(status: dict) -> list[tuple]:
    """What a port's configuration shows in the status: name, pvid, tagged, router, fast_leave, query_guard."""
    return [(p["name"], p["pvid"], tuple(p["tagged"]), p["router"], p["fast_leave"], p.get("query_guard"))
            for p in status["ports"]]


def querier_view(status: dict) -> list[tuple]:
    return sorted((q["vlan"], q["role"], q["address"], q["version"]) for q in status["queriers"] if q["protocol"] == "igmp")


def next_query_samples(sw, seconds: float) -> list[float]:
    """VLAN 1's next_query_in, read every 0.1 s for `seconds`."""
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        v = querier(sw.status()).get("next_query_in")
        if v is not None:
            out.append(v)
        time.sleep(0.1)
    return out


def test_switch_runs_from_the_file_alone(four):
    """`run --config FILE` without flags: status shows the file's four ports with their
    pvid, tagged VLANs, router, fast-leave and query-guard settings, the querier settings
    (VLAN 1: us, 192.0.2.254, IGMPv2; VLAN 20: none) and a query interval of 5 s (after the
    startup queries the next query is at most 5 s away, and close to it); the ports forward."""
    path = write_config(four, BASE_FILE)
    sw = four.start_switch("--config", path, only=[])
    st = sw.status()
    assert port_view(st) == [
        ("h1", 1, (), None, False, False),
        ("h2", 1, (), None, True, False),
        ("h3", 1, (), "static", False, False),
        ("h4", 10, (20,), None, False, True),
    ], port_view(st)
    qv = {q[0]: q for q in querier_view(st)}
    assert qv[1] == (1, "us", "192.0.2.254", 2), f"VLAN 1 querier: {qv.get(1)}"
    assert qv[20][1] == "none", f"VLAN 20 has no-querier in the file but shows {qv.get(20)}"
    samples = next_query_samples(sw, 3.0)
    assert samples and max(samples) <= 5.05, f"next query further away than the file's query-interval 5: {samples}"
    assert max(samples) > 4.0, f"no query interval near 5 s seen after the startup queries: {samples}"
    h1, h2 = four["h1"], four["h2"]
    assert h1.ping(h2.addr), "h1 cannot ping h2 on a switch configured from a file"
    rx = h1.join(G, PORT)
    marker = random_marker("cfg")
    sent = h2.send_udp(G, PORT, count=20, marker=marker)
    assert sorted(rx.collect(20, timeout=3, marker=marker)) == sorted(sent)


def test_command_line_overrides_the_file(four):
    """With the same file, `--query-interval 7` wins over the file's 5 (the next query
    comes up to 7 s away) and `--port h1:fast-leave` replaces the file's `port h1` (one
    port h1, fast-leave); everything else stays as the file says."""
    path = write_config(four, BASE_FILE)
    sw = four.start_switch("--config", path, "--query-interval", "7", "--port", "h1:fast-leave", only=[])
    st = sw.status()
    names = [p["name"] for p in st["ports"]]
    assert sorted(names) == ["h1", "h2", "h3", "h4"], f"ports: {names}"
    assert port_entry(st, "h1")["fast_leave"] is True, f"--port h1:fast-leave did not win: {port_entry(st, 'h1')}"
    assert port_entry(st, "h3")["router"] == "static" and port_entry(st, "h4")["pvid"] == 10, port_view(st)
    assert querier_view(st)[0] == (1, "us", "192.0.2.254", 2), querier_view(st)
    sw.wait_status(lambda s: (querier(s).get("next_query_in") or 0) > 5.5, timeout=6,
                   what="a next query more than 5.5 s away (query interval 7 from the command line, not 5 from the file)")
    samples = next_query_samples(sw, 1.0)
    assert max(samples) <= 7.05, f"next query further away than --query-interval 7: {samples}"


def test_file_and_flags_give_the_same_switch(four):
    """Round trip: the switch started from flags and from the equivalent file shows the same
    ports (name, pvid, tagged, router, fast_leave, query_guard) and querier settings."""
    sw = four.start_switch(*BASE_FLAGS, only=[])
    from_flags = (port_view(sw.status()), querier_view(sw.status()))
    four.stop_switch()
    path = write_config(four, BASE_FILE)
    sw = four.start_switch("--config", path, only=[])
    from_file = (port_view(sw.status()), querier_view(sw.status()))
    assert from_file == from_flags, f"from flags: {from_flags}\nfrom file:  {from_file}"


# line 3 of the file (lines 1-2: a comment and a good port); the lines that the error may name
BAD_LINES = {
    "unknown-key": ("bogus-setting 1", (3,)),
    "bad-value": ("query-interval abc", (3,)),
    "bad-port-spec": ("port h3:bogus", (3,)),
    "flag-with-dashes": ("--querier", (3,)),
    "missing-value": ("query-interval", (3,)),
    "duplicate-port": ("port h1", (2, 3)),
}


@pytest.mark.parametrize("case", list(BAD_LINES), ids=list(BAD_LINES))
def test_bad_file_is_refused_with_one_line_naming_file_and_line(four, case):
    """A file with a bad line 3 (unknown key, bad value, bad port spec, a flag written with
    dashes, a missing value, a port given twice): exit non-zero, exactly one stderr line
    that names FILE:LINE, no control socket."""
    bad, lines_ok = BAD_LINES[case]
    path = write_config(four, f"# a bad configuration\nport h1\n{bad}\nport h2\n", f"bad-{case}.conf")
    rc, err, seen = run_refused(four, ["--config", path], case)
    assert rc != 0, f"exit code 0 for a file with line 3 = {bad!r}"
    lines = err.rstrip("\n").split("\n")
    assert err.strip() and len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    named = re.search(re.escape(path) + r":(\d+):", err)
    assert named and int(named.group(1)) in lines_ok, \
        f"the error does not name {path}:{'/'.join(map(str, lines_ok))}: {err.strip()}"
    assert not seen, "the control socket was created although the file was bad"


def test_sighup_applies_the_edited_file_and_survives_a_broken_one(four):
    """SIGHUP after editing the file (h3 removed, h4 added, h2 made fast-leave): status
    shows the new ports, h4 pings h1, a broadcast no longer reaches h3. SIGHUP with a
    broken file: the switch keeps running with its ports unchanged (and logs FILE:LINE);
    a later SIGHUP with a good file applies again."""
    path = write_config(four, "port h1\nport h2\nport h3\n")
    sw = four.start_switch("--config", path, only=[])
    h1, h2, h3, h4 = (four[n] for n in ("h1", "h2", "h3", "h4"))
    assert [p["name"] for p in sw.status()["ports"]] == ["h1", "h2", "h3"]
    assert h3.ping(h1.addr)

    write_config(four, "port h1\nport h2:fast-leave\nport h4\n")
    sw.send_signal(signal.SIGHUP)
    st = sw.wait_status(lambda s: s if sorted(p["name"] for p in s["ports"]) == ["h1", "h2", "h4"] else None,
                        timeout=5, what="ports h1, h2, h4 after SIGHUP")
    assert port_entry(st, "h2")["fast_leave"] is True, f"h2 not changed to fast-leave: {port_entry(st, 'h2')}"
    sw.wait_status(lambda s: port_entry(s, "h4")["link"] == "up", timeout=3, what="h4 up")
    assert h4.ping(h1.addr), "h4 (added by SIGHUP) cannot ping h1"
    cap3, cap2 = h3.capture(), h2.capture()
    marker = random_marker("bcast")
    h1.send_frames([udp_frame(h1.mac, "ff:ff:ff:ff:ff:ff", h1.addr, "192.0.2.255", 9, marker)])
    cap2.wait_for(lambda f: marker in f.data, timeout=3, what="h1's broadcast")
    cap3.stop(settle=0.2)
    assert cap3.with_marker(marker) == [], "h3 was removed from the file but still gets broadcasts"

    before = [(p["name"], p["fast_leave"]) for p in sw.status()["ports"]]
    write_config(four, "port h1\nport h2\nbogus-setting 1\nport h3\n")
    sw.send_signal(signal.SIGHUP)
    wait_until(lambda: re.search(re.escape(path) + r":3:", sw.log(20000)), timeout=5,
               what=f"the log naming {path}:3 after SIGHUP with a broken file")
    assert sw.alive(), f"the switch exited after SIGHUP with a broken file; log:\n{sw.log()}"
    after = [(p["name"], p["fast_leave"]) for p in sw.status()["ports"]]
    assert after == before, f"a broken file changed the ports: {before} -> {after}"
    assert h4.ping(h2.addr), "h4 cannot ping h2 after the broken SIGHUP"

    write_config(four, "port h1\nport h2\nport h3\n")
    sw.send_signal(signal.SIGHUP)
    sw.wait_status(lambda s: sorted(p["name"] for p in s["ports"]) == ["h1", "h2", "h3"], timeout=5,
                   what="ports h1, h2, h3 after a SIGHUP with a good file again")
    sw.wait_status(lambda s: port_entry(s, "h3")["link"] == "up", timeout=3, what="h3 up")
    assert h3.ping(h1.addr), "h3 (added back) cannot ping h1"
