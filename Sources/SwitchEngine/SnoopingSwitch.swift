import Wire

/// The forwarding engine: frames and time in, decisions out. It owns no socket and reads no clock.
///
/// Rules: IEEE 802.1Q learning and VLANs; RFC 4541 for snooping; RFC 2236 and RFC 3376 for
/// IGMP's membership timers and querier, RFC 2710 and RFC 9777 for MLD's.
///
/// Not thread-safe: the datapath's forwarding threads call it one at a time, under the
/// datapath's lock. Its state carries `@exclusivity(unchecked)`, which spares each frame the
/// runtime's access checks (the lock already keeps accesses apart).
public final class SnoopingSwitch {
    /// The switch's settings; the ports it has now are `ports`.
    public internal(set) var configuration: SwitchConfiguration
    /// The tables are the engine's: the datapath and the control plane change them and read
    /// them through its methods (internal for the tests).
    let macs: MacTable
    /// IGMP's and MLD's memberships, router ports and queriers.
    let igmp: SnoopedProtocol<IGMP>
    let mld: SnoopedProtocol<MLD>
    var memberships: MembershipTable<IPv4Address, IGMPVersion> { igmp.memberships }
    public var routers: RouterPortTracker { igmp.routers }
    public var querier: QuerierElection<IGMP> { igmp.querier }
    public var mldRouters: RouterPortTracker { mld.routers }
    public var mldQuerier: QuerierElection<MLD> { mld.querier }
    /// Each port's allowance of IGMP and MLD messages (one budget for both).
    @exclusivity(unchecked) var igmpBuckets: [TokenBucket]
    @exclusivity(unchecked) public internal(set) var counters: SwitchCounters
    /// Frames the switch originated since the caller last took them.
    @exclusivity(unchecked) var outbox: [GeneratedFrame] = []
    /// Whether learned stations last at all (an aging time of zero forgets them at once): no
    /// route without them.
    let macsAge: Bool
    /// Ports removed: with the MAC table's generation, what `routeGeneration` counts.
    @exclusivity(unchecked) var portsRemoved: UInt64 = 0

    @exclusivity(unchecked) public internal(set) var linkUp: PortSet
    /// Configured member ports of each VLAN, indexed by VLAN ID.
    @exclusivity(unchecked) var vlanPorts = [PortSet](repeating: PortSet(), count: 4096)
    /// Ports whose pvid each VLAN is (frames leave them untagged), indexed by VLAN ID.
    @exclusivity(unchecked) var untaggedPorts = [PortSet](repeating: PortSet(), count: 4096)
    @exclusivity(unchecked) var pvids: [VLANID?]
    @exclusivity(unchecked) var fastLeavePorts = PortSet()
    @exclusivity(unchecked) var queryGuardPorts = PortSet()
    @exclusivity(unchecked) var nextMacSweep: Instant
    /// The reserved addresses relayed (bit n: 01:80:C2:00:00:0n), the configuration's in force.
    @exclusivity(unchecked) var relayedReserved: UInt16

    public init(configuration: SwitchConfiguration, at now: Instant) {
        precondition(configuration.ports.count <= PortSet.capacity, "too many ports")
        self.configuration = configuration
        let capacity = PortSet.capacity
        macs = MacTable(limit: configuration.macTableLimit, perPortLimit: configuration.macsPerPortLimit,
                        portCount: capacity, aging: configuration.fdbAging)
        macsAge = configuration.fdbAging > .zero
        igmp = SnoopedProtocol(configuration: configuration, at: now, errors: \.errors, sent: \.sent)
        mld = SnoopedProtocol(configuration: configuration, at: now, errors: \.mldErrors, sent: \.mldSent)
        igmpBuckets = Array(repeating: TokenBucket(rate: configuration.igmpRatePerPort, at: now), count: capacity)
        counters = SwitchCounters(portCount: capacity)
        pvids = Array(repeating: nil, count: capacity)
        ports = []
        linkUp = PortSet()
        nextMacSweep = now + Self.macSweepPeriod(configuration.fdbAging)
        relayedReserved = configuration.relayedReservedAddresses.inForce.bits
        for port in configuration.ports { _ = try? addPort(port, at: now, linkUp: true) }
        solicitRouters(in: configuration.allVLANs.sorted())
    }

