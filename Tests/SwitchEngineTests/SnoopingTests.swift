import XCTest
@testable import SwitchEngine
import Wire

/// RFC 4541 forwarding, RFC 2236 / RFC 3376 membership timers.
final class SnoopingTests: XCTestCase {
    /// RFC 4541 2.1.2: registered groups go to members and router ports, unregistered ones to
    /// router ports only, 224.0.0.0/24 everywhere.
    func testDataGoesToMembersAndRouterPortsOnly() {
        let s = EngineHarness([PortConfiguration(name: "p0"), PortConfiguration(name: "p1"), PortConfiguration(name: "p2"),
                               PortConfiguration(name: "router", isStaticRouterPort: true)])
        XCTAssertEqual(s.data(to: g1, on: 0), [3], "unregistered: router ports only")
        s.report(g1, on: 1)
        XCTAssertEqual(s.data(to: g1, on: 0), [1, 3])
        XCTAssertEqual(s.data(to: g1, on: 1), [3], "never back out of the ingress port")
        XCTAssertEqual(s.data(to: IPv4Address(224, 0, 0, 251), on: 0), [1, 2, 3], "local network control floods")
    }

    func testFloodUnregisteredFloodsUnknownGroupsOnly() {
        let s = EngineHarness(accessPorts: 4) { $0.floodUnregistered = true }
        XCTAssertEqual(s.data(to: g1, on: 0), [1, 2, 3])
        s.report(g1, on: 2)
        XCTAssertEqual(s.data(to: g1, on: 0), [2])
    }

    /// RFC 4541 2.1.1: reports go to router ports only, not to other hosts.
    func testReportsAndLeavesGoToRouterPortsOnly() {
        let s = EngineHarness([PortConfiguration(name: "p0"), PortConfiguration(name: "p1"),
                               PortConfiguration(name: "router", isStaticRouterPort: true)])
        XCTAssertEqual(s.report(g1, on: 0, version: .v1), [2])
        XCTAssertEqual(s.report(g1, on: 0, version: .v2), [2])
        XCTAssertEqual(s.report(g1, on: 0, version: .v3), [2])
        XCTAssertEqual(s.leave(g1, on: 0), [2])
        XCTAssertEqual(s.engine.counters.received[.reportV1], 1)
        XCTAssertEqual(s.engine.counters.received[.reportV3], 1)
        XCTAssertEqual(s.engine.counters.received[.leave], 1)
    }

    func testQueriesGoToEveryPortOfTheVLAN() {
        let s = EngineHarness(accessPorts: 3)
        XCTAssertEqual(s.query(on: 0, from: IPv4Address(192, 0, 2, 100)), [1, 2])
    }

    /// RFC 3376 8.4: a membership lasts robustness x query interval + query response interval.
    func testMembershipExpiresAfterTheGroupMembershipInterval() {
        let s = EngineHarness(accessPorts: 3)
        s.report(g1, on: 1)
        XCTAssertEqual(s.member(g1, on: 1)?.version, .v2)
        s.at(259.9)
        XCTAssertEqual(s.data(to: g1, on: 0), [1])
        s.at(260)
        XCTAssertNil(s.member(g1, on: 1))
        XCTAssertEqual(s.data(to: g1, on: 0), [])
    }

    func testAReportRefreshesTheTimer() {
        let s = EngineHarness(accessPorts: 2)
        s.report(g1, on: 1)
        s.at(200)
        s.report(g1, on: 1, version: .v3)
        s.at(400)
        XCTAssertEqual(s.member(g1, on: 1)?.version, .v3)
        s.at(460)
        XCTAssertNil(s.member(g1, on: 1))
    }

    /// IGMPv3 at group level: IS_EX and TO_EX join; TO_IN({}) leaves (at once on a fast-leave port).
    func testV3JoinAndLeaveRecords() {
        let s = EngineHarness([PortConfiguration(name: "p0", fastLeave: true), PortConfiguration(name: "p1", fastLeave: true)])
        func record(_ type: IGMPGroupRecord.RecordType, _ sources: [IPv4Address] = []) {
            s.igmp(.v3Report([IGMPGroupRecord(type: type, group: g1, sources: sources)]), on: 1, to: .igmpv3Routers)
        }
        record(.changeToExclude);              XCTAssertNotNil(s.member(g1, on: 1))
        record(.changeToInclude);              XCTAssertNil(s.member(g1, on: 1))
        record(.modeIsExclude);                XCTAssertNotNil(s.member(g1, on: 1))
        record(.changeToInclude);              XCTAssertNil(s.member(g1, on: 1))
    }

