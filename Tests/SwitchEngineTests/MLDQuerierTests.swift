import XCTest
@testable import SwitchEngine
import Wire

/// The switch as MLD querier (`--querier`: configuration.querier and configuration.mldQuerier
/// enabled): RFC 9777 sections 5.1 (what its queries look like), 7.6.2 (election), 7.6.3
/// (address-specific queries after a Done or a record that asks for them), 8.3.1 (MLDv1
/// queriers present), 9 (timers: query interval 125 s, query response interval 10 s, LLQI 1 s,
/// LLQC = robustness = 2).
final class MLDQuerierTests: XCTestCase {
    private func querier(ports: Int = 3, _ more: (inout SwitchConfiguration) -> Void = { _ in }) -> EngineHarness {
        EngineHarness(accessPorts: ports) {
            $0.querier.enabled = true
            $0.mldQuerier.enabled = true
            more(&$0)
        }
    }

    /// 5.1, 5.1.14, 5.1.15: a general query goes to ff02::1 from a link-local address (the
    /// switch MAC's, by EUI-64), hop limit 1, router alert; MLDv2 (28 bytes), Maximum Response
    /// Code 10000 ms, QRV 2, QQIC 125, S clear, no sources.
    func testGeneralQueryIsCorrectOnTheWire() {
        let s = querier()
        let sent = s.sentMLDQueries()
        XCTAssertEqual(sent.count, 1)
        guard let query = sent.first else { return }
        XCTAssertEqual(query.ports, [0, 1, 2])
        XCTAssertEqual(query.sourceMAC, MACAddress(0x02, 0x53, 0x4e, 0x4f, 0x4f, 0x50))
        XCTAssertEqual(query.destinationMAC, MACAddress(0x33, 0x33, 0, 0, 0, 1))
        XCTAssertEqual(query.source, switchLL)
        XCTAssertEqual(query.source.description, "fe80::53:4eff:fe4f:4f50")
        XCTAssertEqual(query.destination, .allNodes)
        XCTAssertEqual(query.hopLimit, 1)
        XCTAssertEqual(query.routerAlert, 0, "router alert: MLD")
        XCTAssertEqual(query.length, 28)
        XCTAssertEqual(query.query, MLDQuery(version: .v2, group: .any, maxResponseMilliseconds: 10_000,
                                             robustness: 2, queryIntervalSeconds: 125))
        XCTAssertEqual(s.engine.counters.mldSent[.generalQuery], 1)
        XCTAssertEqual(s.engine.mldQuerier.role(in: .default, at: s.now), .us)
    }

    /// 9.6, 9.7: [Robustness Variable] startup queries a quarter of the query interval apart,
    /// then one every query interval.
    func testStartupQueriesThenTheQueryInterval() {
        let s = querier()
        var times: [Double] = []
        for step in 0...6000 {
            s.at(Double(step) / 20)
            if !s.sentMLDQueries().isEmpty { times.append(Double(step) / 20) }
        }
        XCTAssertEqual(times, [0, 31.25, 156.25, 281.25])
    }

    /// `--mld-version 1`: RFC 2710 queries, 24 bytes, the Maximum Response Delay in milliseconds.
    func testAnMLDv1QuerierSendsTwentyFourByteQueries() {
        let s = querier { $0.mldQuerier.version = .v1 }
        let query = s.sentMLDQueries().first
        XCTAssertEqual(query?.length, MLDMessageView.v1Length)
        XCTAssertEqual(query?.query, MLDQuery(version: .v1, group: .any, maxResponseMilliseconds: 10_000))
    }

    /// `--mld-querier-address`: the source of our queries, and what the election compares.
    func testTheQuerierAddressIsSettable() {
        let s = querier { $0.mldQuerier.address = IPv6Address("fe80::2")! }
        XCTAssertEqual(s.sentMLDQueries().first?.source, IPv6Address("fe80::2")!)
        s.mldQuery(on: 2, from: IPv6Address("fe80::3")!)
        XCTAssertEqual(s.engine.mldQuerier.role(in: .default, at: s.now), .us)
        s.mldQuery(on: 2, from: router6)
        XCTAssertEqual(s.engine.mldQuerier.role(in: .default, at: s.now), .other)
    }

