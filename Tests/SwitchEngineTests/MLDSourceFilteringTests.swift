import XCTest
@testable import SwitchEngine
import Wire

/// RFC 9777 section 7.4, tables 7.4.1 (current-state records) and 7.4.2 (filter-mode-change
/// and source-list-change records), row by row, on one port of the switch acting as querier:
/// given the port's state for ff15::4242, a record arrives at t = 10 s; expect the new state,
/// its timers and the queries sent. MALI (multicast address listening interval, 9.4) = 260 s,
/// LLQT (last listener query time, 9.14) = 2 s; the initial state is built at t = 0 (timers
/// at 260 s). The same rows as IGMPv3's (SourceFilteringTests): one state machine serves both.
final class MLDSourceFilteringTests: XCTestCase {
    static let s = (1...6).map { IPv6Address(0x2001, 0xdb8, 0, 0, 0, 0, 0, UInt16($0)) }
    static let (s1, s2, s3, s4, s5) = (s[0], s[1], s[2], s[3], s[4])

    enum Initial { case include(Set<IPv6Address>), exclude(x: Set<IPv6Address>, y: Set<IPv6Address>) }

    struct Row {
        var rfc: String
        var initial: Initial
        var record: MLDAddressRecord.RecordType
        var sources: [IPv6Address]
        var mode: FilterMode
        /// Source -> the time its timer runs out.
        var timers: [IPv6Address: Double]
        var excluded: Set<IPv6Address> = []
        var filterTimer: Double? = nil
        var addressQuery = false
        var sourceQuery: Set<IPv6Address> = []
    }

    static let a: Set<IPv6Address> = [s1, s2]
    static let x: Set<IPv6Address> = [s1, s2], y: Set<IPv6Address> = [s3, s4]

