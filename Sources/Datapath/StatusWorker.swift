#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Control
import Ports
import SwitchEngine
import Synchronization

/// What a status shows, copied out of the engine and the ports under the datapath's lock.
struct StatusParts {
    var snapshot: StatusSnapshot
    var runtime: [PortRuntime]
    var datapath: StatusReport.Datapath

    var report: StatusReport { StatusReport(snapshot: snapshot, ports: runtime, datapath: datapath) }
}

/// The control plane's slow work, on a thread of its own so that no forwarding thread waits for
/// it: status documents (seconds of sorting and JSON for 100,000 groups) and the metrics
/// endpoint. It copies the state under the datapath's lock, briefly, and formats without it; a
/// scrape copies it as a status does (`currentState`). Status answers go back to the main
/// thread, which owns the control socket's clients and sends them. The metrics endpoint's
/// sockets are non-blocking in this thread's epoll, each connection with a deadline for the
/// whole of it (`MetricsServer`): a client that sends a byte a second delays neither a status
/// nor another scrape.
final class StatusWorker: @unchecked Sendable {
    /// Status requests waiting, at most this many; more are refused rather than queued.
    static let maximumQueued = 16

    /// How a status request wants its answer: the JSON document, or the tables as the CLI
    /// prints them (made here: decoding 17 MB of JSON took the CLI seconds for 100,000 groups).
    enum Format { case json, text }

    private struct Queue {
        var requests: [(client: Int32, format: Format)] = []
        var answers: [(client: Int32, line: [UInt8])] = []
        var stopping = false
    }
    private let queue = Mutex(Queue())
    private let wakeup: Wakeup
    private let poller: Poller
    private let metrics: MetricsServer?
    private let lock: DatapathLock
    /// Called with `lock` held.
    private let copyState: () -> StatusParts
    /// Tells the main thread that answers wait (`takeAnswers`).
    private let answered: () -> Void
    private var thread: SystemThread?

    private enum Token {
        static let wakeup: UInt64 = 0
        static let metrics: UInt64 = 1
        /// Metrics connections: this plus their descriptor.
        static let metricsClient: UInt64 = 1 << 32
    }

    init(lock: DatapathLock, metrics: MetricsServer?, copyState: @escaping () -> StatusParts,
         answered: @escaping () -> Void) throws(SystemError) {
        self.lock = lock
        self.metrics = metrics
        self.copyState = copyState
        self.answered = answered
        wakeup = try Wakeup()
        poller = try Poller(capacity: 32)
        try poller.add(wakeup.descriptor, token: Token.wakeup)
        if let metrics { try poller.add(metrics.descriptor, token: Token.metrics) }
    }

    func start() throws(SystemError) {
        thread = try SystemThread(name: "snoopswitch-st") { [self] in loop() }
    }

    /// Queues a status request; false when too many wait already.
    func submit(client: Int32, format: Format) -> Bool {
        let queued = queue.withLock { queue in
            guard queue.requests.count < Self.maximumQueued else { return false }
            queue.requests.append((client, format))
            return true
        }
        if queued { wakeup.signal() }
        return queued
    }

    /// The documents made since the last call, each a line of JSON, with the clients they answer.
    func takeAnswers() -> [(client: Int32, line: [UInt8])] {
        queue.withLock { queue in
            defer { queue.answers = [] }
            return queue.answers
        }
    }

    /// Ends the thread; requests not yet answered are closed.
    func stop() {
        queue.withLock { $0.stopping = true }
        wakeup.signal()
        thread?.join()
        thread = nil
        let left = queue.withLock { queue in
            defer { queue.requests = []; queue.answers = [] }
            return queue.requests.map(\.client) + queue.answers.map(\.client)
        }
        for client in left { close(client) }
    }

    private func loop() {
        // Forwarding runs at a raised priority (nice -10 by default); formatting yields to it
        // and to the hosts, and never runs ahead of forwarding (--nice 5).
        try? SystemThread.setCurrentNice(max(0, SystemThread.currentNice))
        while true {
            var timeout: Int32 = -1
            if let next = metrics?.nextDeadline {
                let wait = next.nanoseconds - monotonicNanoseconds()
                timeout = Int32(clamping: max(0, (wait + 999_999) / 1_000_000))
            }
            let count = poller.wait(timeoutMilliseconds: timeout)
            if let metrics { serveMetrics(metrics, ready: count) }
            wakeup.drain()
            requests: while true {
                switch nextRequest() {
                case .idle: break requests
                case .stop: return
                case .request(let client, let format):
                    let line = statusLine(format)
                    queue.withLock { $0.answers.append((client, line)) }
                    answered()
                }
            }
        }
    }

    /// Accepts and reads the metrics endpoint's clients that `ready` says are waiting, answers
    /// those whose request is complete, and times out those past their deadline.
    private func serveMetrics(_ metrics: MetricsServer, ready count: Int) {
        let register = { [poller] (fd: Int32) in try? poller.add(fd, token: Token.metricsClient + UInt64(fd)) }
        let unregister = { [poller] (fd: Int32) in poller.remove(fd) }
        let scrape = { [self] in currentState().report.prometheusText() }
        for i in 0..<count {
            let now = Instant(nanoseconds: monotonicNanoseconds())
            switch poller.ready[i] {
            case Token.metrics:
                metrics.accept(at: now, register: { _ = register($0) }, unregister: unregister)
            case let token where token >= Token.metricsClient:
                metrics.readable(Int32(truncatingIfNeeded: token - Token.metricsClient), at: now, unregister: unregister, body: scrape)
            default:
                break
            }
        }
        metrics.expire(at: Instant(nanoseconds: monotonicNanoseconds()), unregister: unregister, body: scrape)
    }

    private enum Next { case request(Int32, Format), idle, stop }

    private func nextRequest() -> Next {
        queue.withLock { queue in
            if queue.stopping { return .stop }
            guard !queue.requests.isEmpty else { return .idle }
            let next = queue.requests.removeFirst()
            return .request(next.client, next.format)
        }
    }

    private func currentState() -> StatusParts {
        lock.lock()
        defer { lock.unlock() }
        return copyState()
    }

    /// The status as one line of JSON, or as its tables.
    private func statusLine(_ format: Format) -> [UInt8] {
        var line: [UInt8]
        switch format {
        case .text:
            line = Array(currentState().report.renderText().utf8)
        case .json:
            do {
                line = [UInt8](try ControlProtocol.encoder().encode(currentState().report))
            } catch {
                line = Array(ControlProtocol.errorDocument("cannot encode the status: \(error)").utf8)
            }
        }
        line.append(UInt8(ascii: "\n"))
        // A large table's document takes many times its size to build; give that memory back
        // rather than keep it for the next request.
        if line.count > 1 << 20 { clinux_release_free_memory() }
        return line
    }
}
