import CBPF

/// The kernel's share of flooding: one copy from the switch, clones for the other ports.
///
/// A frame for several ports costs the switch a send for each: a system call's worth of
/// message, a new buffer, a copy, and a trip through the receiver's stack apart from the
/// others. The kernel bridge pays one buffer and clones it. Here the switch sends the frame
/// once, on one of its ports (the carrier), with a mark naming a list of the others; a TCX
/// program on the carrier's egress takes the mark off and clones the frame out of each
/// interface of the list, within the same send. The receivers' stacks then take the copies in
/// one pass of the softirq.
///
/// The lists live in a BPF array; each forwarding thread writes its own slice of it and names
/// a list only in frames it sends itself, synchronously, so that it may rewrite a list once its
/// sends have returned. The kernel detaches the programs when their descriptors close.
/// The program and the array: egress_replication.bpf.c.
public final class EgressReplication {
    /// Ports a list names at most, beside its carrier.
    public static let replicasPerList = Int(SNOOP_REPLICAS_MAX)
    /// Lists each thread may hold at once.
    public let listsPerThread: Int
    private let object: BPFObject
    private let lists: Int32
    private let program: Int32

    /// Throws where the kernel has no TCX (before 6.6) or refuses BPF.
    public init(threads: Int, listsPerThread: Int = 1024) throws(SystemError) {
        self.listsPerThread = listsPerThread
        object = try BPFObject(.egressReplication, subject: "egress replication",
                               maxEntries: ["replica_lists": threads * listsPerThread])
        lists = object.map("replica_lists")
        program = object.program("replicate")
    }

    /// The program on an interface's egress, until the link is dropped.
    public func attach(interface name: String, index: Int32) throws(SystemError) -> TCXLink {
        try TCXLink(program: program, hook: .egress, interface: name, index: index)
    }

    /// The mark that sends a frame to list `list` of thread `thread` as well.
    public func mark(list: Int, thread: Int) -> UInt32 {
        SNOOP_REPLICA_MARK_TAG | UInt32(thread * listsPerThread + list)
    }

    /// Writes list `list` of thread `thread`: the interfaces a marked frame is cloned out of.
    public func set(list: Int, thread: Int, interfaces: some Collection<Int32>) throws(SystemError) {
        precondition(list < listsPerThread && interfaces.count <= Self.replicasPerList)
        var value = snoop_replica_list()
        value.count = UInt32(interfaces.count)
        withUnsafeMutableBytes(of: &value.ifindex) { bytes in
            for (i, index) in interfaces.enumerated() { bytes.storeBytes(of: UInt32(bitPattern: index), toByteOffset: 4 * i, as: UInt32.self) }
        }
        var key = UInt32(thread * listsPerThread + list)
        let status = BPFMap.update(lists, &key, &value)
        guard status == 0 else { throw SystemError("BPF replica list", "egress replication", errno: -status) }
    }
}