    /// 7.6.3.1: after a Done (TO_IN({})) the querier sends [Last Listener Query Count]
    /// Multicast Address Specific Queries, [Last Listener Query Interval] apart, to the address,
    /// with that interval as Maximum Response Code; the listener goes when LLQT has passed.
    func testLastListenerQueriesAfterADone() {
        let s = querier {
            $0.timers.lastMemberQueryCount = 3
            $0.timers.lastMemberQueryInterval = .milliseconds(500)
        }
        s.report(mg1, on: 1, version: .v1)
        s.at(10)
        _ = s.sentMLDQueries()
        s.done(mg1, on: 1)
        var times: [Double] = []
        for step in 0...40 {
            let t = 10 + Double(step) / 10
            s.at(t)
            for sent in s.sentMLDQueries() {
                times.append(t)
                XCTAssertEqual(sent.destination, mg1, "to the address asked about (5.1.15)")
                XCTAssertEqual(sent.destinationMAC, MACAddress.ipv6Multicast(mg1))
                XCTAssertEqual(sent.source, switchLL)
                XCTAssertEqual(sent.hopLimit, 1)
                XCTAssertEqual(sent.routerAlert, 0)
                XCTAssertEqual(sent.ports, [0, 1, 2])
                XCTAssertEqual(sent.query.group, mg1)
                XCTAssertEqual(sent.query.sources, [])
                XCTAssertEqual(sent.query.maxResponseMilliseconds, 500, "LLQI, in milliseconds")
                XCTAssertFalse(sent.query.suppressRouterProcessing, "nobody answered: the timer is at LLQT")
            }
            XCTAssertEqual(s.listener(mg1, on: 1) != nil, t < 11.5, "LLQT = 3 x 0.5 s, at \(t)")
        }
        XCTAssertEqual(times, [10, 10.5, 11])
        XCTAssertEqual(s.engine.counters.mldSent[.groupQuery], 3)
    }

    /// 7.6.3.1: "if the filter timer is larger than LLQT, the Suppress Router-Side Processing bit
    /// is set": a listener that answered the first query makes the retransmission carry S.
    func testTheSFlagIsSetOnceAListenerAnswered() {
        let s = querier()
        s.report(mg1, on: 1)
        s.at(10)
        _ = s.sentMLDQueries()
        s.record(.changeToInclude, mg1, on: 1)                       // TO_IN({}): the last listener leaves
        XCTAssertEqual(s.sentMLDQueries().map(\.query.suppressRouterProcessing), [false])
        s.at(10.5)
        s.report(mg1, on: 1)                                          // another listener behind port 1 answers
        s.at(11)
        XCTAssertEqual(s.sentMLDQueries().map(\.query.suppressRouterProcessing), [true])
        s.at(12)
        XCTAssertNotNil(s.listener(mg1, on: 1))
        XCTAssertTrue(s.sentMLDQueries().isEmpty)
    }

    /// 7.6.2: a query from a lower IPv6 address makes its sender the querier; we stay quiet for
    /// the Other Querier Present Timeout (9.5: 2 x 125 s + 10 s / 2 = 255 s), then take over.
    func testElectionLowerAddressWinsAndWeResumeAfterItGoesQuiet() {
        let s = querier()
        _ = s.sentMLDQueries()
        s.at(1)
        s.mldQuery(on: 2, from: router6)
        XCTAssertEqual(s.engine.mldQuerier.role(in: .default, at: s.now), .other)
        XCTAssertEqual(s.engine.mldQuerier.elected(in: .default, at: s.now), router6)
        XCTAssertEqual(s.engine.querier.role(in: .default, at: s.now), .us, "the IGMP querier is another election")
        for t in stride(from: 2.0, through: 255.9, by: 1) {
            s.at(t)
            XCTAssertTrue(s.sentMLDQueries().isEmpty, "queried at \(t) while another querier was present")
        }
        s.at(256)
        XCTAssertEqual(s.sentMLDQueries().count, 1, "1 + 255 s: we take over at once")
        XCTAssertEqual(s.engine.mldQuerier.role(in: .default, at: s.now), .us)
    }

