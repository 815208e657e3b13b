// swift-tools-version: 6.1
import PackageDescription

// The folders are the architecture: Wire (frame views and builders), SwitchEngine (pure:
// frames and time in, decisions out), Ports (sockets and link events), Control (status model,
// control socket), Datapath (the event loop joining them), snoopswitch (the command line).
// No `platforms`: it lists minimum versions of Apple's systems, and the switch runs on Linux
// only (AF_PACKET, TCX, libnl).
let package = Package(
    name: "snoopswitch",
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
        .systemLibrary(
            name: "CLibbpf",
            pkgConfig: "libbpf",
            providers: [.apt(["libbpf-dev"])]
        ),
        // The BPF programs the switch gives the kernel (programs/*.bpf.c) and the layouts of
        // their maps (include/CBPF.h, which Ports reads too). The programs are C for the kernel,
        // not for this machine: CompileBPF compiles them for Ports, which loads them with libbpf.
        .target(name: "CBPF", exclude: ["programs"]),
        // Has its tool, BPFCompiler, run /usr/bin/clang -O2 -g -target bpf on each of CBPF's
        // programs as part of the build, into the plugin's work directory, and put the objects
        // into a Swift source of Ports with their bytes (loaded with bpf_object__open_mem).
        // Built, not committed as cilium/ebpf's bpf2go does: an object can then never differ
        // from its source, and nothing generated waits in the repository to be regenerated; the
        // price is Debian's clang at build time (scripts/install-deps.sh installs it, as it
        // installs libbpf-dev). Embedded rather than installed beside the binary: the switch
        // stays one file.
        .plugin(name: "CompileBPF", capability: .buildTool(), dependencies: ["BPFCompiler"]),
        .executableTarget(name: "BPFCompiler", path: "Plugins/BPFCompiler"),
        .target(name: "Wire"),
        .target(name: "SwitchEngine", dependencies: ["Wire", .product(name: "HeapModule", package: "swift-collections")]),
        .target(name: "Ports", dependencies: ["CLinux", "CBPF", "CLibbpf", "CNetlink", "CPcap", "Wire"], plugins: ["CompileBPF"]),
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
        .testTarget(name: "PortsTests", dependencies: ["Ports", "Wire"]),
        .testTarget(name: "DatapathTests", dependencies: ["Datapath", "SwitchEngine"]),
    ]
)
