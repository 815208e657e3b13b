#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Foundation

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
        var groupsPerVLAN: [Int: Int] = [:]
        for group in groups { groupsPerVLAN[group.vlan, default: 0] += 1 }
        let vlans = Set(queriers.map(\.vlan)).union(groupsPerVLAN.keys).sorted()
        family("groups", "gauge", "Groups with members, per VLAN.", vlans.map { ([("vlan", String($0))], Double(groupsPerVLAN[$0] ?? 0)) })
        family("memberships", "gauge", "Group memberships of ports, per VLAN.",
               vlans.map { vlan in ([("vlan", String(vlan))], Double(groups.filter { $0.vlan == vlan }.reduce(0) { $0 + $1.members.count })) })
        family("router_ports", "gauge", "Router ports, per VLAN.",
               vlans.map { vlan in ([("vlan", String(vlan))], Double(routerPorts.filter { $0.vlan == vlan }.count)) })
        family("querier", "gauge", "The querier of each VLAN: 1 for the role it has (us, other, none).",
               queriers.flatMap { q in ["us", "other", "none"].map { ([("vlan", String(q.vlan)), ("role", $0)], q.role == $0 ? 1 : 0) } })
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
        return out
    }

    private static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}

/// A minimal HTTP/1.0 endpoint for Prometheus: GET /metrics answers the text format, anything
/// else 404. The daemon serves it off its forwarding threads; each client gets a short timeout.
public final class MetricsServer {
    public let descriptor: Int32
    public let address: String

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
        guard bound == 0, Glibc.listen(fd, 16) == 0 else {
            let error = ControlError.system("cannot listen for metrics", listen)
            close(fd)
            throw error
        }
        descriptor = fd
        self.address = listen
    }

    deinit { close(descriptor) }

    public func serve(_ body: () -> String) {
        while true {
            let client = accept(descriptor, nil, nil)
            guard client >= 0 else { return }
            defer { close(client) }
            var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var request: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 2048)
            while request.count < 8192 {
                let n = chunk.withUnsafeMutableBytes { read(client, $0.baseAddress, $0.count) }
                guard n > 0 else { break }
                request += chunk[0..<n]
                if request.count >= 4, request.suffix(4) == [13, 10, 13, 10] { break }
            }
            let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
            let words = line.split(separator: " ")
            let response: String
            if words.count >= 2, words[0] == "GET", words[1] == "/metrics" || words[1].hasPrefix("/metrics?") {
                let text = body()
                response = "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                    + "Content-Length: \(text.utf8.count)\r\nConnection: close\r\n\r\n" + text
            } else {
                let text = "not found: try /metrics\n"
                response = "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: \(text.utf8.count)\r\n"
                    + "Connection: close\r\n\r\n" + text
            }
            let bytes = Array(response.utf8)
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
                guard n > 0 else { break }
                offset += n
            }
        }
    }
}
