import Wire

/// Time: the timers that run out (memberships, router ports, MAC aging) and the frames the
/// switch originates when they do (queries, router solicitations), waiting in the outbox.
extension SnoopingSwitch {
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

    func sendDueQueries(at now: Instant) {
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

    func deciseconds(_ duration: Duration) -> Int { Int(duration.nanoseconds / 100_000_000) }

    func send(_ query: IGMPQuery, to destination: IPv4Address, in vlan: VLANID) {
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
    func solicitRouters(in vlans: [VLANID]) {
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
