#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Foundation
import SwitchEngine

/// The status in the Prometheus text exposition format (version 0.0.4).
extension StatusReport {
    public func prometheusText() -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(labels: [(String, String)], value: Double)]) {
            out += "# HELP snoopswitch_\(name) \(help)\n# TYPE snoopswitch_\(name) \(type)\n"
            for sample in samples {
                let labels = sample.labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",")
                let value = sample.value == sample.value.rounded() && abs(sample.value) < 1e15
                    ? String(Int64(sample.value)) : String(sample.value)
                out += "snoopswitch_\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(value)\n"
            }
        }
        func perPort(_ value: (Port) -> UInt64) -> [(labels: [(String, String)], value: Double)] {
            ports.map { ([("port", $0.name)], Double(value($0))) }
        }
        family("port_up", "gauge", "Whether the port's link is up.", ports.map { ([("port", $0.name)], $0.link == "up" ? 1 : 0) })
        family("port_receive_frames_total", "counter", "Frames received on the port.", perPort(\.rxFrames))
        family("port_receive_bytes_total", "counter", "Bytes received on the port.", perPort(\.rxBytes))
        family("port_transmit_frames_total", "counter", "Frames sent out of the port.", perPort(\.txFrames))
        family("port_transmit_bytes_total", "counter", "Bytes sent out of the port.", perPort(\.txBytes))
        family("port_drops_total", "counter", "Frames dropped on the port, in and out.", perPort(\.drops))
        family("port_link_changes_total", "counter", "Times the port's link went down or came up.", perPort(\.linkChanges))
        family("drops_total", "counter", "Frames dropped, by reason.",
               dropsByReason.sorted { $0.key < $1.key }.map { ([("reason", $0.key)], Double($0.value)) })
        // Per VLAN and protocol (igmp: IPv4 groups, routers and querier; mld: IPv6).
        var vlansOf: [String: Set<Int>] = [:]
        for q in queriers { vlansOf[q.protocol, default: []].insert(q.vlan) }
        for g in groups { vlansOf[g.protocol, default: []].insert(g.vlan) }
        let series = vlansOf.keys.sorted().flatMap { proto in vlansOf[proto]!.sorted().map { (proto, $0) } }
        func labels(_ proto: String, _ vlan: Int) -> [(String, String)] { [("protocol", proto), ("vlan", String(vlan))] }
        family("groups", "gauge", "Groups with members, per VLAN and protocol.", series.map { proto, vlan in
            (labels(proto, vlan), Double(groups.filter { $0.vlan == vlan && $0.protocol == proto }.count))
        })
        family("memberships", "gauge", "Group memberships of ports, per VLAN and protocol.", series.map { proto, vlan in
            (labels(proto, vlan), Double(groups.filter { $0.vlan == vlan && $0.protocol == proto }.reduce(0) { $0 + $1.members.count }))
        })
        family("router_ports", "gauge", "Router ports, per VLAN and protocol.", series.map { proto, vlan in
            (labels(proto, vlan), Double(routerPorts.filter { $0.vlan == vlan && $0.protocol == proto }.count))
        })
        family("querier", "gauge", "The querier of each VLAN and protocol: 1 for the role it has (us, other, none).",
               queriers.flatMap { q in
                   ["us", "other", "none"].map { (labels(q.protocol, q.vlan) + [("role", $0)], q.role == $0 ? 1 : 0) }
               })
        family("mac_entries", "gauge", "Entries in the MAC table.", [([], Double(macs.count))])
        family("kernel_flows", "gauge", "Unicast flows the kernel fast path forwards.", [([], Double(datapath.kernelFlows))])
        family("cloned_frames_total", "counter", "Frames the kernel cloned out of a port for the switch (egress replication).",
               [([], Double(datapath.clonedFrames))])
        family("igmp_received_total", "counter", "IGMP and PIM messages received, by type.",
               igmp.received.sorted { $0.key < $1.key }.map { ([("type", $0.key)], Double($0.value)) })
        family("igmp_sent_total", "counter", "IGMP messages the switch sent, by type.",
               igmp.sent.sorted { $0.key < $1.key }.map { ([("type", $0.key)], Double($0.value)) })
        family("igmp_errors_total", "counter", "IGMP messages refused, by error.",
               igmp.errors.sorted { $0.key < $1.key }.map { ([("error", $0.key)], Double($0.value)) })
        family("mld_received_total", "counter", "MLD, PIMv6 and IPv6 router discovery messages received, by type.",
               mld.received.sorted { $0.key < $1.key }.map { ([("type", $0.key)], Double($0.value)) })
        family("mld_sent_total", "counter", "MLD messages the switch sent, by type.",
               mld.sent.sorted { $0.key < $1.key }.map { ([("type", $0.key)], Double($0.value)) })
        family("mld_errors_total", "counter", "MLD messages refused, by error.",
               mld.errors.sorted { $0.key < $1.key }.map { ([("error", $0.key)], Double($0.value)) })
        return out
    }

    private static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}

