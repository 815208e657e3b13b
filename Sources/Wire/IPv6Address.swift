/// An IPv6 address (RFC 4291), held as two big-endian halves so that it hashes and compares
/// as two integers, in the order of its bytes.
public struct IPv6Address: Hashable, Comparable, Sendable, BitwiseCopyable, CustomStringConvertible {
    /// The first 64 bits (prefix) and the last 64 (interface identifier, or group ID).
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The eight 16-bit pieces of the text form, `IPv6Address(0xff02, 0, 0, 0, 0, 0, 0, 1)`.
    public init(_ w0: UInt16, _ w1: UInt16, _ w2: UInt16, _ w3: UInt16,
                _ w4: UInt16, _ w5: UInt16, _ w6: UInt16, _ w7: UInt16) {
        self.high = UInt64(w0) << 48 | UInt64(w1) << 32 | UInt64(w2) << 16 | UInt64(w3)
        self.low = UInt64(w4) << 48 | UInt64(w5) << 32 | UInt64(w6) << 16 | UInt64(w7)
    }

    /// Reads sixteen bytes at `offset`; the caller has checked the length.
    public init(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        self.high = UInt64(bytes.readUInt32(at: offset)) << 32 | UInt64(bytes.readUInt32(at: offset + 4))
        self.low = UInt64(bytes.readUInt32(at: offset + 8)) << 32 | UInt64(bytes.readUInt32(at: offset + 12))
    }

    /// The text forms of RFC 4291 section 2.2: eight groups of up to four hex digits, one `::`
    /// for a run of zero groups, an IPv4 address in the last 32 bits. No zone (`%eth0`).
    public init?(_ text: String) {
        guard let words = Self.parseWords(text) else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (i, word) in words.enumerated() {
            if i < 4 { high = high << 16 | UInt64(word) } else { low = low << 16 | UInt64(word) }
        }
        self.high = high
        self.low = low
    }

    /// The eight words of a text address, or nil.
    private static func parseWords(_ text: String) -> [UInt16]? {
        guard !text.isEmpty, text.utf8.count <= 45 else { return nil }
        // The one "::", if any: the text before it and after it are each plain groups.
        let chars = Array(text)
        var gap: Int?
        for i in 0..<(chars.count - 1) where chars[i] == ":" && chars[i + 1] == ":" {
            guard gap == nil else { return nil }
            gap = i
        }
        func pieces(_ part: ArraySlice<Character>, last: Bool) -> [UInt16]? {
            guard !part.isEmpty else { return [] }
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            var out: [UInt16] = []
            for (i, field) in fields.enumerated() {
                if last, i == fields.count - 1, field.contains(".") {
                    guard let v4 = IPv4Address(String(field)) else { return nil }
                    out += [UInt16(v4.rawValue >> 16), UInt16(truncatingIfNeeded: v4.rawValue)]
                } else {
                    guard (1...4).contains(field.count), field.allSatisfy({ $0.isASCII && $0.isHexDigit }),
                          let word = UInt16(String(field), radix: 16) else { return nil }
                    out.append(word)
                }
            }
            return out
        }
        if let gap {
            guard let head = pieces(chars[..<gap], last: false), let tail = pieces(chars[(gap + 2)...], last: true),
                  head.count + tail.count <= 7 else { return nil }
            return head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard let all = pieces(chars[...], last: true), all.count == 8 else { return nil }
        return all
    }

    /// The eight 16-bit pieces, first to last.
    public var words: [UInt16] {
        (0..<8).map { i in UInt16(truncatingIfNeeded: (i < 4 ? high : low) >> UInt64(48 - 16 * (i % 4))) }
    }

    /// `::`, the unspecified address: the source of reports from a host without an address yet
    /// (RFC 3590), and the group of a general query.
    public static let any = IPv6Address(high: 0, low: 0)
    /// ff02::1, all nodes: general queries.
    public static let allNodes = IPv6Address(0xff02, 0, 0, 0, 0, 0, 0, 1)
    /// ff02::2, all routers: MLDv1 Done.
    public static let allRouters = IPv6Address(0xff02, 0, 0, 0, 0, 0, 0, 2)
    /// ff02::d, all PIM routers: PIM hellos.
    public static let allPIMRouters = IPv6Address(0xff02, 0, 0, 0, 0, 0, 0, 0xd)
    /// ff02::16, all MLDv2-capable routers: MLDv2 reports (RFC 9777 5.2.14).
    public static let mldv2Routers = IPv6Address(0xff02, 0, 0, 0, 0, 0, 0, 0x16)
    /// ff02::6a, all snoopers: multicast router advertisements (RFC 4286 section 6).
    public static let allSnoopers = IPv6Address(0xff02, 0, 0, 0, 0, 0, 0, 0x6a)
    /// ff02::1:ff00:0/104, the solicited-node groups of neighbour discovery (RFC 4291 2.7.1).
    public static let solicitedNodePrefix = IPv6Address(0xff02, 0, 0, 0, 0, 1, 0xff00, 0)

    /// ff00::/8.
    public var isMulticast: Bool { high >> 56 == 0xff }
    public var isUnspecified: Bool { high == 0 && low == 0 }
    /// fe80::/10.
    public var isLinkLocalUnicast: Bool { high >> 54 == 0xfe80 >> 6 }
    /// In ff02::1:ff00:0/104: the group a host joins for each of its addresses.
    public var isSolicitedNode: Bool { high == Self.solicitedNodePrefix.high && low >> 24 == Self.solicitedNodePrefix.low >> 24 }

    /// The scope of a multicast address (RFC 4291 section 2.7: the low nibble of the second
    /// byte), nil for a unicast address.
    public var multicastScope: IPv6MulticastScope? {
        isMulticast ? IPv6MulticastScope(rawValue: UInt8(truncatingIfNeeded: high >> 48) & 0x0f) : nil
    }

    /// The solicited-node group of a unicast address: the prefix and its last 24 bits.
    public var solicitedNodeGroup: IPv6Address {
        IPv6Address(high: Self.solicitedNodePrefix.high, low: Self.solicitedNodePrefix.low | low & 0xff_ffff)
    }

    /// The link-local address of a MAC's modified EUI-64 (RFC 4291 appendix A, RFC 2464 section 5):
    /// fe80:: and the MAC with ff:fe in its middle and the universal/local bit inverted.
    public static func linkLocal(eui64From mac: MACAddress) -> IPv6Address {
        let upper = (mac.rawValue >> 24) ^ 0x02_0000
        let lower = mac.rawValue & 0xff_ffff
        return IPv6Address(high: 0xfe80 << 48, low: upper << 40 | 0xff_fe00_0000 | lower)
    }

    public func write(to bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.writeUInt32(UInt32(truncatingIfNeeded: high >> 32), at: offset)
        bytes.writeUInt32(UInt32(truncatingIfNeeded: high), at: offset + 4)
        bytes.writeUInt32(UInt32(truncatingIfNeeded: low >> 32), at: offset + 8)
        bytes.writeUInt32(UInt32(truncatingIfNeeded: low), at: offset + 12)
    }

    public var octets: [UInt8] {
        (0..<16).map { i in UInt8(truncatingIfNeeded: (i < 8 ? high : low) >> UInt64(56 - 8 * (i % 8))) }
    }

    /// RFC 5952 section 4: lower-case hex without leading zeros, the longest run of two or more
    /// zero groups (the first of equals) as `::`; section 5: an IPv4-mapped address ends dotted.
    public var description: String {
        let words = self.words
        if high == 0, low >> 32 == 0xffff {
            return "::ffff:" + IPv4Address(rawValue: UInt32(truncatingIfNeeded: low)).description
        }
        var bestStart = -1, bestLength = 1
        var i = 0
        while i < 8 {
            guard words[i] == 0 else { i += 1; continue }
            var j = i
            while j < 8, words[j] == 0 { j += 1 }
            if j - i > bestLength { bestStart = i; bestLength = j - i }
            i = j
        }
        let hex = { (range: Range<Int>) in range.map { String(words[$0], radix: 16) }.joined(separator: ":") }
        guard bestStart >= 0 else { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }

    public static func < (a: IPv6Address, b: IPv6Address) -> Bool { (a.high, a.low) < (b.high, b.low) }
}

/// The scope field of an IPv6 multicast address (RFC 4291 section 2.7, RFC 7346): ordered,
/// wider scopes compare greater.
public struct IPv6MulticastScope: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue & 0x0f }

