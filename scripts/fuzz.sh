#!/usr/bin/env bash
# Fuzz the parsers and the engine together with libFuzzer.
#   scripts/fuzz.sh [SECONDS] [LIBFUZZER FLAGS...]     default 30 s; e.g. scripts/fuzz.sh 3600 -jobs=2
# Builds Fuzz/FuzzFrames.swift with the Wire and SwitchEngine sources and swift-collections' Heap
# (swiftc -sanitize=fuzzer,address),
# starts from the committed seed corpus (Fuzz/corpus: frames captured from Linux hosts and built by the
# switch) and keeps what it finds in .build/fuzz/corpus. A crash leaves crash-* files to turn into unit tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v swiftc >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
seconds=${1:-30}
shift || true
out=.build/fuzz
mkdir -p "$out/corpus"
flags=(-sanitize=fuzzer,address -parse-as-library -O -g)
# The engine's timers use swift-collections' Heap: its two modules are built here as SwiftPM
# would (package name, the language features its Package.swift enables).
[ -d .build/checkouts/swift-collections ] || swift package resolve
collections=.build/checkouts/swift-collections/Sources
collectionFlags=(-package-name swift_collections -enable-upcoming-feature MemberImportVisibility
    -enable-experimental-feature BuiltinModule -enable-experimental-feature Lifetimes
    -enable-experimental-feature InoutLifetimeDependence -enable-experimental-feature AddressableParameters
    -enable-experimental-feature AddressableTypes
    -enable-experimental-feature "AvailabilityMacro=SwiftStdlib 5.0:macOS 10.14.4"
    -enable-experimental-feature "AvailabilityMacro=SwiftStdlib 6.2:macOS 26.0")
find "$collections/InternalCollectionsUtilities" -name '*.swift' -print0 |
    xargs -0 swiftc "${flags[@]}" "${collectionFlags[@]}" -module-name InternalCollectionsUtilities -emit-module \
        -emit-module-path "$out/InternalCollectionsUtilities.swiftmodule" -emit-library -static \
        -o "$out/libInternalCollectionsUtilities.a"
swiftc "${flags[@]}" "${collectionFlags[@]}" -I "$out" -module-name HeapModule -emit-module \
    -emit-module-path "$out/HeapModule.swiftmodule" -emit-library -static -o "$out/libHeapModule.a" "$collections"/HeapModule/*.swift
swiftc "${flags[@]}" -module-name Wire -emit-module -emit-module-path "$out/Wire.swiftmodule" \
    -emit-library -static -o "$out/libWire.a" Sources/Wire/*.swift
swiftc "${flags[@]}" -module-name SwitchEngine -I "$out" -emit-module -emit-module-path "$out/SwitchEngine.swiftmodule" \
    -emit-library -static -o "$out/libSwitchEngine.a" Sources/SwitchEngine/*.swift
swiftc "${flags[@]}" -I "$out" -L "$out" -lSwitchEngine -lWire -lHeapModule -lInternalCollectionsUtilities \
    Fuzz/FuzzFrames.swift -o "$out/fuzz-frames"
cd "$out"
./fuzz-frames -max_total_time="$seconds" -max_len=2048 -print_final_stats=1 "$@" corpus ../../Fuzz/corpus
