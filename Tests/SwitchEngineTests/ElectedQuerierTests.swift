import XCTest
@testable import SwitchEngine
import Wire

/// When another querier is elected, the timers after a leave or BLOCK follow its queries, not
/// our settings (RFC 3376 6.6.1 for a router that is not the querier; RFC 2236 3): its Q(G)
/// lowers the group timer, its Q(G,A) the timers of the sources named, to its last member query
/// time, which is its QRV (IGMPv2: our last member query count) times the query's max response
/// time. Until its query comes, a leave changes no timer.
///
/// Our own settings: LMQI 1 s, LMQC 2 (LMQT 2 s), GMI 260 s. The router, at 192.0.2.1, wins.
final class ElectedQuerierTimerTests: XCTestCase {
    private let router = IPv4Address(192, 0, 2, 1)
    private let s1 = IPv4Address(198, 51, 100, 1), s2 = IPv4Address(198, 51, 100, 2)

    /// Ports 0 and 1 for hosts, the router behind port 2; our querier on at 192.0.2.200.
    private func lab() -> EngineHarness {
        let s = EngineHarness(accessPorts: 3) {
            $0.querier = QuerierConfiguration(enabled: true, address: IPv4Address(192, 0, 2, 200))
        }
        s.query(on: 2, from: router)                                    // t = 0: the router is the querier
        XCTAssertEqual(s.engine.querier.elected(in: .default, at: s.now), router)
        _ = s.sentQueries()
        return s
    }

    /// Q(G) from the router: the group-specific query after a leave.
    @discardableResult
    private func groupQuery(_ s: EngineHarness, version: IGMPVersion = .v2, maxResponse: Int, qrv: Int = 2,
                            sources: [IPv4Address] = [], suppress: Bool = false, from source: IPv4Address? = nil) -> Set<Int> {
        s.igmp(.query(IGMPQuery(version: version, group: g1, maxResponseDeciseconds: maxResponse,
                                suppressRouterProcessing: suppress, robustness: version == .v3 ? qrv : 0,
                                queryIntervalSeconds: version == .v3 ? 125 : 0, sources: sources)),
               on: 2, from: source ?? router, to: g1)
    }

    /// RFC 2236 3: "When a non-Querier receives a Group-Specific Query message, if its existing
    /// group membership timer is greater than [Last Member Query Count] times the Max Response
    /// Time specified in the message, it sets its group membership timer to that value."
    func testV2LeaveWaitsForTheRoutersGroupQueryAndItsMaxResponseTime() {
        let s = lab()
        s.at(10)
        s.report(g1, on: 1)
        s.at(20)
        XCTAssertEqual(s.leave(g1, on: 1), [2], "the leave goes to the router")
        XCTAssertTrue(s.sentQueries().isEmpty, "not ours to ask")
        s.at(22.5)
        XCTAssertNotNil(s.member(g1, on: 1), "pruned by our own LMQT (2 s) before the router asked")
        XCTAssertEqual(groupQuery(s, maxResponse: 50), [0, 1], "Q(G) reaches every port")   // 5 s
        s.at(32.4)
        XCTAssertNotNil(s.member(g1, on: 1), "2 x 5 s after the router's query: still within its LMQT")
        XCTAssertEqual(s.data(to: g1, on: 0), [1, 2])
        s.at(32.5)
        XCTAssertNil(s.member(g1, on: 1), "the router's LMQT ran out without a report")
        XCTAssertEqual(s.data(to: g1, on: 0), [2])
    }

    /// RFC 3376 6.6.1 and 4.1.6: with IGMPv3 the count is the querier's QRV, carried in its query.
    func testV3GroupQueryUsesItsQRVAndMaxResponseTime() {
        let s = lab()
        s.report(g1, on: 1, version: .v3)
        s.at(10)
        s.igmp(.v3Report([IGMPGroupRecord(type: .changeToInclude, group: g1)]), on: 1, to: .igmpv3Routers)
        XCTAssertEqual(s.member(g1, on: 1)?.groupTimer, Instant.zero + .seconds(260), "TO_IN({}) lowers nothing yet")
        groupQuery(s, version: .v3, maxResponse: 30, qrv: 3)                      // 3 x 3 s
        s.at(18.9)
        XCTAssertNotNil(s.member(g1, on: 1))
        s.at(19)
        XCTAssertNil(s.member(g1, on: 1))
    }