    /// Settings that can change while running (timers, querier, per-VLAN settings, flooding, the
    /// SSM range, the IGMP rate, the reserved addresses relayed); the table sizes and the aging time are fixed at start. Returns
    /// the names of the settings that were not applied.
    @discardableResult
    public func reconfigure(_ new: SwitchConfiguration, at now: Instant) -> [String] {
        var kept: [String] = []
        var applied = new
        if new.macTableLimit != configuration.macTableLimit || new.macsPerPortLimit != configuration.macsPerPortLimit {
            kept.append("MAC table limits")
            applied.macTableLimit = configuration.macTableLimit
            applied.macsPerPortLimit = configuration.macsPerPortLimit
        }
        if new.membershipLimits != configuration.membershipLimits {
            kept.append("membership limits")
            applied.membershipLimits = configuration.membershipLimits
        }
        if new.fdbAging != configuration.fdbAging {
            kept.append("fdb aging")
            applied.fdbAging = configuration.fdbAging
        }
        applied.switchMAC = configuration.switchMAC
        let rateChanged = applied.igmpRatePerPort != configuration.igmpRatePerPort
        configuration = applied
        relayedReserved = applied.relayedReservedAddresses.inForce.bits
        igmp.querier.reconfigure(applied, at: now)
        mld.querier.reconfigure(applied, at: now)
        for port in ports.compactMap({ $0 }) {
            for vlan in port.vlans { setSnooping(in: vlan) }
        }
        if rateChanged {
            for i in igmpBuckets.indices { igmpBuckets[i] = TokenBucket(rate: applied.igmpRatePerPort, at: now) }
        }
        sendDueQueries(at: now)
        return kept
    }

    // MARK: - Ports

    public enum PortError: Error, CustomStringConvertible, Equatable {
        case duplicate(String), full, unknown(String)
        public var description: String {
            switch self {
            case .duplicate(let name): "port \(name) exists already"
            case .full: "no room for another port (at most \(PortSet.capacity))"
            case .unknown(let name): "no port named \(name)"
            }
        }
    }

    /// The ports by index; a removed port leaves its index empty for the next one added.
    public internal(set) var ports: [PortConfiguration?]

    public func port(named name: String) -> PortID? {
        ports.firstIndex { $0?.name == name }.map(PortID.init)
    }

    public var activePortIDs: [PortID] { ports.indices.filter { ports[$0] != nil }.map(PortID.init) }

    /// Adds a port at run time (or at start). Its link is down until the caller says otherwise.
    @discardableResult
    public func addPort(_ port: PortConfiguration, at now: Instant, linkUp up: Bool = false) throws(PortError) -> PortID {
        guard self.port(named: port.name) == nil else { throw .duplicate(port.name) }
        let index = ports.firstIndex { $0 == nil } ?? ports.count
        guard index < PortSet.capacity else { throw .full }
        let id = PortID(index)
        if index == ports.count { ports.append(port) } else { ports[index] = port }
        pvids[index] = port.pvid
        if let pvid = port.pvid { untaggedPorts[Int(pvid.rawValue)].insert(id) }
        counters.rxFrames[index] = 0
        counters.rxBytes[index] = 0
        counters.drops[index] = 0
        igmpBuckets[index] = TokenBucket(rate: configuration.igmpRatePerPort, at: now)
        for vlan in port.vlans {
            vlanPorts[Int(vlan.rawValue)].insert(id)
            setSnooping(in: vlan)
            igmp.querier.addVLAN(vlan, configuration: configuration.querier(in: vlan), at: now)
            mld.querier.addVLAN(vlan, configuration: configuration.mldQuerier(in: vlan), at: now)
        }
        setFlags(of: id, fastLeave: port.fastLeave, queryGuard: port.queryGuard, staticRouter: port.isStaticRouterPort)
        if up { linkUp.insert(id) }
        return id
    }

