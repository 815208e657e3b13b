import Wire

/// Why the switch refused a frame.
public enum DropReason: String, CaseIterable, Sendable {
    /// Too short for an Ethernet header, or an IPv4 header that fails its checks.
    case malformed
    /// An IGMP message that fails its checks (the error counters say which).
    case badIGMP = "bad_igmp"
    /// An MLD message that fails its checks (the MLD error counters say which).
    case badMLD = "bad_mld"
    /// A tagged frame whose VLAN the port does not carry.
    case vlanNotAllowed = "vlan_not_allowed"
    /// An untagged frame on a port without a pvid.
    case untaggedNotAllowed = "untagged_not_allowed"
    /// A multicast source MAC address.
    case multicastSource = "multicast_source"
    /// A frame arriving on a port whose link is down.
    case portDown = "port_down"
    /// An IGMP message past the port's rate.
    case rateLimited = "rate_limited"
    /// A query or router announcement on a port that may not speak for a router.
    case queryGuard = "query_guard"
    /// An 802.1ad S-tagged frame (TPID 0x88A8): a provider's VLAN, which the switch does not carry.
    case serviceTagged = "s_tagged"
    /// A frame to an IEEE 802.1Q reserved address (01:80:C2:00:00:01 to 0F: PAUSE, LACP,
    /// 802.1X, LLDP, ...), which stays on its link unless relaying it was asked for.
    case reservedAddress = "reserved_address"
}

/// What the engine counts. Plain integers: the control plane reads them.
public struct SwitchCounters: Sendable {
    public var rxFrames: [UInt64]
    public var rxBytes: [UInt64]
    public var drops: [UInt64]
    public var dropsByReason: [DropReason: UInt64] = [:]
    public var received = Counts<ReceivedMessage>()
    public var sent = Counts<SentMessage>()
    public var errors = Counts<MessageError>()
    /// The same for MLD, PIMv6 and IPv6 multicast router discovery (`mld.*` in the status).
    public var mldReceived = Counts<MLDReceivedMessage>()
    public var mldSent = Counts<SentMessage>()
    public var mldErrors = Counts<MessageError>()
    /// New stations the MAC table refused because it was full.
    public var macTableFull: UInt64 = 0

    init(portCount: Int) {
        rxFrames = Array(repeating: 0, count: portCount)
        rxBytes = Array(repeating: 0, count: portCount)
        drops = Array(repeating: 0, count: portCount)
    }

    mutating func drop(_ reason: DropReason, on port: PortID) {
        drops[port.index] &+= 1
        dropsByReason[reason, default: 0] &+= 1
    }
}

/// A kind of event the engine counts: a closed list, each with the name the status document,
/// the text status and the metrics show it by (those names are documented: keep them).
public protocol CounterKey: CaseIterable, Hashable, Sendable where AllCases == [Self] {
    /// The name in the status (`igmp.received`, `igmp.errors`, ...).
    var name: String { get }
    /// The kind's place in `allCases`, where its count is kept.
    var ordinal: Int { get }
}

extension CounterKey where Self: RawRepresentable, RawValue == Int {
    public var ordinal: Int { rawValue }
}

/// One count per kind of a `CounterKey`, in a fixed array: counting is an index, not a hash.
public struct Counts<Key: CounterKey>: Equatable, Sendable {
    private var values = [UInt64](repeating: 0, count: Key.allCases.count)

    public init() {}

    public subscript(key: Key) -> UInt64 {
        get { values[key.ordinal] }
        set { values[key.ordinal] = newValue }
    }

    public mutating func add(_ key: Key, _ count: UInt64 = 1) { values[key.ordinal] &+= count }

    public var total: UInt64 { values.reduce(0, &+) }

    /// The kinds counted at least once, by name: what the status shows.
    public var byName: [String: UInt64] {
        var out: [String: UInt64] = [:]
        for key in Key.allCases where values[key.ordinal] > 0 { out[key.name] = values[key.ordinal] }
        return out
    }
}

/// IGMP and PIM messages the engine heard, by kind (`igmp.received`).
public enum ReceivedMessage: Int, CounterKey {
    case queryV1, queryV2, queryV3
    case reportV1, reportV2, reportV3
    case leave
    case dvmrp
    case mrdAdvertisement, mrdTermination, mrdSolicitation
    case pimHello, pimOther

    public static func query(_ version: IGMPVersion) -> Self {
        switch version { case .v1: .queryV1; case .v2: .queryV2; case .v3: .queryV3 }
    }

    public static func report(_ version: IGMPVersion) -> Self {
        switch version { case .v1: .reportV1; case .v2: .reportV2; case .v3: .reportV3 }
    }

