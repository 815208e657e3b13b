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
/// forwarding thread has its own packet socket on every packet port (in one PACKET_FANOUT
/// group, steered by `FanoutSteering`) and its own epoll loop. Every thread receives a batch,
/// decides each frame in the engine under `lock`, queues it on the egress ports, and sends each
/// port's queue with one call outside the lock.
///
/// This file holds its state and its start; the rest is in extensions, one job each:
/// `PortIO` and `PortLifecycle` (the ports), `ForwardingThread` and `FramePath` (a thread's
/// frames), `MainLoop` (the loops and signals), `FastPathBookkeeping` (the kernel's flows),
/// `ControlCommands`, `ConfigurationReload` and `StatusAssembly`.
public final class SwitchDaemon: @unchecked Sendable {
    let engine: SnoopingSwitch
    let logger: Logger
    /// By port index, as the engine numbers them; nil where a port was removed.
    var ports: [PortIO?]
    /// Guards the engine, `ports`, `captures` and the threads' traffic counts while more than
    /// one thread forwards. The main thread holds it except while it waits, sends, or makes
    /// system calls that need none of that state (`withoutLock`: link states, the kernel fast
    /// path's counts and flows taken back, the configuration file).
    let lock = DatapathLock()
    /// Every send passes it; closed while flows taken back leave the kernel without `lock`
    /// (`retireFlows`), so that no frame leaves meanwhile that the kernel might answer wrongly.
    let sendGate = SendGate()
    /// Thread 0 is the main thread.
    var threads: [ForwardingThread] = []
    /// Forwarding threads wake the main one when the engine's next deadline moved earlier
    /// than the main thread's planned wake-up, or a port needs its link looked at.
    let wakeMain: Wakeup
    /// The engine's next deadline as the main thread last planned its wait around it.
    var plannedEngineDeadline = Instant.zero
    var linkCheckWanted = false
    let poller: Poller
    let links: LinkMonitor
    let signals: SignalDescriptor
    var control: ControlServer!
    /// Builds status documents and serves the metrics endpoint off the forwarding threads.
    var statusWorker: StatusWorker!
    var running = true
    /// When to look at the links again: some port is held up by its frames alone.
    var carrierCheck: Instant?
    /// Clients of `snoopswitch capture`.
    var captures: [CaptureStream] = []
    /// The interfaces of packet and libpcap ports, claimed while their devices are open, by port name.
    var portClaims: [String: PortClaim] = [:]
    /// `--share-ports`: an interface another switch claims is served all the same.
    let sharePorts: Bool
    /// Named in the claims, for the switch a claim refuses.
    let controlPath: String
    /// Spin instead of sleeping in epoll (`--busy-poll`): lower latency and higher rates for
    /// a core spent on it.
    let busyPoll: Bool
    /// After frames, a thread keeps looking for more this long before it sleeps. Being woken
    /// costs more than the gap between the frames of a busy flow (an IPI, and on a virtual
    /// machine an exit): TCP through the switch is bound by that latency. A longer spin, ahead
    /// of the hosts in priority, takes the CPU from the hosts whose frames it waits for (README,
    /// Architecture, has the measurements). Idle ports cost nothing; a trickle of frames a little.
    static let pollWindow = Duration.microseconds(20)
    /// Receive ring per packet socket (0: recvmmsg instead).
    let ringBytes: Int
    /// Forwarding thread i runs on cpus[i % count] when set: `--cpus`, or else each thread away
    /// from the CPUs whose frames it takes (`ThreadPlacement`); empty: where the scheduler puts it.
    let cpus: [Int]
    /// How the ports' sockets share frames among the threads (nil: by flow hash, or one thread).
    let steering: FanoutSteering?
    /// The CPU each thread was bound to (nil: not bound), for the status.
    var threadCPUs: [Int?] = []
    /// Whether packet ports get a HostStackFilter (`--no-host-stack-filter` turns it off).
    let filterHostStack: Bool
    var hostStackFilterRefused = false
    /// Unicast flows the kernel forwards (nil: `--no-kernel-fast-path`, or the kernel cannot).
    var fastPath: FastPathFlows?
    /// Settles the fast path's flows once a second (`fastPathLoop`), off the forwarding threads.
    var fastPathWorker: SystemThread?
    let wakeFastPathWorker: Wakeup
    /// Sends a frame for several packet ports once and has the kernel clone it to the others
    /// (nil: `--no-egress-replication`, or the kernel cannot).
    var replication: EgressReplication?
    /// Packet ports with the replication program on their egress.
    var replicatingPorts = PortSet()
    /// Moves whenever a port's device opens or closes: replica lists name interfaces by index.
    var portsGeneration: UInt64 = 0
    /// The frame size from which a flow goes to the kernel (`DatapathOptions`).
    let kernelFastPathFrameBytes: Int
    /// The forwarding threads' nice value.
    let nice: Int
    /// State refused at the limits as last logged (`reportRefusals`).
    var refusalsLogged: UInt64 = 0
    var lastRefusalLog = Instant.zero
    /// Called on SIGHUP, without `lock`: the settings to `apply`.
    public var readConfiguration: (() throws -> SwitchConfiguration)?

