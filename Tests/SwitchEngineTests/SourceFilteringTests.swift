import XCTest
@testable import SwitchEngine
import Wire

/// RFC 3376 tables 6.4.1 and 6.4.2, row by row, on one port of the switch: given the port's
/// state, a record arrives at t = 10 s; expect the new state, its timers and the queries sent.
/// GMI = 260 s, LMQT = 2 s; the initial state is built at t = 0 (timers at 260 s).
final class SourceFilteringTests: XCTestCase {
    static let s = (1...6).map { IPv4Address(198, 51, 100, UInt8($0)) }
    static let (s1, s2, s3, s4, s5) = (s[0], s[1], s[2], s[3], s[4])

    enum Initial { case include(Set<IPv4Address>), exclude(x: Set<IPv4Address>, y: Set<IPv4Address>) }

    struct Row {
        var rfc: String
        var initial: Initial
        var record: IGMPGroupRecord.RecordType
        var sources: [IPv4Address]
        var mode: FilterMode
        /// Source -> the time its timer runs out.
        var timers: [IPv4Address: Double]
        var excluded: Set<IPv4Address> = []
        var groupTimer: Double? = nil
        var groupQuery = false
        var sourceQuery: Set<IPv4Address> = []
    }

    static let a: Set<IPv4Address> = [s1, s2]
    static let x: Set<IPv4Address> = [s1, s2], y: Set<IPv4Address> = [s3, s4]

    static let rows: [Row] = [
        // 6.4.1, current-state records
        Row(rfc: "INCLUDE (A) IS_IN (B) -> INCLUDE (A+B); (B)=GMI",
            initial: .include(a), record: .modeIsInclude, sources: [s2, s3],
            mode: .include, timers: [s1: 260, s2: 270, s3: 270]),
        Row(rfc: "INCLUDE (A) IS_EX (B) -> EXCLUDE (A*B, B-A); (B-A)=0; Delete (A-B); Group Timer=GMI",
            initial: .include(a), record: .modeIsExclude, sources: [s2, s3],
            mode: .exclude, timers: [s2: 260], excluded: [s3], groupTimer: 270),
        Row(rfc: "EXCLUDE (X,Y) IS_IN (A) -> EXCLUDE (X+A, Y-A); (A)=GMI",
            initial: .exclude(x: x, y: y), record: .modeIsInclude, sources: [s3, s5],
            mode: .exclude, timers: [s1: 260, s2: 260, s3: 270, s5: 270], excluded: [s4], groupTimer: 260),
        Row(rfc: "EXCLUDE (X,Y) IS_EX (A) -> EXCLUDE (A-Y, Y*A); (A-X-Y)=GMI; Delete (X-A); Delete (Y-A); Group Timer=GMI",
            initial: .exclude(x: x, y: y), record: .modeIsExclude, sources: [s2, s3, s5],
            mode: .exclude, timers: [s2: 260, s5: 270], excluded: [s3], groupTimer: 270),
        // 6.4.2, filter-mode-change and source-list-change records
        Row(rfc: "INCLUDE (A) ALLOW (B) -> INCLUDE (A+B); (B)=GMI",
            initial: .include(a), record: .allowNewSources, sources: [s2, s3],
            mode: .include, timers: [s1: 260, s2: 270, s3: 270]),
        Row(rfc: "INCLUDE (A) BLOCK (B) -> INCLUDE (A); Send Q(G,A*B)",
            initial: .include(a), record: .blockOldSources, sources: [s2, s3],
            mode: .include, timers: [s1: 260, s2: 12], sourceQuery: [s2]),
        Row(rfc: "INCLUDE (A) TO_EX (B) -> EXCLUDE (A*B, B-A); (B-A)=0; Delete (A-B); Send Q(G,A*B); Group Timer=GMI",
            initial: .include(a), record: .changeToExclude, sources: [s2, s3],
            mode: .exclude, timers: [s2: 12], excluded: [s3], groupTimer: 270, sourceQuery: [s2]),
        Row(rfc: "INCLUDE (A) TO_IN (B) -> INCLUDE (A+B); (B)=GMI; Send Q(G,A-B)",
            initial: .include(a), record: .changeToInclude, sources: [s2, s3],
            mode: .include, timers: [s1: 12, s2: 270, s3: 270], sourceQuery: [s1]),
        Row(rfc: "EXCLUDE (X,Y) ALLOW (A) -> EXCLUDE (X+A, Y-A); (A)=GMI",
            initial: .exclude(x: x, y: y), record: .allowNewSources, sources: [s3, s5],
            mode: .exclude, timers: [s1: 260, s2: 260, s3: 270, s5: 270], excluded: [s4], groupTimer: 260),
        Row(rfc: "EXCLUDE (X,Y) BLOCK (A) -> EXCLUDE (X+(A-Y), Y); (A-X-Y)=Group Timer; Send Q(G,A-Y)",
            initial: .exclude(x: x, y: y), record: .blockOldSources, sources: [s1, s3, s5],
            mode: .exclude, timers: [s1: 12, s2: 260, s5: 12], excluded: [s3, s4], groupTimer: 260, sourceQuery: [s1, s5]),
        Row(rfc: "EXCLUDE (X,Y) TO_EX (A) -> EXCLUDE (A-Y, Y*A); (A-X-Y)=Group Timer; Delete (X-A); Delete (Y-A); Send Q(G,A-Y); Group Timer=GMI",
            initial: .exclude(x: x, y: y), record: .changeToExclude, sources: [s2, s3, s5],
            mode: .exclude, timers: [s2: 12, s5: 12], excluded: [s3], groupTimer: 270, sourceQuery: [s2, s5]),
        Row(rfc: "EXCLUDE (X,Y) TO_IN (A) -> EXCLUDE (X+A, Y-A); (A)=GMI; Send Q(G,X-A); Send Q(G)",
            initial: .exclude(x: x, y: y), record: .changeToInclude, sources: [s3, s5],
            mode: .exclude, timers: [s1: 12, s2: 12, s3: 270, s5: 270], excluded: [s4], groupTimer: 12,
            groupQuery: true, sourceQuery: [s1, s2]),
    ]