    /// 7.6.2: the comparison is of the whole 128-bit address, numerically: fe80::54:0:0:0 is
    /// above our fe80::53:4eff:fe4f:4f50, fe80::53:4eff:fe4f:4f4f below it.
    func testTheLowestAddressWinsBitForBit() {
        let s = querier()
        _ = s.sentMLDQueries()
        s.mldQuery(on: 2, from: IPv6Address("fe80::54:0:0:0")!)
        s.mldQuery(on: 2, from: IPv6Address("fe80::aaaa:bbbb:cccc:dddd")!)
        XCTAssertEqual(s.engine.mldQuerier.role(in: .default, at: s.now), .us)
        s.at(31.25)
        XCTAssertEqual(s.sentMLDQueries().count, 1, "a higher address does not silence us")
        s.mldQuery(on: 2, from: IPv6Address("fe80::53:4eff:fe4f:4f4f")!)
        XCTAssertEqual(s.engine.mldQuerier.elected(in: .default, at: s.now), IPv6Address("fe80::53:4eff:fe4f:4f4f")!)
        s.mldQuery(on: 1, from: router6)
        XCTAssertEqual(s.engine.mldQuerier.elected(in: .default, at: s.now), router6, "lower still")
        s.mldQuery(on: 2, from: IPv6Address("fe80::53:4eff:fe4f:4f4f")!)
        XCTAssertEqual(s.engine.mldQuerier.elected(in: .default, at: s.now), router6, "a higher one does not take it back")
    }

    /// 9.5 with 9.1 and 9.2: the Other Querier Present Timeout is the querier's robustness
    /// times its query interval (from its QRV and QQIC) plus half its query response interval:
    /// a querier that asks every 480 s (QQIC 0x9e) silences us for 965 s, not our own 255 s.
    func testTheOtherQuerierPresentTimeoutIsTheQueriersOwn() {
        let s = querier()
        _ = s.sentMLDQueries()
        s.mldQuery(on: 2, from: router6, maxResponseMilliseconds: 10_000, robustness: 2, queryInterval: 480)
        for t in stride(from: 1.0, through: 479, by: 1) {
            s.at(t)
            XCTAssertTrue(s.sentMLDQueries().isEmpty, "queried at \(t) while the querier was present")
        }
        XCTAssertEqual(s.engine.mldQuerier.role(in: .default, at: s.now), .other)
        s.at(964.9)
        XCTAssertEqual(s.engine.mldQuerier.role(in: .default, at: s.now), .other)
        s.at(965)
        XCTAssertEqual(s.engine.mldQuerier.role(in: .default, at: s.now), .us)
        XCTAssertEqual(s.sentMLDQueries().count, 1)
    }

    /// Turned on while running (SIGHUP), our querier is a candidate again at once: a router
    /// above our address, the querier while ours was off, yields to us.
    func testTurnedOnWhileRunningOurQuerierBeatsAHigherRouterAtOnce() {
        let routerAbove = IPv6Address("fe80::5054:ff:fe12:3456")!
        let s = EngineHarness(accessPorts: 3)
        s.mldQuery(on: 2, from: routerAbove)
        s.at(5)
        _ = s.sentMLDQueries()
        var configuration = s.engine.configuration
        configuration.mldQuerier.enabled = true
        s.engine.reconfigure(configuration, at: s.now)
        XCTAssertEqual(s.engine.mldQuerier.role(in: .default, at: s.now), .us)
        XCTAssertEqual(s.sentMLDQueries().count, 1)
        s.mldQuery(on: 2, from: routerAbove)
        XCTAssertEqual(s.engine.mldQuerier.role(in: .default, at: s.now), .us)
    }

