import Wire

/// What IGMP and MLD share once a message is read: queries elect the querier and make router
/// ports, reports and leaves go through RFC 3376's (RFC 9777's) tables, the elected querier's
/// specific queries lower the timers. Each protocol's state is passed in (`igmp`, `mld`).
extension SnoopingSwitch {
    /// A query: its port is a router port for the other querier present interval (unless the
    /// source is unspecified), it takes part in the election, and the elected querier's
    /// group-specific queries lower our timers (`followGroupQuery`).
    func heardQuery<P>(_ query: HeardQuery<P>, from source: P.Address, in vlan: VLANID, on port: PortID,
                       at now: Instant, _ state: SnoopedProtocol<P>) {
        // The election first: the querier's own timers (its QRV and QQIC) from its first query on.
        state.querier.heard(query, from: source, in: vlan, at: now)
        if source != P.unspecified {
            let timers = state.querier.effectiveTimers(in: vlan, at: now)
            state.routers.heard(P.queryReason, on: port, in: vlan, until: now + timers.otherQuerierPresentInterval)
        }
        if !query.isGeneral, state.querier.elected(in: vlan, at: now) == source {
            followGroupQuery(query, in: vlan, at: now, state)
        }
    }

    /// An IGMPv1/v2 report or an MLDv1 report (RFC 3376 7.3.2, RFC 9777 8.3.2): IS_EX({}), and
    /// the group in that version's compatibility mode.
    func heardReport<P>(_ group: P.Address, version: P.Version, in vlan: VLANID, on port: PortID, at now: Instant,
                        _ state: SnoopedProtocol<P>) {
        if P.isSourceSpecific(group, in: configuration) {
            counters[keyPath: state.errors].add(.ssmIgnored)     // RFC 4604 2.2.1: no any-source membership in the SSM range
        } else if P.isSnooped(group) {
            let timers = state.querier.effectiveTimers(in: vlan, at: now)
            apply(.isExclude, [], version: version, group: group, in: vlan, on: port, at: now, state)
            state.memberships.markOlderHost(version, on: port, of: group, in: vlan, until: now + timers.groupMembershipInterval)
        }
    }

    /// An IGMPv2 leave or MLDv1 Done: TO_IN({}), unless the group is in a compatibility mode
    /// without leaves (IGMPv1, RFC 3376 7.3.2).
    func heardLeave<P>(_ group: P.Address, in vlan: VLANID, on port: PortID, at now: Instant, _ state: SnoopedProtocol<P>) {
        guard let member = state.memberships.member(port, of: group, in: vlan) else { return }
        if member.compatibilityMode(at: now).hasLeave {
            apply(.toInclude, [], version: P.leaveVersion, group: group, in: vlan, on: port, at: now, state)
        } else {
            counters[keyPath: state.errors].add(.ignoredInV1Mode)
        }
    }

    /// One group record of an IGMPv3 or MLDv2 report, in the compatibility mode of its group on
    /// the port.
    func heardRecord<P>(_ type: IGMPGroupRecord.RecordType, group: P.Address, sources: [P.Address], in vlan: VLANID,
                        on port: PortID, at now: Instant, _ state: SnoopedProtocol<P>) {
        guard group.isMulticast else { return counters[keyPath: state.errors].add(.badGroup) }
        guard P.isSnooped(group) else { return }
        let kind = MembershipRecord(type)
        var sources = sources
        if P.isSourceSpecific(group, in: configuration), kind == .isExclude || kind == .toExclude {
            return counters[keyPath: state.errors].add(.ssmIgnored)      // RFC 4604 2.2.1
        }
        let mode = state.memberships.member(port, of: group, in: vlan)?.compatibilityMode(at: now) ?? .sourceFiltering
        if mode < .sourceFiltering {
            // RFC 3376 7.3.2, RFC 9777 8.3.2: in compatibility mode BLOCK is ignored, TO_EX's
            // sources are; with IGMPv1 hosts, TO_IN is ignored as leaves are.
            if kind == .block || (!mode.hasLeave && kind == .toInclude) {
                return counters[keyPath: state.errors].add(mode.olderRank == 0 ? .ignoredInV1Mode : .ignoredInV2Mode)
            }
            if kind == .toExclude || kind == .isExclude { sources = [] }
        }
        apply(kind, sources, version: .sourceFiltering, group: group, in: vlan, on: port, at: now, state)
    }

    /// RFC 3376 6.6.1 (RFC 9777 7.6.1) for a router that is not the querier: the elected
    /// querier's Q(G) lowers the group timer, its Q(G,A) the timers of the sources named, to its
    /// last member query time: its last member query count (its QRV; RFC 2236 3: our count for
    /// IGMPv2 and MLDv1) times the query's max response time. With the S flag set, timers stay.
    func followGroupQuery<P>(_ query: HeardQuery<P>, in vlan: VLANID, at now: Instant, _ state: SnoopedProtocol<P>) {
        guard let group = query.group, !query.suppressRouterProcessing, query.version.hasLeave else { return }
        let count = query.version == .sourceFiltering && query.robustness > 0
            ? query.robustness : configuration.timers.lastMemberQueryCount
        state.memberships.lowerTimers(of: group, in: vlan, sources: query.sources, to: now + query.maxResponse * count)
    }

