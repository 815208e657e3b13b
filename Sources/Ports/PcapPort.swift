#if canImport(Glibc)
import Glibc
#endif
import CPcap
import Wire

/// A port through libpcap (`NAME:pcap`): immediate mode, inbound only (PCAP_D_IN, so our own
/// transmissions are not read back), `pcap_inject` to send. libpcap puts VLAN tags back in the
/// frame. It has no virtio-net header, so this backend does in software what the kernel would:
/// on receive it completes checksums the sender's offload left unfinished and marks frames larger
/// than the MTU as TCP segmentation work for the other ports' kernels; on send it completes
/// partial checksums and cuts GSO frames into MTU-sized TCP segments.
public final class PcapPort {
    public let interfaceName: String
    public let descriptor: Int32
    private let handle: OpaquePointer
    private let mtu: Int
    public private(set) var refused: UInt64 = 0

    public init(interface name: String) throws(SystemError) {
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let handle = pcap_create(name, &errorBuffer) else {
            throw SystemError("pcap_create: \(String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))", "interface \(name)", errno: ENODEV)
        }
        func fail(_ call: String) -> SystemError {
            let message = String(cString: pcap_geterr(handle))
            pcap_close(handle)
            return SystemError("\(call): \(message)", "interface \(name)", errno: EINVAL)
        }
        pcap_set_snaplen(handle, Int32(ReceiveBatch.bufferSize - VirtioNetHeader.length))
        pcap_set_promisc(handle, 1)
        pcap_set_immediate_mode(handle, 1)
        pcap_set_timeout(handle, 1)          // ms: how long a ring block may wait before we are woken
        pcap_set_buffer_size(handle, 16 << 20)
        guard pcap_activate(handle) >= 0 else { throw fail("pcap_activate") }
        guard pcap_setdirection(handle, PCAP_D_IN) == 0 else { throw fail("pcap_setdirection") }
        guard pcap_setnonblock(handle, 1, &errorBuffer) == 0 else { throw fail("pcap_setnonblock") }
        let fd = pcap_get_selectable_fd(handle)
        guard fd >= 0 else { throw fail("pcap_get_selectable_fd") }
        self.handle = handle
        self.descriptor = fd
        self.interfaceName = name
        self.mtu = InterfaceState.read(name)?.mtu ?? 1500
        self.receiving = Receiving(mtu: mtu)
    }

    deinit { pcap_close(handle) }

    /// Reads what libpcap has, up to the batch's capacity.
    public func receive(into batch: ReceiveBatch) -> Int {
        batch.beginFilling()
        receiving.batch = batch
        defer { receiving.batch = nil }
        let context = Unmanaged.passUnretained(receiving)
        _ = pcap_dispatch(handle, Int32(batch.capacity), { user, header, bytes in
            guard let user, let header, let bytes else { return }
            let receiving = Unmanaged<Receiving>.fromOpaque(UnsafeRawPointer(user)).takeUnretainedValue()
            guard let batch = receiving.batch else { return }
            let frame = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(mutating: bytes), count: Int(header.pointee.caplen))
            let vnet = SoftwareOffload.prepareReceived(frame, mtu: receiving.mtu)
            _ = batch.store(UnsafeRawBufferPointer(frame), header: vnet)
        }, UnsafeMutablePointer(OpaquePointer(context.toOpaque())))
        return batch.count
    }

    /// What libpcap's callback needs, kept alive by the port.
    private final class Receiving {
        var batch: ReceiveBatch?
        let mtu: Int
        init(mtu: Int) { self.mtu = mtu }
    }
    private let receiving: Receiving

    /// Sends what the queue holds, finishing checksums and segmenting as needed.
    public func flush(_ queue: TransmitQueue) -> (sent: Int, failed: Int, bytes: Int) {
        queue.drain { header, frame in
            var ok = true
            SoftwareOffload.finish(frame, header: header, mtu: mtu) { piece in
                if pcap_inject(handle, piece.baseAddress, piece.count) < 0 { ok = false }
            }
            return ok
        }
    }
}

