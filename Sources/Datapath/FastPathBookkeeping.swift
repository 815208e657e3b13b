import Ports
import SwitchEngine

/// The kernel fast path kept in step with the engine: flows taken back when the engine would
/// decide them otherwise, what the kernel forwarded counted, on a thread of its own.
extension SwitchDaemon {
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
    func revalidateFastPath(at now: Instant) {
        guard let fastPath else { return }
        fastPath.revalidate(generation: engine.routeGeneration) { route, ingress, egress in
            kernelMayCarry(route, ingress: ingress, egress: egress, at: now)
        }
    }

    /// Takes the flows the fast path took back out of the kernel. Called with `lock` held,
    /// before it is let go or anything is sent: a frame sent while the kernel still carried a
    /// flow the engine now decides otherwise could be answered through it (the receiver's stack
    /// runs within our send). The map's system calls (for most of the map at once, when a busy
    /// port goes down) are made without the lock (`lettingGo`), while no thread sends.
    func retireFlows(lettingGo: Bool = true) {
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
    func settleFastPathFlows() {
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
    /// kernel forwarded of every flow (a system call a flow: with a full map, time that the
    /// main thread, which also forwards, would not forward; README, Performance) and counts it
    /// under the lock, and takes idle flows back. At nice 0, as the status worker: the threads
    /// and the hosts go first.
    func fastPathLoop() {
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

    /// Whether the kernel may carry `route` between these interfaces: the engine would decide
    /// it so, and both ports still have the fast path on them.
    func kernelMayCarry(_ route: SnoopingSwitch.UnicastRoute, ingress: Int32, egress: Int32, at now: Instant) -> Bool {
        engine.holds(route, at: now) && fastPathCarries(route, ingress: ingress, egress: egress)
    }

    /// Whether both ports of `route` still have the fast path on these interfaces.
    func fastPathCarries(_ route: SnoopingSwitch.UnicastRoute, ingress: Int32, egress: Int32) -> Bool {
        ports[route.ingress.index]?.fastPathInterface == ingress && ports[route.egress.index]?.fastPathInterface == egress
    }
}
