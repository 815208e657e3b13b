import Wire

/// A version of a membership protocol (IGMP, MLD): ordered, the newest filtering sources.
/// A group address the membership table can key on: IPv4 now, IPv6 for MLD.
public protocol GroupAddress: Hashable, Comparable, Sendable, BitwiseCopyable {
    /// The address folded to 64 bits for hashing.
    var hashBits: UInt64 { get }
}

extension IPv4Address: GroupAddress {
    @inline(__always)
    public var hashBits: UInt64 { UInt64(rawValue) }
}

public protocol MembershipVersion: Comparable, Hashable, Sendable {
    /// The version with source filtering (IGMPv3, MLDv2): hosts of older versions put a group
    /// in compatibility mode.
    static var sourceFiltering: Self { get }
    /// Whether hosts of this version send leaves (IGMPv1 hosts do not).
    var hasLeave: Bool { get }
}

extension IGMPVersion: MembershipVersion {
    public static var sourceFiltering: IGMPVersion { .v3 }
    public var hasLeave: Bool { self != .v1 }
}

/// The six kinds of group record of RFC 3376 section 4.2.12 (and RFC 3810 5.2.12).
public enum MembershipRecord: String, Sendable, CaseIterable {
    case isInclude = "IS_IN", isExclude = "IS_EX", toInclude = "TO_IN", toExclude = "TO_EX"
    case allow = "ALLOW", block = "BLOCK"

    public init(_ type: IGMPGroupRecord.RecordType) {
        switch type {
        case .modeIsInclude: self = .isInclude
        case .modeIsExclude: self = .isExclude
        case .changeToInclude: self = .toInclude
        case .changeToExclude: self = .toExclude
        case .allowNewSources: self = .allow
        case .blockOldSources: self = .block
        }
    }
}

/// The timer values a report is processed with (RFC 3376 section 8).
public struct MembershipTimers: Sendable {
    public var groupMembershipInterval: Duration
    public var lastMemberQueryTime: Duration

    public init(groupMembershipInterval: Duration, lastMemberQueryTime: Duration) {
        self.groupMembershipInterval = groupMembershipInterval
        self.lastMemberQueryTime = lastMemberQueryTime
    }
}

/// The "Send Q(G)" and "Send Q(G,A)" actions of RFC 3376 tables 6.4.1 and 6.4.2.
public struct QueriesOwed<Address: Hashable & Sendable>: Equatable, Sendable {
    public var group = false
    public var sources: Set<Address> = []
    public var isEmpty: Bool { !group && sources.isEmpty }
}

public enum FilterMode: String, Sendable, Codable {
    case include, exclude
}

/// Which ports want which groups from which sources, per VLAN: the router state of RFC 3376
/// section 6.2.1 kept per (VLAN, group, port), each port being a link of its own. Generic over
/// the address and protocol version so that MLD (IPv6) snooping reuses it.
public final class MembershipTable<Address: GroupAddress, Version: MembershipVersion> {
    public struct Key: Hashable, Sendable, FastHashKey {
        public var vlan: VLANID
        public var group: Address
        public init(vlan: VLANID, group: Address) {
            self.vlan = vlan
            self.group = group
        }

        @inline(__always)
        public var fastHash: UInt64 { (group.hashBits ^ UInt64(vlan.rawValue) << 52).fastHash }
    }

    /// What forwarding needs of a group, kept apart from the full state in a flat table.
    struct Forwarding: BitwiseCopyable {
        var ports: PortSet
        var filtering: PortSet
    }

    /// One port's state for one group.
    public struct Member: Equatable, Sendable {
        public var mode: FilterMode = .include
        /// INCLUDE: the include list. EXCLUDE: the requested list X. Each source with its timer.
        public var sources: [Address: Instant] = [:]
        /// EXCLUDE only: the exclude list Y, sources not forwarded.
        public var excluded: Set<Address> = []
        /// EXCLUDE only: when the port falls back to INCLUDE of its requested sources.
        public var groupTimer = Instant.zero
        /// The version of the last report heard.
        public var version: Version
        /// Older version host present timers (RFC 3376 7.3.2).
        public var olderHostsUntil: [Version: Instant] = [:]
        /// Configured by the operator: all sources, never expires, reports do not change it.
        public var isStatic = false
        /// The earliest deadline with an entry in the timer queue.
        var scheduled: Instant?

        /// The oldest version whose host present timer runs, else the newest.
        public func compatibilityMode(at now: Instant) -> Version {
            olderHostsUntil.filter { $0.value > now }.keys.min() ?? .sourceFiltering
        }

        /// RFC 3376 6.3: whether traffic from `source` is forwarded to this port.
        @inline(__always)
        public func admits(_ source: Address, at now: Instant) -> Bool {
            switch mode {
            case .include: (sources[source].map { $0 > now }) ?? false
            case .exclude: !excluded.contains(source)
            }
        }

