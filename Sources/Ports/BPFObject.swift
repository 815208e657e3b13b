#if canImport(Glibc)
import Glibc
#endif
import CLibbpf

/// A BPF object file, one per Sources/CBPF/programs/*.bpf.c, compiled by the build and carried
/// in the binary (Plugins/CompileBPF generates a static property for each: `.fastPath`, ...).
struct BPFObjectFile: Sendable {
    /// The program file's name without `.bpf.c`.
    let name: String
    private let hex: StaticString

    init(name: String, hex: StaticString) {
        self.name = name
        self.hex = hex
    }

    /// The object's bytes, an ELF file.
    var bytes: [UInt8] {
        hex.withUTF8Buffer { digits in
            func value(_ digit: UInt8) -> UInt8 { digit <= UInt8(ascii: "9") ? digit - UInt8(ascii: "0") : digit - UInt8(ascii: "a") + 10 }
            return (0..<digits.count / 2).map { value(digits[2 * $0]) << 4 | value(digits[2 * $0 + 1]) }
        }
    }
}

/// An object file opened and loaded with libbpf: its maps created, its programs through the
/// verifier. The object holds the descriptors; what the kernel attached a program to (a TCX
/// link, a socket) keeps the program after the object is gone.
final class BPFObject {
    private let object: OpaquePointer
    let file: BPFObjectFile

    /// Opens `file`, gives its maps the sizes in `maxEntries` (by map name) and loads it; only
    /// the programs in `programs`, when given. `subject` names what needs it, for the error.
    init(_ file: BPFObjectFile, subject: String, maxEntries: [String: Int] = [:], programs: Set<String>? = nil)
        throws(SystemError) {
        Self.silenceLibbpf
        self.file = file
        var options = bpf_object_open_opts()
        options.sz = MemoryLayout<bpf_object_open_opts>.size
        let bytes = file.bytes
        // libbpf reads the buffer while it opens the object, not after.
        let opened = file.name.withCString { name in
            options.object_name = name
            return bytes.withUnsafeBytes { bpf_object__open_mem($0.baseAddress, $0.count, &options) }
        }
        guard let opened else { throw SystemError("BPF \(file.name).bpf.o open", subject, errno: errno) }
        object = opened
        // From here deinit closes the object, whatever throws.
        for (name, entries) in maxEntries {
            guard let map = bpf_object__find_map_by_name(object, name) else {
                throw SystemError("BPF \(file.name).bpf.o map \(name)", subject, errno: ENOENT)
            }
            let status = bpf_map__set_max_entries(map, UInt32(entries))
            guard status == 0 else { throw SystemError("BPF \(file.name).bpf.o map \(name)", subject, errno: -status) }
        }
        // The verifier's words for each program, should it refuse one (libbpf asks for them only then).
        var logs: [(name: String, log: UnsafeMutableBufferPointer<CChar>)] = []
        defer { for (_, log) in logs { log.deallocate() } }
        var program = bpf_object__next_program(object, nil)
        while let each = program {
            let name = String(cString: bpf_program__name(each))
            if let programs, !programs.contains(name) {
                bpf_program__set_autoload(each, false)
            } else {
                let log = UnsafeMutableBufferPointer<CChar>.allocate(capacity: 8192)
                log.initialize(repeating: 0)
                logs.append((name, log))
                bpf_program__set_log_buf(each, log.baseAddress, log.count)
            }
            program = bpf_object__next_program(object, each)
        }
        let status = bpf_object__load(object)
        guard status == 0 else {
            if let refused = logs.first(where: { $0.log[0] != 0 }) {
                throw SystemError.bpf("program \(refused.name)", subject, errno: -status, log: Array(refused.log))
            }
            throw SystemError("BPF \(file.name).bpf.o load", subject, errno: -status)
        }
    }

    deinit { bpf_object__close(object) }

    /// A loaded program's descriptor, valid while this object lives.
    func program(_ name: String) -> Int32 {
        guard let program = bpf_object__find_program_by_name(object, name) else {
            preconditionFailure("no program \(name) in \(file.name).bpf.c")
        }
        return bpf_program__fd(program)
    }

    /// A map's descriptor, valid while this object lives.
    func map(_ name: String) -> Int32 {
        guard let map = bpf_object__find_map_by_name(object, name) else {
            preconditionFailure("no map \(name) in \(file.name).bpf.c")
        }
        return bpf_map__fd(map)
    }

    /// libbpf prints what goes wrong on stderr by default; the switch says it once, in its own
    /// log, from the error thrown (errno and the verifier's last words).
    private static let silenceLibbpf: Void = { _ = libbpf_set_print(nil) }()
}

/// A map's entries, by descriptor: 0 or -errno, as libbpf's calls return them.
enum BPFMap {
    static func update<Key: BitwiseCopyable, Value: BitwiseCopyable>(_ map: Int32, _ key: inout Key, _ value: inout Value) -> Int32 {
        bpf_map_update_elem(map, &key, &value, UInt64(BPF_ANY))
    }

    static func lookup<Key: BitwiseCopyable, Value: BitwiseCopyable>(_ map: Int32, _ key: inout Key, _ value: inout Value) -> Int32 {
        bpf_map_lookup_elem(map, &key, &value)
    }

    static func delete<Key: BitwiseCopyable>(_ map: Int32, _ key: inout Key) -> Int32 {
        bpf_map_delete_elem(map, &key)
    }
}
