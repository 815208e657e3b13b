#if canImport(Glibc)
import Glibc
#endif
import CBPF
import CLinux
import Synchronization
import Wire

/// The kernel's share of unicast forwarding. The switch decides the first frame of a flow (an
/// ingress interface, a destination and a source MAC) itself, then installs the flow here, in a
/// BPF hash map. A TCX program on each port's ingress hook sends the flow's later frames out of
/// its egress interface in the kernel, as the Linux bridge does, and counts them; a filter on
/// the switch's packet sockets keeps those frames from them. A TCP stream through a user-space
/// switch costs two copies of every 64 KB segment and a trip through the switch's thread; here
/// it costs neither. Frames of flows not installed go on to the packet sockets, and the TCX
/// program drops them after (the host stack filter) or passes them on.
///
/// The programs and the maps: fast_path.bpf.c. The kernel detaches the programs when their
/// descriptors close: a switch that stops or crashes leaves nothing behind.
///
/// Its calls may come from several threads at once (a forwarding thread installs a flow while
/// the main thread reads counts or takes flows back, without the switch's lock): the map is
/// the kernel's, and the gate's counts have a mutex of their own.
public final class KernelFastPath: @unchecked Sendable {
    /// A flow: frames from `source` to `destination` arriving on interface `ingress`.
    public struct Flow: Hashable, Sendable {
        public var ingress: Int32
        public var destination: MACAddress
        public var source: MACAddress

        public init(ingress: Int32, destination: MACAddress, source: MACAddress) {
            self.ingress = ingress
            self.destination = destination
            self.source = source
        }

        var key: snoop_flow_key {
            var key = snoop_flow_key()
            key.ifindex = UInt32(bitPattern: ingress)
            withUnsafeMutableBytes(of: &key.destination) { destination.write(to: $0, at: 0) }
            withUnsafeMutableBytes(of: &key.source) { source.write(to: $0, at: 0) }
            return key
        }
    }

    /// What the kernel forwarded of a flow since it was installed.
    public struct Counts: Equatable, Sendable {
        public var frames: UInt64
        public var bytes: UInt64
        /// CLOCK_MONOTONIC nanoseconds of the last frame; 0 before the first.
        public var lastUsed: Int64

        public init(frames: UInt64, bytes: UInt64, lastUsed: Int64) {
            self.frames = frames
            self.bytes = bytes
            self.lastUsed = lastUsed
        }
    }

    public enum InsertResult { case installed, full }

    /// The most flows the kernel holds at once; more are forwarded by the switch itself.
    public let capacity: Int
    private let object: BPFObject
    private let map: Int32
    /// Flows by ingress interface index modulo 256, mirrored in the kernel's gate array.
    private let gate: Int32
    private let gateCounts = Mutex([UInt32](repeating: 0, count: Int(SNOOP_FLOW_GATE_SLOTS)))
    private let ingressProgram: Int32
    private let socketFilter: Int32

    /// Loads the programs and creates the flow table. `dropMisses`: frames not forwarded here
    /// never reach the host's IP stack (the host stack filter). Throws where the kernel has no
    /// TCX (before 6.6) or refuses BPF.
    public init(capacity: Int = 16_384, dropMisses: Bool) throws(SystemError) {
        self.capacity = capacity
        // Of the two ingress programs, the one that does with other frames what was asked.
        let ingress = dropMisses ? "fast_path_drop" : "fast_path_next"
        object = try BPFObject(.fastPath, subject: "kernel fast path", maxEntries: ["flows": capacity],
                               programs: [ingress, "fast_path_sock"])
        map = object.map("flows")
        gate = object.map("flow_gate")
        ingressProgram = object.program(ingress)
        socketFilter = object.program("fast_path_sock")
    }

    /// The TCX program on an interface's ingress, until the link is dropped.
    public func attach(interface name: String, index: Int32) throws(SystemError) -> TCXLink {
        try TCXLink(program: ingressProgram, hook: .ingress, interface: name, index: index)
    }

    /// Keeps the installed flows' frames from a packet socket.
    public func filter(_ socket: PacketSocket) throws(SystemError) {
        let status = clinux_attach_socket_filter(socket.descriptor, socketFilter)
        guard status == 0 else { throw SystemError("SO_ATTACH_BPF", "interface \(socket.interfaceName)", errno: -status) }
    }

    /// Installs a flow, or replaces its egress (its counts start again).
    /// The gate opens before the flow is there, and closes after it is gone.
    public func insert(_ flow: Flow, egress: Int32) -> InsertResult {
        var key = flow.key
        var value = snoop_flow_value()
        value.egress = UInt32(bitPattern: egress)
        adjustGate(of: flow, by: 1)
        guard BPFMap.update(map, &key, &value) == 0 else {
            adjustGate(of: flow, by: -1)
            return .full
        }
        return .installed
    }

    /// The flow's counts; nil when it is not installed.
    public func counts(of flow: Flow) -> Counts? {
        var key = flow.key
        var value = snoop_flow_value()
        guard BPFMap.lookup(map, &key, &value) == 0 else { return nil }
        return Counts(frames: value.frames, bytes: value.bytes, lastUsed: Int64(bitPattern: value.last_used))
    }

    /// Takes a flow out that `insert` put in, and returns its last counts; nil when it was not
    /// there (or another thread took it first).
    public func take(_ flow: Flow) -> Counts? {
        var key = flow.key
        var value = snoop_flow_value()
        let found = BPFMap.lookup(map, &key, &value) == 0
        guard BPFMap.delete(map, &key) == 0 else { return nil }
        adjustGate(of: flow, by: -1)
        return found ? Counts(frames: value.frames, bytes: value.bytes, lastUsed: Int64(bitPattern: value.last_used)) : nil
    }

    /// The programs only ask whether an interface has flows: the kernel's gate changes when a
    /// count goes from 0 or to 0.
    private func adjustGate(of flow: Flow, by change: Int) {
        var slot = UInt32(bitPattern: flow.ingress) % UInt32(SNOOP_FLOW_GATE_SLOTS)
        gateCounts.withLock { counts in
            let old = counts[Int(slot)]
            var new = UInt32(max(0, Int(old) + change))
            counts[Int(slot)] = new
            if (old == 0) != (new == 0) { _ = BPFMap.update(gate, &slot, &new) }
        }
    }
}
