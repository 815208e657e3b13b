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
