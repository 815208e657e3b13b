#if canImport(Glibc)
import Glibc
#endif
import CLinux

/// A BPF program on an interface's TCX hook (Linux 6.6 and later), for as long as this lives:
/// the kernel detaches the program when the link's descriptor closes, so a switch that stops
/// or crashes leaves nothing behind.
public final class TCXLink {
    public enum Hook: String { case ingress, egress }

    private let descriptor: Int32

    /// Attaches `program` to the `hook` of interface `index` (named `name`, for the error).
    init(program: Int32, hook: Hook, interface name: String, index: Int32) throws(SystemError) {
        let link = hook == .ingress ? clinux_tcx_ingress_attach(index, program) : clinux_tcx_egress_attach(index, program)
        guard link >= 0 else { throw SystemError("BPF TCX \(hook.rawValue) attach", "interface \(name)", errno: -link) }
        descriptor = link
    }

    deinit { close(descriptor) }
}
