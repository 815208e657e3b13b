import XCTest
@testable import SwitchEngine
import Wire

/// MLD snooping (RFC 4541 section 3 for IPv6, RFC 2710, RFC 9777): what MLD messages and IPv6
/// multicast do at the switch's ports.
final class MLDSnoopingTests: XCTestCase {
    private func withRouterPort(_ count: Int = 3, _ configure: (inout SwitchConfiguration) -> Void = { _ in }) -> EngineHarness {
        EngineHarness((0..<count).map { PortConfiguration(name: "p\($0)") }
                      + [PortConfiguration(name: "router", isStaticRouterPort: true)], configure)
    }

    // MARK: - MLD messages

    /// RFC 4541 2.1.1 (and 3): reports and Done go to the router ports only, never to other hosts.
    func testReportsAndDoneGoToRouterPortsOnly() {
        let s = withRouterPort(2)
        XCTAssertEqual(s.report(mg1, on: 0, version: .v2), [2])
        XCTAssertEqual(s.report(mg1, on: 0, version: .v1), [2])
        XCTAssertEqual(s.done(mg1, on: 0), [2])
        XCTAssertEqual(s.record(.changeToInclude, mg1, on: 1), [2])
        XCTAssertEqual(s.engine.counters.mldReceived[.reportV2], 2)
        XCTAssertEqual(s.engine.counters.mldReceived[.reportV1], 1)
        XCTAssertEqual(s.engine.counters.mldReceived[.done], 1)
        XCTAssertEqual(s.engine.counters.received.total, 0, "nothing counted as IGMP")
    }

    /// Queries reach every port of the VLAN and make their port an MLD router port for the
    /// Other Querier Present Interval (255 s) — an MLD one only: IPv4 router ports are IGMP's.
    func testQueriesFloodAndMakeAnMLDRouterPort() {
        let s = EngineHarness(accessPorts: 3)
        XCTAssertEqual(s.mldQuery(on: 2, from: router6), [0, 1])
        XCTAssertEqual(s.mldRouterReason(2), .mldQuery)
        XCTAssertEqual(s.engine.counters.mldReceived[.queryV2], 1)
        XCTAssertEqual(s.data(to: mg1, on: 0), [2], "unregistered: the MLD router port")
        XCTAssertTrue(s.engine.routers.learnedPorts().isEmpty, "no IGMP router port")
        XCTAssertEqual(s.data(to: g1, on: 0), [], "IPv4 data does not go to an MLD router port")
        s.at(254.9)
        XCTAssertEqual(s.data(to: mg1, on: 0), [2])
        s.at(255)
        XCTAssertEqual(s.data(to: mg1, on: 0), [])
        XCTAssertEqual(s.mldQuery(on: 1, from: router6, version: .v1), [0, 2], "MLDv1 queries likewise")
        XCTAssertEqual(s.mldRouterReason(1), .mldQuery)
    }

    /// The querier's first query already keeps its port a router port for the querier's own
    /// Other Querier Present Interval (9.5, with its QRV and QQIC): a router that queries
    /// every 480 s stays a router port between its queries.
    func testAQueriersPortLastsItsOwnOtherQuerierPresentInterval() {
        let s = EngineHarness(accessPorts: 3)
        s.mldQuery(on: 2, from: router6, maxResponseMilliseconds: 10_000, robustness: 2, queryInterval: 480)
        s.at(479.9)
        XCTAssertEqual(s.data(to: mg1, on: 0), [2], "its next query is not due yet")
        s.at(964.9)
        XCTAssertEqual(s.data(to: mg1, on: 0), [2], "2 x 480 s + 5 s")
        s.at(965)
        XCTAssertEqual(s.data(to: mg1, on: 0), [])
    }

    /// RFC 9777 5.1.14: a query's source is link-local; one from :: is no query at all and
    /// makes no router port.
    func testAQueryFromTheUnspecifiedAddressMakesNoRouterPort() {
        let s = EngineHarness(accessPorts: 3) { $0.mldQuerier.enabled = true }
        XCTAssertEqual(s.mldQuery(on: 2, from: .any), [])
        XCTAssertNil(s.mldRouterReason(2))
        XCTAssertEqual(s.engine.mldRouters.ports(in: .default), PortSet())
        XCTAssertEqual(s.engine.counters.mldErrors[.badSource], 1)
        XCTAssertEqual(s.engine.mldQuerier.role(in: .default, at: s.now), .us)
    }

