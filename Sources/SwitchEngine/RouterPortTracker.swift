import Wire

/// Why a port is a multicast router port.
public enum RouterPortReason: String, Sendable, Codable {
    case `static` = "static"
    case igmpQuery = "igmp-query"
    case pimHello = "pim-hello"
    case dvmrpProbe = "dvmrp-probe"
    case mrdAdvertisement = "mrd-advertisement"
}

/// The ports behind which multicast routers sit, per VLAN (RFC 4541 section 2.1.1):
/// static ones from the configuration, learned ones from queries and PIM hellos, which expire.
public struct RouterPortTracker {
    public struct Learned: Equatable, Sendable {
        public var reason: RouterPortReason
        public var expires: Instant
    }

    private var staticPorts = PortSet()
    private var learned: [VLANID: [PortID: Learned]] = [:]
    /// Static and learned router ports of each VLAN, indexed by VLAN ID: one load per frame.
    private var cache = [PortSet](repeating: PortSet(), count: 4096)

    public init(staticPorts: PortSet) {
        self.staticPorts = staticPorts
        for vid in 1...4094 { cache[vid] = staticPorts }
    }

    @inline(__always)
    public func ports(in vlan: VLANID) -> PortSet { cache[Int(vlan.rawValue)] }

    public func isStatic(_ port: PortID) -> Bool { staticPorts.contains(port) }

    /// A port becomes (or stops being) a static router port.
    public mutating func setStatic(_ port: PortID, _ isStatic: Bool) {
        guard staticPorts.contains(port) != isStatic else { return }
        if isStatic { staticPorts.insert(port) } else { staticPorts.remove(port) }
        for vid in 1...4094 {
            if isStatic { cache[vid].insert(port) } else if learned[VLANID(vid)!]?[port] == nil { cache[vid].remove(port) }
        }
    }

    /// A router announced itself on `port`: it stays a router port until `expires`, unless a later
    /// announcement extends it.
    public mutating func heard(_ reason: RouterPortReason, on port: PortID, in vlan: VLANID, until expires: Instant) {
        var ports = learned[vlan] ?? [:]
        if let current = ports[port], current.expires > expires { return }
        ports[port] = Learned(reason: reason, expires: expires)
        learned[vlan] = ports
        cache[Int(vlan.rawValue)].insert(port)
    }

    /// A router said it is leaving (an MRD termination): it is no longer a router port, unless static.
    public mutating func forget(_ port: PortID, in vlan: VLANID) {
        guard learned[vlan]?.removeValue(forKey: port) != nil else { return }
        rebuild(vlan)
    }

    public mutating func removeAll(on port: PortID) {
        for vlan in Array(learned.keys) {
            learned[vlan]?.removeValue(forKey: port)
            rebuild(vlan)
        }
    }

    public mutating func expire(at now: Instant) {
        for (vlan, ports) in learned where ports.values.contains(where: { $0.expires <= now }) {
            learned[vlan] = ports.filter { $0.value.expires > now }
            rebuild(vlan)
        }
    }

    /// Read after every batch of frames: a plain loop, no array built.
    public var nextDeadline: Instant? {
        var next: Instant?
        for ports in learned.values {
            for entry in ports.values { next = min(next ?? entry.expires, entry.expires) }
        }
        return next
    }

    private mutating func rebuild(_ vlan: VLANID) {
        var set = staticPorts
        for port in (learned[vlan] ?? [:]).keys { set.insert(port) }
        cache[Int(vlan.rawValue)] = set
        if learned[vlan]?.isEmpty == true { learned[vlan] = nil }
    }

    public func learnedPorts() -> [(vlan: VLANID, port: PortID, learned: Learned)] {
        learned.flatMap { vlan, ports in ports.map { (vlan, $0.key, $0.value) } }
            .sorted { ($0.vlan, $0.port) < ($1.vlan, $1.port) }
    }

    public var staticPortSet: PortSet { staticPorts }
}
