#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Control
import Foundation
import Logging
import Ports
import SwitchEngine
import Wire

/// The running switch. The main thread runs one epoll loop over the signals, the link monitor,
/// the control socket, the timers, and its share of the ports; with `threads` > 1, each further
/// forwarding thread has its own packet socket on every packet port (the kernel spreads frames
/// over them by flow: PACKET_FANOUT) and its own epoll loop. Every thread receives a batch,
/// decides each frame in the engine under `lock`, queues it on the egress ports, and sends each
/// port's queue with one call outside the lock.
public final class SwitchDaemon: @unchecked Sendable {
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

    /// Frames sent, by port, by one thread.
    struct Traffic {
        var frames: UInt64 = 0
        var bytes: UInt64 = 0
        var drops: UInt64 = 0
    }

    /// What one forwarding thread owns. Only its thread touches `queues`, `pending` and
    /// `egress`; `traffic` is written by its thread and read by the status, both under `lock`.
    final class ForwardingThread {
        let number: Int
        let batch = ReceiveBatch(capacity: 32)
        /// By port index, made on first use.
        var queues = [TransmitQueue?](repeating: nil, count: PortSet.capacity)
        var traffic = [Traffic](repeating: Traffic(), count: PortSet.capacity)
        /// Ports with frames queued since the last flush, and the devices to send them on
        /// (taken under the lock, so that a port closed meanwhile sends into its old socket).
        var pending = PortSet()
        var egress = [Device?](repeating: nil, count: PortSet.capacity)
        /// What the last unlocked flush sent, by port, until it is counted under the lock.
        var unsettled = [(sent: Int, failed: Int, bytes: Int)?](repeating: nil, count: PortSet.capacity)
        /// Forwarding threads other than the main one wait on their own epoll.
        let poller: Poller?
        let wakeup: Wakeup?
        var system: SystemThread?
        /// When this thread last received frames.
        var lastFrames = Instant.zero
        /// Unicast routes decided in this batch, handed to the kernel once the batch is sent.
        var routes: [(route: SnoopingSwitch.UnicastRoute, ingress: Int32, egress: Int32)] = []
        /// The port sets this thread's frames name for the kernel to clone to (nil: no replication).
        var replicaLists: ReplicaLists?
        /// Whether a queued frame names a replica list (sent before the forwarding state may move).
        var replicating = false
        /// Frames the kernel cloned for this thread's sends (under `lock`).
        var clonedFrames: UInt64 = 0

        init(number: Int) throws(SystemError) {
            self.number = number
            poller = number == 0 ? nil : try Poller()
            wakeup = number == 0 ? nil : try Wakeup()
            if let poller, let wakeup { try poller.add(wakeup.descriptor, token: Token.wakeup) }
        }

        /// Adds what a flush sent to the port's counts (under `lock`).
        func count(_ result: (sent: Int, failed: Int, bytes: Int), on index: Int) {
            traffic[index].frames &+= UInt64(result.sent)
            traffic[index].bytes &+= UInt64(result.bytes)
            traffic[index].drops &+= UInt64(result.failed)
        }

        func queue(_ index: Int) -> TransmitQueue {
            if let queue = queues[index] { return queue }
            let queue = TransmitQueue(capacity: 64)
            queues[index] = queue
            return queue
        }
    }

    private enum Token {
        static let linkMonitor: UInt64 = 1 << 32
        static let signals: UInt64 = 1 << 32 + 1
        static let control: UInt64 = 1 << 32 + 2
        static let wakeup: UInt64 = 1 << 32 + 4
        /// Control clients: this plus their descriptor.
        static let controlClient: UInt64 = 1 << 33
    }

    private let engine: SnoopingSwitch
    private let logger: Logger
    /// By port index, as the engine numbers them; nil where a port was removed.
    private var ports: [PortIO?]
    /// Guards the engine, `ports`, `captures` and the threads' traffic counts while more than
    /// one thread forwards. The main thread holds it except while it waits, sends, or makes
    /// system calls that need none of that state (`withoutLock`: link states, the kernel fast
    /// path's counts and flows taken back, the configuration file).
    private let lock = DatapathLock()
    /// Every send passes it; closed while flows taken back leave the kernel without `lock`
    /// (`retireFlows`), so that no frame leaves meanwhile that the kernel might answer wrongly.
    private let sendGate = SendGate()
    /// Thread 0 is the main thread.
    private var threads: [ForwardingThread] = []
    /// Forwarding threads wake the main one when the engine's next deadline moved earlier
    /// than the main thread's planned wake-up, or a port needs its link looked at.
    private let wakeMain: Wakeup
    /// The engine's next deadline as the main thread last planned its wait around it.
    private var plannedEngineDeadline = Instant.zero
    private var linkCheckWanted = false
    private let poller: Poller
    private let links: LinkMonitor
    private let signals: SignalDescriptor
    private var control: ControlServer!
    /// Builds status documents and serves the metrics endpoint off the forwarding threads.
    private var statusWorker: StatusWorker!
    private var running = true
    /// When to look at the links again: some port is held up by its frames alone.
    private var carrierCheck: Instant?
    /// Clients of `snoopswitch capture`.
    private var captures: [CaptureStream] = []
    /// Spin instead of sleeping in epoll (`--busy-poll`): lower latency and higher rates for
    /// a core spent on it.
    private let busyPoll: Bool
    /// After frames, a thread keeps looking for more this long before it sleeps. Being woken
    /// costs more than the gap between the frames of a busy flow (an IPI, and on a virtual
    /// machine an exit): TCP through the switch is bound by that latency. Ahead of the hosts, a
    /// longer spin takes the CPU from the hosts whose frames it waits for: in bench.sh at nice
    /// -20 TCP made 12.6-13.1 Gbit/s with 50 us, 13.5-14.3 with none, 14.9-15.1 with 20 us.
    /// Idle ports cost nothing; a trickle of frames a little.
    static let pollWindow = Duration.microseconds(20)
    /// Receive ring per packet socket (0: recvmmsg instead).
    private let ringBytes: Int
    /// Forwarding thread i runs on cpus[i % count] when set: `--cpus`, or else each thread away
    /// from the CPUs whose frames it takes (`ThreadPlacement`); empty: where the scheduler puts it.
    private let cpus: [Int]
    /// How the ports' sockets share frames among the threads (nil: by flow hash, or one thread).
    private let steering: FanoutSteering?
    /// The CPU each thread was bound to (nil: not bound), for the status.
    private var threadCPUs: [Int?] = []
    /// Whether packet ports get a HostStackFilter (`--no-host-stack-filter` turns it off).
    private let filterHostStack: Bool
    private var hostStackFilterRefused = false
    /// Unicast flows the kernel forwards (nil: `--no-kernel-fast-path`, or the kernel cannot).
    private var fastPath: FastPathFlows?
    /// Settles the fast path's flows once a second (`fastPathLoop`), off the forwarding threads.
    private var fastPathWorker: SystemThread?
    private let wakeFastPathWorker: Wakeup
    /// Sends a frame for several packet ports once and has the kernel clone it to the others
    /// (nil: `--no-egress-replication`, or the kernel cannot).
    private var replication: EgressReplication?
    /// Packet ports with the replication program on their egress.
    private var replicatingPorts = PortSet()
    /// Moves whenever a port's device opens or closes: replica lists name interfaces by index.
    private var portsGeneration: UInt64 = 0
    /// A flow goes to the kernel when the switch decides one of its frames of at least this
    /// many bytes, and its way back with it. Each frame through the switch's threads costs two
    /// copies: bulk traffic (TCP's 64 KB segments, MTU-sized streams) is cheaper in the kernel
    /// by far. Small frames cost the threads little per byte, and the threads spread a flood of
    /// them over the machine's cores, where the kernel forwards in the sender's softirq, on its
    /// core (bench.sh, 64-byte frames: 1.5x the bridge's rate through the threads, 1.0-1.05x
    /// through the kernel).
    private let kernelFastPathFrameBytes: Int
    public static let defaultKernelFastPathFrameBytes = 1024
    /// The forwarding threads' nice value.
    private let nice: Int
    /// Called on SIGHUP, without `lock`: the settings to `apply`.
    public var readConfiguration: (() throws -> SwitchConfiguration)?

