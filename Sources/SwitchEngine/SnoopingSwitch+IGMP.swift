import Wire

/// Snooping itself: IGMP messages heard in a snooping VLAN (RFC 4541, RFC 2236, RFC 3376) and
/// PIM hellos (RFC 7761), turned into memberships, router ports and querier state.
extension SnoopingSwitch {
    // MARK: - IGMP

    /// An IGMP message in a snooping VLAN: checked (the port's rate, the checksum, a guarded
    /// port's router announcements), then heard by kind.
    func receiveIGMP(_ ip: IPv4HeaderView, frame: IngressFrame, decision: ForwardingDecision,
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
    func heardQuery(_ query: IGMPQuery, from source: IPv4Address, in vlan: VLANID, on port: PortID,
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
    func heardReport(_ group: IPv4Address, version: IGMPVersion, in vlan: VLANID, on port: PortID,
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
    func heardLeave(_ group: IPv4Address, in vlan: VLANID, on port: PortID, at now: Instant) {
        guard let member = memberships.member(port, of: group, in: vlan) else { return }
        if member.compatibilityMode(at: now).hasLeave {
            apply(.toInclude, [], version: .v2, group: group, in: vlan, on: port, at: now)
        } else {
            counters.errors.add(.ignoredInV1Mode)
        }
    }

    /// One group record of an IGMPv3 report, in the compatibility mode of its group on the port.
    func heardRecord(_ record: IGMPGroupRecord, in vlan: VLANID, on port: PortID, at now: Instant) {
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
    func heardRouter(_ message: IGMPMessage, in vlan: VLANID, on port: PortID, at now: Instant) {
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
    func electWithoutSnooping(_ ip: IPv4HeaderView, frame: IngressFrame, decision: ForwardingDecision,
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
    func followGroupQuery(_ query: IGMPQuery, in vlan: VLANID, at now: Instant) {
        guard !query.suppressRouterProcessing, query.version != .v1 else { return }
        let count = query.version == .v3 && query.robustness > 0 ? query.robustness : configuration.timers.lastMemberQueryCount
        let lastMemberQueryTime = Duration.deciseconds(query.maxResponseDeciseconds) * count
        memberships.lowerTimers(of: query.group, in: vlan, sources: query.sources, to: now + lastMemberQueryTime)
    }

    func badGroup(on port: PortID) -> ForwardingDecision {
        counters.errors.add(.badGroup)
        return drop(.badIGMP, on: port)
    }

    /// One record through RFC 3376 tables 6.4.1/6.4.2 for `port`; the queries it owes are ours
    /// to send if we are the querier. A fast-leave port is pruned at once instead of being asked.
    /// When another querier is elected, its queries lower the timers (`followGroupQuery`), not
    /// ours: a router with a longer last member query time keeps its members as long as it asks.
    func apply(_ record: MembershipRecord, _ sources: [IPv4Address], version: IGMPVersion,
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
    func receivePIM(_ ip: IPv4HeaderView, vlan: VLANID, on port: PortID, at now: Instant) -> Bool {
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
}