    /// RFC 9777 5.1.14 and 5.2.13, RFC 2710 3: MLD comes from a link-local source, with hop
    /// limit 1 and a router alert; a query without them is dropped and counted, and neither
    /// makes a router port nor takes part in the election.
    func testQueriesThatBreakTheDatagramRulesAreDroppedAndCounted() {
        let s = EngineHarness(accessPorts: 3) { $0.mldQuerier.enabled = true }
        XCTAssertEqual(s.mldQuery(on: 2, from: IPv6Address("2001:db8::1")!), [])
        XCTAssertEqual(s.mldQuery(on: 2, from: router6, hopLimit: 2), [])
        XCTAssertEqual(s.mldQuery(on: 2, from: router6, hopLimit: 255), [])
        XCTAssertEqual(s.mldQuery(on: 2, from: router6, routerAlert: false), [])
        XCTAssertEqual(s.engine.counters.mldErrors[.badSource], 1)
        XCTAssertEqual(s.engine.counters.mldErrors[.badHopLimit], 2)
        XCTAssertEqual(s.engine.counters.mldErrors[.noRouterAlert], 1)
        XCTAssertEqual(s.engine.counters.mldErrors.byName, ["bad_source": 1, "bad_hop_limit": 2, "no_router_alert": 1])
        XCTAssertEqual(s.engine.counters.dropsByReason[.badMLD], 4)
        XCTAssertEqual(s.engine.counters.mldReceived[.queryV2], 0)
        XCTAssertNil(s.mldRouterReason(2))
        XCTAssertEqual(s.engine.mldQuerier.role(in: .default, at: s.now), .us)
        XCTAssertEqual(s.mldQuery(on: 2, from: router6), [0, 1], "the same query, well formed")
        XCTAssertEqual(s.engine.mldQuerier.role(in: .default, at: s.now), .other)
    }

    /// Reports follow the same rules (RFC 9777 5.2.13), except that :: is a valid source.
    func testReportsThatBreakTheDatagramRulesAreDropped() {
        let s = withRouterPort(2)
        XCTAssertEqual(s.mld(.v2Report([MLDAddressRecord(type: .modeIsExclude, group: mg1)]), on: 1,
                             from: IPv6Address("2001:db8::2")!, to: .mldv2Routers), [])
        XCTAssertEqual(s.mld(.report(group: mg1), on: 1, to: mg1, hopLimit: 64), [])
        XCTAssertEqual(s.mld(.done(group: mg1), on: 1, to: .allRouters, routerAlert: false), [])
        XCTAssertNil(s.listener(mg1, on: 1))
        XCTAssertEqual(s.engine.counters.mldErrors.byName, ["bad_source": 1, "bad_hop_limit": 1, "no_router_alert": 1])
    }

    /// RFC 3590 (RFC 9777 5.2.13): a host without a link-local address yet reports from ::, and
    /// its report counts.
    func testAReportFromTheUnspecifiedAddressIsAccepted() {
        let s = withRouterPort(2)
        XCTAssertEqual(s.record(.changeToExclude, mg1, on: 1, from: .any), [2])
        XCTAssertEqual(s.listener(mg1, on: 1)?.mode, .exclude)
        XCTAssertEqual(s.data(to: mg1, on: 0), [1, 2])
        XCTAssertEqual(s.engine.counters.mldErrors.total, 0)
    }

    /// A report for an address that is not multicast is refused and counted.
    func testAReportForAUnicastAddressIsRefused() {
        let s = EngineHarness(accessPorts: 2)
        s.mld(.report(group: IPv6Address("2001:db8::5")!), on: 1, to: .allRouters)
        s.record(.changeToExclude, IPv6Address("2001:db8::6")!, on: 1)
        XCTAssertEqual(s.engine.counters.mldErrors[.badGroup], 2)
        XCTAssertEqual(s.engine.mld.memberships.groupCount, 0)
    }

    // MARK: - Router discovery

    /// A PIM hello to ff02::d (RFC 7761, checksum over the IPv6 pseudo-header) makes an MLD
    /// router port for its holdtime, and no IGMP router port: IPv4 and IPv6 routers apart.
    func testPIMv6HelloMakesAnMLDRouterPortOnly() {
        let s = EngineHarness(accessPorts: 3)
        XCTAssertEqual(s.pimv6Hello(holdtime: 105, on: 2), [0, 1], "hellos flood")
        XCTAssertEqual(s.mldRouterReason(2), .pimHello)
        XCTAssertEqual(s.engine.counters.mldReceived[.pimHello], 1)
        XCTAssertTrue(s.engine.routers.learnedPorts().isEmpty, "not an IGMP router port")
        XCTAssertEqual(s.engine.counters.received[.pimHello], 0)
        XCTAssertEqual(s.data(to: mg1, on: 0), [2])
        XCTAssertEqual(s.data(to: g1, on: 0), [])
        s.at(104.9)
        XCTAssertEqual(s.data(to: mg1, on: 0), [2])
        s.at(105)
        XCTAssertEqual(s.data(to: mg1, on: 0), [])
        s.pimv6Hello(holdtime: 105, on: 2)
        s.pimv6Hello(holdtime: 0, on: 2)
        XCTAssertEqual(s.data(to: mg1, on: 0), [], "holdtime 0: the neighbor is gone (RFC 7761 4.9.2)")
    }

