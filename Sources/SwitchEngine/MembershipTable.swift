import Wire

/// Which ports want which groups, per VLAN, each membership with its own timer. Generic over
/// the group address and protocol version so that MLD (IPv6) snooping uses the same table.
public struct MembershipTable<Group: Hashable & Comparable & Sendable, Version: Comparable & Sendable> {
    public struct Key: Hashable, Sendable {
        public var vlan: VLANID
        public var group: Group
        public init(vlan: VLANID, group: Group) {
            self.vlan = vlan
            self.group = group
        }
    }

    /// One port's membership in one group.
    public struct Member: Equatable, Sendable {
        /// The group timer for this port (RFC 3376 section 6.2.1): gone when it expires.
        public var expires: Instant
        /// The version of the last report heard, for status and compatibility.
        public var version: Version
        /// The deadline at which a timer entry stands in the queue for this member.
        var scheduled: Instant
    }

    struct GroupEntry {
        var ports = PortSet()
        var members: [PortID: Member] = [:]
    }

    private var groups: [Key: GroupEntry] = [:]
    private var timers = TimerQueue<(key: Key, port: PortID)>()

    public init() {}

    public var groupCount: Int { groups.count }

    /// The ports that joined `group` in `vlan`, or nil when the group is unregistered there.
    @inline(__always)
    public func ports(of group: Group, in vlan: VLANID) -> PortSet? {
        groups[Key(vlan: vlan, group: group)]?.ports
    }

    public func member(_ port: PortID, of group: Group, in vlan: VLANID) -> Member? {
        groups[Key(vlan: vlan, group: group)]?.members[port]
    }

    /// A report: the port is a member until `expires` (the group membership interval from now).
    /// Returns true when the port was not a member before.
    @discardableResult
    public mutating func join(_ port: PortID, to group: Group, in vlan: VLANID, version: Version, until expires: Instant) -> Bool {
        let key = Key(vlan: vlan, group: group)
        var entry = groups[key] ?? GroupEntry()
        let isNew = entry.members[port] == nil
        if var member = entry.members[port] {
            member.expires = expires
            member.version = version
            entry.members[port] = member
        } else {
            entry.members[port] = Member(expires: expires, version: version, scheduled: expires)
            entry.ports.insert(port)
            timers.schedule((key, port), at: expires)
        }
        groups[key] = entry
        return isNew
    }

    /// Brings a member's timer down to `deadline` if it is later (a leave, RFC 3376 6.6.3.1).
    public mutating func lower(_ port: PortID, of group: Group, in vlan: VLANID, to deadline: Instant) {
        let key = Key(vlan: vlan, group: group)
        guard var member = groups[key]?.members[port], member.expires > deadline else { return }
        member.expires = deadline
        if member.scheduled > deadline {
            member.scheduled = deadline
            timers.schedule((key, port), at: deadline)
        }
        groups[key]?.members[port] = member
    }

    @discardableResult
    public mutating func remove(_ port: PortID, from group: Group, in vlan: VLANID) -> Bool {
        let key = Key(vlan: vlan, group: group)
        guard var entry = groups[key], entry.members.removeValue(forKey: port) != nil else { return false }
        entry.ports.remove(port)
        groups[key] = entry.members.isEmpty ? nil : entry
        return true
    }

    /// Forgets every membership of a port (its link went down).
    public mutating func removeAll(on port: PortID) {
        for key in Array(groups.keys) { remove(port, from: key.group, in: key.vlan) }
    }

    public mutating func removeAll() {
        groups.removeAll()
        timers.removeAll()
    }

    /// Removes the memberships whose timers ran out; returns them.
    public mutating func expire(at now: Instant) -> [(key: Key, port: PortID)] {
        var expired: [(key: Key, port: PortID)] = []
        while let (_, due) = timers.popDue(at: now) {
            guard var member = groups[due.key]?.members[due.port] else { continue }   // removed already
            if member.expires <= now {
                remove(due.port, from: due.key.group, in: due.key.vlan)
                expired.append(due)
            } else {
                // refreshed since it was scheduled: stand again at the new expiry
                member.scheduled = member.expires
                groups[due.key]?.members[due.port] = member
                timers.schedule(due, at: member.expires)
            }
        }
        return expired
    }

    public var nextDeadline: Instant? { timers.nextDeadline }

    /// Every group with its members, sorted, for the status dump.
    public func allGroups() -> [(key: Key, members: [(port: PortID, member: Member)])] {
        groups.map { key, entry in
            (key, entry.members.map { ($0.key, $0.value) }.sorted { $0.port < $1.port })
        }.sorted { ($0.key.vlan, $0.key.group) < ($1.key.vlan, $1.key.group) }
    }
}