    /// Opens every port, then the control socket: once the socket exists, the switch forwards.
    /// Throws, with nothing left open, if any part cannot start.
    public init(configuration: SwitchConfiguration, controlPath: String, controlGroup: String? = nil,
                metricsAddress: String? = nil, threads threadCount: Int = 1, ringBytes: Int = 1 << 20,
                cpus: [Int] = [], busyPoll: Bool = false, filterHostStack: Bool = true, kernelFastPath: Bool = true,
                egressReplication: Bool = true,
                kernelFastPathFrameBytes: Int = SwitchDaemon.defaultKernelFastPathFrameBytes, logger: Logger) throws {
        self.kernelFastPathFrameBytes = kernelFastPathFrameBytes
        self.logger = logger
        self.busyPoll = busyPoll
        self.ringBytes = ringBytes
        // Several threads share each packet port's frames by the CPU a flow arrives on, each
        // bound away from the CPUs whose frames it takes; where BPF is refused, by flow hash,
        // and the scheduler places them (bound to one CPU, a hashed flow's thread would share
        // its sender's as often as not).
        var steering: FanoutSteering?
        if threadCount > 1 {
            do throws(SystemError) {
                steering = try FanoutSteering()
            } catch {
                logger.warning("\(error); the forwarding threads share the ports' frames by flow hash, where the scheduler puts them")
            }
        }
        self.steering = steering
        self.cpus = !cpus.isEmpty ? cpus
            : steering == nil ? [] : ThreadPlacement.awayFromSenders(threads: threadCount, allowed: allowedCPUs())
        self.filterHostStack = filterHostStack
        // Threads started later inherit the main thread's nice value (set by the caller).
        self.nice = SystemThread.currentNice
        for port in configuration.ports where port.attachment != .tap && InterfaceState.read(port.name) == nil {
            throw ControlError("interface \(port.name) does not exist")
        }
        let directory = (controlPath as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.isEmpty ? "." : directory, isDirectory: &isDirectory),
              isDirectory.boolValue else {
            throw ControlError("\(controlPath): directory \(directory) does not exist")
        }
        // A client that leaves before reading its answer must not end the switch.
        signal(SIGPIPE, SIG_IGN)
        signals = try SignalDescriptor()
        poller = try Poller()
        wakeMain = try Wakeup()
        wakeFastPathWorker = try Wakeup()
        threads = try (0..<max(1, threadCount)).map { number throws(SystemError) in try ForwardingThread(number: number) }
        links = try LinkMonitor()
        // Nothing else runs yet; held because opening ports and sending follow the threads' rules.
        lock.lock()
        defer { lock.unlock() }
        let now = Self.now()
        engine = SnoopingSwitch(configuration: configuration, at: now)
        ports = engine.ports.map { $0.map(PortIO.init) }
        if kernelFastPath {
            do throws(SystemError) {
                fastPath = FastPathFlows(kernel: try KernelFastPath(dropMisses: filterHostStack))
            } catch {
                logger.warning("\(error); unicast flows are forwarded by the switch's threads alone (the kernel fast path needs Linux 6.6 and CAP_BPF)")
            }
        }
        if egressReplication {
            do throws(SystemError) {
                let replication = try EgressReplication(threads: threads.count)
                self.replication = replication
                for thread in threads { thread.replicaLists = ReplicaLists(capacity: replication.listsPerThread) }
            } catch {
                logger.warning("\(error); a frame for several ports is sent to each of them by the switch's threads (egress replication needs Linux 6.6 and CAP_BPF)")
            }
        }
        try poller.add(signals.descriptor, token: Token.signals)
        try poller.add(links.descriptor, token: Token.linkMonitor)
        try poller.add(wakeMain.descriptor, token: Token.wakeup)
        for (index, port) in ports.enumerated() {
            guard let port else { continue }
            try open(port, index: index)
        }
        refreshLinks(at: now)
        let metrics = try metricsAddress.map { address throws(ControlError) in try MetricsServer(listen: address) }
        statusWorker = try StatusWorker(lock: lock, metrics: metrics, copyState: { [unowned self] in statusParts() },
                                        answered: { [wakeMain] in wakeMain.signal() })
        control = try ControlServer(path: controlPath, group: controlGroup)
        try poller.add(control.descriptor, token: Token.control)
        // Started before the forwarding threads pin this one (--cpus): it runs where it may.
        try statusWorker.start()
        if fastPath != nil {
            fastPathWorker = try SystemThread(name: "snoopswitch-fp") { [self] in fastPathLoop() }
        }
        startThreads()
    }