    /// The query is for the link: every port's timer drops; a port whose host answers stays.
    func testEveryPortIsAskedAndTheOneThatAnswersStays() {
        let s = lab()
        s.report(g1, on: 0)
        s.report(g1, on: 1)
        s.at(10)
        s.leave(g1, on: 1)
        groupQuery(s, maxResponse: 20)                                            // 2 x 2 s
        s.at(11.5)
        s.report(g1, on: 0)                                                       // host 0 answers
        s.at(14)
        XCTAssertNil(s.member(g1, on: 1))
        XCTAssertNotNil(s.member(g1, on: 0))
        XCTAssertEqual(s.member(g1, on: 0)?.groupTimer, Instant.zero + .milliseconds(271_500))
    }

    /// 6.6.1: "When a router receives a query with the Suppress Router-Side Processing flag set,
    /// it must not update its timers."
    func testSuppressRouterSideProcessingLeavesTheTimers() {
        let s = lab()
        s.report(g1, on: 1, version: .v3)
        groupQuery(s, version: .v3, maxResponse: 10, suppress: true)
        s.at(100)
        XCTAssertNotNil(s.member(g1, on: 1))
    }

    /// Q(G,A): the timers of the sources named drop to the querier's LMQT; the others run on.
    func testGroupAndSourceQueryLowersOnlyTheSourcesNamed() {
        let s = lab()
        s.igmp(.v3Report([IGMPGroupRecord(type: .modeIsInclude, group: g1, sources: [s1, s2])]), on: 1, to: .igmpv3Routers)
        s.at(10)
        s.igmp(.v3Report([IGMPGroupRecord(type: .blockOldSources, group: g1, sources: [s1])]), on: 1, to: .igmpv3Routers)
        XCTAssertEqual(s.member(g1, on: 1)?.sources[s1], Instant.zero + .seconds(260), "BLOCK lowers nothing yet")
        groupQuery(s, version: .v3, maxResponse: 40, qrv: 2, sources: [s1])      // 2 x 4 s
        XCTAssertEqual(s.member(g1, on: 1)?.sources[s1], Instant.zero + .seconds(18))
        XCTAssertEqual(s.member(g1, on: 1)?.sources[s2], Instant.zero + .seconds(260))
        s.at(18)
        XCTAssertEqual(s.member(g1, on: 1)?.sources.keys.sorted(), [s2])
    }

    /// Only the elected querier's queries count: a Q(G) from a router that lost the election
    /// (or a host's) lowers nothing.
    func testAGroupQueryFromAnotherThanTheQuerierIsIgnored() {
        let s = lab()
        s.report(g1, on: 1)
        groupQuery(s, maxResponse: 1, from: IPv4Address(192, 0, 2, 250))
        s.at(5)
        XCTAssertNotNil(s.member(g1, on: 1))
    }

    func testStaticMembershipsStay() {
        let s = lab()
        s.engine.memberships.addStatic(PortID(1), to: g1, in: .default, version: .v3)
        groupQuery(s, maxResponse: 10)
        s.at(10)
        XCTAssertNotNil(s.member(g1, on: 1))
    }

    /// We are the querier again once the router is gone: our own LMQT applies to leaves.
    func testOurOwnTimersWhenWeAreTheQuerier() {
        let s = lab()
        s.at(256)                                                                 // the router went quiet
        XCTAssertNil(s.engine.querier.elected(in: .default, at: s.now))
        s.report(g1, on: 1)
        s.leave(g1, on: 1)
        XCTAssertEqual(s.sentQueries().filter { !$0.query.isGeneral }.count, 1, "our Q(G)")
        s.at(258)
        XCTAssertNil(s.member(g1, on: 1), "our LMQT: 2 x 1 s")
    }

    /// 4.1.6, 4.1.7: QRV and QQIC are adopted from the querier's latest query, a Q(G) too, and
    /// reports then last its QRV x QQI + query response interval.
    func testQRVAndQQICOfAGroupQueryAreAdopted() {
        let s = lab()
        s.igmp(.query(IGMPQuery(version: .v3, group: g2, maxResponseDeciseconds: 10, robustness: 3,
                                queryIntervalSeconds: 20)), on: 2, from: router, to: g2)
        s.report(g1, on: 1)
        s.at(69.9)
        XCTAssertNotNil(s.member(g1, on: 1))
        s.at(70)
        XCTAssertNil(s.member(g1, on: 1), "3 x 20 s + 10 s")
    }
}