    /// The other way round: an IPv4 PIM hello makes an IGMP router port and no MLD one.
    func testIPv4PIMHelloMakesNoMLDRouterPort() {
        let s = EngineHarness(accessPorts: 3)
        let hello = PIMMessage.helloBytes(holdtimeSeconds: 105)
        var frame = [UInt8](repeating: 0, count: 14)
        frame.withUnsafeMutableBytes { e in
            MACAddress.ipv4Multicast(.allPIMRouters).write(to: e, at: 0)
            EngineHarness.host(2).write(to: e, at: 6)
            e.writeUInt16(EtherType.ipv4, at: 12)
        }
        frame += IPv4Builder.controlHeader(source: EngineHarness.hostIP(2), destination: .allPIMRouters,
                                           protocol: IPv4HeaderView.ProtocolNumber.pim, payloadLength: hello.count) + hello
        s.send(frame, on: 2)
        XCTAssertEqual(s.data(to: g1, on: 0), [2])
        XCTAssertEqual(s.data(to: mg1, on: 0), [])
        XCTAssertTrue(s.engine.mldRouters.learnedPorts().isEmpty)
    }

    /// RFC 4286 over ICMPv6: an advertisement (151) to ff02::6a makes an MLD router port for
    /// three advertisement intervals; a termination (153) ends what advertisements taught.
    func testMRDAdvertisementAndTermination() {
        let s = EngineHarness(accessPorts: 3)
        XCTAssertEqual(s.mld(.mrdAdvertisement(intervalSeconds: 20, queryIntervalSeconds: 125, robustness: 2), on: 1,
                             to: .allSnoopers), [0, 2])
        XCTAssertEqual(s.mldRouterReason(1), .mrdAdvertisement)
        XCTAssertEqual(s.engine.counters.mldReceived[.mrdAdvertisement], 1)
        XCTAssertTrue(s.engine.routers.learnedPorts().isEmpty, "not an IGMP router port")
        XCTAssertEqual(s.data(to: mg1, on: 0), [1])
        s.at(59.9)
        XCTAssertEqual(s.data(to: mg1, on: 0), [1])
        s.at(60)
        XCTAssertEqual(s.data(to: mg1, on: 0), [], "3 x 20 s without an advertisement")
        s.mld(.mrdAdvertisement(intervalSeconds: 20, queryIntervalSeconds: 125, robustness: 2), on: 1, to: .allSnoopers)
        s.at(61)
        s.mld(.mrdTermination, on: 1, to: .allSnoopers)
        XCTAssertEqual(s.engine.counters.mldReceived[.mrdTermination], 1)
        XCTAssertNil(s.mldRouterReason(1))
        XCTAssertEqual(s.data(to: mg1, on: 0), [])
    }

    /// A termination takes back only what MRD taught: a query's router port stays.
    func testMRDTerminationKeepsAPortAQueryTaught() {
        let s = EngineHarness(accessPorts: 3)
        s.mldQuery(on: 2, from: router6)
        s.mld(.mrdAdvertisement(intervalSeconds: 100, queryIntervalSeconds: 125, robustness: 2), on: 2, to: .allSnoopers)
        s.mld(.mrdTermination, on: 2, to: .allSnoopers)
        XCTAssertEqual(s.mldRouterReason(2), .mldQuery)
        XCTAssertEqual(s.data(to: mg1, on: 0), [2])
    }

    /// RFC 4286 5: at start the switch solicits advertisements in IPv6 too: ICMPv6 152 to
    /// ff02::2 from its link-local address, hop limit 1.
    func testTheSwitchSolicitsMLDRouterAdvertisementsAtStart() throws {
        let s = EngineHarness(accessPorts: 2)
        let frames = s.engine.takeOutbox()
        var solicitations = 0
        for frame in frames {
            try frame.bytes.withUnsafeBytes { bytes in
                let ethernet = try EthernetFrameView(checking: bytes)
                guard ethernet.etherType == EtherType.ipv6 else { return }
                let ip = try IPv6HeaderView(checking: ethernet.payload)
                XCTAssertEqual(try MLDMessage.parse(datagram: ip), .mrdSolicitation)
                XCTAssertEqual(ip.source, switchLL)
                XCTAssertEqual(ip.destination, .allRouters)
                XCTAssertEqual(ip.hopLimit, 1)
                XCTAssertEqual(Set(frame.ports.map(\.index)), [0, 1])
                solicitations += 1
            }
        }
        XCTAssertEqual(solicitations, 1)
        XCTAssertEqual(s.engine.counters.mldSent[.mrdSolicitation], 1)
    }

    // MARK: - Data

