#if canImport(Glibc)
import Glibc
#endif
import CLinux

/// A TPACKET_V2 receive ring mapped from a packet socket: the kernel copies each frame into
/// the next free slot in its softirq (on the sender's CPU) and flips the slot's status; we read
/// frames in place, with no system call and no copy, and hand slots back in order.
///
/// V2 and not V3: V3 hands frames over a block at a time, when the block fills or its timer
/// (a millisecond at least) runs out, which would delay a lone IGMP report or the first frame
/// of a group. Slots hold small frames; larger ones (MTU-sized, GSO) are marked
/// TP_STATUS_COPY and wait whole on the socket's queue (PACKET_COPY_THRESH).
public final class ReceiveRing {
    /// Small frames (IGMP, ARP, ACKs, 64-byte floods) fit a slot; MTU-sized and GSO frames
    /// take the socket's queue, read in batches. Small slots keep many frames in little
    /// memory: the ring is mapped, and counts in the process's resident size.
    public static let slotSize = 512
    /// Bytes per block: the kernel allocates each block as contiguous pages.
    private static let blockSize = 1 << 16

    public let slotCount: Int
    private let base: UnsafeMutableRawPointer
    private let mappedBytes: Int
    /// The next slot to look at.
    private var head = 0
    /// Slots taken and not yet given back, oldest first from `head - held`.
    private var held = 0

    /// One frame in its slot.
    public struct Slot {
        public var status: UInt32
        /// The frame's length on the wire, and how much of it the slot holds.
        public var length: Int
        public var captured: Int
        public var vlanTCI: UInt16
        /// The stripped tag's TPID when the status says it is valid (TP_STATUS_VLAN_TPID_VALID).
        public var vlanTPID: UInt16
        /// The frame's first byte; its virtio-net header sits just before it.
        public var frame: UnsafeMutableRawPointer
    }

    /// Sets the ring up on `descriptor` (PACKET_VNET_HDR must already be on). `bytes` is
    /// rounded to whole blocks.
    init(descriptor fd: Int32, bytes: Int, interface name: String) throws(SystemError) {
        let blocks = max(1, (bytes + Self.blockSize - 1) / Self.blockSize)
        var version = clinux_TPACKET_V2
        guard setsockopt(fd, clinux_SOL_PACKET, clinux_PACKET_VERSION, &version, 4) == 0 else {
            throw SystemError("setsockopt(PACKET_VERSION)", "interface \(name)")
        }
        var copy: Int32 = 1
        guard setsockopt(fd, clinux_SOL_PACKET, clinux_PACKET_COPY_THRESH, &copy, 4) == 0 else {
            throw SystemError("setsockopt(PACKET_COPY_THRESH)", "interface \(name)")
        }
        var request = tpacket_req(tp_block_size: UInt32(Self.blockSize), tp_block_nr: UInt32(blocks),
                                  tp_frame_size: UInt32(Self.slotSize),
                                  tp_frame_nr: UInt32(blocks * (Self.blockSize / Self.slotSize)))
        guard setsockopt(fd, clinux_SOL_PACKET, clinux_PACKET_RX_RING, &request,
                         socklen_t(MemoryLayout<tpacket_req>.size)) == 0 else {
            throw SystemError("setsockopt(PACKET_RX_RING)", "interface \(name)")
        }
        mappedBytes = blocks * Self.blockSize
        let mapped = mmap(nil, mappedBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let mapped, mapped != MAP_FAILED else { throw SystemError("mmap(PACKET_RX_RING)", "interface \(name)") }
        base = mapped
        slotCount = Int(request.tp_frame_nr)
    }

    deinit { munmap(base, mappedBytes) }

    private func header(_ index: Int) -> UnsafeMutablePointer<tpacket2_hdr> {
        (base + index * Self.slotSize).assumingMemoryBound(to: tpacket2_hdr.self)
    }

    /// The next frame the kernel has filled, or nil when it has filled no more.
    @inline(__always)
    public func take() -> Slot? {
        guard held < slotCount else { return nil }
        let h = header(head)
        let status = clinux_ring_status(h)
        guard status & clinux_TP_STATUS_USER != 0 else { return nil }
        let slot = Slot(status: status, length: Int(h.pointee.tp_len), captured: Int(h.pointee.tp_snaplen),
                        vlanTCI: h.pointee.tp_vlan_tci, vlanTPID: h.pointee.tp_vlan_tpid,
                        frame: UnsafeMutableRawPointer(h) + Int(h.pointee.tp_mac))
        head = head + 1 == slotCount ? 0 : head + 1
        held += 1
        return slot
    }

    /// Gives every taken slot back to the kernel.
    public func release() {
        var index = head - held
        if index < 0 { index += slotCount }
        for _ in 0..<held {
            clinux_ring_release(header(index))
            index = index + 1 == slotCount ? 0 : index + 1
        }
        held = 0
    }
}
