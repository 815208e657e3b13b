import Control
import Logging
import Ports
import SwitchEngine

/// The ports' devices and their lifecycle: opened with their kernel helpers (fast path, egress
/// replication, host stack filter), closed, kept in step with the links, added and removed.
extension SwitchDaemon {
    /// Opens a port's device: a packet socket on its interface (brought up, and one more for
    /// each further forwarding thread), or a new TAP device. An interface not yet claimed is
    /// claimed first (`PortClaim`): one another switch serves is refused (`PortClaim.Taken`),
    /// unless `--share-ports`. Called with `lock` held.
    func open(_ port: PortIO, index: Int) throws {
        if port.attachment != .tap && portClaims[port.name] == nil {
            portClaims[port.name] = try Self.claim(interface: port.name, control: controlPath, share: sharePorts, logger: logger)
        }
        do {
            try openDevice(port, index: index)
        } catch {
            portClaims.removeValue(forKey: port.name)?.release()
            throw error
        }
    }

    /// This switch's claim on interface `name`; nil where another switch holds it and `share`
    /// says to serve it all the same, or where the system makes no claims (no /run to write):
    /// both said.
    static func claim(interface name: String, control: String, share: Bool, logger: Logger) throws -> PortClaim? {
        guard let interface = InterfaceState.read(name) else { return nil }   // opening it says why
        do throws(PortClaim.Failure) {
            return try PortClaim(interface: name, index: interface.index, control: control)
        } catch {
            switch error {
            case .taken(let taken):
                guard share else { throw taken }
                logger.warning("\(taken); served all the same (--share-ports): its frames go through both switches")
            case .system(let failure):
                logger.warning("\(failure); port \(name) served without a claim: another switch would not be refused it")
            }
            return nil
        }
    }

    /// Opens a port's device, its interface claimed already (or not to be).
    func openDevice(_ port: PortIO, index: Int) throws(SystemError) {
        let device: Device
        var others: [PacketSocket] = []
        switch port.attachment {
        case .packetSocket:
            try? InterfaceState.bringUp(port.name)
            let socket = try PacketSocket(interface: port.name, ringBytes: ringBytes)
            if threads.count > 1 {
                let group = try socket.joinFanout(group: nil, steering: steering)
                for _ in 1..<threads.count {
                    let other = try PacketSocket(interface: port.name, ringBytes: ringBytes)
                    _ = try other.joinFanout(group: group, steering: steering)
                    others.append(other)
                }
            }
            device = .packet(socket)
            port.fastPathHook = fastPathHook(on: socket, others: others)
            if port.fastPathHook == nil { port.hostStackFilter = filterHostStack(of: socket) }
            port.replicationHook = replicationHook(on: socket, others: others)
        case .pcap:
            try? InterfaceState.bringUp(port.name)
            device = .pcap(try PcapPort(interface: port.name))
        case .tap:
            device = .tap(try TapDevice(name: port.name))
            try? InterfaceState.bringUp(port.name)
        }
        // A TAP's too, read now while its interface is in this namespace: moved into another
        // one, it is out of our sight (refreshLinks leaves it alone) and the status keeps this.
        port.interfaceIndex = InterfaceState.read(port.name)?.index
        try poller.add(device.descriptor, token: UInt64(index))
        for (i, socket) in others.enumerated() {
            try threads[i + 1].poller!.add(socket.descriptor, token: UInt64(index))
        }
        port.device = device
        port.threadSockets = others
        portsChanged()
    }

    /// The replicating ports anew, and a new generation for the threads' replica lists.
    private func portsChanged() {
        replicatingPorts = PortSet(ports.indices.lazy.filter { self.ports[$0]?.replicationHook != nil }.map(PortID.init))
        portsGeneration &+= 1
    }

    /// Closes a port's devices; a thread sending meanwhile holds its socket until it is done.
    private func closeDevice(of port: PortIO) {
        if let device = port.device { poller.remove(device.descriptor) }
        for (i, socket) in port.threadSockets.enumerated() { threads[i + 1].poller!.remove(socket.descriptor) }
        port.collectKernelDrops()
        port.device = nil
        port.threadSockets = []
        port.hostStackFilter = nil
        port.fastPathHook = nil
        port.replicationHook = nil
        port.interfaceIndex = nil
        portClaims.removeValue(forKey: port.name)?.release()
        portsChanged()
        revalidateFastPath(at: Self.now())
    }

    /// The replication program on a packet port's egress, its sockets sending through it; nil
    /// (said) where the kernel will not.
    private func replicationHook(on socket: PacketSocket, others: [PacketSocket]) -> TCXLink? {
        guard let replication else { return nil }
        do throws(SystemError) {
            for each in [socket] + others { try each.openEgressHookSocket() }
            return try replication.attach(interface: socket.interfaceName, index: socket.interfaceIndex)
        } catch {
            logger.warning("\(error); frames for several ports are sent to this one on their own")
            return nil
        }
    }

