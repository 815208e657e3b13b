#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Foundation

/// A failure of the control socket, said in one line.
public struct ControlError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }

    public static func system(_ what: String, _ path: String) -> ControlError {
        ControlError("\(path): \(what): \(String(cString: strerror(errno)))")
    }
}

/// The control protocol: one request line in (`ControlRequest`), one answer out, then the
/// server closes. The answer is one line of JSON (`ControlAnswer`, or the status as
/// `StatusReport`), except for `status text`, whose answer is the tables as text, and for a
/// capture, whose `{"ok":true}` line is followed by its frame records (`CaptureRecord`).
public enum ControlProtocol {
    public static let defaultPath = "/run/snoopswitch.sock"
    public static let maximumRequestBytes = 4096

    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }

    /// `{"error": "..."}` (`ControlAnswer.error`).
    public static func errorDocument(_ message: String) -> String { ControlAnswer.error(message).line }
}

private func unixAddress(_ path: String) throws(ControlError) -> sockaddr_un {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
        throw ControlError("\(path): control socket path too long")
    }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    return address
}

private func withSocketAddress<T>(_ address: inout sockaddr_un, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
    withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
}

/// The listening end, in the daemon. It never blocks the datapath for long: each client gets a
/// short timeout to send its request line. Each client is known by its credentials
/// (SO_PEERCRED) and makes only the requests its role permits (`ControlPolicy`).
public final class ControlServer {
    public let path: String
    public let descriptor: Int32
    public let policy: ControlPolicy

    /// Binds the socket at `path` (mode 0600; with a group, 0660 and that group's, whose
    /// members may then read the status). A stale socket file left by a killed switch is
    /// replaced; a live one means another switch runs there, which is an error.
    public init(path: String, group: String? = nil) throws(ControlError) {
        var groupID: gid_t?
        if let group {
            guard let entry = getgrnam(group) else { throw ControlError("--control-group \(group): no such group") }
            groupID = entry.pointee.gr_gid
        }
        policy = ControlPolicy(group: groupID.map { ControlPolicy.Group(name: group ?? "", id: $0) })
        var address = try unixAddress(path)
        if FileManager.default.fileExists(atPath: path) {
            if (try? ControlClient.request(.ping, path: path)) != nil {
                throw ControlError("\(path): another snoopswitch is already listening there")
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw .system("socket", path) }
        let oldMask = umask(0o177)
        let bound = withSocketAddress(&address) { bind(fd, $0, $1) }
        umask(oldMask)
        guard bound == 0 else {
            let error = ControlError.system("cannot create the control socket", path)
            close(fd)
            throw error
        }
        if let groupID {
            guard chown(path, getuid(), groupID) == 0, chmod(path, 0o660) == 0 else {
                let error = ControlError.system("cannot give the control socket to its group", path)
                close(fd)
                unlink(path)
                throw error
            }
        }
        guard listen(fd, 16) == 0 else {
            let error = ControlError.system("listen", path)
            close(fd)
            unlink(path)
            throw error
        }
        self.path = path
        self.descriptor = fd
    }

    /// A client whose request line is still arriving. Clients are read without blocking, so
    /// idle or slow ones never hold up the datapath.
    struct PendingClient {
        var data: [UInt8] = []
        var since: Int64
        /// Who connected; nil if the kernel did not say.
        var peer: PeerCredentials?
    }
    private var clients: [Int32: PendingClient] = [:]
    public static let maximumClients = 64
    /// A client that has not sent its request line by then is answered with an error and closed.
    public static let requestTimeoutNanoseconds: Int64 = 2_000_000_000

    /// Accepts every waiting client; `register` puts each on the event loop.
    public func accept(at now: Int64, register: (Int32) -> Void) {
        while true {
            let client = Glibc.accept(descriptor, nil, nil)
            guard client >= 0 else { return }
            _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            guard clients.count < Self.maximumClients else {
                writeAll(client, ControlAnswer.error("too many control connections").lineBytes)
                close(client)
                continue
            }
            clients[client] = PendingClient(since: now, peer: PeerCredentials(socket: client))
            register(client)
        }
    }

    public func isClient(_ fd: Int32) -> Bool { clients[fd] != nil }

    /// Reads what a client sent. Once its request line is complete (or too long, or the client
    /// left), `handler` answers it if the client's role permits the request (otherwise the
    /// answer is an error saying why not) and the connection closes, unless the handler took
    /// the descriptor over (it returns nil: a capture stream, or an answer sent later with
    /// `respond`). `unregister` takes it off the loop.
    public func readable(_ fd: Int32, unregister: (Int32) -> Void, _ handler: (ControlRequest, Int32) -> ControlAnswer?) {
        guard var client = clients[fd] else { return }
        var chunk = [UInt8](repeating: 0, count: 4096)
        var ended = false
        while client.data.count <= ControlProtocol.maximumRequestBytes {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { break }                       // EAGAIN: the rest later
            if n == 0 { ended = true; break }
            client.data += chunk[0..<n]
            if chunk[0..<n].contains(UInt8(ascii: "\n")) { break }
        }
        let complete = client.data.contains(UInt8(ascii: "\n"))
        guard complete || ended || client.data.count > ControlProtocol.maximumRequestBytes else {
            clients[fd] = client
            return
        }
        clients[fd] = nil
        unregister(fd)
        finish(fd, client, handler)
    }

    /// Answers and closes clients that sent no complete request in time.
    public func expireClients(at now: Int64, unregister: (Int32) -> Void) {
        for (fd, client) in clients where now - client.since > Self.requestTimeoutNanoseconds {
            clients[fd] = nil
            unregister(fd)
            answer(fd, .error("no request line within 2 s"))
        }
    }

    /// When the oldest waiting client times out, if any.
    public var nextClientDeadline: Int64? { clients.values.map(\.since).min().map { $0 + Self.requestTimeoutNanoseconds } }

    /// The request's command first, then who asks, then its arguments: a client is refused a
    /// request it may not make, well formed or not.
    private func finish(_ fd: Int32, _ client: PendingClient, _ handler: (ControlRequest, Int32) -> ControlAnswer?) {
        let data = client.data
        guard data.count <= ControlProtocol.maximumRequestBytes else {
            return answer(fd, .error("request too long (over \(ControlProtocol.maximumRequestBytes) bytes)"))
        }
        guard let line = String(bytes: data.prefix { $0 != UInt8(ascii: "\n") }, encoding: .utf8),
              !line.trimmingCharacters(in: .whitespaces).isEmpty else {
            return answer(fd, .error("empty or unreadable request"))
        }
        let words: ControlRequest.Words
        do {
            words = try ControlRequest.Words(parsing: line.trimmingCharacters(in: .whitespaces))
        } catch {
            return answer(fd, .error(error.description))
        }
        guard let peer = client.peer else {
            return answer(fd, .error("permission denied: the client could not be identified (SO_PEERCRED)"))
        }
        if let refusal = policy.refusal(of: words, by: peer, as: policy.role(of: peer)) {
            return answer(fd, .error(refusal))
        }
        let request: ControlRequest
        do {
            request = try ControlRequest(words)
        } catch {
            return answer(fd, .error(error.description))
        }
        guard let reply = handler(request, fd) else { return }
        answer(fd, reply)
    }

    /// Answers a client whose request the handler took over, and closes it once sent. `line`
    /// ends with a newline: a large document is made ready on another thread, not here.
    public func respond(_ fd: Int32, line: [UInt8]) { answer(fd, bytes: line) }

    /// An answer still being written to a client that reads it slowly.
    struct Outgoing {
        var data: [UInt8]
        var offset: Int
        var since: Int64
    }
    private var outgoing: [Int32: Outgoing] = [:]

    /// Writes an answer without blocking; what does not fit now is sent later by `sendPending`.
    /// A client that closed early costs nothing (no SIGPIPE: MSG_NOSIGNAL).
    private func answer(_ fd: Int32, _ reply: ControlAnswer) { answer(fd, bytes: reply.lineBytes) }

    private func answer(_ fd: Int32, bytes: [UInt8]) {
        var pending = Outgoing(data: bytes, offset: 0, since: clinux_monotonic_nanoseconds())
        var size: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        if send(fd, &pending) { close(fd) } else { outgoing[fd] = pending }
    }

    /// True when the answer is all sent or the client is gone.
    private func send(_ fd: Int32, _ pending: inout Outgoing) -> Bool {
        while pending.offset < pending.data.count {
            let n = pending.data[pending.offset...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, clinux_MSG_DONTWAIT | clinux_MSG_NOSIGNAL)
            }
            if n > 0 { pending.offset += n; continue }
            if n < 0 && errno == EINTR { continue }
            return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        }
        return true
    }

