#if canImport(Glibc)
import Glibc
#endif
import CLinux

/// epoll over the descriptors of the switch, each registered with a small integer token.
public final class Poller {
    private let epoll: Int32
    private var events: [epoll_event]

    public init(capacity: Int = 64) throws(SystemError) {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw SystemError("epoll_create1", "event loop") }
        events = Array(repeating: epoll_event(), count: capacity)
    }

    deinit { close(epoll) }

    public func add(_ fd: Int32, token: UInt64) throws(SystemError) {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = token
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 else { throw SystemError("epoll_ctl", "descriptor \(fd)") }
    }

    public func remove(_ fd: Int32) {
        _ = epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil)
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) and returns the ready tokens.
    public func wait(timeoutMilliseconds: Int32) -> [UInt64] {
        let n = events.withUnsafeMutableBufferPointer {
            epoll_wait(epoll, $0.baseAddress, Int32($0.count), timeoutMilliseconds)
        }
        guard n > 0 else { return [] }
        return (0..<Int(n)).map { events[$0].data.u64 }
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

/// The monotonic clock, in nanoseconds.
public func monotonicNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// The wall clock, in nanoseconds since 1970 (for capture timestamps).
public func realtimeNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}