    /// The fast path's program on a packet port, its sockets filtered; nil (said once) where
    /// the kernel will not.
    private func fastPathHook(on socket: PacketSocket, others: [PacketSocket]) -> TCXLink? {
        guard let kernel = fastPath?.kernel else { return nil }
        do throws(SystemError) {
            for each in [socket] + others { try kernel.filter(each) }
            return try kernel.attach(interface: socket.interfaceName, index: socket.interfaceIndex)
        } catch {
            logger.warning("\(error); the port's unicast flows stay with the switch's threads")
            return nil
        }
    }

    /// The port's host stack filter, or nil (said once) where the kernel has none to give.
    private func filterHostStack(of socket: PacketSocket) -> HostStackFilter? {
        guard filterHostStack else { return nil }
        do throws(SystemError) {
            return try HostStackFilter(interface: socket.interfaceName, index: socket.interfaceIndex)
        } catch {
            if !hostStackFilterRefused {
                hostStackFilterRefused = true
                logger.warning("\(error); frames on the ports also reach this namespace's IP stack (TCX needs Linux 6.6 and CAP_BPF)")
            }
            return nil
        }
    }

    // MARK: - Links

    /// Compares each port with what the kernel says: a port whose interface is gone, down or
    /// without carrier is down (the engine flushes it); an interface created again under the
    /// same name gets a new socket.
    func refreshLinks(at now: Instant) {
        // The kernel is asked without the lock (an ioctl or four a port); a port added meanwhile
        // is looked at by the call that adds it.
        let names = ports.map { port in port.flatMap { $0.attachment == .tap ? nil : $0.name } }
        let states = withoutLock { names.map { $0.flatMap(InterfaceState.read) } }
        let now = Self.now()
        for (index, port) in ports.enumerated() {
            guard let port else { continue }
            if port.attachment == .tap {
                // The TAP's kernel side may live in another namespace, out of our sight: the port
                // is up while our end is open.
                let id = PortID(index)
                if port.device != nil, !engine.linkUp.contains(id) { engine.setLink(id, up: true, at: now) }
                continue
            }
            guard index < names.count, names[index] == port.name else { continue }
            followInterface(of: port, index: index, state: states[index])
            followLink(of: port, id: PortID(index), state: states[index], at: now)
        }
        sendGenerated()
    }

    /// The port's device follows its interface: closed when the interface is gone or made anew,
    /// opened when there is one again, a libpcap port opened again for a new MTU.
    private func followInterface(of port: PortIO, index: Int, state: InterfaceState?) {
        if let index = port.interfaceIndex, state?.index != index {
            logger.warning("port \(port.name): interface \(state == nil ? "removed" : "re-created"); closing its socket")
            closeDevice(of: port)
        }
        if port.device == nil, state != nil {
            do {
                try open(port, index: index)
                logger.notice("port \(port.name): interface back, socket reopened")
            } catch {
                logger.warning("port \(port.name): \(error)")
            }
        }
        if let mtu = state?.mtu, let old = port.mtu, mtu != old, port.device != nil {
            // Packet sockets carry any size; a libpcap port cuts GSO frames to the MTU it
            // read when it opened, so it opens again.
            logger.notice("port \(port.name): MTU \(old) -> \(mtu)")
            port.linkChanges &+= 1
            if port.attachment == .pcap {
                closeDevice(of: port)
                try? open(port, index: index)
            }
        }
        port.mtu = state?.mtu ?? port.mtu
    }

    /// The port's link in the engine follows its interface: up while the interface is up and has
    /// carrier, or frames arrived within the last second (the kernel reports carrier late).
    private func followLink(of port: PortIO, id: PortID, state current: InterfaceState?, at now: Instant) {
        let recent = now - port.lastReceive < .seconds(1)
        let carrier = current?.hasCarrier == true || recent
        if current?.hasCarrier == false, recent { carrierCheck = now + .seconds(1) }
        let up = port.device != nil && current?.isUp == true && carrier
        if up != engine.linkUp.contains(id) {
            if up { for socket in port.allSockets { socket.clearPendingError() } }
            engine.setLink(id, up: up, at: now)
            port.linkChanges &+= 1
            logger.notice("port \(port.name): link \(up ? "up" : "down")\(up ? "" : "; its MAC entries and memberships flushed")")
        }
    }

    /// Adds a port while running; the interface must exist.
    public func addPort(_ configuration: PortConfiguration) throws {
        guard configuration.attachment == .tap || InterfaceState.read(configuration.name) != nil else {
            throw ControlError("interface \(configuration.name) does not exist")
        }
        let now = Self.now()
        let id = try engine.addPort(configuration, at: now)
        let port = PortIO(configuration)
        while ports.count <= id.index { ports.append(nil) }
        ports[id.index] = port
        do {
            try open(port, index: id.index)
        } catch {
            engine.removePort(id, at: now)
            ports[id.index] = nil
            throw error
        }
        nameToCaptures(configuration.name, port: id.index)
        refreshLinks(at: now)
        logger.notice("port \(configuration.name) added")
    }

    public func removePort(named name: String) throws {
        guard let id = engine.port(named: name), let port = ports[id.index] else {
            throw ControlError("no port named \(name)")
        }
        closeDevice(of: port)
        engine.removePort(id, at: Self.now())
        ports[id.index] = nil
        nameToCaptures(nil, port: id.index)
        revalidateFastPath(at: Self.now())
        logger.notice("port \(name) removed")
    }
}
