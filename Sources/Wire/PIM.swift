/// A PIM message (RFC 7761 section 4.9), of which the switch reads hellos: they say a
/// multicast router is behind the port, for as long as their holdtime.
///
///     | PIM Ver | Type  |   Reserved    |           Checksum            |
///     | Option Type (1 = Holdtime)      |        Option Length (2)      |
///     |            Holdtime           |  ... more options
public enum PIMMessage: Equatable, Sendable {
    /// A hello; `holdtimeSeconds` is nil when the hello carries no holdtime option.
    case hello(holdtimeSeconds: Int?)
    case other(type: UInt8)

    enum Field {
        static let versionAndType = 0
        static let checksum = 2
        static let options = 4
    }
    static let holdtimeOption: UInt16 = 1

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> PIMMessage {
        guard bytes.count >= Field.options else { throw .truncated }
        guard bytes[Field.versionAndType] >> 4 == 2 else { throw .badVersion }
        guard InternetChecksum.verify(bytes) else { throw .badChecksum }
        return try parseChecked(bytes)
    }

    /// A PIM message of IPv6, whose checksum covers the IPv6 pseudo-header (RFC 7761 4.9).
    public static func parse(_ bytes: UnsafeRawBufferPointer, source: IPv6Address,
                             destination: IPv6Address) throws(WireError) -> PIMMessage {
        guard bytes.count >= Field.options else { throw .truncated }
        guard bytes[Field.versionAndType] >> 4 == 2 else { throw .badVersion }
        guard InternetChecksum.verify(bytes, source: source, destination: destination,
                                      nextHeader: IPv6HeaderView.NextHeader.pim) else { throw .badChecksum }
        return try parseChecked(bytes)
    }

    private static func parseChecked(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> PIMMessage {
        let type = bytes[Field.versionAndType] & 0x0f
        guard type == 0 else { return .other(type: type) }
        var offset = Field.options
        var holdtime: Int?
        while offset + 4 <= bytes.count {
            let optionType = bytes.readUInt16(at: offset)
            let length = Int(bytes.readUInt16(at: offset + 2))
            guard offset + 4 + length <= bytes.count else { throw .badLength }
            if optionType == holdtimeOption, length == 2 {
                holdtime = Int(bytes.readUInt16(at: offset + 4))
            }
            offset += 4 + length
        }
        return .hello(holdtimeSeconds: holdtime)
    }

    /// A hello with only a holdtime option, checksummed: what tests and tools send.
    public static func helloBytes(holdtimeSeconds: UInt16) -> [UInt8] {
        var out: [UInt8] = [0x20, 0, 0, 0, 0, 1, 0, 2, UInt8(holdtimeSeconds >> 8), UInt8(truncatingIfNeeded: holdtimeSeconds)]
        out.withUnsafeMutableBytes { b in
            b.writeUInt16(InternetChecksum.compute(UnsafeRawBufferPointer(b)), at: Field.checksum)
        }
        return out
    }
}