    /// RFC 4541 2.1.2 for IPv6: a group with listeners goes to them and the MLD router ports;
    /// one without, to the router ports only (everywhere with `--flood-unregistered`).
    func testIPv6DataGoesToListenersAndRouterPortsOnly() {
        let s = withRouterPort(3)
        XCTAssertEqual(s.data(to: mg1, on: 0), [3], "unregistered: router ports only")
        s.report(mg1, on: 1)
        XCTAssertEqual(s.data(to: mg1, on: 0), [1, 3])
        XCTAssertEqual(s.data(to: mg1, on: 1), [3], "never back out of the ingress port")
        XCTAssertEqual(s.data(to: mg2, on: 0), [3], "another group has no listener")
        s.report(mg2, on: 2, version: .v1)
        XCTAssertEqual(s.data(to: mg2, on: 0), [2, 3])
        s.at(260)
        XCTAssertEqual(s.data(to: mg1, on: 0), [3], "MALI without a report")
    }

    func testFloodUnregisteredFloodsUnknownIPv6GroupsOnly() {
        let s = EngineHarness(accessPorts: 4) { $0.floodUnregistered = true }
        XCTAssertEqual(s.data(to: mg1, on: 0), [1, 2, 3])
        s.report(mg1, on: 2)
        XCTAssertEqual(s.data(to: mg1, on: 0), [2])
    }

    /// RFC 2710 5, RFC 4541 3: ff02::1 (all nodes) is never reported and always floods.
    func testAllNodesFloods() {
        let s = withRouterPort(3)
        XCTAssertEqual(s.data(to: .allNodes, on: 0), [1, 2, 3])
        s.report(.allNodes, on: 1)
        XCTAssertNil(s.listener(.allNodes, on: 1), "not tracked")
        XCTAssertEqual(s.data(to: .allNodes, on: 0), [1, 2, 3])
    }

    /// ff01::/16 (interface-local) and ff00::/16 (reserved scope) never name a group on a link:
    /// they flood, untracked.
    func testInterfaceLocalAndReservedScopesFlood() {
        let s = EngineHarness(accessPorts: 4)
        for text in ["ff01::1", "ff01::2:3", "ff00::1234", "ff00::"] {
            let group = IPv6Address(text)!
            XCTAssertEqual(s.data(to: group, on: 0), [1, 2, 3], text)
            s.report(group, on: 1)
            XCTAssertNil(s.listener(group, on: 1), text)
            XCTAssertEqual(s.data(to: group, on: 0), [1, 2, 3], text)
        }
        XCTAssertEqual(s.data(to: IPv6Address("ff02::2")!, on: 0), [], "link-local scope is snooped (ff02::2, no listener)")
    }

    /// Neighbour discovery: a solicited-node group (ff02::1:ffXX:XXXX) floods while no listener
    /// is known, so that a host the switch never heard report is still found; once one is
    /// known it goes to the listeners and the router ports; `--flood-solicited-node` always floods.
    func testSolicitedNodeGroupsFloodUntilAListenerIsKnown() {
        let target = IPv6Address("2001:db8::2")!
        let group = target.solicitedNodeGroup
        XCTAssertEqual(group, IPv6Address("ff02::1:ff00:2")!)
        let s = withRouterPort(3)
        XCTAssertEqual(s.neighbourSolicitation(for: target, on: 0), [1, 2, 3])
        XCTAssertEqual(s.data(to: group, on: 0), [1, 2, 3])
        s.record(.changeToExclude, group, on: 1)
        XCTAssertEqual(s.neighbourSolicitation(for: target, on: 0), [1, 3])
        XCTAssertEqual(s.data(to: group, on: 0), [1, 3])
        XCTAssertEqual(s.neighbourSolicitation(for: IPv6Address("2001:db8::77")!, on: 0), [1, 2, 3],
                       "another solicited-node group, nobody known")
        s.at(260)
        XCTAssertEqual(s.neighbourSolicitation(for: target, on: 0), [1, 2, 3], "the listener expired: flood again")

        let always = withRouterPort(3) { $0.floodSolicitedNode = true }
        always.record(.changeToExclude, group, on: 1)
        XCTAssertNotNil(always.listener(group, on: 1))
        XCTAssertEqual(always.neighbourSolicitation(for: target, on: 0), [1, 2, 3])
    }

    // MARK: - Source-specific multicast

    /// RFC 4604 2.2.1, RFC 4607: in ff3x::/32, any-source membership is refused (MLDv1
    /// reports, IS_EX, TO_EX) and counted; INCLUDE with sources works, and only the sources
    /// asked for reach the listener.
    func testSSMRangeTakesSourceSpecificMembershipOnly() {
        let s1 = MLDSourceFilteringTests.s1, s2 = MLDSourceFilteringTests.s2
        let s = withRouterPort(3)
        s.report(ssmGroup6, on: 1, version: .v1)
        s.record(.modeIsExclude, ssmGroup6, on: 1)
        s.record(.changeToExclude, ssmGroup6, [s2], on: 1)
        XCTAssertNil(s.listener(ssmGroup6, on: 1))
        XCTAssertEqual(s.engine.counters.mldErrors[.ssmIgnored], 3)
        XCTAssertEqual(s.data(to: ssmGroup6, from: s1, on: 0), [3])
        s.record(.allowNewSources, ssmGroup6, [s1], on: 1)
        s.record(.changeToInclude, ssmGroup6, [s2], on: 2)
        XCTAssertEqual(s.listener(ssmGroup6, on: 1)?.mode, .include)
        XCTAssertEqual(s.data(to: ssmGroup6, from: s1, on: 0), [1, 3])
        XCTAssertEqual(s.data(to: ssmGroup6, from: s2, on: 0), [2, 3])
        XCTAssertEqual(s.data(to: ssmGroup6, from: MLDSourceFilteringTests.s3, on: 0), [3])
        for scope in ["ff31::1", "ff32::1", "ff35::1", "ff38::1"] {
            s.report(IPv6Address(scope)!, on: 1, version: .v1)
        }
        XCTAssertEqual(s.engine.counters.mldErrors[.ssmIgnored], 7, "ff3x::/32 of every scope")
        s.report(IPv6Address("ff3e:1::1")!, on: 1, version: .v1)
        XCTAssertNotNil(s.listener(IPv6Address("ff3e:1::1")!, on: 1), "ff3e:1::/32 is not ff3e::/32")
    }

