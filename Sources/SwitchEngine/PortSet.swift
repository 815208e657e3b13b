/// A switch port, by its index in the configuration (0 ..< PortSet.capacity).
public struct PortID: Hashable, Comparable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public let index: Int

    public init(_ index: Int) {
        precondition(index >= 0 && index < PortSet.capacity, "port index out of range")
        self.index = index
    }

    public static func < (a: PortID, b: PortID) -> Bool { a.index < b.index }
    public var description: String { "port\(index)" }
}

/// A set of ports as a fixed bitmap: forwarding decisions are unions and differences of
/// these, with no allocation.
public struct PortSet: Equatable, Hashable, Sendable, BitwiseCopyable, Sequence {
    public static let capacity = 256
    private var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0

    public init() {}
    public init<S: Sequence>(_ ports: S) where S.Element == PortID {
        for port in ports { insert(port) }
    }

    public static let empty = PortSet()

    @inline(__always)
    private func word(_ i: Int) -> UInt64 {
        switch i { case 0: w0; case 1: w1; case 2: w2; default: w3 }
    }

    @inline(__always)
    private mutating func setWord(_ i: Int, _ value: UInt64) {
        switch i { case 0: w0 = value; case 1: w1 = value; case 2: w2 = value; default: w3 = value }
    }

    public func contains(_ port: PortID) -> Bool {
        word(port.index >> 6) & (1 << UInt64(port.index & 63)) != 0
    }

    public mutating func insert(_ port: PortID) {
        setWord(port.index >> 6, word(port.index >> 6) | 1 << UInt64(port.index & 63))
    }

    public mutating func remove(_ port: PortID) {
        setWord(port.index >> 6, word(port.index >> 6) & ~(1 << UInt64(port.index & 63)))
    }

    public var isEmpty: Bool { w0 | w1 | w2 | w3 == 0 }
    public var count: Int { w0.nonzeroBitCount + w1.nonzeroBitCount + w2.nonzeroBitCount + w3.nonzeroBitCount }

    public func union(_ other: PortSet) -> PortSet {
        var out = self
        out.w0 |= other.w0; out.w1 |= other.w1; out.w2 |= other.w2; out.w3 |= other.w3
        return out
    }

    public func intersection(_ other: PortSet) -> PortSet {
        var out = self
        out.w0 &= other.w0; out.w1 &= other.w1; out.w2 &= other.w2; out.w3 &= other.w3
        return out
    }

    public func subtracting(_ other: PortSet) -> PortSet {
        var out = self
        out.w0 &= ~other.w0; out.w1 &= ~other.w1; out.w2 &= ~other.w2; out.w3 &= ~other.w3
        return out
    }

    public func removing(_ port: PortID) -> PortSet {
        var out = self
        out.remove(port)
        return out
    }

    public struct Iterator: IteratorProtocol {
        var set: PortSet
        var wordIndex = 0
        var current: UInt64

        init(_ set: PortSet) {
            self.set = set
            self.current = set.w0
        }

        public mutating func next() -> PortID? {
            while current == 0 {
                wordIndex += 1
                if wordIndex >= 4 { return nil }
                current = set.word(wordIndex)
            }
            let bit = current.trailingZeroBitCount
            current &= current - 1
            return PortID(wordIndex << 6 | bit)
        }
    }

    public func makeIterator() -> Iterator { Iterator(self) }
}
