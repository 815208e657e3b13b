/// A point on the switch's monotonic clock. The engine never reads a clock: callers pass
/// the time in, so tests drive it with a virtual one.
public struct Instant: Comparable, Hashable, Sendable, BitwiseCopyable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    public static let zero = Instant(nanoseconds: 0)
    /// Later than any deadline the switch sets.
    public static let distantFuture = Instant(nanoseconds: .max / 2)

    public static func + (lhs: Instant, rhs: Duration) -> Instant {
        Instant(nanoseconds: lhs.nanoseconds &+ rhs.nanoseconds)
    }

    public static func - (lhs: Instant, rhs: Instant) -> Duration {
        .nanoseconds(lhs.nanoseconds &- rhs.nanoseconds)
    }

    public static func < (a: Instant, b: Instant) -> Bool { a.nanoseconds < b.nanoseconds }

    public var description: String { "t=\(Double(nanoseconds) / 1e9)s" }
}

extension Duration {
    public var nanoseconds: Int64 {
        let parts = components
        return parts.seconds &* 1_000_000_000 &+ parts.attoseconds / 1_000_000_000
    }

    public var secondsValue: Double { Double(nanoseconds) / 1e9 }

    /// Durations from a count of tenths of a second, as IGMP carries them.
    public static func deciseconds(_ count: Int) -> Duration { .milliseconds(count * 100) }
}