    /// Removes a port at run time: what was learned on it goes with it.
    public func removePort(_ id: PortID, at now: Instant) {
        guard id.index < ports.count, let port = ports[id.index] else { return }
        setLink(id, up: false, at: now)
        igmp.memberships.removeStatic(on: id)
        mld.memberships.removeStatic(on: id)
        for vlan in port.vlans { vlanPorts[Int(vlan.rawValue)].remove(id) }
        if let pvid = port.pvid { untaggedPorts[Int(pvid.rawValue)].remove(id) }
        portsRemoved &+= 1
        setFlags(of: id, fastLeave: false, queryGuard: false, staticRouter: false)
        pvids[id.index] = nil
        ports[id.index] = nil
    }

    /// Changes a port's flags in place (static router port, fast-leave, query-guard): its
    /// counters, MAC entries, memberships and link stay. Returns false, changing nothing, when
    /// `new` differs in more than these (name, VLANs, attachment: the caller re-creates the port).
    @discardableResult
    public func updatePort(_ id: PortID, with new: PortConfiguration) -> Bool {
        guard id.index < ports.count, let old = ports[id.index], old.isSamePort(flagsAside: new) else { return false }
        ports[id.index] = new
        // What a router behind it taught goes: a guarded port cannot be a learned router port.
        if new.queryGuard && !old.queryGuard {
            igmp.routers.removeAll(on: id)
            mld.routers.removeAll(on: id)
        }
        setFlags(of: id, fastLeave: new.fastLeave, queryGuard: new.queryGuard, staticRouter: new.isStaticRouterPort)
        return true
    }

    /// A port's flags in the sets the frames are decided with (a static router port is one for
    /// IPv4 and IPv6 routers both): at add, at update, and all off at remove.
    private func setFlags(of id: PortID, fastLeave: Bool, queryGuard: Bool, staticRouter: Bool) {
        if fastLeave { fastLeavePorts.insert(id) } else { fastLeavePorts.remove(id) }
        if queryGuard { queryGuardPorts.insert(id) } else { queryGuardPorts.remove(id) }
        igmp.routers.setStatic(id, staticRouter)
        mld.routers.setStatic(id, staticRouter)
    }

    static func macSweepPeriod(_ aging: Duration) -> Duration { max(.seconds(1), aging / 4) }

    func setSnooping(in vlan: VLANID) {
        igmp.snoops[Int(vlan.rawValue)] = configuration.snoops(vlan)
        mld.snoops[Int(vlan.rawValue)] = configuration.snoopsMLD(vlan)
    }

    /// Whether frames in `vlan` leave `port` with a tag: all but the port's pvid.
    public func egressTagged(_ port: PortID, vlan: VLANID) -> Bool { pvids[port.index] != vlan }

    /// The ports of a VLAN whose links are up.
    @inline(__always)
    public func activePorts(in vlan: VLANID) -> PortSet { vlanPorts[Int(vlan.rawValue)].intersection(linkUp) }

    // MARK: - Receiving

    public func receive(_ frame: IngressFrame, on port: PortID, at now: Instant) -> ForwardingDecision {
        var decision = decide(frame, on: port, at: now)
        decision.split(untaggedIn: untaggedPorts[Int(decision.vlan.rawValue)])
        decision.framesWaiting = !outbox.isEmpty
        return decision
    }