    /// Starts the forwarding threads other than this one (they wait for the lock until `run`),
    /// each bound to its CPU with `--cpus`, and binds this one.
    private func startThreads() {
        threadCPUs = Array(repeating: nil, count: threads.count)
        // Before this thread is bound: afterwards it may use its one CPU only.
        let allowed = allowedCPUs()
        func cpu(of thread: Int) -> Int? { cpus.isEmpty ? nil : cpus[thread % cpus.count] }
        if let cpu = cpu(of: 0) {
            do throws(SystemError) {
                try SystemThread.pinCurrent(to: cpu)
                threadCPUs[0] = cpu
            } catch {
                logger.warning("\(error); forwarding thread 0 runs where the scheduler puts it")
            }
        }
        for thread in threads.dropFirst() {
            let system: SystemThread
            do {
                system = try SystemThread(name: "snoopswitch/\(thread.number)") { [self] in forwardingLoop(thread) }
            } catch {
                logger.warning("\(error); forwarding with fewer threads")
                continue
            }
            thread.system = system
            guard let cpu = cpu(of: thread.number) else { continue }
            do throws(SystemError) {
                try system.pin(to: cpu)
                threadCPUs[thread.number] = cpu
            } catch {
                logger.warning("\(error); forwarding thread \(thread.number) runs where the scheduler puts it")
            }
        }
        if threads.count > 1 && steering != nil {
            let placement = threads.map { thread in
                let cpu = threadCPUs[thread.number].map { "CPU \($0)" } ?? "any CPU"
                let from = ThreadPlacement.receivingCPUs(of: thread.number, threads: threads.count, allowed: allowed)
                return "\(thread.number) on \(cpu) (flows first seen on CPU \(from.map(String.init).joined(separator: ",")))"
            }
            logger.info("forwarding threads: \(placement.joined(separator: ", "))")
        }
    }

    private static func now() -> Instant { Instant(nanoseconds: monotonicNanoseconds()) }

    /// Opens a port's device: a packet socket on its interface (brought up, and one more for
    /// each further forwarding thread), or a new TAP device. Called with `lock` held.
    private func open(_ port: PortIO, index: Int) throws(SystemError) {
        let device: Device
        var others: [PacketSocket] = []
        switch port.attachment {
        case .packetSocket:
            try? InterfaceState.bringUp(port.name)
            let socket = try PacketSocket(interface: port.name, ringBytes: ringBytes)
            if threads.count > 1 {
                let group = try socket.joinFanout(group: nil, steering: steering)
                for _ in 1..<threads.count {
                    let other = try PacketSocket(interface: port.name, ringBytes: ringBytes)
                    _ = try other.joinFanout(group: group, steering: steering)
                    others.append(other)
                }
            }
            device = .packet(socket)
            port.fastPathHook = fastPathHook(on: socket, others: others)
            if port.fastPathHook == nil { port.hostStackFilter = filterHostStack(of: socket) }
            port.replicationHook = replicationHook(on: socket, others: others)
        case .pcap:
            try? InterfaceState.bringUp(port.name)
            device = .pcap(try PcapPort(interface: port.name))
        case .tap:
            device = .tap(try TapDevice(name: port.name))
            try? InterfaceState.bringUp(port.name)
        }
        port.interfaceIndex = port.attachment == .tap ? nil : InterfaceState.read(port.name)?.index
        try poller.add(device.descriptor, token: UInt64(index))
        for (i, socket) in others.enumerated() {
            try threads[i + 1].poller!.add(socket.descriptor, token: UInt64(index))
        }
        port.device = device
        port.threadSockets = others
        portsChanged()
    }

    /// The replicating ports anew, and a new generation for the threads' replica lists.
    private func portsChanged() {
        replicatingPorts = PortSet(ports.indices.lazy.filter { self.ports[$0]?.replicationHook != nil }.map(PortID.init))
        portsGeneration &+= 1
    }

    /// Closes a port's devices; a thread sending meanwhile holds its socket until it is done.
    private func closeDevice(of port: PortIO) {
        if let device = port.device { poller.remove(device.descriptor) }
        for (i, socket) in port.threadSockets.enumerated() { threads[i + 1].poller!.remove(socket.descriptor) }
        port.collectKernelDrops()
        port.device = nil
        port.threadSockets = []
        port.hostStackFilter = nil
        port.fastPathHook = nil
        port.replicationHook = nil
        port.interfaceIndex = nil
        portsChanged()
        revalidateFastPath(at: Self.now())
    }

    /// The replication program on a packet port's egress, its sockets sending through it; nil
    /// (said) where the kernel will not.
    private func replicationHook(on socket: PacketSocket, others: [PacketSocket]) -> TCXLink? {
        guard let replication else { return nil }
        do throws(SystemError) {
            for each in [socket] + others { try each.openEgressHookSocket() }
            return try replication.attach(interface: socket.interfaceName, index: socket.interfaceIndex)
        } catch {
            logger.warning("\(error); frames for several ports are sent to this one on their own")
            return nil
        }
    }

    /// The fast path's program on a packet port, its sockets filtered; nil (said once) where
    /// the kernel will not.
    private func fastPathHook(on socket: PacketSocket, others: [PacketSocket]) -> TCXLink? {
        guard let kernel = fastPath?.kernel else { return nil }
        do throws(SystemError) {
            for each in [socket] + others { try kernel.filter(each) }
            return try kernel.attach(interface: socket.interfaceName, index: socket.interfaceIndex)
        } catch {
            logger.warning("\(error); the port's unicast flows stay with the switch's threads")
            return nil
        }
    }

    // MARK: - Kernel fast path

    /// Counts what the kernel forwarded of a route: received on its ingress port (in the
    /// engine, which also keeps the source learned), sent on its egress port.
    private func settleFastPath(_ route: SnoopingSwitch.UnicastRoute, frames: UInt64, bytes: UInt64, lastSeen: Instant?) {
        engine.forwardedElsewhere(route, frames: frames, bytes: bytes, lastSeen: lastSeen)
        threads[0].traffic[route.egress.index].frames &+= frames
        threads[0].traffic[route.egress.index].bytes &+= bytes
    }

    /// Takes back the flows the engine would no longer decide the same way. Called with `lock`
    /// held, after anything that may have changed them; they leave the kernel before the lock
    /// is let go or anything is sent (`retireFlows`).
    private func revalidateFastPath(at now: Instant) {
        guard let fastPath else { return }
        fastPath.revalidate(generation: engine.routeGeneration) { route, ingress, egress in
            kernelMayCarry(route, ingress: ingress, egress: egress, at: now)
        }
    }

