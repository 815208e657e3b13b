import Wire

/// A membership protocol the engine snoops: IGMP for IPv4, MLD for IPv6. MLDv2 is IGMPv3's
/// state machine over IPv6 addresses (RFC 9777 section 1), so one table, one querier and one
/// set of timers serve both, each protocol with state of its own.
public protocol MembershipProtocol {
    associatedtype Address: GroupAddress & CustomStringConvertible
    associatedtype Version: MembershipVersion & RawRepresentable where Version.RawValue == Int
    /// 0.0.0.0 or ::, which a query from names no router.
    static var unspecified: Address { get }
    /// "igmp" or "mld", as the status and the logs name the protocol.
    static var name: String { get }
    /// The querier settings in force in `vlan`.
    static func querier(in vlan: VLANID, of configuration: SwitchConfiguration) -> QuerierSettings<Self>
    /// The router port reason of this protocol's queries.
    static var queryReason: RouterPortReason { get }
    /// The version a leave (IGMPv2) or Done (MLDv1) belongs to.
    static var leaveVersion: Version { get }
    /// Whether membership of `group` is tracked: not the groups every host is in, which flood
    /// (IGMP: 224.0.0.0/24, RFC 4541 2.1.2; MLD: ff02::1 and ff00::/15).
    static func isSnooped(_ group: Address) -> Bool
    /// Any-source membership of `group` is refused (RFC 4604 2.2.1).
    static func isSourceSpecific(_ group: Address, in configuration: SwitchConfiguration) -> Bool
    /// A query frame from the switch, to all hosts (general) or to the group.
    static func queryFrame(_ query: HeardQuery<Self>, from mac: MACAddress, source: Address) -> [UInt8]
    /// A multicast router solicitation (RFC 4286 section 5) from the switch.
    static func routerSolicitation(from mac: MACAddress, source: Address) -> [UInt8]
    /// How many sources fit one query of 1500 bytes.
    static var sourcesPerQuery: Int { get }
}

/// IGMP: IPv4 group membership (RFC 1112, RFC 2236, RFC 3376/9776).
public enum IGMP: MembershipProtocol {
    public static var unspecified: IPv4Address { .any }
    public static var name: String { "igmp" }
    public static func querier(in vlan: VLANID, of configuration: SwitchConfiguration) -> QuerierSettings<IGMP> {
        configuration.querier(in: vlan)
    }
    public static var queryReason: RouterPortReason { .igmpQuery }
    public static var leaveVersion: IGMPVersion { .v2 }
    public static func isSnooped(_ group: IPv4Address) -> Bool { group.isMulticast && !group.isLocalNetworkControl }
    public static func isSourceSpecific(_ group: IPv4Address, in configuration: SwitchConfiguration) -> Bool {
        configuration.ssmRange.contains(group)
    }
    public static func queryFrame(_ query: HeardQuery<IGMP>, from mac: MACAddress, source: IPv4Address) -> [UInt8] {
        let group = query.group ?? .any
        let message = IGMPQuery(version: query.version, group: group,
                                maxResponseDeciseconds: Int(query.maxResponse.nanoseconds / 100_000_000),
                                suppressRouterProcessing: query.suppressRouterProcessing, robustness: query.robustness,
                                queryIntervalSeconds: query.queryIntervalSeconds, sources: query.sources)
        return IGMPFrameBuilder.frame(.query(message), from: mac, source: source,
                                      destination: query.group ?? .allSystems)
    }
    public static func routerSolicitation(from mac: MACAddress, source: IPv4Address) -> [UInt8] {
        IGMPFrameBuilder.frame(.mrdSolicitation, from: mac, source: source, destination: .allRouters)
    }
    /// (1500 - 24 of IPv4 with router alert - 12 of query) / 4.
    public static var sourcesPerQuery: Int { 366 }
}

/// MLD: IPv6 multicast listeners (RFC 2710, RFC 9777).
public enum MLD: MembershipProtocol {
    public static var unspecified: IPv6Address { .any }
    public static var name: String { "mld" }
    public static func querier(in vlan: VLANID, of configuration: SwitchConfiguration) -> QuerierSettings<MLD> {
        configuration.mldQuerier(in: vlan)
    }
    public static var queryReason: RouterPortReason { .mldQuery }
    public static var leaveVersion: MLDVersion { .v1 }
    /// RFC 2710 section 5: no MLD message ever names ff02::1; ff00::/15 never leaves a node.
    public static func isSnooped(_ group: IPv6Address) -> Bool {
        group.isMulticast && group != .allNodes && !group.isBelowLinkScope
    }
    public static func isSourceSpecific(_ group: IPv6Address, in configuration: SwitchConfiguration) -> Bool {
        configuration.mldSSMRange.contains(group)
    }
    public static func queryFrame(_ query: HeardQuery<MLD>, from mac: MACAddress, source: IPv6Address) -> [UInt8] {
        // RFC 2710 section 3 and RFC 9777 5.1.15: a specific query goes to the group it asks about.
        let message = MLDQuery(version: query.version, group: query.group ?? .any,
                               maxResponseMilliseconds: Int(query.maxResponse.nanoseconds / 1_000_000),
                               suppressRouterProcessing: query.suppressRouterProcessing, robustness: query.robustness,
                               queryIntervalSeconds: query.queryIntervalSeconds, sources: query.sources)
        return MLDFrameBuilder.query(message, from: mac, source: source)
    }
    public static func routerSolicitation(from mac: MACAddress, source: IPv6Address) -> [UInt8] {
        MLDFrameBuilder.frame(.mrdSolicitation, from: mac, source: source, destination: .allRouters)
    }
    /// (1500 - 48 of IPv6 with hop-by-hop - 28 of query) / 16.
    public static var sourcesPerQuery: Int { 89 }
}