    /// The decision with every egress port in `ports` (untagged until `receive` splits them).
    @inline(__always)
    func decide(_ frame: IngressFrame, on port: PortID, at now: Instant) -> ForwardingDecision {
        counters.rxFrames[port.index] &+= 1
        counters.rxBytes[port.index] &+= UInt64(frame.bytes.count)
        guard linkUp.contains(port) else { return drop(.portDown, on: port) }
        guard let ethernet = try? EthernetFrameView(checking: frame.bytes) else { return drop(.malformed, on: port) }
        // An 802.1ad S-tag names a provider's service VLAN, which this 802.1Q (customer) bridge
        // is not part of: read as a C-VLAN it would leak the frame into a VLAN of ours.
        guard !frame.serviceTagged, frame.tag != nil || ethernet.etherType != EtherType.serviceTag else {
            return drop(.serviceTagged, on: port)
        }
        // IEEE 802.1Q 8.6.3: frames to 01:80:C2:00:00:00-0F are the link's own (PAUSE, LACP,
        // 802.1X, LLDP): not relayed, nor their source learned, unless asked for (STP always is).
        let destination = ethernet.destination
        if destination.isBridgeReserved, relayedReserved & 1 << (destination.rawValue & 0xf) == 0 {
            return drop(.reservedAddress, on: port)
        }

        // 802.1Q ingress: untagged and priority-tagged frames join the pvid; tagged frames need
        // a VLAN the port carries.
        let vlan: VLANID
        if let tag = frame.tag, tag.vid != 0 {
            guard let tagged = VLANID(Int(tag.vid)), vlanPorts[Int(tagged.rawValue)].contains(port) else {
                return drop(.vlanNotAllowed, on: port)
            }
            vlan = tagged
        } else {
            guard let pvid = pvids[port.index] else { return drop(.untaggedNotAllowed, on: port) }
            vlan = pvid
        }
        let priority = frame.tag?.priority ?? 0
        let dropEligible = frame.tag?.dropEligible ?? false

        let source = ethernet.source
        guard !source.isMulticast else { return drop(.multicastSource, on: port) }
        let learned = macs.learn(source, vlan: vlan, port: port, at: now)
        if !learned { counters.macTableFull &+= 1 }

        let flood = activePorts(in: vlan).removing(port)
        var decision = ForwardingDecision(vlan: vlan, priority: priority, dropEligible: dropEligible, untagged: flood)
        if !destination.isMulticast {
            if let known = macs.lookup(destination, vlan: vlan, at: now) {
                var egress = PortSet()      // no array literal: nothing allocated per frame
                if known != port, flood.contains(known) { egress.insert(known) }
                decision.ports = egress
                // A route when the frame came untagged and leaves untagged, between two stations
                // the table knows (the source now: learned, unless the table refused it).
                if frame.tag == nil, learned, !decision.ports.isEmpty, pvids[known.index] == vlan, macsAge {
                    decision.route = UnicastRoute(vlan: vlan, source: source, destination: destination,
                                                 ingress: port, egress: known)
                }
            }
            return decision
        }
        // IPv4 multicast MAC (01:00:5e, RFC 1112 6.4) carrying IPv4, IPv6 multicast MAC (33:33,
        // RFC 2464 7) carrying IPv6: snooped. Other multicast floods.
        guard !destination.isBroadcast else { return decision }
        if destination.rawValue >> 32 == 0x3333 {
            guard ethernet.etherType == EtherType.ipv6 else { return decision }
            return decideIPv6(ethernet.payload, frame: frame, decision: decision, on: port, flood: flood, at: now)
        }
        guard destination.rawValue >> 23 == 0x0100_5e00_0000 >> 23,
              ethernet.etherType == EtherType.ipv4 else { return decision }
        guard let ip = try? IPv4HeaderView(checking: ethernet.payload) else { return drop(.malformed, on: port) }
        let group = ip.destination
        guard group.isMulticast else { return decision }

        switch ip.protocol {
        case IPv4HeaderView.ProtocolNumber.igmp where !ip.isFragment && igmp.snoops[Int(vlan.rawValue)]:
            decision = receiveIGMP(ip, frame: frame, decision: decision, on: port, at: now)
            decision.isControl = true
        case IPv4HeaderView.ProtocolNumber.igmp where !ip.isFragment:
            decision = electWithoutSnooping(ip, frame: frame, decision: decision, on: port, at: now)
        case IPv4HeaderView.ProtocolNumber.pim where group == .allPIMRouters && !ip.isFragment:
            if !receivePIM(ip, vlan: vlan, on: port, at: now) { decision = .none }
            decision.isControl = true
        default:
            decision.ports = dataPorts(to: group, from: ip.source, in: vlan, flood: flood, at: now)
        }
        return decision
    }