/// What a NIC's offloads or the kernel would do to a frame, done in user space for a backend
/// without virtio-net headers.
public enum SoftwareOffload {
    /// Where a frame's IPv4 header starts, after at most one 802.1Q tag; nil if not IPv4.
    static func ipv4Offset(_ frame: UnsafeRawBufferPointer) -> Int? {
        guard let ip = networkOffset(frame, etherType: EtherType.ipv4, headerLength: 20), frame[ip] >> 4 == 4 else { return nil }
        return ip
    }

    /// Where a frame's IPv6 header starts, after at most one 802.1Q tag, when UDP or TCP follows
    /// it directly (no extension header); nil otherwise.
    static func ipv6Offset(_ frame: UnsafeRawBufferPointer) -> Int? {
        guard let ip = networkOffset(frame, etherType: EtherType.ipv6, headerLength: 40), frame[ip] >> 4 == 6 else { return nil }
        let next = frame[ip + 6]
        guard next == IPv6HeaderView.NextHeader.udp || next == IPv6HeaderView.NextHeader.tcp else { return nil }
        return ip
    }

    /// Where the network header of `etherType` starts, after at most one 802.1Q tag, when the
    /// frame holds `headerLength` bytes of it; nil otherwise.
    private static func networkOffset(_ frame: UnsafeRawBufferPointer, etherType: UInt16, headerLength: Int) -> Int? {
        guard frame.count >= 14 + headerLength else { return nil }
        var offset = 12
        if frame.readUInt16(at: offset) == EtherType.vlan { offset += 4 }
        guard frame.count >= offset + 2 + headerLength, frame.readUInt16(at: offset) == etherType else { return nil }
        return offset + 2
    }

    /// The UDP or TCP checksum of an IPv6 datagram (pseudo-header of RFC 8200 8.1), written
    /// into its field; false when the datagram does not fit the frame.
    @discardableResult
    static func fillIPv6Checksum(_ frame: UnsafeMutableRawBufferPointer, ip: Int) -> Bool {
        let next = frame[ip + 6]
        let length = Int(frame.readUInt16(at: ip + 4))
        let l4 = ip + 40
        let field = next == IPv6HeaderView.NextHeader.tcp ? 16 : 6
        guard l4 + length <= frame.count, field + 2 <= length else { return false }
        frame.writeUInt16(0, at: l4 + field)
        let bytes = UnsafeRawBufferPointer(frame)
        let source = IPv6Address(bytes, at: ip + 8), destination = IPv6Address(bytes, at: ip + 24)
        var result = InternetChecksum.compute(UnsafeRawBufferPointer(rebasing: bytes[l4..<(l4 + length)]),
                                              source: source, destination: destination, nextHeader: next)
        if result == 0 && next == IPv6HeaderView.NextHeader.udp { result = 0xffff }    // RFC 8200 8.1: never 0
        frame.writeUInt16(result, at: l4 + field)
        return true
    }

