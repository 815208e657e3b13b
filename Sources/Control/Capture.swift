#if canImport(Glibc)
import Glibc
#endif
import CPcap
import CLinux
import Foundation
import Wire

/// The capture stream of the control socket: after a `capture PORT|* all|control` request and
/// its `{"ok":true}` line, the switch sends each frame it receives and sends as a record:
///
///     | length (4, network order) | direction (1: 0 in, 1 out) | time (8, ns, network order) | frame |
///
/// `snoopswitch capture` writes the frames to a pcap file with libpcap's dump writer.
public enum CaptureRecord {
    public static let headerLength = 13
    /// Frames never exceed this (a GSO frame with its tag).
    public static let maximumFrame = 65_536 + 4
}

/// One capture client, in the daemon: a non-blocking socket that gets records while it keeps up
/// (a record that does not fit is dropped and counted, never waited for).
public final class CaptureStream {
    public let descriptor: Int32
    /// nil: every port.
    public let port: Int?
    public let controlOnly: Bool
    public private(set) var dropped: UInt64 = 0
    public private(set) var closed = false
    private var record = [UInt8](repeating: 0, count: CaptureRecord.headerLength + CaptureRecord.maximumFrame)

    public init(descriptor: Int32, port: Int?, controlOnly: Bool) {
        self.descriptor = descriptor
        self.port = port
        self.controlOnly = controlOnly
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        var size: Int32 = 4 << 20
        setsockopt(descriptor, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(descriptor) }

    public func wants(port index: Int) -> Bool { !closed && (port == nil || port == index) }

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

    /// Sends one frame (untagged bytes and the tag it has on this port's wire).
    public func offer(_ frame: UnsafeRawBufferPointer, tag: VLANTag?, outbound: Bool, at nanoseconds: Int64) {
        guard !closed, frame.count >= 12 else { return }
        if controlOnly && !Self.isControl(frame) { return }
        let length = frame.count + (tag == nil ? 0 : 4)
        guard length <= CaptureRecord.maximumFrame else { return }
        record.withUnsafeMutableBytes { out in
            out.writeUInt32(UInt32(length), at: 0)
            out[4] = outbound ? 1 : 0
            out.writeUInt32(UInt32(truncatingIfNeeded: UInt64(nanoseconds) >> 32), at: 5)
            out.writeUInt32(UInt32(truncatingIfNeeded: UInt64(nanoseconds)), at: 9)
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
        let total = CaptureRecord.headerLength + length
        let sent = record.withUnsafeBytes { send(descriptor, $0.baseAddress, total, clinux_MSG_DONTWAIT | clinux_MSG_NOSIGNAL) }
        if sent == total { return }
        if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
            dropped += 1
            return
        }
        // A partial record would corrupt the stream, and an error means the client left.
        closed = true
    }
}

/// The client side: reads records and writes a pcap file that tshark and tcpdump open.
public final class PcapWriter {
    private let handle: OpaquePointer
    private let dumper: OpaquePointer
    public private(set) var frames = 0

    public init(path: String) throws(ControlError) {
        guard let handle = pcap_open_dead(DLT_EN10MB, Int32(CaptureRecord.maximumFrame)) else {
            throw ControlError("\(path): pcap_open_dead failed")
        }
        guard let dumper = pcap_dump_open(handle, path) else {
            let message = String(cString: pcap_geterr(handle))
            pcap_close(handle)
            throw ControlError("\(path): \(message)")
        }
        self.handle = handle
        self.dumper = dumper
    }

    public func write(_ frame: UnsafeRawBufferPointer, nanoseconds: Int64) {
        var header = pcap_pkthdr()
        header.ts.tv_sec = Int(nanoseconds / 1_000_000_000)
        header.ts.tv_usec = Int(nanoseconds % 1_000_000_000 / 1000)
        header.caplen = UInt32(frame.count)
        header.len = UInt32(frame.count)
        pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), &header,
                  frame.baseAddress!.assumingMemoryBound(to: UInt8.self))
        frames += 1
    }

    public func flush() { pcap_dump_flush(dumper) }

    deinit {
        pcap_dump_close(dumper)
        pcap_close(handle)
    }
}
