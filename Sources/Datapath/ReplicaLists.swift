import SwitchEngine

/// One forwarding thread's replica lists (EgressReplication): the sets of ports it has written
/// to the kernel, by number. A number is the thread's alone and names its set until the cache
/// is cleared, which happens only between the thread's sends: when the ports were reopened
/// (their interfaces may have new indexes) or every number is taken.
final class ReplicaLists {
    let capacity: Int
    private var numbers: [PortSet: Int32] = [:]
    /// The set each number names, for counting what the clones carried.
    private(set) var sets: [PortSet] = []
    private var generation: UInt64 = 0

    init(capacity: Int) {
        self.capacity = capacity
        numbers.reserveCapacity(capacity)
        sets.reserveCapacity(capacity)
    }

    /// The number of `set`, when the thread has written it under the ports' current `generation`.
    @inline(__always)
    func number(of set: PortSet, generation: UInt64) -> Int32? {
        generation == self.generation ? numbers[set] : nil
    }

    /// Whether `add` must wait for a `reset`: the ports moved on, or every number is taken.
    /// The thread sends what names the old numbers first.
    func needsReset(generation: UInt64) -> Bool { generation != self.generation || sets.count == capacity }

    func reset(generation: UInt64) {
        numbers.removeAll(keepingCapacity: true)
        sets.removeAll(keepingCapacity: true)
        self.generation = generation
    }

    /// Numbers `set` and has `write` give it to the kernel; nil where the kernel would not
    /// take it (its ports are then sent to one by one).
    func add(_ set: PortSet, write: (Int, PortSet) -> Bool) -> Int32? {
        precondition(sets.count < capacity)
        let number = sets.count
        guard write(number, set) else { return nil }
        numbers[set] = Int32(number)
        sets.append(set)
        return Int32(number)
    }
}
