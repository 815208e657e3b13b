public enum MLDVersion: Int, Sendable, Comparable, Codable, CustomStringConvertible {
    case v1 = 1, v2 = 2
    public static func < (a: MLDVersion, b: MLDVersion) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "v\(rawValue)" }
}

/// The 16-bit Maximum Response Code of RFC 9777 section 5.1.3, in milliseconds: below 32768
/// the value itself, above it a 3-bit exponent and 12-bit mantissa. (QQIC, section 5.1.9, is
/// the 8-bit code of IGMPv3: `IGMPTimeCode`.)
public enum MLDTimeCode {
    public static func decode(_ code: UInt16) -> Int { FloatingPointCode.decode(Int(code), mantissaBits: 12) }

    /// The largest code whose value does not exceed `value` (values past 8387584 saturate).
    public static func encode(_ value: Int) -> UInt16 { UInt16(FloatingPointCode.encode(value, mantissaBits: 12)) }
}

/// An ICMPv6 message (RFC 4443 section 2.1) of MLD or multicast router discovery, read in place.
///
///     |     Type      |     Code      |           Checksum            |
///     |    Maximum Response Code      |           Reserved            |   130 to 132
///     |               Multicast Address (128 bits)                    |
///     | Resv  |S| QRV |     QQIC      |     Number of Sources (N)     |   130 of MLDv2
///     |               Source Address [1 .. N] (128 bits each)         |
///
///     |  Type = 143   |    Reserved   |           Checksum            |
///     |           Reserved            |Nr of Mcast Address Records (M)|
///     |                 Multicast Address Record [1 .. M]             |
public struct MLDMessageView {
    enum Field {
        static let type = 0
        static let code = 1
        static let checksum = 2
        static let maxResponse = 4
        static let address = 8
        static let queryFlags = 24
        static let queryQQIC = 25
        static let querySourceCount = 26
        static let querySources = 28
        static let reportRecordCount = 6
        static let reportRecords = 8
        static let mrdQueryInterval = 4
        static let mrdRobustness = 6
    }
    /// An MLDv1 message; a query of this length is MLDv1, one of 28 bytes or more MLDv2 (RFC 9777 8.1).
    public static let v1Length = 24
    public static let v2QueryMinimumLength = Field.querySources

    public let bytes: UnsafeRawBufferPointer

    /// Checks the type, the length its layout needs (a v2 query's sources included) and, when
    /// `verifyChecksum`, the checksum over the pseudo-header of the datagram's addresses.
    /// `verifyChecksum` is false only when the kernel said the checksum is not finished yet.
    public init(checking bytes: UnsafeRawBufferPointer, source: IPv6Address, destination: IPv6Address,
                verifyChecksum: Bool = true) throws(WireError) {
        guard bytes.count >= Field.maxResponse else { throw .truncated }
        switch bytes[Field.type] {
        case MLDMessage.MessageType.query:
            guard bytes.count >= Self.v1Length else { throw .truncated }
            if bytes.count > Self.v1Length {
                // RFC 9777 8.1: 25 to 27 bytes is neither version.
                guard bytes.count >= Self.v2QueryMinimumLength else { throw .badLength }
                let sourceCount = Int(bytes.readUInt16(at: Field.querySourceCount))
                guard bytes.count >= Field.querySources + 16 * sourceCount else { throw .badLength }
            }
        case MLDMessage.MessageType.v1Report, MLDMessage.MessageType.v1Done:
            guard bytes.count >= Self.v1Length else { throw .truncated }
        case MLDMessage.MessageType.v2Report, MLDMessage.MessageType.mrdAdvertisement:
            guard bytes.count >= 8 else { throw .truncated }
        case MLDMessage.MessageType.mrdSolicitation, MLDMessage.MessageType.mrdTermination:
            break
        default:
            throw .unknownType
        }
        if verifyChecksum, !InternetChecksum.verify(bytes, source: source, destination: destination,
                                                    nextHeader: IPv6HeaderView.NextHeader.icmpv6) {
            throw .badChecksum
        }
        self.bytes = bytes
    }

    public var type: UInt8 { bytes[Field.type] }
    public var code: UInt8 { bytes[Field.code] }
    public var checksum: UInt16 { bytes.readUInt16(at: Field.checksum) }

