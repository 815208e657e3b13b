#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Wire

/// An AF_PACKET socket bound to one interface, set up the way a switch port needs it:
/// virtio-net headers for partial checksums and GSO frames (forwarded as raw bytes, a frame with
/// an unfinished checksum is dropped by its receiver, and one larger than the MTU cannot be
/// sent), auxdata for the VLAN tags the kernel strips, our own transmissions ignored, promiscuous.
///
/// Frames leave through a second socket that only sends. The kernel tells a socket's waiters
/// each time one of its sent frames is freed; the receiving socket always has one (our epoll),
/// and that wake-up is a locked walk of its wait queue per forwarded frame. Nobody waits on the
/// sending socket.
public final class PacketSocket {
    public let interfaceName: String
    public let interfaceIndex: Int32
    /// The receiving socket (epoll waits on it).
    public let descriptor: Int32
    /// The sending socket: bound to the interface with protocol 0, it receives nothing. It
    /// bypasses the interface's queueing layer, and with it the TCX egress hook.
    public let sendDescriptor: Int32
    /// A sending socket that goes through the queueing layer, where TCX egress programs run
    /// (nil until `openEgressHookSocket`): for frames that name a replica list.
    public private(set) var egressHookDescriptor: Int32?
    private let sendBufferBytes: Int32
    /// The receive ring, when the socket was opened with one; else frames are read with recvmmsg.
    public let ring: ReceiveRing?

    /// `ringBytes` > 0 maps a receive ring of about that size (see ReceiveRing).
    public init(interface name: String, receiveBufferBytes: Int32 = 16 << 20, ringBytes: Int = 0) throws(SystemError) {
        let index = if_nametoindex(name)
        guard index != 0 else { throw SystemError("if_nametoindex", "interface \(name)", errno: ENODEV) }
        // Protocol 0: the socket hears nothing until bound to its interface, so that no frame of
        // another interface is queued before the ring exists.
        let fd = try Self.openSocket(name)
        let sendFD: Int32
        do throws(SystemError) {
            try Self.setOption(fd, clinux_SOL_PACKET, clinux_PACKET_AUXDATA, 1, name)
            try Self.setOption(fd, clinux_SOL_PACKET, clinux_PACKET_IGNORE_OUTGOING, 1, name)
            Self.setBuffer(fd, SO_RCVBUFFORCE, else: SO_RCVBUF, bytes: receiveBufferBytes)
            ring = ringBytes > 0 ? try ReceiveRing(descriptor: fd, bytes: ringBytes, interface: name) : nil
            try Self.bind(fd, index: Int32(index), protocol: UInt16(clinux_ETH_P_ALL), name)
            var membership = packet_mreq()
            membership.mr_ifindex = Int32(index)
            membership.mr_type = UInt16(clinux_PACKET_MR_PROMISC)
            guard setsockopt(fd, clinux_SOL_PACKET, clinux_PACKET_ADD_MEMBERSHIP, &membership,
                             socklen_t(MemoryLayout<packet_mreq>.size)) == 0 else {
                throw SystemError("PACKET_ADD_MEMBERSHIP", "interface \(name)")
            }
            sendFD = try Self.openSocket(name)
            do throws(SystemError) {
                // Our frames go straight to the device: a veth has no queue worth passing through.
                try Self.setOption(sendFD, clinux_SOL_PACKET, clinux_PACKET_QDISC_BYPASS, 1, name)
                Self.setBuffer(sendFD, SO_SNDBUFFORCE, else: SO_SNDBUF, bytes: receiveBufferBytes)
                try Self.bind(sendFD, index: Int32(index), protocol: 0, name)
            } catch {
                close(sendFD)
                throw error
            }
        } catch {
            close(fd)
            throw error
        }
        self.interfaceName = name
        self.interfaceIndex = Int32(index)
        self.descriptor = fd
        self.sendDescriptor = sendFD
        self.sendBufferBytes = receiveBufferBytes
    }

    /// Opens `egressHookDescriptor` (once), for the frames the interface's TCX egress program
    /// must see (EgressReplication).
    public func openEgressHookSocket() throws(SystemError) {
        guard egressHookDescriptor == nil else { return }
        let fd = try Self.openSocket(interfaceName)
        do throws(SystemError) {
            Self.setBuffer(fd, SO_SNDBUFFORCE, else: SO_SNDBUF, bytes: sendBufferBytes)
            try Self.bind(fd, index: interfaceIndex, protocol: 0, interfaceName)
        } catch {
            close(fd)
            throw error
        }
        egressHookDescriptor = fd
    }

