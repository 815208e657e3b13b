#if canImport(Glibc)
import Glibc
#endif
import Ports
import SwitchEngine

/// The threads' loops: the main thread's over signals, links, the control socket, timers and its
/// share of the ports; each other forwarding thread's over its own sockets.
extension SwitchDaemon {
    enum Token {
        static let linkMonitor: UInt64 = 1 << 32
        static let signals: UInt64 = 1 << 32 + 1
        static let control: UInt64 = 1 << 32 + 2
        static let wakeup: UInt64 = 1 << 32 + 4
        /// Control clients: this plus their descriptor.
        static let controlClient: UInt64 = 1 << 33
    }

    /// Runs until SIGINT or SIGTERM; returns the exit status.
    public func run() -> Int32 {
        lock.lock()
        logger.info("forwarding on \(engine.activePortIDs.count) ports with \(threads.count) thread\(threads.count == 1 ? "" : "s"); control socket \(control.path)")
        while running {
            let timeout = runDueWork(at: Self.now())
            retireFlows()
            lock.unlock()
            let count = poller.wait(timeoutMilliseconds: timeout)
            let signalsTaken = readWithoutLock(count)
            lock.lock()
            for i in 0..<count { handle(poller.ready[i], signals: signalsTaken) }
        }
        lock.unlock()
        stop()
        return 0
    }

    /// The main thread's work between two waits: the engine's timers, the fast path's flows
    /// checked, generated frames sent, control clients served, links looked at again. Returns
    /// how long to wait for what comes next (0 while frames keep coming). Called with `lock` held.
    private func runDueWork(at now: Instant) -> Int32 {
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
        return polling ? 0 : Int32(clamping: max(0, min(60_000, (wait + 999_999) / 1_000_000)))
    }

    /// What only needs reading (signals, link events, wake-ups) is read before the lock is
    /// taken again. Returns the signals taken.
    private func readWithoutLock(_ count: Int) -> [Int32] {
        var signalsTaken: [Int32] = []
        for i in 0..<count {
            switch poller.ready[i] {
            case Token.signals: signalsTaken = signals.take()
            case Token.linkMonitor: links.drain()
            case Token.wakeup: wakeMain.drain()
            default: break
            }
        }
        return signalsTaken
    }

    /// One ready descriptor of the main thread's epoll. Called with `lock` held.
    private func handle(_ token: UInt64, signals signalsTaken: [Int32]) {
        let now = Self.now()
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

    /// After the loop: the other threads stopped and joined, the control socket closed.
    private func stop() {
        statusWorker.stop()
        wakeFastPathWorker.signal()
        fastPathWorker?.join()
        for thread in threads.dropFirst() { thread.wakeup?.signal() }
        for thread in threads.dropFirst() { thread.system?.join() }
        control.shutdown()
        for claim in portClaims.values { claim.release() }
        logger.info("stopped")
    }

    /// A forwarding thread other than the main one: its packet sockets, until the switch stops.
    func forwardingLoop(_ thread: ForwardingThread) {
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

    /// SIGINT and SIGTERM stop the loops; SIGHUP reads the configuration again.
    private func handleSignals(_ taken: [Int32]) {
        for signal in taken {
            switch signal {
            case SIGINT, SIGTERM:
                logger.info("signal \(signal): shutting down")
                running = false
            default: reloadConfiguration()
            }
        }
    }

    /// Logs state refused at the limits, at most once every 10 s, so a flood cannot flood the log too.
    private func reportRefusals(at now: Instant) {
        let total = engine.refusedAtLimits
        guard total > refusalsLogged, now - lastRefusalLog >= .seconds(10) else { return }
        logger.warning("limits reached: \(total - refusalsLogged) messages or entries refused since the last report (status shows which)")
        refusalsLogged = total
        lastRefusalLog = now
    }
}