    private func harness(_ initial: Initial) -> EngineHarness {
        let h = EngineHarness(accessPorts: 3) { $0.querier = QuerierConfiguration(enabled: true, address: IPv4Address(192, 0, 2, 254)) }
        switch initial {
        case .include(let a):
            record(h, .allowNewSources, Array(a))
        case .exclude(let x, let y):
            record(h, .modeIsExclude, Array(y))
            record(h, .allowNewSources, Array(x))
        }
        _ = h.sentQueries()
        return h
    }

    private func record(_ h: EngineHarness, _ type: IGMPGroupRecord.RecordType, _ sources: [IPv4Address]) {
        h.igmp(.v3Report([IGMPGroupRecord(type: type, group: g1, sources: sources.sorted())]), on: 1, to: .igmpv3Routers)
    }

    private static func at(_ seconds: Double) -> Instant { Instant(nanoseconds: Int64(seconds * 1e9)) }

    func testEveryRowOfTables641And642() {
        for row in Self.rows {
            let h = harness(row.initial)
            h.at(10)
            record(h, row.record, row.sources)
            guard let member = h.member(g1, on: 1) else { XCTFail("\(row.rfc): no state"); continue }
            XCTAssertEqual(member.mode, row.mode, row.rfc)
            XCTAssertEqual(member.sources, row.timers.mapValues(Self.at), row.rfc)
            XCTAssertEqual(member.excluded, row.excluded, row.rfc)
            if let groupTimer = row.groupTimer { XCTAssertEqual(member.groupTimer, Self.at(groupTimer), row.rfc) }
            let queries = h.sentQueries()
            XCTAssertEqual(queries.contains { $0.query.group == g1 && $0.query.sources.isEmpty }, row.groupQuery, "\(row.rfc): Q(G)")
            XCTAssertEqual(Set(queries.flatMap(\.query.sources)), row.sourceQuery, "\(row.rfc): Q(G,A)")
            for query in queries {
                XCTAssertEqual(query.destination, g1)
                XCTAssertEqual(query.query.maxResponseDeciseconds, 10, "last member query interval")
                XCTAssertFalse(query.query.suppressRouterProcessing, "\(row.rfc): timers were just lowered: S clear")
            }
        }
    }

    /// 6.5 and 6.6.3: when nobody answers, the queried sources and the group timer run out.
    func testUnansweredQueriesExpireTheQueriedState() {
        let h = harness(.exclude(x: Self.x, y: Self.y))
        h.at(10)
        record(h, .changeToInclude, [Self.s3, Self.s5])          // EXCLUDE TO_IN: Q(G,{s1,s2}) and Q(G)
        XCTAssertEqual(h.sentQueries().count, 2)
        h.at(11)
        XCTAssertEqual(h.sentQueries().count, 2, "the second of last-member-query-count")
        h.at(12)
        let member = h.member(g1, on: 1)
        XCTAssertEqual(member?.mode, .include, "group timer ran out: INCLUDE of the running sources")
        XCTAssertEqual(member.map { Set($0.sources.keys) }, [Self.s3, Self.s5])
        XCTAssertEqual(member?.excluded, [])
    }

