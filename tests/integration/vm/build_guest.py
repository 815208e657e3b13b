#!/usr/bin/python3
"""Build the guest of tests/integration/test_vm.py: Debian's kernel and an initramfs.

* The kernel: the package that Debian's linux-image-amd64 depends on (for bookworm
  linux-image-6.1.0-N-amd64), fetched with `apt-get download` (nothing is installed)
  and unpacked with `dpkg-deb -x` into a scratch dir; its vmlinuz, modules.builtin and
  the modules the virtio NIC needs (virtio_net and virtio_pci with their dependencies,
  unless modules.builtin lists them) are kept in a cache under the repository's
  .build/vm-guest/ (git-ignored; never committed), the rest is deleted. Later builds
  use the cache without apt.
* The initramfs, built anew each time into the directory given: busybox-static's
  /bin/busybox, vm/init (a busybox sh script), mcast_count compiled from
  vm/mcast_count.c with `gcc -static`, the modules and /etc/guest-modules (their load
  order), written as a gzip'd newc cpio archive by this script (no cpio tool needed,
  no root-owned files: /dev/console is made inside the archive).

    /usr/bin/python3 tests/integration/vm/build_guest.py OUTDIR
        prints the paths of vmlinuz and initrd.img (in OUTDIR)

`Unobtainable` (exit status 77 from the command line) means a part cannot be had from
this machine's Debian packages (not installed, and the kernel not downloadable): the
test skips. Anything else that fails is an error.
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
CACHE = REPO / ".build" / "vm-guest"
BUSYBOX = Path("/bin/busybox")
KERNEL_META = "linux-image-amd64"
# The modules the guest loads (with what they depend on): the virtio PCI transport and
# the virtio NIC.
WANTED_MODULES = ("virtio_pci", "virtio_net")


class Unobtainable(Exception):
    """A part of the guest cannot be had from Debian's packages on this machine."""


@dataclass
class Guest:
    kernel: Path
    initrd: Path
    kernel_package: str
    modules: list[str]


def _run(*cmd: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout)


# ---- the kernel -------------------------------------------------------------------
def _kernel_package_from_apt() -> str | None:
    """linux-image-6.1.0-N-amd64: what linux-image-amd64 depends on, per apt's lists."""
    r = _run("apt-cache", "depends", KERNEL_META, timeout=60)
    if r.returncode != 0:
        return None
    for line in r.stdout.splitlines():
        m = re.match(r"\s*Depends:\s*(linux-image-\S+)", line)
        if m:
            return m.group(1)
    return None


def _cached_kernels() -> list[Path]:
    if not CACHE.is_dir():
        return []
    return sorted((d for d in CACHE.iterdir() if d.name.startswith("linux-image-") and (d / "vmlinuz").is_file()),
                  key=lambda d: d.stat().st_mtime, reverse=True)


def _module_depends(path: Path) -> list[str]:
    """The `depends=` entry of a module's .modinfo section."""
    m = re.search(rb"(?:^|\0)depends=([^\0]*)\0", _module_bytes(path))
    return [d for d in m.group(1).decode().split(",") if d] if m else []


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.zst"):
        if shutil.which("zstd") is None:
            raise Unobtainable(f"{path.name} is compressed with zstd and zstd is not installed (Debian package zstd)")
        r = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"zstd -dc {path} failed: {r.stderr.decode(errors='replace')}")
        return r.stdout
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    return data


def _module_name(path: Path) -> str:
    return re.sub(r"\.ko(\.(xz|zst|gz))?$", "", path.name).replace("-", "_")


def _extract_kernel(package: str) -> Path:
    """Download `package`, keep vmlinuz + modules.builtin + the NIC's modules (in load
    order, uncompressed) in CACHE/package; return that dir."""
    CACHE.mkdir(parents=True, exist_ok=True)
    for stale in CACHE.glob("tmp-*"):  # left by a build that was killed (about 400 MB each)
        try:
            if time.time() - stale.stat().st_mtime > 3600:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass
    scratch = Path(tempfile.mkdtemp(prefix=f"tmp-{package}-", dir=CACHE))
    try:
        # root downloads into the scratch dir itself (apt's _apt user could not write there)
        r = _run("apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", package, cwd=scratch)
        debs = list(scratch.glob("*.deb"))
        if r.returncode != 0 or not debs:
            raise Unobtainable(f"apt-get download {package} failed: {(r.stderr or r.stdout).strip()[-800:]}")
        root = scratch / "root"
        r = _run("dpkg-deb", "-x", str(debs[0]), str(root))
        if r.returncode != 0:
            raise RuntimeError(f"dpkg-deb -x {debs[0].name} failed: {r.stderr.strip()}")
        debs[0].unlink()
        vmlinuz = sorted((root / "boot").glob("vmlinuz-*"))
        moddirs = sorted((root / "lib" / "modules").glob("*")) if (root / "lib" / "modules").is_dir() else []
        if not vmlinuz or not moddirs:
            raise RuntimeError(f"{package} has no /boot/vmlinuz-* or /lib/modules/*")
        moddir = moddirs[0]
        builtin = (moddir / "modules.builtin").read_text() if (moddir / "modules.builtin").exists() else ""
        builtin_names = {_module_name(Path(line.strip())) for line in builtin.splitlines() if line.strip()}
        by_name = {_module_name(p): p for p in moddir.rglob("*.ko*") if re.search(r"\.ko(\.(xz|zst|gz))?$", p.name)}

        order: list[str] = []

        def visit(name: str, chain: tuple[str, ...]) -> None:
            if name in order or name in builtin_names:
                return
            if name in chain:
                raise RuntimeError(f"module dependency cycle: {' -> '.join(chain + (name,))}")
            if name not in by_name:
                raise RuntimeError(f"module {name} is neither built into {package} nor shipped as a module")
            for dep in _module_depends(by_name[name]):
                visit(dep.replace("-", "_"), chain + (name,))
            order.append(name)

        for name in WANTED_MODULES:
            visit(name, ())

        out = scratch / "out"
        (out / "modules").mkdir(parents=True)
        shutil.copy2(vmlinuz[0], out / "vmlinuz")
        (out / "modules.builtin").write_text(builtin)
        for name in order:
            (out / "modules" / f"{name}.ko").write_bytes(_module_bytes(by_name[name]))
        (out / "modules.load").write_text("".join(f"{n}\n" for n in order))
        (out / "release").write_text(moddir.name + "\n")
        final = CACHE / package
        try:
            out.rename(final)  # atomic: a concurrent build may have won, which is as good
        except OSError:
            if not (final / "vmlinuz").is_file():
                raise
        return final
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def kernel_dir() -> Path:
    """CACHE/<package> with vmlinuz, modules/, modules.load: from the cache if there,
    else downloaded (after an `apt-get update` if apt's lists do not name the package)."""
    package = _kernel_package_from_apt()
    if package is None:
        _run("apt-get", "update", "-qq", timeout=300)
        package = _kernel_package_from_apt()
    if package is None:
        cached = _cached_kernels()
        if cached:
            return cached[0]
        raise Unobtainable(f"apt knows no kernel package for {KERNEL_META} (apt-cache depends {KERNEL_META})")
    cached = CACHE / package
    if (cached / "vmlinuz").is_file() and (cached / "modules.load").is_file():
        return cached
    try:
        return _extract_kernel(package)
    except Unobtainable:
        others = _cached_kernels()
        if others:
            return others[0]
        raise


