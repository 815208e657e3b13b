#if canImport(Glibc)
import Glibc
#endif

/// One interface, one switch: a switch claims each interface it serves, so that a second switch
/// on the same interface (which would deliver every frame twice) is refused and told whose it is.
///
/// A claim is an flock()ed file, `/run/snoopswitch/ports/<netns inode>-<ifindex>` (the
/// interface's identity: its network namespace, the switch process's own, and its index there),
/// holding the owner's pid and control socket. The kernel lets the lock go when its descriptor
/// closes, even when the process is killed, so a claim never outlives its switch; the file a
/// killed switch leaves is taken over by the next one. TAP ports need none: the switch creates
/// them, and a name already taken is refused by TUNSETIFF.
public final class PortClaim {
    public static let directory = "/run/snoopswitch/ports"

    /// What refuses a claim: the switch that holds it (its own words, as it wrote them).
    public struct Taken: Error, CustomStringConvertible, Sendable {
        public let interface: String
        /// The other switch's pid, if its claim said it.
        public let pid: Int32?
        /// The other switch's control socket, if its claim said it.
        public let control: String?

        public var description: String {
            var owner: [String] = []
            if let pid { owner.append("pid \(pid)") }
            if let control { owner.append("control socket \(control)") }
            return "interface \(interface) is a port of another snoopswitch (\(owner.isEmpty ? "its pid unknown" : owner.joined(separator: ", ")))"
        }
    }

    public enum Failure: Error, CustomStringConvertible, Sendable {
        /// Another switch holds the interface.
        case taken(Taken)
        /// The claim could not be made (no /run, read-only, ...): the switch may go on without.
        case system(SystemError)

        public var description: String {
            switch self {
            case .taken(let taken): taken.description
            case .system(let error): "\(error)"
            }
        }
    }

    public let interface: String
    public let path: String
    private var descriptor: Int32

    /// Claims interface `index` (named `interface`) of this process's network namespace for
    /// the switch whose control socket is `control`.
    public init(interface: String, index: Int32, control: String) throws(Failure) {
        self.interface = interface
        let namespace = try Self.namespaceInode()
        path = "\(Self.directory)/\(namespace)-\(index)"
        try Self.makeDirectory()
        // A holder removes its file before it closes it: a descriptor that locked a file no
        // longer at the path holds nothing, and tries again.
        while true {
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
            guard fd >= 0 else { throw .system(SystemError("open", path)) }
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                let error = errno
                defer { close(fd) }
                guard error == EWOULDBLOCK else { throw .system(SystemError("flock", path, errno: error)) }
                throw .taken(Self.owner(of: fd, interface: interface))
            }
            var held = stat(), atPath = stat()
            if fstat(fd, &held) == 0, stat(path, &atPath) == 0, held.st_ino == atPath.st_ino, held.st_dev == atPath.st_dev {
                descriptor = fd
                break
            }
            close(fd)
        }
        let text = Array("pid \(getpid())\ncontrol \(Self.absolute(control))\ninterface \(interface)\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = text.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
    }

    /// Lets the interface go: the file is removed while still locked, then closed.
    public func release() {
        guard descriptor >= 0 else { return }
        unlink(path)
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }

    /// The inode of this process's network namespace: its identity while it exists.
    static func namespaceInode() throws(Failure) -> UInt {
        var info = stat()
        guard stat("/proc/self/ns/net", &info) == 0 else { throw .system(SystemError("stat", "/proc/self/ns/net")) }
        return UInt(info.st_ino)
    }

    private static func makeDirectory() throws(Failure) {
        var partial = ""
        for part in directory.split(separator: "/") {
            partial += "/\(part)"
            if mkdir(partial, 0o755) != 0 && errno != EEXIST { throw .system(SystemError("mkdir", partial)) }
        }
    }

    /// What the holder of `fd`'s lock wrote; a holder that has just locked may not have
    /// written yet, so an empty file is read again for a little while.
    private static func owner(of fd: Int32, interface: String) -> Taken {
        var fields: [String: String] = [:]
        for _ in 0..<20 {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                for line in String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n") {
                    guard let space = line.firstIndex(of: " ") else { continue }
                    fields[String(line[..<space])] = String(line[line.index(after: space)...])
                }
                if fields["pid"] != nil { break }
            }
            usleep(5_000)
        }
        return Taken(interface: interface, pid: fields["pid"].flatMap { Int32($0) }, control: fields["control"])
    }

    private static func absolute(_ path: String) -> String {
        guard !path.hasPrefix("/") else { return path }
        guard let cwd = getcwd(nil, 0) else { return path }
        defer { free(cwd) }
        let directory = String(cString: cwd)
        return directory == "/" ? "/\(path)" : "\(directory)/\(path)"
    }
}