    /// 6.6.3.2: a retransmission carries S for the sources some answer refreshed meanwhile.
    func testRetransmissionSetsTheSFlagForSourcesRefreshedMeanwhile() {
        let h = harness(.include([Self.s1, Self.s2]))
        h.at(10)
        record(h, .blockOldSources, [Self.s1, Self.s2])
        XCTAssertEqual(h.sentQueries().map(\.query.sources), [[Self.s1, Self.s2]])
        h.at(10.5)
        record(h, .allowNewSources, [Self.s2])                     // another host still wants s2
        h.at(11)
        let retransmissions = h.sentQueries()
        XCTAssertEqual(retransmissions.count, 2)
        XCTAssertEqual(retransmissions.first { $0.query.suppressRouterProcessing }?.query.sources, [Self.s2])
        XCTAssertEqual(retransmissions.first { !$0.query.suppressRouterProcessing }?.query.sources, [Self.s1])
        h.at(12)
        XCTAssertEqual(h.member(g1, on: 1).map { Set($0.sources.keys) }, [Self.s2])
    }

    /// 6.3: a port forwards S in INCLUDE mode if S is listed, in EXCLUDE mode unless S is excluded.
    func testDataFollowsEachPortsSourceFilter() {
        let h = EngineHarness(accessPorts: 4)
        h.igmp(.v3Report([IGMPGroupRecord(type: .changeToInclude, group: g1, sources: [Self.s1])]), on: 1, to: .igmpv3Routers)
        h.igmp(.v3Report([IGMPGroupRecord(type: .changeToExclude, group: g1, sources: [Self.s1])]), on: 2, to: .igmpv3Routers)
        h.report(g1, on: 3, version: .v2)
        XCTAssertEqual(h.ports(h.send(Self.frame(from: Self.s1), on: 0)), [1, 3])
        XCTAssertEqual(h.ports(h.send(Self.frame(from: Self.s2), on: 0)), [2, 3])
    }

    static func frame(from source: IPv4Address) -> [UInt8] {
        var frame = EngineHarness.udpFrame(to: g1, mac: MACAddress.ipv4Multicast(g1), from: 0)
        frame.withUnsafeMutableBytes { b in
            source.write(to: b, at: 26)
            b.writeUInt16(0, at: 24)
            b.writeUInt16(InternetChecksum.compute(UnsafeRawBufferPointer(rebasing: b[14..<34])), at: 24)
        }
        return frame
    }

    /// Fast-leave: what a query would have asked about is pruned at once.
    func testFastLeavePrunesSourcesAtOnce() {
        let h = EngineHarness([PortConfiguration(name: "p0"), PortConfiguration(name: "p1", fastLeave: true)]) {
            $0.querier.enabled = true
        }
        _ = h.sentQueries()
        h.igmp(.v3Report([IGMPGroupRecord(type: .allowNewSources, group: g1, sources: [Self.s1, Self.s2])]), on: 1, to: .igmpv3Routers)
        h.igmp(.v3Report([IGMPGroupRecord(type: .blockOldSources, group: g1, sources: [Self.s1])]), on: 1, to: .igmpv3Routers)
        XCTAssertEqual(h.member(g1, on: 1).map { Set($0.sources.keys) }, [Self.s2])
        XCTAssertTrue(h.sentQueries().isEmpty)
        h.igmp(.v3Report([IGMPGroupRecord(type: .changeToExclude, group: g1, sources: [])]), on: 1, to: .igmpv3Routers)
        h.igmp(.v3Report([IGMPGroupRecord(type: .changeToInclude, group: g1, sources: [Self.s5])]), on: 1, to: .igmpv3Routers)
        XCTAssertEqual(h.member(g1, on: 1)?.mode, .include)
        XCTAssertEqual(h.member(g1, on: 1).map { Set($0.sources.keys) }, [Self.s5])
    }
}

/// RFC 4604: the SSM range admits INCLUDE-mode membership only.
final class SourceSpecificMulticastTests: XCTestCase {
    let ssmGroup = IPv4Address(232, 1, 1, 1)

