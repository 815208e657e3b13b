"""What the integration tests need of the kernel beyond namespaces, veth and AF_PACKET, found
out once per run, each detection forced by an environment variable if asked.

Machines of this project's kind do not all run the same kernel build. A test that needs one
of these features checks for it (:func:`missing`, :func:`require`) and, where the kernel lacks
it, checks everything else it can and then skips with the reason, so that a kernel without the
feature gives skips, not failures, and a switch that misbehaves still fails.

=========  ============================  ================================================================
feature    forced by                     found out by (in a namespace of its own, gone with the probe)
=========  ============================  ================================================================
mroute     SNOOPSWITCH_TEST_MROUTE=0|1   MRT_INIT on a raw IGMP socket (ENOPROTOOPT: CONFIG_IP_MROUTE unset),
                                         what FRR's pimd does first: without it pimd keeps no IGMP groups
                                         and no multicast routes, and the kernel forwards no multicast
bpf        SNOOPSWITCH_TEST_BPF=0|1      loading a socket filter program and creating an LRU hash map, as the
                                         switch's fanout steering does (CONFIG_BPF_SYSCALL, CAP_BPF)
tcx        SNOOPSWITCH_TEST_TCX=0|1      attaching a program to loopback's TCX ingress and egress hooks
                                         (BPF links, Linux 6.6 and later), as the switch's host stack
                                         filter, kernel fast path and egress replication do
tun        SNOOPSWITCH_TEST_TUN=0|1      creating a TAP device through /dev/net/tun (CONFIG_TUN)
=========  ============================  ================================================================

0 makes the tests take the feature as absent whatever the kernel has (they check what does
not need it, then skip: the path a kernel without it takes); 1 makes them take it as present
without looking (where the kernel lacks it they fail: for a machine that must have it). Unset
(or "auto"), the probe decides. With TCX forced absent the lab also starts its switches with
--no-host-stack-filter --no-kernel-fast-path --no-egress-replication, what the switch falls
back to by itself on such a kernel (:func:`switch_flags`); BPF forced absent changes only what
the tests expect (the switch's fanout steering has no flag).

    /usr/bin/python3 tests/integration/kernel_features.py      prints what this machine has
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import socket
import struct
import subprocess
import sys
from typing import Optional

ENV = {
    "mroute": "SNOOPSWITCH_TEST_MROUTE",
    "bpf": "SNOOPSWITCH_TEST_BPF",
    "tcx": "SNOOPSWITCH_TEST_TCX",
    "tun": "SNOOPSWITCH_TEST_TUN",
}

# What each feature is, as a skip message starts its reason.
LACKING = {
    "mroute": "kernel without multicast routing (CONFIG_IP_MROUTE): pimd cannot open its mroute socket, "
              "so it keeps no IGMP groups and no multicast routes, and the kernel forwards no multicast "
              "between interfaces",
    "bpf": "kernel refusing BPF programs and maps (CONFIG_BPF_SYSCALL, CAP_BPF): the switch shares a "
           "port's frames between its threads by flow hash and cannot place its threads away from the senders",
    "tcx": "kernel without TCX (BPF programs on an interface's ingress and egress hooks, Linux 6.6 and later): "
           "the switch runs without its host stack filter, kernel fast path and egress replication",
    "tun": "kernel without TUN/TAP devices (CONFIG_TUN, /dev/net/tun)",
}


# ---- the probes (run in a network namespace of their own: `unshare --net`) -----------------
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}.get(platform.machine())
BPF_MAP_CREATE, BPF_PROG_LOAD, BPF_LINK_CREATE = 0, 5, 28
BPF_MAP_TYPE_LRU_HASH = 9
BPF_PROG_TYPE_SOCKET_FILTER, BPF_PROG_TYPE_SCHED_CLS = 1, 3
BPF_TCX_INGRESS, BPF_TCX_EGRESS = 46, 47
TCX_NEXT = -1
MRT_INIT = 200
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000
TUNSETIFF = 0x400454CA

# r0 = imm; exit
def _return(value: int) -> bytes:
    return struct.pack("<BBhi", 0xB7, 0, 0, value) + struct.pack("<BBhi", 0x95, 0, 0, 0)


def _bpf(libc, cmd: int, attr: bytes) -> int:
    """bpf(2); the descriptor, or -errno."""
    if _SYS_BPF is None:
        return -errno.ENOSYS
    buf = ctypes.create_string_buffer(attr.ljust(128, b"\0"), 128)
    fd = libc.syscall(ctypes.c_long(_SYS_BPF), ctypes.c_int(cmd), buf, ctypes.c_uint(128))
    return fd if fd >= 0 else -ctypes.get_errno()


def _load(libc, prog_type: int, insns: bytes, name: bytes) -> int:
    code = ctypes.create_string_buffer(insns, len(insns))
    license_ = ctypes.create_string_buffer(b"GPL")
    attr = struct.pack("<IIQQIIQII16s", prog_type, len(insns) // 8, ctypes.addressof(code),
                       ctypes.addressof(license_), 0, 0, 0, 0, 0, name)
    return _bpf(libc, BPF_PROG_LOAD, attr)


def _probe_bpf(libc) -> Optional[str]:
    fd = _bpf(libc, BPF_MAP_CREATE, struct.pack("<IIII", BPF_MAP_TYPE_LRU_HASH, 12, 16, 16))
    if fd < 0:
        return f"bpf(BPF_MAP_CREATE, LRU hash): {os.strerror(-fd)}"
    os.close(fd)
    fd = _load(libc, BPF_PROG_TYPE_SOCKET_FILTER, _return(0), b"snoop_probe")
    if fd < 0:
        return f"bpf(BPF_PROG_LOAD, socket filter): {os.strerror(-fd)}"
    os.close(fd)
    return None


def _probe_tcx(libc) -> Optional[str]:
    prog = _load(libc, BPF_PROG_TYPE_SCHED_CLS, _return(TCX_NEXT), b"snoop_probe")
    if prog < 0:
        return f"bpf(BPF_PROG_LOAD, sched_cls): {os.strerror(-prog)}"
    try:
        for hook, attach_type in (("ingress", BPF_TCX_INGRESS), ("egress", BPF_TCX_EGRESS)):
            link = _bpf(libc, BPF_LINK_CREATE, struct.pack("<IIII", prog, socket.if_nametoindex("lo"), attach_type, 0))
            if link < 0:
                return f"bpf(BPF_LINK_CREATE, TCX {hook} of lo): {os.strerror(-link)} (kernel {platform.release()})"
            os.close(link)
    finally:
        os.close(prog)
    return None


def _probe_mroute() -> Optional[str]:
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)
    except OSError as exc:
        return f"socket(AF_INET, SOCK_RAW, IPPROTO_IGMP): {exc.strerror}"
    try:
        s.setsockopt(socket.IPPROTO_IP, MRT_INIT, struct.pack("i", 1))
    except OSError as exc:
        if exc.errno in (errno.ENOPROTOOPT, errno.EOPNOTSUPP):
            proc = "" if os.path.exists("/proc/net/ip_mr_vif") else ", no /proc/net/ip_mr_vif"
            return f"setsockopt(MRT_INIT): {exc.strerror}{proc}"
        # anything else (say EADDRINUSE: a router in this namespace already) means the kernel has it
    finally:
        s.close()
    return None


def _probe_tun() -> Optional[str]:
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return f"open /dev/net/tun: {exc.strerror}"
    try:
        import fcntl
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", b"snoopprobe0", IFF_TAP | IFF_NO_PI))
    except OSError as exc:
        return f"ioctl(TUNSETIFF, a TAP device): {exc.strerror}"
    finally:
        os.close(fd)
    return None


def _probe_all() -> dict[str, Optional[str]]:
    """Each feature's absence (why) or None; called in a namespace of its own."""
    libc = ctypes.CDLL(None, use_errno=True)
    result = {"mroute": _probe_mroute(), "bpf": _probe_bpf(libc), "tun": _probe_tun()}
    result["tcx"] = _probe_tcx(libc) if result["bpf"] is None else f"needs BPF ({result['bpf']})"
    return result