    func testMembershipIsPerVLAN() {
        let s = EngineHarness([PortConfiguration(name: "a10", pvid: vlan10), PortConfiguration(name: "a20", pvid: vlan20),
                               PortConfiguration(name: "t", pvid: nil, tagged: [vlan10, vlan20])])
        s.report(g1, on: 0)
        XCTAssertEqual(s.data(to: g1, on: 2, tag: VLANTag(vlan: vlan10, priority: 0)), [0])
        XCTAssertEqual(s.data(to: g1, on: 2, tag: VLANTag(vlan: vlan20, priority: 0)), [], "VLAN 20 has no member")
        XCTAssertNil(s.member(g1, on: 0, vlan: vlan20))
    }

    func testBadIGMPIsCountedAndDropped() {
        let s = EngineHarness(accessPorts: 2)
        var frame = IGMPFrameBuilder.frame(.report(group: g1, version: .v2), from: EngineHarness.host(0),
                                           source: EngineHarness.hostIP(0), destination: g1)
        frame[frame.count - 1] ^= 0x55
        XCTAssertEqual(s.ports(s.send(frame, on: 0)), [])
        XCTAssertEqual(s.engine.counters.errors[.badChecksum], 1)
        XCTAssertEqual(s.engine.counters.dropsByReason[.badIGMP], 1)
        XCTAssertNil(s.member(g1, on: 0))
        // A report for a unicast "group" is refused too.
        s.igmp(.report(group: IPv4Address(192, 0, 2, 77), version: .v2), on: 0, to: .allRouters)
        XCTAssertEqual(s.engine.counters.errors[.badGroup], 1)
        s.igmp(.v3Report([IGMPGroupRecord(type: .changeToExclude, group: IPv4Address(192, 0, 2, 77))]), on: 0, to: .igmpv3Routers)
        XCTAssertEqual(s.engine.counters.errors[.badGroup], 2)
        XCTAssertEqual(s.engine.memberships.groupCount, 0)
    }

    // MARK: - Leaves

    func testLeaveOnAFastLeavePortPrunesAtOnce() {
        let s = EngineHarness([PortConfiguration(name: "p0"), PortConfiguration(name: "p1", fastLeave: true)])
        s.report(g1, on: 1)
        s.leave(g1, on: 1)
        XCTAssertNil(s.member(g1, on: 1))
        XCTAssertEqual(s.data(to: g1, on: 0), [])
    }

    /// RFC 2236 section 3 / RFC 3376 6.6.3.1: the querier sends last-member-query-count
    /// group-specific queries, last-member-query-interval apart, and prunes when none is answered.
    func testLeaveWhenWeAreTheQuerierSendsGroupSpecificQueriesThenPrunes() {
        let s = EngineHarness(accessPorts: 3) { $0.querier.enabled = true; $0.querier.address = IPv4Address(192, 0, 2, 254) }
        _ = s.sentQueries()                                        // the startup query at t=0
        s.report(g1, on: 1)
        s.report(g1, on: 2)
        s.at(10)
        s.leave(g1, on: 1)
        var queries = s.sentQueries()
        XCTAssertEqual(queries.count, 1)
        XCTAssertEqual(queries.first?.destination, g1)
        XCTAssertEqual(queries.first?.query.group, g1)
        XCTAssertEqual(queries.first?.query.maxResponseDeciseconds, 10)
        XCTAssertEqual(queries.first?.source, IPv4Address(192, 0, 2, 254))
        s.at(11)
        queries = s.sentQueries()
        XCTAssertEqual(queries.map(\.query.group), [g1], "second of last-member-query-count = 2")
        s.at(11.9)
        XCTAssertNotNil(s.member(g1, on: 1))
        s.at(12)
        XCTAssertNil(s.member(g1, on: 1), "pruned after last member query time")
        XCTAssertNotNil(s.member(g1, on: 2), "a leave on one port never prunes another")
        XCTAssertEqual(s.data(to: g1, on: 0), [2])
        XCTAssertEqual(s.sentQueries().count, 0)
    }