    func testAnySourceJoinsAreIgnoredAndCounted() {
        let h = EngineHarness(accessPorts: 3)
        h.report(ssmGroup, on: 1, version: .v2)
        h.report(ssmGroup, on: 1, version: .v1)
        h.igmp(.v3Report([IGMPGroupRecord(type: .changeToExclude, group: ssmGroup)]), on: 1, to: .igmpv3Routers)
        h.igmp(.v3Report([IGMPGroupRecord(type: .modeIsExclude, group: ssmGroup)]), on: 1, to: .igmpv3Routers)
        XCTAssertNil(h.member(ssmGroup, on: 1))
        XCTAssertEqual(h.engine.counters.errors[.ssmIgnored], 4)
        h.igmp(.v3Report([IGMPGroupRecord(type: .allowNewSources, group: ssmGroup, sources: [SourceFilteringTests.s1])]),
               on: 1, to: .igmpv3Routers)
        XCTAssertEqual(h.member(ssmGroup, on: 1)?.mode, .include)
    }

    func testTheRangeIsSettable() {
        let h = EngineHarness(accessPorts: 2) { $0.ssmRange = IPv4Prefix("239.200.0.0/16")! }
        h.report(IPv4Address(232, 1, 1, 1), on: 1)
        XCTAssertNotNil(h.member(IPv4Address(232, 1, 1, 1), on: 1))
        h.report(IPv4Address(239, 200, 1, 1), on: 1)
        XCTAssertNil(h.member(IPv4Address(239, 200, 1, 1), on: 1))
    }
}

/// RFC 3376 section 7: older hosts and older queriers.
final class CompatibilityTests: XCTestCase {
    func testAnOlderReportPutsThePortsGroupInCompatibilityMode() {
        let h = EngineHarness(accessPorts: 3)
        h.report(g1, on: 1, version: .v2)
        XCTAssertEqual(h.member(g1, on: 1)?.compatibilityMode(at: h.now), .v2)
        // In IGMPv2 mode BLOCK is ignored and TO_EX's sources are.
        h.igmp(.v3Report([IGMPGroupRecord(type: .blockOldSources, group: g1, sources: [SourceFilteringTests.s1])]), on: 1, to: .igmpv3Routers)
        h.igmp(.v3Report([IGMPGroupRecord(type: .changeToExclude, group: g1, sources: [SourceFilteringTests.s1])]), on: 1, to: .igmpv3Routers)
        XCTAssertEqual(h.member(g1, on: 1)?.excluded, [])
        XCTAssertEqual(h.engine.counters.errors[.ignoredInV2Mode], 1)
        // The older version host present timer: GMI, then back to IGMPv3.
        h.at(259.9)
        h.igmp(.v3Report([IGMPGroupRecord(type: .modeIsExclude, group: g1)]), on: 1, to: .igmpv3Routers)
        h.at(260)
        XCTAssertEqual(h.member(g1, on: 1)?.compatibilityMode(at: h.now), .v3)
        h.igmp(.v3Report([IGMPGroupRecord(type: .blockOldSources, group: g1, sources: [SourceFilteringTests.s1])]), on: 1, to: .igmpv3Routers)
        XCTAssertEqual(h.member(g1, on: 1)?.sources.keys.contains(SourceFilteringTests.s1), true, "BLOCK processed again")
    }

    func testWithIGMPv1HostsLeavesAndToIncludeAreIgnored() {
        let h = EngineHarness([PortConfiguration(name: "p0"), PortConfiguration(name: "p1", fastLeave: true)])
        h.report(g1, on: 1, version: .v1)
        h.leave(g1, on: 1)
        h.igmp(.v3Report([IGMPGroupRecord(type: .changeToInclude, group: g1)]), on: 1, to: .igmpv3Routers)
        XCTAssertNotNil(h.member(g1, on: 1), "a v1 host may still be there: it never says it leaves")
        XCTAssertEqual(h.engine.counters.errors[.ignoredInV1Mode], 2)
    }

    func testCompatibilityIsPerPort() {
        let h = EngineHarness(accessPorts: 3)
        h.report(g1, on: 1, version: .v2)
        h.igmp(.v3Report([IGMPGroupRecord(type: .changeToInclude, group: g1, sources: [SourceFilteringTests.s1])]), on: 2, to: .igmpv3Routers)
        XCTAssertEqual(h.member(g1, on: 2)?.compatibilityMode(at: h.now), .v3)
        XCTAssertEqual(h.member(g1, on: 2)?.mode, .include)
    }

