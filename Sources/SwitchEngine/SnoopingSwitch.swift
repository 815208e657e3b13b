import Wire

/// A frame as a port backend hands it to the engine: the Ethernet bytes without an 802.1Q tag,
/// the tag (the kernel strips it into auxdata; the backend recovers it), and whether the
/// kernel left a transport checksum unfinished.
public struct IngressFrame {
    public var bytes: UnsafeRawBufferPointer
    public var tag: VLANTag?
    public var checksumPending: Bool
    /// The kernel took an 802.1ad S-tag (TPID 0x88A8), not an 802.1Q tag, out of the frame:
    /// `tag` is then nil. An S-tag still in the bytes shows as their EtherType.
    public var serviceTagged: Bool

    public init(bytes: UnsafeRawBufferPointer, tag: VLANTag? = nil, checksumPending: Bool = false,
                serviceTagged: Bool = false) {
        self.bytes = bytes
        self.tag = tag
        self.checksumPending = checksumPending
        self.serviceTagged = serviceTagged
    }
}

/// Where a frame goes: out of `ports`, in `vlan`, keeping its priority and drop eligible bits
/// when sent tagged. Empty `ports`: nowhere.
public struct ForwardingDecision: Equatable, Sendable {
    public var vlan: VLANID
    public var priority: UInt8
    public var dropEligible = false
    public var ports: PortSet

    public init(vlan: VLANID, priority: UInt8, dropEligible: Bool = false, ports: PortSet) {
        self.vlan = vlan
        self.priority = priority
        self.dropEligible = dropEligible
        self.ports = ports
    }

    /// The tag the frame carries out of a port that takes `vlan` tagged.
    public var tag: VLANTag { VLANTag(vlan: vlan, priority: priority, dropEligible: dropEligible) }

    public static let none = ForwardingDecision(vlan: .default, priority: 0, ports: .empty)
}

/// A frame the switch itself sends (a query), untagged, to be tagged per egress port.
public struct GeneratedFrame: Equatable, Sendable {
    public var vlan: VLANID
    public var ports: PortSet
    public var bytes: [UInt8]
}

/// The forwarding engine: frames and time in, decisions out. It owns no socket and reads no clock.
///
/// Rules: IEEE 802.1Q learning and VLANs; RFC 4541 for snooping; RFC 2236 and RFC 3376 for
/// membership timers and the querier.
///
/// The engine runs on one thread, the datapath's: its state carries `@exclusivity(unchecked)`,
/// which spares each frame the runtime's access checks (about 40 ns a frame, measured).
public final class SnoopingSwitch {
    /// The switch's settings; the ports it has now are `ports`.
    public private(set) var configuration: SwitchConfiguration
    public let macs: MacTable
    public let memberships: MembershipTable<IPv4Address, IGMPVersion>
    /// Each port's allowance of IGMP messages.
    @exclusivity(unchecked) private var igmpBuckets: [TokenBucket]
    @exclusivity(unchecked) public private(set) var routers: RouterPortTracker
    @exclusivity(unchecked) public private(set) var querier: QuerierElection
    @exclusivity(unchecked) public private(set) var counters: SwitchCounters
    /// IGMP and PIM frames received: a change is the sign that forwarding state may have moved
    /// within a batch of frames (the datapath keeps a flow's frames in order across it).
    @exclusivity(unchecked) public private(set) var controlFrames: UInt64 = 0
    /// Frames the switch originated since the caller last took them.
    @exclusivity(unchecked) public private(set) var outbox: [GeneratedFrame] = []