# ---- what the tests ask --------------------------------------------------------------------
_probed: Optional[dict[str, Optional[str]]] = None


def _probe() -> dict[str, Optional[str]]:
    global _probed
    if _probed is None:
        cmd = ["unshare", "--net", "--", sys.executable or "/usr/bin/python3", os.path.abspath(__file__), "--probe"]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            _probed = json.loads(r.stdout) if r.returncode == 0 else None
            why = f"the probe `{' '.join(cmd)}` failed ({r.returncode}): {r.stderr.strip()[-300:]}"
        except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
            _probed, why = None, f"the probe `{' '.join(cmd)}` failed: {exc}"
        if _probed is None:
            _probed = {name: why for name in ENV}
    return _probed


def forced(name: str) -> Optional[bool]:
    """True or False if $SNOOPSWITCH_TEST_<NAME> forces the feature present or absent, else None."""
    value = os.environ.get(ENV[name], "").strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("0", "1"):
        return value == "1"
    raise ValueError(f"{ENV[name]}={value!r}: expected 0, 1 or auto")


def missing(name: str) -> Optional[str]:
    """Why the tests take `name` as absent (the reason for a skip message), or None if present."""
    force = forced(name)
    if force is True:
        return None
    if force is False:
        return f"{LACKING[name]} (forced: {ENV[name]}=0)"
    if name == "tcx" and forced("bpf") is False:
        return f"{LACKING[name]} (needs BPF, forced absent: {ENV['bpf']}=0)"
    why = _probe()[name]
    return None if why is None else f"{LACKING[name]} ({why})"