    public static let reserved = IPv6MulticastScope(rawValue: 0x0)
    public static let interfaceLocal = IPv6MulticastScope(rawValue: 0x1)
    public static let linkLocal = IPv6MulticastScope(rawValue: 0x2)
    public static let realmLocal = IPv6MulticastScope(rawValue: 0x3)
    public static let adminLocal = IPv6MulticastScope(rawValue: 0x4)
    public static let siteLocal = IPv6MulticastScope(rawValue: 0x5)
    public static let organizationLocal = IPv6MulticastScope(rawValue: 0x8)
    public static let global = IPv6MulticastScope(rawValue: 0xe)

    public var description: String {
        switch self {
        case .reserved: "reserved"
        case .interfaceLocal: "interface-local"
        case .linkLocal: "link-local"
        case .realmLocal: "realm-local"
        case .adminLocal: "admin-local"
        case .siteLocal: "site-local"
        case .organizationLocal: "organization-local"
        case .global: "global"
        default: "scope \(rawValue)"
        }
    }

    public static func < (a: IPv6MulticastScope, b: IPv6MulticastScope) -> Bool { a.rawValue < b.rawValue }
}

/// An IPv6 prefix, "ADDRESS/N" (RFC 4291 section 2.3).
public struct IPv6Prefix: Hashable, Sendable, CustomStringConvertible {
    public let address: IPv6Address
    public let length: Int

    public init?(address: IPv6Address, length: Int) {
        guard (0...128).contains(length) else { return nil }
        self.length = length
        let (highMask, lowMask) = Self.masks(length)
        self.address = IPv6Address(high: address.high & highMask, low: address.low & lowMask)
    }

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPv6Address(String(parts[0])), let length = Int(parts[1]) else { return nil }
        self.init(address: address, length: length)
    }

    private static func masks(_ length: Int) -> (UInt64, UInt64) {
        let high: UInt64 = length == 0 ? 0 : length >= 64 ? ~0 : ~UInt64(0) << UInt64(64 - length)
        let low: UInt64 = length <= 64 ? 0 : length == 128 ? ~0 : ~UInt64(0) << UInt64(128 - length)
        return (high, low)
    }

    public func contains(_ other: IPv6Address) -> Bool {
        let (highMask, lowMask) = Self.masks(length)
        return other.high & highMask == address.high && other.low & lowMask == address.low
    }

    public var description: String { "\(address)/\(length)" }
}

extension IPv6Address {
    /// ff3x::/32 (RFC 4607 section 1, RFC 3306): the source-specific groups of every scope x.
    public var isSourceSpecific: Bool { high >> 32 & 0xfff0_ffff == 0xff30_0000 }

    /// ff00::/15: the reserved and interface-local scopes, never seen on a link as a group of
    /// its own (RFC 4291 2.7): flooded, not snooped.
    public var isBelowLinkScope: Bool { high >> 49 == 0xff00 >> 1 }
}
