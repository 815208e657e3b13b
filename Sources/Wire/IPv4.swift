/// An IPv4 header (RFC 791 section 3.1), read in place.
///
///     0       4       8               16      19              31
///     |Version|  IHL  |Type of Service|          Total Length         |
///     |         Identification        |Flags|     Fragment Offset     |
///     | Time to Live  |   Protocol    |        Header Checksum        |
///     |                       Source Address                          |
///     |                    Destination Address                        |
///     |                    Options (router alert)                     |
public struct IPv4HeaderView {
    enum Field {
        static let versionAndLength = 0
        static let typeOfService = 1
        static let totalLength = 2
        static let identification = 4
        static let flagsAndFragment = 6
        static let timeToLive = 8
        static let `protocol` = 9
        static let checksum = 10
        static let source = 12
        static let destination = 16
        static let options = 20
    }
    public static let minimumLength = 20

    public enum ProtocolNumber {
        public static let igmp: UInt8 = 2
        public static let tcp: UInt8 = 6
        public static let udp: UInt8 = 17
        public static let pim: UInt8 = 103
    }

    public let bytes: UnsafeRawBufferPointer

    /// Checks the version, both lengths against the buffer and the header checksum, so that no
    /// accessor can read past the end. Ethernet padding after the datagram is allowed.
    public init(checking bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.minimumLength else { throw .truncated }
        guard bytes[Field.versionAndLength] >> 4 == 4 else { throw .badVersion }
        let headerLength = Int(bytes[Field.versionAndLength] & 0x0f) * 4
        let totalLength = Int(bytes.readUInt16(at: Field.totalLength))
        guard headerLength >= Self.minimumLength, totalLength >= headerLength else { throw .badLength }
        guard bytes.count >= totalLength else { throw .truncated }
        let header = UnsafeRawBufferPointer(rebasing: bytes[0..<headerLength])
        guard InternetChecksum.verify(header) else { throw .badChecksum }
        self.bytes = bytes
    }

    public var headerLength: Int { Int(bytes[Field.versionAndLength] & 0x0f) * 4 }
    public var totalLength: Int { Int(bytes.readUInt16(at: Field.totalLength)) }
    public var timeToLive: UInt8 { bytes[Field.timeToLive] }
    public var `protocol`: UInt8 { bytes[Field.protocol] }
    public var source: IPv4Address { IPv4Address(bytes, at: Field.source) }
    public var destination: IPv4Address { IPv4Address(bytes, at: Field.destination) }
    /// More fragments set or a nonzero offset: not the whole datagram.
    public var isFragment: Bool { bytes.readUInt16(at: Field.flagsAndFragment) & 0x3fff != 0 }

    /// Whether the options carry a router alert (RFC 2113), as IGMPv2 and v3 messages must.
    public var hasRouterAlert: Bool {
        var offset = Field.options
        while offset < headerLength {
            let type = bytes[offset]
            if type == 0 { return false }                 // end of options
            if type == 1 { offset += 1; continue }       // no-operation
            guard offset + 1 < headerLength else { return false }
            if type == IPv4Builder.routerAlertOption[0] { return true }
            let length = Int(bytes[offset + 1])
            guard length >= 2 else { return false }
            offset += length
        }
        return false
    }

    /// The datagram's payload, without Ethernet padding.
    public var payload: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[headerLength..<totalLength])
    }
}

/// Builds IPv4 headers for the messages the switch originates (queries).
public enum IPv4Builder {
    /// Router alert, RFC 2113: type 148, length 4, value 0.
    public static let routerAlertOption: [UInt8] = [0x94, 0x04, 0x00, 0x00]

    /// A 24-byte header with the router alert option, TTL 1 and type of service 0xc0
    /// (internetwork control), as RFC 2236 and RFC 3376 section 4 ask of IGMP.
    public static func controlHeader(
        source: IPv4Address, destination: IPv4Address, protocol: UInt8, payloadLength: Int
    ) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: 24)
        header.withUnsafeMutableBytes { h in
            h[IPv4HeaderView.Field.versionAndLength] = 0x46
            h[IPv4HeaderView.Field.typeOfService] = 0xc0
            h.writeUInt16(UInt16(24 + payloadLength), at: IPv4HeaderView.Field.totalLength)
            h.writeUInt16(0x4000, at: IPv4HeaderView.Field.flagsAndFragment)   // don't fragment
            h[IPv4HeaderView.Field.timeToLive] = 1
            h[IPv4HeaderView.Field.protocol] = `protocol`
            source.write(to: h, at: IPv4HeaderView.Field.source)
            destination.write(to: h, at: IPv4HeaderView.Field.destination)
            for (i, byte) in routerAlertOption.enumerated() { h[IPv4HeaderView.Field.options + i] = byte }
            h.writeUInt16(InternetChecksum.compute(UnsafeRawBufferPointer(h)), at: IPv4HeaderView.Field.checksum)
        }
        return header
    }
}