    /// Takes the flows the fast path took back out of the kernel. Called with `lock` held,
    /// before it is let go or anything is sent: a frame sent while the kernel still carried a
    /// flow the engine now decides otherwise could be answered through it (the receiver's stack
    /// runs within our send). The map's system calls (up to 16,384 flows at once, when a busy
    /// port goes down) are made without the lock (`lettingGo`), while no thread sends.
    private func retireFlows(lettingGo: Bool = true) {
        guard let fastPath, fastPath.mustRetire else { return }
        let kernel = fastPath.kernel
        let flows = fastPath.startRetiring()
        sendGate.close()
        if lettingGo { lock.unlock() }
        let counts = flows.map { kernel.take($0.flow) }
        sendGate.reopen()
        if lettingGo { lock.lock() }
        fastPath.finishRetiring(flows, counts: counts, settle: settleFastPath)
    }

    /// Adds what the kernel forwarded to the engine and the ports, and takes idle flows back.
    /// Called with `lock` held; the kernel's counts (a system call a flow) are read without it,
    /// a slice at a time, each counted before the next is read: the lock is never held for
    /// more than a slice's counting.
    private func settleFastPathFlows() {
        guard let fastPath else { return }
        let readings = fastPath.flowsToSettle()
        let kernel = fastPath.kernel
        var start = readings.startIndex
        repeat {    // once at least: no flows left is settled too (no next settle)
            let slice = readings[start..<min(start + 1_024, readings.endIndex)]
            let counts = slice.isEmpty ? [] : withoutLock { slice.map { kernel.counts(of: $0.flow) } }
            fastPath.settle(slice, counts: counts, at: Self.now(), settle: settleFastPath)
            start = slice.endIndex
        } while start < readings.endIndex
    }

    /// The fast path's bookkeeping, on a thread of its own: once a second it reads what the
    /// kernel forwarded of every flow (a system call a flow, up to 16,384: tens of milliseconds
    /// that the main thread, which also forwards, would not forward) and counts it under the
    /// lock, and takes idle flows back. At nice 0, as the status worker: the threads and the
    /// hosts go first.
    private func fastPathLoop() {
        try? SystemThread.setCurrentNice(max(0, SystemThread.currentNice))
        guard let fastPath, let poller = try? Poller(capacity: 1),
              (try? poller.add(wakeFastPathWorker.descriptor, token: 0)) != nil else { return }
        lock.lock()
        while running {
            if let next = fastPath.nextSettle, next <= Self.now() { settleFastPathFlows() }
            let next = fastPath.nextSettle ?? Self.now() + FastPathFlows.settleInterval
            retireFlows()
            lock.unlock()
            let wait = (next.nanoseconds - Self.now().nanoseconds + 999_999) / 1_000_000
            _ = poller.wait(timeoutMilliseconds: Int32(clamping: min(1_000, max(1, wait))))
            wakeFastPathWorker.drain()
            lock.lock()
        }
        lock.unlock()
    }

    /// Runs `body` without `lock`, for system calls that need none of the state it guards.
    /// Called with the lock held; flows taken back leave the kernel first.
    private func withoutLock<T>(_ body: () throws -> T) rethrows -> T {
        retireFlows()
        lock.unlock()
        defer { lock.lock() }
        return try body()
    }

    /// Whether the kernel may carry `route` between these interfaces: the engine would decide
    /// it so, and both ports still have the fast path on them.
    private func kernelMayCarry(_ route: SnoopingSwitch.UnicastRoute, ingress: Int32, egress: Int32, at now: Instant) -> Bool {
        engine.holds(route, at: now) && fastPathCarries(route, ingress: ingress, egress: egress)
    }

    /// Whether both ports of `route` still have the fast path on these interfaces.
    private func fastPathCarries(_ route: SnoopingSwitch.UnicastRoute, ingress: Int32, egress: Int32) -> Bool {
        ports[route.ingress.index]?.fastPathInterface == ingress && ports[route.egress.index]?.fastPathInterface == egress
    }

    /// The port's host stack filter, or nil (said once) where the kernel has none to give.
    private func filterHostStack(of socket: PacketSocket) -> HostStackFilter? {
        guard filterHostStack else { return nil }
        do throws(SystemError) {
            return try HostStackFilter(interface: socket.interfaceName, index: socket.interfaceIndex)
        } catch {
            if !hostStackFilterRefused {
                hostStackFilterRefused = true
                logger.warning("\(error); frames on the ports also reach this namespace's IP stack (TCX needs Linux 6.6 and CAP_BPF)")
            }
            return nil
        }
    }

    /// Runs until SIGINT or SIGTERM; returns the exit status.
    public func run() -> Int32 {
        lock.lock()
        logger.info("forwarding on \(engine.activePortIDs.count) ports with \(threads.count) thread\(threads.count == 1 ? "" : "s"); control socket \(control.path)")
        while running {
            var now = Self.now()
            // The loop turns once per batch under load: the engine's timers are only walked
            // when one is due (advance sorts and copies the querier's state).
            if engine.nextDeadline(at: now) <= now { engine.advance(to: now) }
            // Stations aged out, links went down, the table was flushed: flows the kernel
            // carries may no longer be the engine's decisions.
            if let fastPath, fastPath.checkedGeneration != engine.routeGeneration { revalidateFastPath(at: now) }
            sendGenerated()
            reportRefusals(at: now)
            var deadline = engine.nextDeadline(at: now)
            plannedEngineDeadline = deadline
            control.expireClients(at: now.nanoseconds) { poller.remove($0) }
            control.sendPending(at: now.nanoseconds)
            if control.hasPendingAnswers { deadline = min(deadline, now + .milliseconds(5)) }
            if let clientDeadline = control.nextClientDeadline {
                deadline = min(deadline, Instant(nanoseconds: clientDeadline))
            }
            if let check = carrierCheck {
                if check <= now {
                    carrierCheck = nil
                    refreshLinks(at: now)
                } else {
                    deadline = min(deadline, check)
                }
            }
            let wait = deadline.nanoseconds - now.nanoseconds
            let polling = busyPoll || now - threads[0].lastFrames < Self.pollWindow
            let timeout = polling ? 0 : Int32(clamping: max(0, min(60_000, (wait + 999_999) / 1_000_000)))
            retireFlows()
            lock.unlock()
            let count = poller.wait(timeoutMilliseconds: timeout)
            // What only needs reading (signals, link events, wake-ups) is read before the lock.
            var signalsTaken: [Int32] = []
            for i in 0..<count {
                switch poller.ready[i] {
                case Token.signals: signalsTaken = signals.take()
                case Token.linkMonitor: links.drain()
                case Token.wakeup: wakeMain.drain()
                default: break
                }
            }
            lock.lock()
            for i in 0..<count {
                let token = poller.ready[i]
                now = Self.now()
                switch token {
                case Token.signals: handleSignals(signalsTaken)
                case Token.linkMonitor: refreshLinks(at: now)
                case Token.wakeup:
                    for (client, line) in statusWorker.takeAnswers() { control.respond(client, line: line) }
                    if linkCheckWanted {
                        linkCheckWanted = false
                        refreshLinks(at: now)
                    }
                case Token.control:
                    control.accept(at: now.nanoseconds) { try? poller.add($0, token: Token.controlClient + UInt64($0)) }
                case let token where token >= Token.controlClient:
                    control.readable(Int32(token - Token.controlClient), unregister: { poller.remove($0) }, answer(_:client:))
                default: receive(onPort: Int(token), thread: threads[0])
                }
            }
        }
        lock.unlock()
        statusWorker.stop()
        wakeFastPathWorker.signal()
        fastPathWorker?.join()
        for thread in threads.dropFirst() { thread.wakeup?.signal() }
        for thread in threads.dropFirst() { thread.system?.join() }
        control.shutdown()
        logger.info("stopped")
        return 0
    }

