#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Wire

/// A frame as received: its virtio-net header, its bytes without any 802.1Q tag, and the tag.
public struct ReceivedFrame {
    public var header: VirtioNetHeader
    public var bytes: UnsafeRawBufferPointer
    public var tag: VLANTag?
    /// The kernel stripped an 802.1ad S-tag (TPID 0x88A8), not an 802.1Q tag: `tag` is nil and
    /// the frame is not for a C-VLAN bridge (the engine drops it).
    public var serviceTagged: Bool
    /// The header, as received, sits in the 10 bytes before `bytes`: the frame leaves again
    /// as one piece of memory when it keeps its tagging.
    public var headerPrecedes: Bool
}

/// Up to `capacity` received frames, however they were read: with one recvmmsg into the
/// batch's own buffers, from a TAP device, from libpcap, or in place in a receive ring.
/// The frames stay valid until the next fill (and, for a ring, until the ring is released).
public final class ReceiveBatch {
    public let capacity: Int
    /// Room for the largest GSO frame the kernel hands over, with its header.
    public static let bufferSize = 65_536 + VirtioNetHeader.length + 64

    /// Where one frame is: its virtio-net header followed by the frame, and the tag the kernel
    /// took out of it (or nil: look in the bytes). A nil `start` is a frame that was cut short.
    struct Entry {
        var start: UnsafeMutableRawPointer?
        var length: Int
        var strippedTag: VLANTag?
        /// The stripped tag was an 802.1ad S-tag (its TPID said so).
        var serviceTagged = false

        static var cut: Entry { Entry(start: nil, length: 0, strippedTag: nil) }
    }

    /// The kernel's stripped tag, split by its TPID (reported since Linux 3.14; older: 802.1Q).
    @inline(__always)
    static func stripped(tci: UInt16, tpid: UInt16, status: UInt32) -> (tag: VLANTag?, serviceTagged: Bool) {
        guard status & clinux_TP_STATUS_VLAN_VALID != 0 else { return (nil, false) }
        if status & clinux_TP_STATUS_VLAN_TPID_VALID != 0 && tpid == EtherType.serviceTag { return (nil, true) }
        return (VLANTag(tci: tci), false)
    }

    private let storage: UnsafeMutableRawPointer
    private let control: UnsafeMutableRawPointer
    private let controlSize: Int
    private let iovecs: UnsafeMutablePointer<iovec>
    private let messages: UnsafeMutablePointer<clinux_mmsghdr>
    private let entries: UnsafeMutablePointer<Entry>
    public private(set) var count = 0

    public init(capacity: Int = 32) {
        self.capacity = capacity
        storage = .allocate(byteCount: capacity * Self.bufferSize, alignment: 16)
        controlSize = clinux_auxdata_space() + 16
        control = .allocate(byteCount: capacity * controlSize, alignment: 16)
        iovecs = .allocate(capacity: capacity)
        messages = .allocate(capacity: capacity)
        entries = .allocate(capacity: capacity)
        entries.initialize(repeating: .cut, count: capacity)
        for i in 0..<capacity {
            iovecs[i] = iovec(iov_base: storage + i * Self.bufferSize, iov_len: Self.bufferSize)
        }
    }

    deinit {
        storage.deallocate()
        control.deallocate()
        iovecs.deallocate()
        messages.deallocate()
        entries.deallocate()
    }

    private func buffer(_ i: Int) -> UnsafeMutableRawPointer { storage + i * Self.bufferSize }

    /// Reads what is waiting on `socket`'s queue, up to the capacity; 0 when nothing is.
    public func receive(from socket: PacketSocket) throws(SystemError) -> Int {
        count = 0
        for i in 0..<capacity { prepareMessage(i, buffer: i) }
        let n = try receiveMessages(from: socket, limit: capacity)
        for i in 0..<n { entries[i] = entry(ofMessage: i, buffer: i) }
        count = n
        return count
    }

    /// Points message `i` at buffer `buffer` and its control space.
    private func prepareMessage(_ i: Int, buffer: Int) {
        var header = msghdr()
        header.msg_iov = iovecs + buffer
        header.msg_iovlen = 1
        header.msg_control = control + buffer * controlSize
        header.msg_controllen = controlSize
        messages[i] = clinux_mmsghdr(msg_hdr: header, msg_len: 0)
    }

