import Wire

/// Time: the timers that run out (memberships, router ports, MAC aging) and the frames the
/// switch originates when they do (queries, router solicitations), waiting in the outbox.
extension SnoopingSwitch {
    // MARK: - Time

    /// Runs every timer due by `now`: membership and router-port expiry, MAC aging, queries.
    public func advance(to now: Instant) {
        _ = igmp.memberships.expire(at: now)
        _ = mld.memberships.expire(at: now)
        igmp.routers.expire(at: now)
        mld.routers.expire(at: now)
        if now >= nextMacSweep {
            macs.expire(at: now)
            nextMacSweep = now + Self.macSweepPeriod(configuration.fdbAging)
        }
        sendDueQueries(at: now)
    }

    /// When `advance` next has work to do.
    public func nextDeadline(at now: Instant) -> Instant {
        var next = nextMacSweep
        for t in [igmp.memberships.nextDeadline, mld.memberships.nextDeadline, igmp.routers.nextDeadline,
                  mld.routers.nextDeadline, igmp.querier.nextDeadline(at: now), mld.querier.nextDeadline(at: now)] {
            if let t { next = min(next, t) }
        }
        return next
    }

    func sendDueQueries(at now: Instant) {
        sendDueQueries(at: now, igmp)
        sendDueQueries(at: now, mld)
    }

    func sendDueQueries<P>(at now: Instant, _ state: SnoopedProtocol<P>) {
        let timers = configuration.timers
        for due in state.querier.takeDueQueries(at: now) {
            switch due {
            case .general(let vlan, let version):
                send(HeardQuery(version: version, group: nil, sources: [], maxResponse: timers.queryResponseInterval),
                     in: vlan, state)
                counters[keyPath: state.sent].add(.generalQuery)
            case .groupSpecific(let vlan, let querierVersion, let group):
                // 6.6.3.1: S set when some port's group timer still runs past the last member query time.
                let suppress = state.memberships.groupTimerExceeds(now + timers.lastMemberQueryTime, of: group, in: vlan)
                // Asked in the version of the group's oldest listener (an MLDv1 host present:
                // an MLDv1 query, RFC 9777 8.3.2), never newer than the querier's.
                let oldest = state.memberships.oldestCompatibilityMode(of: group, in: vlan, at: now) ?? querierVersion
                let version = oldest.hasLeave ? min(querierVersion, oldest) : querierVersion
                send(HeardQuery(version: version, group: group, sources: [], maxResponse: timers.lastMemberQueryInterval,
                                suppressRouterProcessing: suppress), in: vlan, state)
                counters[keyPath: state.sent].add(.groupQuery)
            case .groupAndSourceSpecific(let vlan, let group, let sources):
                // 6.6.3.2: one query for the sources whose timers run past LMQT (S set), one for the rest.
                let deadline = now + timers.lastMemberQueryTime
                let running = sources.filter { state.memberships.sourceTimerExceeds(deadline, source: $0, of: group, in: vlan) }
                let lowered = sources.filter { !running.contains($0) }
                for (list, suppress) in [(running, true), (lowered, false)] where !list.isEmpty {
                    for start in stride(from: 0, to: list.count, by: P.sourcesPerQuery) {
                        let part = Array(list[start..<min(start + P.sourcesPerQuery, list.count)])
                        send(HeardQuery(version: .sourceFiltering, group: group, sources: part,
                                        maxResponse: timers.lastMemberQueryInterval, suppressRouterProcessing: suppress),
                             in: vlan, state)
                        counters[keyPath: state.sent].add(.groupAndSourceQuery)
                    }
                }
            }
        }
    }

    /// Sends one of our queries to every port of `vlan`, with our robustness and query interval.
    func send<P>(_ query: HeardQuery<P>, in vlan: VLANID, _ state: SnoopedProtocol<P>) {
        var query = query
        query.robustness = configuration.timers.robustness
        query.queryIntervalSeconds = Int(configuration.timers.queryInterval.nanoseconds / 1_000_000_000)
        let ports = activePorts(in: vlan)
        if !ports.isEmpty {
            originate(P.queryFrame(query, from: configuration.switchMAC, source: ourAddress(in: vlan, state)), to: ports, in: vlan)
        }
    }

    /// The source of the frames the switch sends in `vlan` for one protocol: its querier's address there.
    func ourAddress<P>(in vlan: VLANID, _ state: SnoopedProtocol<P>) -> P.Address {
        state.querier.configuration(in: vlan)?.address ?? P.querier(in: vlan, of: configuration).address
    }

    /// RFC 4286 section 5: a snooping switch solicits advertisements when it starts, so that it
    /// learns the routers without waiting for their next one (IPv4 and IPv6 routers both).
    func solicitRouters(in vlans: [VLANID]) {
        for vlan in vlans {
            let ports = activePorts(in: vlan)
            guard !ports.isEmpty else { continue }
            solicitRouters(in: vlan, to: ports, igmp)
            if mld.snoops[Int(vlan.rawValue)] { solicitRouters(in: vlan, to: ports, mld) }
        }
    }

    private func solicitRouters<P>(in vlan: VLANID, to ports: PortSet, _ state: SnoopedProtocol<P>) {
        originate(P.routerSolicitation(from: configuration.switchMAC, source: ourAddress(in: vlan, state)), to: ports, in: vlan)
        counters[keyPath: state.sent].add(.mrdSolicitation)
    }

    /// The 802.1p priority of the frames the switch originates, where they leave tagged:
    /// 6, internetwork control (IEEE 802.1Q Annex I).
    static let originatedPriority: UInt8 = 6

    func originate(_ bytes: [UInt8], to ports: PortSet, in vlan: VLANID) {
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
}