    /// `--mld-ssm-range`: one prefix instead of ff3x::/32.
    func testTheSSMRangeIsSettable() {
        let s = EngineHarness(accessPorts: 2) { $0.mldSSMRange = .prefix(IPv6Prefix("ff15::/16")!) }
        s.report(mg1, on: 1)
        XCTAssertNil(s.listener(mg1, on: 1))
        s.report(ssmGroup6, on: 1, version: .v1)
        XCTAssertNotNil(s.listener(ssmGroup6, on: 1))
    }

    // MARK: - Ports

    /// A fast-leave port is pruned at once on a Done or TO_IN({}): no query is asked.
    func testFastLeavePortIsPrunedAtOnce() {
        let s = EngineHarness([PortConfiguration(name: "p0"), PortConfiguration(name: "p1", fastLeave: true),
                               PortConfiguration(name: "p2")]) {
            $0.mldQuerier.enabled = true
        }
        _ = s.sentMLDQueries()
        s.report(mg1, on: 1, version: .v1)
        s.report(mg1, on: 2, version: .v1)
        s.done(mg1, on: 1)
        XCTAssertNil(s.listener(mg1, on: 1))
        XCTAssertEqual(s.data(to: mg1, on: 0), [2])
        s.record(.changeToExclude, mg2, on: 1)
        s.record(.changeToInclude, mg2, on: 1)
        XCTAssertNil(s.listener(mg2, on: 1))
        XCTAssertTrue(s.sentMLDQueries().isEmpty)
        s.done(mg1, on: 2)
        XCTAssertNotNil(s.listener(mg1, on: 2), "another port waits for the queries")
        XCTAssertEqual(s.sentMLDQueries().count, 1)
    }

    /// A query-guard port may not speak for a router: its MLD queries, MRD advertisements and
    /// PIMv6 hellos are dropped and counted; its hosts still join.
    func testQueryGuardPortCannotBecomeARouterPortOrTheQuerier() {
        let s = EngineHarness([PortConfiguration(name: "p0"), PortConfiguration(name: "p1"),
                               PortConfiguration(name: "guarded", queryGuard: true)]) {
            $0.mldQuerier.enabled = true
        }
        XCTAssertEqual(s.mldQuery(on: 2, from: router6), [])
        XCTAssertEqual(s.engine.mldQuerier.role(in: .default, at: s.now), .us)
        XCTAssertEqual(s.mld(.mrdAdvertisement(intervalSeconds: 20, queryIntervalSeconds: 125, robustness: 2), on: 2,
                             to: .allSnoopers), [])
        XCTAssertEqual(s.pimv6Hello(holdtime: 105, on: 2), [])
        XCTAssertTrue(s.engine.mldRouters.learnedPorts().isEmpty)
        XCTAssertEqual(s.engine.counters.mldErrors[.guardedQuery], 3)
        XCTAssertEqual(s.engine.counters.dropsByReason[.queryGuard], 3)
        s.report(mg1, on: 2)
        XCTAssertNotNil(s.listener(mg1, on: 2))
        XCTAssertEqual(s.data(to: mg1, on: 0), [2])
    }

    /// A link going down forgets what was learned of MLD on its port.
    func testLinkDownForgetsListenersAndRouterPorts() {
        let s = EngineHarness(accessPorts: 3)
        s.mldQuery(on: 2, from: router6)
        s.report(mg1, on: 1)
        XCTAssertEqual(s.data(to: mg1, on: 0), [1, 2])
        s.engine.setLink(PortID(2), up: false, at: s.now)
        s.engine.setLink(PortID(1), up: false, at: s.now)
        XCTAssertNil(s.listener(mg1, on: 1))
        XCTAssertTrue(s.engine.mldRouters.learnedPorts().isEmpty)
    }

    // MARK: - VLANs