    /// A socket buffer of `bytes`: the forced size past the system's limit needs CAP_NET_ADMIN;
    /// without it, the plain one (up to the limit), quietly.
    private static func setBuffer(_ fd: Int32, _ forced: Int32, else plain: Int32, bytes: Int32) {
        if setsockopt(fd, SOL_SOCKET, forced, [bytes], 4) != 0 { _ = setsockopt(fd, SOL_SOCKET, plain, [bytes], 4) }
    }

    /// A packet socket that takes and gives virtio-net headers, bound to nothing yet.
    private static func openSocket(_ name: String) throws(SystemError) -> Int32 {
        let fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket(AF_PACKET)", "interface \(name)") }
        do throws(SystemError) {
            try setOption(fd, clinux_SOL_PACKET, clinux_PACKET_VNET_HDR, 1, name)
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// Binds to the interface; protocol 0 sends only (the kernel hands it no frame).
    private static func bind(_ fd: Int32, index: Int32, protocol: UInt16, _ name: String) throws(SystemError) {
        var address = sockaddr_ll()
        address.sll_family = UInt16(AF_PACKET)
        address.sll_protocol = `protocol`.bigEndian
        address.sll_ifindex = index
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_ll>.size))
            }
        }
        guard bound == 0 else { throw SystemError("bind", "interface \(name)") }
    }

    private static func setOption(_ fd: Int32, _ level: Int32, _ option: Int32, _ value: Int32, _ name: String) throws(SystemError) {
        var v = value
        guard setsockopt(fd, level, option, &v, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw SystemError("setsockopt(\(option))", "interface \(name)")
        }
    }

    /// Shares the interface's frames with other sockets, one per forwarding thread, and a
    /// socket whose ring is full rolls its excess over to another instead of dropping it.
    /// With `steering`, a flow's frames go to the socket of the CPU its first frame arrived on
    /// (the i-th socket to join of n takes CPUs i, i + n...: see FanoutSteering); without, by
    /// flow hash. `group` nil starts a new group with an id the kernel picks, and gives it the
    /// steering program; returns the group's id for the other sockets to join.
    ///
    /// A fanout group hears the interface's outgoing frames too (the PACKET_IGNORE_OUTGOING of
    /// its sockets does not carry over): the namespace's own IPv6 chatter on the interface, and
    /// frames the kernel fast path redirects out of it. The group is asked to leave them out
    /// (Linux 6.9 and later; before, the fast path's socket filter does).
    public func joinFanout(group: UInt16?, steering: FanoutSteering?) throws(SystemError) -> UInt16 {
        let mode = (steering == nil ? clinux_PACKET_FANOUT_HASH : clinux_PACKET_FANOUT_EBPF) | clinux_PACKET_FANOUT_FLAG_ROLLOVER
        func join(_ flags: Int32) -> Bool {
            var value = group.map { Int32($0) | flags << 16 } ?? (flags | clinux_PACKET_FANOUT_FLAG_UNIQUEID) << 16
            return setsockopt(descriptor, clinux_SOL_PACKET, clinux_PACKET_FANOUT, &value, 4) == 0
        }
        guard join(mode | Self.fanoutIgnoresOutgoing) || (errno == EINVAL && join(mode)) else {
            throw SystemError("setsockopt(PACKET_FANOUT)", "interface \(interfaceName)")
        }
        var value: Int32 = 0
        if let group { return group }
        try steering?.attach(to: descriptor, interface: interfaceName)
        var length = socklen_t(4)
        guard getsockopt(descriptor, clinux_SOL_PACKET, clinux_PACKET_FANOUT, &value, &length) == 0 else {
            throw SystemError("getsockopt(PACKET_FANOUT)", "interface \(interfaceName)")
        }
        return UInt16(truncatingIfNeeded: value)
    }

    /// PACKET_FANOUT_FLAG_IGNORE_OUTGOING, newer than the headers Debian ships.
    static let fanoutIgnoresOutgoing: Int32 = 0x4000

    /// Takes the error the kernel left on the socket when its interface went down (ENETDOWN):
    /// left there, it fails the next send, that is the first frame after the link is back.
    public func clearPendingError() {
        var error: Int32 = 0
        var length = socklen_t(4)
        _ = getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &error, &length)
    }

    /// Frames the kernel dropped because this socket's buffer was full, since the last call
    /// (reading the statistics resets them).
    public func takeKernelDrops() -> UInt64 {
        var stats = tpacket_stats()
        var length = socklen_t(MemoryLayout<tpacket_stats>.size)
        guard getsockopt(descriptor, clinux_SOL_PACKET, clinux_PACKET_STATISTICS, &stats, &length) == 0 else { return 0 }
        return UInt64(stats.tp_drops)
    }

    /// Frames pending on the socket are dropped by the kernel as they arrive while nobody
    /// reads; nothing to do here but close.
    deinit {
        close(descriptor)
        close(sendDescriptor)
        if let egressHookDescriptor { close(egressHookDescriptor) }
    }
}

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

