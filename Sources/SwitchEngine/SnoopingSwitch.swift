import Wire

/// A frame as a port backend hands it to the engine: the Ethernet bytes without an 802.1Q tag,
/// the tag (the kernel strips it into auxdata; the backend recovers it), and whether the
/// kernel left a transport checksum unfinished.
public struct IngressFrame {
    public var bytes: UnsafeRawBufferPointer
    public var tag: VLANTag?
    public var checksumPending: Bool

    public init(bytes: UnsafeRawBufferPointer, tag: VLANTag? = nil, checksumPending: Bool = false) {
        self.bytes = bytes
        self.tag = tag
        self.checksumPending = checksumPending
    }
}

/// Where a frame goes: out of `ports`, in `vlan`, keeping its priority bits when sent tagged.
/// Empty `ports`: nowhere.
public struct ForwardingDecision: Equatable, Sendable {
    public var vlan: VLANID
    public var priority: UInt8
    public var ports: PortSet

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
public final class SnoopingSwitch {
    public let configuration: SwitchConfiguration
    public private(set) var macs: MacTable
    public private(set) var memberships = MembershipTable<IPv4Address, IGMPVersion>()
    public private(set) var routers: RouterPortTracker
    public private(set) var querier: QuerierElection
    public private(set) var counters: SwitchCounters
    /// Frames the switch originated since the caller last took them.
    public private(set) var outbox: [GeneratedFrame] = []

    public private(set) var linkUp: PortSet
    /// Configured member ports of each VLAN, indexed by VLAN ID.
    private var vlanPorts = [PortSet](repeating: PortSet(), count: 4096)
    private var pvids: [VLANID?]
    private var fastLeavePorts = PortSet()
    private var nextMacSweep: Instant

    public init(configuration: SwitchConfiguration, at now: Instant) {
        precondition(configuration.ports.count <= PortSet.capacity, "too many ports")
        self.configuration = configuration
        macs = MacTable(limit: configuration.macTableLimit, aging: configuration.fdbAging)
        counters = SwitchCounters(portCount: configuration.ports.count)
        pvids = configuration.ports.map(\.pvid)
        var allVLANs = Set<VLANID>()
        var staticRouters = PortSet()
        var all = PortSet()
        for (index, port) in configuration.ports.enumerated() {
            let id = PortID(index)
            all.insert(id)
            for vlan in port.vlans {
                vlanPorts[Int(vlan.rawValue)].insert(id)
                allVLANs.insert(vlan)
            }
            if port.isStaticRouterPort { staticRouters.insert(id) }
            if port.fastLeave { fastLeavePorts.insert(id) }
        }
        linkUp = all
        routers = RouterPortTracker(staticPorts: staticRouters)
        querier = QuerierElection(configuration: configuration.querier, timers: configuration.timers,
                                  vlans: allVLANs, at: now)
        nextMacSweep = now + Self.macSweepPeriod(configuration.fdbAging)
    }

    private static func macSweepPeriod(_ aging: Duration) -> Duration { max(.seconds(1), aging / 4) }

    public var portCount: Int { configuration.ports.count }

    /// Whether frames in `vlan` leave `port` with a tag: all but the port's pvid.
    @inline(__always)
    public func egressTagged(_ port: PortID, vlan: VLANID) -> Bool { pvids[port.index] != vlan }

    /// The ports of a VLAN whose links are up.
    @inline(__always)
    public func activePorts(in vlan: VLANID) -> PortSet { vlanPorts[Int(vlan.rawValue)].intersection(linkUp) }

    // MARK: - Receiving