    @exclusivity(unchecked) public private(set) var linkUp: PortSet
    /// Configured member ports of each VLAN, indexed by VLAN ID.
    @exclusivity(unchecked) private var vlanPorts = [PortSet](repeating: PortSet(), count: 4096)
    @exclusivity(unchecked) private var pvids: [VLANID?]
    @exclusivity(unchecked) private var fastLeavePorts = PortSet()
    @exclusivity(unchecked) private var queryGuardPorts = PortSet()
    /// Whether IGMP snooping runs in each VLAN, indexed by VLAN ID.
    @exclusivity(unchecked) private var snoops = [Bool](repeating: true, count: 4096)
    @exclusivity(unchecked) private var nextMacSweep: Instant
    /// The reserved addresses relayed (bit n: 01:80:C2:00:00:0n), the configuration's in force.
    @exclusivity(unchecked) private var relayedReserved: UInt16

    public init(configuration: SwitchConfiguration, at now: Instant) {
        precondition(configuration.ports.count <= PortSet.capacity, "too many ports")
        self.configuration = configuration
        let capacity = PortSet.capacity
        macs = MacTable(limit: configuration.macTableLimit, perPortLimit: configuration.macsPerPortLimit,
                        portCount: capacity, aging: configuration.fdbAging)
        memberships = MembershipTable(limits: configuration.membershipLimits)
        igmpBuckets = Array(repeating: TokenBucket(rate: configuration.igmpRatePerPort, at: now), count: capacity)
        counters = SwitchCounters(portCount: capacity)
        pvids = Array(repeating: nil, count: capacity)
        ports = []
        linkUp = PortSet()
        routers = RouterPortTracker(staticPorts: PortSet())
        querier = QuerierElection(configuration: configuration, at: now)
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
        querier.reconfigure(applied, at: now)
        for port in ports.compactMap({ $0 }) {
            for vlan in port.vlans { snoops[Int(vlan.rawValue)] = applied.snoops(vlan) }
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
    public private(set) var ports: [PortConfiguration?]

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
        counters.rxFrames[index] = 0
        counters.rxBytes[index] = 0
        counters.drops[index] = 0
        igmpBuckets[index] = TokenBucket(rate: configuration.igmpRatePerPort, at: now)
        for vlan in port.vlans {
            vlanPorts[Int(vlan.rawValue)].insert(id)
            snoops[Int(vlan.rawValue)] = configuration.snoops(vlan)
            querier.addVLAN(vlan, configuration: configuration.querier(in: vlan), at: now)
        }
        if port.fastLeave { fastLeavePorts.insert(id) }
        if port.queryGuard { queryGuardPorts.insert(id) }
        if port.isStaticRouterPort { routers.setStatic(id, true) }
        if up { linkUp.insert(id) }
        return id
    }

    /// Removes a port at run time: what was learned on it goes with it.
    public func removePort(_ id: PortID, at now: Instant) {
        guard id.index < ports.count, let port = ports[id.index] else { return }
        setLink(id, up: false, at: now)
        memberships.removeStatic(on: id)
        for vlan in port.vlans { vlanPorts[Int(vlan.rawValue)].remove(id) }
        fastLeavePorts.remove(id)
        queryGuardPorts.remove(id)
        routers.setStatic(id, false)
        pvids[id.index] = nil
        ports[id.index] = nil
    }

    private static func macSweepPeriod(_ aging: Duration) -> Duration { max(.seconds(1), aging / 4) }


    /// Whether frames in `vlan` leave `port` with a tag: all but the port's pvid.
    @inline(__always)
    public func egressTagged(_ port: PortID, vlan: VLANID) -> Bool { pvids[port.index] != vlan }

    /// The ports of a VLAN whose links are up.
    @inline(__always)
    public func activePorts(in vlan: VLANID) -> PortSet { vlanPorts[Int(vlan.rawValue)].intersection(linkUp) }

    // MARK: - Receiving

    public func receive(_ frame: IngressFrame, on port: PortID, at now: Instant) -> ForwardingDecision {
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
        if !macs.learn(source, vlan: vlan, port: port, at: now) { counters.macTableFull &+= 1 }

        let flood = activePorts(in: vlan).removing(port)
        var decision = ForwardingDecision(vlan: vlan, priority: priority, dropEligible: dropEligible, ports: flood)
        if !destination.isMulticast {
            if let known = macs.lookup(destination, vlan: vlan, at: now) {
                decision.ports = known == port ? .empty : flood.intersection(PortSet([known]))
            }
            return decision
        }
        // IPv4 multicast MAC (01:00:5e, RFC 1112 6.4) carrying IPv4: snooped. Other multicast floods.
        guard !destination.isBroadcast, destination.rawValue >> 23 == 0x0100_5e00_0000 >> 23,
              ethernet.etherType == EtherType.ipv4 else { return decision }
        guard let ip = try? IPv4HeaderView(checking: ethernet.payload) else { return drop(.malformed, on: port) }
        let group = ip.destination
        guard group.isMulticast else { return decision }

        switch ip.protocol {
        case IPv4HeaderView.ProtocolNumber.igmp where !ip.isFragment && snoops[Int(vlan.rawValue)]:
            controlFrames &+= 1
            return receiveIGMP(ip, frame: frame, decision: decision, on: port, at: now)
        case IPv4HeaderView.ProtocolNumber.igmp where !ip.isFragment:
            return electWithoutSnooping(ip, frame: frame, decision: decision, on: port, at: now)
        case IPv4HeaderView.ProtocolNumber.pim where group == .allPIMRouters && !ip.isFragment:
            controlFrames &+= 1
            return receivePIM(ip, vlan: vlan, on: port, at: now) ? decision : .none
        default:
            decision.ports = dataPorts(to: group, from: ip.source, in: vlan, flood: flood, at: now)
            return decision
        }
    }

    /// RFC 4541 2.1.2: the local network control block floods; a registered group goes to its
    /// members and the router ports; an unregistered one to the router ports only.
    /// With IGMPv3 state, a member port gets only the sources it admits (RFC 3376 6.3).
    @inline(__always)
    private func dataPorts(to group: IPv4Address, from source: IPv4Address, in vlan: VLANID, flood: PortSet,
                           at now: Instant) -> PortSet {
        if group.isLocalNetworkControl || !snoops[Int(vlan.rawValue)] { return flood }
        let routerPorts = routers.ports(in: vlan)
        if let members = memberships.ports(of: group, in: vlan, from: source, at: now) {
            return flood.intersection(members.union(routerPorts))
        }
        return configuration.floodUnregistered ? flood : flood.intersection(routerPorts)
    }

    private func drop(_ reason: DropReason, on port: PortID) -> ForwardingDecision {
        counters.drop(reason, on: port)
        return .none
    }

    // MARK: - Unicast routes the kernel may carry

    /// A unicast decision that holds for every frame from `source` to `destination` arriving
    /// untagged on `ingress`, for as long as the MAC table and the ports stay as they are. The
    /// datapath may hand such a flow to the kernel and leave it there while `holds` says so.
    public struct UnicastRoute: Hashable, Sendable {
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

    /// The route `decision` (just made for `frame` on `port`) took, when it is one: an untagged
    /// frame to one learned unicast station, out of an untagged port. Every other decision is
    /// the engine's alone (floods, multicast, VLAN tags, IGMP).
    @inline(__always)
    public func unicastRoute(of frame: IngressFrame, on port: PortID, decision: ForwardingDecision,
                             at now: Instant) -> UnicastRoute? {
        guard frame.tag == nil, decision.ports.count == 1, frame.bytes.count >= 14, frame.bytes[0] & 1 == 0,
              let egress = decision.ports.first(where: { _ in true }) else { return nil }
        let route = UnicastRoute(vlan: decision.vlan, source: MACAddress(frame.bytes, at: 6),
                                 destination: MACAddress(frame.bytes, at: 0), ingress: port, egress: egress)
        return holds(route, at: now) ? route : nil
    }

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

    // MARK: - IGMP

    private func receiveIGMP(_ ip: IPv4HeaderView, frame: IngressFrame, decision: ForwardingDecision,
                             on port: PortID, at now: Instant) -> ForwardingDecision {
        var decision = decision
        let flood = decision.ports
        let vlan = decision.vlan
        guard igmpBuckets[port.index].take(at: now) else {
            counters.errors["rate_limited", default: 0] &+= 1
            return drop(.rateLimited, on: port)
        }
        let message: IGMPMessage
        do {
            message = try IGMPMessage.parse(ip.payload, verifyChecksum: !frame.checksumPending)
        } catch .unknownType {
            // RFC 4541 2.1.1 (3): unrecognized IGMP messages are flooded to all other ports.
            counters.errors["unknown_type", default: 0] &+= 1
            return decision
        } catch {
            counters.errors[error.counterName, default: 0] &+= 1
            return drop(.badIGMP, on: port)
        }
        // Reports and leaves go to the router ports only, never to other hosts (RFC 4541 2.1.1).
        let towardRouters = flood.intersection(routers.ports(in: vlan))
        let timers = querier.effectiveTimers(in: vlan, at: now)

        if queryGuardPorts.contains(port), message.announcesARouter {
            // A guarded port's hosts cannot speak for a router: refused, so a rogue host can
            // neither silence our querier nor draw every group to itself.
            counters.errors["guarded_query", default: 0] &+= 1
            return drop(.queryGuard, on: port)
        }

        switch message {
        case .query(let query):
            counters.received["query_\(query.version)", default: 0] &+= 1
            if ip.source != .any {
                routers.heard(.igmpQuery, on: port, in: vlan, until: now + timers.otherQuerierPresentInterval)
            }
            querier.heard(query, from: ip.source, in: vlan, at: now)
            if !query.isGeneral, querier.elected(in: vlan, at: now) == ip.source {
                followGroupQuery(query, in: vlan, at: now)
            }
            return decision    // queries reach every port of the VLAN

        case .report(let group, let version):
            counters.received["\(version)_report", default: 0] &+= 1
            guard group.isMulticast else { return badGroup(on: port) }
            if configuration.ssmRange.contains(group) {
                // RFC 4604 2.2.1: no any-source membership in the SSM range.
                counters.errors["ssm_ignored", default: 0] &+= 1
            } else if snoops[Int(vlan.rawValue)], !group.isLocalNetworkControl {
                // RFC 3376 7.3.2: an older report is IS_EX({}) and puts the group in compatibility mode.
                apply(.isExclude, [], version: version, group: group, in: vlan, on: port, at: now)
                memberships.markOlderHost(version, on: port, of: group, in: vlan,
                                          until: now + timers.groupMembershipInterval)
            }
            decision.ports = towardRouters
            return decision

        case .leave(let group):
            counters.received["v2_leave", default: 0] &+= 1
            guard group.isMulticast else { return badGroup(on: port) }
            if let member = memberships.member(port, of: group, in: vlan), snoops[Int(vlan.rawValue)] {
                if member.compatibilityMode(at: now).hasLeave {
                    apply(.toInclude, [], version: .v2, group: group, in: vlan, on: port, at: now)   // leave = TO_IN({})
                } else {
                    counters.errors["ignored_in_v1_mode", default: 0] &+= 1
                }
            }
            decision.ports = towardRouters
            return decision

        case .v3Report(let records):
            counters.received["v3_report", default: 0] &+= 1
            guard snoops[Int(vlan.rawValue)] else {
                decision.ports = towardRouters
                return decision
            }
            for record in records {
                guard record.group.isMulticast else {
                    counters.errors["bad_group", default: 0] &+= 1
                    continue
                }
                guard !record.group.isLocalNetworkControl else { continue }
                let kind = MembershipRecord(record.type)
                var sources = record.sources
                if configuration.ssmRange.contains(record.group), kind == .isExclude || kind == .toExclude {
                    counters.errors["ssm_ignored", default: 0] &+= 1      // RFC 4604 2.2.1
                    continue
                }
                let mode = memberships.member(port, of: record.group, in: vlan)?.compatibilityMode(at: now) ?? .v3
                if mode < .v3 {
                    // RFC 3376 7.3.2: in compatibility mode BLOCK is ignored, TO_EX's sources are;
                    // with IGMPv1 hosts, TO_IN is ignored as leaves are.
                    if kind == .block || (mode == .v1 && kind == .toInclude) {
                        counters.errors["ignored_in_\(mode)_mode", default: 0] &+= 1
                        continue
                    }
                    if kind == .toExclude || kind == .isExclude { sources = [] }
                }
                apply(kind, sources, version: .v3, group: record.group, in: vlan, on: port, at: now)
            }
            decision.ports = towardRouters
            return decision

        case .dvmrp(let code):
            counters.received["dvmrp", default: 0] &+= 1
            if code == 1 {   // a probe: a DVMRP router's neighbor timeout is 35 s
                routers.heard(.dvmrpProbe, on: port, in: vlan, until: now + .seconds(35))
            }
            return decision

        case .mrdAdvertisement(let interval, _, _):
            // RFC 4286: a router port until three advertisement intervals pass without one.
            counters.received["mrd_advertisement", default: 0] &+= 1
            routers.heard(.mrdAdvertisement, on: port, in: vlan, until: now + .seconds(3 * max(interval, 1)))
            return decision

        case .mrdTermination:
            counters.received["mrd_termination", default: 0] &+= 1
            routers.forget(.mrdAdvertisement, on: port, in: vlan)     // RFC 4286 2: only what MRD taught
            return decision

        case .mrdSolicitation:
            counters.received["mrd_solicitation", default: 0] &+= 1
            decision.ports = towardRouters
            return decision
        }
    }

    /// A VLAN without snooping floods IGMP like any multicast, but its queries still elect the
    /// querier (RFC 3376 6.6.2, RFC 2236 3): ours yields there to a lower address as anywhere.
    /// Past the port's IGMP rate a query is flooded unheard; a guarded port's is refused.
    private func electWithoutSnooping(_ ip: IPv4HeaderView, frame: IngressFrame, decision: ForwardingDecision,
                                      on port: PortID, at now: Instant) -> ForwardingDecision {
        let payload = ip.payload
        guard payload.count >= 8, payload[0] == IGMPMessage.MessageType.query,
              igmpBuckets[port.index].take(at: now),
              case .query(let query)? = try? IGMPMessage.parse(payload, verifyChecksum: !frame.checksumPending)
        else { return decision }
        if queryGuardPorts.contains(port) {
            counters.errors["guarded_query", default: 0] &+= 1
            return drop(.queryGuard, on: port)
        }
        counters.received["query_\(query.version)", default: 0] &+= 1
        querier.heard(query, from: ip.source, in: decision.vlan, at: now)
        return decision
    }

    /// RFC 3376 6.6.1 for a router that is not the querier: the elected querier's Q(G) lowers
    /// the group timer, its Q(G,A) the timers of the sources named, to its last member query time,
    /// which is its last member query count (its QRV; RFC 2236 3: our count for IGMPv2) times the
    /// query's max response time. With the S flag set, timers stay (6.6.1).
    private func followGroupQuery(_ query: IGMPQuery, in vlan: VLANID, at now: Instant) {
        guard !query.suppressRouterProcessing, query.version != .v1 else { return }
        let count = query.version == .v3 && query.robustness > 0 ? query.robustness : configuration.timers.lastMemberQueryCount
        let lastMemberQueryTime = Duration.deciseconds(query.maxResponseDeciseconds) * count
        memberships.lowerTimers(of: query.group, in: vlan, sources: query.sources, to: now + lastMemberQueryTime)
    }

    private func badGroup(on port: PortID) -> ForwardingDecision {
        counters.errors["bad_group", default: 0] &+= 1
        return drop(.badIGMP, on: port)
    }

    /// One record through RFC 3376 tables 6.4.1/6.4.2 for `port`; the queries it owes are ours
    /// to send if we are the querier. A fast-leave port is pruned at once instead of being asked.
    /// When another querier is elected, its queries lower the timers (`followGroupQuery`), not
    /// ours: a router with a longer last member query time keeps its members as long as it asks.
    private func apply(_ record: MembershipRecord, _ sources: [IPv4Address], version: IGMPVersion,
                       group: IPv4Address, in vlan: VLANID, on port: PortID, at now: Instant) {
        let timers = querier.effectiveTimers(in: vlan, at: now)
        let fastLeave = fastLeavePorts.contains(port)
        // One host behind a fast-leave port: its current state is the port's state, so IS_IN and
        // IS_EX replace the state as TO_IN and TO_EX do (IS_IN({}) leaves at once).
        let record = !fastLeave ? record : record == .isInclude ? .toInclude : record == .isExclude ? .toExclude : record
        let owed = memberships.apply(
            record, sources: sources, version: version, on: port, to: group, in: vlan, at: now,
            timers: MembershipTimers(groupMembershipInterval: timers.groupMembershipInterval,
                                     lastMemberQueryTime: querier.role(in: vlan, at: now) == .other
                                        ? nil : configuration.timers.lastMemberQueryTime),
            fastLeave: fastLeave)
        if !owed.isEmpty {
            querier.schedule(owed, for: group, in: vlan, at: now)
            sendDueQueries(at: now)
        }
    }

    // MARK: - PIM

    /// A PIM hello marks a router port for its holdtime (RFC 7761 4.3.3; 105 s when absent;
    /// 0xFFFF never runs out, 0 takes back what PIM taught, 4.9.2).
    private func receivePIM(_ ip: IPv4HeaderView, vlan: VLANID, on port: PortID, at now: Instant) -> Bool {
        if queryGuardPorts.contains(port) {
            counters.errors["guarded_query", default: 0] &+= 1
            counters.drop(.queryGuard, on: port)
            return false
        }
        switch try? PIMMessage.parse(ip.payload) {
        case .hello(let holdtime)?:
            counters.received["pim_hello", default: 0] &+= 1
            switch holdtime ?? 105 {
            case 0: routers.forget(.pimHello, on: port, in: vlan)       // the router is leaving
            case 0xffff: routers.heard(.pimHello, on: port, in: vlan, until: .distantFuture)
            case let seconds: routers.heard(.pimHello, on: port, in: vlan, until: now + .seconds(seconds))
            }
        case .other?:
            counters.received["pim_other", default: 0] &+= 1
        case nil:
            counters.errors["bad_pim", default: 0] &+= 1
        }
        return true
    }

    // MARK: - Time

    /// Runs every timer due by `now`: membership and router-port expiry, MAC aging, queries.
    public func advance(to now: Instant) {
        _ = memberships.expire(at: now)
        routers.expire(at: now)
        if now >= nextMacSweep {
            macs.expire(at: now)
            nextMacSweep = now + Self.macSweepPeriod(configuration.fdbAging)
        }
        sendDueQueries(at: now)
    }

    /// When `advance` next has work to do.
    public func nextDeadline(at now: Instant) -> Instant {
        var next = nextMacSweep
        if let t = memberships.nextDeadline { next = min(next, t) }
        if let t = routers.nextDeadline { next = min(next, t) }
        if let t = querier.nextDeadline(at: now) { next = min(next, t) }
        return next
    }

    private func sendDueQueries(at now: Instant) {
        for due in querier.takeDueQueries(at: now) {
            switch due {
            case .general(let vlan, let version):
                send(IGMPQuery(version: version, maxResponseDeciseconds: deciseconds(configuration.timers.queryResponseInterval)),
                     to: .allSystems, in: vlan)
                counters.sent["general_query", default: 0] &+= 1
            case .groupSpecific(let vlan, let version, let group):
                // 6.6.3.1: S set when some port's group timer still runs past the last member query time.
                let suppress = memberships.groupTimerExceeds(now + configuration.timers.lastMemberQueryTime, of: group, in: vlan)
                send(IGMPQuery(version: version, group: group, maxResponseDeciseconds: deciseconds(configuration.timers.lastMemberQueryInterval),
                               suppressRouterProcessing: suppress), to: group, in: vlan)
                counters.sent["group_query", default: 0] &+= 1
            case .groupAndSourceSpecific(let vlan, let group, let sources):
                // 6.6.3.2: one query for the sources whose timers run past LMQT (S set), one for the rest.
                let deadline = now + configuration.timers.lastMemberQueryTime
                let running = sources.filter { memberships.sourceTimerExceeds(deadline, source: $0, of: group, in: vlan) }
                let lowered = sources.filter { !running.contains($0) }
                for (list, suppress) in [(running, true), (lowered, false)] where !list.isEmpty {
                    // At most 366 sources fit a 1500-byte frame.
                    for start in stride(from: 0, to: list.count, by: 366) {
                        send(IGMPQuery(version: .v3, group: group,
                                       maxResponseDeciseconds: deciseconds(configuration.timers.lastMemberQueryInterval),
                                       suppressRouterProcessing: suppress,
                                       sources: Array(list[start..<min(start + 366, list.count)])), to: group, in: vlan)
                        counters.sent["group_source_query", default: 0] &+= 1
                    }
                }
            }
        }
    }

    private func deciseconds(_ duration: Duration) -> Int { Int(duration.nanoseconds / 100_000_000) }

    private func send(_ query: IGMPQuery, to destination: IPv4Address, in vlan: VLANID) {
        var query = query
        query.robustness = configuration.timers.robustness
        query.queryIntervalSeconds = Int(configuration.timers.queryInterval.nanoseconds / 1_000_000_000)
        let source = querier.configuration(in: vlan)?.address ?? configuration.querier.address
        let bytes = IGMPFrameBuilder.frame(.query(query), from: configuration.switchMAC, source: source, destination: destination)
        let ports = activePorts(in: vlan)
        if !ports.isEmpty { outbox.append(GeneratedFrame(vlan: vlan, ports: ports, bytes: bytes)) }
    }

    /// RFC 4286 section 5: a snooping switch solicits advertisements when it starts, so that it
    /// learns the routers without waiting for their next one.
    private func solicitRouters(in vlans: [VLANID]) {
        for vlan in vlans {
            let ports = activePorts(in: vlan)
            guard !ports.isEmpty else { continue }
            let source = querier.configuration(in: vlan)?.address ?? configuration.querier.address
            outbox.append(GeneratedFrame(vlan: vlan, ports: ports,
                                         bytes: IGMPFrameBuilder.frame(.mrdSolicitation, from: configuration.switchMAC,
                                                                       source: source, destination: .allRouters)))
            counters.sent["mrd_solicitation", default: 0] &+= 1
        }
    }

    /// Hands over the frames the switch originated.
    public func takeOutbox() -> [GeneratedFrame] {
        defer { outbox.removeAll() }
        return outbox
    }

    // MARK: - Links

    /// A port's link went down or came up. Down flushes what was learned there; up asks the
    /// hosts behind it for their memberships at once if we are the querier.
    public func setLink(_ port: PortID, up: Bool, at now: Instant) {
        if up {
            guard !linkUp.contains(port), port.index < ports.count, ports[port.index] != nil else { return }
            linkUp.insert(port)
            let vlans = ports[port.index]?.vlans.sorted() ?? []
            for vlan in vlans where querier.role(in: vlan, at: now) == .us {
                querier.queryNow(in: vlan, at: now)
            }
            solicitRouters(in: vlans)
            sendDueQueries(at: now)
        } else {
            linkUp.remove(port)
            macs.removeAll(on: port)
            memberships.removeAll(on: port)
            routers.removeAll(on: port)
        }
    }
}
