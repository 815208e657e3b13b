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

# Each stage says when it starts, so that a slow one shows (the whole should stay near 20 min).
stage() { echo "== $* [$(date +%T), ${SECONDS}s in]"; }

stage "dependencies"
bash scripts/install-deps.sh

stage "swift build"
swift build
SNOOPSWITCH="$(swift build --show-bin-path)/snoopswitch"
export SNOOPSWITCH

status=0
stage "swift test (unit tests)"
swift test || { echo "test.sh: unit tests FAILED" >&2; status=1; }

stage "integration tests (pytest, tests/integration)"
/usr/bin/python3 -m pytest -q tests/integration "$@" || { echo "test.sh: integration tests FAILED" >&2; status=1; }

# With pytest arguments (a selection), stop here: the stages below are for the whole run.
if (($# == 0)); then
    stage "fuzzing: parsers and engine, 20 s from the seed corpus (scripts/fuzz.sh)"
    bash scripts/fuzz.sh 20 >.build/fuzz.log 2>&1 || { tail -n 40 .build/fuzz.log >&2; echo "test.sh: fuzzing FAILED" >&2; status=1; }
    grep -E "^Done|stat::number_of_executed_units" .build/fuzz.log || true

    # XCTest's own runtime leaks a few objects at exit: leak detection is off, every other check on.
    stage "unit tests under AddressSanitizer"
    ASAN_OPTIONS=detect_leaks=0 swift test --sanitize=address --scratch-path .build-asan \
        || { echo "test.sh: unit tests under ASan FAILED" >&2; status=1; }
    stage "unit tests under ThreadSanitizer"
    swift test --sanitize=thread --scratch-path .build-tsan || { echo "test.sh: unit tests under TSan FAILED" >&2; status=1; }
    stage "hostile-input and multicast integration tests against a switch built with AddressSanitizer"
    swift build --sanitize=address --scratch-path .build-asan
    SNOOPSWITCH="$(swift build --sanitize=address --scratch-path .build-asan --show-bin-path)/snoopswitch" \
        ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
        /usr/bin/python3 -m pytest -q tests/integration/test_hostile.py tests/integration/test_multicast.py \
        || { echo "test.sh: integration tests with the ASan switch FAILED" >&2; status=1; }
    # Two forwarding threads, the status worker and the main thread, with traffic on every port
    # while status requests, SIGHUP, port del/add and link flaps come: any TSan report fails it.
    stage "the datapath under ThreadSanitizer (tests/integration/test_tsan_datapath.py)"
    swift build --sanitize=thread --scratch-path .build-tsan
    SNOOPSWITCH="$(swift build --sanitize=thread --scratch-path .build-tsan --show-bin-path)/snoopswitch" \
        SNOOPSWITCH_TSAN=1 /usr/bin/python3 -m pytest -q -rs tests/integration/test_tsan_datapath.py \
        || { echo "test.sh: the datapath under TSan FAILED" >&2; status=1; }
fi

if ((status == 0)); then echo "== all tests passed in $((SECONDS / 60)) min $((SECONDS % 60)) s"; fi
exit "$status"