    public func receive(_ frame: IngressFrame, on port: PortID, at now: Instant) -> ForwardingDecision {
        counters.rxFrames[port.index] &+= 1
        guard linkUp.contains(port) else { return drop(.portDown, on: port) }
        guard let ethernet = try? EthernetFrameView(checking: frame.bytes) else { return drop(.malformed, on: port) }

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

        let source = ethernet.source
        guard !source.isMulticast else { return drop(.multicastSource, on: port) }
        if !macs.learn(source, vlan: vlan, port: port, at: now) { counters.macTableFull &+= 1 }

        let destination = ethernet.destination
        let flood = activePorts(in: vlan).removing(port)
        var decision = ForwardingDecision(vlan: vlan, priority: priority, ports: flood)
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
        case IPv4HeaderView.ProtocolNumber.igmp where !ip.isFragment:
            return receiveIGMP(ip, frame: frame, decision: decision, on: port, at: now)
        case IPv4HeaderView.ProtocolNumber.pim where group == .allPIMRouters && !ip.isFragment:
            receivePIM(ip, vlan: vlan, on: port, at: now)
            return decision
        default:
            decision.ports = dataPorts(to: group, in: vlan, flood: flood)
            return decision
        }
    }

    /// RFC 4541 2.1.2: the local network control block floods; a registered group goes to its
    /// members and the router ports; an unregistered one to the router ports only.
    @inline(__always)
    private func dataPorts(to group: IPv4Address, in vlan: VLANID, flood: PortSet) -> PortSet {
        if group.isLocalNetworkControl { return flood }
        let routerPorts = routers.ports(in: vlan)
        if let members = memberships.ports(of: group, in: vlan) {
            return flood.intersection(members.union(routerPorts))
        }
        return configuration.floodUnregistered ? flood : flood.intersection(routerPorts)
    }

    private func drop(_ reason: DropReason, on port: PortID) -> ForwardingDecision {
        counters.drop(reason, on: port)
        return .none
    }

    // MARK: - IGMP

    private func receiveIGMP(_ ip: IPv4HeaderView, frame: IngressFrame, decision: ForwardingDecision,
                             on port: PortID, at now: Instant) -> ForwardingDecision {
        var decision = decision
        let flood = decision.ports
        let vlan = decision.vlan
        let message: IGMPMessage
        do {
            message = try IGMPMessage.parse(ip.payload, verifyChecksum: !frame.checksumPending)
        } catch .unknownType {
            // Not a message snooping knows (DVMRP, mtrace, ...): forwarded as the data it is.
            counters.received["other", default: 0] &+= 1
            decision.ports = dataPorts(to: ip.destination, in: vlan, flood: flood)
            return decision
        } catch {
            counters.errors[error.counterName, default: 0] &+= 1
            return drop(.badIGMP, on: port)
        }
        // Reports and leaves go to the router ports only, never to other hosts (RFC 4541 2.1.1).
        let towardRouters = flood.intersection(routers.ports(in: vlan))

        switch message {
        case .query(let query):
            counters.received["query_\(query.version)", default: 0] &+= 1
            if ip.source != .any {
                routers.heard(.igmpQuery, on: port, in: vlan, until: now + configuration.timers.otherQuerierPresentInterval)
            }
            querier.heard(query, from: ip.source, in: vlan, at: now)
            return decision    // queries reach every port of the VLAN

        case .report(let group, let version):
            counters.received["\(version)_report", default: 0] &+= 1
            guard group.isMulticast else { return badGroup(on: port) }
            join(group, version: version, in: vlan, on: port, at: now)
            decision.ports = towardRouters
            return decision

        case .leave(let group):
            counters.received["v2_leave", default: 0] &+= 1
            guard group.isMulticast else { return badGroup(on: port) }
            leave(group, in: vlan, on: port, at: now)
            decision.ports = towardRouters
            return decision

        case .v3Report(let records):
            counters.received["v3_report", default: 0] &+= 1
            for record in records {
                guard record.group.isMulticast else {
                    counters.errors["bad_group", default: 0] &+= 1
                    continue
                }
                switch record.type {
                case .modeIsExclude, .changeToExclude:
                    join(record.group, version: .v3, in: vlan, on: port, at: now)
                case .modeIsInclude, .changeToInclude, .allowNewSources:
                    // INCLUDE with no sources is a leave (RFC 3376 6.4.1, TO_IN({}))
                    if record.sources.isEmpty {
                        if record.type != .allowNewSources { leave(record.group, in: vlan, on: port, at: now) }
                    } else {
                        join(record.group, version: .v3, in: vlan, on: port, at: now)
                    }
                case .blockOldSources:
                    break   // group-level state: blocking some sources keeps the group wanted
                }
            }
            decision.ports = towardRouters
            return decision
        }
    }