    static let rows: [Row] = [
        // 7.4.1, current-state records
        Row(rfc: "INCLUDE (A) IS_IN (B) -> INCLUDE (A+B); (B)=MALI",
            initial: .include(a), record: .modeIsInclude, sources: [s2, s3],
            mode: .include, timers: [s1: 260, s2: 270, s3: 270]),
        Row(rfc: "INCLUDE (A) IS_EX (B) -> EXCLUDE (A*B, B-A); (B-A)=0; Delete (A-B); Filter Timer=MALI",
            initial: .include(a), record: .modeIsExclude, sources: [s2, s3],
            mode: .exclude, timers: [s2: 260], excluded: [s3], filterTimer: 270),
        Row(rfc: "EXCLUDE (X,Y) IS_IN (A) -> EXCLUDE (X+A, Y-A); (A)=MALI",
            initial: .exclude(x: x, y: y), record: .modeIsInclude, sources: [s3, s5],
            mode: .exclude, timers: [s1: 260, s2: 260, s3: 270, s5: 270], excluded: [s4], filterTimer: 260),
        Row(rfc: "EXCLUDE (X,Y) IS_EX (A) -> EXCLUDE (A-Y, Y*A); (A-X-Y)=MALI; Delete (X-A); Delete (Y-A); Filter Timer=MALI",
            initial: .exclude(x: x, y: y), record: .modeIsExclude, sources: [s2, s3, s5],
            mode: .exclude, timers: [s2: 260, s5: 270], excluded: [s3], filterTimer: 270),
        // 7.4.2, filter-mode-change and source-list-change records
        Row(rfc: "INCLUDE (A) ALLOW (B) -> INCLUDE (A+B); (B)=MALI",
            initial: .include(a), record: .allowNewSources, sources: [s2, s3],
            mode: .include, timers: [s1: 260, s2: 270, s3: 270]),
        Row(rfc: "INCLUDE (A) BLOCK (B) -> INCLUDE (A); Send Q(MA,A*B)",
            initial: .include(a), record: .blockOldSources, sources: [s2, s3],
            mode: .include, timers: [s1: 260, s2: 12], sourceQuery: [s2]),
        Row(rfc: "INCLUDE (A) TO_EX (B) -> EXCLUDE (A*B, B-A); (B-A)=0; Delete (A-B); Send Q(MA,A*B); Filter Timer=MALI",
            initial: .include(a), record: .changeToExclude, sources: [s2, s3],
            mode: .exclude, timers: [s2: 12], excluded: [s3], filterTimer: 270, sourceQuery: [s2]),
        Row(rfc: "INCLUDE (A) TO_IN (B) -> INCLUDE (A+B); (B)=MALI; Send Q(MA,A-B)",
            initial: .include(a), record: .changeToInclude, sources: [s2, s3],
            mode: .include, timers: [s1: 12, s2: 270, s3: 270], sourceQuery: [s1]),
        Row(rfc: "EXCLUDE (X,Y) ALLOW (A) -> EXCLUDE (X+A, Y-A); (A)=MALI",
            initial: .exclude(x: x, y: y), record: .allowNewSources, sources: [s3, s5],
            mode: .exclude, timers: [s1: 260, s2: 260, s3: 270, s5: 270], excluded: [s4], filterTimer: 260),
        Row(rfc: "EXCLUDE (X,Y) BLOCK (A) -> EXCLUDE (X+(A-Y), Y); (A-X-Y)=Filter Timer; Send Q(MA,A-Y)",
            initial: .exclude(x: x, y: y), record: .blockOldSources, sources: [s1, s3, s5],
            mode: .exclude, timers: [s1: 12, s2: 260, s5: 12], excluded: [s3, s4], filterTimer: 260, sourceQuery: [s1, s5]),
        Row(rfc: "EXCLUDE (X,Y) TO_EX (A) -> EXCLUDE (A-Y, Y*A); (A-X-Y)=Filter Timer; Delete (X-A); Delete (Y-A); Send Q(MA,A-Y); Filter Timer=MALI",
            initial: .exclude(x: x, y: y), record: .changeToExclude, sources: [s2, s3, s5],
            mode: .exclude, timers: [s2: 12, s5: 12], excluded: [s3], filterTimer: 270, sourceQuery: [s2, s5]),
        Row(rfc: "EXCLUDE (X,Y) TO_IN (A) -> EXCLUDE (X+A, Y-A); (A)=MALI; Send Q(MA,X-A); Send Q(MA)",
            initial: .exclude(x: x, y: y), record: .changeToInclude, sources: [s3, s5],
            mode: .exclude, timers: [s1: 12, s2: 12, s3: 270, s5: 270], excluded: [s4], filterTimer: 12,
            addressQuery: true, sourceQuery: [s1, s2]),
    ]

    /// Three ports, our MLD querier on (as `--querier` sets it), the initial state on port 1.
    private func harness(_ initial: Initial) -> EngineHarness {
        let h = EngineHarness(accessPorts: 3) {
            $0.querier.enabled = true
            $0.mldQuerier.enabled = true
        }
        switch initial {
        case .include(let a):
            record(h, .allowNewSources, Array(a))
        case .exclude(let x, let y):
            record(h, .modeIsExclude, Array(y))
            record(h, .allowNewSources, Array(x))
        }
        _ = h.sentMLDQueries()
        return h
    }

    private func record(_ h: EngineHarness, _ type: MLDAddressRecord.RecordType, _ sources: [IPv6Address]) {
        h.record(type, mg1, sources.sorted(), on: 1)
    }

    private static func at(_ seconds: Double) -> Instant { Instant(nanoseconds: Int64(seconds * 1e9)) }