/// A minimal HTTP endpoint for Prometheus: GET /metrics answers the text format, anything else
/// an error. Every socket is non-blocking and served from the caller's epoll loop: a connection
/// has `deadline` for all of it (its request in, its answer out), and at most
/// `maximumConnections` are open, so clients that send a byte a second hold up neither other
/// scrapes nor what else the loop does.
public final class MetricsServer {
    public let descriptor: Int32
    public let address: String

    /// Open connections at most; a new one past them closes the oldest (a scrape takes
    /// milliseconds, so what is old is slow, and slow clients cannot keep a scrape out).
    public static let maximumConnections = 16
    /// For the whole request and its answer; then 408 and close.
    public static let deadline: Duration = .seconds(5)

    /// How connections ended, counted for the metrics page itself.
    public enum Outcome: String, CaseIterable, Sendable {
        /// A complete request, answered (200, 404, 405).
        case answered
        /// A request that was not HTTP or too long (400, 431).
        case badRequest = "bad_request"
        /// Not complete, or its answer not taken, by the deadline (408).
        case timedOut = "timed_out"
        /// Closed to make room for a new connection (503).
        case overLimit = "over_limit"
        /// The client left before its request was complete.
        case clientLeft = "client_left"
    }
    public private(set) var outcomes: [Outcome: UInt64] = [:]

    private struct Connection {
        var reader: HTTPRequestReader
        var opened: Instant
        /// The answer once the request is complete, and how much of it is sent.
        var answer: [UInt8]?
        var sent = 0
        /// When to try again to send the rest of the answer.
        var retry = Instant.zero
    }
    private var connections: [Int32: Connection] = [:]