    /// A forwarding thread other than the main one: its packet sockets, until the switch stops.
    private func forwardingLoop(_ thread: ForwardingThread) {
        guard let poller = thread.poller else { return }
        lock.lock()
        while running {
            let polling = busyPoll || Self.now() - thread.lastFrames < Self.pollWindow
            let timeout: Int32 = polling ? 0 : -1
            retireFlows()
            lock.unlock()
            let count = poller.wait(timeoutMilliseconds: timeout)
            lock.lock()
            for i in 0..<count {
                let token = poller.ready[i]
                if token == Token.wakeup {
                    thread.wakeup?.drain()
                } else {
                    receive(onPort: Int(token), thread: thread)
                }
            }
            // The engine's timers are the main thread's: wake it if this batch moved them earlier.
            if linkCheckWanted || (count > 0 && engine.nextDeadline(at: Self.now()) < plannedEngineDeadline) {
                wakeMain.signal()
            }
        }
        lock.unlock()
    }

    private func handleSignals(_ taken: [Int32]) {
        for signal in taken {
            switch signal {
            case SIGINT, SIGTERM:
                logger.info("signal \(signal): shutting down")
                running = false
            default:
                guard let readConfiguration else {
                    logger.notice("SIGHUP: nothing to re-read (no configuration file)")
                    continue
                }
                switch withoutLock({ Result { try readConfiguration() } }) {
                case .success(let configuration): logger.notice("SIGHUP: \(apply(configuration))")
                case .failure(let error): logger.notice("SIGHUP: \(error); the running configuration is unchanged")
                }
            }
        }
    }

    // MARK: - Datapath

    /// Up to a few batches from one port, then the loop moves on so no port starves the others.
    /// Called with `lock` held; lets it go while sending.
    private func receive(onPort index: Int, thread: ForwardingThread) {
        retireFlows()
        guard index < ports.count, let port = ports[index], let device = port.ingress(for: thread.number) else { return }
        let ingress = PortID(index)
        let batch = thread.batch
        // Frames on a port we hold down mean its link came up before the kernel says so (it
        // reports carrier changes up to a second late): an interface that is up and receiving is up.
        port.lastReceive = Self.now()
        if !engine.linkUp.contains(ingress) {
            if thread.number == 0 { refreshLinks(at: port.lastReceive) } else { linkCheckWanted = true }
        }
        for _ in 0..<8 {
            // Sending let the lock go: the port may have been removed or reopened meanwhile.
            guard ports[index] === port else { return }
            let count: Int
            do {
                switch device {
                case .packet(let socket):
                    if let ring = socket.ring {
                        count = try batch.receive(from: ring, of: socket)
                    } else {
                        count = try batch.receive(from: socket)
                    }
                case .tap(let tap): count = try batch.receive(from: tap)
                case .pcap(let pcap): count = pcap.receive(into: batch)
                }
            } catch {
                logger.warning("port \(port.name): \(error); rechecking the link")
                if thread.number == 0 { refreshLinks(at: Self.now()) } else { linkCheckWanted = true }
                return
            }
            guard count > 0 else { return }
            let now = Self.now()
            thread.lastFrames = now
            // While it stays so, every route decided in this batch still holds after the send.
            let routeGeneration = engine.routeGeneration
            let wallClock = captures.isEmpty ? 0 : realtimeNanoseconds()
            for i in 0..<count {
                guard let frame = batch.frame(i) else {
                    port.rxErrors &+= 1
                    continue
                }
                if !captures.isEmpty { capture(frame.bytes, tag: frame.tag, port: index, outbound: false, at: wallClock) }
                let input = IngressFrame(bytes: frame.bytes, tag: frame.tag, checksumPending: frame.header.checksumPending,
                                         serviceTagged: frame.serviceTagged)
                let decision = engine.receive(input, on: ingress, at: now)
                // A port must not get a flow's next frame on its own while the last one waits to
                // be cloned to it from another port's queue (or the other way round): where the
                // forwarding state may have moved, what is queued leaves first.
                if thread.replicating && decision.isControl { flushAllLocked(thread: thread) }
                var oneByOne = decision.ports
                if replication != nil && oneByOne.count > 1 {
                    oneByOne = replicate(frame, decision: decision, thread: thread, wallClock: wallClock)
                }
                for egress in oneByOne {
                    guard let out = ports[egress.index] else { continue }
                    let tag = decision.tagged.contains(egress) ? decision.tag : nil
                    queue(on: egress.index, port: out, thread: thread)
                        .append(frame.bytes, header: frame.header, tag: tag, headerPrecedes: frame.headerPrecedes)
                    if !captures.isEmpty { capture(frame.bytes, tag: tag, port: egress.index, outbound: true, at: wallClock) }
                }
                // The flow's next frames: the kernel's, once the engine has decided a large one.
                if fastPath != nil, let route = decision.route, frame.bytes.count >= kernelFastPathFrameBytes,
                   captures.isEmpty, let ingressInterface = port.fastPathInterface,
                   let egressInterface = ports[route.egress.index]?.fastPathInterface {
                    thread.routes.append((route, ingressInterface, egressInterface))
                }
                if decision.framesWaiting { queueGenerated(thread: thread) }
            }
            // Before the batch is sent: a frame that moved a station may be answered within
            // the send (the receiver's stack runs in our softirq), and the answer must not
            // meet a flow that still points where the station was.
            if let fastPath, fastPath.checkedGeneration != engine.routeGeneration { revalidateFastPath(at: now) }
            flushPending(thread: thread)
            if case .packet(let socket) = device { socket.ring?.release() }
            if let fastPath {
                // After the batch is sent: the kernel must not overtake the frame that decided
                // the route (frames of the flow still in the ring may be, at its start).
                if !thread.routes.isEmpty {
                    // Unless a station, link or port changed since the batch began (then the
                    // engine is asked again), each route holds, and so does its way back: the
                    // same stations, ports and VLAN.
                    let unchanged = engine.routeGeneration == routeGeneration
                    for (route, ingress, egress) in thread.routes
                    where captures.isEmpty && fastPathCarries(route, ingress: ingress, egress: egress)
                        && (unchanged || engine.holds(route, at: now)) {
                        fastPath.offer(route, ingressInterface: ingress, egressInterface: egress, at: now)
                        // The way back (a TCP stream's ACKs), when the engine would decide it so.
                        if unchanged || engine.holds(route.reversed, at: now) {
                            fastPath.offer(route.reversed, ingressInterface: egress, egressInterface: ingress, at: now)
                        }
                    }
                    thread.routes.removeAll(keepingCapacity: true)
                }
            }
            if count < batch.capacity { return }
        }
    }

