#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Foundation
import Wire

/// The capture stream of the control socket: after a `capture PORT|* all|control` request and
/// its `{"ok":true}` line, the switch sends records, each a header and its payload:
///
///      0               4      5        7                       15
///     | length (4, BE) | kind | port (2, BE) | time (8, ns since 1970, BE) | payload (length) |
///
/// - kind 2, a port: the payload is the name of port `port` (UTF-8). Sent for every port the
///   capture covers right after the ok line, for a port added while it runs, and again when an
///   index is given to another port; a frame's port is always named before the frame.
/// - kind 0, a frame port `port` received; kind 1, a frame the switch sent out of it. The
///   payload is the frame as on that port's wire (its 802.1Q tag, if it has one there).
///
/// `snoopswitch capture` writes them as pcapng (`PcapngWriter`): one interface per port, named
/// as the port, and each frame's direction in its flags.
public enum CaptureRecord {
    public static let headerLength = 15
    /// Frames never exceed this (a GSO frame with its tag).
    public static let maximumFrame = 65_536 + 4
    /// Port names are interface names; this bounds a record the client takes as a name.
    public static let maximumName = 256

    public enum Kind: UInt8, Sendable {
        case inbound = 0
        case outbound = 1
        case port = 2
    }

    /// A record's header, as read by the client.
    public struct Header: Equatable, Sendable {
        public var length: Int
        /// nil: a kind this client does not know (its payload is skipped).
        public var kind: Kind?
        public var port: Int
        public var nanoseconds: Int64

        public init(length: Int, kind: Kind?, port: Int, nanoseconds: Int64) {
            self.length = length
            self.kind = kind
            self.port = port
            self.nanoseconds = nanoseconds
        }

        /// Reads the `headerLength` bytes of a header.
        public init(_ bytes: UnsafeRawBufferPointer) {
            precondition(bytes.count >= CaptureRecord.headerLength)
            length = Int(bytes.readUInt32(at: 0))
            kind = Kind(rawValue: bytes[4])
            port = Int(bytes.readUInt16(at: 5))
            nanoseconds = Int64(bitPattern: UInt64(bytes.readUInt32(at: 7)) << 32 | UInt64(bytes.readUInt32(at: 11)))
        }

        /// Writes the header into the first `headerLength` bytes of `out`.
        public func write(into out: UnsafeMutableRawBufferPointer) {
            out.writeUInt32(UInt32(length), at: 0)
            out[4] = kind?.rawValue ?? 0xff
            out.writeUInt16(UInt16(port), at: 5)
            out.writeUInt32(UInt32(truncatingIfNeeded: UInt64(bitPattern: nanoseconds) >> 32), at: 7)
            out.writeUInt32(UInt32(truncatingIfNeeded: UInt64(bitPattern: nanoseconds)), at: 11)
        }
    }
}

/// One capture client, in the daemon: a non-blocking socket that gets records while it keeps up
/// (a frame that does not fit is dropped and counted, never waited for). Used with the
/// datapath's lock held.
public final class CaptureStream {
    public let descriptor: Int32
    /// Only this port's frames; nil: every port.
    public let portName: String?
    public let controlOnly: Bool
    public private(set) var dropped: UInt64 = 0
    public private(set) var closed = false
    /// The switch's ports by index (nil: none there), as `portNamed` said them.
    private var names: [String?] = []
    /// The name the client last got for each index.
    private var announced: [String?] = []
    private var record = [UInt8](repeating: 0, count: CaptureRecord.headerLength + CaptureRecord.maximumFrame)

