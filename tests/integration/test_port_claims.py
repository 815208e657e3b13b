"""One interface, one switch (topologies/four-hosts.topo): a switch claims the interfaces it
serves (an flock()ed file /run/snoopswitch/ports/<netns inode>-<ifindex> with its pid and
control socket), so a second `snoopswitch run` on one of them refuses to start with one line
naming the first (exit 1), and `port add` of a claimed interface is answered with an error;
`--share-ports` starts beside it; a claim dies with its switch, even by SIGKILL, and goes with
`port del`.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

import kernel_features
from kernel_features import needs
from lab import binary_path, port_entry, random_marker, run_refused, wait_until

G1 = "239.6.7.1"
PORT = 5071
CLAIMS = Path("/run/snoopswitch/ports")


class SecondSwitch:
    """Another `snoopswitch run` in the lab's switch namespace, with its own control socket
    and log (killed with the test's processes if the test leaves it running)."""

    def __init__(self, lab, tag: str, *args: str):
        self.control = str(lab.tmpdir / f"second-{tag}.sock")
        self.log_path = lab.tmpdir / f"second-{tag}.log"
        args = list(args)
        args += kernel_features.switch_flags(args)
        self.cmd = [str(binary_path()), "run", *args, "--control", self.control]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(["ip", "netns", "exec", lab.sw_ns, *self.cmd],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        lab._procs.append(self.proc)

    def log(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace")

    def wait_ready(self, timeout: float = 15.0) -> "SecondSwitch":
        def ready():
            assert self.proc.poll() is None, \
                f"`{' '.join(self.cmd)}` exited {self.proc.returncode}; log:\n{self.log()}"
            return os.path.exists(self.control)
        wait_until(ready, timeout=timeout, what=f"the control socket of `{' '.join(self.cmd)}`")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=10)


def claim_file(lab, interface: str) -> Path:
    """The claim of `interface` in the lab's switch namespace."""
    namespace = os.stat(f"/run/netns/{lab.sw_ns}").st_ino
    return CLAIMS / f"{namespace}-{lab.switch_ifindex(interface)}"


def claim_of(lab, interface: str) -> dict[str, str]:
    text = claim_file(lab, interface).read_text()
    return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)


def assert_refused_naming(code: int, err: str, first, interface: str) -> None:
    lines = err.strip().splitlines()
    assert code == 1, f"the second switch exited {code}, not 1 (a runtime failure): {err.strip()}"
    assert len(lines) == 1, f"the refusal is not one line:\n{err}"
    line = lines[0]
    assert f"interface {interface}" in line, f"the refusal does not name interface {interface}: {line}"
    assert f"pid {first.proc.pid}" in line, f"the refusal does not name the first switch's pid {first.proc.pid}: {line}"
    assert first.control in line, f"the refusal does not name the first switch's control socket {first.control}: {line}"


def delivers(lab, sender: str, receiver: str, count: int = 10) -> list[bytes]:
    """`receiver` joins G1, `sender` sends `count` datagrams to it: what the receiver got."""
    rx = lab[receiver].join(G1, PORT)
    marker = random_marker("claim")
    lab[sender].send_udp(G1, PORT, count=count, marker=marker)
    got = rx.collect(count, timeout=3, marker=marker, settle=0.5)
    rx.close()
    return got


def test_a_second_switch_on_a_served_interface_is_refused_and_the_first_keeps_forwarding(four):
    """A switch on h1..h4; `snoopswitch run --port h3 --port h1` beside it (same namespace,
    its own control socket) exits 1 before making its control socket, with one line naming
    interface h3 (its first port), the first switch's pid and control socket. The claim file
    says the same. The first switch still forwards: 10/10 datagrams from h4 reach h1, once
    each (a second switch would double them), and h2 pings h3."""
    sw = four.start_switch()
    claim = claim_of(four, "h3")
    assert claim.get("pid") == str(sw.proc.pid), f"claim of h3: {claim}, the switch's pid is {sw.proc.pid}"
    assert claim.get("control") == sw.control, f"claim of h3: {claim}, the switch's control socket is {sw.control}"

    code, err, socket_seen = run_refused(four, ["--port", "h3", "--port", "h1", *kernel_features.switch_flags([])], "second")
    assert_refused_naming(code, err, sw, "h3")
    assert not socket_seen, "the refused switch made its control socket"

    assert sw.alive()
    got = delivers(four, "h4", "h1")
    assert len(got) == 10 and len(set(got)) == 10, f"h1 got {len(got)} datagrams for 10 sent ({len(set(got))} distinct)"
    assert four["h2"].ping(four["h3"].addr), "h2 cannot ping h3 after the refused start"
    assert claim_of(four, "h3").get("pid") == str(sw.proc.pid), "the refused switch changed the claim"


def test_share_ports_starts_beside_and_claims_nothing_it_shares(four):
    """`--share-ports`: the second switch on h1 (and h2, which nobody else serves: stopped
    after `port del h2` on the first) starts, warns that h1 is another switch's, claims h2;
    a third without the flag on h1 is still refused naming the first switch, on h2 naming the
    second. The first switch keeps running."""
    sw = four.start_switch()
    assert sw.command("port", "del", "h2").returncode == 0
    second = SecondSwitch(four, "share", "--port", "h1", "--port", "h2", "--share-ports").wait_ready()
    wait_until(lambda: "another snoopswitch" in second.log(), timeout=5,
               what="the sharing switch's warning about h1")
    warning = next(line for line in second.log().splitlines() if "another snoopswitch" in line)
    assert f"pid {sw.proc.pid}" in warning and "--share-ports" in warning, warning
    assert claim_of(four, "h1").get("pid") == str(sw.proc.pid), "the sharing switch took the first one's claim"
    assert claim_of(four, "h2").get("pid") == str(second.proc.pid), "the sharing switch did not claim h2, which was free"

    code, err, _ = run_refused(four, ["--port", "h1"], "third-h1")
    assert_refused_naming(code, err, sw, "h1")
    code, err, _ = run_refused(four, ["--port", "h2"], "third-h2")
    assert_refused_naming(code, err, second, "h2")
    assert second.stop() == 0
    assert sw.alive()


def test_claims_die_with_their_switch_even_by_sigkill(four):
    """The first switch killed with SIGKILL leaves its claim files, unlocked: a new switch on
    the same interfaces starts, takes them over and forwards. Stopped with SIGTERM, a switch
    removes its claim files."""
    sw = four.start_switch()
    stale = claim_file(four, "h1")
    assert stale.exists()
    sw.stop(signal.SIGKILL)
    assert sw.proc.returncode == -signal.SIGKILL
    assert stale.exists(), "a killed switch cannot remove its claim file (the test means to see it taken over)"
    os.unlink(sw.control)  # left by the killed switch: the next one's readiness is its new socket

    sw2 = four.start_switch()
    assert claim_of(four, "h1").get("pid") == str(sw2.proc.pid), "the new switch did not take over h1's claim"
    got = delivers(four, "h4", "h1")
    assert len(got) == 10, f"h1 got {len(got)}/10 datagrams through the switch started after a SIGKILL"

    files = [claim_file(four, name) for name in ("h1", "h2", "h3", "h4")]
    assert sw2.stop() == 0
    left = [str(f) for f in files if f.exists()]
    assert not left, f"claim files left after SIGTERM: {left}"


def test_port_add_of_a_claimed_interface_is_refused_and_port_del_releases_the_claim(four):
    """The first switch runs h1..h3; a second claims h4. `port add h4` on the first is
    answered with an error naming the second (pid, control socket), exit 1, and the first keeps
    running without h4. `port del h4` on the second releases it: `port add h4` on the first
    then succeeds, and h4's frames reach h1 through it."""
    sw = four.start_switch(only=["h1", "h2", "h3"])
    second = SecondSwitch(four, "h4", "--port", "h4").wait_ready()
    r = sw.command("port", "add", "h4")
    assert r.returncode == 1, f"port add h4 (the second switch's) exited {r.returncode}: {r.stderr.strip()}"
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert "interface h4" in line and f"pid {second.proc.pid}" in line and second.control in line, \
        f"port add h4 did not name the second switch (pid {second.proc.pid}, {second.control}): {line}"
    assert sw.alive()
    assert "h4" not in [p["name"] for p in sw.status()["ports"]], "the refused port is in the first switch's status"

    r = subprocess.run([str(binary_path()), "port", "del", "h4", "--control", second.control],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert not claim_file(four, "h4").exists(), "port del h4 left its claim file"
    r = sw.command("port", "add", "h4")
    assert r.returncode == 0, f"port add h4 after the second switch let it go: {r.stderr.strip()}"
    assert claim_of(four, "h4").get("pid") == str(sw.proc.pid)
    sw.wait_status(lambda st: port_entry(st, "h4")["link"] == "up", what="h4 up on the first switch")
    got = delivers(four, "h4", "h1")
    assert len(got) == 10, f"h1 got {len(got)}/10 datagrams from h4 added at run time"
    assert second.stop() == 0


@needs("tun", "TAP ports")
def test_a_tap_name_another_switch_made_is_refused(four):
    """TAP ports take no claim: the switch creates the device, and a second switch asking
    for the same TAP name is refused by the kernel (TUNSETIFF: busy): exit 1, one line naming
    the TAP, and the first keeps its TAP port."""
    sw = four.start_switch("--port", "tclaim0:tap")
    code, err, socket_seen = run_refused(four, ["--port", "tclaim0:tap"], "tap")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "tclaim0" in lines[0], f"exit {code}: {err.strip()}"
    assert not socket_seen
    assert sw.alive() and "tclaim0" in [p["name"] for p in sw.status()["ports"]]
