// swift-tools-version: 6.1
import PackageDescription

// The folders are the architecture: Wire (frame views and builders), SwitchEngine (pure:
// frames and time in, decisions out), Ports (sockets and link events), Control (status model,
// control socket), Datapath (the event loop joining them), snoopswitch (the command line).
let package = Package(
    name: "snoopswitch",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "snoopswitch", targets: ["snoopswitch"]),
        // The pure engine and the wire views, for Benchmarks/ (a package of its own).
        .library(name: "SnoopSwitchEngine", targets: ["SwitchEngine", "Wire"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // Heap, for the engine's timers (SwitchEngine only).
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
    ],
    targets: [
        // Linux definitions Glibc does not expose to Swift (sockaddr_ll, auxdata, tun, virtio_net, mmsg).
        .target(name: "CLinux"),
        .systemLibrary(
            name: "CNetlink",
            pkgConfig: "libnl-route-3.0",
            providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]
        ),
        .systemLibrary(
            name: "CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"])]
        ),
        .target(name: "Wire"),
        .target(name: "SwitchEngine", dependencies: ["Wire", .product(name: "HeapModule", package: "swift-collections")]),
        .target(name: "Ports", dependencies: ["CLinux", "CNetlink", "CPcap", "Wire"]),
        .target(name: "Control", dependencies: ["SwitchEngine", "Wire", "CPcap", "CLinux"]),
        .target(
            name: "Datapath",
            dependencies: ["SwitchEngine", "Ports", "Control", "Wire", "CLinux", .product(name: "Logging", package: "swift-log")]
        ),
        .executableTarget(
            name: "snoopswitch",
            dependencies: [
                "Datapath", "Control", "SwitchEngine", "Wire", "Ports",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "WireTests", dependencies: ["Wire"]),
        .testTarget(name: "SwitchEngineTests", dependencies: ["SwitchEngine", "Wire"]),
        .testTarget(name: "ControlTests", dependencies: ["Control", "SwitchEngine", "Wire"]),
        .testTarget(name: "PortsTests", dependencies: ["Ports"]),
        .testTarget(name: "DatapathTests", dependencies: ["Datapath", "SwitchEngine"]),
    ]
)
