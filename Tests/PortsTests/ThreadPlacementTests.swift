import XCTest
@testable import Ports

/// Forwarding threads are bound away from the CPUs whose frames they take (fanout by CPU:
/// thread i of n takes the frames received on CPUs c with c % n == i).
final class ThreadPlacementTests: XCTestCase {
    /// No thread on a CPU whose frames it takes.
    func assertAway(_ placement: [Int], threads: Int, file: StaticString = #filePath, line: UInt = #line) {
        for (thread, cpu) in placement.enumerated() {
            XCTAssertNotEqual(cpu % threads, thread, "thread \(thread) of \(threads) on CPU \(cpu), whose frames it takes",
                              file: file, line: line)
        }
    }

    func testTwoThreadsOnTwoCPUsSwapPlaces() {
        // Senders on CPU 1 are forwarded from CPU 0, and the other way round.
        let placement = ThreadPlacement.awayFromSenders(threads: 2, allowed: [0, 1])
        XCTAssertEqual(placement, [1, 0])
        assertAway(placement, threads: 2)
    }

    func testFourThreadsEachOnTheNextCPU() {
        let placement = ThreadPlacement.awayFromSenders(threads: 4, allowed: Array(0..<4))
        XCTAssertEqual(placement, [1, 2, 3, 0])
        assertAway(placement, threads: 4)
        // More CPUs than threads: every thread still on a CPU of its own, away from its senders.
        let wide = ThreadPlacement.awayFromSenders(threads: 4, allowed: Array(0..<8))
        XCTAssertEqual(Set(wide).count, 4)
        assertAway(wide, threads: 4)
    }

    func testARestrictedSetOfCPUs() {
        // The process may use CPUs 2 and 3 only (taskset, a cgroup's cpuset).
        let placement = ThreadPlacement.awayFromSenders(threads: 2, allowed: [2, 3])
        XCTAssertEqual(placement, [3, 2])
        assertAway(placement, threads: 2)
        let three = ThreadPlacement.awayFromSenders(threads: 3, allowed: [1, 2, 3])
        XCTAssertEqual(Set(three), [1, 2, 3])
        assertAway(three, threads: 3)
    }

    func testMoreThreadsThanCPUsShare() {
        let placement = ThreadPlacement.awayFromSenders(threads: 3, allowed: [0, 1])
        XCTAssertEqual(placement.count, 3)
        XCTAssertEqual(Array(placement.prefix(2)), [1, 0])
    }

    func testNothingToChooseLeavesTheThreadsToTheScheduler() {
        XCTAssertEqual(ThreadPlacement.awayFromSenders(threads: 1, allowed: [0, 1]), [])
        XCTAssertEqual(ThreadPlacement.awayFromSenders(threads: 2, allowed: [5]), [])
    }

    func testWhichCPUsFramesAThreadTakes() {
        XCTAssertEqual(ThreadPlacement.receivingCPUs(of: 0, threads: 2, allowed: [0, 1, 2, 3]), [0, 2])
        XCTAssertEqual(ThreadPlacement.receivingCPUs(of: 1, threads: 2, allowed: [0, 1, 2, 3]), [1, 3])
        XCTAssertEqual(ThreadPlacement.receivingCPUs(of: 0, threads: 1, allowed: [0, 1]), [0, 1])
    }
}