    /// `A.B.C.D:PORT` (IPv4).
    public init(listen: String) throws(ControlError) {
        let parts = listen.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]), port > 0 else {
            throw ControlError("--metrics '\(listen)' is not ADDRESS:PORT")
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, String(parts[0]), &address.sin_addr) == 1 else {
            throw ControlError("--metrics '\(listen)': '\(parts[0])' is not an IPv4 address")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw .system("socket", listen) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 64) == 0 else {
            let error = ControlError.system("cannot listen for metrics", listen)
            close(fd)
            throw error
        }
        descriptor = fd
        self.address = listen
    }

    deinit {
        for fd in connections.keys { close(fd) }
        close(descriptor)
    }

    public func isConnection(_ fd: Int32) -> Bool { connections[fd] != nil }

    /// Open connections (reading their request or sending their answer).
    public var connectionCount: Int { connections.count }

    /// When the loop must call `expire` next: the earliest deadline, or soon while an answer
    /// waits for its client to read.
    public var nextDeadline: Instant? {
        var next: Instant?
        for connection in connections.values {
            let due = connection.answer == nil ? connection.reader.deadline : connection.retry
            next = min(next ?? due, due)
        }
        return next
    }

    /// Accepts every waiting client; `register` puts each on the loop (readable), `unregister`
    /// takes a connection closed to make room off it.
    public func accept(at now: Instant, register: (Int32) -> Void, unregister: (Int32) -> Void) {
        while true {
            let fd = Glibc.accept(descriptor, nil, nil)
            guard fd >= 0 else {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            if connections.count >= Self.maximumConnections,
               let oldest = connections.min(by: { $0.value.opened < $1.value.opened })?.key {
                end(oldest, .overLimit, unregister: unregister,
                    with: Self.response("503 Service Unavailable", "too many connections to the metrics endpoint\n"))
            }
            var size: Int32 = 4 << 20
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            connections[fd] = Connection(reader: HTTPRequestReader(deadline: now + Self.deadline), opened: now)
            register(fd)
        }
    }

    /// Reads what a client sent, without blocking. Once its request is complete it is
    /// answered (`body` makes the metrics page) and the connection leaves the loop.
    public func readable(_ fd: Int32, at now: Instant, unregister: (Int32) -> Void, body: () -> String) {
        guard var connection = connections[fd], connection.answer == nil else { return }
        var chunk = [UInt8](repeating: 0, count: 2048)
        var outcome = HTTPRequestReader.Outcome.incomplete
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                outcome = connection.reader.outcome(at: now)
                break
            }
            if n <= 0 {
                guard connection.reader.count > 0 else { return end(fd, .clientLeft, unregister: unregister) }
                outcome = connection.reader.outcome(at: now, ended: true)
                break
            }
            outcome = connection.reader.receive(chunk[0..<n], at: now)
            if outcome != .incomplete { break }
        }
        connections[fd] = connection
        conclude(fd, outcome, at: now, unregister: unregister, body: body)
    }

    /// Answers 408 to clients whose deadline passed (those whose request came complete, late,
    /// are answered) and goes on with answers their clients read slowly.
    public func expire(at now: Instant, unregister: (Int32) -> Void, body: () -> String) {
        for (fd, connection) in connections {
            if connection.answer != nil {
                if now >= connection.retry { send(fd, at: now, unregister: unregister) }
            } else if now >= connection.reader.deadline {
                readable(fd, at: now, unregister: unregister, body: body)
            }
        }
    }

    private func conclude(_ fd: Int32, _ outcome: HTTPRequestReader.Outcome, at now: Instant,
                          unregister: (Int32) -> Void, body: () -> String) {
        switch outcome {
        case .incomplete:
            return
        case .complete(let head):
            unregister(fd)
            outcomes[.answered, default: 0] += 1
            connections[fd]?.answer = answer(head, body: body)
        case .malformed(let why):
            end(fd, .badRequest, unregister: unregister, with: Self.response("400 Bad Request", "\(why)\n"))
            return
        case .tooLarge:
            end(fd, .badRequest, unregister: unregister,
                with: Self.response("431 Request Header Fields Too Large", "request head over \(HTTPRequestReader.maximumBytes) bytes\n"))
            return
        case .timedOut:
            end(fd, .timedOut, unregister: unregister,
                with: Self.response("408 Request Timeout", "no complete request within \(Self.deadline.secondsValue) s\n"))
            return
        }
        send(fd, at: now, unregister: unregister)
    }

    private func answer(_ head: HTTPRequestReader.Head, body: () -> String) -> [UInt8] {
        guard head.target == "/metrics" || head.target.hasPrefix("/metrics?") else {
            return Self.response("404 Not Found", "not found: try /metrics\n")
        }
        guard head.method == "GET" else {
            return Self.response("405 Method Not Allowed", "only GET /metrics\n", extraHeaders: "Allow: GET\r\n")
        }
        return Self.response("200 OK", body() + listenerText(), contentType: "text/plain; version=0.0.4; charset=utf-8")
    }

    /// Writes what the client takes now; closes once all is sent, the client is gone, or the
    /// deadline passed.
    private func send(_ fd: Int32, at now: Instant, unregister: (Int32) -> Void) {
        guard var connection = connections[fd], let answer = connection.answer else { return }
        while connection.sent < answer.count {
            let n = answer[connection.sent...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, clinux_MSG_DONTWAIT | clinux_MSG_NOSIGNAL)
            }
            if n > 0 { connection.sent += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && now < connection.opened + Self.deadline {
                connection.retry = now + .milliseconds(5)
                connections[fd] = connection
                return
            }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { outcomes[.timedOut, default: 0] += 1 }
            break
        }
        connections[fd] = nil
        Self.closeDraining(fd)
    }

    /// Closes a connection at once, with a last answer if the socket takes it now.
    private func end(_ fd: Int32, _ outcome: Outcome, unregister: (Int32) -> Void, with last: [UInt8]? = nil) {
        outcomes[outcome, default: 0] += 1
        unregister(fd)
        connections[fd] = nil
        if let last {
            _ = last.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, clinux_MSG_DONTWAIT | clinux_MSG_NOSIGNAL) }
        }
        Self.closeDraining(fd)
    }

    /// Reads what the client sent beyond its request (up to 64 KiB, without waiting) before
    /// closing: a socket closed with unread bytes resets the connection, and the client may
    /// then lose the answer that is on its way.
    private static func closeDraining(_ fd: Int32) {
        var chunk = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<16 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 || (n < 0 && errno == EINTR) else { break }
        }
        Glibc.close(fd)
    }

    /// The endpoint's own counters, after the switch's.
    private func listenerText() -> String {
        var out = "# HELP snoopswitch_metrics_connections_total Connections to this endpoint, by how they ended.\n"
            + "# TYPE snoopswitch_metrics_connections_total counter\n"
        for outcome in Outcome.allCases {
            out += "snoopswitch_metrics_connections_total{outcome=\"\(outcome.rawValue)\"} \(outcomes[outcome] ?? 0)\n"
        }
        return out
    }

    static func response(_ status: String, _ text: String, contentType: String = "text/plain; charset=utf-8",
                         extraHeaders: String = "") -> [UInt8] {
        Array(("HTTP/1.0 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(text.utf8.count)\r\n"
               + extraHeaders + "Connection: close\r\n\r\n" + text).utf8)
    }
}
