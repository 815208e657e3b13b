"""What the command line says when it refuses, and how it exits (topologies/four-hosts.topo).

Every refusal is one line on stderr naming the flag, SPEC or FILE:LINE at fault. The exit
status says whose fault it was (README, Exit status):

  0   done (the switch: stopped by SIGTERM or SIGINT)
  1   a runtime failure: an interface or group missing, a socket that cannot be opened, the
      switch unreachable, the switch refused the request
  64  EX_USAGE: a bad flag, value, SPEC or configuration file line; nothing is started
  66  EX_NOINPUT: the configuration file cannot be read (missing, not permitted, a directory)
"""

from __future__ import annotations

import re
import signal
import subprocess

import pytest

from lab import binary_path, run_refused, sh, unique_lab_name, delete_netns, wait_until

USAGE, NO_INPUT, FAILURE = 64, 66, 1


def one_line(err: str) -> str:
    lines = err.rstrip("\n").split("\n")
    assert err.strip() and len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert lines[0].startswith("snoopswitch: "), lines[0]
    return lines[0]


def command(lab, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
    """`snoopswitch ARGS` in the lab's switch namespace."""
    return subprocess.run(["ip", "netns", "exec", lab.sw_ns, str(binary_path()), *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


# run ARGS: refused before anything starts, exit 64, the one line naming the fault.
RUN_USAGE = {
    "bad-flag": (["--port", "h1", "--bogus-flag"], "Unknown option '--bogus-flag'"),
    "query-interval-negative": (["--port", "h1", "--query-interval", "-1"],
                                "--query-interval '-1' is not a positive number of seconds"),
    "query-response-interval-negative": (["--port", "h1", "--query-response-interval", "-2"],
                                         "--query-response-interval '-2' is not a positive number of seconds"),
    "last-member-query-interval-negative": (["--port", "h1", "--last-member-query-interval", "-0.5"],
                                            "--last-member-query-interval '-0.5' is not a positive number of seconds"),
    "fdb-aging-negative": (["--port", "h1", "--fdb-aging", "-5"], "--fdb-aging '-5' is not a positive number of seconds"),
    "robustness-negative": (["--port", "h1", "--robustness", "-1"], "--robustness must be from 1 to 7, not -1"),
    "last-member-query-count-negative": (["--port", "h1", "--last-member-query-count", "-1"],
                                         "--last-member-query-count must be at least 1"),
    "threads-negative": (["--port", "h1", "--threads", "-1"], "--threads takes 1 to 64, not -1"),
    "max-macs-negative": (["--port", "h1", "--max-macs", "-1"], "--max-macs must be at least 1, not -1"),
    "ring-size-negative": (["--port", "h1", "--ring-size", "-2"], "--ring-size takes 0 to 262144 KiB, not -2"),
    "metrics-without-port": (["--port", "h1", "--metrics", "127.0.0.1"], "--metrics '127.0.0.1' is not ADDRESS:PORT"),
    "metrics-not-ipv4": (["--port", "h1", "--metrics", "localhost:9100"], "'localhost' is not an IPv4 address"),
    "bad-spec": (["--port", "h1:bogus"], "bad port spec 'h1:bogus': unknown option 'bogus'"),
    "spec-option-twice": (["--port", "h1:router:router"], "bad port spec 'h1:router:router': router given twice"),
    "spec-pvid-twice": (["--port", "h1:pvid=1:pvid=2"], "bad port spec 'h1:pvid=1:pvid=2': pvid given twice"),
    "loopback": (["--port", "h1", "--port", "lo"],
                 "bad port spec 'lo': lo is the loopback interface: loopback cannot be a switch port"),
    "vlan-option-twice": (["--port", "h1", "--vlan", "1:querier:querier"],
                          "bad VLAN spec '1:querier:querier': querier given twice"),
    "vlan-contradiction": (["--port", "h1", "--vlan", "1:mld-querier:no-mld-querier"],
                           "bad VLAN spec '1:mld-querier:no-mld-querier': mld-querier and no-mld-querier both given"),
}


@pytest.mark.parametrize("case", list(RUN_USAGE), ids=list(RUN_USAGE))
def test_usage_errors_of_run_exit_64_in_one_line(four, case):
    """A bad flag, value or SPEC: exit 64, one line naming it, nothing logged before it, no
    control socket. A negative number is the value of its flag, not a flag of its own."""
    args, expected = RUN_USAGE[case]
    rc, err, seen = run_refused(four, args, case)
    line = one_line(err)
    assert expected in line, line
    assert rc == USAGE, f"exit {rc} for {args}: {line}"
    assert not seen, "the control socket was created although the command line was bad"


def test_a_renamed_loopback_interface_is_no_port_either():
    """The loopback interface renamed (lo7) is refused as lo is: by its flags, not its name."""
    ns = unique_lab_name() + "-lo"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "name", "lo7")
        r = subprocess.run(["ip", "netns", "exec", ns, str(binary_path()), "run", "--port", "lo7",
                            "--control", "/nonexistent-dir/snoopswitch.sock"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    finally:
        delete_netns(ns)
    line = one_line(r.stderr)
    assert "bad port spec 'lo7': lo7 is the loopback interface" in line, line
    assert r.returncode == USAGE, r.returncode


def test_the_configuration_file(four):
    """A bad line of the file: 64, naming FILE:LINE. A file that cannot be read: 66, naming
    FILE and the system's reason."""
    bad = four.tmpdir / "bad.conf"
    bad.write_text("port h1\nport h2:router:router\n")
    rc, err, seen = run_refused(four, ["--config", str(bad)], "bad-file")
    line = one_line(err)
    assert f"{bad}:2: bad port spec 'h2:router:router': router given twice" in line, line
    assert rc == USAGE and not seen, (rc, seen)

    negative = four.tmpdir / "negative.conf"
    negative.write_text("port h1\nquery-interval -1\n")
    rc, err, _ = run_refused(four, ["--config", str(negative)], "negative")
    line = one_line(err)
    assert f"{negative}:2: --query-interval '-1' is not a positive number of seconds" in line, line
    assert rc == USAGE, rc

    missing = four.tmpdir / "missing.conf"
    rc, err, seen = run_refused(four, ["--config", str(missing)], "missing-file")
    line = one_line(err)
    assert line == f"snoopswitch: {missing}: cannot read the configuration file: No such file or directory", line
    assert rc == NO_INPUT and not seen, (rc, seen)

    rc, err, _ = run_refused(four, ["--config", str(four.tmpdir)], "directory")
    line = one_line(err)
    assert line == f"snoopswitch: {four.tmpdir}: cannot read the configuration file: Is a directory", line
    assert rc == NO_INPUT, rc


def test_runtime_failures_exit_1(four):
    """A missing interface, and every client command without a switch to ask: exit 1, one
    line. With a switch: what it refuses exits 1; what the command line can tell is wrong
    (SPEC, group, VLAN, flag) exits 64 before asking."""
    rc, err, seen = run_refused(four, ["--port", "h1", "--port", "nosuch0"], "missing-interface")
    assert "interface nosuch0 does not exist" in one_line(err)
    assert rc == FAILURE and not seen, (rc, seen)

    nowhere = str(four.tmpdir / "no-switch.sock")
    for args in (["status"], ["status", "--json"], ["port", "add", "h1"], ["port", "del", "h1"], ["fdb", "flush"],
                 ["mdb", "flush"], ["mdb", "add", "h1", "239.1.2.3"], ["mdb", "del", "h1", "239.1.2.3"]):
        r = command(four, *args, "--control", nowhere)
        line = one_line(r.stderr)
        assert f"{nowhere}: cannot reach snoopswitch (is it running?)" in line, (args, line)
        assert r.returncode == FAILURE, (args, r.returncode, line)

    sw = four.start_switch()
    for args, expected in ((["port", "del", "nosuch0"], "nosuch0"),
                           (["port", "add", "h1"], "h1"),
                           (["mdb", "add", "nosuch0", "239.1.2.3"], "nosuch0")):
        r = command(four, *args, "--control", sw.control)
        line = one_line(r.stderr)
        assert expected in line, (args, line)
        assert r.returncode == FAILURE, (args, r.returncode, line)

    for args, expected in ((["port", "add", "h9:bogus"], "bad port spec 'h9:bogus'"),
                           (["port", "add", "h9:fast-leave:fast-leave"], "fast-leave given twice"),
                           (["port", "add", "lo"], "loopback cannot be a switch port"),
                           (["mdb", "add", "h1", "10.0.0.1"], "'10.0.0.1' is not a multicast group"),
                           (["mdb", "add", "h1", "239.1.2.3", "--vlan", "-1"], "--vlan -1 is not a VLAN from 1 to 4094"),
                           (["mdb", "flush", "--vlan", "5000"], "--vlan 5000 is not a VLAN from 1 to 4094"),
                           (["status", "--bogus"], "Unknown option '--bogus'")):
        r = command(four, *args, "--control", sw.control)
        line = one_line(r.stderr)
        assert expected in line, (args, line)
        assert r.returncode == USAGE, (args, r.returncode, line)
    assert sw.alive()


def test_capture_failures(four):
    """capture: no switch to ask exits 1 in one line; so does a file it cannot create, named
    once with the system's reason."""
    r = command(four, "capture", str(four.tmpdir / "x.pcap"), "--control", str(four.tmpdir / "no-switch.sock"))
    assert "cannot reach snoopswitch" in one_line(r.stderr)
    assert r.returncode == FAILURE, r.returncode
    sw = four.start_switch()
    r = command(four, "capture", "/nonexistent/x.pcap", "--count", "1", "--duration", "2", "--control", sw.control)
    line = one_line(r.stderr)
    assert line == "snoopswitch: /nonexistent/x.pcap: No such file or directory", line
    assert r.returncode == FAILURE, r.returncode


def test_sighup_with_a_bad_file_is_logged_as_an_error(four):
    """SIGHUP with a file that is wrong: one log line at level error naming FILE:LINE and
    saying that the switch keeps running with its previous settings; it does."""
    path = four.tmpdir / "reload.conf"
    path.write_text("port h1\nport h2\n")
    sw = four.start_switch("--config", str(path), only=[])
    path.write_text("port h1\nport h2:pvid=1:pvid=2\n")
    sw.send_signal(signal.SIGHUP)
    pattern = (r"^\S+ error snoopswitch: .*SIGHUP: " + re.escape(f"{path}:2: bad port spec 'h2:pvid=1:pvid=2': pvid given twice")
               + r"; the switch keeps running with its previous settings$")
    wait_until(lambda: re.search(pattern, sw.log(20000), re.M), timeout=5,
               what=f"an error line naming {path}:2 after SIGHUP; log:\n{sw.log()}")
    assert sw.alive()
    assert sorted(p["name"] for p in sw.status()["ports"]) == ["h1", "h2"]


def help_text(*subcommand: str) -> str:
    r = subprocess.run([str(binary_path()), *subcommand, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout


SUBCOMMANDS = [["run"], ["status"], ["port", "add"], ["port", "del"], ["fdb", "flush"], ["mdb", "flush"],
               ["mdb", "add"], ["mdb", "del"], ["capture"]]


@pytest.mark.parametrize("subcommand", SUBCOMMANDS, ids=[" ".join(s) for s in SUBCOMMANDS])
def test_help_says_each_default_once(subcommand):
    """No option's help says its default twice (its own words and the parser's `(default: N)`)."""
    text = help_text(*subcommand)
    options = text.split("OPTIONS:", 1)[1]
    blocks = re.split(r"\n(?=  -)", options)
    for block in blocks:
        flat = " ".join(block.split())
        assert len(re.findall(r"\bdefault\b", flat, re.I)) <= 1, f"a default said twice: {flat}"


def test_run_help_spec_has_tap_and_pcap():
    """`run --help` writes SPEC as the README does: with [:tap|:pcap]."""
    text = help_text("run")
    discussion = text.split("USAGE:", 1)[0]
    spec = " ".join(discussion.split("VLAN =", 1)[0].split())
    assert "SPEC = IFNAME[:pvid=N][:tagged=N,N,...][:router][:fast-leave][:query-guard] [:tap|:pcap]" in spec, spec
