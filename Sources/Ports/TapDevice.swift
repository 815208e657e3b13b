#if canImport(Glibc)
import Glibc
#endif
import CLinux

/// A TAP device the switch creates (/dev/net/tun, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR): its
/// kernel side is a NIC on the switched LAN, in this namespace or moved into another one, or a
/// VM's. Frames carry the same virtio-net header as the packet sockets, so GSO frames and partial
/// checksums pass both ways; VLAN tags stay in the frame (the receive path takes them out).
public final class TapDevice {
    public let interfaceName: String
    public let descriptor: Int32

    public init(name: String) throws(SystemError) {
        let fd = Glibc.open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open(/dev/net/tun)", "TAP \(name)") }
        do throws(SystemError) {
            guard clinux_tun_set_iff(fd, name, Int16(clinux_IFF_TAP | clinux_IFF_NO_PI | clinux_IFF_VNET_HDR)) == 0 else {
                throw SystemError("TUNSETIFF", "TAP \(name)")
            }
            var size = Int32(VirtioNetHeader.length)
            guard clinux_ioctl_intp(fd, clinux_TUNSETVNETHDRSZ, &size) == 0 else { throw SystemError("TUNSETVNETHDRSZ", "TAP \(name)") }
            // The kernel may then hand us unchecksummed and GSO frames, which the other ports'
            // virtio-net headers carry on untouched.
            guard clinux_ioctl_int(fd, clinux_TUNSETOFFLOAD, Int32(clinux_TUN_OFFLOADS)) == 0 else {
                throw SystemError("TUNSETOFFLOAD", "TAP \(name)")
            }
        } catch {
            close(fd)
            throw error
        }
        interfaceName = name
        descriptor = fd
    }

    deinit { close(descriptor) }
}