    /// Per VLAN: `--vlan 20:no-mld-snooping` floods IPv6 multicast in VLAN 20, MLD included,
    /// while IGMP goes on being snooped there; VLAN 10 snoops both. MLD state is per VLAN.
    func testNoMLDSnoopingPerVLAN() {
        let s = EngineHarness([PortConfiguration(name: "a10", pvid: vlan10), PortConfiguration(name: "b10", pvid: vlan10),
                               PortConfiguration(name: "a20", pvid: vlan20), PortConfiguration(name: "b20", pvid: vlan20),
                               PortConfiguration(name: "c20", pvid: vlan20)]) {
            $0.vlans[vlan20] = VLANSettings(mldSnooping: false)
        }
        // VLAN 20: MLD floods like data, no listener is learned.
        XCTAssertEqual(s.data(to: mg1, on: 2), [3, 4])
        XCTAssertEqual(s.report(mg1, on: 3), [2, 4], "a report floods where MLD is not snooped")
        XCTAssertNil(s.listener(mg1, on: 3, vlan: vlan20))
        XCTAssertEqual(s.data(to: mg1, on: 2), [3, 4])
        // ... and IGMP is snooped there still.
        XCTAssertEqual(s.data(to: g1, on: 2), [], "IPv4: unregistered, no router port")
        XCTAssertEqual(s.report(g1, on: 3), [])
        XCTAssertNotNil(s.member(g1, on: 3, vlan: vlan20))
        XCTAssertEqual(s.data(to: g1, on: 2), [3])
        // VLAN 10 snoops MLD.
        XCTAssertEqual(s.data(to: mg1, on: 0), [])
        s.report(mg1, on: 1)
        XCTAssertNotNil(s.listener(mg1, on: 1, vlan: vlan10))
        XCTAssertEqual(s.data(to: mg1, on: 0), [1])
    }

    /// Where MLD is not snooped, its queries still elect the MLD querier (RFC 9777 7.6.2), and
    /// make no router port.
    func testAQuerierInANonSnoopingVLANStillTakesPartInTheElection() {
        let s = EngineHarness([PortConfiguration(name: "a10", pvid: vlan10), PortConfiguration(name: "a20", pvid: vlan20),
                               PortConfiguration(name: "b20", pvid: vlan20)]) {
            $0.mldQuerier.enabled = true
            $0.vlans[vlan20] = VLANSettings(mldSnooping: false)
        }
        XCTAssertEqual(s.mldQuery(on: 2, from: router6), [1])
        XCTAssertEqual(s.engine.mldQuerier.role(in: vlan20, at: s.now), .other)
        XCTAssertEqual(s.engine.mldQuerier.role(in: vlan10, at: s.now), .us)
        XCTAssertTrue(s.engine.mldRouters.learnedPorts().isEmpty)
    }

    /// `--vlan 20:no-snooping` turns off both.
    func testNoSnoopingFloodsIPv6Too() {
        let s = EngineHarness([PortConfiguration(name: "a20", pvid: vlan20), PortConfiguration(name: "b20", pvid: vlan20),
                               PortConfiguration(name: "c20", pvid: vlan20)]) {
            $0.vlans[vlan20] = VLANSettings(snooping: false)
        }
        XCTAssertEqual(s.data(to: mg1, on: 0), [1, 2])
        s.report(mg1, on: 1)
        XCTAssertNil(s.listener(mg1, on: 1, vlan: vlan20))
        XCTAssertEqual(s.data(to: g1, on: 0), [1, 2])
    }

    /// Tagged frames: an MLD report in VLAN 10 over a trunk is VLAN 10's.
    func testListenersArePerVLANOnATrunk() {
        let s = EngineHarness([PortConfiguration(name: "a10", pvid: vlan10), PortConfiguration(name: "a20", pvid: vlan20),
                               PortConfiguration(name: "trunk", pvid: nil, tagged: [vlan10, vlan20])])
        s.report(mg1, on: 2, tag: VLANTag(vlan: vlan10, priority: 0))
        XCTAssertNotNil(s.listener(mg1, on: 2, vlan: vlan10))
        XCTAssertNil(s.listener(mg1, on: 2, vlan: vlan20))
        XCTAssertEqual(s.data(to: mg1, on: 0), [2])
        XCTAssertEqual(s.data(to: mg1, on: 1), [])
    }

    // MARK: - IGMP and MLD apart