    /// Queues a frame for several ports as few times as it can: once for each set of
    /// replicating ports that get the same bytes (tagged, untagged), on one of them, naming the
    /// others for the kernel to clone it to. Returns the ports it still has to be sent to.
    /// Called with `lock` held.
    private func replicate(_ frame: ReceivedFrame, decision: ForwardingDecision, thread: ForwardingThread,
                           wallClock: Int64) -> PortSet {
        let candidates = decision.ports.intersection(replicatingPorts)
        guard candidates.count > 1 else { return decision.ports }
        let tagged = candidates.intersection(decision.tagged)
        var rest = decision.ports
        rest = replicate(frame, to: candidates.subtracting(tagged), tag: nil, rest: rest, thread: thread, wallClock: wallClock)
        rest = replicate(frame, to: tagged, tag: decision.tag, rest: rest,
                         thread: thread, wallClock: wallClock)
        return rest
    }

    private func replicate(_ frame: ReceivedFrame, to targets: PortSet, tag: VLANTag?, rest: PortSet, thread: ForwardingThread,
                           wallClock: Int64) -> PortSet {
        guard let replication, let lists = thread.replicaLists else { return rest }
        var rest = rest
        var remaining = targets
        while remaining.count > 1 {
            var iterator = remaining.makeIterator()
            let carrier = iterator.next()!
            var list = PortSet()
            while list.count < EgressReplication.replicasPerList, let port = iterator.next() { list.insert(port) }
            var number = lists.number(of: list, generation: portsGeneration)
            if number == nil {
                if lists.needsReset(generation: portsGeneration) {
                    // Frames queued name the old numbers: they leave before any is rewritten.
                    if thread.replicating { flushAllLocked(thread: thread) }
                    lists.reset(generation: portsGeneration)
                }
                number = lists.add(list) { number, set in
                    let interfaces = set.compactMap { ports[$0.index]?.interfaceIndex }
                    guard interfaces.count == set.count else { return false }
                    do throws(SystemError) {
                        try replication.set(list: number, thread: thread.number, interfaces: interfaces)
                        return true
                    } catch {
                        logger.warning("\(error); frames for these ports are sent to each")
                        return false
                    }
                }
            }
            remaining = remaining.subtracting(list).removing(carrier)
            guard let number, let out = ports[carrier.index] else { continue }
            queue(on: carrier.index, port: out, thread: thread)
                .append(frame.bytes, header: frame.header, tag: tag, headerPrecedes: frame.headerPrecedes,
                        mark: replication.mark(list: Int(number), thread: thread.number), list: number)
            thread.replicating = true
            rest = rest.subtracting(list).removing(carrier)
            if !captures.isEmpty {
                capture(frame.bytes, tag: tag, port: carrier.index, outbound: true, at: wallClock)
                for port in list { capture(frame.bytes, tag: tag, port: port.index, outbound: true, at: wallClock) }
            }
        }
        return rest
    }

    /// Sends every queue the batch filled so far, lock held (before the forwarding state may
    /// move mid-batch, or a replica list is rewritten).
    private func flushAllLocked(thread: ForwardingThread) {
        for id in thread.pending { flushLocked(id.index, thread: thread) }
        thread.replicating = false
    }

    /// Counts the frames the kernel cloned from a queue just sent, on the ports they went to.
    private func countReplicas(of queue: TransmitQueue, thread: ForwardingThread) {
        guard queue.replicated > 0, let lists = thread.replicaLists else { return }
        queue.forEachReplicated { list, sent, bytes in
            for port in lists.sets[Int(list)] {
                if sent {
                    thread.traffic[port.index].frames &+= 1
                    thread.traffic[port.index].bytes &+= UInt64(bytes)
                    thread.clonedFrames &+= 1
                } else {
                    thread.traffic[port.index].drops &+= 1
                }
            }
        }
    }

    /// The queue of an egress port to append a frame to: marked pending with the device to send
    /// it on, first emptied if full. Called with `lock` held.
    private func queue(on index: Int, port: PortIO, thread: ForwardingThread) -> TransmitQueue {
        let queue = thread.queue(index)
        if queue.isFull { flushLocked(index, thread: thread) }
        let id = PortID(index)
        if !thread.pending.contains(id) {
            thread.pending.insert(id)
            thread.egress[index] = port.egress(for: thread.number)
        }
        return queue
    }

    /// Sends one port's queue now, lock held (a full queue mid-batch; libpcap ports).
    private func flushLocked(_ index: Int, thread: ForwardingThread) {
        guard let queue = thread.queues[index], queue.count > 0 else { return }
        // Mid-batch the lock stays: a port command or a link change on the main thread just before.
        retireFlows(lettingGo: false)
        thread.count(send(queue, to: thread.egress[index]), on: index)
        countReplicas(of: queue, thread: thread)
    }

    private func send(_ queue: TransmitQueue, to device: Device?) -> (sent: Int, failed: Int, bytes: Int) {
        sendGate.sending {
            switch device {
            case .packet(let socket)?: return queue.flush(to: socket)
            case .tap(let tap)?: return queue.flush(to: tap)
            case .pcap(let pcap)?: return pcap.flush(queue)
            case nil:
                let dropped = queue.count
                queue.discard()
                return (0, dropped, 0)
            }
        }
    }

