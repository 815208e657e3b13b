"""The command line (run inside the lab's switch namespace, never the root's).

A bad flag, a bad port SPEC, a missing interface or a query response interval not below
the query interval: exactly one line on stderr, a non-zero exit (64 for the command line's
fault, 1 for a missing interface: test_messages.py has the convention), nothing started
(no control socket). SIGTERM and SIGINT: clean exit 0, control socket removed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from lab import binary_path, control_request, run_refused, wait_until


BAD = {
    "unknown-flag": ["--port", "h1", "--bogus-flag"],
    "pvid-5000": ["--port", "h1:pvid=5000"],
    "unknown-port-option": ["--port", "h1:bogus"],
    "pvid-not-a-number": ["--port", "h1:pvid=abc"],
    "tagged-5000": ["--port", "h1:tagged=10,5000"],
    "missing-interface": ["--port", "h1", "--port", "nosuch0"],
    "qri-above-qi": ["--port", "h1", "--query-interval", "5", "--query-response-interval", "10"],
    "qri-equal-qi": ["--port", "h1", "--query-interval", "5", "--query-response-interval", "5"],
    "igmp-version-4": ["--port", "h1", "--igmp-version", "4"],
    "flag-without-value": ["--port", "h1", "--query-interval"],
    "negative-query-interval": ["--port", "h1", "--query-interval", "-1"],
    "metrics-without-port": ["--port", "h1", "--metrics", "127.0.0.1"],
    "loopback": ["--port", "h1", "--port", "lo"],
    "option-twice": ["--port", "h1:router:router"],
}
RUNTIME = {"missing-interface"}   # exit 1; the rest are the command line's fault, exit 64


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_command_line_is_refused_with_one_line(four, case):
    """Each bad command line exits non-zero, prints exactly one line on stderr, and
    never creates the control socket."""
    rc, err, seen = run_refused(four, BAD[case], case)
    assert rc == (1 if case in RUNTIME else 64), f"exit code {rc} for {BAD[case]}: {err}"
    lines = err.rstrip("\n").split("\n")
    assert err.strip() and len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert not seen, "the control socket was created although the command line was bad"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_cleanly_and_removes_the_socket(four, sig):
    """SIGTERM or SIGINT: the switch exits 0 and removes its control socket."""
    sw = four.start_switch()
    assert os.path.exists(sw.control)
    rc = sw.stop(sig=sig, timeout=5)
    assert rc == 0, f"exit code {rc} after {sig.name}; log:\n{sw.log()}"
    assert not os.path.exists(sw.control), "control socket left behind"


def test_status_text_has_tables(four):
    """`snoopswitch status` (no --json) prints tables headed PORT, GROUP and VLAN, and
    lists the ports and a joined group."""
    sw = four.start_switch()
    four["h1"].join("239.7.7.7", 5060)
    text = sw.status_text()
    for word in ("PORT", "GROUP", "VLAN"):
        assert word in text, f"{word!r} not in status output:\n{text}"
    for name in ("h1", "h2", "h3", "h4", "239.7.7.7"):
        assert name in text, f"{name!r} not in status output:\n{text}"


def test_the_switch_makes_the_status_tables_itself(four):
    """`snoopswitch status` asks the switch for its tables (`status text`), which it makes
    from the same copy of its state as the JSON document, instead of decoding the JSON
    itself: on the socket, `status text` answers the tables the command prints, `status`
    the JSON, and `status junk` one error line. Against a switch that answers `status text`
    with its JSON (one from before), the command still prints the tables."""
    sw = four.start_switch()
    four["h1"].join("239.7.7.9", 5062)
    control = sw.control
    text = control_request(control, b"status text\n")[0].decode()
    assert text.startswith("Datapath\n  threads:") and "239.7.7.9" in text and "Groups\n" in text, text
    printed = sw.status_text()
    strip_ages = lambda t: re.sub(r"\d+\.\ds", "", t)   # ages and timers move between the two asks
    assert strip_ages(printed.strip()) == strip_ages(text.strip()), f"printed:\n{printed}\nanswered:\n{text}"
    assert json.loads(control_request(control, b"status\n")[0].decode())["groups"], "no groups in the JSON status"
    assert json.loads(control_request(control, b"status junk\n")[0]) == {"error": "usage: status [text]"}
    # A switch from before `status text`: a socket that answers every request with the JSON.
    document = control_request(control, b"status\n")[0].decode()
    old = os.path.join(os.path.dirname(control), "old-switch.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(old)
    server.listen(1)
    server.settimeout(10)

    def answer_once():
        client, _ = server.accept()
        with client:
            client.recv(65536)
            client.sendall(document.encode() + b"\n")

    answering = threading.Thread(target=answer_once)
    answering.start()
    try:
        r = subprocess.run(["ip", "netns", "exec", four.sw_ns, str(binary_path()), "status", "--control", old],
                           capture_output=True, text=True, timeout=10)
    finally:
        answering.join(timeout=10)
        server.close()
        os.unlink(old)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Datapath\n  threads:") and "239.7.7.9" in r.stdout, r.stdout


def test_status_json_has_the_documented_shape(four):
    """`snoopswitch status --json` has ports, macs, groups, router_ports, queriers and igmp
    counters, each entry with every documented key (null where there is no value)."""
    sw = four.start_switch("--querier", "--querier-address", "192.0.2.254", suffixes={"h4": ":router"})
    h1 = four["h1"]
    assert h1.ping(four["h2"].addr)
    h1.join("239.7.7.8", 5061)
    st = sw.wait_status(lambda s: s if s.get("macs") and s.get("queriers") else None, timeout=3,
                        what="status with MAC entries and a querier")
    for key in ("ports", "macs", "groups", "router_ports", "queriers", "igmp"):
        assert key in st, f"no {key!r} in status: {sorted(st)}"
    assert {p["name"] for p in st["ports"]} == {"h1", "h2", "h3", "h4"}
    for p in st["ports"]:
        for key in ("name", "ifindex", "link", "pvid", "tagged", "router", "fast_leave", "rx_frames", "tx_frames", "drops"):
            assert key in p, f"port {p.get('name')} lacks {key!r}: {p}"
        assert p["link"] == "up" and p["pvid"] == 1 and p["tagged"] == []
        assert p["router"] == ("static" if p["name"] == "h4" else None), p
    for m in st["macs"]:
        assert set(m) >= {"vlan", "mac", "port", "age_seconds"}, m
    for g in st["groups"]:
        assert set(g) >= {"vlan", "group", "members"}, g
        for m in g["members"]:
            assert set(m) >= {"port", "expires_in", "version"}, m
    assert st["router_ports"], "no router port listed although h4 is :router"
    for r in st["router_ports"]:
        assert set(r) >= {"vlan", "port", "kind", "reason", "expires_in"}, f"router port entry lacks keys: {r}"
    for q in st["queriers"]:
        assert set(q) >= {"vlan", "role", "address", "next_query_in", "other_querier_expires_in"}, \
            f"querier entry lacks keys: {q}"
    assert any(q["vlan"] == 1 and q["role"] == "us" for q in st["queriers"]), st["queriers"]
    for key in ("received", "sent", "errors"):
        assert key in st["igmp"], st["igmp"]
