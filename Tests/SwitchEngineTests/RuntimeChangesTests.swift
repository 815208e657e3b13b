import XCTest
@testable import SwitchEngine
import Wire

/// Ports added and removed, static memberships, flushes: at run time, without losing the rest.
final class RuntimeChangesTests: XCTestCase {
    func testAPortAddedAtRunTimeForwardsOnceItsLinkIsUp() throws {
        let h = EngineHarness(accessPorts: 2)
        h.report(g1, on: 1)
        let id = try h.engine.addPort(PortConfiguration(name: "new"), at: h.now)
        XCTAssertEqual(id, PortID(2))
        XCTAssertEqual(h.unicast(to: .broadcast, on: 0), [1], "its link is down until the datapath says up")
        h.engine.setLink(id, up: true, at: h.now)
        XCTAssertEqual(h.unicast(to: .broadcast, on: 0), [1, 2])
        XCTAssertNotNil(h.member(g1, on: 1), "the others' state is kept")
        XCTAssertThrowsError(try h.engine.addPort(PortConfiguration(name: "new"), at: h.now))
    }

    func testARemovedPortTakesItsStateAndLeavesItsIndexForTheNext() throws {
        let h = EngineHarness([PortConfiguration(name: "p0"), PortConfiguration(name: "p1", isStaticRouterPort: true),
                               PortConfiguration(name: "p2")])
        h.report(g1, on: 2)
        _ = h.unicast(to: .broadcast, on: 1)
        h.engine.removePort(PortID(1), at: h.now)
        XCTAssertNil(h.engine.port(named: "p1"))
        XCTAssertEqual(h.data(to: g1, on: 0), [2], "no longer a router port")
        XCTAssertEqual(h.unicast(to: EngineHarness.host(1), on: 0), [2], "its MAC entries went with it")
        let again = try h.engine.addPort(PortConfiguration(name: "p9", pvid: vlan10), at: h.now, linkUp: true)
        XCTAssertEqual(again, PortID(1))
        XCTAssertEqual(h.unicast(to: .broadcast, on: 0), [2], "the new port is in VLAN 10 only")
    }

    func testStaticMembershipsStayUntilDeleted() {
        let h = EngineHarness(accessPorts: 3)
        h.engine.memberships.addStatic(PortID(2), to: g1, in: .default, version: .v3)
        XCTAssertEqual(h.data(to: g1, on: 0), [2])
        h.leave(g1, on: 2)
        h.igmp(.v3Report([IGMPGroupRecord(type: .changeToInclude, group: g1)]), on: 2, to: .igmpv3Routers)
        h.report(g1, on: 1)
        h.at(10_000)
        XCTAssertEqual(h.data(to: g1, on: 0), [2], "reports and timers leave it alone")
        h.engine.memberships.flush()
        XCTAssertEqual(h.data(to: g1, on: 0), [2], "a flush keeps static entries")
        h.engine.setLink(PortID(2), up: false, at: h.now)
        h.engine.setLink(PortID(2), up: true, at: h.now)
        XCTAssertEqual(h.data(to: g1, on: 0), [2], "so does a link flap")
        XCTAssertTrue(h.engine.memberships.removeStatic(PortID(2), from: g1, in: .default))
        XCTAssertEqual(h.data(to: g1, on: 0), [])
    }

    func testFlushOneVLAN() {
        let h = EngineHarness([PortConfiguration(name: "a10", pvid: vlan10), PortConfiguration(name: "a20", pvid: vlan20)])
        h.report(g1, on: 0)
        h.report(g1, on: 1)
        h.engine.memberships.flush(vlan: vlan10)
        XCTAssertNil(h.member(g1, on: 0, vlan: vlan10))
        XCTAssertNotNil(h.member(g1, on: 1, vlan: vlan20))
    }
}
