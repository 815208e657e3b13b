import Control
import Ports
import SwitchEngine

extension SwitchDaemon {
    /// What a port reads and writes frames through.
    enum Device {
        case packet(PacketSocket)
        case tap(TapDevice)
        case pcap(PcapPort)

        var descriptor: Int32 {
            switch self {
            case .packet(let socket): socket.descriptor
            case .tap(let tap): tap.descriptor
            case .pcap(let pcap): pcap.descriptor
            }
        }
    }

    /// One switch port's I/O side. Guarded by `lock` once forwarding threads run.
    final class PortIO {
        let name: String
        let attachment: PortConfiguration.Attachment
        /// The main thread's device.
        var device: Device?
        /// The other forwarding threads' sockets, thread 1 first (packet ports only).
        var threadSockets: [PacketSocket] = []
        /// Keeps the port's frames from the host's IP stack (packet ports, where the kernel can).
        var hostStackFilter: HostStackFilter?
        /// The kernel fast path's program on the port's ingress (it also keeps the port's other
        /// frames from the host's IP stack, unless `--no-host-stack-filter`).
        var fastPathHook: TCXLink?
        /// The replication program on the port's egress (EgressReplication).
        var replicationHook: TCXLink?
        /// The interface the fast path forwards from and to, while it has the port.
        var fastPathInterface: Int32? { fastPathHook == nil ? nil : interfaceIndex }
        var rxErrors: UInt64 = 0
        /// Frames the kernel dropped before we could read them (socket buffer full).
        var kernelDrops: UInt64 = 0
        /// Link changes seen (down and up), for the status.
        var linkChanges: UInt64 = 0
        /// When frames last arrived: proof of carrier while the kernel's report lags.
        var lastReceive = Instant.zero

        init(_ configuration: PortConfiguration) {
            name = configuration.name
            attachment = configuration.attachment
        }

        /// The index of the interface the port opened (TAP ports have none we can see).
        var interfaceIndex: Int32?
        /// The interface's MTU when last looked at.
        var mtu: Int?

        /// What `thread` sends on: what it receives on, and the one device where it receives
        /// nothing (TAP and libpcap ports are the main thread's).
        func egress(for thread: Int) -> Device? { ingress(for: thread) ?? device }

        /// What `thread` receives on: the main thread serves every kind of port, the others
        /// their packet socket.
        func ingress(for thread: Int) -> Device? {
            if thread == 0 { return device }
            guard case .packet = device, thread - 1 < threadSockets.count else { return nil }
            return .packet(threadSockets[thread - 1])
        }

        /// Adds what the kernel dropped on each of the port's sockets since the last look.
        func collectKernelDrops() {
            for socket in allSockets { kernelDrops &+= socket.takeKernelDrops() }
        }

        var allSockets: [PacketSocket] {
            guard case .packet(let socket)? = device else { return [] }
            return [socket] + threadSockets
        }
    }
}
