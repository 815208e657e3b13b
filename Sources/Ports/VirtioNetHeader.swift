/// `struct virtio_net_hdr` (virtio spec 5.1.6), carried before every frame on a packet socket
/// with PACKET_VNET_HDR and on a TAP with IFF_VNET_HDR. It lets partial checksums and
/// GSO frames larger than the MTU pass through untouched: the kernel finishes them on transmit.
///
///     | flags (1) | gso_type (1) | hdr_len (2) | gso_size (2) | csum_start (2) | csum_offset (2) |
public struct VirtioNetHeader: Equatable, Sendable {
    public static let length = 10
    /// VIRTIO_NET_HDR_F_NEEDS_CSUM: the checksum at csum_start + csum_offset is unfinished.
    public static let needsChecksum: UInt8 = 1

    public var flags: UInt8 = 0
    public var gsoType: UInt8 = 0
    public var headerLength: UInt16 = 0
    public var gsoSize: UInt16 = 0
    public var checksumStart: UInt16 = 0
    public var checksumOffset: UInt16 = 0

    public init() {}

    /// Reads the header in the machine's byte order (the kernel's for packet sockets on
    /// little-endian hosts, and the modern virtio layout).
    public init(_ raw: UnsafeRawPointer) {
        flags = raw.load(as: UInt8.self)
        gsoType = raw.load(fromByteOffset: 1, as: UInt8.self)
        headerLength = raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self)
        gsoSize = raw.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
        checksumStart = raw.loadUnaligned(fromByteOffset: 6, as: UInt16.self)
        checksumOffset = raw.loadUnaligned(fromByteOffset: 8, as: UInt16.self)
    }

    public func write(to raw: UnsafeMutableRawPointer) {
        raw.storeBytes(of: flags, as: UInt8.self)
        raw.storeBytes(of: gsoType, toByteOffset: 1, as: UInt8.self)
        raw.storeBytes(of: headerLength, toByteOffset: 2, as: UInt16.self)
        raw.storeBytes(of: gsoSize, toByteOffset: 4, as: UInt16.self)
        raw.storeBytes(of: checksumStart, toByteOffset: 6, as: UInt16.self)
        raw.storeBytes(of: checksumOffset, toByteOffset: 8, as: UInt16.self)
    }

    public var checksumPending: Bool { flags & Self.needsChecksum != 0 }

    /// The same header for the frame with an 802.1Q tag inserted (+4) or removed (-4) after the
    /// MAC addresses: the offsets that count from the frame's start move with it.
    public func shifted(by delta: Int) -> VirtioNetHeader {
        var out = self
        if checksumPending { out.checksumStart = UInt16(truncatingIfNeeded: Int(checksumStart) + delta) }
        if gsoType != 0, headerLength != 0 { out.headerLength = UInt16(truncatingIfNeeded: Int(headerLength) + delta) }
        return out
    }
}