    /// Sends every queue the batch filled. Called with `lock` held; packet sockets and TAPs are
    /// written without it (libpcap handles are not for sharing between threads: with it).
    private func flushPending(thread: ForwardingThread) {
        retireFlows()
        guard !thread.pending.isEmpty else { return }
        for id in thread.pending {
            if case .pcap? = thread.egress[id.index] { flushLocked(id.index, thread: thread) }
        }
        lock.unlock()
        for id in thread.pending {
            guard let queue = thread.queues[id.index], queue.count > 0 else { continue }
            // Counted below, under the lock.
            thread.unsettled[id.index] = send(queue, to: thread.egress[id.index])
        }
        lock.lock()
        for id in thread.pending {
            if let result = thread.unsettled[id.index] {
                thread.count(result, on: id.index)
                thread.unsettled[id.index] = nil
                if let queue = thread.queues[id.index] { countReplicas(of: queue, thread: thread) }
            }
            thread.egress[id.index] = nil
        }
        thread.pending = PortSet()
        thread.replicating = false
    }

    private func queueGenerated(thread: ForwardingThread) {
        for frame in engine.takeOutbox() {
            for egress in frame.ports {
                guard let out = ports[egress.index] else { continue }
                let tag = frame.tagged.contains(egress) ? frame.tag : nil
                queue(on: egress.index, port: out, thread: thread).append(owned: frame.bytes, tag: tag)
                if !captures.isEmpty {
                    frame.bytes.withUnsafeBytes {
                        capture($0, tag: tag, port: egress.index, outbound: true, at: realtimeNanoseconds())
                    }
                }
            }
        }
    }

    /// Sends what the engine built (queries, forwarded reports) from the main thread.
    private func sendGenerated() {
        guard engine.hasOutbox else { return }
        queueGenerated(thread: threads[0])
        flushPending(thread: threads[0])
    }

    private func capture(_ frame: UnsafeRawBufferPointer, tag: VLANTag?, port: Int, outbound: Bool, at time: Int64) {
        var anyClosed = false
        for stream in captures where stream.wants(port: port) {
            stream.offer(frame, tag: tag, outbound: outbound, at: time)
            anyClosed = anyClosed || stream.closed
        }
        if anyClosed {
            captures.removeAll { $0.closed }
            logger.info("a capture client left")
        }
    }

    // MARK: - Limits

    private var refusalsLogged: UInt64 = 0
    private var lastRefusalLog = Instant.zero

    /// Logs state refused at the limits, at most once every 10 s, so a flood cannot flood the log too.
    private func reportRefusals(at now: Instant) {
        let total = engine.refusedAtLimits
        guard total > refusalsLogged, now - lastRefusalLog >= .seconds(10) else { return }
        logger.warning("limits reached: \(total - refusalsLogged) messages or entries refused since the last report (status shows which)")
        refusalsLogged = total
        lastRefusalLog = now
    }

    // MARK: - Links

    /// Compares each port with what the kernel says: a port whose interface is gone, down or
    /// without carrier is down (the engine flushes it); an interface created again under the
    /// same name gets a new socket.
    private func refreshLinks(at now: Instant) {
        // The kernel is asked without the lock (an ioctl or four a port); a port added meanwhile
        // is looked at by the call that adds it.
        let names = ports.map { port in port.flatMap { $0.attachment == .tap ? nil : $0.name } }
        let states = withoutLock { names.map { $0.flatMap(InterfaceState.read) } }
        let now = Self.now()
        for (index, port) in ports.enumerated() {
            guard let port else { continue }
            let id = PortID(index)
            if port.attachment == .tap {
                // The TAP's kernel side may live in another namespace, out of our sight: the port
                // is up while our end is open.
                if port.device != nil, !engine.linkUp.contains(id) { engine.setLink(id, up: true, at: now) }
                continue
            }
            guard index < names.count, names[index] == port.name else { continue }
            let state = states[index]
            if let index = port.interfaceIndex, state?.index != index {
                logger.warning("port \(port.name): interface \(state == nil ? "removed" : "re-created"); closing its socket")
                closeDevice(of: port)
            }
            if port.device == nil, state != nil {
                do {
                    try open(port, index: index)
                    logger.notice("port \(port.name): interface back, socket reopened")
                } catch {
                    logger.warning("port \(port.name): \(error)")
                }
            }
            let current = state
            if let mtu = current?.mtu, let old = port.mtu, mtu != old, port.device != nil {
                // Packet sockets carry any size; a libpcap port cuts GSO frames to the MTU it
                // read when it opened, so it opens again.
                logger.notice("port \(port.name): MTU \(old) -> \(mtu)")
                port.linkChanges &+= 1
                if port.attachment == .pcap {
                    closeDevice(of: port)
                    try? open(port, index: index)
                }
            }
            port.mtu = current?.mtu ?? port.mtu
            let recent = now - port.lastReceive < .seconds(1)
            let carrier = current?.hasCarrier == true || recent
            if current?.hasCarrier == false, recent { carrierCheck = now + .seconds(1) }
            let up = port.device != nil && current?.isUp == true && carrier
            if up != engine.linkUp.contains(id) {
                if up { for socket in port.allSockets { socket.clearPendingError() } }
                engine.setLink(id, up: up, at: now)
                port.linkChanges &+= 1
                logger.notice("port \(port.name): link \(up ? "up" : "down")\(up ? "" : "; its MAC entries and memberships flushed")")
            }
        }
        sendGenerated()
    }

    // MARK: - Run-time changes

    /// Adds a port while running; the interface must exist.
    public func addPort(_ configuration: PortConfiguration) throws {
        guard configuration.attachment == .tap || InterfaceState.read(configuration.name) != nil else {
            throw ControlError("interface \(configuration.name) does not exist")
        }
        let now = Self.now()
        let id = try engine.addPort(configuration, at: now)
        let port = PortIO(configuration)
        while ports.count <= id.index { ports.append(nil) }
        ports[id.index] = port
        do {
            try open(port, index: id.index)
        } catch {
            engine.removePort(id, at: now)
            ports[id.index] = nil
            throw error
        }
        refreshLinks(at: now)
        logger.notice("port \(configuration.name) added")
    }

    public func removePort(named name: String) throws {
        guard let id = engine.port(named: name), let port = ports[id.index] else {
            throw ControlError("no port named \(name)")
        }
        closeDevice(of: port)
        engine.removePort(id, at: Self.now())
        ports[id.index] = nil
        revalidateFastPath(at: Self.now())
        logger.notice("port \(name) removed")
    }

