import Ports
import SwitchEngine
import Wire

/// The unicast flows handed to the kernel fast path, kept in step with the engine. A flow is
/// installed when the engine has just decided one of its frames as a `UnicastRoute`; what the
/// kernel forwarded is counted into the engine and the ports (`settle`) at least once a
/// second; a flow is taken back when the engine would no longer decide it so (a station moved
/// or aged out, a link went down, a port changed), when it has been idle a while, and while a
/// capture runs (captures see every frame). Used with the datapath's lock held.
///
/// The kernel's map is read and written without the lock (a system call a flow: up to 16,384
/// each second): the lock is held to say which flows to read (`flowsToSettle`) and to count
/// what was read (`settle(_:counts:)`), and a flow taken back leaves `flows` at once, for
/// `retiring`, until the caller has taken it out of the kernel (`startRetiring`,
/// `finishRetiring`). A retiring flow is not installed again meanwhile.
final class FastPathFlows {
    typealias Route = SnoopingSwitch.UnicastRoute
    /// Adds what the kernel forwarded of a route since the last call: frames, bytes, and when
    /// the last one passed (nil: none since).
    typealias Settle = (Route, _ frames: UInt64, _ bytes: UInt64, _ lastSeen: Instant?) -> Void

    fileprivate struct Installed {
        var route: Route
        var egressInterface: Int32
        /// The kernel's counts as last settled.
        var settled = KernelFastPath.Counts(frames: 0, bytes: 0, lastUsed: 0)
        var installedAt: Instant
        /// Tells this installation from a later one of the same flow.
        var serial: UInt64
    }

    /// A flow whose counts are read without the lock.
    struct Reading {
        var flow: KernelFastPath.Flow
        var serial: UInt64
    }

    /// A flow taken back, to be taken out of the kernel without the lock.
    struct Retiring {
        var flow: KernelFastPath.Flow
        fileprivate var installed: Installed
    }

    let kernel: KernelFastPath
    private var flows: [KernelFastPath.Flow: Installed] = [:]
    /// Flows taken back whose kernel entries may still be there: not installed again until gone.
    private var retiring: [KernelFastPath.Flow: Installed] = [:]
    /// Of `retiring`, those nobody has started to take out of the kernel yet.
    private var toRetire: [KernelFastPath.Flow] = []
    private var serials: UInt64 = 0
    /// The MAC table generation the flows were last checked against.
    private(set) var checkedGeneration: UInt64 = 0
    /// While the kernel's table is full, no install is tried before then.
    private var fullUntil = Instant.zero
    /// Flows the kernel has not forwarded a frame of for this long are taken back.
    static let idleTimeout = Duration.seconds(30)
    static let settleInterval = Duration.seconds(1)
    private(set) var nextSettle: Instant?

    init(kernel: KernelFastPath) {
        self.kernel = kernel
    }

    var count: Int { flows.count }

    /// Flows taken back that the caller has yet to take out of the kernel (`startRetiring`).
    var mustRetire: Bool { !toRetire.isEmpty }

    /// Hands a route the engine just decided to the kernel, unless it is there already (or
    /// still on its way out).
    @inline(__always)
    func offer(_ route: Route, ingressInterface: Int32, egressInterface: Int32, at now: Instant) {
        let flow = KernelFastPath.Flow(ingress: ingressInterface, destination: route.destination, source: route.source)
        guard flows[flow] == nil, now >= fullUntil, retiring.isEmpty || retiring[flow] == nil else { return }
        switch kernel.insert(flow, egress: egressInterface) {
        case .installed:
            serials &+= 1
            flows[flow] = Installed(route: route, egressInterface: egressInterface, installedAt: now, serial: serials)
            if nextSettle == nil { nextSettle = now + Self.settleInterval }
        case .full:
            fullUntil = now + .seconds(1)
        }
    }

    /// Takes back every flow `keep` refuses (given its route, ingress and egress interfaces);
    /// `generation` is the MAC table's, now checked. The caller takes them out of the kernel
    /// (`startRetiring`) before anything is sent.
    func revalidate(generation: UInt64, keep: (Route, _ ingress: Int32, _ egress: Int32) -> Bool) {
        checkedGeneration = generation
        for (flow, installed) in flows where !keep(installed.route, flow.ingress, installed.egressInterface) {
            take(flow)
        }
    }

    /// The flows whose counts to read from the kernel (without the lock: `kernel.counts(of:)`).
    func flowsToSettle() -> [Reading] {
        flows.map { Reading(flow: $0.key, serial: $0.value.serial) }
    }

    /// Settles the counts read for `readings`, and takes back the idle flows.
    func settle(_ readings: ArraySlice<Reading>, counts: [KernelFastPath.Counts?], at now: Instant, settle: Settle) {
        for (reading, counts) in zip(readings, counts) {
            // Taken back or installed anew while the counts were read: not this installation.
            guard var installed = flows[reading.flow], installed.serial == reading.serial else { continue }
            guard let counts else {
                flows[reading.flow] = nil
                continue
            }
            if Self.settle(&installed, counts, settle) { flows[reading.flow] = installed }
            let lastUsed = counts.lastUsed > 0 ? Instant(nanoseconds: counts.lastUsed) : installed.installedAt
            if now - lastUsed > Self.idleTimeout { take(reading.flow) }
        }
        nextSettle = flows.isEmpty ? nil : now + Self.settleInterval
    }

    /// Takes every flow back (a capture starts).
    func removeAll() {
        for flow in Array(flows.keys) { take(flow) }
        nextSettle = nil
    }

    /// The flows taken back that nobody takes out of the kernel yet: the caller does, then
    /// calls `finishRetiring`.
    func startRetiring() -> [Retiring] {
        defer { toRetire.removeAll(keepingCapacity: true) }
        return toRetire.compactMap { flow in retiring[flow].map { Retiring(flow: flow, installed: $0) } }
    }

    /// Settles what the kernel forwarded of `flows` until they were taken out (`counts`, nil
    /// where there was nothing to take), and lets them be installed again.
    func finishRetiring(_ flows: [Retiring], counts: [KernelFastPath.Counts?], settle: Settle) {
        for (flow, counts) in zip(flows, counts) {
            var installed = flow.installed
            if let counts { Self.settle(&installed, counts, settle) }
            retiring[flow.flow] = nil
        }
    }

    private func take(_ flow: KernelFastPath.Flow) {
        guard let installed = flows.removeValue(forKey: flow) else { return }
        retiring[flow] = installed
        toRetire.append(flow)
    }

    /// Counts what the kernel forwarded since the last settle; false when nothing is new, or
    /// the counts are older than those settled (a status and the fast path's thread read at once).
    @discardableResult
    private static func settle(_ installed: inout Installed, _ counts: KernelFastPath.Counts, _ settle: Settle) -> Bool {
        guard counts.frames > installed.settled.frames else { return false }
        let lastSeen = counts.lastUsed > installed.settled.lastUsed ? Instant(nanoseconds: counts.lastUsed) : nil
        settle(installed.route, counts.frames &- installed.settled.frames, counts.bytes &- installed.settled.bytes, lastSeen)
        installed.settled = counts
        return true
    }
}
