public enum IGMPVersion: Int, Sendable, Comparable, Codable, CustomStringConvertible {
    case v1 = 1, v2 = 2, v3 = 3
    public static func < (a: IGMPVersion, b: IGMPVersion) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "v\(rawValue)" }
}

/// The floating-point code of RFC 3376 section 4.1.1 (Max Resp Code) and 4.1.7 (QQIC):
/// below 128 the value itself, above it a 3-bit exponent and 4-bit mantissa.
public enum IGMPTimeCode {
    public static func decode(_ code: UInt8) -> Int { FloatingPointCode.decode(Int(code), mantissaBits: 4) }

    /// The largest code whose value does not exceed `value` (values past 31744 saturate).
    public static func encode(_ value: Int) -> UInt8 { UInt8(FloatingPointCode.encode(value, mantissaBits: 4)) }
}

/// The floating-point codes of IGMPv3 (8 bits) and MLDv2 (16 bits), one rule at two widths:
/// a code below 2^(m+3) is the value itself; above, a flag bit, a 3-bit exponent and an m-bit
/// mantissa, worth (mantissa | 2^m) << (exponent + 3).
enum FloatingPointCode {
    static func decode(_ code: Int, mantissaBits m: Int) -> Int {
        let flag = 1 << (m + 3)
        guard code >= flag else { return code }
        let exponent = code >> m & 0x07
        let mantissa = code & (1 << m - 1)
        return (mantissa | 1 << m) << (exponent + 3)
    }

    /// The largest code whose value does not exceed `value`; past the largest, all ones.
    static func encode(_ value: Int, mantissaBits m: Int) -> Int {
        let flag = 1 << (m + 3)
        if value < flag { return max(0, value) }
        for exponent in 0..<8 {
            let mantissa = value >> (exponent + 3)
            if mantissa < 1 << (m + 1) { return flag | exponent << m | mantissa & (1 << m - 1) }
        }
        return flag << 1 - 1
    }
}

/// An IGMP query of any version (RFC 2236 section 2, RFC 3376 section 4.1).
public struct IGMPQuery: Equatable, Sendable {
    public var version: IGMPVersion
    /// `IPv4Address.any` for a general query.
    public var group: IPv4Address
    /// Max response time in tenths of a second (v1 queries carry none: 100, RFC 2236 section 4).
    public var maxResponseDeciseconds: Int
    /// IGMPv3 only: S flag, querier's robustness variable, querier's query interval, sources.
    public var suppressRouterProcessing: Bool
    public var robustness: Int
    public var queryIntervalSeconds: Int
    public var sources: [IPv4Address]

    public init(version: IGMPVersion, group: IPv4Address = .any, maxResponseDeciseconds: Int,
                suppressRouterProcessing: Bool = false, robustness: Int = 0,
                queryIntervalSeconds: Int = 0, sources: [IPv4Address] = []) {
        self.version = version
        self.group = group
        self.maxResponseDeciseconds = maxResponseDeciseconds
        self.suppressRouterProcessing = suppressRouterProcessing
        self.robustness = robustness
        self.queryIntervalSeconds = queryIntervalSeconds
        self.sources = sources
    }

    public var isGeneral: Bool { group == .any }
}

/// An IGMPv3 group record (RFC 3376 section 4.2.4).
public struct IGMPGroupRecord: Equatable, Sendable {
    public enum RecordType: UInt8, Sendable, CaseIterable {
        case modeIsInclude = 1, modeIsExclude = 2, changeToInclude = 3, changeToExclude = 4
        case allowNewSources = 5, blockOldSources = 6
    }
    public var type: RecordType
    public var group: IPv4Address
    public var sources: [IPv4Address]

    public init(type: RecordType, group: IPv4Address, sources: [IPv4Address] = []) {
        self.type = type
        self.group = group
        self.sources = sources
    }
}

/// The meaning of an IGMP message, after validation.
public enum IGMPMessage: Equatable, Sendable {
    case query(IGMPQuery)
    /// A v1 (0x12) or v2 (0x16) membership report.
    case report(group: IPv4Address, version: IGMPVersion)
    /// A v2 leave group (0x17).
    case leave(group: IPv4Address)
    /// A v3 membership report (0x22).
    case v3Report([IGMPGroupRecord])
    /// A DVMRP message (0x13); code 1 is a probe, which a DVMRP router sends to its neighbors.
    case dvmrp(code: UInt8)
    /// Multicast router discovery (RFC 4286): advertisement (0x30), solicitation (0x31), termination (0x32).
    case mrdAdvertisement(intervalSeconds: Int, queryIntervalSeconds: Int, robustness: Int)
    case mrdSolicitation
    case mrdTermination