    func testEveryRowOfTables741And742() {
        XCTAssertEqual(Self.rows.count, 12, "four current-state rows, eight change rows")
        for row in Self.rows {
            let h = harness(row.initial)
            h.at(10)
            record(h, row.record, row.sources)
            guard let listener = h.listener(mg1, on: 1) else { XCTFail("\(row.rfc): no state"); continue }
            XCTAssertEqual(listener.mode, row.mode, row.rfc)
            XCTAssertEqual(listener.sources, row.timers.mapValues(Self.at), row.rfc)
            XCTAssertEqual(listener.excluded, row.excluded, row.rfc)
            XCTAssertEqual(listener.version, .v2, row.rfc)
            if let filterTimer = row.filterTimer { XCTAssertEqual(listener.groupTimer, Self.at(filterTimer), row.rfc) }
            let queries = h.sentMLDQueries()
            XCTAssertEqual(queries.contains { $0.query.group == mg1 && $0.query.sources.isEmpty }, row.addressQuery,
                           "\(row.rfc): Q(MA)")
            XCTAssertEqual(Set(queries.flatMap(\.query.sources)), row.sourceQuery, "\(row.rfc): Q(MA,A)")
            for sent in queries {
                // 7.6.3, 5.1.15: to the address asked about, [Last Listener Query Interval] to answer.
                XCTAssertEqual(sent.destination, mg1, row.rfc)
                XCTAssertEqual(sent.destinationMAC, MACAddress.ipv6Multicast(mg1), row.rfc)
                XCTAssertEqual(sent.query.group, mg1, row.rfc)
                XCTAssertEqual(sent.query.version, .v2, row.rfc)
                XCTAssertEqual(sent.query.maxResponseMilliseconds, 1000, "\(row.rfc): LLQI in milliseconds")
                XCTAssertFalse(sent.query.suppressRouterProcessing, "\(row.rfc): timers were just lowered: S clear")
                XCTAssertEqual(sent.source, switchLL, row.rfc)
                XCTAssertEqual(sent.hopLimit, 1, row.rfc)
                XCTAssertEqual(sent.routerAlert, 0, row.rfc)
            }
        }
    }

    /// 7.5: when nobody answers, the queried sources and the filter timer run out; the filter
    /// timer's end switches the port to INCLUDE of the sources still running.
    func testUnansweredQueriesExpireTheQueriedState() {
        let h = harness(.exclude(x: Self.x, y: Self.y))
        h.at(10)
        record(h, .changeToInclude, [Self.s3, Self.s5])          // EXCLUDE TO_IN: Q(MA,{s1,s2}) and Q(MA)
        XCTAssertEqual(h.sentMLDQueries().count, 2)
        h.at(11)
        XCTAssertEqual(h.sentMLDQueries().count, 2, "the second of [Last Listener Query Count]")
        h.at(12)
        XCTAssertTrue(h.sentMLDQueries().isEmpty)
        let listener = h.listener(mg1, on: 1)
        XCTAssertEqual(listener?.mode, .include, "filter timer ran out: INCLUDE of the running sources")
        XCTAssertEqual(listener.map { Set($0.sources.keys) }, [Self.s3, Self.s5])
        XCTAssertEqual(listener?.excluded, [])
    }

    /// 7.6.3.2: a retransmission is split: the sources some answer refreshed meanwhile go in a
    /// query with S set, the others in one with S clear.
    func testRetransmissionSetsTheSFlagForSourcesRefreshedMeanwhile() {
        let h = harness(.include([Self.s1, Self.s2]))
        h.at(10)
        record(h, .blockOldSources, [Self.s1, Self.s2])
        XCTAssertEqual(h.sentMLDQueries().map(\.query.sources), [[Self.s1, Self.s2]])
        h.at(10.5)
        record(h, .allowNewSources, [Self.s2])                     // the listener still wants s2
        h.at(11)
        let retransmissions = h.sentMLDQueries()
        XCTAssertEqual(retransmissions.count, 2)
        XCTAssertEqual(retransmissions.first { $0.query.suppressRouterProcessing }?.query.sources, [Self.s2])
        XCTAssertEqual(retransmissions.first { !$0.query.suppressRouterProcessing }?.query.sources, [Self.s1])
        h.at(12)
        XCTAssertEqual(h.listener(mg1, on: 1).map { Set($0.sources.keys) }, [Self.s2])
    }

    /// 7.3: a port forwards traffic from S in INCLUDE mode if S is listed, in EXCLUDE mode
    /// unless S is excluded; an MLDv1 listener takes every source.
    func testDataFollowsEachPortsSourceFilter() {
        let h = EngineHarness(accessPorts: 4)
        h.record(.changeToInclude, mg1, [Self.s1], on: 1)
        h.record(.changeToExclude, mg1, [Self.s1], on: 2)
        h.report(mg1, on: 3, version: .v1)
        XCTAssertEqual(h.data(to: mg1, from: Self.s1, on: 0), [1, 3])
        XCTAssertEqual(h.data(to: mg1, from: Self.s2, on: 0), [2, 3])
    }