    /// RFC 4541 2.1.2: the local network control block floods; a registered group goes to its
    /// members and the router ports; an unregistered one to the router ports only.
    /// With IGMPv3 state, a member port gets only the sources it admits (RFC 3376 6.3).
    @inline(__always)
    func dataPorts(to group: IPv4Address, from source: IPv4Address, in vlan: VLANID, flood: PortSet,
                           at now: Instant) -> PortSet {
        if group.isLocalNetworkControl || !igmp.snoops[Int(vlan.rawValue)] { return flood }
        return dataPorts(to: group, from: source, in: vlan, flood: flood, at: now, igmp,
                         floodUnregistered: configuration.floodUnregistered)
    }

    func drop(_ reason: DropReason, on port: PortID) -> ForwardingDecision {
        counters.drop(reason, on: port)
        return .none
    }

    // MARK: - Unicast routes the kernel may carry

    /// A unicast decision that holds for every frame from `source` to `destination` arriving
    /// untagged on `ingress`, for as long as the MAC table and the ports stay as they are. The
    /// datapath may hand such a flow to the kernel and leave it there while `holds` says so.
    public struct UnicastRoute: Hashable, Sendable, BitwiseCopyable {
        public var vlan: VLANID
        public var source: MACAddress
        public var destination: MACAddress
        public var ingress: PortID
        public var egress: PortID

        public init(vlan: VLANID, source: MACAddress, destination: MACAddress, ingress: PortID, egress: PortID) {
            self.vlan = vlan
            self.source = source
            self.destination = destination
            self.ingress = ingress
            self.egress = egress
        }

        /// The flow back: from the destination, on the egress port, to the source.
        public var reversed: UnicastRoute {
            UnicastRoute(vlan: vlan, source: destination, destination: source, ingress: egress, egress: ingress)
        }
    }

    /// Changes whenever a route decided before may stop holding (`holds`): a station moved or
    /// went, a link went down (its stations go), a port was removed. Unchanged, every route
    /// decided since still holds at the instant it was decided at.
    public var routeGeneration: UInt64 { macs.generation &+ portsRemoved }

    /// Whether every frame of `route` would still be decided as it was: both links up, the
    /// ingress port's untagged VLAN and the egress port's untagged membership unchanged, the
    /// destination learned on the egress port and the source on the ingress port.
    public func holds(_ route: UnicastRoute, at now: Instant) -> Bool {
        route.ingress != route.egress
            && linkUp.contains(route.ingress) && linkUp.contains(route.egress)
            && pvids[route.ingress.index] == route.vlan && pvids[route.egress.index] == route.vlan
            && vlanPorts[Int(route.vlan.rawValue)].contains(route.egress)
            && macs.lookup(route.destination, vlan: route.vlan, at: now) == route.egress
            && macs.lookup(route.source, vlan: route.vlan, at: now) == route.ingress
    }

    /// Frames of `route` that the kernel forwarded: received on its ingress port, as if the
    /// engine had seen them, and its source learned as of the last one.
    public func forwardedElsewhere(_ route: UnicastRoute, frames: UInt64, bytes: UInt64, lastSeen: Instant?) {
        counters.rxFrames[route.ingress.index] &+= frames
        counters.rxBytes[route.ingress.index] &+= bytes
        if let lastSeen { macs.refresh(route.source, vlan: route.vlan, port: route.ingress, seen: lastSeen) }
    }

    // MARK: - Links

    /// A port's link went down or came up. Down flushes what was learned there; up asks the
    /// hosts behind it for their memberships at once if we are the querier.
    public func setLink(_ port: PortID, up: Bool, at now: Instant) {
        if up {
            guard !linkUp.contains(port), port.index < ports.count, ports[port.index] != nil else { return }
            linkUp.insert(port)
            let vlans = ports[port.index]?.vlans.sorted() ?? []
            for vlan in vlans {
                if igmp.querier.role(in: vlan, at: now) == .us { igmp.querier.queryNow(in: vlan, at: now) }
                if mld.querier.role(in: vlan, at: now) == .us { mld.querier.queryNow(in: vlan, at: now) }
            }
            solicitRouters(in: vlans)
            sendDueQueries(at: now)
        } else {
            linkUp.remove(port)
            macs.removeAll(on: port)
            igmp.memberships.removeAll(on: port)
            igmp.routers.removeAll(on: port)
            mld.memberships.removeAll(on: port)
            mld.routers.removeAll(on: port)
        }
    }
}
