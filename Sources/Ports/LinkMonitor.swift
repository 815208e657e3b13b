#if canImport(Glibc)
import Glibc
#endif
import CNetlink

/// Hears the kernel's link events (RTNLGRP_LINK, through libnl): carrier changes, interfaces
/// deleted and created. The owner polls `descriptor`, calls `drain()` when it is readable, and
/// then re-reads the state of its ports: an event says "look again", the state says what is.
public final class LinkMonitor {
    private let socket: OpaquePointer
    public let descriptor: Int32

    public init() throws(SystemError) {
        guard let socket = nl_socket_alloc() else { throw SystemError("nl_socket_alloc", "netlink", errno: ENOMEM) }
        nl_socket_disable_seq_check(socket)
        guard nl_connect(socket, NETLINK_ROUTE) == 0 else {
            nl_socket_free(socket)
            throw SystemError("nl_connect", "netlink", errno: EPROTONOSUPPORT)
        }
        guard nl_socket_add_membership(socket, Int32(RTNLGRP_LINK.rawValue)) == 0,
              nl_socket_set_nonblocking(socket) == 0 else {
            nl_socket_free(socket)
            throw SystemError("nl_socket_add_membership", "netlink", errno: EINVAL)
        }
        self.socket = socket
        self.descriptor = nl_socket_get_fd(socket)
    }

    /// Reads every pending notification; returns how many rounds read something.
    @discardableResult
    public func drain() -> Int {
        var rounds = 0
        // nl_recvmsgs_default returns a negative libnl error (NLE_AGAIN) once nothing is left.
        while rounds < 64, nl_recvmsgs_default(socket) >= 0 { rounds += 1 }
        return rounds
    }

    deinit { nl_socket_free(socket) }
}