    /// The two protocols keep their own state: an IGMP leave does not touch an MLD listener, a
    /// Done not an IGMP member; an IGMP query makes no MLD router port, an MLD query no IGMP one.
    func testIGMPAndMLDStateStayApart() {
        let s = EngineHarness([PortConfiguration(name: "p0"), PortConfiguration(name: "p1", fastLeave: true),
                               PortConfiguration(name: "p2"), PortConfiguration(name: "p3")])
        s.report(g1, on: 1)                                  // IGMPv2 239.1.1.1
        s.report(mg1, on: 1, version: .v1)                   // MLDv1 ff15::4242
        XCTAssertEqual(s.engine.groupCount, 2)
        s.leave(g1, on: 1)
        XCTAssertNil(s.member(g1, on: 1))
        XCTAssertNotNil(s.listener(mg1, on: 1), "an IGMP leave leaves the MLD listener")
        XCTAssertEqual(s.data(to: mg1, on: 0), [1])
        s.report(g1, on: 1)
        s.done(mg1, on: 1)
        XCTAssertNil(s.listener(mg1, on: 1))
        XCTAssertNotNil(s.member(g1, on: 1), "a Done leaves the IGMP member")
        XCTAssertEqual(s.data(to: g1, on: 0), [1])

        s.query(on: 2, from: IPv4Address(192, 0, 2, 1))
        s.mldQuery(on: 3, from: router6)
        XCTAssertEqual(s.engine.routers.learnedPorts().map(\.port), [PortID(2)])
        XCTAssertEqual(s.engine.mldRouters.learnedPorts().map(\.port), [PortID(3)])
        XCTAssertEqual(s.data(to: g2, on: 0), [2])
        XCTAssertEqual(s.data(to: mg2, on: 0), [3])
        s.engine.flushMemberships()
        XCTAssertEqual(s.engine.groupCount, 0)
    }

    /// Static memberships (`mdb add PORT GROUP`) take IPv6 groups.
    func testStaticIPv6Membership() {
        let s = EngineHarness(accessPorts: 3)
        s.engine.addStaticMembership(PortID(2), to: MulticastGroupAddress("ff15::4242")!, in: .default)
        XCTAssertEqual(s.data(to: mg1, on: 0), [2])
        s.done(mg1, on: 2)
        s.at(1000)
        XCTAssertEqual(s.data(to: mg1, on: 0), [2], "a static membership stays")
        XCTAssertNil(MulticastGroupAddress("ff02::1"), "all nodes is never a group of the table")
        XCTAssertTrue(s.engine.removeStaticMembership(PortID(2), from: mg1, in: .default))
        XCTAssertEqual(s.data(to: mg1, on: 0), [])
    }
}

/// The frames of Linux hosts and a Linux bridge querier (MLDCapturedFrames.swift), through the
/// switch: the host 02:00:00:00:00:02 behind port 1, the bridge 02:00:00:00:00:01 behind port 0,
/// a static router port 3.
final class MLDCapturedFrameTests: XCTestCase {
    private let group4242 = IPv6Address("ff15::4242")!, group4243 = IPv6Address("ff15::4243")!
    private let group4244 = IPv6Address("ff15::4244")!, group4245 = IPv6Address("ff15::4245")!
    private let ssm4242 = IPv6Address("ff35::4242")!, ssm4244 = IPv6Address("ff35::4244")!
    private let source99 = IPv6Address("2001:db8::99")!, source98 = IPv6Address("2001:db8::98")!
    private let bridge = IPv6Address("fe80::ff:fe00:1")!

    private func lab(_ configure: (inout SwitchConfiguration) -> Void = { _ in }) -> EngineHarness {
        EngineHarness([PortConfiguration(name: "bridge"), PortConfiguration(name: "host"), PortConfiguration(name: "p2"),
                       PortConfiguration(name: "router", isStaticRouterPort: true)], configure)
    }

    func testTheCapturedHostIsPortOnesHost() {
        XCTAssertEqual(EngineHarness.hostLL(1), IPv6Address("fe80::ff:fe00:2")!)
        XCTAssertEqual(EngineHarness.hostLL(0), bridge)
    }

    /// IPV6_JOIN_GROUP sends TO_EX({}), closing the socket TO_IN({}): with no querier on the
    /// link, the listener goes after our LLQT.
    func testAHostJoinsAndLeaves() {
        let s = lab()
        XCTAssertEqual(s.ports(s.send(capturedMLDv2Join, on: 1)), [3])
        XCTAssertEqual(s.listener(group4242, on: 1)?.mode, .exclude)
        XCTAssertEqual(s.data(to: group4242, on: 0), [1, 3])
        s.at(10)
        XCTAssertEqual(s.ports(s.send(capturedMLDv2Leave, on: 1)), [3])
        s.at(11.9)
        XCTAssertEqual(s.data(to: group4242, on: 0), [1, 3])
        s.at(12)
        XCTAssertNil(s.listener(group4242, on: 1))
        XCTAssertEqual(s.data(to: group4242, on: 0), [3])
        XCTAssertEqual(s.engine.counters.mldErrors.total, 0)
    }

    func testAnMLDv1HostReportsAndSaysDone() {
        let s = lab()
        XCTAssertEqual(s.ports(s.send(capturedMLDv1Report, on: 1)), [3])
        XCTAssertEqual(s.listener(group4243, on: 1)?.compatibilityMode(at: s.now), .v1)
        XCTAssertEqual(s.data(to: group4243, on: 0), [1, 3])
        s.at(10)
        XCTAssertEqual(s.ports(s.send(capturedMLDv1Done, on: 1)), [3])
        s.at(12)
        XCTAssertNil(s.listener(group4243, on: 1))
    }