    public enum MessageType {
        public static let query: UInt8 = 0x11
        public static let v1Report: UInt8 = 0x12
        public static let v2Report: UInt8 = 0x16
        public static let v2Leave: UInt8 = 0x17
        public static let v3Report: UInt8 = 0x22
        public static let dvmrp: UInt8 = 0x13
        public static let mrdAdvertisement: UInt8 = 0x30
        public static let mrdSolicitation: UInt8 = 0x31
        public static let mrdTermination: UInt8 = 0x32
    }

    /// Queries and router announcements: what says "a router (or querier) is behind this port".
    public var announcesARouter: Bool {
        switch self {
        case .query, .dvmrp, .mrdAdvertisement, .mrdTermination: true
        case .report, .leave, .v3Report, .mrdSolicitation: false
        }
    }

    enum Field {
        static let type = 0
        static let maxResponse = 1
        static let checksum = 2
        static let group = 4
        static let queryFlags = 8
        static let queryQQIC = 9
        static let querySourceCount = 10
        static let querySources = 12
        static let reportRecordCount = 6
        static let reportRecords = 8
    }

    /// Validates and lifts an IGMP message from the payload of its IPv4 datagram.
    /// `verifyChecksum` is false only when the kernel said the checksum is not finished yet.
    public static func parse(_ bytes: UnsafeRawBufferPointer, verifyChecksum: Bool = true) throws(WireError) -> IGMPMessage {
        // MRD solicitations and terminations are 4 bytes (RFC 4286 sections 3, 4); the rest at least 8.
        guard bytes.count >= 4 else { throw .truncated }
        if verifyChecksum, !InternetChecksum.verify(bytes) { throw .badChecksum }
        let type = bytes[Field.type]
        switch type {
        case MessageType.mrdSolicitation: return .mrdSolicitation
        case MessageType.mrdTermination: return .mrdTermination
        default: break
        }
        guard bytes.count >= 8 else { throw .truncated }
        let group = IPv4Address(bytes, at: Field.group)
        switch type {
        case MessageType.query:
            return .query(try parseQuery(bytes, group: group))
        case MessageType.v1Report:
            return .report(group: group, version: .v1)
        case MessageType.v2Report:
            return .report(group: group, version: .v2)
        case MessageType.v2Leave:
            return .leave(group: group)
        case MessageType.v3Report:
            return .v3Report(try parseRecords(bytes))
        case MessageType.dvmrp:
            return .dvmrp(code: bytes[1])
        case MessageType.mrdAdvertisement:
            // type, advertisement interval (s), checksum, query interval (s), robustness
            return .mrdAdvertisement(intervalSeconds: Int(bytes[1]), queryIntervalSeconds: Int(bytes.readUInt16(at: 4)),
                                     robustness: Int(bytes.readUInt16(at: 6)))
        default:
            throw .unknownType
        }
    }

    /// RFC 3376 section 7.1: the version of a query follows from its length and max resp code.
    private static func parseQuery(_ bytes: UnsafeRawBufferPointer, group: IPv4Address) throws(WireError) -> IGMPQuery {
        let code = bytes[Field.maxResponse]
        if bytes.count == 8 {
            return code == 0
                ? IGMPQuery(version: .v1, group: group, maxResponseDeciseconds: 100)
                : IGMPQuery(version: .v2, group: group, maxResponseDeciseconds: Int(code))
        }
        guard bytes.count >= Field.querySources else { throw .badLength }
        let sourceCount = Int(bytes.readUInt16(at: Field.querySourceCount))
        guard bytes.count >= Field.querySources + 4 * sourceCount else { throw .badLength }
        let flags = bytes[Field.queryFlags]
        let sources = (0..<sourceCount).map { IPv4Address(bytes, at: Field.querySources + 4 * $0) }
        return IGMPQuery(
            version: .v3, group: group,
            maxResponseDeciseconds: IGMPTimeCode.decode(code),
            suppressRouterProcessing: flags & 0x08 != 0,
            robustness: Int(flags & 0x07),
            queryIntervalSeconds: IGMPTimeCode.decode(bytes[Field.queryQQIC]),
            sources: sources)
    }

