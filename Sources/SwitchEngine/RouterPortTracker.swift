import Wire

/// Why a port is a multicast router port.
public enum RouterPortReason: String, Sendable, Codable {
    case `static` = "static"
    case igmpQuery = "igmp-query"
    case mldQuery = "mld-query"
    case pimHello = "pim-hello"
    case dvmrpProbe = "dvmrp-probe"
    case mrdAdvertisement = "mrd-advertisement"
}

/// The ports behind which multicast routers sit, per VLAN, for one protocol (IPv4 or IPv6
/// routers: the engine keeps one tracker each, as the Linux bridge does; RFC 4541 section 2.1.1):
/// static ones from the configuration, learned ones from queries and PIM hellos, which expire.
/// A learned port keeps what taught it by kind (query, PIM, DVMRP, MRD), so that a router that
/// says goodbye in one protocol takes back only what that protocol taught.
public struct RouterPortTracker {
    /// What the status shows of a learned port: the announcement that keeps it longest.
    public struct Learned: Equatable, Sendable {
        public var reason: RouterPortReason
        /// `Instant.distantFuture`: never (a PIM hello with holdtime 0xFFFF).
        public var expires: Instant
    }

    /// Until when each kind of announcement keeps a port a router port; `.zero`: not heard.
    struct Announcements: Equatable {
        private var igmpQuery = Instant.zero
        private var mldQuery = Instant.zero
        private var pimHello = Instant.zero
        private var dvmrpProbe = Instant.zero
        private var mrdAdvertisement = Instant.zero

        subscript(reason: RouterPortReason) -> Instant {
            get {
                switch reason {
                case .igmpQuery: igmpQuery
                case .mldQuery: mldQuery
                case .pimHello: pimHello
                case .dvmrpProbe: dvmrpProbe
                case .mrdAdvertisement: mrdAdvertisement
                case .static: .zero
                }
            }
            set {
                switch reason {
                case .igmpQuery: igmpQuery = newValue
                case .mldQuery: mldQuery = newValue
                case .pimHello: pimHello = newValue
                case .dvmrpProbe: dvmrpProbe = newValue
                case .mrdAdvertisement: mrdAdvertisement = newValue
                case .static: break
                }
            }
        }

        static let kinds: [RouterPortReason] = [.igmpQuery, .mldQuery, .pimHello, .dvmrpProbe, .mrdAdvertisement]

        /// The kind that keeps the port longest; nil when none does.
        var longest: Learned? {
            var best: Learned?
            for kind in Self.kinds where self[kind] != .zero && self[kind] > (best?.expires ?? .zero) {
                best = Learned(reason: kind, expires: self[kind])
            }
            return best
        }

        /// Forgets the kinds due by `now`.
        mutating func expire(at now: Instant) {
            for kind in Self.kinds where self[kind] != .zero && self[kind] <= now { self[kind] = .zero }
        }

        var next: Instant? {
            var next: Instant?
            for kind in Self.kinds where self[kind] != .zero { next = min(next ?? self[kind], self[kind]) }
            return next
        }
    }

    private var staticPorts = PortSet()
    private var learned: [VLANID: [PortID: Announcements]] = [:]
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
    /// announcement extends it (`Instant.distantFuture`: until the router says goodbye).
    public mutating func heard(_ reason: RouterPortReason, on port: PortID, in vlan: VLANID, until expires: Instant) {
        guard reason != .static else { return }
        var ports = learned[vlan] ?? [:]
        var announcements = ports[port] ?? Announcements()
        if announcements[reason] > expires { return }
        announcements[reason] = expires
        ports[port] = announcements
        learned[vlan] = ports
        cache[Int(vlan.rawValue)].insert(port)
    }

    /// A router said goodbye in one protocol (a PIM hello with holdtime 0, an MRD termination):
    /// what that protocol taught of `port` goes; a static port, or one another kind of
    /// announcement (a query) keeps, stays.
    public mutating func forget(_ reason: RouterPortReason, on port: PortID, in vlan: VLANID) {
        guard var announcements = learned[vlan]?[port], announcements[reason] != .zero else { return }
        announcements[reason] = .zero
        learned[vlan]![port] = announcements.longest == nil ? nil : announcements
        rebuild(vlan)
    }

    public mutating func removeAll(on port: PortID) {
        for vlan in Array(learned.keys) {
            learned[vlan]?.removeValue(forKey: port)
            rebuild(vlan)
        }
    }

    public mutating func expire(at now: Instant) {
        for (vlan, ports) in learned where ports.values.contains(where: { ($0.next ?? .distantFuture) <= now }) {
            var kept: [PortID: Announcements] = [:]
            for (port, var announcements) in ports {
                announcements.expire(at: now)
                if announcements.longest != nil { kept[port] = announcements }
            }
            learned[vlan] = kept
            rebuild(vlan)
        }
    }

    /// Read after every batch of frames: a plain loop, no array built.
    public var nextDeadline: Instant? {
        var next: Instant?
        for ports in learned.values {
            for announcements in ports.values {
                if let t = announcements.next { next = min(next ?? t, t) }
            }
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
        learned.flatMap { vlan, ports in ports.compactMap { port, announcements in announcements.longest.map { (vlan, port, $0) } } }
            .sorted { ($0.vlan, $0.port) < ($1.vlan, $1.port) }
    }

    public var staticPortSet: PortSet { staticPorts }
}
