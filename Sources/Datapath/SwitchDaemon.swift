#if canImport(Glibc)
import Glibc
#endif
import Control
import Foundation
import Logging
import Ports
import SwitchEngine
import Wire

/// The running switch: one thread, one epoll loop over the ports' packet sockets, the link
/// monitor, the signals and the control socket. Receive a batch, decide each frame in the
/// engine, queue it on the egress ports, send each port's queue with one call.
public final class SwitchDaemon {
    /// One switch port's I/O side.
    final class PortIO {
        let name: String
        var socket: PacketSocket?
        let queue = TransmitQueue(capacity: 64)
        var txFrames: UInt64 = 0
        var txDrops: UInt64 = 0
        var rxErrors: UInt64 = 0
        /// When frames last arrived: proof of carrier while the kernel's report lags.
        var lastReceive = Instant.zero

        init(name: String) { self.name = name }
    }

    private enum Token {
        static let linkMonitor: UInt64 = 1 << 32
        static let signals: UInt64 = 1 << 32 + 1
        static let control: UInt64 = 1 << 32 + 2
    }

    private let engine: SnoopingSwitch
    private let logger: Logger
    private let ports: [PortIO]
    private let batch = ReceiveBatch(capacity: 32)
    private let poller: Poller
    private let links: LinkMonitor
    private let signals: SignalDescriptor
    private var control: ControlServer!
    private var running = true
    /// When to look at the links again: some port is held up by its frames alone.
    private var carrierCheck: Instant?

    /// Opens every port, then the control socket: once the socket exists, the switch forwards.
    /// Throws, with nothing left open, if any part cannot start.
    public init(configuration: SwitchConfiguration, controlPath: String, controlGroup: String? = nil, logger: Logger) throws {
        self.logger = logger
        for port in configuration.ports where InterfaceState.read(port.name) == nil {
            throw ControlError("interface \(port.name) does not exist")
        }
        let directory = (controlPath as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.isEmpty ? "." : directory, isDirectory: &isDirectory),
              isDirectory.boolValue else {
            throw ControlError("\(controlPath): directory \(directory) does not exist")
        }
        signals = try SignalDescriptor()
        poller = try Poller()
        links = try LinkMonitor()
        ports = configuration.ports.map { PortIO(name: $0.name) }
        let now = Self.now()
        engine = SnoopingSwitch(configuration: configuration, at: now)
        try poller.add(signals.descriptor, token: Token.signals)
        try poller.add(links.descriptor, token: Token.linkMonitor)
        for (index, port) in ports.enumerated() {
            try? InterfaceState.bringUp(port.name)
            try open(port, index: index)
        }
        refreshLinks(at: now)
        control = try ControlServer(path: controlPath, group: controlGroup)
        try poller.add(control.descriptor, token: Token.control)
    }

    private static func now() -> Instant { Instant(nanoseconds: monotonicNanoseconds()) }

    private func open(_ port: PortIO, index: Int) throws(SystemError) {
        let socket = try PacketSocket(interface: port.name)
        try poller.add(socket.descriptor, token: UInt64(index))
        port.socket = socket
    }

    private func closeSocket(of port: PortIO) {
        if let socket = port.socket { poller.remove(socket.descriptor) }
        port.queue.discard()
        port.socket = nil
    }

    /// Runs until SIGINT or SIGTERM; returns the exit status.
    public func run() -> Int32 {
        logger.info("forwarding on \(ports.count) ports; control socket \(control.path)")
        while running {
            var now = Self.now()
            engine.advance(to: now)
            sendGenerated()
            reportRefusals(at: now)
            var deadline = engine.nextDeadline(at: now)
            if let check = carrierCheck {
                if check <= now {
                    carrierCheck = nil
                    refreshLinks(at: now)
                } else {
                    deadline = min(deadline, check)
                }
            }
            let wait = deadline.nanoseconds - now.nanoseconds
            let timeout = Int32(clamping: max(0, min(60_000, (wait + 999_999) / 1_000_000)))
            for token in poller.wait(timeoutMilliseconds: timeout) {
                now = Self.now()
                switch token {
                case Token.signals: handleSignals()
                case Token.linkMonitor:
                    links.drain()
                    refreshLinks(at: now)
                case Token.control: control.serve(answer)
                default: receive(onPort: Int(token))
                }
            }
        }
        control.shutdown()
        logger.info("stopped")
        return 0
    }

    private func handleSignals() {
        for signal in signals.take() {
            switch signal {
            case SIGINT, SIGTERM:
                logger.info("signal \(signal): shutting down")
                running = false
            default:
                logger.notice("SIGHUP: nothing to re-read (no configuration file)")
            }
        }
    }

    // MARK: - Datapath