        /// Filtering by source is needed: INCLUDE mode, or EXCLUDE with sources blocked.
        var filtersSources: Bool { mode == .include || !excluded.isEmpty }

        /// When this member's state next changes by itself.
        var nextDeadline: Instant? {
            var next = sources.values.min()
            if mode == .exclude { next = min(next ?? groupTimer, groupTimer) }
            return next
        }

        /// The latest moment the port still wants the group from some source.
        public var expires: Instant {
            mode == .exclude ? max(groupTimer, sources.values.max() ?? groupTimer) : (sources.values.max() ?? .zero)
        }

        /// RFC 3376 6.5: source timers run out (INCLUDE: the source goes; EXCLUDE: it moves to
        /// the exclude list), the group timer runs out (EXCLUDE becomes INCLUDE of the sources
        /// still running). Returns false when nothing is left.
        mutating func expire(at now: Instant) -> Bool {
            for (source, timer) in sources where timer <= now {
                sources[source] = nil
                if mode == .exclude { excluded.insert(source) }
            }
            if mode == .exclude && groupTimer <= now {
                mode = .include
                excluded.removeAll()
            }
            return mode == .exclude || !sources.isEmpty
        }
    }

    struct GroupEntry {
        var ports = PortSet()
        /// Member ports that forward some sources only.
        var filtering = PortSet()
        var members: [PortID: Member] = [:]
    }

    private var groups: [Key: GroupEntry] = [:]
    /// `groups` reduced to the port sets, for the hot path.
    private let forwarding = OpenHashMap<Key, Forwarding>(minimumCapacity: 1024)
    private var timers = TimerQueue<(key: Key, port: PortID)>()
    public let limits: MembershipLimits
    private var groupsInVLAN: [VLANID: Int] = [:]
    private var groupsOnPort = [Int](repeating: 0, count: PortSet.capacity)
    /// Records refused because a limit was reached, by limit.
    public private(set) var refusals: [String: UInt64] = [:]

    public init(limits: MembershipLimits = MembershipLimits()) {
        self.limits = limits
    }

    public var groupCount: Int { groups.count }

    // MARK: - Forwarding

    /// The ports that want traffic from `source` to `group`, or nil when the group is unregistered.
    @inline(__always)
    public func ports(of group: Address, in vlan: VLANID, from source: Address, at now: Instant) -> PortSet? {
        let key = Key(vlan: vlan, group: group)
        guard let entry = forwarding[key] else { return nil }
        if entry.filtering.isEmpty { return entry.ports }
        return filteredPorts(entry, key: key, source: source, at: now)
    }

    /// The slower path of groups with source filters: each filtering port asked in turn.
    private func filteredPorts(_ entry: Forwarding, key: Key, source: Address, at now: Instant) -> PortSet {
        var out = entry.ports.subtracting(entry.filtering)
        guard let members = groups[key]?.members else { return out }
        for port in entry.filtering where members[port]?.admits(source, at: now) == true { out.insert(port) }
        return out
    }

    public func member(_ port: PortID, of group: Address, in vlan: VLANID) -> Member? {
        groups[Key(vlan: vlan, group: group)]?.members[port]
    }

    // MARK: - Reports

