/// A min-heap of deadlines with payloads. Entries are never removed early: the owner checks,
/// when one fires, whether it still stands (lazy cancellation keeps every operation O(log n)).
public struct TimerQueue<Payload> {
    private var heap: [(deadline: Instant, payload: Payload)] = []

    public init() {}

    public var count: Int { heap.count }
    public var nextDeadline: Instant? { heap.first?.deadline }

    public mutating func schedule(_ payload: Payload, at deadline: Instant) {
        heap.append((deadline, payload))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].deadline < heap[parent].deadline else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    public mutating func popDue(at now: Instant) -> (deadline: Instant, payload: Payload)? {
        guard let first = heap.first, first.deadline <= now else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < heap.count, heap[left].deadline < heap[smallest].deadline { smallest = left }
                if right < heap.count, heap[right].deadline < heap[smallest].deadline { smallest = right }
                if smallest == parent { break }
                heap.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return first
    }

    public mutating func removeAll() { heap.removeAll() }
}
