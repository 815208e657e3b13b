/// An IPv6 header (RFC 8200 section 3), read in place.
///
///     0       4               12      16              24              31
///     |Version| Traffic Class |              Flow Label                       |
///     |         Payload Length        |  Next Header  |   Hop Limit   |
///     |                    Source Address (128 bits)                          |
///     |                 Destination Address (128 bits)                        |
///     |        extension headers (hop-by-hop with router alert), ICMPv6 ...   |
public struct IPv6HeaderView {
    enum Field {
        static let versionClassFlow = 0
        static let payloadLength = 4
        static let nextHeader = 6
        static let hopLimit = 7
        static let source = 8
        static let destination = 24
        static let payload = 40
    }
    public static let headerLength = Field.payload

    /// The protocol numbers of the Next Header field (IANA) that the switch reads or walks over.
    public enum NextHeader {
        public static let hopByHop: UInt8 = 0
        public static let tcp: UInt8 = 6
        public static let udp: UInt8 = 17
        public static let routing: UInt8 = 43
        public static let fragment: UInt8 = 44
        public static let encapsulatingSecurityPayload: UInt8 = 50
        public static let authentication: UInt8 = 51
        public static let icmpv6: UInt8 = 58
        public static let noNextHeader: UInt8 = 59
        public static let destinationOptions: UInt8 = 60
        public static let pim: UInt8 = 103
    }

    public let bytes: UnsafeRawBufferPointer

    /// Checks the version and the payload length against the buffer, so that no accessor can
    /// read past the end. Ethernet padding after the datagram is allowed.
    public init(checking bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.headerLength else { throw .truncated }
        guard bytes[Field.versionClassFlow] >> 4 == 6 else { throw .badVersion }
        guard bytes.count >= Self.headerLength + Int(bytes.readUInt16(at: Field.payloadLength)) else { throw .truncated }
        self.bytes = bytes
    }

    public var version: UInt8 { bytes[Field.versionClassFlow] >> 4 }
    /// DSCP and ECN (RFC 2474, RFC 3168).
    public var trafficClass: UInt8 { UInt8(truncatingIfNeeded: bytes.readUInt32(at: Field.versionClassFlow) >> 20) }
    public var flowLabel: UInt32 { bytes.readUInt32(at: Field.versionClassFlow) & 0xf_ffff }
    /// The bytes after this header, extension headers included.
    public var payloadLength: Int { Int(bytes.readUInt16(at: Field.payloadLength)) }
    public var nextHeader: UInt8 { bytes[Field.nextHeader] }
    public var hopLimit: UInt8 { bytes[Field.hopLimit] }
    public var source: IPv6Address { IPv6Address(bytes, at: Field.source) }
    public var destination: IPv6Address { IPv6Address(bytes, at: Field.destination) }

    /// The datagram after this header, without Ethernet padding.
    public var payload: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[Self.headerLength..<(Self.headerLength + payloadLength)])
    }

    /// Walks the extension headers (RFC 8200 section 4) to the upper-layer header: ICMPv6,
    /// UDP, PIM, ... or the first header it cannot walk over (ESP, an unknown one). Options
    /// and lengths that run past the payload are refused, as is a hop-by-hop header anywhere
    /// but first (RFC 8200 4.1).
    public func upperLayer() throws(WireError) -> IPv6UpperLayer {
        let payload = self.payload
        var next = nextHeader
        var offset = 0
        var routerAlert: UInt16?
        var isFragment = false
        var first = true
        while true {
            switch next {
            case NextHeader.hopByHop, NextHeader.destinationOptions, NextHeader.routing:
                // next header(1) header ext length(1, in 8-octet units past the first 8) ...
                guard next != NextHeader.hopByHop || first else { throw .badLength }
                guard offset + 2 <= payload.count else { throw .badLength }
                let end = offset + (Int(payload[offset + 1]) + 1) * 8
                guard end <= payload.count else { throw .badLength }
                if next != NextHeader.routing {
                    let options = UnsafeRawBufferPointer(rebasing: payload[(offset + 2)..<end])
                    if let alert = try Self.routerAlert(in: options), next == NextHeader.hopByHop { routerAlert = alert }
                }
                next = payload[offset]
                offset = end
            case NextHeader.fragment:
                // next header(1) reserved(1) fragment offset(13 bits) res(2) M(1) identification(4)
                guard offset + 8 <= payload.count else { throw .badLength }
                isFragment = true
                let fragmentOffset = payload.readUInt16(at: offset + 2) >> 3
                next = payload[offset]
                offset += 8
                // A later fragment carries the middle of the upper layer, not its header.
                if fragmentOffset != 0 {
                    return IPv6UpperLayer(protocol: next, payload: UnsafeRawBufferPointer(rebasing: payload[offset...]),
                                          routerAlert: routerAlert, isFragment: true, isFirstFragment: false)
                }
            case NextHeader.authentication:
                // RFC 4302 section 2.2: the length is in 4-octet units, minus 2.
                guard offset + 2 <= payload.count else { throw .badLength }
                let end = offset + (Int(payload[offset + 1]) + 2) * 4
                guard end <= payload.count else { throw .badLength }
                next = payload[offset]
                offset = end
            default:
                return IPv6UpperLayer(protocol: next, payload: UnsafeRawBufferPointer(rebasing: payload[offset...]),
                                      routerAlert: routerAlert, isFragment: isFragment, isFirstFragment: isFragment)
            }
            first = false
        }
    }

    /// The value of a router alert option (RFC 2711: type 5, length 2) among `options`, which
    /// are type-length-value (RFC 8200 4.2) with Pad1 (type 0) alone of one byte.
    static func routerAlert(in options: UnsafeRawBufferPointer) throws(WireError) -> UInt16? {
        var offset = 0
        var alert: UInt16?
        while offset < options.count {
            let type = options[offset]
            if type == Option.pad1 { offset += 1; continue }
            guard offset + 2 <= options.count else { throw .badLength }
            let length = Int(options[offset + 1])
            guard offset + 2 + length <= options.count else { throw .badLength }
            if type == Option.routerAlert {
                guard length == 2 else { throw .badLength }
                alert = options.readUInt16(at: offset + 2)
            }
            offset += 2 + length
        }
        return alert
    }

    enum Option {
        static let pad1: UInt8 = 0
        static let padN: UInt8 = 1
        static let routerAlert: UInt8 = 5
    }
}