/// Frames waiting to leave one port, sent with one sendmmsg. Each message points into the
/// received frame (no copy): [virtio-net header][MAC addresses][802.1Q tag][rest of the frame].
public final class TransmitQueue {
    public let capacity: Int
    /// Per message: its virtio-net header and tag (16 bytes), then its SO_MARK message.
    private static let markOffset = 16
    private static let scratchSize = 48
    private let messages: UnsafeMutablePointer<clinux_mmsghdr>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let scratch: UnsafeMutableRawPointer
    /// Per message: the replica list its mark names (EgressReplication), or -1; and whether
    /// the last flush sent it.
    private let lists: UnsafeMutablePointer<Int32>
    private let sent: UnsafeMutablePointer<Bool>
    /// Per message: storage the queue owns for a frame the switch built itself (`append(owned:)`),
    /// allocated the first time a message of that slot needs it and kept for the next ones
    /// (grown when too small), so that no message points into memory the queue does not own.
    private let ownedFrames: UnsafeMutablePointer<UnsafeMutableRawBufferPointer>
    public private(set) var count = 0
    /// Messages naming a replica list, queued (before a flush) or flushed (after).
    public private(set) var replicated = 0
    private var flushed = 0

    public init(capacity: Int = 64) {
        self.capacity = capacity
        messages = .allocate(capacity: capacity)
        iovecs = .allocate(capacity: capacity * 4)
        scratch = .allocate(byteCount: capacity * Self.scratchSize, alignment: 16)
        lists = .allocate(capacity: capacity)
        sent = .allocate(capacity: capacity)
        ownedFrames = .allocate(capacity: capacity)
        ownedFrames.initialize(repeating: UnsafeMutableRawBufferPointer(start: nil, count: 0), count: capacity)
    }

    deinit {
        messages.deallocate()
        iovecs.deallocate()
        scratch.deallocate()
        lists.deallocate()
        sent.deallocate()
        for i in 0..<capacity { ownedFrames[i].deallocate() }
        ownedFrames.deallocate()
    }

    public var isFull: Bool { count == capacity }

    /// Queues a frame given untagged, inserting `tag` when set. The bytes must stay valid until
    /// `flush`. `headerPrecedes`: `header` is already in the 10 bytes before the frame (one
    /// piece of memory to send when no tag goes in).
    /// `mark` (with `list`, the replica list it names): the frame's skb->mark, for the egress
    /// program (EgressReplication); 0: none.
    public func append(_ frame: UnsafeRawBufferPointer, header: VirtioNetHeader, tag: VLANTag?, headerPrecedes: Bool = false,
                       mark: UInt32 = 0, list: Int32 = -1) {
        precondition(count < capacity && frame.count >= 12)
        if count == 0 { replicated = 0; flushed = 0 }
        let slot = scratch + count * Self.scratchSize
        let vectors = iovecs + count * 4
        let base = UnsafeMutableRawPointer(mutating: frame.baseAddress!)
        lists[count] = list
        if list >= 0 { replicated += 1 }
        if tag == nil && headerPrecedes {
            vectors[0] = iovec(iov_base: base - VirtioNetHeader.length, iov_len: VirtioNetHeader.length + frame.count)
            var message = msghdr()
            message.msg_iov = vectors
            message.msg_iovlen = 1
            if mark != 0 { Self.attach(mark, to: &message, slot: slot) }
            messages[count] = clinux_mmsghdr(msg_hdr: message, msg_len: 0)
            count += 1
            return
        }
        vectors[0] = iovec(iov_base: slot, iov_len: VirtioNetHeader.length)
        vectors[1] = iovec(iov_base: base, iov_len: 12)
        var n = 2
        if let tag {
            header.shifted(by: 4).write(to: slot)
            let tagBytes = slot + 12
            tagBytes.storeBytes(of: UInt8(0x81), as: UInt8.self)
            tagBytes.storeBytes(of: UInt8(0x00), toByteOffset: 1, as: UInt8.self)
            tagBytes.storeBytes(of: UInt8(tag.tci >> 8), toByteOffset: 2, as: UInt8.self)
            tagBytes.storeBytes(of: UInt8(truncatingIfNeeded: tag.tci), toByteOffset: 3, as: UInt8.self)
            vectors[2] = iovec(iov_base: tagBytes, iov_len: 4)
            n = 3
        } else {
            header.write(to: slot)
        }
        vectors[n] = iovec(iov_base: base + 12, iov_len: frame.count - 12)
        var message = msghdr()
        message.msg_iov = vectors
        message.msg_iovlen = n + 1
        if mark != 0 { Self.attach(mark, to: &message, slot: slot) }
        messages[count] = clinux_mmsghdr(msg_hdr: message, msg_len: 0)
        count += 1
    }