extension IPv6Address: GroupAddress {
    @inline(__always)
    public func hash(in vlan: VLANID, with seed: HashSeed) -> UInt64 {
        seed.hash(high ^ UInt64(vlan.rawValue) << 4, low)
    }
}

extension MLDVersion: MembershipVersion {
    public static var sourceFiltering: MLDVersion { .v2 }
    public var hasLeave: Bool { true }
    public var olderRank: Int? { self == .v1 ? 0 : nil }
    public init?(olderRank rank: Int) {
        guard rank == 0 else { return nil }
        self = .v1
    }
}

/// A query as the querier election and the membership timers read it, whichever protocol
/// carried it.
public struct HeardQuery<P: MembershipProtocol>: Sendable {
    public var version: P.Version
    /// nil for a general query.
    public var group: P.Address?
    public var sources: [P.Address]
    /// The max response time (IGMP: tenths of a second; MLD: milliseconds).
    public var maxResponse: Duration
    /// The querier's robustness variable and query interval (IGMPv3, MLDv2; 0 when absent).
    public var robustness: Int
    public var queryIntervalSeconds: Int
    public var suppressRouterProcessing: Bool

    public init(version: P.Version, group: P.Address?, sources: [P.Address] = [], maxResponse: Duration,
                robustness: Int = 0, queryIntervalSeconds: Int = 0, suppressRouterProcessing: Bool = false) {
        self.version = version
        self.group = group
        self.sources = sources
        self.maxResponse = maxResponse
        self.robustness = robustness
        self.queryIntervalSeconds = queryIntervalSeconds
        self.suppressRouterProcessing = suppressRouterProcessing
    }

    public var isGeneral: Bool { group == nil }
}

extension IGMPQuery {
    public var heard: HeardQuery<IGMP> {
        HeardQuery(version: version, group: isGeneral ? nil : group, sources: sources,
                   maxResponse: .deciseconds(maxResponseDeciseconds), robustness: robustness,
                   queryIntervalSeconds: queryIntervalSeconds, suppressRouterProcessing: suppressRouterProcessing)
    }
}

extension MLDQuery {
    public var heard: HeardQuery<MLD> {
        HeardQuery(version: version, group: isGeneral ? nil : group, sources: sources,
                   maxResponse: .milliseconds(maxResponseMilliseconds), robustness: robustness,
                   queryIntervalSeconds: queryIntervalSeconds, suppressRouterProcessing: suppressRouterProcessing)
    }
}

/// The groups whose any-source membership is refused (RFC 4604 2.2.1): for MLD ff3x::/32 of
/// every scope (RFC 4607) unless the operator names one prefix.
public enum MLDSourceSpecificRange: Equatable, Sendable, CustomStringConvertible {
    case standard
    case prefix(IPv6Prefix)

    public func contains(_ group: IPv6Address) -> Bool {
        switch self {
        case .standard: group.isSourceSpecific
        case .prefix(let prefix): prefix.contains(group)
        }
    }

    public var description: String {
        switch self {
        case .standard: "ff3x::/32"
        case .prefix(let prefix): prefix.description
        }
    }
}

/// A group of either protocol, as an operator names one (`mdb add PORT GROUP VLAN`).
public enum MulticastGroupAddress: Hashable, Sendable, CustomStringConvertible {
    case ipv4(IPv4Address)
    case ipv6(IPv6Address)

    /// A group whose membership is tracked (not 224.0.0.0/24, ff02::1 or ff00::/15, which
    /// always flood), from its text; nil otherwise.
    public init?(_ text: String) {
        if let v4 = IPv4Address(text), IGMP.isSnooped(v4) {
            self = .ipv4(v4)
        } else if let v6 = IPv6Address(text), MLD.isSnooped(v6) {
            self = .ipv6(v6)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .ipv4(let address): address.description
        case .ipv6(let address): address.description
        }
    }
}
