/// How the switch runs, apart from what it switches (`SwitchConfiguration`): its control socket,
/// its forwarding threads and their sockets, and which kernel helpers it asks for. The defaults
/// are the command line's.
public struct DatapathOptions: Sendable {
    /// Where the control socket is made; its directory must exist.
    public var controlPath: String
    /// A group whose members may read the status (mode 0660); nil: root alone (0600).
    public var controlGroup: String?
    /// `ADDRESS:PORT` to serve Prometheus metrics on; nil: none.
    public var metricsAddress: String?
    /// Forwarding threads, the main one included.
    public var threads: Int
    /// Receive ring per packet socket (0: recvmmsg instead).
    public var ringBytes: Int
    /// Forwarding thread i runs on cpus[i % count]; empty: each thread away from the CPUs whose
    /// frames it takes (`ThreadPlacement`), or where the scheduler puts it.
    public var cpus: [Int]
    /// Spin instead of sleeping in epoll: lower latency and higher rates for a core spent on it.
    public var busyPoll: Bool
    /// Keep the packet ports' frames from this namespace's IP stack (`HostStackFilter`).
    public var filterHostStack: Bool
    /// Hand large unicast flows to the kernel (`KernelFastPath`).
    public var kernelFastPath: Bool
    /// Send a frame for several packet ports once and have the kernel clone it (`EgressReplication`).
    public var egressReplication: Bool
    /// A flow goes to the kernel when the switch decides one of its frames of at least this many
    /// bytes, and its way back with it. Each frame through the switch's threads costs two copies,
    /// so bulk traffic (TCP's 64 KB segments, MTU-sized streams) is cheaper in the kernel; small
    /// frames cost the threads little per byte, and the threads spread a flood of them over the
    /// machine's cores, where the kernel forwards in the sender's softirq, on its core (README,
    /// Performance, has the measurements).
    public var kernelFastPathFrameBytes: Int
    /// Serve an interface another switch claims (`PortClaim`) instead of refusing it.
    public var sharePorts: Bool
    public static let defaultKernelFastPathFrameBytes = 1024

    public init(controlPath: String, controlGroup: String? = nil, metricsAddress: String? = nil, threads: Int = 1,
                ringBytes: Int = 1 << 20, cpus: [Int] = [], busyPoll: Bool = false, filterHostStack: Bool = true,
                kernelFastPath: Bool = true, egressReplication: Bool = true,
                kernelFastPathFrameBytes: Int = DatapathOptions.defaultKernelFastPathFrameBytes, sharePorts: Bool = false) {
        self.controlPath = controlPath
        self.controlGroup = controlGroup
        self.metricsAddress = metricsAddress
        self.threads = threads
        self.ringBytes = ringBytes
        self.cpus = cpus
        self.busyPoll = busyPoll
        self.filterHostStack = filterHostStack
        self.kernelFastPath = kernelFastPath
        self.egressReplication = egressReplication
        self.kernelFastPathFrameBytes = kernelFastPathFrameBytes
        self.sharePorts = sharePorts
    }
}