    /// Up to a few batches from one port, then the loop moves on so no port starves the others.
    private func receive(onPort index: Int) {
        let port = ports[index]
        guard let socket = port.socket else { return }
        let ingress = PortID(index)
        // Frames on a port we hold down mean its link came up before the kernel says so (it
        // reports carrier changes up to a second late): an interface that is up and receiving is up.
        port.lastReceive = Self.now()
        if !engine.linkUp.contains(ingress) { refreshLinks(at: port.lastReceive) }
        for _ in 0..<8 {
            let count: Int
            do {
                count = try batch.receive(from: socket)
            } catch {
                logger.warning("port \(port.name): \(error); rechecking the link")
                refreshLinks(at: Self.now())
                return
            }
            guard count > 0 else { return }
            let now = Self.now()
            for i in 0..<count {
                guard let frame = batch.frame(i) else {
                    port.rxErrors &+= 1
                    continue
                }
                let decision = engine.receive(
                    IngressFrame(bytes: frame.bytes, tag: frame.tag, checksumPending: frame.header.checksumPending),
                    on: ingress, at: now)
                for egress in decision.ports {
                    let out = ports[egress.index]
                    if out.queue.isFull { flush(out) }
                    let tag = engine.egressTagged(egress, vlan: decision.vlan)
                        ? VLANTag(vlan: decision.vlan, priority: decision.priority) : nil
                    out.queue.append(frame.bytes, header: frame.header, tag: tag)
                }
                if !engine.outbox.isEmpty { queueGenerated() }
            }
            for out in ports where out.queue.count > 0 { flush(out) }
            if count < batch.capacity { return }
        }
    }

    private func flush(_ port: PortIO) {
        guard let socket = port.socket else {
            port.txDrops &+= UInt64(port.queue.count)
            port.queue.discard()
            return
        }
        let (sent, failed) = port.queue.flush(to: socket)
        port.txFrames &+= UInt64(sent)
        port.txDrops &+= UInt64(failed)
    }

    private func queueGenerated() {
        for frame in engine.takeOutbox() {
            for egress in frame.ports {
                let out = ports[egress.index]
                if out.queue.isFull { flush(out) }
                let tag = engine.egressTagged(egress, vlan: frame.vlan) ? VLANTag(vlan: frame.vlan, priority: 6) : nil
                out.queue.append(owned: frame.bytes, tag: tag)
            }
        }
    }

    private func sendGenerated() {
        guard !engine.outbox.isEmpty else { return }
        queueGenerated()
        for out in ports where out.queue.count > 0 { flush(out) }
    }

    // MARK: - Limits

    private var refusalsLogged: UInt64 = 0
    private var lastRefusalLog = Instant.zero

    /// Logs state refused at the limits, at most once every 10 s, so a flood cannot flood the log too.
    private func reportRefusals(at now: Instant) {
        let total = engine.memberships.refusals.values.reduce(0, +) + engine.counters.macTableFull
            + engine.counters.errors["rate_limited", default: 0]
        guard total > refusalsLogged, now - lastRefusalLog >= .seconds(10) else { return }
        logger.warning("limits reached: \(total - refusalsLogged) messages or entries refused since the last report (status shows which)")
        refusalsLogged = total
        lastRefusalLog = now
    }

    // MARK: - Links

    /// Compares each port with what the kernel says: a port whose interface is gone, down or
    /// without carrier is down (the engine flushes it); an interface created again under the
    /// same name gets a new socket.
    private func refreshLinks(at now: Instant) {
        for (index, port) in ports.enumerated() {
            let state = InterfaceState.read(port.name)
            if let socket = port.socket, state?.index != socket.interfaceIndex {
                logger.warning("port \(port.name): interface \(state == nil ? "removed" : "re-created"); closing its socket")
                closeSocket(of: port)
            }
            if port.socket == nil, state != nil {
                do {
                    try? InterfaceState.bringUp(port.name)
                    try open(port, index: index)
                    logger.notice("port \(port.name): interface back, socket reopened")
                } catch {
                    logger.warning("port \(port.name): \(error)")
                }
            }
            let current = InterfaceState.read(port.name)
            let recent = now - port.lastReceive < .seconds(1)
            let carrier = current?.hasCarrier == true || recent
            if current?.hasCarrier == false, recent { carrierCheck = now + .seconds(1) }
            let up = port.socket != nil && current?.isUp == true && carrier
            let id = PortID(index)
            if up != engine.linkUp.contains(id) {
                engine.setLink(id, up: up, at: now)
                logger.notice("port \(port.name): link \(up ? "up" : "down")\(up ? "" : "; its MAC entries and memberships flushed")")
            }
        }
        sendGenerated()
    }

    // MARK: - Control

    private func answer(_ request: String) -> String {
        switch request {
        case "status":
            let runtime = ports.map { port in
                PortRuntime(interfaceIndex: port.socket.map { Int($0.interfaceIndex) },
                            txFrames: port.txFrames, txDrops: port.txDrops + port.rxErrors)
            }
            let report = StatusReport(engine: engine, ports: runtime, at: Self.now())
            guard let data = try? ControlProtocol.encoder().encode(report) else {
                return ControlProtocol.errorDocument("cannot encode the status")
            }
            return String(decoding: data, as: UTF8.self)
        case "ping":
            return "{\"pong\":true}"
        default:
            return ControlProtocol.errorDocument("unknown request '\(request.prefix(64))'")
        }
    }
}
