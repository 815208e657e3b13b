import XCTest
@testable import Datapath
import SwitchEngine

/// A thread's replica lists: a port set is written to the kernel once and keeps its number
/// while the ports stay as they are; new ports (a new generation) or a full table start again,
/// and the thread is told to send what names the old numbers first.
final class ReplicaListsTests: XCTestCase {
    func set(_ ports: Int...) -> PortSet { PortSet(ports.map(PortID.init)) }

    func testASetIsWrittenOnceAndKeepsItsNumber() {
        let lists = ReplicaLists(capacity: 4)
        var written: [(Int, PortSet)] = []
        XCTAssertNil(lists.number(of: set(1, 2), generation: 0))
        XCTAssertFalse(lists.needsReset(generation: 0))
        XCTAssertEqual(lists.add(set(1, 2)) { written.append(($0, $1)); return true }, 0)
        XCTAssertEqual(lists.add(set(2, 3)) { written.append(($0, $1)); return true }, 1)
        XCTAssertEqual(lists.number(of: set(1, 2), generation: 0), 0)
        XCTAssertEqual(lists.number(of: set(2, 3), generation: 0), 1)
        XCTAssertEqual(written.map(\.0), [0, 1])
        XCTAssertEqual(written.map(\.1), [set(1, 2), set(2, 3)])
        XCTAssertEqual(lists.sets, [set(1, 2), set(2, 3)])
    }

    func testNewPortsForgetEveryNumber() {
        let lists = ReplicaLists(capacity: 4)
        _ = lists.add(set(1, 2)) { _, _ in true }
        // A port reopened: its interface may have a new index, so the lists are stale.
        XCTAssertNil(lists.number(of: set(1, 2), generation: 1))
        XCTAssertTrue(lists.needsReset(generation: 1))
        lists.reset(generation: 1)
        XCTAssertFalse(lists.needsReset(generation: 1))
        XCTAssertEqual(lists.add(set(1, 2)) { _, _ in true }, 0)
        XCTAssertEqual(lists.number(of: set(1, 2), generation: 1), 0)
    }

    func testAFullTableStartsAgain() {
        let lists = ReplicaLists(capacity: 2)
        _ = lists.add(set(1)) { _, _ in true }
        _ = lists.add(set(2)) { _, _ in true }
        XCTAssertTrue(lists.needsReset(generation: 0))
        lists.reset(generation: 0)
        XCTAssertEqual(lists.add(set(3)) { _, _ in true }, 0)
        XCTAssertNil(lists.number(of: set(1), generation: 0))
    }

    func testASetTheKernelRefusedGetsNoNumber() {
        let lists = ReplicaLists(capacity: 2)
        XCTAssertNil(lists.add(set(1, 2)) { _, _ in false })
        XCTAssertNil(lists.number(of: set(1, 2), generation: 0))
        XCTAssertEqual(lists.add(set(1, 2)) { _, _ in true }, 0)
    }
}
