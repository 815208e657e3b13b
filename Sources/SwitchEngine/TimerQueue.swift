import HeapModule

/// Deadlines with payloads, earliest first, on swift-collections' Heap. Entries are never
/// removed early: the owner checks, when one fires, whether it still stands (lazy cancellation
/// keeps every operation O(log n)).
public struct TimerQueue<Payload> {
    /// Ordered by deadline alone; the order of equal deadlines is unspecified.
    private struct Entry: Comparable {
        var deadline: Instant
        var payload: Payload

        static func < (a: Entry, b: Entry) -> Bool { a.deadline < b.deadline }
        static func == (a: Entry, b: Entry) -> Bool { a.deadline == b.deadline }
    }

    private var heap = Heap<Entry>()

    public init() {}

    public var count: Int { heap.count }
    public var nextDeadline: Instant? { heap.min?.deadline }

    public mutating func schedule(_ payload: Payload, at deadline: Instant) {
        heap.insert(Entry(deadline: deadline, payload: payload))
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    public mutating func popDue(at now: Instant) -> (deadline: Instant, payload: Payload)? {
        guard let first = heap.min, first.deadline <= now else { return nil }
        heap.removeMin()
        return (first.deadline, first.payload)
    }

    public mutating func removeAll() { heap = Heap() }
}