    /// 8.3.1 and 8.1: an MLDv1 query (24 bytes) heard, even from a querier that loses the
    /// election, makes our queries MLDv1 for the Older Version Querier Present Timeout; then
    /// MLDv2 again.
    func testAnMLDv1QuerierMakesOurQueriesMLDv1() {
        let s = querier()
        _ = s.sentMLDQueries()
        s.at(1)
        s.mldQuery(on: 2, from: IPv6Address("fe80::aaaa:bbbb:cccc:dddd")!, version: .v1)
        XCTAssertEqual(s.engine.mldQuerier.role(in: .default, at: s.now), .us, "it loses the election")
        XCTAssertEqual(s.engine.mldQuerier.version(in: .default, at: s.now), .v1)
        XCTAssertEqual(s.engine.counters.mldReceived[.queryV1], 1)
        s.at(31.25)
        let general = s.sentMLDQueries().first
        XCTAssertEqual(general?.length, 24, "an MLDv1 query")
        XCTAssertEqual(general?.query, MLDQuery(version: .v1, group: .any, maxResponseMilliseconds: 10_000))
        // An address-specific query after a Done is MLDv1 too, and names no sources.
        s.report(mg1, on: 1, version: .v1)
        s.done(mg1, on: 1)
        let specific = s.sentMLDQueries().first
        XCTAssertEqual(specific?.length, 24)
        XCTAssertEqual(specific?.destination, mg1)
        XCTAssertEqual(specific?.query, MLDQuery(version: .v1, group: mg1, maxResponseMilliseconds: 1000))
        s.at(261)
        XCTAssertEqual(s.engine.mldQuerier.version(in: .default, at: s.now), .v2)
        s.at(281.25)
        XCTAssertEqual(s.sentMLDQueries().first?.length, 28, "MLDv2 again")
    }

    /// No address-and-source-specific query in MLDv1 mode: BLOCK asks nothing then.
    func testNoSourceQueriesWhileAnMLDv1QuerierIsPresent() {
        let s = querier()
        s.mldQuery(on: 2, from: IPv6Address("fe80::aaaa:bbbb:cccc:dddd")!, version: .v1)
        _ = s.sentMLDQueries()
        s.record(.allowNewSources, mg1, [MLDSourceFilteringTests.s1], on: 1)
        s.record(.blockOldSources, mg1, [MLDSourceFilteringTests.s1], on: 1)
        XCTAssertTrue(s.sentMLDQueries().isEmpty)
    }

    /// While another querier is elected, a Done lowers no timer and asks nothing of ours: the
    /// querier's own queries will (MLDElectedQuerierTimerTests).
    func testNoAddressSpecificQueriesWhileAnotherQuerierIsPresent() {
        let s = querier()
        s.mldQuery(on: 2, from: router6)
        _ = s.sentMLDQueries()
        s.report(mg1, on: 1, version: .v1)
        s.done(mg1, on: 1)
        XCTAssertTrue(s.sentMLDQueries().isEmpty)
        XCTAssertEqual(s.listener(mg1, on: 1)?.groupTimer, Instant.zero + .seconds(260))
    }