    /// Processes one group record heard on `port`, per RFC 3376 tables 6.4.1 and 6.4.2. The
    /// timers of the "Send Q" actions are lowered here (6.6.3): to the last member query time,
    /// or at once on a fast-leave port. Returns the queries the querier owes.
    @discardableResult
    public func apply(_ record: MembershipRecord, sources list: [Address], version: Version,
                               on port: PortID, to group: Address, in vlan: VLANID, at now: Instant,
                               timers: MembershipTimers, fastLeave: Bool = false) -> QueriesOwed<Address> {
        let key = Key(vlan: vlan, group: group)
        var entry = groups[key] ?? GroupEntry()
        var member = entry.members[port] ?? Member(version: version)
        if member.isStatic { return QueriesOwed() }
        if entry.members[port] == nil && (record == .block || (record == .toInclude || record == .isInclude) && list.isEmpty) {
            return QueriesOwed()          // nothing to leave or block
        }
        let b = Set(list)
        // Bounded state: a new membership needs room on its port and in its VLAN; a record may
        // not grow the port's source list past the limit. Refused records change nothing.
        if entry.members[port] == nil {
            if groupsOnPort[port.index] >= limits.groupsPerPort { return refuse("groups_per_port") }
            if entry.members.isEmpty, groupsInVLAN[vlan, default: 0] >= limits.groupsPerVLAN { return refuse("groups_per_vlan") }
        }
        let replaces = record == .isExclude || record == .toExclude
        let bound = replaces ? b.count : Set(member.sources.keys).union(member.excluded).union(b).count
        if bound > limits.sourcesPerGroup { return refuse("sources_per_group") }
        member.version = version
        let gmi = now + timers.groupMembershipInterval
        var owed = QueriesOwed<Address>()

        switch (member.mode, record) {
        case (.include, .isInclude), (.include, .allow):
            // INCLUDE (A+B); (B)=GMI
            for s in b { member.sources[s] = gmi }
        case (.include, .isExclude), (.include, .toExclude):
            // EXCLUDE (A*B, B-A); (B-A)=0; Delete (A-B); [TO_EX: Send Q(G,A*B)]; Group Timer=GMI
            let a = Set(member.sources.keys)
            member.sources = member.sources.filter { b.contains($0.key) }
            member.excluded = b.subtracting(a)
            member.mode = .exclude
            member.groupTimer = gmi
            if record == .toExclude { owed.sources = a.intersection(b) }
        case (.include, .block):
            // INCLUDE (A); Send Q(G,A*B)
            owed.sources = Set(member.sources.keys).intersection(b)
        case (.include, .toInclude):
            // INCLUDE (A+B); (B)=GMI; Send Q(G,A-B)
            owed.sources = Set(member.sources.keys).subtracting(b)
            for s in b { member.sources[s] = gmi }
        case (.exclude, .isInclude), (.exclude, .allow):
            // EXCLUDE (X+A, Y-A); (A)=GMI
            for s in b { member.sources[s] = gmi }
            member.excluded.subtract(b)
        case (.exclude, .isExclude), (.exclude, .toExclude):
            // EXCLUDE (A-Y, Y*A); (A-X-Y)=GMI [TO_EX: =Group Timer]; Delete (X-A); Delete (Y-A);
            // [TO_EX: Send Q(G,A-Y)]; Group Timer=GMI
            let x = Set(member.sources.keys), y = member.excluded
            let fresh = record == .isExclude ? gmi : member.groupTimer
            member.sources = member.sources.filter { b.contains($0.key) }
            for s in b.subtracting(x).subtracting(y) { member.sources[s] = fresh }
            member.excluded = y.intersection(b)
            member.groupTimer = gmi
            if record == .toExclude { owed.sources = b.subtracting(y) }
        case (.exclude, .block):
            // EXCLUDE (X+(A-Y), Y); (A-X-Y)=Group Timer; Send Q(G,A-Y)
            for s in b.subtracting(member.excluded) where member.sources[s] == nil { member.sources[s] = member.groupTimer }
            owed.sources = b.subtracting(member.excluded)
        case (.exclude, .toInclude):
            // EXCLUDE (X+A, Y-A); (A)=GMI; Send Q(G,X-A); Send Q(G)
            owed.sources = Set(member.sources.keys).subtracting(b)
            for s in b { member.sources[s] = gmi }
            member.excluded.subtract(b)
            owed.group = true
        }

        // 6.6.3.1 and 6.6.3.2: the timers of what is queried drop to the last member query time.
        let lowered = fastLeave ? now : now + timers.lastMemberQueryTime
        for s in owed.sources where (member.sources[s] ?? .zero) > lowered { member.sources[s] = lowered }
        if owed.group, member.mode == .exclude, member.groupTimer > lowered { member.groupTimer = lowered }
        let alive = fastLeave ? member.expire(at: now) : (member.mode == .exclude || !member.sources.isEmpty)
        store(alive ? member : nil, port: port, key: key, entry: &entry)
        return fastLeave ? QueriesOwed() : owed
    }

    private func refuse(_ limit: String) -> QueriesOwed<Address> {
        refusals[limit, default: 0] &+= 1
        return QueriesOwed()
    }

    /// Notes a report from a host of an older version (RFC 3376 7.3.2): the port's group stays in
    /// that version's compatibility mode until `until`.
    public func markOlderHost(_ version: Version, on port: PortID, of group: Address, in vlan: VLANID, until: Instant) {
        let key = Key(vlan: vlan, group: group)
        guard version < .sourceFiltering, var member = groups[key]?.members[port] else { return }
        member.olderHostsUntil[version] = until
        groups[key]?.members[port] = member
    }

    @discardableResult
    public func remove(_ port: PortID, from group: Address, in vlan: VLANID) -> Bool {
        let key = Key(vlan: vlan, group: group)
        guard var entry = groups[key], entry.members[port] != nil else { return false }
        store(nil, port: port, key: key, entry: &entry)
        return true
    }

    /// Forgets every learned membership of a port (its link went down); static ones stay.
    public func removeAll(on port: PortID) {
        for (key, entry) in groups where entry.members[port]?.isStatic == false { remove(port, from: key.group, in: key.vlan) }
    }

