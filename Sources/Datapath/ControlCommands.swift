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
    func answer(_ request: ControlRequest, client: Int32) -> ControlAnswer? {
        do {
            switch request {
            case .capture(let capture):
                try startCapture(capture, client: client)
                return nil
            case .status(let format):
                // Made on the status worker and sent when it is done (`handle`, Token.wakeup).
                guard statusWorker.submit(client: client, format: format == .text ? .text : .json) else {
                    throw ControlError("busy: too many status requests waiting")
                }
                return nil
            case .ping: return .pong
            case .port(let change): try portCommand(change)
            case .fdb(let change): try fdbCommand(change)
            case .mdb(let change): try mdbCommand(change)
            }
            return .ok
        } catch {
            return .error("\(error)")
        }
    }


    /// `capture PORT|* all|control`: the client's socket becomes a capture stream, its ports
    /// named to it first (`CaptureRecord`).
    func startCapture(_ request: ControlRequest.CaptureRequest, client: Int32) throws {
        if let name = request.port, engine.port(named: name) == nil { throw ControlError("no port named \(name)") }
        writeAll(client, ControlAnswer.ok.lineBytes)
        let stream = CaptureStream(descriptor: client, port: request.port, controlOnly: request.controlOnly)
        for (index, port) in ports.enumerated() { stream.portNamed(port?.name, at: index) }
        captures.append(stream)
        // A capture sees every frame: while one runs, the switch's threads forward them all.
        fastPath?.removeAll()
        logger.info("capture started (\(request.port ?? "every port"), \(request.controlOnly ? "control" : "all") frames)")
    }

    /// Port `index` is now `name` (nil: removed), for the captures' clients.
    func nameToCaptures(_ name: String?, port index: Int) {
        for stream in captures { stream.portNamed(name, at: index) }
    }

    func portCommand(_ change: ControlRequest.PortChange) throws {
        switch change {
        case .add(let port): try addPort(port)
        case .remove(let name): try removePort(named: name)
        }
    }

    func fdbCommand(_ change: ControlRequest.FDBChange) throws {
        switch change {
        case .flush:
            engine.flushMACs()
            logger.notice("MAC table flushed")
        }
    }

    /// `mdb flush [VLAN]`, `mdb add PORT GROUP VLAN`, `mdb del PORT GROUP VLAN`.
    func mdbCommand(_ change: ControlRequest.MDBChange) throws {
        switch change {
        case .flush(nil):
            engine.flushMemberships()
        case .flush(let vlan?):
            engine.flushMemberships(in: vlan)
        case .add(let entry), .remove(let entry):
            guard let port = engine.port(named: entry.port) else { throw ControlError("no port named \(entry.port)") }
            guard engine.ports[port.index]?.vlans.contains(entry.vlan) == true else {
                throw ControlError("port \(entry.port) is not in VLAN \(entry.vlan)")
            }
            if case .add = change {
                engine.addStaticMembership(port, to: entry.group, in: entry.vlan)
            } else if !engine.removeStaticMembership(port, from: entry.group, in: entry.vlan) {
                throw ControlError("no static entry for \(entry.group) on \(entry.port) in VLAN \(entry.vlan)")
            }
        }
        logger.notice("\(ControlRequest.mdb(change).line)")
    }
}