# ---- the initramfs ----------------------------------------------------------------
def _is_static_elf(path: Path) -> bool:
    """An ELF executable without a PT_INTERP program header (no dynamic loader needed)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit
            return False
        e_phoff, = struct.unpack_from("<Q", head, 32)
        e_phentsize, e_phnum = struct.unpack_from("<HH", head, 54)
        f.seek(e_phoff)
        table = f.read(e_phentsize * e_phnum)
    return all(struct.unpack_from("<I", table, i * e_phentsize)[0] != 3 for i in range(e_phnum))


def busybox_static() -> Path:
    if not BUSYBOX.exists():
        raise Unobtainable(f"{BUSYBOX} not found (Debian package busybox-static; scripts/install-deps.sh installs it)")
    if not _is_static_elf(BUSYBOX):
        raise Unobtainable(f"{BUSYBOX} is not statically linked (install Debian's busybox-static, not busybox)")
    return BUSYBOX


def compile_guest_program(out: Path) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise Unobtainable("gcc not found (Debian packages gcc and libc6-dev)")
    exe = out / "mcast_count"
    r = _run(gcc, "-static", "-O2", "-Wall", "-Werror", "-o", str(exe), str(HERE / "mcast_count.c"), timeout=120)
    if r.returncode != 0:
        if "cannot find -lc" in r.stderr:
            raise Unobtainable(f"no static C library for gcc -static (Debian package libc6-dev): {r.stderr.strip()}")
        raise RuntimeError(f"gcc -static mcast_count.c failed:\n{r.stderr}")
    return exe


class Cpio:
    """A newc ("070701") cpio archive, as the kernel unpacks an initramfs."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1
        self.dirs: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        nameb = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nameb), 0)
        self.ino += 1
        self.buf.write(b"070701" + b"".join(b"%08X" % v for v in fields) + nameb)
        self.buf.write(b"\0" * (-(110 + len(nameb)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name: str) -> None:
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.dirs:
                self.dirs.add(d)
                self._entry(d, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        name = name.strip("/")
        if "/" in name:
            self.dir(name.rsplit("/", 1)[0])
        self._entry(name, stat.S_IFREG | mode, data)

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        name = name.strip("/")
        if "/" in name:
            self.dir(name.rsplit("/", 1)[0])
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        data = self.buf.getvalue()
        return data + b"\0" * (-len(data) % 512)


def build(outdir: Path) -> Guest:
    """Build the guest into outdir (vmlinuz is the cached kernel's path; initrd.img is
    written to outdir). Raises Unobtainable or another exception."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    busybox = busybox_static()
    kdir = kernel_dir()
    program = compile_guest_program(outdir)
    order = [m for m in (kdir / "modules.load").read_text().split() if m]

    cpio = Cpio()
    for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "etc", "lib/modules", "usr/bin", "usr/sbin"):
        cpio.dir(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3, 0o666)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    cpio.file("init", (HERE / "init").read_bytes(), 0o755)
    cpio.file("bin/mcast_count", program.read_bytes(), 0o755)
    cpio.file("etc/guest-modules", "".join(f"{m}\n" for m in order).encode())
    for m in order:
        cpio.file(f"lib/modules/{m}.ko", (kdir / "modules" / f"{m}.ko").read_bytes())
    initrd = outdir / "initrd.img"
    initrd.write_bytes(gzip.compress(cpio.finish(), compresslevel=6))
    program.unlink()
    return Guest(kernel=kdir / "vmlinuz", initrd=initrd, kernel_package=kdir.name, modules=order)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUTDIR", file=sys.stderr)
        return 2
    try:
        g = build(Path(argv[1]))
    except Unobtainable as exc:
        print(f"build_guest: cannot be obtained: {exc}", file=sys.stderr)
        return 77
    print(f"kernel  {g.kernel} ({g.kernel_package})")
    print(f"initrd  {g.initrd} (modules: {' '.join(g.modules) or 'none, all built in'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
