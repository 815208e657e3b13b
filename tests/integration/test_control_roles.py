"""Who may use the control socket (topologies/four-hosts.topo).

The switch knows each client by SO_PEERCRED and SO_PEERGROUPS: root may do everything; members
of `--control-group` (by their process's group or a supplementary one) may read the status and ping,
but neither change the switch nor capture; anyone else is refused (the socket's mode 0660 keeps
them out already; with the mode opened up, the switch still refuses them). A refused request
gets {"error": "permission denied: ..."} and the CLI prints it as one line and exits non-zero.

Throwaway users and a group are made with useradd/groupadd for this module and removed after,
even when a test fails. The commands run as those users through `setpriv --init-groups`.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys

import pytest

from lab import binary_path, control_request, members, sh, wait_until

PREFIX = "ssrole"          # users and the group of this module; stale ones are removed first
GROUP_NAME = f"{PREFIX}{os.getpid() % 100000}"
G = "239.7.7.7"


def _remove_accounts(names: list[str]) -> None:
    for name in names:
        sh("userdel", name, check=False)
    for name in names:        # a user group useradd may have made, and the control group
        sh("groupdel", name, check=False)


def _stale_accounts() -> list[str]:
    names = {line.split(":")[0] for path in ("/etc/passwd", "/etc/group") for line in open(path)}
    return sorted(n for n in names if n.startswith(PREFIX))


@pytest.fixture(scope="module")
def accounts():
    """A group and three users: `supplementary` (in the group as a supplementary group),
    `primary` (the group is its primary group), `stranger` (not in it). Yields
    {role: (name, uid)} and the group's name."""
    _remove_accounts(_stale_accounts())
    made = {"supplementary": f"{GROUP_NAME}s", "primary": f"{GROUP_NAME}p", "stranger": f"{GROUP_NAME}x"}
    try:
        sh("groupadd", "--system", GROUP_NAME)
        base = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
        sh(*base, "--user-group", "--groups", GROUP_NAME, made["supplementary"])
        sh(*base, "--gid", GROUP_NAME, made["primary"])
        sh(*base, "--user-group", made["stranger"])
        yield {role: (name, pwd.getpwnam(name).pw_uid) for role, name in made.items()}, GROUP_NAME
    finally:
        _remove_accounts(list(made.values()) + [GROUP_NAME])
    assert not _stale_accounts(), f"accounts left behind: {_stale_accounts()}"


@pytest.fixture
def lab(four):
    """The four-hosts lab with its directory open for others to pass through (the control
    socket lives in it), and a directory where the users may write capture files."""
    os.chmod(four.tmpdir, 0o711)
    files = four.tmpdir / "user-files"
    files.mkdir(mode=0o1777, exist_ok=True)
    os.chmod(files, 0o1777)
    try:
        yield four
    finally:
        os.chmod(four.tmpdir, 0o700)