    /// Each VLAN has its MLD querier; `--vlan N:no-mld-querier` silences one, the IGMP querier
    /// of that VLAN goes on.
    func testQueriesGoToEveryVLANAndCanBeTurnedOffPerVLAN() {
        let s = EngineHarness([PortConfiguration(name: "a10", pvid: vlan10),
                               PortConfiguration(name: "t", pvid: nil, tagged: [vlan10, vlan20])]) {
            $0.querier.enabled = true
            $0.mldQuerier.enabled = true
            $0.vlans[vlan20] = VLANSettings(mldQuerier: false)
        }
        let sent = s.sentMLDQueries()
        XCTAssertEqual(sent.map(\.vlan), [vlan10])
        XCTAssertEqual(sent.map(\.ports), [[0, 1]])
        XCTAssertEqual(s.engine.querier.role(in: vlan20, at: s.now), .us)
        XCTAssertEqual(s.engine.mldQuerier.role(in: vlan20, at: s.now), .none)
    }
}

/// RFC 9777 7.6.1 for a router that is not the querier: "When a non-Querier router receives a
/// Multicast Address Specific Query, if its existing filter timer is greater than [Last Listener
/// Query Count] times the Maximum Response Delay specified in the message, it sets its filter
/// timer to that value" (sources likewise for a Multicast Address and Source Specific Query),
/// unless the S flag is set. LLQC is the querier's QRV (MLDv1: ours, 2). Until its query
/// comes, a Done lowers nothing. The router, at fe80::1 behind port 2, wins the election at t = 0.
final class MLDElectedQuerierTimerTests: XCTestCase {
    private let s1 = MLDSourceFilteringTests.s1, s2 = MLDSourceFilteringTests.s2

    private func lab() -> EngineHarness {
        let s = EngineHarness(accessPorts: 3) {
            $0.querier.enabled = true
            $0.mldQuerier.enabled = true
        }
        s.mldQuery(on: 2, from: router6)
        XCTAssertEqual(s.engine.mldQuerier.elected(in: .default, at: s.now), router6)
        _ = s.sentMLDQueries()
        return s
    }

    @discardableResult
    private func addressQuery(_ s: EngineHarness, version: MLDVersion = .v2, maxResponse: Int, qrv: Int = 2,
                              sources: [IPv6Address] = [], suppress: Bool = false, from source: IPv6Address = router6) -> Set<Int> {
        s.mldQuery(on: 2, from: source, version: version, group: mg1, sources: sources, maxResponseMilliseconds: maxResponse,
                   robustness: qrv, suppress: suppress)
    }

    func testMLDv1DoneWaitsForTheQueriersAddressQueryAndItsMaximumResponseDelay() {
        let s = lab()
        s.at(10)
        s.report(mg1, on: 1, version: .v1)
        s.at(20)
        XCTAssertEqual(s.done(mg1, on: 1), [2], "the Done goes to the router")
        XCTAssertTrue(s.sentMLDQueries().isEmpty, "not ours to ask")
        s.at(22.5)
        XCTAssertNotNil(s.listener(mg1, on: 1), "not pruned by our own LLQT before the querier asked")
        XCTAssertEqual(addressQuery(s, version: .v1, maxResponse: 5000), [0, 1], "Q(MA) reaches every port")
        s.at(32.4)
        XCTAssertNotNil(s.listener(mg1, on: 1), "2 x 5 s after the query: still within the querier's LLQT")
        XCTAssertEqual(s.data(to: mg1, on: 0), [1, 2])
        s.at(32.5)
        XCTAssertNil(s.listener(mg1, on: 1), "the querier's LLQT ran out without a report")
        XCTAssertEqual(s.data(to: mg1, on: 0), [2])
    }

    func testMLDv2AddressQueryUsesItsQRVAndMaximumResponseCode() {
        let s = lab()
        s.report(mg1, on: 1)
        s.at(10)
        s.record(.changeToInclude, mg1, on: 1)
        XCTAssertEqual(s.listener(mg1, on: 1)?.groupTimer, Instant.zero + .seconds(260), "TO_IN({}) lowers nothing yet")
        addressQuery(s, maxResponse: 3000, qrv: 3)                                  // 3 x 3 s
        s.at(18.9)
        XCTAssertNotNil(s.listener(mg1, on: 1))
        s.at(19)
        XCTAssertNil(s.listener(mg1, on: 1))
    }

