// Network-order integer access on raw buffers. Callers check lengths first (the checked
// constructors of the views do it once per header), so these never look past the end.
extension UnsafeRawBufferPointer {
    @inline(__always)
    public func readUInt16(at offset: Int) -> UInt16 {
        UInt16(self[offset]) << 8 | UInt16(self[offset + 1])
    }

    @inline(__always)
    public func readUInt32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) << 24 | UInt32(self[offset + 1]) << 16
            | UInt32(self[offset + 2]) << 8 | UInt32(self[offset + 3])
    }
}

extension UnsafeMutableRawBufferPointer {
    @inline(__always)
    public func writeUInt16(_ value: UInt16, at offset: Int) {
        self[offset] = UInt8(value >> 8)
        self[offset + 1] = UInt8(truncatingIfNeeded: value)
    }

    @inline(__always)
    public func writeUInt32(_ value: UInt32, at offset: Int) {
        self[offset] = UInt8(value >> 24)
        self[offset + 1] = UInt8(truncatingIfNeeded: value >> 16)
        self[offset + 2] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 3] = UInt8(truncatingIfNeeded: value)
    }
}

/// The Internet checksum of RFC 1071: the ones' complement of the ones' complement sum.
public enum InternetChecksum {
    public static func compute(_ bytes: UnsafeRawBufferPointer) -> UInt16 { finish(accumulate(bytes)) }

    /// `partial` plus the sum of `bytes` as big-endian 16-bit words (an odd last byte padded
    /// with zero), not yet folded: sums over several pieces (a pseudo-header, then a segment) add up.
    public static func accumulate(_ bytes: UnsafeRawBufferPointer, into partial: UInt64 = 0) -> UInt64 {
        var sum = partial
        var i = 0
        while i + 1 < bytes.count {
            sum &+= UInt64(bytes[i]) << 8 | UInt64(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum &+= UInt64(bytes[i]) << 8 }
        return sum
    }

    /// The checksum of an accumulated sum: folded to 16 bits, complemented.
    public static func finish(_ sum: UInt64) -> UInt16 {
        var folded = sum
        while folded >> 16 != 0 { folded = (folded & 0xffff) &+ (folded >> 16) }
        return ~UInt16(folded)
    }

    /// A buffer whose checksum field is filled sums to zero.
    public static func verify(_ bytes: UnsafeRawBufferPointer) -> Bool { compute(bytes) == 0 }
}

/// What is wrong with a frame that failed its checks. Few and named, as counters show them.
public enum WireError: Error, Equatable, Sendable {
    case truncated
    case badLength
    case badChecksum
    case badVersion
    case unknownType

    /// The counter name under which status reports it.
    public var counterName: String {
        switch self {
        case .truncated: "truncated"
        case .badLength: "bad_length"
        case .badChecksum: "bad_checksum"
        case .badVersion: "bad_version"
        case .unknownType: "unknown_type"
        }
    }
}

extension UnsafeMutableRawBufferPointer {
    @inline(__always)
    public func readUInt16(at offset: Int) -> UInt16 { UnsafeRawBufferPointer(self).readUInt16(at: offset) }

    @inline(__always)
    public func readUInt32(at offset: Int) -> UInt32 { UnsafeRawBufferPointer(self).readUInt32(at: offset) }
}