    func testAReportAnsweringTheGroupQueryKeepsTheMember() {
        let s = EngineHarness(accessPorts: 2) { $0.querier.enabled = true }
        s.report(g1, on: 1)
        s.at(5)
        s.leave(g1, on: 1)
        s.at(5.5)
        s.report(g1, on: 1)                                        // another host behind port 1 still wants it
        s.at(20)
        XCTAssertNotNil(s.member(g1, on: 1))
        XCTAssertEqual(s.member(g1, on: 1)?.expires, Instant(nanoseconds: 5_500_000_000) + .seconds(260))
    }

    /// Not the querier: lower the timer to the last member query time, the querier asks.
    func testLeaveWithoutOurQuerierLowersTheTimer() {
        let s = EngineHarness(accessPorts: 3)
        s.report(g1, on: 1)
        s.at(1)
        s.leave(g1, on: 1)
        XCTAssertTrue(s.sentQueries().isEmpty)
        s.at(2.9)
        XCTAssertNotNil(s.member(g1, on: 1))
        s.at(3)
        XCTAssertNil(s.member(g1, on: 1))
    }

    func testLeaveForAGroupThePortNeverJoinedChangesNothing() {
        let s = EngineHarness(accessPorts: 3) { $0.querier.enabled = true }
        _ = s.sentQueries()
        s.report(g1, on: 2)
        s.leave(g1, on: 1)
        XCTAssertTrue(s.sentQueries().isEmpty)
        s.at(5)
        XCTAssertNotNil(s.member(g1, on: 2))
    }

    // MARK: - Router ports

    func testQueriesAndPIMHellosMakeRouterPortsThatExpire() {
        let s = EngineHarness(accessPorts: 4)
        s.query(on: 3, from: IPv4Address(192, 0, 2, 100))
        XCTAssertTrue(s.lastDecision.isControl, "a query is a control frame: the forwarding state may move")
        XCTAssertEqual(s.data(to: g1, on: 0), [3])
        XCTAssertFalse(s.lastDecision.isControl, "group data is not")
        // Other querier present interval: 2 x 125 + 10 / 2 = 255 s.
        s.at(254.9)
        XCTAssertEqual(s.data(to: g1, on: 0), [3])
        s.at(255)
        XCTAssertEqual(s.data(to: g1, on: 0), [])

        let hello = PIMMessage.helloBytes(holdtimeSeconds: 30)
        var frame = [UInt8](repeating: 0, count: 14)
        frame.withUnsafeMutableBytes { e in
            MACAddress.ipv4Multicast(.allPIMRouters).write(to: e, at: 0)
            EngineHarness.host(2).write(to: e, at: 6)
            e.writeUInt16(EtherType.ipv4, at: 12)
        }
        frame += IPv4Builder.controlHeader(source: IPv4Address(192, 0, 2, 3), destination: .allPIMRouters,
                                           protocol: IPv4HeaderView.ProtocolNumber.pim, payloadLength: hello.count) + hello
        XCTAssertEqual(s.ports(s.send(frame, on: 2)), [0, 1, 3], "PIM hellos go to 224.0.0.13: flooded")
        XCTAssertTrue(s.lastDecision.isControl, "a PIM hello is a control frame: state may move")
        XCTAssertEqual(s.data(to: g1, on: 0), [2])
        XCTAssertEqual(s.engine.routers.learnedPorts().first?.learned.reason, .pimHello)
        s.at(284.9)
        XCTAssertEqual(s.data(to: g1, on: 0), [2])
        s.at(285)
        XCTAssertEqual(s.data(to: g1, on: 0), [], "holdtime 30 s ran out")
    }

    func testAQueryFromZeroZeroZeroZeroMakesNoRouterPort() {
        let s = EngineHarness(accessPorts: 3)
        s.query(on: 2, from: .any)
        XCTAssertEqual(s.data(to: g1, on: 0), [])
    }

    func testRouterPortsArePerVLAN() {
        let s = EngineHarness([PortConfiguration(name: "a10", pvid: vlan10), PortConfiguration(name: "a20", pvid: vlan20),
                               PortConfiguration(name: "t", pvid: nil, tagged: [vlan10, vlan20])])
        s.igmp(.query(IGMPQuery(version: .v2, maxResponseDeciseconds: 100)), on: 2, from: IPv4Address(192, 0, 2, 100),
               to: .allSystems, tag: VLANTag(vlan: vlan10, priority: 0))
        XCTAssertEqual(s.data(to: g1, on: 0), [2])
        XCTAssertEqual(s.data(to: g1, on: 1), [])
    }
}