    /// 7.3.1: our querier speaks the oldest version heard on the LAN.
    func testOurQuerierFollowsAnOlderQuerier() {
        let h = EngineHarness(accessPorts: 3) { $0.querier = QuerierConfiguration(enabled: true, address: IPv4Address(192, 0, 2, 1)) }
        XCTAssertEqual(h.sentQueries().first?.query.version, .v3)
        h.query(on: 2, from: IPv4Address(192, 0, 2, 99), version: .v2)      // loses the election, but is older
        XCTAssertEqual(h.engine.querier.version(in: .default, at: h.now), .v2)
        h.at(31.25)
        XCTAssertEqual(h.sentQueries().first?.query.version, .v2)
        h.at(260)
        XCTAssertEqual(h.engine.querier.version(in: .default, at: h.now), .v3)
    }
}

/// Router discovery beyond queries and PIM: DVMRP probes and multicast router discovery (RFC 4286).
final class RouterDiscoveryTests: XCTestCase {
    func testDVMRPProbeMakesARouterPort() {
        let h = EngineHarness(accessPorts: 3)
        h.igmp(.dvmrp(code: 1), on: 2, from: IPv4Address(192, 0, 2, 50), to: .allSystems)
        XCTAssertEqual(h.engine.routers.learnedPorts().first?.learned.reason, .dvmrpProbe)
        XCTAssertEqual(h.data(to: g1, on: 0), [2])
        h.at(35)
        XCTAssertEqual(h.data(to: g1, on: 0), [])
    }

    func testMRDAdvertisementAndTermination() {
        let h = EngineHarness(accessPorts: 3)
        h.igmp(.mrdAdvertisement(intervalSeconds: 20, queryIntervalSeconds: 125, robustness: 2), on: 1,
               from: IPv4Address(192, 0, 2, 60), to: .allSnoopers)
        XCTAssertEqual(h.engine.routers.learnedPorts().first?.learned.reason, .mrdAdvertisement)
        XCTAssertEqual(h.data(to: g1, on: 0), [1])
        h.at(59.9)
        XCTAssertEqual(h.data(to: g1, on: 0), [1])
        h.igmp(.mrdTermination, on: 1, from: IPv4Address(192, 0, 2, 60), to: .allSnoopers)
        XCTAssertEqual(h.data(to: g1, on: 0), [])
    }

    func testTheSwitchSolicitsAdvertisementsAtStart() throws {
        let h = EngineHarness(accessPorts: 2)
        let frames = h.engine.takeOutbox()
        let solicitation = try XCTUnwrap(frames.first)
        try solicitation.bytes.withUnsafeBytes { bytes in
            let ip = try IPv4HeaderView(checking: try EthernetFrameView(checking: bytes).payload)
            XCTAssertEqual(ip.destination, .allRouters)
            XCTAssertEqual(try IGMPMessage.parse(ip.payload), .mrdSolicitation)
        }
        XCTAssertEqual(Set(solicitation.ports.map(\.index)), [0, 1])
    }

    func testLinkDownRemovesALearnedRouterPort() {
        let h = EngineHarness(accessPorts: 3)
        h.query(on: 2, from: IPv4Address(192, 0, 2, 70))
        XCTAssertEqual(h.data(to: g1, on: 0), [2])
        h.engine.setLink(PortID(2), up: false, at: h.now)
        XCTAssertEqual(h.data(to: g1, on: 0), [])
    }
}

/// Per-VLAN settings beside the defaults.
final class VLANSettingsTests: XCTestCase {
    func testQuerierAndSnoopingPerVLAN() {
        let h = EngineHarness([PortConfiguration(name: "a10", pvid: vlan10), PortConfiguration(name: "b10", pvid: vlan10),
                               PortConfiguration(name: "a20", pvid: vlan20), PortConfiguration(name: "b20", pvid: vlan20)]) {
            $0.querier = QuerierConfiguration(enabled: false)
            $0.vlans[vlan10] = VLANSettings(querier: true, querierAddress: IPv4Address(192, 0, 2, 10), igmpVersion: .v2)
            $0.vlans[vlan20] = VLANSettings(snooping: false)
        }
        let queries = h.sentQueries()
        XCTAssertEqual(queries.map(\.vlan), [vlan10])
        XCTAssertEqual(queries.first?.query.version, .v2)
        XCTAssertEqual(queries.first?.source, IPv4Address(192, 0, 2, 10))
        // VLAN 20 does not snoop: multicast floods, reports are not tracked.
        h.report(g1, on: 3)
        XCTAssertNil(h.member(g1, on: 3, vlan: vlan20))
        XCTAssertEqual(h.data(to: g1, on: 2), [3])
        XCTAssertEqual(h.data(to: g1, on: 0), [], "VLAN 10 snoops")
    }
}
