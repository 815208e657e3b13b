"""The real datapath under ThreadSanitizer (topologies/four-hosts.topo). A switch built with
`swift build --sanitize=thread --scratch-path .build-tsan` runs with two forwarding threads
(and its status worker) while every port carries traffic: unicast through the threads (small
datagrams) and through the kernel fast path (large ones, whose flows the main thread settles,
revalidates and takes back), multicast to joined members, broadcasts. Meanwhile status
requests (JSON and text), SIGHUP with a changed --config file (a port changed, so removed and
added again), `port del`/`port add` and link flaps come from other threads of the test. Any
ThreadSanitizer report fails the test.

Selected by scripts/test.sh's TSan stage, which sets SNOOPSWITCH to the TSan build and
SNOOPSWITCH_TSAN=1; skipped otherwise (a switch without TSan would report nothing).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from lab import binary_path, control_request, wait_until

GROUP = "239.6.6.6"
PORT = 5099
SECONDS = 20

CONFIG = """\
threads 2
kernel-fast-path-frame 1000
port h1
port h2{h2}
port h3
port h4
querier
querier-address 192.0.2.254
query-interval 2
query-response-interval 1
"""

# Each host, in its namespace: datagrams to every other host (small ones through the switch's
# threads, large ones that the kernel fast path takes), to the group and to the broadcast
# address, until killed.
SENDER = """
import socket, sys, time
me, peers, group, port = sys.argv[1], sys.argv[2].split(","), sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.bind((me, 0))
small, large = b"s" * 64, b"L" * 1400
while True:
    for peer in peers:
        for payload in (small, large, large):
            try:
                s.sendto(payload, (peer, port))
            except OSError:
                pass          # the link is down for a moment: a flap
    for dst in (group, "192.0.2.255"):
        try:
            s.sendto(small, (dst, port))
        except OSError:
            pass
    time.sleep(0.01)
"""


def is_tsan_build(path) -> bool:
    with open(path, "rb") as f:
        return b"__tsan_init" in f.read()


def tsan_reports(directory) -> list[str]:
    reports = []
    for p in sorted(directory.glob("tsan.*")):
        text = p.read_text(errors="replace")
        reports += ["WARNING: ThreadSanitizer" + part for part in text.split("WARNING: ThreadSanitizer")[1:]]
    return reports


def test_forwarding_threads_and_control_under_threadsanitizer(four, monkeypatch):
    if os.environ.get("SNOOPSWITCH_TSAN") != "1":
        pytest.skip("needs a switch built with --sanitize=thread: scripts/test.sh's TSan stage sets "
                    "SNOOPSWITCH to it and SNOOPSWITCH_TSAN=1")
    assert is_tsan_build(binary_path()), f"SNOOPSWITCH_TSAN=1 but {binary_path()} is not built with ThreadSanitizer"
    logs = four.tmpdir / "tsan-logs"
    logs.mkdir(exist_ok=True)
    for old in logs.glob("tsan.*"):
        old.unlink()
    # Every report is written (halt_on_error=0: the switch goes on), to files read below.
    monkeypatch.setenv("TSAN_OPTIONS", f"halt_on_error=0:log_path={logs}/tsan:second_deadlock_stack=1")
    config = four.tmpdir / "tsan.conf"
    config.write_text(CONFIG.format(h2=""))
    sw = four.start_switch("--config", str(config), only=[])
    hosts = [four[h] for h in ("h1", "h2", "h3", "h4")]
    receivers = [four["h2"].receiver(GROUP, PORT), four["h4"].receiver(GROUP, PORT)]
    for h in hosts:
        h.receiver(None, PORT)   # unicast datagrams land on a socket (no ICMP port unreachable)
    assert hosts[0].ping(hosts[1].addr, count=2), "h1 cannot reach h2 through the TSan switch"
    senders = [h.popen(sys.executable, "-c", SENDER, h.addr, ",".join(o.addr for o in hosts if o is not h), GROUP,
                       str(PORT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for h in hosts]
    wait_until(lambda: sw.status()["datapath"]["kernel_flows"] > 0, timeout=10, what="flows in the kernel fast path")

    stop = time.monotonic() + SECONDS
    errors: list[str] = []
    counts = {"status": 0, "sighup": 0, "port": 0, "flap": 0}

    def loop(name, body, pause):
        try:
            while time.monotonic() < stop:
                body()
                counts[name] += 1
                time.sleep(pause)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"{name}: {exc!r}")

    def status():
        # TSan makes the switch many times slower: a longer wait than the CLI's 5 s.
        for request in (b"status\n", b"status text\n"):
            answer, error = control_request(sw.control, request, timeout=60)
            assert error is None and answer.endswith(b"\n") and b'"error"' not in answer[:200], \
                f"{request!r}: {error}, {answer[:200]!r}"

    fast_leave = [False]

    def sighup():
        fast_leave[0] = not fast_leave[0]
        config.write_text(CONFIG.format(h2=":fast-leave" if fast_leave[0] else ""))
        sw.send_signal(signal.SIGHUP)

    def port_del_add():
        sw.command("port", "del", "h3", timeout=60)
        time.sleep(0.1)
        sw.command("port", "add", "h3", timeout=60)

    def flap():
        four.set_switch_port_link("h4", False)
        time.sleep(0.1)
        four.set_switch_port_link("h4", True)
        hosts[0].set_link(False)
        time.sleep(0.1)
        hosts[0].set_link(True)

    workers = [threading.Thread(target=loop, args=args) for args in (
        ("status", status, 0.05), ("sighup", sighup, 0.7), ("port", port_del_add, 0.5), ("flap", flap, 0.6))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for p in senders:
        p.kill()
        p.wait()
    reports = tsan_reports(logs)
    assert not reports, f"{len(reports)} ThreadSanitizer reports ({counts}):\n\n" + "\n\n".join(r[:4000] for r in reports[:5])
    assert not errors, f"the control side failed: {errors}"
    assert all(counts.values()), f"not every kind of change happened: {counts}"
    # Still forwarding after all that: h1 reaches h2 again.
    wait_until(lambda: hosts[0].ping(hosts[1].addr), timeout=10, what="h1 reaching h2 after the storm")
    assert sw.alive(), f"the TSan switch died; log:\n{sw.log()}"
    four.stop_switch()
    reports = tsan_reports(logs)
    in_log = sw.log(1 << 20).count("WARNING: ThreadSanitizer")
    summary = f"{len(reports)} ThreadSanitizer reports ({counts})"
    assert not reports and in_log == 0, summary + ":\n\n" + "\n\n".join(r[:4000] for r in reports[:5])
    for r in receivers:
        r.close()
    print(f"under TSan: {counts}")