/// RFC 7761 4.9.2 (PIM hello holdtime) and RFC 4286 (MRD termination): a router's goodbye takes
/// back what its protocol taught, never a static router port nor one a query keeps.
final class RouterGoodbyeTests: XCTestCase {
    private func hello(_ s: EngineHarness, holdtime: UInt16, on port: Int) {
        let hello = PIMMessage.helloBytes(holdtimeSeconds: holdtime)
        var frame = [UInt8](repeating: 0, count: 14)
        frame.withUnsafeMutableBytes { e in
            MACAddress.ipv4Multicast(.allPIMRouters).write(to: e, at: 0)
            EngineHarness.host(port).write(to: e, at: 6)
            e.writeUInt16(EtherType.ipv4, at: 12)
        }
        frame += IPv4Builder.controlHeader(source: EngineHarness.hostIP(port), destination: .allPIMRouters,
                                           protocol: IPv4HeaderView.ProtocolNumber.pim, payloadLength: hello.count) + hello
        s.send(frame, on: port)
    }

    /// "If the Holdtime is set to '0xffff', the receiver of this message never times out the neighbor."
    func testHoldtimeFFFFNeverExpires() {
        let s = EngineHarness(accessPorts: 3)
        hello(s, holdtime: 0xffff, on: 2)
        s.at(3.5 * 30)
        XCTAssertEqual(s.data(to: g1, on: 0), [2])
        s.at(365 * 86_400)
        XCTAssertEqual(s.data(to: g1, on: 0), [2], "a year later")
        XCTAssertEqual(s.engine.routers.learnedPorts().first?.learned,
                       RouterPortTracker.Learned(reason: .pimHello, expires: .distantFuture))
        hello(s, holdtime: 0, on: 2)
        XCTAssertEqual(s.data(to: g1, on: 0), [], "until the router says goodbye")
    }

    /// "If the Holdtime is set to '0', the information is timed out immediately": the PIM
    /// neighbor's, not what a query taught of the same port.
    func testHoldtimeZeroKeepsAPortAQueryTaught() {
        let s = EngineHarness(accessPorts: 3)
        s.query(on: 2, from: IPv4Address(192, 0, 2, 1))                 // a router port until 255 s
        hello(s, holdtime: 105, on: 2)
        s.at(10)
        hello(s, holdtime: 0, on: 2)
        XCTAssertEqual(s.data(to: g1, on: 0), [2])
        XCTAssertEqual(s.engine.routers.learnedPorts().first?.learned.reason, .igmpQuery)
        s.at(255)
        XCTAssertEqual(s.data(to: g1, on: 0), [], "the query's time ran out")
    }

    func testHoldtimeZeroOnlyTakesBackWhatPIMTaught() {
        let s = EngineHarness(accessPorts: 3)
        hello(s, holdtime: 105, on: 2)
        hello(s, holdtime: 0, on: 2)
        XCTAssertEqual(s.data(to: g1, on: 0), [])
        XCTAssertTrue(s.engine.routers.learnedPorts().isEmpty)
    }

    func testHoldtimeZeroNeverRemovesAStaticRouterPort() {
        let s = EngineHarness([PortConfiguration(name: "p0"), PortConfiguration(name: "p1"),
                               PortConfiguration(name: "r", isStaticRouterPort: true)])
        hello(s, holdtime: 105, on: 2)
        hello(s, holdtime: 0, on: 2)
        XCTAssertEqual(s.data(to: g1, on: 0), [2])
        s.igmp(.mrdTermination, on: 2, from: IPv4Address(192, 0, 2, 60), to: .allSnoopers)
        XCTAssertEqual(s.data(to: g1, on: 0), [2])
    }

    /// RFC 4286 2: a termination ends what advertisements taught; a query's stays, and a PIM
    /// neighbor's on the same port too.
    func testMRDTerminationOnlyTakesBackWhatMRDTaught() {
        let s = EngineHarness(accessPorts: 3)
        hello(s, holdtime: 105, on: 2)
        s.igmp(.mrdAdvertisement(intervalSeconds: 100, queryIntervalSeconds: 125, robustness: 2), on: 2,
               from: IPv4Address(192, 0, 2, 60), to: .allSnoopers)
        XCTAssertEqual(s.engine.routers.learnedPorts().first?.learned.reason, .mrdAdvertisement, "300 s beats 105 s")
        s.igmp(.mrdTermination, on: 2, from: IPv4Address(192, 0, 2, 60), to: .allSnoopers)
        XCTAssertEqual(s.data(to: g1, on: 0), [2], "the PIM neighbor stays")
        XCTAssertEqual(s.engine.routers.learnedPorts().first?.learned, RouterPortTracker.Learned(reason: .pimHello, expires: Instant.zero + .seconds(105)))
        s.at(105)
        XCTAssertEqual(s.data(to: g1, on: 0), [])
    }
}
