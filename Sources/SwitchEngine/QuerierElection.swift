import Wire

/// The querier of each VLAN in one protocol (IGMP: RFC 3376 section 6.6, RFC 2236 section 3;
/// MLD: RFC 9777 section 7.6, RFC 2710 section 4): who queries, when our next query is due,
/// which version the LAN speaks, and the timer values in force. The lowest address wins.
public struct QuerierElection<P: MembershipProtocol> {
    public enum Role: String, Sendable {
        /// We send the queries.
        case us
        /// Another querier with a lower address was heard: we stay quiet.
        case other
        /// Nobody queries (our querier is off and nobody else was heard).
        case none
    }

    public enum DueQuery: Equatable, Sendable {
        case general(VLANID, P.Version)
        case groupSpecific(VLANID, P.Version, P.Address)
        case groupAndSourceSpecific(VLANID, P.Address, [P.Address])
    }

    struct VLANState {
        var configuration: QuerierSettings<P>
        var otherQuerier: (address: P.Address, until: Instant)?
        /// The values of the other querier's last query (RFC 3376 4.1.6, 4.1.7, 8.3).
        var adopted: SnoopingTimers?
        /// An older version querier was heard (RFC 3376 7.3.1): we query in its version.
        var olderQuerier: (version: P.Version, until: Instant)?
        var startupQueriesLeft: Int
        var nextGeneralQuery: Instant
        var pendingGroupQueries: [P.Address: (remaining: Int, next: Instant)] = [:]
        var pendingSourceQueries: [P.Address: (sources: [P.Address: Int], next: Instant)] = [:]
    }

    public private(set) var timers: SnoopingTimers
    private var vlans: [VLANID: VLANState] = [:]

    public init(configuration: SwitchConfiguration, at now: Instant) {
        self.timers = configuration.timers
        for vlan in configuration.allVLANs {
            vlans[vlan] = VLANState(configuration: P.querier(in: vlan, of: configuration),
                                    startupQueriesLeft: timers.startupQueryCount, nextGeneralQuery: now)
        }
    }

    /// An election compares addresses; ours at 0.0.0.0 compares above every real one, so a
    /// snooping switch without an address of its own defers to any router, as does one whose
    /// querier is off (MLD's address is the switch's link-local one even then).
    private static func beats(_ address: P.Address, _ ours: QuerierSettings<P>) -> Bool {
        guard address != P.unspecified else { return false }
        return !ours.enabled || ours.address == P.unspecified || address < ours.address
    }

    public func role(in vlan: VLANID, at now: Instant) -> Role {
        guard let state = vlans[vlan] else { return .none }
        if let other = state.otherQuerier, other.until > now { return .other }
        return state.configuration.enabled ? .us : .none
    }

    /// The other querier elected in `vlan`, while it is present.
    public func elected(in vlan: VLANID, at now: Instant) -> P.Address? {
        guard let other = vlans[vlan]?.otherQuerier, other.until > now else { return nil }
        return other.address
    }

    /// The version our queries use in `vlan`: ours, or an older querier's while one is present.
    public func version(in vlan: VLANID, at now: Instant) -> P.Version {
        guard let state = vlans[vlan] else { return .sourceFiltering }
        if let older = state.olderQuerier, older.until > now { return min(older.version, state.configuration.version) }
        return state.configuration.version
    }

    /// The timers in force in a VLAN: the querier's when another querier is the querier.
    public func effectiveTimers(in vlan: VLANID, at now: Instant) -> SnoopingTimers {
        if role(in: vlan, at: now) == .other, let adopted = vlans[vlan]?.adopted { return adopted }
        return timers
    }

    /// A query from `source` was heard in `vlan`.
    public mutating func heard(_ query: HeardQuery<P>, from source: P.Address, in vlan: VLANID, at now: Instant) {
        guard var state = vlans[vlan] else { return }
        defer { vlans[vlan] = state }
        if query.version < .sourceFiltering {
            // RFC 3376 7.3.1, RFC 9777 8.3.1: the querier uses the lowest version present, for
            // the older version querier interval.
            let current = state.olderQuerier.flatMap { $0.until > now ? $0.version : nil } ?? .sourceFiltering
            state.olderQuerier = (min(current, query.version), now + timers.groupMembershipInterval)
        }
        guard Self.beats(source, state.configuration) else { return }
        // The lowest address present is the querier: a higher one does not displace it.
        if let other = state.otherQuerier, other.until > now, other.address < source { return }
        // 4.1.6, 4.1.7: QRV and QQIC from the querier's most recent query, of any kind; its max
        // response time is the query response interval in general queries only (8.3, 8.8).
        var adopted = state.adopted ?? timers
        if query.version == .sourceFiltering {
            if query.robustness > 0 { adopted.robustness = query.robustness }
            if query.queryIntervalSeconds > 0 { adopted.queryInterval = .seconds(query.queryIntervalSeconds) }
        }
        // IGMPv1 queries carry no max response time (RFC 2236 section 4).
        if query.isGeneral, query.version.hasLeave, query.maxResponse > .zero {
            adopted.queryResponseInterval = query.maxResponse
        }
        state.adopted = adopted
        // 8.5 (RFC 9777 9.5) with the querier's robustness and query interval.
        state.otherQuerier = (source, now + adopted.otherQuerierPresentInterval)
    }