    /// Records of several addresses in one report are each applied (RFC 9777 5.2).
    func testEveryRecordOfAReportIsApplied() {
        let h = EngineHarness(accessPorts: 3)
        h.mld(.v2Report([MLDAddressRecord(type: .changeToExclude, group: mg1),
                         MLDAddressRecord(type: .allowNewSources, group: mg2, sources: [Self.s1])]),
              on: 1, to: .mldv2Routers)
        XCTAssertEqual(h.listener(mg1, on: 1)?.mode, .exclude)
        XCTAssertEqual(h.listener(mg2, on: 1)?.mode, .include)
        XCTAssertEqual(h.data(to: mg2, from: Self.s1, on: 0), [1])
        XCTAssertEqual(h.data(to: mg2, from: Self.s2, on: 0), [])
        XCTAssertEqual(h.engine.counters.mldReceived[.reportV2], 1)
    }
}

/// RFC 9777 section 8.3.2 (and RFC 2710 for the MLDv1 messages): an MLDv1 report puts the
/// address in MLDv1 compatibility mode on its port, as IS_EX({}); the MLDv1 Done is TO_IN({});
/// BLOCK is ignored and TO_EX's sources are, until the Older Version Host Present timer (MALI)
/// runs out.
final class MLDv1CompatibilityTests: XCTestCase {
    let s1 = MLDSourceFilteringTests.s1

    func testAnMLDv1ReportIsExcludeOfNothingInMLDv1Mode() {
        let h = EngineHarness(accessPorts: 3)
        h.at(5)
        h.report(mg1, on: 1, version: .v1)
        let listener = h.listener(mg1, on: 1)
        XCTAssertEqual(listener?.version, .v1)
        XCTAssertEqual(listener?.mode, .exclude)
        XCTAssertEqual(listener?.sources, [:])
        XCTAssertEqual(listener?.excluded, [])
        XCTAssertEqual(listener?.groupTimer, Instant.zero + .seconds(265), "MALI")
        XCTAssertEqual(listener?.compatibilityMode(at: h.now), .v1)
        XCTAssertEqual(listener?.olderHostPresent(.v1), Instant.zero + .seconds(265), "Older Version Host Present = MALI")
        XCTAssertEqual(h.engine.counters.mldReceived[.reportV1], 1)
    }

    func testInMLDv1ModeBlockIsIgnoredAndToExcludesSourcesAre() {
        let h = EngineHarness(accessPorts: 3)
        h.report(mg1, on: 1, version: .v1)
        h.record(.blockOldSources, mg1, [s1], on: 1)
        XCTAssertEqual(h.listener(mg1, on: 1)?.sources, [:], "BLOCK ignored: s1 not queried")
        XCTAssertEqual(h.engine.counters.mldErrors[.ignoredInV1Mode], 1)
        h.record(.changeToExclude, mg1, [s1], on: 1)
        XCTAssertEqual(h.listener(mg1, on: 1)?.sources, [:], "TO_EX({s1}) taken as TO_EX({}): s1 not queried")
        h.record(.modeIsExclude, mg1, [s1], on: 1)
        XCTAssertEqual(h.listener(mg1, on: 1)?.sources, [:], "IS_EX's sources too")
        XCTAssertEqual(h.listener(mg1, on: 1)?.excluded, [])
        XCTAssertEqual(h.listener(mg1, on: 1)?.compatibilityMode(at: h.now), .v1, "MLDv2 reports do not end MLDv1 mode")
        h.at(3)
        XCTAssertEqual(h.data(to: mg1, from: s1, on: 0), [1], "past LLQT s1 still reaches the MLDv1 listener")
    }

