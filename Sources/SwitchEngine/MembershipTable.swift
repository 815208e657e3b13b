import Wire

/// Which ports want which groups from which sources, per VLAN: the router state of RFC 3376
/// section 6.2.1 kept per (VLAN, group, port), each port being a link of its own. Generic over
/// the address and protocol version so that MLD (IPv6) snooping reuses it.
///
/// Groups live in one dense array of records, found through an open-addressing index; each
/// record's member ports sit in a flat column beside it, so that forwarding reads an index entry
/// and one port set. A group removed leaves its slot to the last record.
public final class MembershipTable<Address: GroupAddress, Version: MembershipVersion> {
    public struct Key: Hashable, Sendable, FastHashKey {
        public var vlan: VLANID
        public var group: Address
        public init(vlan: VLANID, group: Address) {
            self.vlan = vlan
            self.group = group
        }

        @inline(__always)
        public func hash(with seed: HashSeed) -> UInt64 { group.hash(in: vlan, with: seed) }
    }

    /// One port's state for one group.
    public struct Member: Equatable, Sendable {
        // Widest fields first: with IGMP's version a member takes 56 bytes (52 and padding),
        // kept inline in its group's record (MembershipTableTests.testRecordsStaySmall).
        /// INCLUDE: the include list. EXCLUDE: the requested list X. Each source with its timer.
        public var sources: [Address: Instant] = [:]
        /// EXCLUDE only: the exclude list Y, sources not forwarded.
        public var excluded: Set<Address> = []
        /// EXCLUDE only: when the port falls back to INCLUDE of its requested sources.
        public var groupTimer = Instant.zero
        /// Older version host present timers (RFC 3376 7.3.2), by the version's older rank.
        public private(set) var olderHosts = OlderHostTimers()
        /// The earliest deadline with an entry in the timer queue.
        var scheduled: Instant?
        public var mode: FilterMode = .include
        /// The version of the last report heard.
        public var version: Version
        /// Configured by the operator: all sources, never expires, reports do not change it.
        public var isStatic = false

        init(version: Version) {
            self.version = version
        }

        /// The oldest version whose host present timer runs, else the newest.
        public func compatibilityMode(at now: Instant) -> Version {
            for rank in 0 ..< OlderHostTimers.capacity where olderHosts[rank] > now {
                if let version = Version(olderRank: rank) { return version }
            }
            return .sourceFiltering
        }

        /// Until when a host of `version` (older than the newest) is taken to be present; nil
        /// when none was heard.
        public func olderHostPresent(_ version: Version) -> Instant? {
            guard let rank = version.olderRank, olderHosts[rank] != .zero else { return nil }
            return olderHosts[rank]
        }

