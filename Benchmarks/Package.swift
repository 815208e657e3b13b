// swift-tools-version: 6.1
import PackageDescription

// Engine microbenchmarks with ordo-one's package-benchmark, kept apart from the main package so
// that it and its malloc interposer never reach the switch's own build. Run from this folder:
//   swift package benchmark
let package = Package(
    name: "snoopswitch-benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        // The main package, by path; named so that products resolve whatever the folder is called.
        .package(name: "snoopswitch", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "EngineBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "SnoopSwitchEngine", package: "snoopswitch"),
            ],
            path: "Benchmarks/EngineBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v5)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
