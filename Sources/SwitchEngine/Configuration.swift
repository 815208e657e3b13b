import Wire

/// The timers of RFC 3376 section 8, with the values derived from them.
public struct SnoopingTimers: Equatable, Sendable {
    /// Robustness variable (8.1).
    public var robustness: Int = 2
    /// Query interval (8.2).
    public var queryInterval: Duration = .seconds(125)
    /// Query response interval (8.3): the max response time of general queries.
    public var queryResponseInterval: Duration = .seconds(10)
    /// Last member query interval (8.8).
    public var lastMemberQueryInterval: Duration = .seconds(1)
    /// Last member query count (8.9); the robustness variable by default.
    public var lastMemberQueryCount: Int = 2

    public init() {}

    /// 8.4: robustness x query interval + query response interval.
    public var groupMembershipInterval: Duration { queryInterval * robustness + queryResponseInterval }
    /// 8.5: robustness x query interval + half a query response interval.
    public var otherQuerierPresentInterval: Duration { queryInterval * robustness + queryResponseInterval / 2 }
    /// 8.6 and 8.7: a quarter of the query interval, robustness times.
    public var startupQueryInterval: Duration { queryInterval / 4 }
    public var startupQueryCount: Int { robustness }
    /// 8.10: last member query interval x count.
    public var lastMemberQueryTime: Duration { lastMemberQueryInterval * lastMemberQueryCount }
}

/// What one port of the switch is: its VLANs, whether a multicast router is statically behind
/// it, whether a leave prunes it at once.
public struct PortConfiguration: Equatable, Sendable {
    public var name: String
    /// The VLAN of untagged frames, sent untagged; nil on a trunk that carries tagged frames only.
    public var pvid: VLANID?
    /// VLANs carried tagged.
    public var tagged: Set<VLANID>
    public var isStaticRouterPort: Bool
    public var fastLeave: Bool
    /// Queries and router announcements heard on this port are refused: a host behind it can
    /// neither win the querier election nor make itself a router port.
    public var queryGuard: Bool
    /// How frames reach the port: a packet socket on an existing interface, or a TAP device the
    /// switch creates (the engine does not care; the datapath does).
    public var attachment: Attachment

    public enum Attachment: String, Sendable {
        case packetSocket = "packet"
        case tap
        /// Through libpcap, for where AF_PACKET does not serve.
        case pcap
    }

    public init(name: String, pvid: VLANID? = .default, tagged: Set<VLANID> = [],
                isStaticRouterPort: Bool = false, fastLeave: Bool = false, queryGuard: Bool = false,
                attachment: Attachment = .packetSocket) {
        self.attachment = attachment
        self.name = name
        self.pvid = pvid
        self.tagged = tagged
        self.isStaticRouterPort = isStaticRouterPort
        self.fastLeave = fastLeave
        self.queryGuard = queryGuard
    }

    /// Every VLAN the port belongs to.
    public var vlans: Set<VLANID> {
        var all = tagged
        if let pvid { all.insert(pvid) }
        return all
    }

    /// Whether `other` is this port, its flags (router, fast-leave, query-guard) aside: the same
    /// name, VLANs and attachment, so that a change from one to the other can be made in place.
    public func isSamePort(flagsAside other: PortConfiguration) -> Bool {
        name == other.name && pvid == other.pvid && tagged == other.tagged && attachment == other.attachment
    }
}

/// A querier's settings in one protocol: whether it queries, its source address, its version.
public struct QuerierSettings<P: MembershipProtocol>: Equatable, Sendable {
    public var enabled: Bool = false
    /// The source of our queries. IGMP: 0.0.0.0 by default, which loses every election (RFC 4541
    /// 2.1.1). MLD: :: stands for the link-local address of the switch's MAC (`mldQuerier(in:)`).
    public var address: P.Address
    public var version: P.Version

    public init(enabled: Bool = false, address: P.Address = P.unspecified, version: P.Version = .sourceFiltering) {
        self.enabled = enabled
        self.address = address
        self.version = version
    }
}

public typealias QuerierConfiguration = QuerierSettings<IGMP>

/// Settings of one VLAN that differ from the switch's defaults; nil keeps the default.
/// `querier` and `snooping` speak for both protocols; the `igmp`/`mld` ones for one, over them.
public struct VLANSettings: Equatable, Sendable {
    public var querier: Bool?
    public var igmpQuerier: Bool?
    public var querierAddress: IPv4Address?
    public var igmpVersion: IGMPVersion?
    /// Off: the VLAN floods multicast like a plain bridge and tracks no membership (IGMP nor MLD).
    public var snooping: Bool?
    /// The MLD querier and MLD snooping of the VLAN, apart from IGMP's.
    public var mldQuerier: Bool?
    public var mldQuerierAddress: IPv6Address?
    public var mldVersion: MLDVersion?
    /// Off: IPv6 multicast floods in the VLAN while IGMP snooping goes on.
    public var mldSnooping: Bool?

    public init(querier: Bool? = nil, querierAddress: IPv4Address? = nil, igmpVersion: IGMPVersion? = nil, snooping: Bool? = nil,
                mldQuerier: Bool? = nil, mldQuerierAddress: IPv6Address? = nil, mldVersion: MLDVersion? = nil,
                mldSnooping: Bool? = nil, igmpQuerier: Bool? = nil) {
        self.querier = querier
        self.igmpQuerier = igmpQuerier
        self.querierAddress = querierAddress
        self.igmpVersion = igmpVersion
        self.snooping = snooping
        self.mldQuerier = mldQuerier
        self.mldQuerierAddress = mldQuerierAddress
        self.mldVersion = mldVersion
        self.mldSnooping = mldSnooping
    }
}