def as_user(name: str, *cmd: str, timeout: float = 15) -> subprocess.CompletedProcess:
    """Run cmd as user `name` with its groups from the group database."""
    return subprocess.run(["setpriv", "--reuid", name, "--regid", str(pwd.getpwnam(name).pw_gid), "--init-groups", *cmd],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def cli(name: str | None, sw, *args: str, timeout: float = 15) -> subprocess.CompletedProcess:
    cmd = [str(binary_path()), *args, "--control", sw.control]
    if name is None:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return as_user(name, *cmd, timeout=timeout)


def raw_request(name: str, sw, line: str) -> str:
    """Send one request line as user `name` (python through setpriv) and return the answer."""
    code = ("import socket,sys\n"
            "s=socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])\n"
            "s.sendall(sys.argv[2].encode()+b'\\n'); s.shutdown(socket.SHUT_WR)\n"
            "out=b''\n"
            "while (b:=s.recv(65536)): out+=b\n"
            "sys.stdout.write(out.decode())\n")
    r = as_user(name, sys.executable, "-c", code, sw.control, line)
    assert r.returncode == 0, f"{line!r} as {name}: exit {r.returncode}: {r.stderr.strip()[-500:]}"
    return r.stdout.strip()


def one_line_error(r: subprocess.CompletedProcess, what: str) -> str:
    """The CLI failed with exactly one line on stderr and nothing on stdout; returns it."""
    assert r.returncode != 0, f"{what}: exit 0, stdout {r.stdout[:300]!r}"
    lines = r.stderr.rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("snoopswitch: "), f"{what}: stderr is not one line: {r.stderr!r}"
    assert r.stdout == "", f"{what}: printed {r.stdout[:300]!r}"
    return lines[0].removeprefix("snoopswitch: ")


CHANGES = [
    ("port add", ["port", "add", "h5"]),
    ("port del", ["port", "del", "h4"]),
    ("fdb flush", ["fdb", "flush"]),
    ("mdb flush", ["mdb", "flush"]),
    ("mdb add", ["mdb", "add", "h1", G]),
    ("mdb del", ["mdb", "del", "h1", G]),
]


def test_group_members_read_but_neither_change_nor_capture(lab, accounts):
    """--control-group G: a member of G by a supplementary group and one by its primary group
    each get `status` (tables and --json) and `ping`; each `port add/del`, `fdb flush`,
    `mdb flush/add/del` and `capture` is refused with one line naming the uid, the group and
    what the request needs, exit non-zero; the raw answer is the JSON error document. The
    switch is unchanged afterwards: h4 still a port, no static membership, still forwarding."""
    users, group = accounts
    sw = lab.start_switch("--control-group", group)
    for role in ("supplementary", "primary"):
        name, uid = users[role]
        r = cli(name, sw, "status")
        assert r.returncode == 0, f"status as {name}: {r.returncode} {r.stderr.strip()}"
        assert "PORT" in r.stdout and "h4" in r.stdout, f"status as {name}: {r.stdout[:500]}"
        r = cli(name, sw, "status", "--json")
        assert r.returncode == 0, f"status --json as {name}: {r.returncode} {r.stderr.strip()}"
        assert {p["name"] for p in json.loads(r.stdout)["ports"]} == set(lab.hosts)
        assert json.loads(raw_request(name, sw, "ping")) == {"pong": True}

        for request, args in CHANGES:
            message = one_line_error(cli(name, sw, *args), f"{request} as {name}")
            assert message == (f"permission denied: uid {uid} (member of group {group}) may read the status "
                               f"but not change the switch ({request} needs root)"), message
        pcap = lab.tmpdir / "user-files" / f"{role}.pcap"
        message = one_line_error(cli(name, sw, "capture", str(pcap), "--duration", "1"), f"capture as {name}")
        assert message == (f"permission denied: uid {uid} (member of group {group}) may read the status "
                           f"but not capture frames (capture needs root)"), message
        answer = json.loads(raw_request(name, sw, "fdb flush"))
        assert set(answer) == {"error"} and answer["error"].startswith("permission denied: "), answer

    status = sw.status()
    assert "h4" in {p["name"] for p in status["ports"]}, "a refused `port del h4` removed the port"
    assert not members(status, G), f"a refused `mdb add` added a member: {members(status, G)}"
    assert "capture started" not in sw.log(50000), "a refused capture started"
    assert lab["h1"].ping(lab["h4"].addr), "h1 cannot ping h4 after the refused requests"


def test_others_are_refused_even_through_an_open_socket(lab, accounts):
    """A user outside the group cannot open the socket (mode 0660); with the mode opened to
    0666 by hand, the switch still refuses its `status`, `port del` and `ping` with a JSON error
    naming its uid and the group, and so a member's process run without its groups."""
    users, group = accounts
    name, uid = users["stranger"]
    sw = lab.start_switch("--control-group", group)
    r = cli(name, sw, "status")
    assert r.returncode != 0 and "Permission denied" in r.stderr, f"status through a 0660 socket: {r.returncode} {r.stderr!r}"
    os.chmod(sw.control, 0o666)
    expected = f"permission denied: uid {uid} is neither root nor a member of group {group} (--control-group)"
    assert one_line_error(cli(name, sw, "status"), f"status as {name}") == expected
    assert one_line_error(cli(name, sw, "port", "del", "h4"), f"port del as {name}") == expected
    assert json.loads(raw_request(name, sw, "ping")) == {"error": expected}
    # Membership is the connecting process's groups (SO_PEERGROUPS), as for the socket's mode:
    # a member's process that dropped its supplementary groups is refused too.
    member, member_uid = users["supplementary"]
    r = subprocess.run(["setpriv", "--reuid", member, "--regid", str(pwd.getpwnam(member).pw_gid), "--clear-groups",
                        str(binary_path()), "status", "--control", sw.control],
                       capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL)
    assert one_line_error(r, f"status as {member} without its groups") == \
        f"permission denied: uid {member_uid} is neither root nor a member of group {group} (--control-group)"


def test_without_a_control_group_only_root_may_use_the_socket(lab, accounts):
    """No --control-group, the socket opened to 0666 by hand: even a member of some group is
    refused, by a message saying the switch has no control group."""
    users, _group = accounts
    name, uid = users["supplementary"]
    sw = lab.start_switch()
    os.chmod(sw.control, 0o666)
    expected = f"permission denied: uid {uid} is not root, and the switch has no --control-group"
    assert json.loads(raw_request(name, sw, "status")) == {"error": expected}
    assert one_line_error(cli(name, sw, "status"), f"status as {name}") == expected


def test_root_may_do_everything(lab, accounts):
    """With --control-group set, root still reads, changes (port del/add, fdb flush, mdb
    add/del/flush) and captures: every command exits 0 and takes effect."""
    _users, group = accounts
    sw = lab.start_switch("--control-group", group)
    for args in (["status"], ["fdb", "flush"], ["mdb", "add", "h1", G], ["mdb", "flush"]):
        r = cli(None, sw, *args)
        assert r.returncode == 0, f"{args} as root: {r.returncode} {r.stderr.strip()}"
    assert members(sw.status(), G) == {"h1"}, "root's `mdb add h1` did not take"
    r = cli(None, sw, "mdb", "del", "h1", G)
    assert r.returncode == 0, f"mdb del as root: {r.stderr.strip()}"
    assert not members(sw.status(), G)
    r = cli(None, sw, "port", "del", "h4")
    assert r.returncode == 0, f"port del as root: {r.stderr.strip()}"
    assert "h4" not in {p["name"] for p in sw.status()["ports"]}
    r = cli(None, sw, "port", "add", "h4")
    assert r.returncode == 0, f"port add as root: {r.stderr.strip()}"
    sw.wait_status(lambda s: any(p["name"] == "h4" and p["link"] == "up" for p in s["ports"]), what="h4 back and up")
    pcap = lab.tmpdir / "root.pcap"
    r = cli(None, sw, "capture", str(pcap), "--duration", "1")
    assert r.returncode == 0, f"capture as root: {r.returncode} {r.stderr.strip()}"
    assert pcap.exists() and "capture started" in sw.log(50000)
    answer, err = control_request(sw.control, b"ping\n")
    assert err is None and json.loads(answer) == {"pong": True}
    wait_until(lambda: lab["h1"].ping(lab["h4"].addr), timeout=10, what="h1 pings h4 after port del/add")
