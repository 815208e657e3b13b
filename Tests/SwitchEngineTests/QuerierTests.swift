import XCTest
@testable import SwitchEngine
import Wire

/// RFC 3376 section 6.6 and 8: the querier's schedule, election and adopted timers.
final class QuerierTests: XCTestCase {
    private let us = IPv4Address(192, 0, 2, 200)

    private func querier(_ version: IGMPVersion = .v3, ports: Int = 3, _ more: (inout SwitchConfiguration) -> Void = { _ in }) -> EngineHarness {
        EngineHarness(accessPorts: ports) {
            $0.querier = QuerierConfiguration(enabled: true, address: self.us, version: version)
            more(&$0)
        }
    }

    /// 8.6, 8.7: robustness startup queries a quarter of the query interval apart, then every interval.
    func testStartupQueriesThenTheQueryInterval() {
        let s = querier()
        var times: [Double] = []
        for step in 0...6000 {
            s.at(Double(step) / 20)
            if !s.sentQueries().isEmpty { times.append(Double(step) / 20) }
        }
        XCTAssertEqual(times, [0, 31.25, 156.25, 281.25])
    }

    func testGeneralQueryIsCorrectOnTheWire() {
        let s = querier()
        guard let sent = s.sentQueries().first else { return XCTFail("no startup query") }
        XCTAssertEqual(sent.ports, [0, 1, 2])
        XCTAssertEqual(sent.destination, .allSystems)
        XCTAssertEqual(sent.source, us)
        XCTAssertEqual(sent.query.version, .v3)
        XCTAssertTrue(sent.query.isGeneral)
        XCTAssertEqual(sent.query.maxResponseDeciseconds, 100)
        XCTAssertEqual(sent.query.robustness, 2)
        XCTAssertEqual(sent.query.queryIntervalSeconds, 125)
        XCTAssertFalse(sent.query.suppressRouterProcessing)
        XCTAssertEqual(s.engine.counters.sent[.generalQuery], 1)
    }

    /// The engine decides how its frames leave: untagged on the VLAN's access ports, tagged with
    /// priority 6 (internetwork control) on its trunks.
    func testGeneratedFramesAreTaggedWherePortsTagAndCarryPrioritySix() throws {
        let s = EngineHarness([PortConfiguration(name: "access"), PortConfiguration(name: "trunk", pvid: nil, tagged: [.default]),
                               PortConfiguration(name: "other", pvid: vlan10)]) {
            $0.querier = QuerierConfiguration(enabled: true, address: self.us)
        }
        let query = try XCTUnwrap(s.engine.takeOutbox().first { $0.vlan == .default && $0.bytes.count > 0 && $0.ports.count == 2 })
        XCTAssertEqual(query.untagged, PortSet([PortID(0)]))
        XCTAssertEqual(query.tagged, PortSet([PortID(1)]))
        XCTAssertEqual(query.tag, VLANTag(vlan: .default, priority: 6))
        XCTAssertFalse(s.engine.hasOutbox)
    }

    func testVersionTwoAndOneQueries() {
        XCTAssertEqual(querier(.v2).sentQueries().first?.query, IGMPQuery(version: .v2, maxResponseDeciseconds: 100))
        XCTAssertEqual(querier(.v1).sentQueries().first?.query, IGMPQuery(version: .v1, maxResponseDeciseconds: 100))
    }

    /// 6.6.2: a query from a lower address silences us for the other querier present interval.
    func testElectionLowerAddressWinsAndWeResumeAfterItGoesQuiet() {
        let s = querier()
        _ = s.sentQueries()
        s.at(1)
        s.query(on: 2, from: IPv4Address(192, 0, 2, 1))
        XCTAssertEqual(s.engine.querier.role(in: .default, at: s.now), .other)
        for t in stride(from: 2.0, through: 255.9, by: 1) {
            s.at(t)
            XCTAssertTrue(s.sentQueries().isEmpty, "queried at \(t) while another querier was present")
        }
        s.at(256)                                                    // 1 + 255 s: we take over at once
        XCTAssertEqual(s.sentQueries().count, 1)
        XCTAssertEqual(s.engine.querier.role(in: .default, at: s.now), .us)
    }

    func testAHigherAddressDoesNotSilenceUs() {
        let s = querier()
        _ = s.sentQueries()
        s.query(on: 2, from: IPv4Address(192, 0, 2, 250))
        XCTAssertEqual(s.engine.querier.role(in: .default, at: s.now), .us)
        s.at(31.25)
        XCTAssertEqual(s.sentQueries().count, 1)
    }

    func testOurZeroAddressDefersToAnyRouter() {
        let s = EngineHarness(accessPorts: 2) { $0.querier.enabled = true }
        s.query(on: 1, from: IPv4Address(203, 0, 113, 254))
        XCTAssertEqual(s.engine.querier.role(in: .default, at: s.now), .other)
    }

    /// 4.1.6, 4.1.7, 8.3: with another querier, memberships last its QRV x QQI + max response.
    func testTimersAreAdoptedFromTheQuerier() {
        let s = querier()
        s.query(on: 2, from: IPv4Address(192, 0, 2, 1), maxResponseDeciseconds: 50, robustness: 3, queryInterval: 20)
        s.report(g1, on: 1)
        s.at(64.9)
        XCTAssertNotNil(s.member(g1, on: 1))
        s.at(65)
        XCTAssertNil(s.member(g1, on: 1), "3 x 20 s + 5 s")
    }

    func testNoGroupQueriesWhileAnotherQuerierIsPresent() {
        let s = querier()
        s.query(on: 2, from: IPv4Address(192, 0, 2, 1))
        _ = s.sentQueries()
        s.report(g1, on: 1)
        s.leave(g1, on: 1)
        XCTAssertTrue(s.sentQueries().isEmpty)
    }

    func testLinkUpBringsTheNextQueryForward() {
        let s = querier()
        s.at(100)
        _ = s.sentQueries()
        s.engine.setLink(PortID(1), up: false, at: s.now)
        s.engine.setLink(PortID(1), up: true, at: s.now)
        XCTAssertEqual(s.sentQueries().count, 1)
    }

    func testQueriesGoToEveryVLAN() {
        let s = EngineHarness([PortConfiguration(name: "a10", pvid: vlan10), PortConfiguration(name: "t", pvid: nil, tagged: [vlan10, vlan20])]) {
            $0.querier.enabled = true
        }
        let sent = s.sentQueries()
        XCTAssertEqual(sent.map(\.vlan), [vlan10, vlan20])
        XCTAssertEqual(sent.map(\.ports), [[0, 1], [1]])
    }
}