    public init(descriptor: Int32, port: String?, controlOnly: Bool) {
        self.descriptor = descriptor
        self.portName = port
        self.controlOnly = controlOnly
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        var size: Int32 = 4 << 20
        setsockopt(descriptor, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(descriptor) }

    public func wants(port index: Int) -> Bool {
        !closed && index < names.count && names[index] != nil && (portName == nil || names[index] == portName)
    }

    /// Port `index` is now `name` (nil: removed). A port the capture covers is named to the
    /// client at once, or before its next frame if the socket is full.
    public func portNamed(_ name: String?, at index: Int) {
        while names.count <= index {
            names.append(nil)
            announced.append(nil)
        }
        names[index] = name
        if wants(port: index) { _ = announce(index) }
    }

    /// Whether the client knows port `index` by its current name (told now if not).
    private func announce(_ index: Int) -> Bool {
        guard let name = names[index] else { return false }
        if announced[index] == name { return true }
        let bytes = Array(name.utf8.prefix(CaptureRecord.maximumName))
        let header = CaptureRecord.Header(length: bytes.count, kind: .port, port: index,
                                          nanoseconds: Self.wallClock())
        record.withUnsafeMutableBytes { out in
            header.write(into: out)
            for (i, byte) in bytes.enumerated() { out[CaptureRecord.headerLength + i] = byte }
        }
        guard send(CaptureRecord.headerLength + bytes.count) else { return false }
        announced[index] = name
        return true
    }

    private static func wallClock() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// IGMP, MLD, PIM and MRD (of IPv4 and IPv6): what `--control-only` keeps.
    public static func isControl(_ frame: UnsafeRawBufferPointer) -> Bool {
        guard frame.count >= 14 else { return false }
        let etherType = frame.readUInt16(at: 12)
        if etherType == EtherType.ipv4, frame.count >= 14 + 20 {
            let proto = frame[14 + 9]
            return proto == IPv4HeaderView.ProtocolNumber.igmp || proto == IPv4HeaderView.ProtocolNumber.pim
        }
        guard etherType == EtherType.ipv6,
              let ip = try? IPv6HeaderView(checking: UnsafeRawBufferPointer(rebasing: frame[14...])),
              let upper = try? ip.upperLayer() else { return false }
        if upper.protocol == IPv6HeaderView.NextHeader.pim { return true }
        guard upper.protocol == IPv6HeaderView.NextHeader.icmpv6, let type = upper.payload.first else { return false }
        return MLDMessage.MessageType.isListenerDiscovery(type)
    }

    /// Sends one frame (untagged bytes and the tag it has on this port's wire) that port
    /// `index` received (`outbound` false) or the switch sent out of it.
    public func offer(_ frame: UnsafeRawBufferPointer, tag: VLANTag?, port index: Int, outbound: Bool, at nanoseconds: Int64) {
        guard !closed, frame.count >= 12 else { return }
        if controlOnly && !Self.isControl(frame) { return }
        let length = frame.count + (tag == nil ? 0 : 4)
        guard length <= CaptureRecord.maximumFrame else { return }
        guard announce(index) else {
            if !closed { dropped += 1 }
            return
        }
        record.withUnsafeMutableBytes { out in
            CaptureRecord.Header(length: length, kind: outbound ? .outbound : .inbound, port: index,
                                 nanoseconds: nanoseconds).write(into: out)
            var offset = CaptureRecord.headerLength
            out.baseAddress!.advanced(by: offset).copyMemory(from: frame.baseAddress!, byteCount: 12)
            offset += 12
            if let tag {
                out.writeUInt16(EtherType.vlan, at: offset)
                out.writeUInt16(tag.tci, at: offset + 2)
                offset += 4
            }
            out.baseAddress!.advanced(by: offset).copyMemory(from: frame.baseAddress! + 12, byteCount: frame.count - 12)
        }
        if !send(CaptureRecord.headerLength + length) && !closed { dropped += 1 }
    }

    /// Sends the first `total` bytes of `record` whole, or not at all (false: the socket is
    /// full, or the client left and the stream is closed).
    private func send(_ total: Int) -> Bool {
        let sent = record.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, total, clinux_MSG_DONTWAIT | clinux_MSG_NOSIGNAL) }
        if sent == total { return true }
        if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return false }
        // A partial record would corrupt the stream, and an error means the client left.
        closed = true
        return false
    }
}

/// The client side's file: pcapng (draft-ietf-opsawg-pcapng), written by hand since libpcap
/// cannot: a section header, one interface per switch port (linktype Ethernet, `if_name` the
/// port's name, nanosecond timestamps), and an enhanced packet block per frame whose `epb_flags`
/// say its direction (inbound 01, outbound 10) and reception type. Little-endian, as the
/// section header's byte-order magic says. tshark, Wireshark and tcpdump read it.
public final class PcapngWriter {
    private enum Block {
        static let sectionHeader: UInt32 = 0x0A0D_0D0A
        static let interfaceDescription: UInt32 = 1
        static let enhancedPacket: UInt32 = 6
        static let byteOrderMagic: UInt32 = 0x1A2B_3C4D
    }

    private enum Option {
        static let end: UInt16 = 0
        static let shbUserApplication: UInt16 = 4
        static let ifName: UInt16 = 2
        static let ifDescription: UInt16 = 3
        static let ifTimestampResolution: UInt16 = 9
        static let epbFlags: UInt16 = 2
    }

