import Wire

/// Learned stations per VLAN (IEEE 802.1Q filtering database): where each source MAC was last
/// seen, aged out after the aging time, bounded in size.
public struct MacTable {
    public struct Entry: Equatable, Sendable {
        public var port: PortID
        public var lastSeen: Instant
    }

    /// VLAN in the top 12 bits above the 48-bit address: one integer key.
    @usableFromInline
    static func key(_ vlan: VLANID, _ mac: MACAddress) -> UInt64 {
        UInt64(vlan.rawValue) << 48 | mac.rawValue
    }

    private var entries: [UInt64: Entry] = [:]
    public let limit: Int
    public var aging: Duration
    /// New stations refused because the table was full.
    public private(set) var refused: UInt64 = 0
    /// Stations seen on a port other than the one learned (RFC: a station move).
    public private(set) var moves: UInt64 = 0

    public init(limit: Int, aging: Duration) {
        self.limit = limit
        self.aging = aging
        entries.reserveCapacity(min(limit, 4096))
    }

    public var count: Int { entries.count }

    /// Learns or refreshes a station; returns false when the table is full and it is new.
    @discardableResult
    public mutating func learn(_ mac: MACAddress, vlan: VLANID, port: PortID, at now: Instant) -> Bool {
        let key = Self.key(vlan, mac)
        if let index = entries.index(forKey: key) {
            if entries.values[index].port != port { moves += 1 }
            entries.values[index] = Entry(port: port, lastSeen: now)
            return true
        }
        guard entries.count < limit else {
            refused += 1
            return false
        }
        entries[key] = Entry(port: port, lastSeen: now)
        return true
    }

    /// The port a station was learned on, if it has not aged out.
    public func lookup(_ mac: MACAddress, vlan: VLANID, at now: Instant) -> PortID? {
        guard let entry = entries[Self.key(vlan, mac)], now < entry.lastSeen + aging else { return nil }
        return entry.port
    }

    public mutating func removeAll(on port: PortID) {
        entries = entries.filter { $0.value.port != port }
    }

    public mutating func removeAll() { entries.removeAll(keepingCapacity: true) }

    /// Drops every entry idle for the aging time.
    public mutating func expire(at now: Instant) {
        let aging = self.aging
        entries = entries.filter { now < $0.value.lastSeen + aging }
    }

    public func allEntries() -> [(vlan: VLANID, mac: MACAddress, entry: Entry)] {
        entries.map { key, entry in
            (VLANID(Int(key >> 48))!, MACAddress(rawValue: key), entry)
        }.sorted { ($0.vlan, $0.mac) < ($1.vlan, $1.mac) }
    }
}