    /// Opens every port, then the control socket: once the socket exists, the switch forwards.
    /// Throws, with nothing left open, if any part cannot start.
    public init(configuration: SwitchConfiguration, options: DatapathOptions, logger: Logger) throws {
        let threadCount = options.threads, controlPath = options.controlPath
        kernelFastPathFrameBytes = options.kernelFastPathFrameBytes
        self.logger = logger
        busyPoll = options.busyPoll
        ringBytes = options.ringBytes
        let steering = Self.steering(threads: threadCount, logger: logger)
        self.steering = steering
        cpus = !options.cpus.isEmpty ? options.cpus
            : steering == nil ? [] : ThreadPlacement.awayFromSenders(threads: threadCount, allowed: allowedCPUs())
        filterHostStack = options.filterHostStack
        sharePorts = options.sharePorts
        self.controlPath = controlPath
        // Threads started later inherit the main thread's nice value (set by the caller).
        self.nice = SystemThread.currentNice
        try Self.checkPaths(of: configuration, controlPath: controlPath)
        // Before anything is set up or said: an interface another switch serves ends the start.
        for port in configuration.ports where port.attachment != .tap {
            do {
                portClaims[port.name] = try Self.claim(interface: port.name, control: controlPath, share: sharePorts, logger: logger)
            } catch let taken as PortClaim.Taken {
                throw ControlError("\(taken); --share-ports serves it all the same")
            }
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
        loadKernelHelpers(options)
        try poller.add(signals.descriptor, token: Token.signals)
        try poller.add(links.descriptor, token: Token.linkMonitor)
        try poller.add(wakeMain.descriptor, token: Token.wakeup)
        for (index, port) in ports.enumerated() {
            guard let port else { continue }
            try openDevice(port, index: index)   // claimed above
        }
        refreshLinks(at: now)
        let metrics = try options.metricsAddress.map { address throws(ControlError) in try MetricsServer(listen: address) }
        statusWorker = try StatusWorker(lock: lock, metrics: metrics, copyState: { [unowned self] in statusParts() },
                                        answered: { [wakeMain] in wakeMain.signal() })
        control = try ControlServer(path: controlPath, group: options.controlGroup)
        try poller.add(control.descriptor, token: Token.control)
        // Started before the forwarding threads pin this one (--cpus): it runs where it may.
        try statusWorker.start()
        if fastPath != nil {
            fastPathWorker = try SystemThread(name: "snoopswitch-fp") { [self] in fastPathLoop() }
        }
        startThreads()
    }

    /// How several threads share each packet port's frames: by the CPU a flow arrives on, each
    /// thread bound away from the CPUs whose frames it takes; where BPF is refused (nil), by flow
    /// hash, and the scheduler places them (bound to one CPU, a hashed flow's thread would share
    /// its sender's as often as not).
    private static func steering(threads: Int, logger: Logger) -> FanoutSteering? {
        guard threads > 1 else { return nil }
        do throws(SystemError) {
            return try FanoutSteering()
        } catch {
            logger.warning("\(error); the forwarding threads share the ports' frames by flow hash, where the scheduler puts them")
            return nil
        }
    }

    /// Refuses to start when a port's interface or the control socket's directory is missing.
    private static func checkPaths(of configuration: SwitchConfiguration, controlPath: String) throws {
        for port in configuration.ports where port.attachment != .tap && InterfaceState.read(port.name) == nil {
            throw ControlError("interface \(port.name) does not exist")
        }
        let directory = (controlPath as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.isEmpty ? "." : directory, isDirectory: &isDirectory),
              isDirectory.boolValue else {
            throw ControlError("\(controlPath): directory \(directory) does not exist")
        }
    }

    /// The kernel fast path and egress replication, as asked for and where the kernel has them.
    private func loadKernelHelpers(_ options: DatapathOptions) {
        if options.kernelFastPath {
            do throws(SystemError) {
                fastPath = FastPathFlows(kernel: try KernelFastPath(dropMisses: options.filterHostStack))
            } catch {
                logger.warning("\(error); unicast flows are forwarded by the switch's threads alone (the kernel fast path needs Linux 6.6 and CAP_BPF)")
            }
        }
        if options.egressReplication {
            do throws(SystemError) {
                let replication = try EgressReplication(threads: threads.count)
                self.replication = replication
                for thread in threads { thread.replicaLists = ReplicaLists(capacity: replication.listsPerThread) }
            } catch {
                logger.warning("\(error); a frame for several ports is sent to each of them by the switch's threads (egress replication needs Linux 6.6 and CAP_BPF)")
            }
        }
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

    static func now() -> Instant { Instant(nanoseconds: monotonicNanoseconds()) }

    /// Runs `body` without `lock`, for system calls that need none of the state it guards.
    /// Called with the lock held; flows taken back leave the kernel first.
    func withoutLock<T>(_ body: () throws -> T) rethrows -> T {
        retireFlows()
        lock.unlock()
        defer { lock.lock() }
        return try body()
    }
}
