#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Wire

/// What the kernel says of a network interface, by name.
public struct InterfaceState: Equatable, Sendable {
    public var index: Int32
    public var isUp: Bool
    /// Carrier: for a veth, whether the other end is up too.
    public var hasCarrier: Bool
    public var mtu: Int
    public var mac: MACAddress

    public var isOperational: Bool { isUp && hasCarrier }

    /// Reads an interface's index, flags, MTU and address; nil when no interface has that name.
    public static func read(_ name: String) -> InterfaceState? {
        let index = if_nametoindex(name)
        guard index != 0 else { return nil }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var request = InterfaceRequest(name)
        guard request.ioctl(fd, clinux_SIOCGIFFLAGS) else { return nil }
        let flags = Int32(request.value.ifr_ifru.ifru_flags)
        var mtuRequest = InterfaceRequest(name)
        let mtu = mtuRequest.ioctl(fd, clinux_SIOCGIFMTU) ? Int(mtuRequest.value.ifr_ifru.ifru_mtu) : 1500
        var macRequest = InterfaceRequest(name)
        var mac = MACAddress.zero
        if macRequest.ioctl(fd, clinux_SIOCGIFHWADDR) {
            withUnsafeBytes(of: macRequest.value.ifr_ifru.ifru_hwaddr.sa_data) { mac = MACAddress($0, at: 0) }
        }
        return InterfaceState(index: Int32(index), isUp: flags & clinux_IFF_UP != 0,
                              hasCarrier: flags & clinux_IFF_RUNNING != 0, mtu: mtu, mac: mac)
    }

    /// Sets IFF_UP on an interface (a switch port must be up to carry frames).
    public static func bringUp(_ name: String) throws(SystemError) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", name) }
        defer { close(fd) }
        var request = InterfaceRequest(name)
        guard request.ioctl(fd, clinux_SIOCGIFFLAGS) else { throw SystemError("SIOCGIFFLAGS", name) }
        if Int32(request.value.ifr_ifru.ifru_flags) & clinux_IFF_UP != 0 { return }
        request.value.ifr_ifru.ifru_flags |= Int16(clinux_IFF_UP)
        guard request.ioctl(fd, UInt(SIOCSIFFLAGS)) else { throw SystemError("SIOCSIFFLAGS", name) }
    }
}

/// A `struct ifreq` for one interface name.
struct InterfaceRequest {
    var value = ifreq()

    init(_ name: String) {
        withUnsafeMutableBytes(of: &value.ifr_ifrn.ifrn_name) { raw in
            let bytes = Array(name.utf8.prefix(Int(IFNAMSIZ) - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
    }

    mutating func ioctl(_ fd: Int32, _ request: UInt) -> Bool {
        clinux_ioctl_ifreq(fd, request, &value) == 0
    }
}

