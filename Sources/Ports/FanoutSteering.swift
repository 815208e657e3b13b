#if canImport(Glibc)
import Glibc
#endif
import CBPF
import CLinux

/// How a packet port's sockets, one per forwarding thread, share its frames: by the CPU the
/// kernel receives a flow's first frame on (on a veth, its sender's CPU), a flow being a
/// destination and source MAC pair. The pair keeps its socket while its frames keep coming,
/// so its frames stay in order even when the sender moves to another CPU (IEEE 802.1Q keeps
/// the frames of a pair in order); after `idle` with none, nothing of it is left in flight and
/// it is steered anew (`idleNanoseconds`).
///
/// By CPU so that the switch can bind each thread away from the CPUs whose frames it takes
/// (`ThreadPlacement`): a thread never competes with its senders for their CPU. By flow hash
/// (the kernel's PACKET_FANOUT_HASH, what the switch falls back to where BPF is refused), a
/// busy flow's thread lands on its sender's CPU as often as not, where, ahead of the sender
/// in priority, it left it a sixth of the CPU while the other core idled. By CPU alone
/// (PACKET_FANOUT_CPU), a sender that moved between CPUs mid-stream had its frames reordered.
///
/// A BPF program (PACKET_FANOUT_EBPF, fanout_steering.bpf.c) and an LRU table of pairs; the
/// kernel frees both when the switch's descriptors close.
public final class FanoutSteering {
    private let object: BPFObject
    fileprivate let program: Int32
    /// A pair with no frame for this long (20 ms) has none left in any ring: a full 1 MiB ring
    /// drains in under 10 ms.
    public static let idleNanoseconds = UInt32(SNOOP_STEERING_IDLE_NS)

    public init(pairs: Int = 16_384) throws(SystemError) {
        object = try BPFObject(.fanoutSteering, subject: "fanout", maxEntries: ["steering_pairs": pairs])
        program = object.program("fanout_steer")
    }

    /// Gives the fanout group of `socket` the program (once per group).
    func attach(to socket: Int32, interface: String) throws(SystemError) {
        let status = clinux_fanout_set_program(socket, program)
        guard status == 0 else { throw SystemError("setsockopt(PACKET_FANOUT_DATA)", "interface \(interface)", errno: -status) }
    }
}