    /// LINKTYPE_ETHERNET.
    private static let linkTypeEthernet: UInt16 = 1

    /// epb_flags bits 0-1 (direction) and 2-4 (reception type).
    public enum Direction: UInt32, Sendable {
        case inbound = 0b01
        case outbound = 0b10
    }

    public let path: String
    private let descriptor: Int32
    private var buffer: [UInt8] = []
    private var interfaceCount: UInt32 = 0
    public private(set) var frames = 0

    /// Creates (or truncates) `path` and writes the section header.
    public init(path: String) throws(ControlError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ControlError("\(path): \(String(cString: strerror(errno)))") }
        self.path = path
        descriptor = fd
        block(Block.sectionHeader) { body in
            body.u32(Block.byteOrderMagic)
            body.u16(1)                       // major version
            body.u16(0)                       // minor version
            body.u64(UInt64.max)              // section length: not given
            body.option(Option.shbUserApplication, Array("snoopswitch".utf8))
            body.option(Option.end, [])
        }
    }

    /// A new interface (a switch port); returns its interface id for `write`.
    public func addInterface(name: String, description: String? = nil) -> UInt32 {
        block(Block.interfaceDescription) { body in
            body.u16(Self.linkTypeEthernet)
            body.u16(0)                       // reserved
            body.u32(UInt32(CaptureRecord.maximumFrame))   // snaplen
            body.option(Option.ifName, Array(name.utf8))
            if let description { body.option(Option.ifDescription, Array(description.utf8)) }
            body.option(Option.ifTimestampResolution, [9])   // 10^-9 s
            body.option(Option.end, [])
        }
        defer { interfaceCount += 1 }
        return interfaceCount
    }

    /// One frame, seen on `interface` in `direction` at `nanoseconds` since 1970.
    public func write(_ frame: UnsafeRawBufferPointer, interface: UInt32, direction: Direction, nanoseconds: Int64) {
        let time = UInt64(bitPattern: nanoseconds)
        block(Block.enhancedPacket) { body in
            body.u32(interface)
            body.u32(UInt32(truncatingIfNeeded: time >> 32))
            body.u32(UInt32(truncatingIfNeeded: time))
            body.u32(UInt32(frame.count))     // captured length
            body.u32(UInt32(frame.count))     // original length
            body.bytes.append(contentsOf: frame)
            body.pad()
            var flags = direction.rawValue
            if frame.count >= 6 {
                // Reception type: 001 unicast, 010 multicast, 011 broadcast.
                let broadcast = frame.prefix(6).allSatisfy { $0 == 0xff }
                let reception: UInt32 = broadcast ? 0b011 : frame[0] & 1 != 0 ? 0b010 : 0b001
                flags |= reception << 2
            }
            body.option(Option.epbFlags, withUnsafeBytes(of: flags.littleEndian) { Array($0) })
            body.option(Option.end, [])
        }
        frames += 1
        if buffer.count >= 1 << 16 { try? flush() }
    }

    /// Writes what is buffered to the file.
    public func flush() throws(ControlError) {
        var offset = 0
        while offset < buffer.count {
            let n = buffer[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let message = String(cString: strerror(errno))
                buffer.removeAll(keepingCapacity: true)
                throw ControlError("\(path): \(message)")
            }
            offset += n
        }
        buffer.removeAll(keepingCapacity: true)
    }

    deinit {
        try? flush()
        close(descriptor)
    }

    /// A block: type, total length, the body, total length again.
    private func block(_ type: UInt32, _ fill: (inout Body) -> Void) {
        var body = Body()
        fill(&body)
        let total = UInt32(12 + body.bytes.count)
        var head = Body()
        head.u32(type)
        head.u32(total)
        buffer += head.bytes
        buffer += body.bytes
        var tail = Body()
        tail.u32(total)
        buffer += tail.bytes
    }

    /// A block's body, little-endian, options padded to 32 bits.
    private struct Body {
        var bytes: [UInt8] = []
        mutating func u16(_ value: UInt16) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        mutating func pad() { while bytes.count % 4 != 0 { bytes.append(0) } }
        mutating func option(_ code: UInt16, _ value: [UInt8]) {
            u16(code)
            u16(UInt16(value.count))
            bytes += value
            pad()
        }
    }
}