    /// A received frame: TCP or UDP checksums are completed (a sender with checksum offload left
    /// them partial, and nothing here says which), and a frame larger than the MTU (a GSO frame,
    /// so its checksum is partial) is described as TCP segmentation work (IPv4).
    static func prepareReceived(_ frame: UnsafeMutableRawBufferPointer, mtu: Int) -> VirtioNetHeader {
        var header = VirtioNetHeader()
        if let ip = ipv6Offset(UnsafeRawBufferPointer(frame)) {
            let l4 = ip + 40
            let length = Int(frame.readUInt16(at: ip + 4))
            if 40 + length > mtu, frame[ip + 6] == IPv6HeaderView.NextHeader.tcp, l4 + 20 <= frame.count,
               l4 + length <= frame.count {
                let tcpHeader = Int(frame[l4 + 12] >> 4) * 4
                header.flags = VirtioNetHeader.needsChecksum
                header.checksumStart = UInt16(l4)
                header.checksumOffset = 16
                header.gsoType = 4                                  // VIRTIO_NET_HDR_GSO_TCPV6
                header.gsoSize = UInt16(mtu - 40 - tcpHeader)
                header.headerLength = UInt16(l4 + tcpHeader)
                return header
            }
            fillIPv6Checksum(frame, ip: ip)
            return header
        }
        guard let ip = ipv4Offset(UnsafeRawBufferPointer(frame)) else { return header }
        let ihl = Int(frame[ip] & 0x0f) * 4
        let total = Int(frame.readUInt16(at: ip + 2))
        let proto = frame[ip + 9]
        let l4 = ip + ihl
        guard ihl >= 20, total >= ihl, ip + total <= frame.count, frame.readUInt16(at: ip + 6) & 0x3fff == 0 else { return header }
        let checksumField = proto == IPv4HeaderView.ProtocolNumber.tcp ? 16 : proto == IPv4HeaderView.ProtocolNumber.udp ? 6 : -1
        guard checksumField >= 0, l4 + checksumField + 2 <= frame.count else { return header }
        if total > mtu, proto == IPv4HeaderView.ProtocolNumber.tcp, l4 + 20 <= frame.count {
            let tcpHeader = Int(frame[l4 + 12] >> 4) * 4
            header.flags = VirtioNetHeader.needsChecksum
            header.checksumStart = UInt16(l4)
            header.checksumOffset = 16
            header.gsoType = 1                                  // VIRTIO_NET_HDR_GSO_TCPV4
            header.gsoSize = UInt16(mtu - ihl - tcpHeader)
            header.headerLength = UInt16(l4 + tcpHeader)
            return header
        }
        if proto == IPv4HeaderView.ProtocolNumber.udp, frame.readUInt16(at: l4 + 6) == 0 { return header }   // no UDP checksum
        fillChecksum(frame, ip: ip, l4: l4, length: total - ihl, field: checksumField)
        return header
    }

    /// The TCP/UDP checksum over the pseudo-header and the segment, written into its field.
    static func fillChecksum(_ frame: UnsafeMutableRawBufferPointer, ip: Int, l4: Int, length: Int, field: Int) {
        frame.writeUInt16(0, at: l4 + field)
        let bytes = UnsafeRawBufferPointer(frame)
        // The pseudo-header (RFC 768, RFC 9293 3.1): addresses, protocol, length; then the segment.
        var sum = InternetChecksum.accumulate(UnsafeRawBufferPointer(rebasing: bytes[(ip + 12)..<(ip + 20)]))
        sum &+= UInt64(frame[ip + 9]) &+ UInt64(length)
        sum = InternetChecksum.accumulate(UnsafeRawBufferPointer(rebasing: bytes[l4..<(l4 + length)]), into: sum)
        var result = InternetChecksum.finish(sum)
        if result == 0 && frame[ip + 9] == IPv4HeaderView.ProtocolNumber.udp { result = 0xffff }
        frame.writeUInt16(result, at: l4 + field)
    }