        mutating func markOlderHost(_ version: Version, until: Instant) {
            guard let rank = version.olderRank else { return }
            olderHosts[rank] = until
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

    /// A group's member ports: the first inline, the others in an array allocated only when a
    /// second port joins (most groups have one member port). In no particular order.
    struct MemberList: Sequence {
        private var first: (port: PortID, member: Member)?
        private var others: [(port: PortID, member: Member)] = []

        init(_ port: PortID, _ member: Member) {
            first = (port, member)
        }

        var isEmpty: Bool { first == nil }

        subscript(port: PortID) -> Member? {
            get {
                if let first, first.port == port { return first.member }
                for other in others where other.port == port { return other.member }
                return nil
            }
            set {
                if first?.port == port {
                    if let newValue {
                        first!.member = newValue
                    } else {
                        first = others.popLast()
                        if others.isEmpty { others = [] }     // frees the array's storage
                    }
                } else if let i = others.firstIndex(where: { $0.port == port }) {
                    if let newValue {
                        others[i].member = newValue
                    } else {
                        others.swapAt(i, others.count - 1)
                        others.removeLast()
                        if others.isEmpty { others = [] }
                    }
                } else if let newValue {
                    if first == nil { first = (port, newValue) } else { others.append((port, newValue)) }
                }
            }
        }

        struct Iterator: IteratorProtocol {
            let list: MemberList
            var position = 0

            mutating func next() -> (port: PortID, member: Member)? {
                defer { position += 1 }
                if position == 0 { return list.first }
                return position <= list.others.count ? list.others[position - 1] : nil
            }
        }

        func makeIterator() -> Iterator { Iterator(list: self) }
    }

    /// A group with at least one member port: 80 bytes with IPv4 and IGMP, the first member's state included.
    struct GroupRecord {
        var key: Key
        var members: MemberList
    }

    /// An index entry: where a group's record is, and whether some member port forwards some
    /// sources only (then forwarding asks each member).
    struct Placement: BitwiseCopyable {
        private static var filteringBit: UInt32 { 1 << 31 }
        private var bits: UInt32

        init(slot: Int, filtering: Bool) {
            precondition(slot < Int(Self.filteringBit), "too many groups")
            bits = UInt32(slot) | (filtering ? Self.filteringBit : 0)
        }

        @inline(__always)
        var slot: Int { Int(bits & ~Self.filteringBit) }
        @inline(__always)
        var filtering: Bool { bits & Self.filteringBit != 0 }
    }

    /// Every group with members, in no order.
    private var records: [GroupRecord] = []
    private let index = OpenHashMap<Key, Placement>()
    /// Each record's member ports, by slot: the hot path reads only these and the index, from
    /// flat storage (no reference counting, no exclusivity check).
    @exclusivity(unchecked) private var memberPorts: UnsafeMutablePointer<PortSet>
    private var memberPortsCapacity = 16
    private var timers = TimerQueue<(key: Key, port: PortID)>()
    public let limits: MembershipLimits
    private var groupsInVLAN: [VLANID: Int] = [:]
    private var groupsOnPort = [Int](repeating: 0, count: PortSet.capacity)
    /// Records refused because a limit was reached, by limit.
    public private(set) var refusals = Counts<MembershipLimit>()

    public init(limits: MembershipLimits = MembershipLimits()) {
        self.limits = limits
        memberPorts = .allocate(capacity: memberPortsCapacity)
    }

    deinit {
        memberPorts.deallocate()
    }

    public var groupCount: Int { records.count }

    // MARK: - Forwarding

    /// The ports that want traffic from `source` to `group`, or nil when the group is unregistered.
    @inline(__always)
    public func ports(of group: Address, in vlan: VLANID, from source: Address, at now: Instant) -> PortSet? {
        guard let place = index[Key(vlan: vlan, group: group)] else { return nil }
        if !place.filtering { return memberPorts[place.slot] }
        return filteredPorts(at: place.slot, source: source, at: now)
    }

    /// The slower path of groups with source filters: each member port asked in turn.
    private func filteredPorts(at slot: Int, source: Address, at now: Instant) -> PortSet {
        var out = PortSet()
        for (port, member) in records[slot].members where !member.filtersSources || member.admits(source, at: now) {
            out.insert(port)
        }
        return out
    }

    public func member(_ port: PortID, of group: Address, in vlan: VLANID) -> Member? {
        slot(of: Key(vlan: vlan, group: group)).flatMap { records[$0].members[port] }
    }

    private func slot(of key: Key) -> Int? { index[key]?.slot }

    // MARK: - Reports

    /// Processes one group record heard on `port`, per RFC 3376 tables 6.4.1 and 6.4.2. The
    /// timers of the "Send Q" actions are lowered here (6.6.3): to the last member query time,
    /// or at once on a fast-leave port. Returns the queries the querier owes.
    @discardableResult
    public func apply(_ record: MembershipRecord, sources list: [Address], version: Version,
                               on port: PortID, to group: Address, in vlan: VLANID, at now: Instant,
                               timers: MembershipTimers, fastLeave: Bool = false) -> QueriesOwed<Address> {
        let key = Key(vlan: vlan, group: group)
        let slot = self.slot(of: key)
        let existing = slot.flatMap { records[$0].members[port] }
        var member = existing ?? Member(version: version)
        if member.isStatic { return QueriesOwed() }
        if existing == nil && (record == .block || (record == .toInclude || record == .isInclude) && list.isEmpty) {
            return QueriesOwed()          // nothing to leave or block
        }
        let b = Set(list)
        // Bounded state: a new membership needs room on its port and in its VLAN; a record may
        // not grow the port's source list past the limit. Refused records change nothing.
        if existing == nil {
            if groupsOnPort[port.index] >= limits.groupsPerPort { return refuse(.groupsPerPort) }
            if slot == nil, groupsInVLAN[vlan, default: 0] >= limits.groupsPerVLAN { return refuse(.groupsPerVLAN) }
        }
        let replaces = record == .isExclude || record == .toExclude
        let bound = replaces ? b.count : Set(member.sources.keys).union(member.excluded).union(b).count
        if bound > limits.sourcesPerGroup { return refuse(.sourcesPerGroup) }
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

        // 6.6.3.1 and 6.6.3.2: the timers of what is queried drop to the last member query time
        // (under another querier: when its query comes, `lowerTimers`).
        if let lowered = fastLeave ? now : timers.lastMemberQueryTime.map({ now + $0 }) {
            for s in owed.sources where (member.sources[s] ?? .zero) > lowered { member.sources[s] = lowered }
            if owed.group, member.mode == .exclude, member.groupTimer > lowered { member.groupTimer = lowered }
        }
        let alive = fastLeave ? member.expire(at: now) : (member.mode == .exclude || !member.sources.isEmpty)
        store(alive ? member : nil, port: port, key: key)
        return fastLeave ? QueriesOwed() : owed
    }

    private func refuse(_ limit: MembershipLimit) -> QueriesOwed<Address> {
        refusals.add(limit)
        return QueriesOwed()
    }

    /// Notes a report from a host of an older version (RFC 3376 7.3.2): the port's group stays in
    /// that version's compatibility mode until `until`.
    public func markOlderHost(_ version: Version, on port: PortID, of group: Address, in vlan: VLANID, until: Instant) {
        guard version < .sourceFiltering, let slot = slot(of: Key(vlan: vlan, group: group)),
              records[slot].members[port] != nil else { return }
        records[slot].members[port]!.markOlderHost(version, until: until)
    }

    @discardableResult
    public func remove(_ port: PortID, from group: Address, in vlan: VLANID) -> Bool {
        let key = Key(vlan: vlan, group: group)
        guard let slot = slot(of: key), records[slot].members[port] != nil else { return false }
        store(nil, port: port, key: key)
        return true
    }

    /// Forgets every learned membership of a port (its link went down); static ones stay.
    public func removeAll(on port: PortID) {
        let doomed = records.filter { $0.members[port]?.isStatic == false }.map(\.key)
        for key in doomed { store(nil, port: port, key: key) }
    }

    /// Forgets every learned membership, in one VLAN or all; static ones stay.
    public func flush(vlan: VLANID? = nil) {
        var doomed: [(key: Key, port: PortID)] = []
        for record in records where vlan == nil || record.key.vlan == vlan {
            for (port, member) in record.members where !member.isStatic { doomed.append((record.key, port)) }
        }
        for (key, port) in doomed { store(nil, port: port, key: key) }
    }

    /// A membership the operator configured: the port gets the group from every source until
    /// it is deleted.
    public func addStatic(_ port: PortID, to group: Address, in vlan: VLANID, version: Version) {
        var member = Member(version: version)
        member.mode = .exclude
        member.groupTimer = .distantFuture
        member.isStatic = true
        store(member, port: port, key: Key(vlan: vlan, group: group))
    }

    @discardableResult
    public func removeStatic(_ port: PortID, from group: Address, in vlan: VLANID) -> Bool {
        guard member(port, of: group, in: vlan)?.isStatic == true else { return false }
        return remove(port, from: group, in: vlan)
    }

    /// Removes the static memberships of a port (the port itself is removed).
    public func removeStatic(on port: PortID) {
        let doomed = records.filter { $0.members[port]?.isStatic == true }.map(\.key)
        for key in doomed { store(nil, port: port, key: key) }
    }

    public func removeAll() {
        records.removeAll()
        index.removeAll()
        timers.removeAll()
        groupsInVLAN.removeAll()
        for i in groupsOnPort.indices { groupsOnPort[i] = 0 }
    }

    public func groupCount(on port: PortID) -> Int { groupsOnPort[port.index] }
    public func groupCount(in vlan: VLANID) -> Int { groupsInVLAN[vlan, default: 0] }

    /// Writes a member back (nil: removes it), keeps the records, the member ports, the index,
    /// the counts and the timer queue right.
    private func store(_ member: Member?, port: PortID, key: Key) {
        guard var member else { return forget(port, of: key) }
        if let next = member.nextDeadline, member.scheduled.map({ next < $0 }) ?? true {
            member.scheduled = next
            timers.schedule((key, port), at: next)
        }
        if let slot = slot(of: key) {
            if records[slot].members[port] == nil { groupsOnPort[port.index] += 1 }
            records[slot].members[port] = member
            memberPorts[slot].insert(port)
            index.set(placement(of: slot), for: key)
        } else {
            let slot = records.count
            records.append(GroupRecord(key: key, members: MemberList(port, member)))
            if slot == memberPortsCapacity { growMemberPorts() }
            (memberPorts + slot).initialize(to: PortSet([port]))
            index.set(Placement(slot: slot, filtering: member.filtersSources), for: key)
            groupsOnPort[port.index] += 1
            groupsInVLAN[key.vlan, default: 0] += 1
        }
    }

    private func forget(_ port: PortID, of key: Key) {
        guard let slot = slot(of: key), records[slot].members[port] != nil else { return }
        records[slot].members[port] = nil
        groupsOnPort[port.index] -= 1
        if !records[slot].members.isEmpty {
            memberPorts[slot].remove(port)
            index.set(placement(of: slot), for: key)
            return
        }
        // The last record takes the slot.
        let last = records.count - 1
        if slot != last {
            records.swapAt(slot, last)
            memberPorts[slot] = memberPorts[last]
            let moved = records[slot].key
            index.set(Placement(slot: slot, filtering: index[moved]!.filtering), for: moved)
        }
        records.removeLast()
        index.remove(key)
        groupsInVLAN[key.vlan, default: 0] -= 1
        if groupsInVLAN[key.vlan] == 0 { groupsInVLAN[key.vlan] = nil }
    }

    private func placement(of slot: Int) -> Placement {
        Placement(slot: slot, filtering: records[slot].members.contains { $0.member.filtersSources })
    }

    private func growMemberPorts() {
        let grown = UnsafeMutablePointer<PortSet>.allocate(capacity: memberPortsCapacity * 2)
        grown.moveInitialize(from: memberPorts, count: memberPortsCapacity)
        memberPorts.deallocate()
        memberPorts = grown
        memberPortsCapacity *= 2
    }

    // MARK: - Time

    /// Runs the source and group timers due by `now`. Returns the memberships that ended.
    public func expire(at now: Instant) -> [(key: Key, port: PortID)] {
        var ended: [(key: Key, port: PortID)] = []
        while let (_, due) = timers.popDue(at: now) {
            guard let slot = slot(of: due.key), var member = records[slot].members[due.port] else { continue }
            if let scheduled = member.scheduled, scheduled <= now { member.scheduled = nil }
            let alive = member.expire(at: now)
            if !alive { ended.append(due) }
            store(alive ? member : nil, port: due.port, key: due.key)
        }
        return ended
    }

    public var nextDeadline: Instant? { timers.nextDeadline }

    // MARK: - Queries

    /// RFC 3376 6.6.1, as a router that is not the querier hears the querier's group-specific
    /// query (no `sources`: every port's group timer) or group-and-source-specific query (the
    /// timers of those sources): each running past `deadline` is lowered to it. Static
    /// memberships stay.
    public func lowerTimers(of group: Address, in vlan: VLANID, sources: [Address], to deadline: Instant) {
        let key = Key(vlan: vlan, group: group)
        guard let slot = slot(of: key) else { return }
        var changed: [(port: PortID, member: Member)] = []
        for (port, original) in records[slot].members where !original.isStatic {
            var member = original
            if sources.isEmpty {
                if member.mode == .exclude, member.groupTimer > deadline { member.groupTimer = deadline }
            } else {
                for source in sources where (member.sources[source] ?? .zero) > deadline { member.sources[source] = deadline }
            }
            if member != original { changed.append((port, member)) }
        }
        for (port, member) in changed { store(member, port: port, key: key) }
    }

    /// Whether some port's group timer for `group` runs past `deadline` (the S flag of a
    /// group-specific query, RFC 3376 6.6.3.1).
    public func groupTimerExceeds(_ deadline: Instant, of group: Address, in vlan: VLANID) -> Bool {
        guard let slot = slot(of: Key(vlan: vlan, group: group)) else { return false }
        return records[slot].members.contains { $0.member.mode == .exclude && $0.member.groupTimer > deadline }
    }

    /// The oldest compatibility mode among the ports with `group` (RFC 3376 7.3.2, RFC 9777
    /// 8.3.2): the version a query about the group must speak for every listener to hear it.
    public func oldestCompatibilityMode(of group: Address, in vlan: VLANID, at now: Instant) -> Version? {
        guard let slot = slot(of: Key(vlan: vlan, group: group)) else { return nil }
        return records[slot].members.map { $0.member.compatibilityMode(at: now) }.min()
    }

    /// Whether some port's timer for `source` runs past `deadline` (6.6.3.2).
    public func sourceTimerExceeds(_ deadline: Instant, source: Address, of group: Address, in vlan: VLANID) -> Bool {
        guard let slot = slot(of: Key(vlan: vlan, group: group)) else { return false }
        return records[slot].members.contains { ($0.member.sources[source] ?? .zero) > deadline }
    }

    /// Every group with its members, sorted, for the status dump.
    public func allGroups() -> [(key: Key, members: [(port: PortID, member: Member)])] {
        snapshot().ordered()
    }

    /// The groups as they are at one moment, to read on another thread while the table goes
    /// on. It shares the records' storage: taking it costs nothing, and the table's next change
    /// copies the records once, far less than listing them under the datapath's lock would
    /// cost (README, Performance).
    public struct Snapshot {
        fileprivate let records: [GroupRecord]

        public var count: Int { records.count }

        /// Groups by VLAN and address, each group's members by port.
        public func ordered() -> [(key: Key, members: [(port: PortID, member: Member)])] {
            records.map { record in (record.key, record.members.sorted { $0.port < $1.port }) }
                .sorted { ($0.key.vlan, $0.key.group) < ($1.key.vlan, $1.key.group) }
        }
    }

    public func snapshot() -> Snapshot { Snapshot(records: records) }
}