    /// recvmmsg into the first `limit` messages; returns how many arrived.
    private func receiveMessages(from socket: PacketSocket, limit: Int) throws(SystemError) -> Int {
        while true {
            let n = clinux_recvmmsg(socket.descriptor, messages, UInt32(limit), Int32(MSG_DONTWAIT))
            if n >= 0 { return Int(n) }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return 0 }
            throw SystemError("recvmmsg", "interface \(socket.interfaceName)")
        }
    }

    private func entry(ofMessage i: Int, buffer: Int) -> Entry {
        var hdr = messages[i].msg_hdr
        // Cut by the kernel (did not fit): the caller counts it as a receive error.
        if hdr.msg_flags & Int32(MSG_TRUNC) != 0 { return .cut }
        var auxdata = tpacket_auxdata()
        var stripped: (tag: VLANTag?, serviceTagged: Bool) = (nil, false)
        if clinux_read_auxdata(&hdr, &auxdata) != 0 {
            stripped = Self.stripped(tci: auxdata.tp_vlan_tci, tpid: auxdata.tp_vlan_tpid, status: auxdata.tp_status)
        }
        return Entry(start: self.buffer(buffer), length: Int(messages[i].msg_len), strippedTag: stripped.tag,
                     serviceTagged: stripped.serviceTagged)
    }

    /// Takes up to the capacity of the frames the kernel has put in `ring`, in place. Frames too
    /// big for a slot wait whole on the socket's queue, in ring order: they are read together
    /// with one recvmmsg. The caller hands the slots back with `ring.release()` once it is done
    /// with the frames.
    public func receive(from ring: ReceiveRing, of socket: PacketSocket) throws(SystemError) -> Int {
        count = 0
        var queued = 0
        while count < capacity, let slot = ring.take() {
            if slot.status & clinux_TP_STATUS_COPY != 0 {
                prepareMessage(queued, buffer: count)
                queued += 1
                entries[count] = .cut
            } else if slot.captured < slot.length {
                entries[count] = .cut        // too big and no room on the queue either
            } else {
                let stripped = Self.stripped(tci: slot.vlanTCI, tpid: slot.vlanTPID, status: slot.status)
                entries[count] = Entry(start: slot.frame - VirtioNetHeader.length,
                                       length: slot.captured + VirtioNetHeader.length, strippedTag: stripped.tag,
                                       serviceTagged: stripped.serviceTagged)
            }
            count += 1
        }
        if queued > 0 {
            let n = try receiveMessages(from: socket, limit: queued)
            for i in 0..<n {
                // Message i was pointed at the buffer of its slot's entry (prepareMessage).
                let buffer = messages[i].msg_hdr.msg_iov - iovecs
                entries[buffer] = entry(ofMessage: i, buffer: buffer)
            }
        }
        return count
    }

    /// Reads what is waiting on a TAP device, one frame per read, up to the capacity.
    public func receive(from tap: TapDevice) throws(SystemError) -> Int {
        count = 0
        while count < capacity {
            let n = read(tap.descriptor, buffer(count), Self.bufferSize)
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                throw SystemError("read", "TAP \(tap.interfaceName)")
            }
            // No auxdata: tags stay in the frame.
            entries[count] = Entry(start: buffer(count), length: n, strippedTag: nil)
            count += 1
        }
        return count
    }

    /// Starts a batch filled by the caller (libpcap's callback), one `store` per frame.
    public func beginFilling() { count = 0 }

    /// Stores one frame with the virtio-net header the caller made up for it; false when full.
    public func store(_ frame: UnsafeRawBufferPointer, header: VirtioNetHeader) -> Bool {
        guard count < capacity, frame.count + VirtioNetHeader.length <= Self.bufferSize else { return false }
        let base = buffer(count)
        header.write(to: base)
        (base + VirtioNetHeader.length).copyMemory(from: frame.baseAddress!, byteCount: frame.count)
        entries[count] = Entry(start: base, length: frame.count + VirtioNetHeader.length, strippedTag: nil)
        count += 1
        return true
    }

    /// The i-th frame of the last batch, with the tag recovered from what the kernel stripped
    /// or from the bytes (an inline tag is taken out by moving the MAC addresses over it). Nil
    /// for a runt or a frame cut short.
    public func frame(_ i: Int) -> ReceivedFrame? {
        let entry = entries[i]
        guard let base = entry.start, entry.length >= VirtioNetHeader.length + EthernetFrameView.headerLength else { return nil }
        var header = VirtioNetHeader(base)
        var start = base + VirtioNetHeader.length
        var frameLength = entry.length - VirtioNetHeader.length
        var tag = entry.strippedTag
        var headerPrecedes = true
        if tag == nil, !entry.serviceTagged, let inline = (try? EthernetFrameView(checking: UnsafeRawBufferPointer(start: start, count: frameLength)))?.inlineTag {
            tag = inline
            (start + 4).copyMemory(from: start, byteCount: 12)
            start += 4
            frameLength -= 4
            header = header.shifted(by: -4)
            headerPrecedes = false
        }
        return ReceivedFrame(header: header, bytes: UnsafeRawBufferPointer(start: start, count: frameLength), tag: tag,
                             serviceTagged: entry.serviceTagged, headerPrecedes: headerPrecedes)
    }
}
