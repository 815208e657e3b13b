import Wire

/// The IGMP querier of each VLAN (RFC 3376 section 6.6, RFC 2236 section 3): who queries,
/// when our next query is due, and the timer values in force on the LAN.
public struct QuerierElection {
    public enum Role: String, Sendable {
        /// We send the queries.
        case us
        /// Another querier with a lower address was heard: we stay quiet.
        case other
        /// Nobody queries (our querier is off and nobody else was heard).
        case none
    }

    public enum DueQuery: Equatable, Sendable {
        case general(VLANID)
        case groupSpecific(VLANID, IPv4Address)
    }

    struct VLANState {
        var otherQuerier: (address: IPv4Address, until: Instant)?
        /// The values of the other querier's last query (RFC 3376 4.1.6, 4.1.7, 8.3).
        var adopted: SnoopingTimers?
        var startupQueriesLeft: Int
        var nextGeneralQuery: Instant
        var pendingGroupQueries: [IPv4Address: (remaining: Int, next: Instant)] = [:]
    }

    public let configuration: QuerierConfiguration
    public let timers: SnoopingTimers
    private var vlans: [VLANID: VLANState] = [:]

    public init(configuration: QuerierConfiguration, timers: SnoopingTimers, vlans: Set<VLANID>, at now: Instant) {
        self.configuration = configuration
        self.timers = timers
        for vlan in vlans {
            self.vlans[vlan] = VLANState(startupQueriesLeft: timers.startupQueryCount, nextGeneralQuery: now)
        }
    }

    /// An election compares addresses; ours at 0.0.0.0 compares above every real one, so a
    /// snooping switch without an address of its own defers to any router.
    private func beats(_ address: IPv4Address, ours: IPv4Address) -> Bool {
        guard address != .any else { return false }
        return ours == .any || address < ours
    }

    public func role(in vlan: VLANID, at now: Instant) -> Role {
        if let other = vlans[vlan]?.otherQuerier, other.until > now { return .other }
        return configuration.enabled && vlans[vlan] != nil ? .us : .none
    }

    /// The timers in force in a VLAN: the querier's when another querier is the querier.
    public func effectiveTimers(in vlan: VLANID, at now: Instant) -> SnoopingTimers {
        if role(in: vlan, at: now) == .other, let adopted = vlans[vlan]?.adopted { return adopted }
        return timers
    }

    /// A query from `source` was heard in `vlan`.
    public mutating func heard(_ query: IGMPQuery, from source: IPv4Address, in vlan: VLANID, at now: Instant) {
        guard var state = vlans[vlan], beats(source, ours: configuration.address) else { return }
        state.otherQuerier = (source, now + timers.otherQuerierPresentInterval)
        if query.isGeneral {
            var adopted = state.adopted ?? timers
            if query.version == .v3 {
                if query.robustness > 0 { adopted.robustness = query.robustness }
                if query.queryIntervalSeconds > 0 { adopted.queryInterval = .seconds(query.queryIntervalSeconds) }
            }
            if query.version != .v1, query.maxResponseDeciseconds > 0 {
                adopted.queryResponseInterval = .deciseconds(query.maxResponseDeciseconds)
            }
            state.adopted = adopted
        }
        vlans[vlan] = state
    }

    /// A leave asks the querier to check whether members remain (RFC 2236 section 3, RFC 3376 6.6.3).
    public mutating func scheduleGroupQueries(for group: IPv4Address, in vlan: VLANID, at now: Instant) {
        guard role(in: vlan, at: now) == .us, configuration.version != .v1,
              var state = vlans[vlan], state.pendingGroupQueries[group] == nil else { return }
        state.pendingGroupQueries[group] = (timers.lastMemberQueryCount, now)
        vlans[vlan] = state
    }

    /// The queries due by `now`, with the schedule moved past them.
    public mutating func takeDueQueries(at now: Instant) -> [DueQuery] {
        var due: [DueQuery] = []
        for vlan in vlans.keys.sorted() {
            var state = vlans[vlan]!
            if let other = state.otherQuerier, other.until <= now {
                // the other querier went quiet: we take over at once (RFC 3376 6.6.1)
                state.otherQuerier = nil
                state.adopted = nil
                state.nextGeneralQuery = now
            }
            if configuration.enabled, state.otherQuerier == nil {
                if state.nextGeneralQuery <= now {
                    due.append(.general(vlan))
                    if state.startupQueriesLeft > 0 { state.startupQueriesLeft -= 1 }
                    state.nextGeneralQuery = now + (state.startupQueriesLeft > 0 ? timers.startupQueryInterval : timers.queryInterval)
                }
                for (group, pending) in state.pendingGroupQueries.sorted(by: { $0.key < $1.key }) where pending.next <= now {
                    due.append(.groupSpecific(vlan, group))
                    state.pendingGroupQueries[group] = pending.remaining > 1
                        ? (pending.remaining - 1, now + timers.lastMemberQueryInterval) : nil
                }
            } else {
                state.pendingGroupQueries.removeAll()
            }
            vlans[vlan] = state
        }
        return due
    }

    public func nextDeadline(at now: Instant) -> Instant? {
        var next: Instant?
        func consider(_ t: Instant) { next = min(next ?? t, t) }
        for state in vlans.values {
            if let other = state.otherQuerier { consider(other.until) }
            if configuration.enabled, state.otherQuerier == nil {
                consider(state.nextGeneralQuery)
                for pending in state.pendingGroupQueries.values { consider(pending.next) }
            }
        }
        return next
    }

    public struct VLANStatus: Sendable {
        public var vlan: VLANID
        public var role: Role
        public var address: IPv4Address?
        public var nextQuery: Instant?
        public var otherQuerierExpires: Instant?
    }

    public func status(at now: Instant) -> [VLANStatus] {
        vlans.keys.sorted().map { vlan in
            let state = vlans[vlan]!
            let role = role(in: vlan, at: now)
            switch role {
            case .us:
                return VLANStatus(vlan: vlan, role: role, address: configuration.address,
                                  nextQuery: state.nextGeneralQuery, otherQuerierExpires: nil)
            case .other:
                return VLANStatus(vlan: vlan, role: role, address: state.otherQuerier?.address,
                                  nextQuery: nil, otherQuerierExpires: state.otherQuerier?.until)
            case .none:
                return VLANStatus(vlan: vlan, role: role, address: nil, nextQuery: nil, otherQuerierExpires: nil)
            }
        }
    }
}

extension QuerierElection {
    /// Brings the next general query forward to `now` (a link came up behind which hosts may
    /// have joined while we could not hear them).
    public mutating func queryNow(in vlan: VLANID, at now: Instant) {
        guard var state = vlans[vlan] else { return }
        state.nextGeneralQuery = min(state.nextGeneralQuery, now)
        vlans[vlan] = state
    }
}
