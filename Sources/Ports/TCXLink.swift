#if canImport(Glibc)
import Glibc
#endif
import CBPF
import CLibbpf

/// A BPF program on an interface's TCX hook (Linux 6.6 and later), for as long as this lives:
/// the kernel detaches the program when the link's descriptor closes, so a switch that stops
/// or crashes leaves nothing behind.
public final class TCXLink {
    public enum Hook: String { case ingress, egress }

    private let descriptor: Int32

    /// Attaches `program` to the `hook` of interface `index` (named `name`, for the error).
    init(program: Int32, hook: Hook, interface name: String, index: Int32) throws(SystemError) {
        // libbpf 1.3 has bpf_program__attach_tcx; Debian 12's 1.1 has only the raw link, which
        // knows nothing of TCX but passes the attach type on to the kernel.
        let type = bpf_attach_type(rawValue: UInt32(hook == .ingress ? SNOOP_BPF_TCX_INGRESS : SNOOP_BPF_TCX_EGRESS))
        let link = bpf_link_create(program, index, type, nil)
        guard link >= 0 else { throw SystemError("BPF TCX \(hook.rawValue) attach", "interface \(name)", errno: -link) }
        descriptor = link
    }

    deinit { close(descriptor) }
}