    /// Queries, reports and Done (types 130 to 132): the multicast address, :: in a general query.
    public var multicastAddress: IPv6Address? {
        isV1Sized ? IPv6Address(bytes, at: Field.address) : nil
    }
    /// Queries: MLDv1's delay in milliseconds, MLDv2's code (`MLDTimeCode`).
    public var maximumResponseCode: UInt16? {
        type == MLDMessage.MessageType.query ? bytes.readUInt16(at: Field.maxResponse) : nil
    }
    /// The query is MLDv2 (RFC 9777 8.1: 28 bytes or more).
    public var isV2Query: Bool { type == MLDMessage.MessageType.query && bytes.count >= Self.v2QueryMinimumLength }
    /// MLDv2 queries: S flag (bit 3), QRV (bits 0 to 2), QQIC, the sources.
    public var suppressRouterProcessing: Bool { isV2Query && bytes[Field.queryFlags] & 0x08 != 0 }
    public var querierRobustness: Int { isV2Query ? Int(bytes[Field.queryFlags] & 0x07) : 0 }
    public var querierQueryIntervalCode: UInt8 { isV2Query ? bytes[Field.queryQQIC] : 0 }
    public var querySources: [IPv6Address] {
        guard isV2Query else { return [] }
        let count = Int(bytes.readUInt16(at: Field.querySourceCount))
        return (0..<count).map { IPv6Address(bytes, at: Field.querySources + 16 * $0) }
    }
    /// MLDv2 reports: the number of address records the header announces.
    public var recordCount: Int {
        type == MLDMessage.MessageType.v2Report ? Int(bytes.readUInt16(at: Field.reportRecordCount)) : 0
    }

    private var isV1Sized: Bool {
        (MLDMessage.MessageType.query...MLDMessage.MessageType.v1Done).contains(type) && bytes.count >= Self.v1Length
    }
}

/// An MLD query of either version (RFC 2710 section 3.6, RFC 9777 section 5.1).
public struct MLDQuery: Equatable, Sendable {
    public var version: MLDVersion
    /// `IPv6Address.any` for a general query.
    public var group: IPv6Address
    /// Maximum response delay in milliseconds.
    public var maxResponseMilliseconds: Int
    /// MLDv2 only: S flag, querier's robustness variable, querier's query interval, sources.
    public var suppressRouterProcessing: Bool
    public var robustness: Int
    public var queryIntervalSeconds: Int
    public var sources: [IPv6Address]

    public init(version: MLDVersion, group: IPv6Address = .any, maxResponseMilliseconds: Int,
                suppressRouterProcessing: Bool = false, robustness: Int = 0,
                queryIntervalSeconds: Int = 0, sources: [IPv6Address] = []) {
        self.version = version
        self.group = group
        self.maxResponseMilliseconds = maxResponseMilliseconds
        self.suppressRouterProcessing = suppressRouterProcessing
        self.robustness = robustness
        self.queryIntervalSeconds = queryIntervalSeconds
        self.sources = sources
    }

    /// RFC 9777 5.1.10: general when the address is ::, group-specific with no sources,
    /// group-and-source-specific with them.
    public var isGeneral: Bool { group == .any }
    public var isGroupAndSourceSpecific: Bool { !isGeneral && !sources.isEmpty }
    /// Where a querier sends it (RFC 9777 5.1.15): ff02::1 for a general query, the group otherwise.
    public var destination: IPv6Address { isGeneral ? .allNodes : group }
}

/// An MLDv2 multicast address record (RFC 9777 section 5.2.4): the record types are IGMPv3's.
public struct MLDAddressRecord: Equatable, Sendable {
    public typealias RecordType = IGMPGroupRecord.RecordType
    public var type: RecordType
    public var group: IPv6Address
    public var sources: [IPv6Address]

    public init(type: RecordType, group: IPv6Address, sources: [IPv6Address] = []) {
        self.type = type
        self.group = group
        self.sources = sources
    }
}

/// The meaning of an MLD or multicast router discovery message, after validation.
public enum MLDMessage: Equatable, Sendable {
    case query(MLDQuery)
    /// An MLDv1 report (131).
    case report(group: IPv6Address)
    /// An MLDv1 Done (132).
    case done(group: IPv6Address)
    /// An MLDv2 report (143).
    case v2Report([MLDAddressRecord])
    /// Multicast router discovery over ICMPv6 (RFC 4286): advertisement (151), solicitation
    /// (152), termination (153).
    case mrdAdvertisement(intervalSeconds: Int, queryIntervalSeconds: Int, robustness: Int)
    case mrdSolicitation
    case mrdTermination