    /// One record through RFC 3376 tables 6.4.1/6.4.2 (RFC 9777 7.4.1/7.4.2) for `port`; the
    /// queries it owes are ours to send if we are the querier. A fast-leave port is pruned at
    /// once instead of being asked. When another querier is elected, its queries lower the
    /// timers (`followGroupQuery`), not ours: a router with a longer last member query time
    /// keeps its members as long as it asks.
    func apply<P>(_ record: MembershipRecord, _ sources: [P.Address], version: P.Version, group: P.Address,
                  in vlan: VLANID, on port: PortID, at now: Instant, _ state: SnoopedProtocol<P>) {
        let timers = state.querier.effectiveTimers(in: vlan, at: now)
        let fastLeave = fastLeavePorts.contains(port)
        // One host behind a fast-leave port: its current state is the port's state, so IS_IN and
        // IS_EX replace the state as TO_IN and TO_EX do (IS_IN({}) leaves at once).
        let record = !fastLeave ? record : record == .isInclude ? .toInclude : record == .isExclude ? .toExclude : record
        let owed = state.memberships.apply(
            record, sources: sources, version: version, on: port, to: group, in: vlan, at: now,
            timers: MembershipTimers(groupMembershipInterval: timers.groupMembershipInterval,
                                     lastMemberQueryTime: state.querier.role(in: vlan, at: now) == .other
                                        ? nil : configuration.timers.lastMemberQueryTime),
            fastLeave: fastLeave)
        if !owed.isEmpty {
            state.querier.schedule(owed, for: group, in: vlan, at: now)
            sendDueQueries(at: now)
        }
    }

    /// RFC 4541 2.1.2 for data: a registered group goes to its members (those whose source
    /// filters admit `source`: RFC 3376 6.3) and the router ports; an unregistered one to the
    /// router ports only, or everywhere with `floodUnregistered`.
    @inline(__always)
    func dataPorts<P>(to group: P.Address, from source: P.Address, in vlan: VLANID, flood: PortSet, at now: Instant,
                      _ state: SnoopedProtocol<P>, floodUnregistered: Bool) -> PortSet {
        let routerPorts = state.routers.ports(in: vlan)
        if let members = state.memberships.ports(of: group, in: vlan, from: source, at: now) {
            return flood.intersection(members.union(routerPorts))
        }
        return floodUnregistered ? flood : flood.intersection(routerPorts)
    }

    /// A PIM hello marks a router port for its holdtime (RFC 7761 4.3.3; 105 s when absent;
    /// 0xFFFF never runs out, 0 takes back what PIM taught, 4.9.2). False: refused.
    func heardPIM<P>(_ message: PIMMessage?, in vlan: VLANID, on port: PortID, at now: Instant,
                     _ state: SnoopedProtocol<P>, counted count: (MessageKind) -> Void) -> Bool {
        if queryGuardPorts.contains(port) {
            counters[keyPath: state.errors].add(.guardedQuery)
            counters.drop(.queryGuard, on: port)
            return false
        }
        switch message {
        case .hello(let holdtime)?:
            count(.pimHello)
            switch holdtime ?? 105 {
            case 0: state.routers.forget(.pimHello, on: port, in: vlan)       // the router is leaving
            case 0xffff: state.routers.heard(.pimHello, on: port, in: vlan, until: .distantFuture)
            case let seconds: state.routers.heard(.pimHello, on: port, in: vlan, until: now + .seconds(seconds))
            }
        case .other?:
            count(.pimOther)
        case nil:
            counters[keyPath: state.errors].add(.badPIM)
        }
        return true
    }

    /// PIM kinds counted by the caller in its protocol's counters.
    enum MessageKind { case pimHello, pimOther }

    /// An MRD advertisement makes a router port until three advertisement intervals pass
    /// without one (RFC 4286 section 2); a termination ends only what MRD taught.
    func heardRouterAdvertisement<P>(intervalSeconds: Int?, in vlan: VLANID, on port: PortID, at now: Instant,
                                     _ state: SnoopedProtocol<P>) {
        if let interval = intervalSeconds {
            state.routers.heard(.mrdAdvertisement, on: port, in: vlan, until: now + .seconds(3 * max(interval, 1)))
        } else {
            state.routers.forget(.mrdAdvertisement, on: port, in: vlan)
        }
    }

    func badGroup<P>(on port: PortID, _ state: SnoopedProtocol<P>, drop reason: DropReason) -> ForwardingDecision {
        counters[keyPath: state.errors].add(.badGroup)
        return drop(reason, on: port)
    }
}