public struct SwitchConfiguration: Equatable, Sendable {
    public var ports: [PortConfiguration]
    public var timers = SnoopingTimers()
    /// The querier of every VLAN, unless `vlans` says otherwise.
    public var querier = QuerierConfiguration()
    public var vlans: [VLANID: VLANSettings] = [:]
    /// The MLD querier of every VLAN, unless `vlans` says otherwise; `--querier` turns on both.
    public var mldQuerier = QuerierSettings<MLD>()
    /// Source-specific multicast groups: INCLUDE mode only (RFC 4604 section 2.2.1).
    public var ssmRange = IPv4Prefix.sourceSpecificMulticast
    public var mldSSMRange = MLDSourceSpecificRange.standard
    /// Solicited-node groups (ff02::1:ff00:0/104) always flood, even those with members known;
    /// by default they flood only while none is known (README: "Neighbour discovery").
    public var floodSolicitedNode = false
    /// RFC 4541 2.1.2 (3): unregistered groups go to router ports only unless this is set.
    public var floodUnregistered = false
    public var fdbAging: Duration = .seconds(300)
    /// The MAC table refuses new stations past this many entries.
    public var macTableLimit = 65_536
    /// ... and past this many on one port, so that one host cannot fill it for all.
    public var macsPerPortLimit = 8_192
    /// Bounds on membership state (a hostile host reporting 100,000 groups is refused past them).
    public var membershipLimits = MembershipLimits()
    /// IGMP messages a port may send per second (a token bucket with a burst of as many):
    /// past it they are dropped and counted, so a flood from one host does not starve the others.
    public var igmpRatePerPort = 1_000
    /// The IEEE 802.1Q reserved addresses relayed, as the Linux bridge's group_fwd_mask: bit n
    /// for 01:80:C2:00:00:0n. Spanning tree (bit 0) is relayed whatever this says, as a bridge
    /// without STP does; PAUSE (1) and slow protocols (2) never are.
    public var relayedReservedAddresses = ReservedAddressMask()
    /// The source MAC of the frames the switch originates.
    public var switchMAC = MACAddress(0x02, 0x53, 0x4e, 0x4f, 0x4f, 0x50)

    public init(ports: [PortConfiguration]) { self.ports = ports }
}

extension SwitchConfiguration {
    /// The querier settings in force in `vlan`.
    public func querier(in vlan: VLANID) -> QuerierConfiguration {
        let settings = vlans[vlan] ?? VLANSettings()
        return QuerierConfiguration(enabled: settings.igmpQuerier ?? settings.querier ?? querier.enabled,
                                    address: settings.querierAddress ?? querier.address,
                                    version: settings.igmpVersion ?? querier.version)
    }

    /// The MLD querier settings in force in `vlan`; an address left at :: is the switch MAC's
    /// link-local address (RFC 4291 appendix A), which is what a host of that MAC would have.
    public func mldQuerier(in vlan: VLANID) -> QuerierSettings<MLD> {
        let settings = vlans[vlan] ?? VLANSettings()
        let global = mldQuerierInForce
        return QuerierSettings(enabled: settings.mldQuerier ?? settings.querier ?? global.enabled,
                               address: settings.mldQuerierAddress ?? global.address,
                               version: settings.mldVersion ?? global.version)
    }

    /// The switch-wide MLD querier settings with the default source resolved: `mldQuerier`
    /// with :: replaced by the switch MAC's link-local address.
    public var mldQuerierInForce: QuerierSettings<MLD> {
        var settings = mldQuerier
        if settings.address == .any { settings.address = .linkLocal(eui64From: switchMAC) }
        return settings
    }

    public func snoops(_ vlan: VLANID) -> Bool { vlans[vlan]?.snooping ?? true }

    /// Whether MLD is snooped in `vlan`: not where snooping is off altogether.
    public func snoopsMLD(_ vlan: VLANID) -> Bool { vlans[vlan]?.mldSnooping ?? snoops(vlan) }

    /// Every VLAN some port carries.
    public var allVLANs: Set<VLANID> { ports.reduce(into: []) { $0.formUnion($1.vlans) } }
}

/// How much membership state the switch keeps at most.
public struct MembershipLimits: Equatable, Sendable {
    public var groupsPerVLAN = 65_536
    public var groupsPerPort = 16_384
    public var sourcesPerGroup = 256

    public init() {}
}

/// A set of the 16 IEEE 802.1Q reserved addresses 01:80:C2:00:00:00 to 0F, by last nibble.
public struct ReservedAddressMask: Equatable, Sendable, BitwiseCopyable {
    public var bits: UInt16

    public init(bits: UInt16 = 0) { self.bits = bits }

    /// Spanning tree (01:80:C2:00:00:00): relayed by a bridge that does not run STP.
    public static let spanningTree = ReservedAddressMask(bits: 1 << 0)
    /// PAUSE (01) and slow protocols such as LACP (02) end at the link, always: the Linux bridge
    /// refuses them in group_fwd_mask (BR_GROUPFWD_RESTRICTED, which also holds STP's bit).
    public static let neverRelayed = ReservedAddressMask(bits: 1 << 1 | 1 << 2)

    public func contains(_ index: Int) -> Bool { (0..<16).contains(index) && bits & 1 << index != 0 }
    public mutating func insert(_ index: Int) { bits |= 1 << UInt16(index) }

    /// The mask the engine applies: the asked-for addresses, spanning tree, never PAUSE or LACP.
    public var inForce: ReservedAddressMask {
        ReservedAddressMask(bits: (bits | Self.spanningTree.bits) & ~Self.neverRelayed.bits)
    }
}