    public enum MessageType {
        public static let query: UInt8 = 130
        public static let v1Report: UInt8 = 131
        public static let v1Done: UInt8 = 132
        public static let v2Report: UInt8 = 143
        public static let mrdAdvertisement: UInt8 = 151
        public static let mrdSolicitation: UInt8 = 152
        public static let mrdTermination: UInt8 = 153

        /// MLD (130 to 132, 143) and multicast router discovery (151 to 153): the ICMPv6 types
        /// a snooping switch hears rather than forwards as data.
        @inline(__always)
        public static func isListenerDiscovery(_ type: UInt8) -> Bool {
            (query...v1Done).contains(type) || type == v2Report || (mrdAdvertisement...mrdTermination).contains(type)
        }
    }

    /// Queries and router announcements: what says "a router (or querier) is behind this port".
    public var announcesARouter: Bool {
        switch self {
        case .query, .mrdAdvertisement, .mrdTermination: true
        case .report, .done, .v2Report, .mrdSolicitation: false
        }
    }

    /// Lifts a checked view.
    public static func parse(_ view: MLDMessageView) throws(WireError) -> MLDMessage {
        let bytes = view.bytes
        typealias Field = MLDMessageView.Field
        switch view.type {
        case MessageType.query:
            let group = IPv6Address(bytes, at: Field.address)
            let code = bytes.readUInt16(at: Field.maxResponse)
            guard view.isV2Query else {
                return .query(MLDQuery(version: .v1, group: group, maxResponseMilliseconds: Int(code)))
            }
            return .query(MLDQuery(
                version: .v2, group: group, maxResponseMilliseconds: MLDTimeCode.decode(code),
                suppressRouterProcessing: view.suppressRouterProcessing, robustness: view.querierRobustness,
                queryIntervalSeconds: IGMPTimeCode.decode(view.querierQueryIntervalCode), sources: view.querySources))
        case MessageType.v1Report:
            return .report(group: IPv6Address(bytes, at: Field.address))
        case MessageType.v1Done:
            return .done(group: IPv6Address(bytes, at: Field.address))
        case MessageType.v2Report:
            return .v2Report(try parseRecords(bytes, count: view.recordCount))
        case MessageType.mrdAdvertisement:
            // type, advertisement interval (s), checksum, query interval (s), robustness
            return .mrdAdvertisement(intervalSeconds: Int(view.code),
                                     queryIntervalSeconds: Int(bytes.readUInt16(at: Field.mrdQueryInterval)),
                                     robustness: Int(bytes.readUInt16(at: Field.mrdRobustness)))
        case MessageType.mrdSolicitation:
            return .mrdSolicitation
        case MessageType.mrdTermination:
            return .mrdTermination
        default:
            throw .unknownType
        }
    }

    /// Validates and lifts a message from an ICMPv6 payload and the addresses of its datagram.
    public static func parse(_ bytes: UnsafeRawBufferPointer, source: IPv6Address, destination: IPv6Address,
                             verifyChecksum: Bool = true) throws(WireError) -> MLDMessage {
        try parse(MLDMessageView(checking: bytes, source: source, destination: destination, verifyChecksum: verifyChecksum))
    }

    /// Validates and lifts the message of an IPv6 datagram: through its extension headers to
    /// ICMPv6 (anything else, or a later fragment, is `.unknownType`).
    public static func parse(datagram: IPv6HeaderView, verifyChecksum: Bool = true) throws(WireError) -> MLDMessage {
        let upper = try datagram.upperLayer()
        guard upper.protocol == IPv6HeaderView.NextHeader.icmpv6, !upper.isFragment else { throw .unknownType }
        return try parse(upper.payload, source: datagram.source, destination: datagram.destination,
                         verifyChecksum: verifyChecksum)
    }

    private static func parseRecords(_ bytes: UnsafeRawBufferPointer, count: Int) throws(WireError) -> [MLDAddressRecord] {
        var records: [MLDAddressRecord] = []
        records.reserveCapacity(min(count, 64))
        var offset = MLDMessageView.Field.reportRecords
        for _ in 0..<count {
            // type(1) aux data len(1, in 32-bit words) number of sources(2) address(16) sources aux
            guard offset + 20 <= bytes.count else { throw .badLength }
            let rawType = bytes[offset]
            let auxWords = Int(bytes[offset + 1])
            let sourceCount = Int(bytes.readUInt16(at: offset + 2))
            let end = offset + 20 + 16 * sourceCount + 4 * auxWords
            guard end <= bytes.count else { throw .badLength }
            let group = IPv6Address(bytes, at: offset + 4)
            let base = offset + 20
            let sources = (0..<sourceCount).map { IPv6Address(bytes, at: base + 16 * $0) }
            offset = end
            // RFC 9777 section 5.2.12: records of unknown types are ignored, the rest processed.
            guard let type = MLDAddressRecord.RecordType(rawValue: rawType) else { continue }
            records.append(MLDAddressRecord(type: type, group: group, sources: sources))
        }
        return records
    }

