"""scripts/install.sh and `snoopswitch --version`.

Installs into staging trees under a temporary directory (`--destdir`, debug configuration: the
build the test command made is reused), runs the installed binary from there, reads its man page,
completions and systemd unit, and uninstalls: nothing it installed may be left behind. The real
/usr/local and /etc are never touched.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from lab import REPO, binary_path

INSTALL = REPO / "scripts" / "install.sh"
VERSION_LINE = re.compile(r"snoopswitch \d+\.\d+\.\d+\S*\n")


def install(destdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Runs scripts/install.sh with the debug configuration into `destdir`; fails the test if it fails."""
    r = subprocess.run([str(INSTALL), "--destdir", str(destdir), "--configuration", "debug", *args],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"install.sh {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if not p.is_dir()}


def printed_paths(output: str, verb: str) -> set[Path]:
    return {Path(line.split(" ", 1)[1]) for line in output.splitlines() if line.startswith(verb + " /")}


def dump_help(binary: Path) -> dict:
    """The command's own description of itself (swift-argument-parser's JSON)."""
    r = subprocess.run([str(binary), "--experimental-dump-help"], capture_output=True, text=True, timeout=10, check=True)
    return json.loads(r.stdout)["command"]


def subcommand_names(command: dict) -> set[str]:
    names = set()
    for sub in command.get("subcommands", []):
        if sub["commandName"] != "help":
            names.add(sub["commandName"])
            names |= subcommand_names(sub)
    return names


def default_control_path(binary: Path) -> str:
    run = next(s for s in dump_help(binary)["subcommands"] if s["commandName"] == "run")
    control = next(a for a in run["arguments"] if {"kind": "long", "name": "control"} in a.get("names", []))
    return control["defaultValue"]


def unit_settings(unit: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """An install with the default prefix (/usr/local) into a staging tree: (root, install.sh's output)."""
    root = tmp_path_factory.mktemp("install") / "root"
    root.mkdir()
    r = install(root)
    return root, r.stdout


def test_version_is_one_line_and_exit_0(snoopswitch):
    """`snoopswitch --version`: one line, `snoopswitch VERSION`, exit 0."""
    r = subprocess.run([str(snoopswitch), "--version"], capture_output=True, text=True, timeout=10)
    assert (r.returncode, r.stderr) == (0, ""), r
    assert VERSION_LINE.fullmatch(r.stdout), repr(r.stdout)


def test_install_prints_each_path_it_writes(staged):
    """Every file in the staging tree was printed as installed, and every printed path is there."""
    root, output = staged
    assert printed_paths(output, "installed") == files_under(root), output


def test_the_installed_binary_runs(staged):
    root, _ = staged
    binary = root / "usr/local/bin/snoopswitch"
    assert os.access(binary, os.X_OK)
    r = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and VERSION_LINE.fullmatch(r.stdout), r
    for args in (["--help"], ["status", "--help"]):
        r = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0 and "USAGE: snoopswitch" in r.stdout, (args, r)


def test_the_man_page_covers_every_subcommand_and_renders(staged):
    root, _ = staged
    page = root / "usr/local/share/man/man8/snoopswitch.8"
    roff = page.read_text()
    assert re.search(r"^\.Dt SNOOPSWITCH 8$", roff, re.M), roff[:300]
    missing = {name for name in subcommand_names(dump_help(root / "usr/local/bin/snoopswitch"))
               if not re.search(rf"^\.It Em {re.escape(name)}$", roff, re.M)}
    assert not missing, f"subcommands missing from the man page: {missing}"
    if shutil.which("man") is None:
        pytest.skip("no man here: the roff source was checked, not its rendering")
    r = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True, timeout=30,
                       env={**os.environ, "MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "100"})
    assert r.returncode == 0 and r.stderr == "", r
    text = re.sub(r".\x08", "", r.stdout)
    for heading in ("SNOOPSWITCH(8)", "NAME", "SYNOPSIS", "DESCRIPTION", "--control", "capture"):
        assert heading in text, f"{heading!r} not in the rendered page:\n{text[:2000]}"


def test_the_completions_are_in_the_standard_places(staged):
    root, _ = staged
    share = root / "usr/local/share"
    for path in ("bash-completion/completions/snoopswitch", "zsh/site-functions/_snoopswitch",
                 "fish/vendor_completions.d/snoopswitch.fish"):
        assert (share / path).stat().st_size > 0, path
    bash = share / "bash-completion/completions/snoopswitch"
    r = subprocess.run(["bash", "-c", f"source {shlex.quote(str(bash))} && complete -p snoopswitch"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "snoopswitch" in r.stdout, r


def test_the_unit_runs_the_installed_binary_on_the_default_control_socket(staged):
    """ExecStart names the installed binary and the installed configuration; the control socket
    is the command line's default, so that a plain `snoopswitch status` reaches the service,
    and the sandbox lets the switch make it."""
    root, _ = staged
    unit = root / "usr/local/lib/systemd/system/snoopswitch.service"
    settings = unit_settings(unit)
    (exec_start,) = settings["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0] == "/usr/local/bin/snoopswitch" and os.access(root / argv[0].lstrip("/"), os.X_OK), argv
    assert argv[1] == "run", argv
    config = argv[argv.index("--config") + 1]
    assert (root / config.lstrip("/")).read_text() == (REPO / "contrib/snoopswitch.conf").read_text()
    default = default_control_path(root / argv[0].lstrip("/"))
    control = argv[argv.index("--control") + 1] if "--control" in argv else default
    assert control == default == "/run/snoopswitch.sock", argv
    if settings.get("ProtectSystem") == ["strict"]:
        writable = " ".join(settings.get("ReadWritePaths", [])).split() + \
                   ["/run/" + d for d in " ".join(settings.get("RuntimeDirectory", [])).split()]
        assert any(control.startswith(w.rstrip("/") + "/") for w in writable), \
            f"ProtectSystem=strict leaves {os.path.dirname(control)} read-only: {settings}"
    assert settings["Documentation"] == ["man:snoopswitch(8)"]
    assert (root / "usr/local/share/man/man8/snoopswitch.8").exists()
    assert settings["Restart"] == ["on-failure"]
    assert {"CAP_NET_ADMIN", "CAP_NET_RAW"} <= set(settings["CapabilityBoundingSet"][0].split())
    if shutil.which("systemd-analyze"):
        # The unit as systemd reads it, with its paths pointed into the staging tree.
        local = root / "check" / "snoopswitch.service"
        local.parent.mkdir()
        local.write_text(unit.read_text().replace("ExecStart=/usr/local/", f"ExecStart={root}/usr/local/"))
        r = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=30,
                           env={**os.environ, "MANPATH": str(root / "usr/local/share/man")})
        shutil.rmtree(local.parent)
        assert r.returncode == 0 and r.stderr == "", r


def copy_of(staged, tmp_path: Path) -> Path:
    """The staged install, copied to a staging tree of its own (the manifest names paths without
    the tree, so --uninstall works on the copy): one install serves several tests."""
    root = tmp_path / "root"
    shutil.copytree(staged[0], root, symlinks=True)
    return root


def test_uninstall_removes_everything_it_installed(staged, tmp_path):
    root = copy_of(staged, tmp_path)
    r = install(root, "--uninstall")
    installed = {root / p.relative_to(staged[0]) for p in printed_paths(staged[1], "installed")}
    assert installed <= printed_paths(r.stdout, "removed"), r.stdout
    assert list(root.iterdir()) == [], f"left behind: {sorted(root.rglob('*'))}"


def test_reinstall_keeps_an_edited_configuration_and_uninstall_too(staged, tmp_path):
    """The /etc configuration is the operator's once edited: a second install does not overwrite
    it, and --uninstall keeps it while removing the rest."""
    root = copy_of(staged, tmp_path)
    conf = root / "etc/snoopswitch/snoopswitch.conf"
    edited = conf.read_text() + "port eth9\n"
    conf.write_text(edited)
    r = install(root)
    assert f"kept {conf}" in r.stdout and conf.read_text() == edited, r.stdout
    install(root, "--uninstall")
    assert files_under(root) == {conf} and conf.read_text() == edited, sorted(root.rglob("*"))


def test_a_prefix_of_its_own(tmp_path):
    """Outside /usr and /usr/local: nothing in /etc, the unit's documentation a file that exists,
    and uninstall leaves nothing."""
    root = tmp_path / "root"
    root.mkdir()
    install(root, "--prefix", "/opt/snoopswitch")
    assert not (root / "etc").exists()
    settings = unit_settings(root / "opt/snoopswitch/lib/systemd/system/snoopswitch.service")
    assert shlex.split(settings["ExecStart"][0])[0] == "/opt/snoopswitch/bin/snoopswitch"
    (doc,) = settings["Documentation"]
    assert doc.startswith("file:///opt/snoopswitch/") and (root / doc.removeprefix("file:///")).exists(), doc
    install(root, "--prefix", "/opt/snoopswitch", "--uninstall")
    assert list(root.iterdir()) == [], f"left behind: {sorted(root.rglob('*'))}"


def test_bad_arguments_are_one_line_and_exit_64(tmp_path):
    for args in (["--bogus"], ["--prefix", "relative"], ["--configuration", "fast"]):
        r = subprocess.run([str(INSTALL), *args], capture_output=True, text=True, timeout=10)
        assert r.returncode == 64 and r.stdout == "" and r.stderr.count("\n") == 1, (args, r)
    r = subprocess.run([str(INSTALL), "--destdir", str(tmp_path), "--uninstall"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "nothing to uninstall" in r.stderr, r
