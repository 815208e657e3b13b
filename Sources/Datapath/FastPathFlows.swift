import Ports
import SwitchEngine
import Wire

/// The unicast flows handed to the kernel fast path, kept in step with the engine. A flow is
/// installed when the engine has just decided one of its frames as a `UnicastRoute`; what the
/// kernel forwarded is counted into the engine and the ports (`settle`) at least once a
/// second; a flow is taken back when the engine would no longer decide it so (a station moved
/// or aged out, a link went down, a port changed), when it has been idle a while, and while a
/// capture runs (captures see every frame). Used with the datapath's lock held.
final class FastPathFlows {
    typealias Route = SnoopingSwitch.UnicastRoute
    /// Adds what the kernel forwarded of a route since the last call: frames, bytes, and when
    /// the last one passed (nil: none since).
    typealias Settle = (Route, _ frames: UInt64, _ bytes: UInt64, _ lastSeen: Instant?) -> Void

    private struct Installed {
        var route: Route
        var egressInterface: Int32
        /// The kernel's counts as last settled.
        var settled = KernelFastPath.Counts(frames: 0, bytes: 0, lastUsed: 0)
        var installedAt: Instant
    }

    let kernel: KernelFastPath
    private var flows: [KernelFastPath.Flow: Installed] = [:]
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

    /// Hands a route the engine just decided to the kernel, unless it is there already.
    @inline(__always)
    func offer(_ route: Route, ingressInterface: Int32, egressInterface: Int32, at now: Instant) {
        let flow = KernelFastPath.Flow(ingress: ingressInterface, destination: route.destination, source: route.source)
        guard flows[flow] == nil, now >= fullUntil else { return }
        switch kernel.insert(flow, egress: egressInterface) {
        case .installed:
            flows[flow] = Installed(route: route, egressInterface: egressInterface, installedAt: now)
            if nextSettle == nil { nextSettle = now + Self.settleInterval }
        case .full:
            fullUntil = now + .seconds(1)
        }
    }

    /// Takes back every flow `keep` refuses (given its route, ingress and egress interfaces),
    /// settling its counts first; `generation` is the MAC table's, now checked.
    func revalidate(generation: UInt64, at now: Instant, settle: Settle,
                    keep: (Route, _ ingress: Int32, _ egress: Int32) -> Bool) {
        checkedGeneration = generation
        for (flow, installed) in flows where !keep(installed.route, flow.ingress, installed.egressInterface) {
            take(flow, settle: settle)
        }
    }

    /// Settles every flow's counts, and takes back the idle ones.
    func settleAll(at now: Instant, settle: Settle) {
        for flow in Array(flows.keys) {
            guard var installed = flows[flow] else { continue }
            guard let counts = kernel.counts(of: flow) else {
                flows[flow] = nil
                continue
            }
            Self.settle(&installed, counts, settle)
            flows[flow] = installed
            let lastUsed = counts.lastUsed > 0 ? Instant(nanoseconds: counts.lastUsed) : installed.installedAt
            if now - lastUsed > Self.idleTimeout { take(flow, settle: settle) }
        }
        nextSettle = flows.isEmpty ? nil : now + Self.settleInterval
    }

    /// Takes every flow back (a capture starts).
    func removeAll(settle: Settle) {
        for flow in Array(flows.keys) { take(flow, settle: settle) }
        nextSettle = nil
    }

    private func take(_ flow: KernelFastPath.Flow, settle: Settle) {
        guard var installed = flows.removeValue(forKey: flow) else { return }
        // What was forwarded since the last look is counted too.
        if let counts = kernel.counts(of: flow) { Self.settle(&installed, counts, settle) }
        kernel.remove(flow)
    }

    private static func settle(_ installed: inout Installed, _ counts: KernelFastPath.Counts, _ settle: Settle) {
        let frames = counts.frames &- installed.settled.frames
        guard frames > 0 else { return }
        let lastSeen = counts.lastUsed > installed.settled.lastUsed ? Instant(nanoseconds: counts.lastUsed) : nil
        settle(installed.route, frames, counts.bytes &- installed.settled.bytes, lastSeen)
        installed.settled = counts
    }
}
