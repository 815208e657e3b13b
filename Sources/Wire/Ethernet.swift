/// EtherType values snoopswitch reads.
public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let ipv6: UInt16 = 0x86dd
    public static let vlan: UInt16 = 0x8100
    /// IEEE 802.1ad service tag (S-tag): a provider bridge's VLAN, outside the customer's 802.1Q tag.
    public static let serviceTag: UInt16 = 0x88a8
}

/// An Ethernet II header, read in place.
///
///     0                   6                  12         14
///     | destination (6)   | source (6)       | type (2) | payload ...
public struct EthernetFrameView {
    enum Field {
        static let destination = 0
        static let source = 6
        static let etherType = 12
        static let payload = 14
        static let tagTCI = 14
        static let taggedEtherType = 16
        static let taggedPayload = 18
    }
    public static let headerLength = Field.payload
    public static let tagLength = 4

    public let bytes: UnsafeRawBufferPointer

    public init(checking bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Field.payload else { throw .truncated }
        self.bytes = bytes
    }

    public var destination: MACAddress { MACAddress(bytes, at: Field.destination) }
    public var source: MACAddress { MACAddress(bytes, at: Field.source) }
    public var etherType: UInt16 { bytes.readUInt16(at: Field.etherType) }

    /// An 802.1Q tag still in the bytes (the kernel usually strips it into auxdata; a
    /// second tag, or a device without VLAN offload, leaves it inline).
    public var inlineTag: VLANTag? {
        guard etherType == EtherType.vlan, bytes.count >= Field.taggedPayload else { return nil }
        return VLANTag(tci: bytes.readUInt16(at: Field.tagTCI))
    }

    public var payload: UnsafeRawBufferPointer {
        let start = inlineTag == nil ? Field.payload : Field.taggedPayload
        return UnsafeRawBufferPointer(rebasing: bytes[start...])
    }
}