    /// 7.6.1: "When a router receives a query with the Suppress Router-Side Processing flag set,
    /// it must not update its timers."
    func testTheSFlagLeavesTheTimers() {
        let s = lab()
        s.report(mg1, on: 1)
        addressQuery(s, maxResponse: 1000, suppress: true)
        s.at(100)
        XCTAssertNotNil(s.listener(mg1, on: 1))
    }

    func testAddressAndSourceQueryLowersOnlyTheSourcesNamed() {
        let s = lab()
        s.record(.modeIsInclude, mg1, [s1, s2], on: 1)
        s.at(10)
        s.record(.blockOldSources, mg1, [s1], on: 1)
        XCTAssertEqual(s.listener(mg1, on: 1)?.sources[s1], Instant.zero + .seconds(260), "BLOCK lowers nothing yet")
        addressQuery(s, maxResponse: 4000, qrv: 2, sources: [s1])                   // 2 x 4 s
        XCTAssertEqual(s.listener(mg1, on: 1)?.sources[s1], Instant.zero + .seconds(18))
        XCTAssertEqual(s.listener(mg1, on: 1)?.sources[s2], Instant.zero + .seconds(260))
        s.at(18)
        XCTAssertEqual(s.listener(mg1, on: 1)?.sources.keys.sorted(), [s2])
    }

    /// Only the elected querier's queries count.
    func testAnAddressQueryFromAnotherThanTheQuerierIsIgnored() {
        let s = lab()
        s.report(mg1, on: 1)
        addressQuery(s, maxResponse: 100, from: IPv6Address("fe80::aaaa:bbbb:cccc:dddd")!)
        s.at(5)
        XCTAssertNotNil(s.listener(mg1, on: 1))
    }

    /// 9.1, 9.2, 5.1.8, 5.1.9: QRV and QQIC of the querier's queries set the listening interval:
    /// its QRV x QQI + its query response interval.
    func testTheQueriersRobustnessAndQueryIntervalAreAdopted() {
        let s = lab()
        s.mldQuery(on: 2, from: router6, maxResponseMilliseconds: 5000, robustness: 3, queryInterval: 20)
        s.report(mg1, on: 1)
        s.at(64.9)
        XCTAssertNotNil(s.listener(mg1, on: 1))
        s.at(65)
        XCTAssertNil(s.listener(mg1, on: 1), "3 x 20 s + 5 s")
    }

    /// With our MLD querier off, the switch is no candidate: any router's query makes it the
    /// querier, whatever its link-local address (here above the switch's own, as a router with
    /// a qemu MAC has), and its timers are the ones in force, as with IGMP and our 0.0.0.0.
    /// Listeners reported every 480 s must last 2 x 480 s + 10 s, not our 260 s.
    func testWithOurQuerierOffAnyRouterIsTheQuerier() {
        let routerAbove = IPv6Address("fe80::5054:ff:fe12:3456")!
        XCTAssertLessThan(switchLL, routerAbove)
        let s = EngineHarness(accessPorts: 3)
        s.mldQuery(on: 2, from: routerAbove, robustness: 2, queryInterval: 480)
        XCTAssertEqual(s.engine.mldQuerier.role(in: .default, at: s.now), .other)
        XCTAssertEqual(s.engine.mldQuerier.elected(in: .default, at: s.now), routerAbove)
        s.report(mg1, on: 1)
        s.at(480)
        XCTAssertNotNil(s.listener(mg1, on: 1), "our own 260 s would have ended it before the next query")
        XCTAssertEqual(s.data(to: mg1, on: 0), [1, 2])
        s.mldQuery(on: 2, from: routerAbove, robustness: 2, queryInterval: 480)
        s.at(969.9)
        XCTAssertNotNil(s.listener(mg1, on: 1))
        s.at(970)
        XCTAssertNil(s.listener(mg1, on: 1))
    }
}