def has(name: str) -> bool:
    return missing(name) is None


def require(name: str, what: str) -> None:
    """Skip the test (pytest.skip) with `what` and the reason, if the tests take `name` as absent.
    Call it after every check that does not need the feature, so that those still run."""
    __tracebackhide__ = True  # the skip is reported at the test's line
    why = missing(name)
    if why is not None:
        import pytest
        pytest.skip(f"{what}: not checked on a {why}")


def needs(name: str, what: str):
    """A pytest mark that skips a test about `what` where the tests take `name` as absent (for
    a test with nothing to check without it)."""
    import pytest
    why = missing(name)
    return pytest.mark.skipif(why is not None, reason=f"{what}: not checked on a {why}")


# The switch's flags that turn off what needs TCX: what it does by itself, with a warning,
# where the kernel refuses.
WITHOUT_TCX = ("--no-host-stack-filter", "--no-kernel-fast-path", "--no-egress-replication")


def switch_flags(args: list[str]) -> list[str]:
    """Flags the lab adds to a switch's command line `args`: where TCX is forced absent
    (SNOOPSWITCH_TEST_TCX=0, or BPF=0) on a kernel that has it, the switch runs without what
    needs TCX too, as it would on a kernel without it, so that the tests meet the switch they
    would meet there."""
    tcx = forced("tcx")
    if tcx is False or (tcx is None and forced("bpf") is False):
        return [f for f in WITHOUT_TCX if f not in args]
    return []


def summary() -> str:
    """One line: each feature, present or absent, and forced or not (for pytest's header)."""
    parts = []
    for name in ENV:
        how = " (forced)" if forced(name) is not None else ""
        parts.append(f"{name} {'yes' if has(name) else 'no'}{how}")
    return f"kernel {platform.release()}, as the tests take it (kernel_features.py): " + ", ".join(parts)


if __name__ == "__main__":
    if sys.argv[1:] == ["--probe"]:
        print(json.dumps(_probe_all()))
    else:
        for name in ENV:
            why = missing(name)
            print(f"{name:7} {'yes' if why is None else 'no: ' + why}")