    private func badGroup(on port: PortID) -> ForwardingDecision {
        counters.errors["bad_group", default: 0] &+= 1
        return drop(.badIGMP, on: port)
    }

    /// A report: the port is a member for the group membership interval (RFC 3376 8.4).
    /// Reports for the local network control block are not tracked: it always floods.
    private func join(_ group: IPv4Address, version: IGMPVersion, in vlan: VLANID, on port: PortID, at now: Instant) {
        guard !group.isLocalNetworkControl else { return }
        let interval = querier.effectiveTimers(in: vlan, at: now).groupMembershipInterval
        memberships.join(port, to: group, in: vlan, version: version, until: now + interval)
    }

    /// A leave heard on `port` concerns that port only. Fast-leave prunes at once; otherwise the
    /// port's timer drops to the last member query time, and if we are the querier we ask
    /// (RFC 2236 section 3, RFC 3376 6.6.3.1).
    private func leave(_ group: IPv4Address, in vlan: VLANID, on port: PortID, at now: Instant) {
        guard memberships.member(port, of: group, in: vlan) != nil else { return }
        if fastLeavePorts.contains(port) {
            memberships.remove(port, from: group, in: vlan)
            return
        }
        memberships.lower(port, of: group, in: vlan, to: now + configuration.timers.lastMemberQueryTime)
        querier.scheduleGroupQueries(for: group, in: vlan, at: now)
        sendDueQueries(at: now)
    }

    // MARK: - PIM

    /// A PIM hello marks a router port for its holdtime (RFC 7761 4.3.3; 105 s when absent).
    private func receivePIM(_ ip: IPv4HeaderView, vlan: VLANID, on port: PortID, at now: Instant) {
        switch try? PIMMessage.parse(ip.payload) {
        case .hello(let holdtime)?:
            counters.received["pim_hello", default: 0] &+= 1
            let seconds = holdtime ?? 105
            guard seconds > 0 else { return }   // holdtime 0: the router is leaving
            routers.heard(.pimHello, on: port, in: vlan, until: now + .seconds(seconds))
        case .other?:
            counters.received["pim_other", default: 0] &+= 1
        case nil:
            counters.errors["bad_pim", default: 0] &+= 1
        }
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
        let timers = configuration.timers
        let ours = configuration.querier
        for due in querier.takeDueQueries(at: now) {
            let query: IGMPQuery
            let vlan: VLANID
            let destination: IPv4Address
            switch due {
            case .general(let v):
                vlan = v
                destination = .allSystems
                query = IGMPQuery(version: ours.version, maxResponseDeciseconds: Int(timers.queryResponseInterval.nanoseconds / 100_000_000),
                                  robustness: timers.robustness, queryIntervalSeconds: Int(timers.queryInterval.nanoseconds / 1_000_000_000))
                counters.sent["general_query", default: 0] &+= 1
            case .groupSpecific(let v, let group):
                vlan = v
                destination = group
                query = IGMPQuery(version: ours.version, group: group,
                                  maxResponseDeciseconds: Int(timers.lastMemberQueryInterval.nanoseconds / 100_000_000),
                                  robustness: timers.robustness, queryIntervalSeconds: Int(timers.queryInterval.nanoseconds / 1_000_000_000))
                counters.sent["group_query", default: 0] &+= 1
            }
            let bytes = IGMPFrameBuilder.frame(.query(query), from: configuration.switchMAC,
                                               source: ours.address, destination: destination)
            let ports = activePorts(in: vlan)
            if !ports.isEmpty { outbox.append(GeneratedFrame(vlan: vlan, ports: ports, bytes: bytes)) }
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
            guard !linkUp.contains(port) else { return }
            linkUp.insert(port)
            for vlan in configuration.ports[port.index].vlans.sorted() where querier.role(in: vlan, at: now) == .us {
                querier.queryNow(in: vlan, at: now)
            }
            sendDueQueries(at: now)
        } else {
            linkUp.remove(port)
            macs.removeAll(on: port)
            memberships.removeAll(on: port)
            routers.removeAll(on: port)
        }
    }
}
