/// A 48-bit Ethernet address, held in the low bits of a UInt64 so that it hashes and
/// compares as one integer.
public struct MACAddress: Hashable, Comparable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue & 0xffff_ffff_ffff }

    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        self.rawValue = UInt64(b0) << 40 | UInt64(b1) << 32 | UInt64(b2) << 24
            | UInt64(b3) << 16 | UInt64(b4) << 8 | UInt64(b5)
    }

    /// Reads six bytes at `offset`; the caller has checked the length.
    public init(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        var value: UInt64 = 0
        for i in 0..<6 { value = value << 8 | UInt64(bytes[offset + i]) }
        self.rawValue = value
    }

    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var value: UInt64 = 0
        for part in parts {
            guard part.count == 2, let byte = UInt8(part, radix: 16) else { return nil }
            value = value << 8 | UInt64(byte)
        }
        self.rawValue = value
    }

    public static let broadcast = MACAddress(rawValue: 0xffff_ffff_ffff)
    public static let zero = MACAddress(rawValue: 0)

    /// IEEE 802.1Q Table 8-1: 01:80:C2:00:00:00 to 0F, the addresses a bridge does not relay
    /// (spanning tree, PAUSE, slow protocols, 802.1X, LLDP, ...); the last nibble says which.
    public static let bridgeReservedBlock = MACAddress(rawValue: 0x0180_c200_0000)

    /// Whether this is one of the 16 reserved addresses: one compare of the first 44 bits.
    @inline(__always)
    public var isBridgeReserved: Bool { rawValue & ~0xf == Self.bridgeReservedBlock.rawValue }

    /// The group bit (I/G) of the first octet.
    public var isMulticast: Bool { rawValue & 0x0100_0000_0000 != 0 }
    public var isBroadcast: Bool { rawValue == MACAddress.broadcast.rawValue }

    /// RFC 1112 section 6.4: 01:00:5e followed by the low 23 bits of the group.
    public static func ipv4Multicast(_ group: IPv4Address) -> MACAddress {
        MACAddress(rawValue: 0x0100_5e00_0000 | UInt64(group.rawValue & 0x7f_ffff))
    }

    /// RFC 2464 section 7: 33:33 followed by the last 32 bits of the group.
    public static func ipv6Multicast(_ group: IPv6Address) -> MACAddress {
        MACAddress(rawValue: 0x3333_0000_0000 | group.low & 0xffff_ffff)
    }

    public func write(to bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        for i in 0..<6 { bytes[offset + i] = UInt8(truncatingIfNeeded: rawValue >> UInt64(40 - 8 * i)) }
    }

    public var octets: [UInt8] { (0..<6).map { UInt8(truncatingIfNeeded: rawValue >> UInt64(40 - 8 * $0)) } }

    public var description: String {
        octets.map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
    }

    public static func < (a: MACAddress, b: MACAddress) -> Bool { a.rawValue < b.rawValue }
}

/// An IPv4 address in host order.
public struct IPv4Address: Hashable, Comparable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        self.rawValue = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    public init(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        self.rawValue = bytes.readUInt32(at: offset)
    }

    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), let octet = UInt8(part) else { return nil }
            value = value << 8 | UInt32(octet)
        }
        self.rawValue = value
    }

    public static let any = IPv4Address(rawValue: 0)
    /// 224.0.0.1, the destination of general queries.
    public static let allSystems = IPv4Address(224, 0, 0, 1)
    /// 224.0.0.2, the destination of IGMPv2 leaves.
    public static let allRouters = IPv4Address(224, 0, 0, 2)
    /// 224.0.0.13, the destination of PIM hellos.
    public static let allPIMRouters = IPv4Address(224, 0, 0, 13)
    /// 224.0.0.106, the destination of multicast router discovery advertisements (RFC 4286).
    public static let allSnoopers = IPv4Address(224, 0, 0, 106)
    /// 224.0.0.22, the destination of IGMPv3 reports.
    public static let igmpv3Routers = IPv4Address(224, 0, 0, 22)

    /// 224.0.0.0/4.
    public var isMulticast: Bool { rawValue >> 28 == 0xe }
    /// 224.0.0.0/24, the local network control block: never pruned (RFC 4541 section 2.1.2).
    public var isLocalNetworkControl: Bool { rawValue >> 8 == 0xe0_0000 }

    public func write(to bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.writeUInt32(rawValue, at: offset)
    }

    public var description: String {
        "\(rawValue >> 24).\(rawValue >> 16 & 0xff).\(rawValue >> 8 & 0xff).\(rawValue & 0xff)"
    }

    public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.rawValue < b.rawValue }
}

/// An IEEE 802.1Q VLAN identifier, 1 to 4094 (0 means "priority tag only", 4095 is reserved).
public struct VLANID: Hashable, Comparable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public let rawValue: UInt16

    public init?(_ value: Int) {
        guard (1...4094).contains(value) else { return nil }
        self.rawValue = UInt16(value)
    }

    public static let `default` = VLANID(1)!

    public var description: String { String(rawValue) }
    public static func < (a: VLANID, b: VLANID) -> Bool { a.rawValue < b.rawValue }
}

/// The tag control information of an 802.1Q header: priority (PCP), drop eligible (DEI), VLAN ID.
public struct VLANTag: Hashable, Sendable {
    public let tci: UInt16

    public init(tci: UInt16) { self.tci = tci }
    public init(vlan: VLANID, priority: UInt8, dropEligible: Bool = false) {
        self.tci = UInt16(priority & 7) << 13 | (dropEligible ? 0x1000 : 0) | vlan.rawValue
    }

    /// The 12-bit identifier as carried, 0 for a priority-only tag.
    public var vid: UInt16 { tci & 0x0fff }
    public var priority: UInt8 { UInt8(tci >> 13) }
    /// DEI (IEEE 802.1Q 6.9.3): the frame may be dropped first under congestion; a bridge keeps it.
    public var dropEligible: Bool { tci & 0x1000 != 0 }
}

/// An IPv4 prefix, such as the source-specific multicast range 232.0.0.0/8.
public struct IPv4Prefix: Hashable, Sendable, CustomStringConvertible {
    public let address: IPv4Address
    public let length: Int

    public init?(address: IPv4Address, length: Int) {
        guard (0...32).contains(length) else { return nil }
        self.length = length
        self.address = IPv4Address(rawValue: address.rawValue & Self.mask(length))
    }

    /// "A.B.C.D/N".
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPv4Address(String(parts[0])), let length = Int(parts[1]) else { return nil }
        self.init(address: address, length: length)
    }

    private static func mask(_ length: Int) -> UInt32 { length == 0 ? 0 : ~UInt32(0) << UInt32(32 - length) }

    public func contains(_ other: IPv4Address) -> Bool {
        other.rawValue & Self.mask(length) == address.rawValue
    }

    /// RFC 4607: 232.0.0.0/8.
    public static let sourceSpecificMulticast = IPv4Prefix(address: IPv4Address(232, 0, 0, 0), length: 8)!

    public var description: String { "\(address)/\(length)" }
}
