/// The secret of one table's hash function, drawn at random when the table is made.
///
/// The tables' keys are chosen by the hosts (source MACs, groups): with a hash they could
/// compute, a host could send keys that all land in one slot and turn every lookup into a walk
/// of thousands of entries (scripts/colliding-macs.py makes such keys for the fixed
/// multiplicative hash of the first version). A folded multiply of the key under two random
/// words (as wyhash and aHash do) costs one 128-bit multiply, and its collisions cannot be
/// found without the seed; SipHash would cost several times as much per frame.
public struct HashSeed: Sendable {
    let k0: UInt64
    let k1: UInt64

    public init(_ k0: UInt64, _ k1: UInt64) {
        self.k0 = k0
        self.k1 = k1 | 1
    }

    /// Fresh from the kernel's random source (getrandom).
    public static func random() -> HashSeed {
        var generator = SystemRandomNumberGenerator()
        return HashSeed(generator.next(), generator.next())
    }

    /// 64 well-mixed bits of `word` (the high ones are what a table uses).
    @inline(__always)
    public func hash(_ word: UInt64) -> UInt64 {
        let product = (word ^ k0).multipliedFullWidth(by: k1)
        return product.high ^ product.low
    }

    /// Two words (an IPv6 address), mixed in turn so that no fold of them collides for every seed.
    @inline(__always)
    public func hash(_ high: UInt64, _ low: UInt64) -> UInt64 { hash(high ^ hash(low)) }
}

/// A key that hashes cheaply under a table's seed: the hot-path tables do not pay for SipHash.
public protocol FastHashKey: Equatable, BitwiseCopyable {
    func hash(with seed: HashSeed) -> UInt64
}

extension UInt64: FastHashKey {
    @inline(__always)
    public func hash(with seed: HashSeed) -> UInt64 { seed.hash(self) }
}

/// An open-addressing hash map for the forwarding path: linear probing in a power-of-two table
/// kept at most half full, keys and values in flat unsafe storage, so that a lookup is a
/// multiply, a shift and a few loads, with no allocation, reference counting or exclusivity check.
/// Deletion shifts the following entries back (no tombstones). Each map hashes with a seed of its
/// own (HashSeed), so that no host can choose keys that collide.
public final class OpenHashMap<Key: FastHashKey, Value: BitwiseCopyable> {
    private let seed: HashSeed
    private var capacity: Int
    private var shift: UInt64
    private var used: UnsafeMutablePointer<Bool>
    private var keys: UnsafeMutablePointer<Key>
    private var values: UnsafeMutablePointer<Value>
    public private(set) var count = 0

    public init(minimumCapacity: Int = 16, seed: HashSeed = .random()) {
        self.seed = seed
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
    private func home(_ key: Key) -> Int { Int(truncatingIfNeeded: key.hash(with: seed) >> shift) }

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

    /// The longest run of slots a lookup may walk (from a key's home slot to the end of its
    /// cluster): short whatever the keys, as long as the hash is one no host can predict.
    public var longestProbe: Int {
        guard count > 0 else { return 0 }
        var longest = 0
        for i in 0..<capacity where used[i] {
            let want = home(keys[i])
            longest = max(longest, (i - want + capacity) & (capacity - 1))
        }
        return longest + 1
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