    /// When the Older Version Host Present timer runs out, the port's address is in MLDv2 mode
    /// again and BLOCK is processed: s1 is queried, and excluded once LLQT passes unanswered.
    func testMLDv2ModeReturnsWhenTheOlderVersionHostPresentTimerRunsOut() {
        let h = EngineHarness(accessPorts: 3)
        h.report(mg1, on: 1, version: .v1)
        h.at(259.9)
        XCTAssertEqual(h.listener(mg1, on: 1)?.compatibilityMode(at: h.now), .v1)
        h.record(.modeIsExclude, mg1, on: 1)                        // keeps the listener past 260 s
        h.at(260)
        XCTAssertEqual(h.listener(mg1, on: 1)?.compatibilityMode(at: h.now), .v2)
        h.record(.blockOldSources, mg1, [s1], on: 1)
        XCTAssertEqual(h.listener(mg1, on: 1)?.sources, [s1: Instant.zero + .seconds(262)], "BLOCK processed: Q(MA,{s1})")
        XCTAssertEqual(h.engine.counters.mldErrors[.ignoredInV1Mode], 0)
        h.at(262)
        XCTAssertEqual(h.listener(mg1, on: 1)?.excluded, [s1])
        XCTAssertEqual(h.data(to: mg1, from: s1, on: 0), [])
        XCTAssertEqual(h.data(to: mg1, from: MLDSourceFilteringTests.s2, on: 0), [1])
    }

    /// RFC 2710 4 and RFC 9777 8.3.2: the Done of an MLDv1 host is TO_IN({}): the querier asks
    /// Q(MA) [Last Listener Query Count] times and the listener goes after LLQT.
    func testDoneIsToIncludeOfNothing() {
        let h = EngineHarness(accessPorts: 3) { $0.mldQuerier.enabled = true }
        h.report(mg1, on: 1, version: .v1)
        h.at(10)
        _ = h.sentMLDQueries()
        XCTAssertEqual(h.done(mg1, on: 1), [], "no router port: the Done goes nowhere")
        XCTAssertEqual(h.engine.counters.mldReceived[.done], 1)
        XCTAssertEqual(h.listener(mg1, on: 1)?.groupTimer, Instant.zero + .seconds(12), "lowered to LLQT")
        XCTAssertEqual(h.sentMLDQueries().map(\.query.group), [mg1])
        h.at(11)
        XCTAssertEqual(h.sentMLDQueries().map(\.query.group), [mg1])
        XCTAssertEqual(h.data(to: mg1, on: 0), [1], "until LLQT has passed")
        h.at(12)
        XCTAssertNil(h.listener(mg1, on: 1))
        XCTAssertEqual(h.data(to: mg1, on: 0), [])
    }

    /// A listener that answers the Q(MA) after a Done stays (another MLDv1 host behind the port).
    func testAReportAfterDoneKeepsTheListener() {
        let h = EngineHarness(accessPorts: 3) { $0.mldQuerier.enabled = true }
        h.report(mg1, on: 1, version: .v1)
        h.at(10)
        h.done(mg1, on: 1)
        h.at(10.4)
        h.report(mg1, on: 1, version: .v1)
        h.at(12)
        XCTAssertEqual(h.listener(mg1, on: 1)?.groupTimer, Instant.zero + .milliseconds(270_400))
    }

    /// A Done for an address the port does not listen to changes nothing and asks nothing.
    func testDoneWithoutAListenerIsIgnored() {
        let h = EngineHarness(accessPorts: 3) { $0.mldQuerier.enabled = true }
        _ = h.sentMLDQueries()
        h.done(mg1, on: 1)
        XCTAssertNil(h.listener(mg1, on: 1))
        XCTAssertTrue(h.sentMLDQueries().isEmpty)
    }

    /// Compatibility is per port: an MLDv1 host on one port leaves another's MLDv2 state alone.
    func testCompatibilityIsPerPort() {
        let h = EngineHarness(accessPorts: 3)
        h.report(mg1, on: 1, version: .v1)
        h.record(.changeToInclude, mg1, [s1], on: 2)
        XCTAssertEqual(h.listener(mg1, on: 2)?.compatibilityMode(at: h.now), .v2)
        XCTAssertEqual(h.listener(mg1, on: 2)?.mode, .include)
        h.record(.blockOldSources, mg1, [s1], on: 2)
        XCTAssertEqual(h.engine.counters.mldErrors[.ignoredInV1Mode], 0)
    }
}
