#if canImport(Glibc)
import Glibc
#endif

/// Keeps the frames a port receives from the host's own protocol stack, as the kernel bridge
/// does for its ports. Without it, every frame the switch forwards also climbs the switch
/// namespace's IP stack on the port's interface (a route lookup for each multicast frame, in
/// the sender's softirq). A BPF program on the interface's TCX ingress hook
/// (host_stack_filter.bpf.c) drops the frame after the packet sockets (taps, which run first)
/// have copied it. The kernel detaches the program when the link closes, so a switch that
/// stops or crashes leaves nothing behind.
public final class HostStackFilter {
    private let link: TCXLink

    /// Attaches the filter; throws where the kernel has no TCX (before 6.6) or refuses BPF.
    public init(interface name: String, index: Int32) throws(SystemError) {
        // The object goes when this returns; the link keeps its program.
        let object = try BPFObject(.hostStackFilter, subject: "interface \(name)")
        link = try TCXLink(program: object.program("host_stack_drop"), hook: .ingress, interface: name, index: index)
    }
}
