import XCTest
@testable import SwitchEngine
import Wire

/// A port's flags (static router port, fast-leave, query-guard) changed while it runs, as a
/// SIGHUP with an edited file does: in place, the port's counters, MAC entries, memberships and
/// link kept (issue 19, item 5).
final class PortFlagChangeTests: XCTestCase {
    private let mg1 = IPv6Address("ff15::4242")!

    func testFastLeaveOnKeepsCountersStationsAndMemberships() {
        let h = EngineHarness(accessPorts: 3) { $0.querier.enabled = true }
        h.report(g1, on: 1)
        h.report(mg1, on: 1)
        h.report(g2, on: 2)
        XCTAssertEqual(h.unicast(to: EngineHarness.host(2), on: 1), [2])
        let rx = h.engine.counters.rxFrames[1], bytes = h.engine.counters.rxBytes[1]
        XCTAssertGreaterThan(rx, 0)

        var changed = h.engine.ports[1]!
        changed.fastLeave = true
        XCTAssertTrue(h.engine.updatePort(PortID(1), with: changed))
        XCTAssertEqual(h.engine.ports[1], changed)
        XCTAssertEqual(h.engine.counters.rxFrames[1], rx, "the port's counters go on")
        XCTAssertEqual(h.engine.counters.rxBytes[1], bytes)
        XCTAssertTrue(h.engine.linkUp.contains(PortID(1)))
        XCTAssertNotNil(h.member(g1, on: 1), "its IGMP membership stays")
        XCTAssertNotNil(h.listener(mg1, on: 1), "its MLD membership stays")
        XCTAssertEqual(h.data(to: g1, on: 0), [1])
        XCTAssertEqual(h.unicast(to: EngineHarness.host(1), on: 0), [1], "its station stays learned")

        // And the flag is in force: a leave prunes the port at once, without a query.
        _ = h.sentQueries()
        h.leave(g1, on: 1)
        XCTAssertNil(h.member(g1, on: 1))
        XCTAssertEqual(h.data(to: g1, on: 0), [])
        XCTAssertTrue(h.sentQueries().isEmpty, "fast-leave asks no group-specific query")
        // Off again: a leave waits for the last member queries.
        changed.fastLeave = false
        XCTAssertTrue(h.engine.updatePort(PortID(1), with: changed))
        h.report(g1, on: 1)
        h.leave(g1, on: 1)
        XCTAssertNotNil(h.member(g1, on: 1), "no fast-leave: the membership waits for the queries")
    }

    func testRouterAndQueryGuardChangeInPlaceForBothProtocols() {
        let h = EngineHarness(accessPorts: 3)
        h.report(g1, on: 2)
        XCTAssertEqual(h.data(to: g2, on: 0), [], "no router port: an unregistered group goes nowhere")

        var port = h.engine.ports[1]!
        port.isStaticRouterPort = true
        XCTAssertTrue(h.engine.updatePort(PortID(1), with: port))
        XCTAssertEqual(h.data(to: g2, on: 0), [1], "a static router port gets every group")
        XCTAssertEqual(h.data(to: mg1, on: 0), [1], "IPv6 groups too")
        XCTAssertEqual(h.data(to: g1, on: 0), [1, 2])
        port.isStaticRouterPort = false
        XCTAssertTrue(h.engine.updatePort(PortID(1), with: port))
        XCTAssertEqual(h.data(to: g2, on: 0), [])
        XCTAssertNotNil(h.member(g1, on: 2))

        // A router learned behind port 1 (its query); query-guard on: it goes, and no query is heard there.
        h.query(on: 1, from: IPv4Address(192, 0, 2, 1))
        XCTAssertEqual(h.data(to: g2, on: 0), [1])
        port.queryGuard = true
        XCTAssertTrue(h.engine.updatePort(PortID(1), with: port))
        XCTAssertEqual(h.data(to: g2, on: 0), [], "a guarded port is no learned router port")
        XCTAssertEqual(h.query(on: 1, from: IPv4Address(192, 0, 2, 1)), [])
        XCTAssertEqual(h.engine.counters.errors[.guardedQuery], 1)
        XCTAssertNotNil(h.member(g1, on: 2), "the other ports' state stays")
    }

    func testAChangeOfVLANsOrAttachmentIsNotMadeInPlace() {
        let h = EngineHarness(accessPorts: 2)
        h.report(g1, on: 1)
        var other = h.engine.ports[1]!
        other.pvid = vlan10
        XCTAssertFalse(h.engine.updatePort(PortID(1), with: other))
        other = h.engine.ports[1]!
        other.attachment = .tap
        XCTAssertFalse(h.engine.updatePort(PortID(1), with: other))
        other = h.engine.ports[1]!
        other.name = "renamed"
        XCTAssertFalse(h.engine.updatePort(PortID(1), with: other))
        XCTAssertFalse(h.engine.updatePort(PortID(7), with: PortConfiguration(name: "p7")), "no such port")
        XCTAssertEqual(h.engine.ports[1]?.name, "p1", "unchanged")
        XCTAssertNotNil(h.member(g1, on: 1))
    }
}
