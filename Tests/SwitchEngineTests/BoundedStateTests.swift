import XCTest
@testable import SwitchEngine
import Wire

/// A hostile host cannot grow the switch's state past its limits nor starve the other ports.
final class BoundedStateTests: XCTestCase {
    func testGroupsPerPortAreBoundedAndOtherPortsStillJoin() {
        let h = EngineHarness(accessPorts: 3) { $0.membershipLimits.groupsPerPort = 100; $0.igmpRatePerPort = 1_000_000 }
        for i in 0..<1000 { h.report(IPv4Address(239, 10, UInt8(i >> 8), UInt8(i & 0xff)), on: 1) }
        XCTAssertEqual(h.engine.memberships.groupCount(on: PortID(1)), 100)
        XCTAssertEqual(h.engine.memberships.refusals[.groupsPerPort], 900)
        h.report(g1, on: 2)
        XCTAssertNotNil(h.member(g1, on: 2), "the well-behaved port still joins")
        // Existing memberships keep working, and refreshing them is not refused.
        h.report(IPv4Address(239, 10, 0, 5), on: 1)
        XCTAssertEqual(h.engine.memberships.refusals[.groupsPerPort], 900)
        // Expiry gives the room back.
        h.at(261)
        XCTAssertEqual(h.engine.memberships.groupCount(on: PortID(1)), 0)
    }

    func testGroupsPerVLANAreBounded() {
        let h = EngineHarness(accessPorts: 3) { $0.membershipLimits.groupsPerVLAN = 10 }
        for i in 0..<20 { h.report(IPv4Address(239, 20, 0, UInt8(i)), on: 1) }
        XCTAssertEqual(h.engine.memberships.groupCount(in: .default), 10)
        h.report(IPv4Address(239, 20, 0, 3), on: 2)
        XCTAssertNotNil(h.member(IPv4Address(239, 20, 0, 3), on: 2), "joining a group that exists takes no new room in the VLAN")
    }

    func testSourcesPerGroupAreBounded() {
        let h = EngineHarness(accessPorts: 2) { $0.membershipLimits.sourcesPerGroup = 4 }
        let sources = (1...10).map { IPv4Address(198, 51, 100, UInt8($0)) }
        h.igmp(.v3Report([IGMPGroupRecord(type: .allowNewSources, group: g1, sources: Array(sources[0..<3]))]), on: 1, to: .igmpv3Routers)
        h.igmp(.v3Report([IGMPGroupRecord(type: .allowNewSources, group: g1, sources: Array(sources[3..<6]))]), on: 1, to: .igmpv3Routers)
        XCTAssertEqual(h.member(g1, on: 1)?.sources.count, 3, "the record that would pass the limit is refused whole")
        XCTAssertEqual(h.engine.memberships.refusals[.sourcesPerGroup], 1)
    }

    func testMacsPerPortAreBounded() {
        let h = EngineHarness(accessPorts: 3) { $0.macsPerPortLimit = 5 }
        for n in 0..<50 { _ = h.unicast(to: .broadcast, on: 1, host: n) }
        XCTAssertEqual(h.engine.macs.count(on: PortID(1)), 5)
        _ = h.unicast(to: .broadcast, on: 2)
        XCTAssertEqual(h.unicast(to: EngineHarness.host(2), on: 0), [2], "another port still learns")
    }

    /// A port flooding IGMP is cut at its rate; the members of other ports keep their state.
    func testIGMPIsRateLimitedPerPort() {
        let h = EngineHarness(accessPorts: 3) { $0.igmpRatePerPort = 100 }
        for i in 0..<1000 { h.report(IPv4Address(239, 30, UInt8(i >> 8), UInt8(i & 0xff)), on: 1) }
        XCTAssertEqual(h.engine.memberships.groupCount(on: PortID(1)), 100)
        XCTAssertEqual(h.engine.counters.errors[.rateLimited], 900)
        h.report(g1, on: 2)
        XCTAssertNotNil(h.member(g1, on: 2))
        h.at(1)    // a second later the bucket is full again
        h.report(g2, on: 1)
        XCTAssertNotNil(h.member(g2, on: 1))
    }

    /// Spoofing: a leave heard on one port never prunes another.
    func testALeaveOnOnePortNeverPrunesAnother() {
        let h = EngineHarness([PortConfiguration(name: "p0", fastLeave: true), PortConfiguration(name: "p1", fastLeave: true)])
        h.report(g1, on: 1)
        h.leave(g1, on: 0)
        h.igmp(.v3Report([IGMPGroupRecord(type: .changeToInclude, group: g1)]), on: 0, to: .igmpv3Routers)
        XCTAssertNotNil(h.member(g1, on: 1))
    }

    /// A rogue host behind a query-guarded port can neither win the election nor become a router port.
    func testQueryGuardRefusesQueriesFromHostPorts() {
        let h = EngineHarness([PortConfiguration(name: "p0"), PortConfiguration(name: "rogue", queryGuard: true),
                               PortConfiguration(name: "router", isStaticRouterPort: true)]) {
            $0.querier = QuerierConfiguration(enabled: true, address: IPv4Address(192, 0, 2, 254))
        }
        XCTAssertEqual(h.query(on: 1, from: IPv4Address(192, 0, 2, 1)), [])
        XCTAssertEqual(h.engine.querier.role(in: .default, at: h.now), .us)
        XCTAssertEqual(h.data(to: g1, on: 0), [2], "not a router port")
        XCTAssertEqual(h.engine.counters.errors[.guardedQuery], 1)
        // The same query from the router port is heard.
        h.query(on: 2, from: IPv4Address(192, 0, 2, 1))
        XCTAssertEqual(h.engine.querier.role(in: .default, at: h.now), .other)
    }
}
