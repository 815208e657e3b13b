"""A real VM on the switch (README, "A VM on the switch").

qemu-system-x86_64 runs in the switch's namespace under TCG and creates the tap `vm1`
for the VM's virtio NIC (`-netdev tap,ifname=vm1,script=no,downscript=no`); snoopswitch
takes vm1 as an AF_PACKET port beside two veth hosts, h1 (the sender) and h2 (a
non-member). The guest is Debian's kernel (linux-image-amd64's package, fetched with
`apt-get download`, cached under .build/vm-guest/) and an initramfs built for this run by
vm/build_guest.py: busybox-static and vm/mcast_count.c (gcc -static), which loads the
virtio NIC's modules, puts 192.0.2.50/24 on eth0, joins the group (the guest's kernel
sends the IGMP report), counts the datagrams to the group and prints
`VMRESULT received=N ...` on the serial console, then powers off.

Run alone: /usr/bin/python3 -m pytest -q tests/integration/test_vm.py (or -m vm).
It skips only if qemu, busybox-static, a static C library or the kernel package cannot
be had from this machine's Debian packages (scripts/install-deps.sh installs the first
three; the kernel package is downloaded once, so the first run needs Debian's mirror), or
if the host's kernel has no TUN/TAP devices for qemu's tap (kernel_features.py); a VM that
does not boot fails. KVM is not needed (TCG; SNOOPSWITCH_VM_ACCEL=kvm uses it).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

import kernel_features
from lab import (QEMU, TMP_PREFIX, Lab, Topology, default_port_suffix, igmp_of, macs, mcast_mac, member_entry, members,
                 port_entry, random_marker, start_vm)

pytestmark = pytest.mark.vm

VM_DIR = Path(__file__).resolve().parent / "vm"
G = "239.7.7.7"
PORT = 5070
VM_IF = "vm1"
VM_MAC = "02:00:00:00:01:01"
VM_CIDR = "192.0.2.50/24"
COUNT = 50
BOOT_TIMEOUT = 150.0  # qemu start to the guest's join, under TCG on a busy machine


def _build_guest_module():
    spec = importlib.util.spec_from_file_location("build_guest", VM_DIR / "build_guest.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_guest", mod)  # its dataclass looks itself up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def guest():
    """vmlinuz (cached) and an initramfs built for this run (deleted afterwards)."""
    if shutil.which(QEMU) is None:
        pytest.skip(f"{QEMU} not found (Debian package qemu-system-x86; scripts/install-deps.sh installs it)")
    kernel_features.require("tun", "a VM on a tap that qemu creates")
    build_guest = _build_guest_module()
    out = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-vm-"))
    try:
        try:
            g = build_guest.build(out)
        except build_guest.Unobtainable as exc:
            pytest.skip(f"the guest cannot be built from this machine's Debian packages: {exc}")
        yield g
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.fixture
def vm_lab(snoopswitch):
    """h1 (192.0.2.1) and h2 (192.0.2.2) on veth pairs into a switch namespace; the test
    adds the VM's tap there. Everything (qemu included) goes with the lab."""
    lab = Lab(Topology.parse("host h1 192.0.2.1/24\nhost h2 192.0.2.2/24\n", "test_vm"))
    lab.create()
    try:
        yield lab
    finally:
        lab.destroy()


def _result(line: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in line.split()[1:])