    /// The "Send Q(G)" and "Send Q(G,A)" actions of a report, when we are the querier: the first
    /// query now, the rest last-member-query-interval apart (RFC 3376 6.6.3).
    public mutating func schedule(_ owed: QueriesOwed<P.Address>, for group: P.Address, in vlan: VLANID, at now: Instant) {
        guard !owed.isEmpty, role(in: vlan, at: now) == .us, var state = vlans[vlan] else { return }
        let version = version(in: vlan, at: now)
        guard version.hasLeave else { return }                        // IGMPv1 has no group queries
        if owed.group, state.pendingGroupQueries[group] == nil {
            state.pendingGroupQueries[group] = (timers.lastMemberQueryCount, now)
        }
        if version == .sourceFiltering, !owed.sources.isEmpty {
            var pending = state.pendingSourceQueries[group] ?? ([:], now)
            for source in owed.sources { pending.sources[source] = timers.lastMemberQueryCount }
            pending.next = min(pending.next, now)
            state.pendingSourceQueries[group] = pending
        }
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
            if let older = state.olderQuerier, older.until <= now { state.olderQuerier = nil }
            let version = state.olderQuerier.map { min($0.version, state.configuration.version) } ?? state.configuration.version
            if state.configuration.enabled, state.otherQuerier == nil {
                if state.nextGeneralQuery <= now {
                    due.append(.general(vlan, version))
                    if state.startupQueriesLeft > 0 { state.startupQueriesLeft -= 1 }
                    state.nextGeneralQuery = now + (state.startupQueriesLeft > 0 ? timers.startupQueryInterval : timers.queryInterval)
                }
                for (group, pending) in state.pendingGroupQueries.sorted(by: { $0.key < $1.key }) where pending.next <= now {
                    due.append(.groupSpecific(vlan, version, group))
                    state.pendingGroupQueries[group] = pending.remaining > 1
                        ? (pending.remaining - 1, now + timers.lastMemberQueryInterval) : nil
                }
                for (group, pending) in state.pendingSourceQueries.sorted(by: { $0.key < $1.key }) where pending.next <= now {
                    due.append(.groupAndSourceSpecific(vlan, group, pending.sources.keys.sorted()))
                    let left = pending.sources.compactMapValues { $0 > 1 ? $0 - 1 : nil }
                    state.pendingSourceQueries[group] = left.isEmpty ? nil : (left, now + timers.lastMemberQueryInterval)
                }
            } else {
                state.pendingGroupQueries.removeAll()
                state.pendingSourceQueries.removeAll()
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
            if let older = state.olderQuerier { consider(older.until) }
            if state.configuration.enabled, state.otherQuerier == nil {
                consider(state.nextGeneralQuery)
                for pending in state.pendingGroupQueries.values { consider(pending.next) }
                for pending in state.pendingSourceQueries.values { consider(pending.next) }
            }
        }
        return next
    }

    /// New settings while running: each VLAN's querier settings and the timers change, the
    /// election's state (other queriers heard, queries pending) stays.
    public mutating func reconfigure(_ configuration: SwitchConfiguration, at now: Instant) {
        timers = configuration.timers
        for vlan in vlans.keys {
            let wasEnabled = vlans[vlan]!.configuration.enabled
            vlans[vlan]!.configuration = P.querier(in: vlan, of: configuration)
            if !wasEnabled, vlans[vlan]!.configuration.enabled {
                vlans[vlan]!.startupQueriesLeft = timers.startupQueryCount
                vlans[vlan]!.nextGeneralQuery = now
                // A querier that won only because ours was off yields to us now.
                if let other = vlans[vlan]!.otherQuerier, !Self.beats(other.address, vlans[vlan]!.configuration) {
                    vlans[vlan]!.otherQuerier = nil
                    vlans[vlan]!.adopted = nil
                }
            }
        }
    }

    /// A VLAN some new port carries: it gets a querier state, starting as at switch start.
    public mutating func addVLAN(_ vlan: VLANID, configuration: QuerierSettings<P>, at now: Instant) {
        guard vlans[vlan] == nil else { return }
        vlans[vlan] = VLANState(configuration: configuration, startupQueriesLeft: timers.startupQueryCount, nextGeneralQuery: now)
    }

    /// Brings the next general query forward to `now` (a link came up behind which hosts may
    /// have joined while we could not hear them).
    public mutating func queryNow(in vlan: VLANID, at now: Instant) {
        guard var state = vlans[vlan] else { return }
        state.nextGeneralQuery = min(state.nextGeneralQuery, now)
        vlans[vlan] = state
    }

    public func configuration(in vlan: VLANID) -> QuerierSettings<P>? { vlans[vlan]?.configuration }

    public struct VLANStatus: Sendable {
        public var vlan: VLANID
        public var role: Role
        public var address: P.Address?
        public var version: P.Version
        public var nextQuery: Instant?
        public var otherQuerierExpires: Instant?
    }

    public func status(at now: Instant) -> [VLANStatus] {
        vlans.keys.sorted().map { vlan in
            let state = vlans[vlan]!
            let role = role(in: vlan, at: now)
            let version = version(in: vlan, at: now)
            switch role {
            case .us:
                return VLANStatus(vlan: vlan, role: role, address: state.configuration.address, version: version,
                                  nextQuery: state.nextGeneralQuery, otherQuerierExpires: nil)
            case .other:
                return VLANStatus(vlan: vlan, role: role, address: state.otherQuerier?.address, version: version,
                                  nextQuery: nil, otherQuerierExpires: state.otherQuerier?.until)
            case .none:
                return VLANStatus(vlan: vlan, role: role, address: nil, version: version, nextQuery: nil, otherQuerierExpires: nil)
            }
        }
    }
}
