#if canImport(Glibc)
import Glibc
#endif
import CLinux

/// epoll over the descriptors of the switch, each registered with a small integer token.
public final class Poller {
    private let epoll: Int32
    private let events: UnsafeMutablePointer<epoll_event>
    private let capacity: Int
    /// The tokens of the last wait (no array is made per wait: this runs for every batch).
    public let ready: UnsafeMutablePointer<UInt64>

    public init(capacity: Int = 64) throws(SystemError) {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw SystemError("epoll_create1", "event loop") }
        self.capacity = capacity
        events = .allocate(capacity: capacity)
        ready = .allocate(capacity: capacity)
    }

    deinit {
        close(epoll)
        events.deallocate()
        ready.deallocate()
    }

    public func add(_ fd: Int32, token: UInt64) throws(SystemError) {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = token
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 else { throw SystemError("epoll_ctl", "descriptor \(fd)") }
    }

    public func remove(_ fd: Int32) {
        _ = epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil)
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever); the tokens ready are `ready[0..<n]`.
    public func wait(timeoutMilliseconds: Int32) -> Int {
        let n = epoll_wait(epoll, events, Int32(capacity), timeoutMilliseconds)
        guard n > 0 else { return 0 }
        for i in 0..<Int(n) { ready[i] = events[i].data.u64 }
        return Int(n)
    }
}

/// SIGINT, SIGTERM and SIGHUP as a readable descriptor, so the loop handles them in order.
public final class SignalDescriptor {
    public let descriptor: Int32

    public init() throws(SystemError) {
        descriptor = clinux_signalfd_for_termination()
        guard descriptor >= 0 else { throw SystemError("signalfd", "signals") }
    }

    /// The signals received since the last call.
    public func take() -> [Int32] {
        var signals: [Int32] = []
        var info = signalfd_siginfo()
        while read(descriptor, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
            signals.append(Int32(info.ssi_signo))
        }
        return signals
    }

    deinit { close(descriptor) }
}

/// The monotonic clock, in nanoseconds (read in CLinux, which Control shares).
public func monotonicNanoseconds() -> Int64 { clinux_monotonic_nanoseconds() }

/// The wall clock, in nanoseconds since 1970 (for capture timestamps).
public func realtimeNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// A mutex for the state the forwarding threads share (the engine, the port table). Held for
/// deciding a batch, never across a system call that sends or waits.
public final class DatapathLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    public init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inline(__always) public func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) public func unlock() { pthread_mutex_unlock(mutex) }
}

/// A readers-writer lock: many threads send at once (readers), and one thread at a time may
/// keep them all from sending while it changes what the kernel forwards (the writer). A
/// sender never waits for the datapath's lock while it holds this one.
public final class SendGate: @unchecked Sendable {
    private let rwlock: UnsafeMutablePointer<pthread_rwlock_t>

    public init() {
        rwlock = .allocate(capacity: 1)
        pthread_rwlock_init(rwlock, nil)
    }

    deinit {
        pthread_rwlock_destroy(rwlock)
        rwlock.deallocate()
    }

    /// Runs `body`, a send, unless a writer holds the gate (then after it).
    @inline(__always) public func sending<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_rdlock(rwlock)
        defer { pthread_rwlock_unlock(rwlock) }
        return try body()
    }

    /// Waits for the sends under way, and keeps new ones waiting until `reopen`.
    @inline(__always) public func close() { pthread_rwlock_wrlock(rwlock) }
    @inline(__always) public func reopen() { pthread_rwlock_unlock(rwlock) }
}

/// An eventfd: one thread wakes another out of its epoll wait.
public final class Wakeup: @unchecked Sendable {
    public let descriptor: Int32

    public init() throws(SystemError) {
        descriptor = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard descriptor >= 0 else { throw SystemError("eventfd", "thread wakeup") }
    }

    deinit { close(descriptor) }

    public func signal() {
        var one: UInt64 = 1
        _ = write(descriptor, &one, 8)
    }

    /// Empties the counter (level-triggered epoll would report it again otherwise).
    public func drain() {
        var value: UInt64 = 0
        _ = read(descriptor, &value, 8)
    }
}

/// A thread running `body`, joined by `join()`.
public final class SystemThread: @unchecked Sendable {
    private var thread = pthread_t()
    private final class Box { let body: () -> Void; init(_ body: @escaping () -> Void) { self.body = body } }

    public init(name: String, _ body: @escaping () -> Void) throws(SystemError) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let status = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        guard status == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw SystemError("pthread_create", "thread \(name)", errno: status)
        }
        _ = clinux_set_thread_name(thread, String(name.prefix(15)))
    }

    public func join() { pthread_join(thread, nil) }

    /// Binds this thread to `cpu`.
    public func pin(to cpu: Int) throws(SystemError) { try Self.pin(thread, to: cpu) }

    /// Binds the calling thread to `cpu`.
    public static func pinCurrent(to cpu: Int) throws(SystemError) { try pin(pthread_self(), to: cpu) }

    /// Sets the calling thread's nice value; threads it starts afterwards inherit it.
    public static func setCurrentNice(_ nice: Int) throws(SystemError) {
        let status = clinux_set_nice(Int32(nice))
        guard status == 0 else { throw SystemError("setpriority", "nice \(nice)", errno: status) }
    }

    /// The calling thread's nice value.
    public static var currentNice: Int { Int(clinux_nice()) }

    /// Where the kernel groups tasks by session (sched_autogroup_enabled), a thread's nice
    /// only ranks it within its session's group, and groups share the CPU evenly. A process
    /// that leads its own session (started by systemd, or setsid) ranks its whole group with
    /// `nice` instead; one in a shell's session leaves that session alone. Returns nil where
    /// there is no group of its own to rank (or the kernel does not group by session).
    public static func rankOwnSessionGroup(nice: Int) -> Result<Void, SystemError>? {
        guard getsid(0) == getpid(), access("/proc/self/autogroup", W_OK) == 0 else { return nil }
        let fd = open("/proc/self/autogroup", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(SystemError("open", "/proc/self/autogroup")) }
        defer { close(fd) }
        let text = "\(nice)\n"
        let written = text.withCString { write(fd, $0, strlen($0)) }
        return written > 0 ? .success(()) : .failure(SystemError("write", "/proc/self/autogroup (nice \(nice))"))
    }

    private static func pin(_ thread: pthread_t, to cpu: Int) throws(SystemError) {
        let status = clinux_pin_thread(thread, Int32(cpu))
        guard status == 0 else { throw SystemError("pthread_setaffinity_np", "CPU \(cpu)", errno: status) }
    }
}

/// Whether the process may run on `cpu` (its affinity mask).
public func cpuAllowed(_ cpu: Int) -> Bool { clinux_cpu_allowed(Int32(cpu)) == 1 }

/// The CPUs the process may run on (its affinity mask), in ascending order.
public func allowedCPUs() -> [Int] {
    var cpus = [Int32](repeating: 0, count: 1024)
    let n = Int(clinux_allowed_cpus(&cpus, Int32(cpus.count)))
    return cpus.prefix(n).map(Int.init)
}

/// How many CPUs the process may run on (its affinity mask).
public func usableCPUCount() -> Int { Int(clinux_usable_cpus()) }