    /// Goes on with answers that did not fit at once; gives up on a client after 2 s.
    public func sendPending(at now: Int64) {
        for fd in Array(outgoing.keys) {
            guard var pending = outgoing[fd] else { continue }
            if send(fd, &pending) || now - pending.since > Self.requestTimeoutNanoseconds {
                outgoing[fd] = nil
                close(fd)
            } else {
                outgoing[fd] = pending
            }
        }
    }

    /// Whether answers wait to be sent (the loop then wakes soon to go on).
    public var hasPendingAnswers: Bool { !outgoing.isEmpty }

    /// Removes the socket file (on exit).
    public func shutdown() {
        for fd in clients.keys { close(fd) }
        clients.removeAll()
        for fd in outgoing.keys { close(fd) }
        outgoing.removeAll()
        close(descriptor)
        unlink(path)
    }
}

public func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, clinux_MSG_NOSIGNAL) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { return }
        offset += n
    }
}

/// The asking end, in the command line (`snoopswitch status`, `port`, `fdb`, `mdb`, `capture`).
public enum ControlClient {
    /// Sends `request` and returns its answer; an error answer is thrown (its message).
    public static func ask(_ request: ControlRequest, path: String) throws(ControlError) -> String {
        let answer = try self.request(request, path: path)
        if let message = ControlAnswer.error(in: answer) { throw ControlError(message) }
        return answer
    }

    /// Connects and sends one request; the caller reads the answer (a capture stream).
    public static func open(_ request: ControlRequest, path: String) throws(ControlError) -> Int32 {
        var address = try unixAddress(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("socket", path) }
        guard withSocketAddress(&address, { connect(fd, $0, $1) }) == 0 else {
            let error = ControlError.system("cannot reach snoopswitch (is it running?)", path)
            close(fd)
            throw error
        }
        writeAll(fd, Array((request.line + "\n").utf8))
        return fd
    }

    /// Sends `request` and returns its answer as the switch sent it, without its newline.
    public static func request(_ request: ControlRequest, path: String) throws(ControlError) -> String {
        var address = try unixAddress(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("socket", path) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard withSocketAddress(&address, { connect(fd, $0, $1) }) == 0 else {
            throw .system("cannot reach snoopswitch (is it running?)", path)
        }
        writeAll(fd, Array((request.line + "\n").utf8))
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw .system("reading the answer", path) }
            if n == 0 { break }
            data += chunk[0..<n]
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
