/// Which CPU each forwarding thread is bound to when `--cpus` does not say.
///
/// A packet port's sockets share its frames by the CPU the kernel receives a flow's first frame
/// on (`FanoutSteering`): of n threads, thread i takes the flows that began on CPUs c with
/// c % n == i, which on a veth is the CPU their sender sent them from. Each thread is bound to a
/// CPU whose frames it does not take, so that it never competes for a CPU with the senders it
/// forwards for: the sender keeps its CPU, and the forwarding (with the receivers' IP stacks,
/// which run inside our sends) goes to another.
public enum ThreadPlacement {
    /// A CPU for each of `threads` threads, from the CPUs the process may use (`allowed`,
    /// ascending): thread i the next allowed CPU after the i-th, each CPU once while there are
    /// enough, and none whose frames the thread takes where another is free. Empty (leave the
    /// threads to the scheduler) with one thread, which takes every frame, or one CPU.
    public static func awayFromSenders(threads: Int, allowed: [Int]) -> [Int] {
        guard threads > 1, allowed.count > 1 else { return [] }
        var used = Set<Int>()
        var placement: [Int] = []
        for thread in 0..<threads {
            let candidates = (0..<allowed.count).map { allowed[(thread + 1 + $0) % allowed.count] }
            let cpu = candidates.first { !used.contains($0) && $0 % threads != thread }
                ?? candidates.first { !used.contains($0) }
                ?? candidates.first { $0 % threads != thread }
                ?? candidates[0]
            used.insert(cpu)
            placement.append(cpu)
        }
        return placement
    }

    /// The CPUs whose frames thread `thread` of `threads` takes, of those in `allowed`.
    public static func receivingCPUs(of thread: Int, threads: Int, allowed: [Int]) -> [Int] {
        threads <= 1 ? allowed : allowed.filter { $0 % threads == thread }
    }
}