    public var name: String {
        switch self {
        case .queryV1: "query_v1"
        case .queryV2: "query_v2"
        case .queryV3: "query_v3"
        case .reportV1: "v1_report"
        case .reportV2: "v2_report"
        case .reportV3: "v3_report"
        case .leave: "v2_leave"
        case .dvmrp: "dvmrp"
        case .mrdAdvertisement: "mrd_advertisement"
        case .mrdTermination: "mrd_termination"
        case .mrdSolicitation: "mrd_solicitation"
        case .pimHello: "pim_hello"
        case .pimOther: "pim_other"
        }
    }
}

/// MLD, PIMv6 and ICMPv6 multicast router discovery messages the engine heard (`mld.received`).
public enum MLDReceivedMessage: Int, CounterKey {
    case queryV1, queryV2, reportV1, reportV2, done
    case mrdAdvertisement, mrdTermination, mrdSolicitation
    case pimHello, pimOther

    public static func query(_ version: MLDVersion) -> Self { version == .v1 ? .queryV1 : .queryV2 }

    public var name: String {
        switch self {
        case .queryV1: "query_v1"
        case .queryV2: "query_v2"
        case .reportV1: "v1_report"
        case .reportV2: "v2_report"
        case .done: "done"
        case .mrdAdvertisement: "mrd_advertisement"
        case .mrdTermination: "mrd_termination"
        case .mrdSolicitation: "mrd_solicitation"
        case .pimHello: "pim_hello"
        case .pimOther: "pim_other"
        }
    }
}

/// Messages the switch originated, by kind (`igmp.sent`, `mld.sent`).
public enum SentMessage: Int, CounterKey {
    case generalQuery, groupQuery, groupAndSourceQuery, mrdSolicitation

    public var name: String {
        switch self {
        case .generalQuery: "general_query"
        case .groupQuery: "group_query"
        case .groupAndSourceQuery: "group_source_query"
        case .mrdSolicitation: "mrd_solicitation"
        }
    }
}

/// Why an IGMP or PIM message, or part of one, was refused or ignored (`igmp.errors`).
public enum MessageError: Int, CounterKey {
    /// Past the port's IGMP rate.
    case rateLimited
    /// The checks of IGMPMessage.parse (WireError).
    case truncated, badLength, badChecksum, badVersion, unknownType
    /// A query or router announcement on a query-guard port.
    case guardedQuery
    /// A report, leave or record for an address that is not a multicast group.
    case badGroup
    /// Any-source membership asked in the SSM range (RFC 4604 2.2.1).
    case ssmIgnored
    /// A leave, BLOCK or TO_IN ignored in a group's compatibility mode (RFC 3376 7.3.2).
    case ignoredInV1Mode, ignoredInV2Mode
    /// A PIM message that fails its checks.
    case badPIM
    /// MLD's checks of the datagram (RFC 9777 5.1.14, 5.2.13; RFC 2710 3): a source that is
    /// not link-local (nor :: for a report), a hop limit other than 1, no router alert.
    case badSource, badHopLimit, noRouterAlert

    public init(_ error: WireError) {
        switch error {
        case .truncated: self = .truncated
        case .badLength: self = .badLength
        case .badChecksum: self = .badChecksum
        case .badVersion: self = .badVersion
        case .unknownType: self = .unknownType
        }
    }

    /// The record or leave ignored in `mode` (v1 or v2).
    public static func ignored(in mode: IGMPVersion) -> Self { mode == .v1 ? .ignoredInV1Mode : .ignoredInV2Mode }

    public var name: String {
        switch self {
        case .rateLimited: "rate_limited"
        case .truncated: "truncated"
        case .badLength: "bad_length"
        case .badChecksum: "bad_checksum"
        case .badVersion: "bad_version"
        case .unknownType: "unknown_type"
        case .guardedQuery: "guarded_query"
        case .badGroup: "bad_group"
        case .ssmIgnored: "ssm_ignored"
        case .ignoredInV1Mode: "ignored_in_v1_mode"
        case .ignoredInV2Mode: "ignored_in_v2_mode"
        case .badPIM: "bad_pim"
        case .badSource: "bad_source"
        case .badHopLimit: "bad_hop_limit"
        case .noRouterAlert: "no_router_alert"
        }
    }
}

/// A token bucket: `rate` tokens a second, at most `rate` saved up.
struct TokenBucket {
    let rate: Int
    private var tokens: Double
    private var last: Instant

    init(rate: Int, at now: Instant) {
        self.rate = rate
        self.tokens = Double(rate)
        self.last = now
    }

    mutating func take(at now: Instant) -> Bool {
        let elapsed = Double(max(0, now.nanoseconds - last.nanoseconds)) / 1e9
        tokens = min(Double(rate), tokens + elapsed * Double(rate))
        last = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