    /// New settings while running (SIGHUP): ports removed, added or changed are applied one by
    /// one, the rest through the engine. Returns a line for the log.
    public func apply(_ new: SwitchConfiguration) -> String {
        let current = engine.ports.compactMap { $0 }
        var changes: [String] = []
        for port in current where !new.ports.contains(port) {
            try? removePort(named: port.name)
            changes.append("-\(port.name)")
        }
        for port in new.ports where !current.contains(port) {
            do {
                try addPort(port)
                changes.append("+\(port.name)")
            } catch {
                changes.append("\(port.name) not added: \(error)")
            }
        }
        let kept = engine.reconfigure(new, at: Self.now())
        revalidateFastPath(at: Self.now())
        var line = "configuration re-read; ports: \(changes.isEmpty ? "unchanged" : changes.joined(separator: " "))"
        if !kept.isEmpty { line += "; needs a restart to change: \(kept.joined(separator: ", "))" }
        return line
    }

    // MARK: - Control

    /// A request the client's role permits (the control server checked it).
    private func answer(_ request: ControlRequest, client: Int32) -> String? {
        let words = request.arguments
        do {
            switch request.command {
            case .capture:
                try startCapture(words, client: client)
                return nil
            case .status:
                // Made on the status worker and sent when it is done (`run`, Token.wakeup).
                let format: StatusWorker.Format
                switch words.first {
                case nil: format = .json
                case "text" where words.count == 1: format = .text
                default: throw ControlError("usage: status [text]")
                }
                guard statusWorker.submit(client: client, format: format) else { throw ControlError("busy: too many status requests waiting") }
                return nil
            case .ping: return "{\"pong\":true}"
            case .port: try portCommand(words)
            case .fdb: try fdbCommand(words)
            case .mdb: try mdbCommand(words)
            }
            return "{\"ok\":true}"
        } catch {
            return ControlProtocol.errorDocument("\(error)")
        }
    }

    /// What the status shows, copied out of the engine and the ports. Called with `lock` held.
    private func statusParts() -> StatusParts {
        settleFastPathFlows()
        for port in ports {
            port?.collectKernelDrops()
        }
        let runtime = ports.enumerated().map { index, port in
            let sent = threads.reduce(into: Traffic()) {
                $0.frames &+= $1.traffic[index].frames
                $0.bytes &+= $1.traffic[index].bytes
                $0.drops &+= $1.traffic[index].drops
            }
            return PortRuntime(interfaceIndex: port?.interfaceIndex.map(Int.init),
                               txFrames: sent.frames, txBytes: sent.bytes,
                               txDrops: sent.drops + (port?.rxErrors ?? 0) + (port?.kernelDrops ?? 0),
                               linkChanges: port?.linkChanges ?? 0, socketOverruns: port?.kernelDrops ?? 0)
        }
        let packetPorts = ports.compactMap { $0 }.filter { $0.attachment == .packetSocket && $0.device != nil }
        let datapath = StatusReport.Datapath(threads: threads.count, nice: nice, ringBytes: ringBytes,
                                             packetPorts: packetPorts.count,
                                             hostStackFilteredPorts: packetPorts.filter {
                                                 $0.hostStackFilter != nil || ($0.fastPathHook != nil && filterHostStack)
                                             }.count,
                                             fastPathPorts: packetPorts.filter { $0.fastPathHook != nil }.count,
                                             kernelFlows: fastPath?.count ?? 0,
                                             replicatingPorts: packetPorts.filter { $0.replicationHook != nil }.count,
                                             clonedFrames: threads.reduce(0) { $0 &+ $1.clonedFrames },
                                             threadCPUs: threadCPUs)
        return StatusParts(snapshot: StatusSnapshot(engine: engine, at: Self.now()), runtime: runtime, datapath: datapath)
    }

    /// `capture PORT|* all|control`: the client's socket becomes a capture stream.
    private func startCapture(_ words: [String], client: Int32) throws {
        guard words.count == 2, words[1] == "all" || words[1] == "control" else {
            throw ControlError("usage: capture PORT|* all|control")
        }
        var port: Int?
        if words[0] != "*" {
            guard let id = engine.port(named: words[0]) else { throw ControlError("no port named \(words[0])") }
            port = id.index
        }
        writeAll(client, Array("{\"ok\":true}\n".utf8))
        captures.append(CaptureStream(descriptor: client, port: port, controlOnly: words[1] == "control"))
        // A capture sees every frame: while one runs, the switch's threads forward them all.
        fastPath?.removeAll()
        logger.info("capture started (\(words[0] == "*" ? "every port" : words[0]), \(words[1]) frames)")
    }

    private func portCommand(_ words: [String]) throws {
        switch (words.first, words.count) {
        case ("add", 2): try addPort(try PortSpec.parse(words[1]))
        case ("del", 2): try removePort(named: words[1])
        default: throw ControlError("usage: port add SPEC | port del NAME")
        }
    }

    private func fdbCommand(_ words: [String]) throws {
        guard words == ["flush"] else { throw ControlError("usage: fdb flush") }
        engine.flushMACs()
        logger.notice("MAC table flushed")
    }

    /// `mdb flush [VLAN]`, `mdb add PORT GROUP VLAN`, `mdb del PORT GROUP VLAN`.
    private func mdbCommand(_ words: [String]) throws {
        func vlan(_ text: String) throws -> VLANID {
            guard let number = Int(text), let id = VLANID(number) else { throw ControlError("bad VLAN '\(text)'") }
            return id
        }
        switch (words.first, words.count) {
        case ("flush", 1):
            engine.flushMemberships()
        case ("flush", 2):
            engine.flushMemberships(in: try vlan(words[1]))
        case ("add", 4), ("del", 4):
            guard let port = engine.port(named: words[1]) else { throw ControlError("no port named \(words[1])") }
            guard let group = IPv4Address(words[2]), group.isMulticast, !group.isLocalNetworkControl else {
                throw ControlError("'\(words[2])' is not a multicast group outside 224.0.0.0/24")
            }
            let id = try vlan(words[3])
            guard engine.ports[port.index]?.vlans.contains(id) == true else {
                throw ControlError("port \(words[1]) is not in VLAN \(id)")
            }
            if words[0] == "add" {
                engine.addStaticMembership(port, to: group, in: id)
            } else if !engine.removeStaticMembership(port, from: group, in: id) {
                throw ControlError("no static entry for \(group) on \(words[1]) in VLAN \(id)")
            }
        default:
            throw ControlError("usage: mdb flush [VLAN] | mdb add PORT GROUP VLAN | mdb del PORT GROUP VLAN")
        }
        logger.notice("mdb \(words.joined(separator: " "))")
    }
}