def test_vm_joins_through_its_tap_and_receives_the_group(guest, vm_lab):
    """The VM's kernel joins G through its virtio NIC: the switch lists vm1 as a member
    (IGMPv3, the VM's MAC learned on vm1), h1 reaches the VM by ping, every one of the
    COUNT datagrams h1 then sends to G reaches the guest's socket (checksums and all:
    the guest's kernel delivers them), and h2, a non-member, gets none of them."""
    lab = vm_lab
    h1, h2 = lab["h1"], lab["h2"]
    token = random_marker("vm").decode()
    # panic=-1 with qemu's -no-reboot: a guest that panics ends qemu at once (a failure);
    # no_timer_check: no boot-time timer check, which a slow TCG host can fail
    append = (f"console=ttyS0 quiet panic=-1 no_timer_check ipv6.disable=1 vmguest.addr={VM_CIDR} "
              f"vmguest.group={G} vmguest.port={PORT} vmguest.token={token} vmguest.seconds=90")
    t0 = time.monotonic()
    vm = start_vm(lab, VM_IF, VM_MAC, guest.kernel, guest.initrd, append)
    timings: dict[str, float] = {}
    try:
        # qemu made vm1 in the switch's namespace; the switch takes it as an AF_PACKET port
        # (and brings it up), beside the veth hosts.
        sw = lab.start_switch("--port", VM_IF + default_port_suffix(), only=["h1", "h2"])
        sw.wait_status(lambda s: port_entry(s, VM_IF)["link"] == "up", timeout=10, what="vm1's link up")
        cap2 = h2.capture()

        m = vm.wait_console(r"^VMJOINED .*$", timeout=BOOT_TIMEOUT, what="the guest's join (VMJOINED)")
        timings["boot"] = time.monotonic() - t0
        assert f"group={G}" in m.group(0), m.group(0)
        st = sw.wait_status(lambda s: s if VM_IF in members(s, G) else None, timeout=20,
                            what="vm1 listed as a member of the group after the guest's report")
        timings["member"] = time.monotonic() - t0
        assert members(st, G) == {VM_IF}, st["groups"]
        entry = member_entry(st, G, VM_IF)
        assert entry["version"] == 3, entry
        sw.wait_status(lambda s: macs(s).get((1, VM_MAC)) == VM_IF, timeout=5, what="the VM's MAC learned on vm1")

        vm_addr = VM_CIDR.split("/")[0]
        assert h1.ping(vm_addr, count=2, timeout=5), f"h1 cannot ping the VM at {vm_addr}\n{vm.describe()}"

        sent = h1.send_udp(G, PORT, count=COUNT, marker=token.encode(), interval=0.02)
        assert len(sent) == COUNT
        # then "TOKEN END ..." until the guest reports (each END is one more datagram to G)
        deadline = time.monotonic() + 30
        result = None
        while result is None:
            h1.send_udp(G, PORT, count=1, marker=f"{token} END".encode())
            found = re.search(r"^VMRESULT .*$", vm.console_lines(), re.M)
            if found:
                result = found.group(0)
            elif not vm.alive() or time.monotonic() > deadline:
                raise AssertionError(f"no VMRESULT line from the guest\n{vm.describe()}")
            else:
                time.sleep(0.5)
        timings["result"] = time.monotonic() - t0
        got = _result(result)
        assert "VMERROR" not in vm.console(), vm.describe()
        assert got["end"] == "yes", result
        assert int(got["received"]) > 0, f"the guest received nothing of the group: {result}\n{sw.status_text()}"
        assert int(got["unique"]) == COUNT, f"the guest received {got['unique']} of {COUNT}: {result}"
        assert int(got["duplicates"]) == 0, result

        assert vm.wait_exit(timeout=30) == 0, vm.describe()
        timings["poweroff"] = time.monotonic() - t0
        assert "VMPOWEROFF" in vm.console(), vm.describe()

        group_data = [f for f in cap2.stop(settle=0.3) if not f.outgoing and igmp_of(f) is None
                      and (f.dst == mcast_mac(G) or (f.ip is not None and f.ip.dst == G))]
        assert group_data == [], f"h2 (not a member) received {len(group_data)} frames of {G}: {group_data[:3]}"
        assert sw.alive(), f"the switch died during the test; log:\n{sw.log()}"
        print(f"VM timings (s from qemu start): {', '.join(f'{k} {v:.1f}' for k, v in timings.items())}; "
              f"guest: {result}; kernel {guest.kernel_package}, modules {' '.join(guest.modules)}")
    except BaseException:
        print(vm.describe(tail=8000))
        if lab.switch is not None:
            print(f"--- switch log\n{lab.switch.log()}")
        raise
