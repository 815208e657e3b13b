import Wire

/// A group address the membership table can key on: IPv4 now, IPv6 for MLD.
public protocol GroupAddress: Hashable, Comparable, Sendable, BitwiseCopyable {
    /// The address and its VLAN under the table's seed (every bit of the address goes through
    /// the seed: a fold before it would collide for every seed).
    func hash(in vlan: VLANID, with seed: HashSeed) -> UInt64
    /// A group address (a report's group must be one).
    var isMulticast: Bool { get }
}

extension IPv4Address: GroupAddress {
    @inline(__always)
    public func hash(in vlan: VLANID, with seed: HashSeed) -> UInt64 {
        seed.hash(UInt64(vlan.rawValue) << 32 | UInt64(rawValue))
    }
}

/// A version of a membership protocol (IGMP, MLD): ordered, the newest filtering sources.
public protocol MembershipVersion: Comparable, Hashable, Sendable {
    /// The version with source filtering (IGMPv3, MLDv2): hosts of older versions put a group
    /// in compatibility mode.
    static var sourceFiltering: Self { get }
    /// Whether hosts of this version send leaves (IGMPv1 hosts do not).
    var hasLeave: Bool { get }
    /// This version's place among those older than `sourceFiltering`, oldest first (IGMPv1 0,
    /// IGMPv2 1; MLDv1 0), below `OlderHostTimers.capacity`; nil for `sourceFiltering` itself.
    var olderRank: Int? { get }
    /// The older version at `rank`, if there is one.
    init?(olderRank rank: Int)
}

extension IGMPVersion: MembershipVersion {
    public static var sourceFiltering: IGMPVersion { .v3 }
    public var hasLeave: Bool { self != .v1 }
    public var olderRank: Int? { self == .v3 ? nil : rawValue - 1 }
    public init?(olderRank rank: Int) {
        guard rank == 0 || rank == 1 else { return nil }
        self.init(rawValue: rank + 1)
    }
}

/// One member's older version host present timers (RFC 3376 7.3.2, RFC 3810 8.3.2), by the
/// version's older rank, kept inline: a protocol has two older versions at most (IGMPv1 and v2;
/// MLDv1). `.zero`: no host of that version heard.
public struct OlderHostTimers: Equatable, Sendable, BitwiseCopyable {
    public static var capacity: Int { 2 }
    private var oldest = Instant.zero
    private var second = Instant.zero

    public init() {}

    public subscript(rank: Int) -> Instant {
        get { rank == 0 ? oldest : second }
        set {
            precondition(rank >= 0 && rank < Self.capacity, "older rank out of range")
            if rank == 0 { oldest = newValue } else { second = newValue }
        }
    }
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
    /// What the "Send Q" actions lower timers to; nil when another querier is elected, whose
    /// own queries lower them (RFC 3376 6.6.1).
    public var lastMemberQueryTime: Duration?

    public init(groupMembershipInterval: Duration, lastMemberQueryTime: Duration?) {
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

/// The bounds of MembershipLimits a record can be refused at (`limit_*` in the status's IGMP errors).
public enum MembershipLimit: Int, CounterKey {
    case groupsPerPort, groupsPerVLAN, sourcesPerGroup

    public var name: String {
        switch self {
        case .groupsPerPort: "groups_per_port"
        case .groupsPerVLAN: "groups_per_vlan"
        case .sourcesPerGroup: "sources_per_group"
        }
    }
}

public enum FilterMode: String, Sendable, Codable {
    case include, exclude
}
