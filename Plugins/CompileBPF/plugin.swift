import Foundation
import PackagePlugin

/// Compiles the BPF programs, Sources/CBPF/programs/*.bpf.c, with clang -target bpf (through
/// BPFCompiler, into this plugin's work directory) and puts the objects into a Swift source of
/// the target it is applied to (Ports): one `BPFObjectFile` per program file, named after it
/// (fast_path.bpf.c: `.fastPath`), and `.all`.
///
/// Debian's clang (/usr/bin/clang), not the Swift toolchain's: a toolchain's clang need not
/// have the BPF target, and the objects are then the same whatever toolchain builds the switch.
///
/// SwiftPM keeps the commands a plugin gave while Package.swift is unchanged: after editing this
/// file, `touch Package.swift`. (Edits to the programs and headers need nothing of the kind.)
@main
struct CompileBPF: BuildToolPlugin {
    static let clang = URL(filePath: "/usr/bin/clang")

    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let programs = try context.package.targets(named: ["CBPF"]).first else {
            throw Failure("no CBPF target: the BPF programs live in Sources/CBPF/programs")
        }
        let folder = programs.directoryURL.appending(path: "programs")
        let include = programs.directoryURL.appending(path: "include")
        guard FileManager.default.isExecutableFile(atPath: Self.clang.path) else {
            throw Failure("\(Self.clang.path) not found: the BPF programs need Debian's clang (scripts/install-deps.sh installs it)")
        }
        let sources = try files(in: folder).filter { $0.lastPathComponent.hasSuffix(".bpf.c") }
        // Every header either program may include: a change to one compiles them all again.
        let headers = try (files(in: folder) + files(in: include)).filter { $0.pathExtension == "h" }
        let work = context.pluginWorkDirectoryURL
        let swift = work.appending(path: "BPFObjectFiles.swift")
        let flags = [
            "-O2", "-g", "-target", "bpf", "-Wall",
            "-I", include.path,
            // <linux/types.h> includes <asm/types.h>, which Debian keeps under the host's
            // multiarch directory, where clang -target bpf does not look.
            "-I", "/usr/include/\(Self.multiarch)",
            // The same objects from any clone: their debug information names no folder of this machine.
            "-fdebug-prefix-map=\(context.package.directoryURL.path)=.",
        ]
        return [
            .buildCommand(
                displayName: "Compiling the BPF programs (\(sources.map(\.lastPathComponent).joined(separator: ", ")))",
                executable: try context.tool(named: "BPFCompiler").url,
                arguments: [Self.clang.path, swift.path, work.path] + sources.map(\.path) + ["--"] + flags,
                inputFiles: sources + headers,
                outputFiles: [swift]
            ),
        ]
    }

    private func files(in folder: URL) throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    #if arch(x86_64)
    static let multiarch = "x86_64-linux-gnu"
    #elseif arch(arm64)
    static let multiarch = "aarch64-linux-gnu"
    #else
    static let multiarch = "unknown-multiarch"  // add the host's Debian multiarch name here
    #endif
}

struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
