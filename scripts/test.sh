#!/usr/bin/env bash
# The project's one test command: dependencies, build, unit tests, integration tests.
#   scripts/test.sh [PYTEST ARGS...]     e.g. scripts/test.sh -k vlans -x
# Needs root (the integration tests build network namespaces). Exits non-zero if any
# stage fails; the unit and integration stages both run even if the other fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
command -v swift >/dev/null 2>&1 || { echo "test.sh: swift not found (looked on PATH and in /opt/swift/usr/bin)" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "test.sh: run as root (the integration tests create network namespaces)" >&2; exit 1; }

echo "== dependencies"
bash scripts/install-deps.sh

echo "== swift build"
swift build
SNOOPSWITCH="$(swift build --show-bin-path)/snoopswitch"
export SNOOPSWITCH

status=0
echo "== swift test (unit tests)"
swift test || { echo "test.sh: unit tests FAILED" >&2; status=1; }

echo "== integration tests (pytest, tests/integration)"
/usr/bin/python3 -m pytest -q tests/integration "$@" || { echo "test.sh: integration tests FAILED" >&2; status=1; }

if ((status == 0)); then echo "== all tests passed"; fi
exit "$status"
