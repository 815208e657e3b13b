"""Fixtures for the snoopswitch integration tests (run as root with Debian's python3:
``/usr/bin/python3 -m pytest -q tests/integration``).

Each module gets its own lab (namespaces + veth pairs, built once per module from a
file in topologies/); every test starts the switch with the flags it is about and the
per-test fixture stops it again, closes the test's sockets and restores the hosts, so
tests do not depend on their order. A switch that died during a test fails the test.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kernel_features  # noqa: E402
from lab import HostSpec, Lab, binary_path, cleanup_stale  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: boots a VM (qemu under TCG, Debian's kernel) attached to the switch; "
                            "select with -m vm, leave out with -m 'not vm'")
    if os.geteuid() != 0:
        raise pytest.UsageError("the integration tests need root (network namespaces, AF_PACKET)")


def pytest_report_header(config):
    """What the kernel has of what some tests need (kernel_features.py: a test that needs what
    is missing checks the rest and skips with the reason)."""
    return kernel_features.summary()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(scope="session", autouse=True)
def _stale_labs():
    """Remove namespaces and temp dirs of earlier crashed runs (cheap: by name and pid)."""
    cleanup_stale()
    yield


@pytest.fixture(scope="session")
def snoopswitch() -> Path:
    path = binary_path()
    if not (path.exists() and os.access(path, os.X_OK)):
        pytest.fail(f"snoopswitch binary not found at {path} (run 'swift build' first, or set SNOOPSWITCH)")
    return path


@contextlib.contextmanager
def open_lab(topology: str, extra_hosts=()):
    lab = Lab.from_topology(topology, extra_hosts)
    lab.create()
    try:
        yield lab
    finally:
        lab.destroy()


def _after_test(lab: Lab, request) -> None:
    """Stop the test's switch; fail if it had died on its own; restore the hosts."""
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    died = None
    sw = lab.switch
    if sw is not None and not sw.stopped and not sw.alive():
        died = f"the switch died during the test (exit {sw.proc.returncode}); log tail:\n{sw.log()}"
    if failed and sw is not None and not died:
        print(f"--- switch log ({sw.log_path}) ---\n{sw.log()}")
    lab.stop_switch()
    lab.reset_hosts()
    if died:
        pytest.fail(died)


@pytest.fixture(scope="module")
def _four_hosts(snoopswitch):
    with open_lab("four-hosts.topo") as lab:
        yield lab


@pytest.fixture
def four(_four_hosts, request):
    """topologies/four-hosts.topo: h1..h4 on VLAN 1 (192.0.2.1-4, MACs ...:01-04)."""
    yield _four_hosts
    _after_test(_four_hosts, request)


@pytest.fixture(scope="module")
def _vlan_lab(snoopswitch):
    # The file's hosts plus a second trunk host, so a tagged frame can cross trunk to trunk.
    with open_lab("two-vlans-trunk.topo", [HostSpec("trunk2", None, ":tagged=10,20")]) as lab:
        yield lab


@pytest.fixture
def vlans(_vlan_lab, request):
    """topologies/two-vlans-trunk.topo (v10a v10b v20a v20b trunk) plus trunk2 (tagged=10,20)."""
    yield _vlan_lab
    _after_test(_vlan_lab, request)


@pytest.fixture(scope="module")
def _mrouter_lab(snoopswitch):
    with open_lab("mrouter.topo") as lab:
        yield lab


@pytest.fixture
def mrouter(_mrouter_lab, request):
    """topologies/mrouter.topo: h1..h3 and a multicast router host on a static :router port."""
    yield _mrouter_lab
    _after_test(_mrouter_lab, request)


@pytest.fixture(scope="module")
def _frr_lab(snoopswitch):
    with open_lab("frr-router.topo") as lab:
        yield lab


@pytest.fixture
def frr_lab(_frr_lab, request):
    """topologies/frr-router.topo: h1..h3 and `router` (for FRR's pimd) on ordinary ports."""
    yield _frr_lab
    _after_test(_frr_lab, request)


@pytest.fixture(scope="module")
def _mixed_lab(snoopswitch):
    with open_lab("mixed-versions.topo") as lab:
        yield lab


@pytest.fixture
def mixed(_mixed_lab, request):
    """topologies/mixed-versions.topo: hv1, hv2, hv3 (the tests force their IGMP version) and src."""
    yield _mixed_lab
    _after_test(_mixed_lab, request)


@pytest.fixture(scope="module")
def _sources_lab(snoopswitch):
    with open_lab("source-filtering.topo") as lab:
        yield lab


@pytest.fixture
def sources(_sources_lab, request):
    """topologies/source-filtering.topo: senders s1, s2 and receivers r1, r2."""
    yield _sources_lab
    _after_test(_sources_lab, request)
