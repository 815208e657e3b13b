#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call, on what, and errno. Its description is one line a user can act on.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let subject: String
    public let errno: Int32

    public init(_ call: String, _ subject: String, errno: Int32 = Glibc.errno) {
        self.call = call
        self.subject = subject
        self.errno = errno
    }

    public var description: String {
        "\(subject): \(call) failed: \(String(cString: strerror(errno)))"
    }
}

extension SystemError {
    /// A BPF program or table the kernel refused: the verifier's last words, when it left any in
    /// `log`, go with the call's name (the reason, not the count of instructions it went through
    /// that follows it).
    static func bpf(_ what: String, _ subject: String, errno: Int32, log: [CChar] = [0]) -> SystemError {
        let words = log.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            .split(separator: "\n").last { !$0.hasPrefix("processed ") }.map(String.init) ?? ""
        return SystemError("BPF \(what)\(words.isEmpty ? "" : " (\(words))")", subject, errno: errno)
    }
}

/// Runs a system call, retrying on EINTR, turning -1 into a thrown SystemError.
@inline(__always)
func retryingInterrupts<T: BinaryInteger>(_ call: String, _ subject: String, _ body: () -> T) throws(SystemError) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        if errno == EINTR { continue }
        throw SystemError(call, subject)
    }
}