    /// A host's solicited-node join makes neighbour solicitations for its address go to it (and
    /// the router ports) instead of everywhere.
    func testASolicitedNodeJoinNarrowsNeighbourSolicitations() {
        let s = lab()
        let address = IPv6Address("2001:db8::2")!
        XCTAssertEqual(s.neighbourSolicitation(for: address, on: 0), [1, 2, 3])
        s.send(capturedMLDv2SolicitedNodeJoin, on: 1)
        XCTAssertEqual(s.listener(IPv6Address("ff02::1:ff00:2")!, on: 1)?.mode, .exclude)
        XCTAssertEqual(s.neighbourSolicitation(for: address, on: 0), [1, 3])
    }

    func testEveryRecordOfTheBridgesReportIsHeard() {
        let s = lab()
        XCTAssertEqual(s.ports(s.send(capturedMLDv2TwoRecords, on: 0)), [3])
        XCTAssertNotNil(s.listener(IPv6Address("ff02::1:ff00:1")!, on: 0))
        XCTAssertNotNil(s.listener(.allSnoopers, on: 0))
    }

    /// MCAST_JOIN_SOURCE_GROUP in ff35::/16 (SSM): ALLOW({2001:db8::99}); only that source
    /// reaches the host; its BLOCK ends it after LLQT.
    func testASourceSpecificJoinAndLeave() {
        let s = lab()
        s.send(capturedMLDv2SourceJoin, on: 1)
        XCTAssertEqual(s.listener(ssm4242, on: 1)?.mode, .include)
        XCTAssertEqual(s.data(to: ssm4242, from: source99, on: 0), [1, 3])
        XCTAssertEqual(s.data(to: ssm4242, from: source98, on: 0), [3])
        s.at(10)
        s.send(capturedMLDv2SourceLeave, on: 1)
        XCTAssertEqual(s.listener(ssm4242, on: 1)?.sources, [source99: Instant.zero + .seconds(12)])
        s.at(12)
        XCTAssertNil(s.listener(ssm4242, on: 1))
        XCTAssertEqual(s.data(to: ssm4242, from: source99, on: 0), [3])
        XCTAssertEqual(s.engine.counters.mldErrors[.ssmIgnored], 0)
    }

    /// The bridge's MLDv1 general query: its port becomes an MLD router port, the bridge (below
    /// the switch's address) the querier, and our queries MLDv1 (8.3.1).
    func testTheBridgesMLDv1GeneralQuery() {
        let s = lab { $0.mldQuerier.enabled = true }
        XCTAssertEqual(s.ports(s.send(capturedMLDv1GeneralQuery, on: 0)), [1, 2, 3])
        XCTAssertEqual(s.mldRouterReason(0), .mldQuery)
        XCTAssertEqual(s.engine.counters.mldReceived[.queryV1], 1)
        XCTAssertEqual(s.engine.mldQuerier.elected(in: .default, at: s.now), bridge)
        XCTAssertEqual(s.engine.mldQuerier.version(in: .default, at: s.now), .v1)
    }

    /// 7.6.1: the bridge's address-specific queries lower the timers to its QRV (MLDv1: our
    /// count, 2) times their 1000 ms; with S set they do not.
    func testTheBridgesAddressSpecificQueriesLowerTimers() {
        let s = lab()
        s.report(group4244, on: 1)
        s.report(group4245, on: 1, version: .v1)
        s.record(.modeIsInclude, ssm4244, [source98, source99], on: 1)
        s.at(10)
        s.send(capturedMLDv2GroupQuerySFlag, on: 0)
        XCTAssertEqual(s.engine.mldQuerier.elected(in: .default, at: s.now), bridge)
        XCTAssertEqual(s.listener(group4244, on: 1)?.groupTimer, Instant.zero + .seconds(260), "S set: timers stay")
        XCTAssertEqual(s.ports(s.send(capturedMLDv2GroupQuery, on: 0)), [1, 2, 3])
        XCTAssertEqual(s.listener(group4244, on: 1)?.groupTimer, Instant.zero + .seconds(12), "QRV 2 x 1000 ms")
        s.send(capturedMLDv1GroupQuery, on: 0)
        XCTAssertEqual(s.listener(group4245, on: 1)?.groupTimer, Instant.zero + .seconds(12), "LLQC 2 x 1000 ms")
        s.send(capturedMLDv2GroupAndSourceQuery, on: 0)
        XCTAssertEqual(s.listener(ssm4244, on: 1)?.sources,
                       [source99: Instant.zero + .seconds(12), source98: Instant.zero + .seconds(260)])
        s.at(12)
        XCTAssertNil(s.listener(group4244, on: 1))
        XCTAssertNil(s.listener(group4245, on: 1))
        XCTAssertEqual(s.listener(ssm4244, on: 1)?.sources.keys.sorted(), [source98])
        XCTAssertEqual(s.engine.counters.mldErrors.total, 0)
    }
}
