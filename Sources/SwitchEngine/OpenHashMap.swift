/// A key that hashes cheaply to 64 bits: the hot-path tables do not pay for SipHash.
public protocol FastHashKey: Equatable, BitwiseCopyable {
    var fastHash: UInt64 { get }
}

extension UInt64: FastHashKey {
    /// Fibonacci hashing: the high bits of the product are well mixed.
    @inline(__always)
    public var fastHash: UInt64 { self &* 0x9E37_79B9_7F4A_7C15 }
}

/// An open-addressing hash map for the forwarding path: linear probing in a power-of-two table
/// kept at most half full, keys and values in flat unsafe storage, so that a lookup is a
/// multiply, a shift and a few loads, with no allocation, reference counting or exclusivity check.
/// Deletion shifts the following entries back (no tombstones).
public final class OpenHashMap<Key: FastHashKey, Value: BitwiseCopyable> {
    private var capacity: Int
    private var shift: UInt64
    private var used: UnsafeMutablePointer<Bool>
    private var keys: UnsafeMutablePointer<Key>
    private var values: UnsafeMutablePointer<Value>
    public private(set) var count = 0

    public init(minimumCapacity: Int = 16) {
        var capacity = 16
        while capacity < minimumCapacity * 2 { capacity <<= 1 }
        self.capacity = capacity
        self.shift = UInt64(64 - capacity.trailingZeroBitCount)
        used = .allocate(capacity: capacity)
        used.initialize(repeating: false, count: capacity)
        keys = .allocate(capacity: capacity)
        values = .allocate(capacity: capacity)
    }

    deinit {
        used.deallocate()
        keys.deallocate()
        values.deallocate()
    }

    @inline(__always)
    private func home(_ key: Key) -> Int { Int(truncatingIfNeeded: key.fastHash >> shift) }

    /// The slot holding `key`, if any.
    @inline(__always)
    public func slot(of key: Key) -> Int? {
        var i = home(key)
        while used[i] {
            if keys[i] == key { return i }
            i = (i + 1) & (capacity - 1)
        }
        return nil
    }

    @inline(__always)
    public func value(at slot: Int) -> Value { values[slot] }

    @inline(__always)
    public func setValue(_ value: Value, at slot: Int) { values[slot] = value }

    @inline(__always)
    public subscript(key: Key) -> Value? {
        guard let i = slot(of: key) else { return nil }
        return values[i]
    }

    /// Inserts or replaces.
    public func set(_ value: Value, for key: Key) {
        if let i = slot(of: key) {
            values[i] = value
            return
        }
        if (count + 1) * 2 > capacity { grow() }
        var i = home(key)
        while used[i] { i = (i + 1) & (capacity - 1) }
        used[i] = true
        keys[i] = key
        values[i] = value
        count += 1
    }

    public func remove(_ key: Key) {
        guard var hole = slot(of: key) else { return }
        used[hole] = false
        count -= 1
        // Backward shift: move up every following entry that may sit in the hole.
        var i = (hole + 1) & (capacity - 1)
        while used[i] {
            let want = home(keys[i])
            // The entry at i may move to `hole` if its home is not in (hole, i] cyclically.
            let movable = hole <= i ? (want <= hole || want > i) : (want <= hole && want > i)
            if movable {
                keys[hole] = keys[i]
                values[hole] = values[i]
                used[hole] = true
                used[i] = false
                hole = i
            }
            i = (i + 1) & (capacity - 1)
        }
    }

    public func removeAll(where shouldRemove: (Key, Value) -> Bool) {
        let doomed = entries().filter { shouldRemove($0.key, $0.value) }
        for entry in doomed { remove(entry.key) }
    }

    public func removeAll() {
        used.update(repeating: false, count: capacity)
        count = 0
    }

    public func entries() -> [(key: Key, value: Value)] {
        var out: [(key: Key, value: Value)] = []
        out.reserveCapacity(count)
        for i in 0..<capacity where used[i] { out.append((keys[i], values[i])) }
        return out
    }

    private func grow() {
        let old = entries()
        used.deallocate()
        keys.deallocate()
        values.deallocate()
        capacity <<= 1
        shift = UInt64(64 - capacity.trailingZeroBitCount)
        used = .allocate(capacity: capacity)
        used.initialize(repeating: false, count: capacity)
        keys = .allocate(capacity: capacity)
        values = .allocate(capacity: capacity)
        count = 0
        for entry in old { set(entry.value, for: entry.key) }
    }
}