    /// A frame to send without a virtio-net header: its partial checksum finished, a TCP GSO frame
    /// cut into segments of `gsoSize` bytes. Each finished frame goes to `emit`.
    static func finish(_ frame: UnsafeRawBufferPointer, header: VirtioNetHeader, mtu: Int,
                       _ emit: (UnsafeRawBufferPointer) -> Void) {
        if header.gsoType == 0 && !header.checksumPending { return emit(frame) }
        var copy = [UInt8](frame)
        copy.withUnsafeMutableBytes { out in
            if let ip = ipv6Offset(UnsafeRawBufferPointer(out)) {
                guard header.gsoType != 0, out[ip + 6] == IPv6HeaderView.NextHeader.tcp, ip + 40 + 20 <= out.count else {
                    fillIPv6Checksum(out, ip: ip)
                    return emit(UnsafeRawBufferPointer(out))
                }
                return segment(out, ip: ip, l4: ip + 40, mss: Int(header.gsoSize), ipv6: true, emit)
            }
            guard let ip = ipv4Offset(UnsafeRawBufferPointer(out)) else { return emit(UnsafeRawBufferPointer(out)) }
            let ihl = Int(out[ip] & 0x0f) * 4
            let l4 = ip + ihl
            let proto = out[ip + 9]
            if header.gsoType == 0 || proto != IPv4HeaderView.ProtocolNumber.tcp {
                let total = Int(out.readUInt16(at: ip + 2))
                let field = proto == IPv4HeaderView.ProtocolNumber.tcp ? 16 : 6
                if ip + total <= out.count, l4 + field + 2 <= out.count, proto == 6 || proto == 17 {
                    fillChecksum(out, ip: ip, l4: l4, length: total - ihl, field: field)
                }
                return emit(UnsafeRawBufferPointer(out))
            }
            segment(out, ip: ip, l4: l4, mss: Int(header.gsoSize), emit)
        }
    }

    /// TCP segmentation (what TSO does): the headers repeated, the payload cut in `mss` pieces,
    /// sequence numbers, IP ids, lengths, flags and checksums set for each.
    static func segment(_ frame: UnsafeMutableRawBufferPointer, ip: Int, l4: Int, mss: Int, ipv6: Bool = false,
                        _ emit: (UnsafeRawBufferPointer) -> Void) {
        let tcpHeader = Int(frame[l4 + 12] >> 4) * 4
        let payloadStart = l4 + tcpHeader
        let total = ipv6 ? 40 + Int(frame.readUInt16(at: ip + 4)) : Int(frame.readUInt16(at: ip + 2))
        let end = min(frame.count, ip + total)
        guard mss > 0, payloadStart <= end else { return }
        let sequence = frame.readUInt32(at: l4 + 4)
        let ipID = ipv6 ? 0 : frame.readUInt16(at: ip + 4)
        let flags = frame[l4 + 13]
        var piece = [UInt8](repeating: 0, count: payloadStart + mss)
        var offset = payloadStart
        var index: UInt16 = 0
        while offset < end {
            let length = min(mss, end - offset)
            let last = offset + length >= end
            piece.removeAll(keepingCapacity: true)
            piece.append(contentsOf: UnsafeRawBufferPointer(rebasing: frame[0..<payloadStart]))
            piece.append(contentsOf: UnsafeRawBufferPointer(rebasing: frame[offset..<offset + length]))
            piece.withUnsafeMutableBytes { out in
                if ipv6 {
                    // IPv6 has no header checksum nor identification: only the payload length.
                    out.writeUInt16(UInt16(tcpHeader + length), at: ip + 4)
                } else {
                    out.writeUInt16(UInt16(ihlTotal(ip: ip, l4: l4, tcpHeader: tcpHeader, payload: length)), at: ip + 2)
                    out.writeUInt16(ipID &+ index, at: ip + 4)
                    out.writeUInt16(0, at: ip + 10)
                    out.writeUInt16(InternetChecksum.compute(UnsafeRawBufferPointer(rebasing: out[ip..<l4])), at: ip + 10)
                }
                out.writeUInt32(sequence &+ UInt32(offset - payloadStart), at: l4 + 4)
                // FIN and PSH only on the last segment, CWR only on the first.
                var segmentFlags = flags
                if !last { segmentFlags &= ~0x09 }
                if index > 0 { segmentFlags &= ~0x80 }
                out[l4 + 13] = segmentFlags
                if ipv6 {
                    fillIPv6Checksum(out, ip: ip)
                } else {
                    fillChecksum(out, ip: ip, l4: l4, length: tcpHeader + length, field: 16)
                }
                emit(UnsafeRawBufferPointer(out))
            }
            offset += length
            index &+= 1
        }
    }

    private static func ihlTotal(ip: Int, l4: Int, tcpHeader: Int, payload: Int) -> Int { l4 - ip + tcpHeader + payload }
}
