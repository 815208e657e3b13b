/// Why the switch refused a frame.
public enum DropReason: String, CaseIterable, Sendable {
    /// Too short for an Ethernet header, or an IPv4 header that fails its checks.
    case malformed
    /// An IGMP message that fails its checks (the error counters say which).
    case badIGMP = "bad_igmp"
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
    /// IGMP and PIM messages by kind (v2_report, query_v3, pim_hello, ...).
    public var received: [String: UInt64] = [:]
    /// Messages the switch originated (general_query, group_query).
    public var sent: [String: UInt64] = [:]
    /// Messages refused, by error (bad_checksum, truncated, ...).
    public var errors: [String: UInt64] = [:]
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
