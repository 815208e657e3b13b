#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Wire

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