    private static func parseRecords(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> [IGMPGroupRecord] {
        let count = Int(bytes.readUInt16(at: Field.reportRecordCount))
        var records: [IGMPGroupRecord] = []
        records.reserveCapacity(min(count, 64))
        var offset = Field.reportRecords
        for _ in 0..<count {
            // type(1) aux data len(1, in 32-bit words) number of sources(2) group(4) sources aux
            guard offset + 8 <= bytes.count else { throw .badLength }
            let rawType = bytes[offset]
            let auxWords = Int(bytes[offset + 1])
            let sourceCount = Int(bytes.readUInt16(at: offset + 2))
            let end = offset + 8 + 4 * sourceCount + 4 * auxWords
            guard end <= bytes.count else { throw .badLength }
            let group = IPv4Address(bytes, at: offset + 4)
            let base = offset + 8
            let sources = (0..<sourceCount).map { IPv4Address(bytes, at: base + 4 * $0) }
            offset = end
            // RFC 3376 section 4.2.12: unknown record types are ignored, the rest processed.
            guard let type = IGMPGroupRecord.RecordType(rawValue: rawType) else { continue }
            records.append(IGMPGroupRecord(type: type, group: group, sources: sources))
        }
        return records
    }

    /// The message's bytes with its checksum filled in.
    public func emit() -> [UInt8] {
        var out: [UInt8]
        switch self {
        case .query(let query):
            switch query.version {
            case .v1, .v2:
                out = [MessageType.query, query.version == .v1 ? 0 : UInt8(clamping: query.maxResponseDeciseconds), 0, 0]
                out += Self.octets(query.group)
            case .v3:
                let flags = (query.suppressRouterProcessing ? 0x08 : 0) | UInt8(clamping: min(query.robustness, 7))
                out = [MessageType.query, IGMPTimeCode.encode(query.maxResponseDeciseconds), 0, 0]
                out += Self.octets(query.group)
                out += [flags, IGMPTimeCode.encode(query.queryIntervalSeconds),
                        UInt8(query.sources.count >> 8), UInt8(truncatingIfNeeded: query.sources.count)]
                for source in query.sources { out += Self.octets(source) }
            }
        case .report(let group, let version):
            out = [version == .v1 ? MessageType.v1Report : MessageType.v2Report, 0, 0, 0] + Self.octets(group)
        case .leave(let group):
            out = [MessageType.v2Leave, 0, 0, 0] + Self.octets(group)
        case .dvmrp(let code):
            out = [MessageType.dvmrp, code, 0, 0, 0, 0, 0, 0]
        case .mrdAdvertisement(let interval, let queryInterval, let robustness):
            out = [MessageType.mrdAdvertisement, UInt8(clamping: interval), 0, 0,
                   UInt8(clamping: queryInterval >> 8), UInt8(truncatingIfNeeded: queryInterval),
                   UInt8(clamping: robustness >> 8), UInt8(truncatingIfNeeded: robustness)]
        case .mrdSolicitation:
            out = [MessageType.mrdSolicitation, 0, 0, 0]
        case .mrdTermination:
            out = [MessageType.mrdTermination, 0, 0, 0]
        case .v3Report(let records):
            out = [MessageType.v3Report, 0, 0, 0, 0, 0, UInt8(records.count >> 8), UInt8(truncatingIfNeeded: records.count)]
            for record in records {
                out += [record.type.rawValue, 0, UInt8(record.sources.count >> 8), UInt8(truncatingIfNeeded: record.sources.count)]
                out += Self.octets(record.group)
                for source in record.sources { out += Self.octets(source) }
            }
        }
        out.withUnsafeMutableBytes { b in
            b.writeUInt16(InternetChecksum.compute(UnsafeRawBufferPointer(b)), at: Field.checksum)
        }
        return out
    }

    static func octets(_ address: IPv4Address) -> [UInt8] {
        [UInt8(address.rawValue >> 24), UInt8(address.rawValue >> 16 & 0xff),
         UInt8(address.rawValue >> 8 & 0xff), UInt8(address.rawValue & 0xff)]
    }
}

/// Builds whole Ethernet frames around IGMP messages the switch originates.
public enum IGMPFrameBuilder {
    /// An untagged Ethernet frame: IPv4 with router alert and TTL 1, to the group's MAC.
    public static func frame(_ message: IGMPMessage, from sourceMAC: MACAddress,
                             source: IPv4Address, destination: IPv4Address) -> [UInt8] {
        let igmp = message.emit()
        let ip = IPv4Builder.controlHeader(source: source, destination: destination,
                                           protocol: IPv4HeaderView.ProtocolNumber.igmp, payloadLength: igmp.count)
        var frame = [UInt8](repeating: 0, count: EthernetFrameView.headerLength)
        frame.withUnsafeMutableBytes { e in
            MACAddress.ipv4Multicast(destination).write(to: e, at: EthernetFrameView.Field.destination)
            sourceMAC.write(to: e, at: EthernetFrameView.Field.source)
            e.writeUInt16(EtherType.ipv4, at: EthernetFrameView.Field.etherType)
        }
        return frame + ip + igmp
    }
}