/// Where the extension headers of an IPv6 datagram end: the upper-layer protocol and its bytes.
public struct IPv6UpperLayer {
    /// The Next Header value that is not an extension header the walk knows (58 for ICMPv6).
    public let `protocol`: UInt8
    /// From the upper-layer header to the end of the datagram.
    public let payload: UnsafeRawBufferPointer
    /// The value of the hop-by-hop header's router alert option (RFC 2711), nil without one.
    public let routerAlert: UInt16?
    /// A fragment header was present; `isFirstFragment` says whether the upper-layer header is here.
    public let isFragment: Bool
    public let isFirstFragment: Bool

    /// RFC 2711 section 2.1: value 0, "the datagram contains a Multicast Listener Discovery message".
    public static let routerAlertMLD: UInt16 = 0
    /// The router alert MLD messages carry (RFC 9777 section 5, RFC 2710 section 3).
    public var hasMLDRouterAlert: Bool { routerAlert == Self.routerAlertMLD }
}

extension InternetChecksum {
    /// The sum of the IPv6 pseudo-header (RFC 8200 section 8.1): source, destination (the final
    /// one, which for MLD is the one in the header), upper-layer length (32 bits), three zero
    /// bytes and the next header. Not yet folded, for `accumulate(_:into:)`.
    public static func ipv6PseudoHeaderSum(source: IPv6Address, destination: IPv6Address,
                                           length: Int, nextHeader: UInt8) -> UInt64 {
        var sum: UInt64 = 0
        for word in [source.high, source.low, destination.high, destination.low] {
            sum &+= word >> 48 &+ (word >> 32 & 0xffff) &+ (word >> 16 & 0xffff) &+ (word & 0xffff)
        }
        sum &+= UInt64(UInt32(truncatingIfNeeded: length) >> 16) &+ UInt64(length & 0xffff)
        return sum &+ UInt64(nextHeader)
    }

    /// The checksum of an upper-layer message of IPv6 (ICMPv6: next header 58) with its
    /// checksum field zero.
    public static func compute(_ bytes: UnsafeRawBufferPointer, source: IPv6Address, destination: IPv6Address,
                               nextHeader: UInt8) -> UInt16 {
        finish(accumulate(bytes, into: ipv6PseudoHeaderSum(source: source, destination: destination,
                                                          length: bytes.count, nextHeader: nextHeader)))
    }

    /// An upper-layer message of IPv6 whose checksum field is filled sums to zero with its pseudo-header.
    public static func verify(_ bytes: UnsafeRawBufferPointer, source: IPv6Address, destination: IPv6Address,
                              nextHeader: UInt8) -> Bool {
        compute(bytes, source: source, destination: destination, nextHeader: nextHeader) == 0
    }
}

/// Builds IPv6 headers for the messages the switch originates (MLD queries).
public enum IPv6Builder {
    /// A hop-by-hop header of 8 bytes: next header ICMPv6, router alert MLD (RFC 2711: type 5,
    /// length 2, value 0), and PadN of no data, as Linux hosts send it.
    public static let mldHopByHop: [UInt8] = [IPv6HeaderView.NextHeader.icmpv6, 0, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00]

    /// A 48-byte header: hop limit 1 and the hop-by-hop router alert, as RFC 9777 section 5 and
    /// RFC 2710 section 3 ask of MLD messages.
    public static func mldHeader(source: IPv6Address, destination: IPv6Address, payloadLength: Int) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: IPv6HeaderView.headerLength + mldHopByHop.count)
        header.withUnsafeMutableBytes { h in
            h[IPv6HeaderView.Field.versionClassFlow] = 0x60
            h.writeUInt16(UInt16(clamping: mldHopByHop.count + payloadLength), at: IPv6HeaderView.Field.payloadLength)
            h[IPv6HeaderView.Field.nextHeader] = IPv6HeaderView.NextHeader.hopByHop
            h[IPv6HeaderView.Field.hopLimit] = 1
            source.write(to: h, at: IPv6HeaderView.Field.source)
            destination.write(to: h, at: IPv6HeaderView.Field.destination)
            for (i, byte) in mldHopByHop.enumerated() { h[IPv6HeaderView.Field.payload + i] = byte }
        }
        return header
    }
}
