#if canImport(Glibc)
import Glibc
#endif
import XCTest
@testable import Ports

/// One interface, one switch: a claim refuses a second claimant and names the holder; released,
/// it is gone with its file. (Writes under /run/snoopswitch/ports, with an index no interface has.)
final class PortClaimTests: XCTestCase {
    private let index: Int32 = 2_000_000_000 + Int32(getpid() % 1_000_000)

    func testASecondClaimIsRefusedNamingTheFirstAndAReleasedOneIsFree() throws {
        guard access("/run", W_OK) == 0 else { throw XCTSkip("/run is not writable here") }
        let first: PortClaim
        do { first = try PortClaim(interface: "veth-a", index: index, control: "/run/a.sock") } catch {
            throw XCTSkip("no claim possible here: \(error)")
        }
        XCTAssertTrue(first.path.hasPrefix(PortClaim.directory + "/"))
        XCTAssertTrue(first.path.hasSuffix("-\(index)"))
        do {
            _ = try PortClaim(interface: "veth-a", index: index, control: "relative.sock")
            XCTFail("a second claim on the same interface was granted")
        } catch .taken(let taken) {
            XCTAssertEqual(taken.pid, getpid())
            XCTAssertEqual(taken.control, "/run/a.sock")
            XCTAssertEqual(taken.description,
                           "interface veth-a is a port of another snoopswitch (pid \(getpid()), control socket /run/a.sock)")
        } catch {
            XCTFail("\(error)")
        }
        first.release()
        XCTAssertNotEqual(access(first.path, F_OK), 0, "a released claim leaves no file")
        let second = try PortClaim(interface: "veth-a", index: index, control: "relative.sock")
        defer { second.release() }
        let text = try String(contentsOfFile: second.path, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("pid \(getpid())\ncontrol /"), text)
        XCTAssertTrue(text.contains("/relative.sock\n"), "a relative control path is written absolute: \(text)")
    }
}
