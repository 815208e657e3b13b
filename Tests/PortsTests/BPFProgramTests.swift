#if canImport(Glibc)
import Glibc
#endif
import XCTest
@testable import Ports
import Wire

/// Every BPF program of Sources/CBPF/programs goes through the kernel's verifier, as the build
/// compiled it and as the switch loads it; the TCX programs are attached to a loopback of their
/// own. Needs root and a kernel that takes BPF programs (TCX: Linux 6.6): where the kernel
/// refuses, the tests skip and say why. SNOOPSWITCH_TEST_BPF=0 or SNOOPSWITCH_TEST_TCX=0 take
/// the feature as absent, =1 as present (a refusal then fails), as the integration tests do.
final class BPFProgramTests: XCTestCase {
    /// Skips unless the kernel takes BPF programs from this process.
    private func requireBPF() throws {
        let forced = getenv("SNOOPSWITCH_TEST_BPF").map { String(cString: $0) }
        if forced == "0" { throw XCTSkip("SNOOPSWITCH_TEST_BPF=0: BPF taken as absent") }
        if forced == "1" { return }
        guard geteuid() == 0 else { throw XCTSkip("not root: loading BPF programs needs CAP_BPF") }
        do {
            _ = try BPFObject(.hostStackFilter, subject: "probe")
        } catch {
            // Refused before the verifier: no BPF here. Refused by it: a failure.
            guard [EPERM, ENOSYS, EOPNOTSUPP].contains(error.errno), !error.call.contains("program") else { throw error }
            throw XCTSkip("kernel refusing BPF programs and maps (CONFIG_BPF_SYSCALL, CAP_BPF): \(error)")
        }
    }

    func testEveryProgramOfEveryObjectPassesTheVerifier() throws {
        try requireBPF()
        XCTAssertEqual(Set(BPFObjectFile.all.map(\.name)),
                       ["fast_path", "egress_replication", "fanout_steering", "host_stack_filter"])
        for file in BPFObjectFile.all {
            let object = try BPFObject(file, subject: "test")  // every program of it
            XCTAssertFalse(file.bytes.isEmpty)
            _ = object
        }
    }

    /// The switch's own loaders, with the map sizes and programs they choose.
    func testTheSwitchLoadsItsPrograms() throws {
        try requireBPF()
        for dropMisses in [false, true] {
            let fastPath = try KernelFastPath(capacity: 64, dropMisses: dropMisses)
            let flow = KernelFastPath.Flow(ingress: 7, destination: MACAddress(2, 0, 0, 0, 0, 2),
                                           source: MACAddress(2, 0, 0, 0, 0, 1))
            XCTAssertEqual(fastPath.insert(flow, egress: 8), .installed)
            XCTAssertEqual(fastPath.counts(of: flow), KernelFastPath.Counts(frames: 0, bytes: 0, lastUsed: 0))
            XCTAssertEqual(fastPath.take(flow), KernelFastPath.Counts(frames: 0, bytes: 0, lastUsed: 0))
            XCTAssertNil(fastPath.counts(of: flow))
            XCTAssertNil(fastPath.take(flow))
        }
        let replication = try EgressReplication(threads: 2, listsPerThread: 4)
        try replication.set(list: 3, thread: 1, interfaces: [1, 2, 3])
        _ = try FanoutSteering(pairs: 64)
    }

    /// The TCX programs on the hooks of a loopback in a network namespace of its own (the
    /// thread's), gone with the thread.
    func testTheTCXProgramsAttach() throws {
        try requireBPF()
        let forced = getenv("SNOOPSWITCH_TEST_TCX").map { String(cString: $0) }
        if forced == "0" { throw XCTSkip("SNOOPSWITCH_TEST_TCX=0: TCX taken as absent") }
        let result = InOwnNetworkNamespace.run { () throws(SystemError) in
            let loopback = if_nametoindex("lo")
            let index = Int32(loopback)
            let fastPath = try KernelFastPath(capacity: 64, dropMisses: true)
            let links = [
                try HostStackFilter(interface: "lo", index: index) as AnyObject,
                try fastPath.attach(interface: "lo", index: index),
                try EgressReplication(threads: 1, listsPerThread: 4).attach(interface: "lo", index: index),
            ]
            return links.count
        }
        switch result {
        case .success(let count): XCTAssertEqual(count, 3)
        case .failure(let error as SystemError) where forced != "1" && error.call.contains("attach") && error.errno == EINVAL:
            throw XCTSkip("kernel without TCX (Linux 6.6 and later): \(error)")
        case .failure(let error): throw error
        }
    }
}

/// Runs a body on a thread of its own that first leaves for a new network namespace (a
/// thread's namespace is its own on Linux), so that nothing it attaches touches this one's.
/// A pthread, joined: ThreadSanitizer (test.sh runs the unit tests under it) sees the join.
enum InOwnNetworkNamespace {
    private final class Job {
        let body: () throws -> Int
        var result: Result<Int, any Error> = .success(0)
        init(_ body: @escaping () throws -> Int) { self.body = body }
    }

    /// unshare(2), which glibc declares only under _GNU_SOURCE (out of Swift's sight).
    private static let unshare: @convention(c) (Int32) -> Int32 = {
        unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "unshare"), to: (@convention(c) (Int32) -> Int32).self)
    }()
    private static let CLONE_NEWNET: Int32 = 0x4000_0000

    static func run(_ body: @escaping () throws -> Int) -> Result<Int, any Error> {
        let job = Job(body)
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { context in
            let job = Unmanaged<Job>.fromOpaque(context!).takeUnretainedValue()
            if InOwnNetworkNamespace.unshare(InOwnNetworkNamespace.CLONE_NEWNET) != 0 {
                job.result = .failure(SystemError("unshare(CLONE_NEWNET)", "test thread"))
            } else {
                job.result = Result { try job.body() }
            }
            return nil
        }, Unmanaged.passUnretained(job).toOpaque())
        guard created == 0 else { return .failure(SystemError("pthread_create", "test thread", errno: created)) }
        pthread_join(thread, nil)
        return job.result
    }
}