    @inline(__always)
    private static func attach(_ mark: UInt32, to message: inout msghdr, slot: UnsafeMutableRawPointer) {
        message.msg_control = slot + markOffset
        message.msg_controllen = clinux_write_mark(slot + markOffset, mark)
    }

    /// After a flush, for each message that named a replica list: the list, whether it was
    /// sent, and its bytes.
    public func forEachReplicated(_ body: (_ list: Int32, _ sent: Bool, _ bytes: Int) -> Void) {
        guard replicated > 0 else { return }
        for i in 0..<flushed where lists[i] >= 0 {
            body(lists[i], sent[i], Int(messages[i].msg_len) - VirtioNetHeader.length)
        }
    }

    /// Queues a frame the switch built itself, copied into storage of the queue's own (the
    /// array's bytes are only valid inside `withUnsafeBytes`). Frames from a ring or a batch
    /// go through `append(_:header:tag:)` and are never copied.
    public func append(owned frame: [UInt8], tag: VLANTag?) {
        precondition(count < capacity && frame.count >= 12)
        if ownedFrames[count].count < frame.count {
            ownedFrames[count].deallocate()
            ownedFrames[count] = .allocate(byteCount: max(frame.count, 256), alignment: 16)
        }
        let storage = ownedFrames[count]
        frame.withUnsafeBytes { storage.copyMemory(from: $0) }
        append(UnsafeRawBufferPointer(rebasing: storage[0..<frame.count]), header: VirtioNetHeader(), tag: tag)
    }

    /// Sends what is queued. Returns how many frames left and how many the kernel refused.
    public func flush(to socket: PacketSocket) -> (sent: Int, failed: Int, bytes: Int) {
        var sent = 0, failed = 0, bytes = 0, i = 0
        // Frames that name a replica list go through the egress hook, and the rest of the
        // queue with them, in order; a queue without any bypasses it, as it costs less.
        var descriptor = socket.sendDescriptor
        if replicated > 0 {
            self.sent.update(repeating: false, count: count)
            descriptor = socket.egressHookDescriptor ?? descriptor
        }
        while i < count {
            let n = clinux_sendmmsg(descriptor, messages + i, UInt32(count - i), Int32(MSG_DONTWAIT))
            if n > 0 {
                for k in i..<i + Int(n) { bytes += Int(messages[k].msg_len) - VirtioNetHeader.length }
                if replicated > 0 { (self.sent + i).update(repeating: true, count: Int(n)) }
                sent += Int(n)
                i += Int(n)
            } else if n < 0 && errno == EINTR {
                continue
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
                failed += count - i   // the port cannot take more now: the rest is dropped
                break
            } else {
                failed += 1           // this frame was refused (too big, link gone): skip it
                i += 1
            }
        }
        flushed = count
        count = 0
        return (sent, failed, bytes)
    }

    /// Writes what is queued to a TAP device, one frame per writev.
    public func flush(to tap: TapDevice) -> (sent: Int, failed: Int, bytes: Int) {
        var sent = 0, failed = 0, bytes = 0
        for i in 0..<count {
            let message = messages[i].msg_hdr
            while true {
                let n = writev(tap.descriptor, message.msg_iov, Int32(message.msg_iovlen))
                if n < 0 && errno == EINTR { continue }
                if n < 0 {
                    failed += 1
                } else {
                    sent += 1
                    bytes += n - VirtioNetHeader.length
                }
                break
            }
        }
        count = 0
        flushed = 0
        return (sent, failed, bytes)
    }

    /// Hands each queued frame, whole, to `body` (a backend without virtio-net headers), then empties.
    public func drain(_ body: (VirtioNetHeader, UnsafeRawBufferPointer) -> Bool) -> (sent: Int, failed: Int, bytes: Int) {
        var sent = 0, failed = 0, bytes = 0
        var frame = [UInt8]()
        for i in 0..<count {
            let message = messages[i].msg_hdr
            let vectors = UnsafeBufferPointer(start: message.msg_iov, count: Int(message.msg_iovlen))
            let header = VirtioNetHeader(vectors[0].iov_base!)
            frame.removeAll(keepingCapacity: true)
            // The header is the first 10 bytes of the first vector, alone or followed by the frame.
            for (i, vector) in vectors.enumerated() {
                let skip = i == 0 ? VirtioNetHeader.length : 0
                frame.append(contentsOf: UnsafeRawBufferPointer(start: vector.iov_base! + skip, count: vector.iov_len - skip))
            }
            let ok = frame.withUnsafeBytes { body(header, $0) }
            if ok { sent += 1; bytes += frame.count } else { failed += 1 }
        }
        count = 0
        flushed = 0
        return (sent, failed, bytes)
    }

    /// Drops what is queued without sending (the port went away).
    public func discard() {
        count = 0
        flushed = 0
    }
}
