#if canImport(Glibc)
import Glibc
#endif
import Control
import Ports
import SwitchEngine
import Wire

/// The control socket's commands, as the control server hands them over (role checked).
extension SwitchDaemon {
    /// A request the client's role permits (the control server checked it).
    func answer(_ request: ControlRequest, client: Int32) -> String? {
        let words = request.arguments
        do {
            switch request.command {
            case .capture:
                try startCapture(words, client: client)
                return nil
            case .status:
                // Made on the status worker and sent when it is done (`run`, Token.wakeup).
                let format: StatusWorker.Format
                switch words.first {
                case nil: format = .json
                case "text" where words.count == 1: format = .text
                default: throw ControlError("usage: status [text]")
                }
                guard statusWorker.submit(client: client, format: format) else { throw ControlError("busy: too many status requests waiting") }
                return nil
            case .ping: return "{\"pong\":true}"
            case .port: try portCommand(words)
            case .fdb: try fdbCommand(words)
            case .mdb: try mdbCommand(words)
            }
            return "{\"ok\":true}"
        } catch {
            return ControlProtocol.errorDocument("\(error)")
        }
    }

    /// `capture PORT|* all|control`: the client's socket becomes a capture stream.
    private func startCapture(_ words: [String], client: Int32) throws {
        guard words.count == 2, words[1] == "all" || words[1] == "control" else {
            throw ControlError("usage: capture PORT|* all|control")
        }
        var port: Int?
        if words[0] != "*" {
            guard let id = engine.port(named: words[0]) else { throw ControlError("no port named \(words[0])") }
            port = id.index
        }
        writeAll(client, Array("{\"ok\":true}\n".utf8))
        captures.append(CaptureStream(descriptor: client, port: port, controlOnly: words[1] == "control"))
        // A capture sees every frame: while one runs, the switch's threads forward them all.
        fastPath?.removeAll()
        logger.info("capture started (\(words[0] == "*" ? "every port" : words[0]), \(words[1]) frames)")
    }

    private func portCommand(_ words: [String]) throws {
        switch (words.first, words.count) {
        case ("add", 2): try addPort(try PortSpec.parse(words[1]))
        case ("del", 2): try removePort(named: words[1])
        default: throw ControlError("usage: port add SPEC | port del NAME")
        }
    }

    private func fdbCommand(_ words: [String]) throws {
        guard words == ["flush"] else { throw ControlError("usage: fdb flush") }
        engine.macs.removeAll()
        logger.notice("MAC table flushed")
    }

    /// `mdb flush [VLAN]`, `mdb add PORT GROUP VLAN`, `mdb del PORT GROUP VLAN`.
    private func mdbCommand(_ words: [String]) throws {
        func vlan(_ text: String) throws -> VLANID {
            guard let number = Int(text), let id = VLANID(number) else { throw ControlError("bad VLAN '\(text)'") }
            return id
        }
        switch (words.first, words.count) {
        case ("flush", 1):
            engine.memberships.flush()
        case ("flush", 2):
            engine.memberships.flush(vlan: try vlan(words[1]))
        case ("add", 4), ("del", 4):
            guard let port = engine.port(named: words[1]) else { throw ControlError("no port named \(words[1])") }
            guard let group = IPv4Address(words[2]), group.isMulticast, !group.isLocalNetworkControl else {
                throw ControlError("'\(words[2])' is not a multicast group outside 224.0.0.0/24")
            }
            let id = try vlan(words[3])
            guard engine.ports[port.index]?.vlans.contains(id) == true else {
                throw ControlError("port \(words[1]) is not in VLAN \(id)")
            }
            if words[0] == "add" {
                engine.memberships.addStatic(port, to: group, in: id, version: .v3)
            } else if !engine.memberships.removeStatic(port, from: group, in: id) {
                throw ControlError("no static entry for \(group) on \(words[1]) in VLAN \(id)")
            }
        default:
            throw ControlError("usage: mdb flush [VLAN] | mdb add PORT GROUP VLAN | mdb del PORT GROUP VLAN")
        }
        logger.notice("mdb \(words.joined(separator: " "))")
    }
}
