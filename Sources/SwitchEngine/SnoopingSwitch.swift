import Wire

/// The forwarding engine: frames and time in, decisions out. It owns no socket and reads no clock.
///
/// Rules: IEEE 802.1Q learning and VLANs; RFC 4541 for snooping; RFC 2236 and RFC 3376 for
/// membership timers and the querier.
///
/// Not thread-safe: the datapath's forwarding threads call it one at a time, under the
/// datapath's lock. Its state carries `@exclusivity(unchecked)`, which spares each frame the
/// runtime's access checks (the lock already keeps accesses apart).
public final class SnoopingSwitch {
    /// The switch's settings; the ports it has now are `ports`.
    public private(set) var configuration: SwitchConfiguration
    /// The tables are the engine's: the datapath and the control plane change them and read
    /// them through its methods (internal for the tests).
    let macs: MacTable
    let memberships: MembershipTable<IPv4Address, IGMPVersion>
    /// Each port's allowance of IGMP messages.
    @exclusivity(unchecked) private var igmpBuckets: [TokenBucket]
    @exclusivity(unchecked) public private(set) var routers: RouterPortTracker
    @exclusivity(unchecked) public private(set) var querier: QuerierElection
    @exclusivity(unchecked) public private(set) var counters: SwitchCounters
    /// Frames the switch originated since the caller last took them.
    @exclusivity(unchecked) private var outbox: [GeneratedFrame] = []
    /// Whether learned stations last at all (an aging time of zero forgets them at once): no
    /// route without them.
    private let macsAge: Bool
    /// Ports removed: with the MAC table's generation, what `routeGeneration` counts.
    @exclusivity(unchecked) private var portsRemoved: UInt64 = 0