    /// Forgets every learned membership, in one VLAN or all; static ones stay.
    public func flush(vlan: VLANID? = nil) {
        for (key, entry) in groups where vlan == nil || key.vlan == vlan {
            for (port, member) in entry.members where !member.isStatic { remove(port, from: key.group, in: key.vlan) }
        }
    }

    /// A membership the operator configured: the port gets the group from every source until
    /// it is deleted.
    public func addStatic(_ port: PortID, to group: Address, in vlan: VLANID, version: Version) {
        let key = Key(vlan: vlan, group: group)
        var entry = groups[key] ?? GroupEntry()
        var member = Member(version: version)
        member.mode = .exclude
        member.groupTimer = .distantFuture
        member.isStatic = true
        store(member, port: port, key: key, entry: &entry)
    }

    @discardableResult
    public func removeStatic(_ port: PortID, from group: Address, in vlan: VLANID) -> Bool {
        guard member(port, of: group, in: vlan)?.isStatic == true else { return false }
        return remove(port, from: group, in: vlan)
    }

    /// Removes the static memberships of a port (the port itself is removed).
    public func removeStatic(on port: PortID) {
        for (key, entry) in groups where entry.members[port]?.isStatic == true { remove(port, from: key.group, in: key.vlan) }
    }

    public func removeAll() {
        groups.removeAll()
        timers.removeAll()
        groupsInVLAN.removeAll()
        for i in groupsOnPort.indices { groupsOnPort[i] = 0 }
    }

    public func groupCount(on port: PortID) -> Int { groupsOnPort[port.index] }
    public func groupCount(in vlan: VLANID) -> Int { groupsInVLAN[vlan, default: 0] }

    /// Writes a member back (nil: removes it), keeps the port sets and the timer queue right.
    private func store(_ member: Member?, port: PortID, key: Key, entry: inout GroupEntry) {
        let wasMember = entry.members[port] != nil, groupExisted = !entry.members.isEmpty
        defer {
            let isMember = entry.members[port] != nil, groupExists = !entry.members.isEmpty
            if isMember != wasMember { groupsOnPort[port.index] += isMember ? 1 : -1 }
            if groupExists != groupExisted { groupsInVLAN[key.vlan, default: 0] += groupExists ? 1 : -1 }
        }
        if var member {
            entry.ports.insert(port)
            if member.filtersSources { entry.filtering.insert(port) } else { entry.filtering.remove(port) }
            if let next = member.nextDeadline, member.scheduled.map({ next < $0 }) ?? true {
                member.scheduled = next
                timers.schedule((key, port), at: next)
            }
            entry.members[port] = member
        } else {
            entry.members[port] = nil
            entry.ports.remove(port)
            entry.filtering.remove(port)
        }
        groups[key] = entry.members.isEmpty ? nil : entry
        if entry.members.isEmpty {
            forwarding.remove(key)
        } else {
            forwarding.set(Forwarding(ports: entry.ports, filtering: entry.filtering), for: key)
        }
    }

    // MARK: - Time

    /// Runs the source and group timers due by `now`. Returns the memberships that ended.
    public func expire(at now: Instant) -> [(key: Key, port: PortID)] {
        var ended: [(key: Key, port: PortID)] = []
        while let (_, due) = timers.popDue(at: now) {
            guard var entry = groups[due.key], var member = entry.members[due.port] else { continue }
            if let scheduled = member.scheduled, scheduled <= now { member.scheduled = nil }
            let alive = member.expire(at: now)
            if !alive { ended.append(due) }
            store(alive ? member : nil, port: due.port, key: due.key, entry: &entry)
        }
        return ended
    }

    public var nextDeadline: Instant? { timers.nextDeadline }

    // MARK: - Queries

    /// Whether some port's group timer for `group` runs past `deadline` (the S flag of a
    /// group-specific query, RFC 3376 6.6.3.1).
    public func groupTimerExceeds(_ deadline: Instant, of group: Address, in vlan: VLANID) -> Bool {
        groups[Key(vlan: vlan, group: group)]?.members.values.contains { $0.mode == .exclude && $0.groupTimer > deadline } ?? false
    }

    /// Whether some port's timer for `source` runs past `deadline` (6.6.3.2).
    public func sourceTimerExceeds(_ deadline: Instant, source: Address, of group: Address, in vlan: VLANID) -> Bool {
        groups[Key(vlan: vlan, group: group)]?.members.values.contains { ($0.sources[source] ?? .zero) > deadline } ?? false
    }

    /// Every group with its members, sorted, for the status dump.
    public func allGroups() -> [(key: Key, members: [(port: PortID, member: Member)])] {
        groups.map { key, entry in
            (key, entry.members.map { ($0.key, $0.value) }.sorted { $0.port < $1.port })
        }.sorted { ($0.key.vlan, $0.key.group) < ($1.key.vlan, $1.key.group) }
    }
}
