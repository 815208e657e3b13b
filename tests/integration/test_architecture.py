"""The folders are the architecture (docs/ARCHITECTURE.md): each module of Sources/ imports
only what its row there allows. Reads the sources; builds no namespace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SOURCES = Path(__file__).resolve().parents[2] / "Sources"
IMPORT = re.compile(r"^\s*(?:@testable\s+|@_implementationOnly\s+)?import\s+(?:(?:struct|class|enum|func|var)\s+)?([A-Za-z_][A-Za-z0-9_]*)", re.M)

# What each module may import; anything else is a layering error.
SYSTEM = {"Glibc", "Synchronization"}
ALLOWED = {
    "Wire": set(),
    "SwitchEngine": {"Wire", "HeapModule"},
    "Ports": {"Wire", "CLinux", "CNetlink", "CPcap", "CBPF", "CLibbpf"} | SYSTEM,
    "Control": {"SwitchEngine", "Wire", "CLinux", "CPcap", "Foundation"} | SYSTEM,
    "Datapath": {"SwitchEngine", "Wire", "Ports", "Control", "CLinux", "Foundation", "Logging"} | SYSTEM,
    "snoopswitch": {"Datapath", "Control", "SwitchEngine", "Wire", "Ports", "Foundation", "Logging",
                    "ArgumentParser"} | SYSTEM,
}


def imports_of(module: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((SOURCES / module).rglob("*.swift")):
        for name in IMPORT.findall(path.read_text()):
            found.setdefault(name, set()).add(path.name)
    return found


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_module_imports_only_what_its_layer_allows(module):
    wrong = {name: files for name, files in imports_of(module).items() if name not in ALLOWED[module]}
    assert not wrong, (f"Sources/{module} imports {sorted(wrong)} ({wrong}); docs/ARCHITECTURE.md says it may "
                       f"import only {sorted(ALLOWED[module]) or 'nothing'}")


def test_every_swift_module_has_a_row():
    modules = {p.name for p in SOURCES.iterdir() if p.is_dir() and any(p.rglob("*.swift"))}
    assert modules <= set(ALLOWED), f"modules without a layering rule: {sorted(modules - set(ALLOWED))}"


def test_the_checker_sees_imports():
    # A checker that found nothing would pass every module: it must see what Datapath imports.
    assert {"SwitchEngine", "Ports", "Control"} <= set(imports_of("Datapath"))