    @exclusivity(unchecked) public private(set) var linkUp: PortSet
    /// Configured member ports of each VLAN, indexed by VLAN ID.
    @exclusivity(unchecked) private var vlanPorts = [PortSet](repeating: PortSet(), count: 4096)
    /// Ports whose pvid each VLAN is (frames leave them untagged), indexed by VLAN ID.
    @exclusivity(unchecked) private var untaggedPorts = [PortSet](repeating: PortSet(), count: 4096)
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
        macsAge = configuration.fdbAging > .zero
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
        if let pvid = port.pvid { untaggedPorts[Int(pvid.rawValue)].insert(id) }
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
        if let pvid = port.pvid { untaggedPorts[Int(pvid.rawValue)].remove(id) }
        portsRemoved &+= 1
        fastLeavePorts.remove(id)
        queryGuardPorts.remove(id)
        routers.setStatic(id, false)
        pvids[id.index] = nil
        ports[id.index] = nil
    }

    private static func macSweepPeriod(_ aging: Duration) -> Duration { max(.seconds(1), aging / 4) }


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
    private func decide(_ frame: IngressFrame, on port: PortID, at now: Instant) -> ForwardingDecision {
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
        // IPv4 multicast MAC (01:00:5e, RFC 1112 6.4) carrying IPv4: snooped. Other multicast floods.
        guard !destination.isBroadcast, destination.rawValue >> 23 == 0x0100_5e00_0000 >> 23,
              ethernet.etherType == EtherType.ipv4 else { return decision }
        guard let ip = try? IPv4HeaderView(checking: ethernet.payload) else { return drop(.malformed, on: port) }
        let group = ip.destination
        guard group.isMulticast else { return decision }

        switch ip.protocol {
        case IPv4HeaderView.ProtocolNumber.igmp where !ip.isFragment && snoops[Int(vlan.rawValue)]:
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

    // MARK: - IGMP

    /// An IGMP message in a snooping VLAN: checked (the port's rate, the checksum, a guarded
    /// port's router announcements), then heard by kind.
    private func receiveIGMP(_ ip: IPv4HeaderView, frame: IngressFrame, decision: ForwardingDecision,
                             on port: PortID, at now: Instant) -> ForwardingDecision {
        guard igmpBuckets[port.index].take(at: now) else {
            counters.errors.add(.rateLimited)
            return drop(.rateLimited, on: port)
        }
        let message: IGMPMessage
        do {
            message = try IGMPMessage.parse(ip.payload, verifyChecksum: !frame.checksumPending)
        } catch .unknownType {
            // RFC 4541 2.1.1 (3): unrecognized IGMP messages are flooded to all other ports.
            counters.errors.add(.unknownType)
            return decision
        } catch {
            counters.errors.add(MessageError(error))
            return drop(.badIGMP, on: port)
        }
        if queryGuardPorts.contains(port), message.announcesARouter {
            // A guarded port's hosts cannot speak for a router: refused, so a rogue host can
            // neither silence our querier nor draw every group to itself.
            counters.errors.add(.guardedQuery)
            return drop(.queryGuard, on: port)
        }
        // Reports and leaves go to the router ports only, never to other hosts (RFC 4541 2.1.1).
        var towardRouters = decision
        towardRouters.ports = decision.ports.intersection(routers.ports(in: decision.vlan))
        let vlan = decision.vlan

        switch message {
        case .query(let query):
            heardQuery(query, from: ip.source, in: vlan, on: port, at: now)
            return decision    // queries reach every port of the VLAN
        case .report(let group, let version):
            counters.received.add(.report(version))
            guard group.isMulticast else { return badGroup(on: port) }
            heardReport(group, version: version, in: vlan, on: port, at: now)
            return towardRouters
        case .leave(let group):
            counters.received.add(.leave)
            guard group.isMulticast else { return badGroup(on: port) }
            heardLeave(group, in: vlan, on: port, at: now)
            return towardRouters
        case .v3Report(let records):
            counters.received.add(.reportV3)
            for record in records { heardRecord(record, in: vlan, on: port, at: now) }
            return towardRouters
        case .dvmrp, .mrdAdvertisement, .mrdTermination:
            heardRouter(message, in: vlan, on: port, at: now)
            return decision
        case .mrdSolicitation:
            counters.received.add(.mrdSolicitation)
            return towardRouters
        }
    }

    /// A query: its port is a router port for the other querier present interval (unless the
    /// source is 0.0.0.0), it takes part in the election, and the elected querier's
    /// group-specific queries lower our timers (`followGroupQuery`).
    private func heardQuery(_ query: IGMPQuery, from source: IPv4Address, in vlan: VLANID, on port: PortID,
                            at now: Instant) {
        counters.received.add(.query(query.version))
        if source != .any {
            let timers = querier.effectiveTimers(in: vlan, at: now)
            routers.heard(.igmpQuery, on: port, in: vlan, until: now + timers.otherQuerierPresentInterval)
        }
        querier.heard(query, from: source, in: vlan, at: now)
        if !query.isGeneral, querier.elected(in: vlan, at: now) == source {
            followGroupQuery(query, in: vlan, at: now)
        }
    }

    /// An IGMPv1 or v2 report (RFC 3376 7.3.2): IS_EX({}), and the group in that version's
    /// compatibility mode.
    private func heardReport(_ group: IPv4Address, version: IGMPVersion, in vlan: VLANID, on port: PortID,
                             at now: Instant) {
        if configuration.ssmRange.contains(group) {
            counters.errors.add(.ssmIgnored)     // RFC 4604 2.2.1: no any-source membership in the SSM range
        } else if !group.isLocalNetworkControl {
            let timers = querier.effectiveTimers(in: vlan, at: now)
            apply(.isExclude, [], version: version, group: group, in: vlan, on: port, at: now)
            memberships.markOlderHost(version, on: port, of: group, in: vlan, until: now + timers.groupMembershipInterval)
        }
    }

    /// An IGMPv2 leave: TO_IN({}), unless the group is in IGMPv1 compatibility mode (RFC 3376 7.3.2).
    private func heardLeave(_ group: IPv4Address, in vlan: VLANID, on port: PortID, at now: Instant) {
        guard let member = memberships.member(port, of: group, in: vlan) else { return }
        if member.compatibilityMode(at: now).hasLeave {
            apply(.toInclude, [], version: .v2, group: group, in: vlan, on: port, at: now)
        } else {
            counters.errors.add(.ignoredInV1Mode)
        }
    }

    /// One group record of an IGMPv3 report, in the compatibility mode of its group on the port.
    private func heardRecord(_ record: IGMPGroupRecord, in vlan: VLANID, on port: PortID, at now: Instant) {
        guard record.group.isMulticast else { return counters.errors.add(.badGroup) }
        guard !record.group.isLocalNetworkControl else { return }
        let kind = MembershipRecord(record.type)
        var sources = record.sources
        if configuration.ssmRange.contains(record.group), kind == .isExclude || kind == .toExclude {
            return counters.errors.add(.ssmIgnored)      // RFC 4604 2.2.1
        }
        let mode = memberships.member(port, of: record.group, in: vlan)?.compatibilityMode(at: now) ?? .v3
        if mode < .v3 {
            // RFC 3376 7.3.2: in compatibility mode BLOCK is ignored, TO_EX's sources are;
            // with IGMPv1 hosts, TO_IN is ignored as leaves are.
            if kind == .block || (mode == .v1 && kind == .toInclude) {
                return counters.errors.add(.ignored(in: mode))
            }
            if kind == .toExclude || kind == .isExclude { sources = [] }
        }
        apply(kind, sources, version: .v3, group: record.group, in: vlan, on: port, at: now)
    }

    /// DVMRP probes and MRD advertisements make a router port; an MRD termination ends what MRD taught.
    private func heardRouter(_ message: IGMPMessage, in vlan: VLANID, on port: PortID, at now: Instant) {
        switch message {
        case .dvmrp(let code):
            counters.received.add(.dvmrp)
            if code == 1 {   // a probe: a DVMRP router's neighbor timeout is 35 s
                routers.heard(.dvmrpProbe, on: port, in: vlan, until: now + .seconds(35))
            }
        case .mrdAdvertisement(let interval, _, _):
            // RFC 4286: a router port until three advertisement intervals pass without one.
            counters.received.add(.mrdAdvertisement)
            routers.heard(.mrdAdvertisement, on: port, in: vlan, until: now + .seconds(3 * max(interval, 1)))
        case .mrdTermination:
            counters.received.add(.mrdTermination)
            routers.forget(.mrdAdvertisement, on: port, in: vlan)     // RFC 4286 2: only what MRD taught
        default:
            break
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
            counters.errors.add(.guardedQuery)
            return drop(.queryGuard, on: port)
        }
        counters.received.add(.query(query.version))
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
        counters.errors.add(.badGroup)
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
            counters.errors.add(.guardedQuery)
            counters.drop(.queryGuard, on: port)
            return false
        }
        switch try? PIMMessage.parse(ip.payload) {
        case .hello(let holdtime)?:
            counters.received.add(.pimHello)
            switch holdtime ?? 105 {
            case 0: routers.forget(.pimHello, on: port, in: vlan)       // the router is leaving
            case 0xffff: routers.heard(.pimHello, on: port, in: vlan, until: .distantFuture)
            case let seconds: routers.heard(.pimHello, on: port, in: vlan, until: now + .seconds(seconds))
            }
        case .other?:
            counters.received.add(.pimOther)
        case nil:
            counters.errors.add(.badPIM)
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
                counters.sent.add(.generalQuery)
            case .groupSpecific(let vlan, let version, let group):
                // 6.6.3.1: S set when some port's group timer still runs past the last member query time.
                let suppress = memberships.groupTimerExceeds(now + configuration.timers.lastMemberQueryTime, of: group, in: vlan)
                send(IGMPQuery(version: version, group: group, maxResponseDeciseconds: deciseconds(configuration.timers.lastMemberQueryInterval),
                               suppressRouterProcessing: suppress), to: group, in: vlan)
                counters.sent.add(.groupQuery)
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
                        counters.sent.add(.groupAndSourceQuery)
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
        if !ports.isEmpty { originate(bytes, to: ports, in: vlan) }
    }

    /// RFC 4286 section 5: a snooping switch solicits advertisements when it starts, so that it
    /// learns the routers without waiting for their next one.
    private func solicitRouters(in vlans: [VLANID]) {
        for vlan in vlans {
            let ports = activePorts(in: vlan)
            guard !ports.isEmpty else { continue }
            let source = querier.configuration(in: vlan)?.address ?? configuration.querier.address
            originate(IGMPFrameBuilder.frame(.mrdSolicitation, from: configuration.switchMAC, source: source,
                                             destination: .allRouters),
                      to: ports, in: vlan)
            counters.sent.add(.mrdSolicitation)
        }
    }

    /// The 802.1p priority of the frames the switch originates, where they leave tagged:
    /// 6, internetwork control (IEEE 802.1Q Annex I).
    static let originatedPriority: UInt8 = 6

    private func originate(_ bytes: [UInt8], to ports: PortSet, in vlan: VLANID) {
        let untagged = ports.intersection(untaggedPorts[Int(vlan.rawValue)])
        outbox.append(GeneratedFrame(vlan: vlan, priority: Self.originatedPriority, untagged: untagged,
                                     tagged: ports.subtracting(untagged), bytes: bytes))
    }

    /// Whether frames the switch originated wait to be taken.
    public var hasOutbox: Bool { !outbox.isEmpty }

    /// Hands over the frames the switch originated.
    public func takeOutbox() -> [GeneratedFrame] {
        defer { outbox.removeAll() }
        return outbox
    }

    // MARK: - Tables, for the control plane

    /// The learned stations, in no order: a copy to read without the table.
    public func macEntries() -> [(vlan: VLANID, mac: MACAddress, entry: MacTable.Entry)] { macs.unorderedEntries() }
    public var macAging: Duration { macs.aging }
    public var stationCount: Int { macs.count }

    /// Forgets every learned station (`fdb flush`).
    public func flushMACs() { macs.removeAll() }

    /// The memberships as they are now, to read on another thread (MembershipTable.Snapshot).
    public func membershipSnapshot() -> MembershipTable<IPv4Address, IGMPVersion>.Snapshot { memberships.snapshot() }
    public var groupCount: Int { memberships.groupCount }
    /// Group records refused at the membership limits, by limit.
    public var membershipRefusals: Counts<MembershipLimit> { memberships.refusals }

    /// What the limits refused so far: group records, new stations, IGMP messages past the rate.
    public var refusedAtLimits: UInt64 {
        memberships.refusals.total &+ counters.macTableFull &+ counters.errors[.rateLimited]
    }

    /// Forgets every learned membership, in one VLAN or all (`mdb flush`); static ones stay.
    public func flushMemberships(in vlan: VLANID? = nil) { memberships.flush(vlan: vlan) }

    /// A membership the operator configured (`mdb add`): `port` gets `group` from every source.
    public func addStaticMembership(_ port: PortID, to group: IPv4Address, in vlan: VLANID) {
        memberships.addStatic(port, to: group, in: vlan, version: .v3)
    }

    /// Removes a configured membership (`mdb del`); false when there was none.
    @discardableResult
    public func removeStaticMembership(_ port: PortID, from group: IPv4Address, in vlan: VLANID) -> Bool {
        memberships.removeStatic(port, from: group, in: vlan)
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
