import Wire

/// Learned stations per VLAN (IEEE 802.1Q filtering database): where each source MAC was last
/// seen, aged out after the aging time, bounded in size overall and per port.
public final class MacTable {
    public struct Entry: Equatable, Sendable, BitwiseCopyable {
        public var port: PortID
        public var lastSeen: Instant
    }

    /// VLAN in the top 12 bits above the 48-bit address: one integer key.
    @inline(__always)
    static func key(_ vlan: VLANID, _ mac: MACAddress) -> UInt64 {
        UInt64(vlan.rawValue) << 48 | mac.rawValue
    }

    private let entries: OpenHashMap<UInt64, Entry>
    /// Stations learned on each port, for the per-port limit.
    private var perPort: [Int]
    public let limit: Int
    public let perPortLimit: Int
    public let aging: Duration
    /// Stations seen on a port other than the one learned (a station move).
    public private(set) var moves: UInt64 = 0
    /// Changes each time an entry moves or goes: what was decided from the table may no longer
    /// hold (the kernel fast path's flows are checked again).
    public private(set) var generation: UInt64 = 0

    public init(limit: Int, perPortLimit: Int = .max, portCount: Int = PortSet.capacity, aging: Duration) {
        self.limit = limit
        self.perPortLimit = perPortLimit
        self.perPort = Array(repeating: 0, count: portCount)
        self.aging = aging
        entries = OpenHashMap(minimumCapacity: min(limit, 4096))
    }

    public var count: Int { entries.count }

    /// The longest walk a lookup may take (see OpenHashMap.longestProbe).
    public var longestProbe: Int { entries.longestProbe }

    /// Learns or refreshes a station; returns false when it is new and a limit refuses it.
    @inline(__always)
    @discardableResult
    public func learn(_ mac: MACAddress, vlan: VLANID, port: PortID, at now: Instant) -> Bool {
        let key = Self.key(vlan, mac)
        if let slot = entries.slot(of: key) {
            let old = entries.value(at: slot).port
            if old != port {
                moves += 1
                generation &+= 1
                perPort[old.index] -= 1
                perPort[port.index] += 1
            }
            entries.setValue(Entry(port: port, lastSeen: now), at: slot)
            return true
        }
        guard entries.count < limit, perPort[port.index] < perPortLimit else { return false }
        entries.set(Entry(port: port, lastSeen: now), for: key)
        perPort[port.index] += 1
        return true
    }

    public func count(on port: PortID) -> Int { perPort[port.index] }

    /// Notes that a station learned on `port` was seen at `seen` by someone else (the kernel
    /// fast path forwarded its frames). An entry on another port, or seen later, stays.
    public func refresh(_ mac: MACAddress, vlan: VLANID, port: PortID, seen: Instant) {
        guard let slot = entries.slot(of: Self.key(vlan, mac)) else { return }
        let entry = entries.value(at: slot)
        guard entry.port == port, entry.lastSeen < seen else { return }
        entries.setValue(Entry(port: port, lastSeen: seen), at: slot)
    }

    /// The port a station was learned on, if it has not aged out.
    @inline(__always)
    public func lookup(_ mac: MACAddress, vlan: VLANID, at now: Instant) -> PortID? {
        guard let entry = entries[Self.key(vlan, mac)], now < entry.lastSeen + aging else { return nil }
        return entry.port
    }

    public func removeAll(on port: PortID) {
        generation &+= 1
        entries.removeAll { $1.port == port }
        perPort[port.index] = 0
    }

    public func removeAll() {
        generation &+= 1
        entries.removeAll()
        for i in perPort.indices { perPort[i] = 0 }
    }

    /// Drops every entry idle for the aging time.
    public func expire(at now: Instant) {
        let aging = self.aging
        let before = entries.count
        entries.removeAll { now >= $1.lastSeen + aging }
        if entries.count != before { generation &+= 1 }
        for i in perPort.indices { perPort[i] = 0 }
        for (_, entry) in entries.entries() { perPort[entry.port.index] += 1 }
    }

    public func allEntries() -> [(vlan: VLANID, mac: MACAddress, entry: Entry)] {
        unorderedEntries().sorted { ($0.vlan, $0.mac) < ($1.vlan, $1.mac) }
    }

    /// Every entry, in no order: a copy to read without the table.
    public func unorderedEntries() -> [(vlan: VLANID, mac: MACAddress, entry: Entry)] {
        entries.entries().map { key, entry in
            (VLANID(Int(key >> 48))!, MACAddress(rawValue: key), entry)
        }
    }
}