    /// The ICMPv6 message's bytes with its checksum filled in over the pseudo-header of the
    /// datagram that will carry it.
    public func emit(source: IPv6Address, destination: IPv6Address) -> [UInt8] {
        var out: [UInt8]
        switch self {
        case .query(let query):
            switch query.version {
            case .v1:
                out = [MessageType.query, 0] + Self.word(0) + Self.word(UInt16(clamping: query.maxResponseMilliseconds))
                out += Self.word(0) + query.group.octets
            case .v2:
                let flags = (query.suppressRouterProcessing ? 0x08 : 0) | UInt8(clamping: min(query.robustness, 7))
                out = [MessageType.query, 0] + Self.word(0) + Self.word(MLDTimeCode.encode(query.maxResponseMilliseconds))
                out += Self.word(0) + query.group.octets
                out += [flags, IGMPTimeCode.encode(query.queryIntervalSeconds)] + Self.word(UInt16(clamping: query.sources.count))
                for source in query.sources { out += source.octets }
            }
        case .report(let group):
            out = [MessageType.v1Report, 0, 0, 0, 0, 0, 0, 0] + group.octets
        case .done(let group):
            out = [MessageType.v1Done, 0, 0, 0, 0, 0, 0, 0] + group.octets
        case .v2Report(let records):
            out = [MessageType.v2Report, 0, 0, 0, 0, 0] + Self.word(UInt16(clamping: records.count))
            for record in records {
                out += [record.type.rawValue, 0] + Self.word(UInt16(clamping: record.sources.count)) + record.group.octets
                for source in record.sources { out += source.octets }
            }
        case .mrdAdvertisement(let interval, let queryInterval, let robustness):
            out = [MessageType.mrdAdvertisement, UInt8(clamping: interval), 0, 0]
            out += Self.word(UInt16(clamping: queryInterval)) + Self.word(UInt16(clamping: robustness))
        case .mrdSolicitation:
            out = [MessageType.mrdSolicitation, 0, 0, 0]
        case .mrdTermination:
            out = [MessageType.mrdTermination, 0, 0, 0]
        }
        out.withUnsafeMutableBytes { b in
            let checksum = InternetChecksum.compute(UnsafeRawBufferPointer(b), source: source, destination: destination,
                                                    nextHeader: IPv6HeaderView.NextHeader.icmpv6)
            b.writeUInt16(checksum, at: MLDMessageView.Field.checksum)
        }
        return out
    }

    private static func word(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(truncatingIfNeeded: value)] }
}

/// Builds whole Ethernet frames around MLD messages the switch originates.
public enum MLDFrameBuilder {
    /// An untagged Ethernet frame to the destination's MAC: IPv6 with hop limit 1 and the
    /// hop-by-hop router alert, then the message with its checksum. `source` is link-local
    /// (RFC 9777 section 5: hosts ignore queries from any other source), or :: for a report
    /// of a host without an address (RFC 3590).
    public static func frame(_ message: MLDMessage, from sourceMAC: MACAddress,
                             source: IPv6Address, destination: IPv6Address) -> [UInt8] {
        let icmp = message.emit(source: source, destination: destination)
        let ip = IPv6Builder.mldHeader(source: source, destination: destination, payloadLength: icmp.count)
        var frame = [UInt8](repeating: 0, count: EthernetFrameView.headerLength)
        frame.withUnsafeMutableBytes { e in
            MACAddress.ipv6Multicast(destination).write(to: e, at: EthernetFrameView.Field.destination)
            sourceMAC.write(to: e, at: EthernetFrameView.Field.source)
            e.writeUInt16(EtherType.ipv6, at: EthernetFrameView.Field.etherType)
        }
        return frame + ip + icmp
    }

    /// A query to its destination (ff02::1 or the group).
    public static func query(_ query: MLDQuery, from sourceMAC: MACAddress, source: IPv6Address) -> [UInt8] {
        frame(.query(query), from: sourceMAC, source: source, destination: query.destination)
    }
}
