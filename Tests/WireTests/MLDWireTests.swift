import XCTest
@testable import Wire

final class MLDWireTests: XCTestCase {
    private let host = IPv6Address("fe80::ff:fe00:2")!
    private let bridge = IPv6Address("fe80::ff:fe00:1")!
    private let source = IPv6Address("2001:db8::99")!

    /// Ethernet, then IPv6 and its extension headers, then MLD, each through its checked constructor.
    private func mld(_ frame: [UInt8], verifyChecksum: Bool = true) throws -> (IPv6HeaderView, IPv6UpperLayer, MLDMessage) {
        try frame.withUnsafeBytes { bytes in
            let ethernet = try EthernetFrameView(checking: bytes)
            guard ethernet.etherType == EtherType.ipv6 else { throw WireError.unknownType }
            let ip = try IPv6HeaderView(checking: ethernet.payload)
            let upper = try ip.upperLayer()
            return (ip, upper, try MLDMessage.parse(datagram: ip, verifyChecksum: verifyChecksum))
        }
    }

    /// The ICMPv6 message of a captured frame (after the 14 + 40 + 8 bytes of its headers).
    private func icmpv6(_ frame: [UInt8]) -> [UInt8] { Array(frame.dropFirst(14 + 40 + 8)) }

    private var allCaptured: [[UInt8]] {
        [capturedMLDv2SolicitedNodeJoin, capturedMLDv2Join, capturedMLDv2Leave, capturedMLDv2SourceJoin, capturedMLDv2SourceLeave,
         capturedMLDv2TwoRecords, capturedMLDv1Report, capturedMLDv1Done, capturedMLDv2GroupQuery, capturedMLDv2GroupQuerySFlag,
         capturedMLDv2GroupAndSourceQuery, capturedMLDv1GroupQuery, capturedMLDv1GeneralQuery]
    }

    // MARK: Captured from Linux

    func testCapturedV2JoinAndLeaveAreChangeToExcludeAndChangeToInclude() throws {
        let group = IPv6Address("ff15::4242")!
        let (ip, upper, join) = try mld(capturedMLDv2Join)
        XCTAssertEqual(join, .v2Report([MLDAddressRecord(type: .changeToExclude, group: group)]))
        XCTAssertEqual(ip.version, 6)
        XCTAssertEqual(ip.source, host)
        XCTAssertEqual(ip.destination, .mldv2Routers)
        XCTAssertEqual(ip.hopLimit, 1)
        XCTAssertEqual(ip.nextHeader, IPv6HeaderView.NextHeader.hopByHop)
        XCTAssertEqual(ip.payloadLength, 8 + 28)
        XCTAssertEqual(upper.protocol, IPv6HeaderView.NextHeader.icmpv6)
        XCTAssertTrue(upper.hasMLDRouterAlert)
        XCTAssertFalse(upper.isFragment)
        XCTAssertEqual(try mld(capturedMLDv2Leave).2, .v2Report([MLDAddressRecord(type: .changeToInclude, group: group)]))
        capturedMLDv2Join.withUnsafeBytes { bytes in
            let ethernet = try! EthernetFrameView(checking: bytes)
            XCTAssertEqual(ethernet.destination, MACAddress("33:33:00:00:00:16"))
            XCTAssertEqual(ethernet.destination, MACAddress.ipv6Multicast(.mldv2Routers))
            XCTAssertEqual(ethernet.source, MACAddress("02:00:00:00:00:02"))
        }
    }

    func testCapturedSolicitedNodeJoinIsTheGroupOfTheHostsAddress() throws {
        let (_, _, message) = try mld(capturedMLDv2SolicitedNodeJoin)
        let group = IPv6Address("ff02::1:ff00:2")!
        XCTAssertEqual(message, .v2Report([MLDAddressRecord(type: .changeToExclude, group: group)]))
        XCTAssertTrue(group.isSolicitedNode)
        XCTAssertEqual(IPv6Address("2001:db8::2")!.solicitedNodeGroup, group)
        XCTAssertEqual(host.solicitedNodeGroup, group)
        XCTAssertEqual(group.multicastScope, .linkLocal)
    }

    func testCapturedSourceSpecificReportsAllowAndBlock() throws {
        let group = IPv6Address("ff35::4242")!
        XCTAssertEqual(try mld(capturedMLDv2SourceJoin).2,
                       .v2Report([MLDAddressRecord(type: .allowNewSources, group: group, sources: [source])]))
        XCTAssertEqual(try mld(capturedMLDv2SourceLeave).2,
                       .v2Report([MLDAddressRecord(type: .blockOldSources, group: group, sources: [source])]))
    }

    func testCapturedReportWithTwoRecords() throws {
        let (ip, _, message) = try mld(capturedMLDv2TwoRecords)
        XCTAssertEqual(ip.source, bridge)
        XCTAssertEqual(message, .v2Report([
            MLDAddressRecord(type: .changeToExclude, group: IPv6Address("ff02::1:ff00:1")!),
            MLDAddressRecord(type: .changeToExclude, group: .allSnoopers),
        ]))
    }

    func testCapturedV1ReportGoesToTheGroupAndDoneToAllRouters() throws {
        let group = IPv6Address("ff15::4243")!
        let (reportIP, upper, report) = try mld(capturedMLDv1Report)
        XCTAssertEqual(report, .report(group: group))
        XCTAssertEqual(reportIP.destination, group)
        XCTAssertTrue(upper.hasMLDRouterAlert)
        let (doneIP, _, done) = try mld(capturedMLDv1Done)
        XCTAssertEqual(done, .done(group: group))
        XCTAssertEqual(doneIP.destination, .allRouters)
        capturedMLDv1Report.withUnsafeBytes { bytes in
            XCTAssertEqual(try! EthernetFrameView(checking: bytes).destination, MACAddress("33:33:00:00:42:43"))
        }
    }

    func testCapturedV2QueriesFromALinuxBridge() throws {
        let group = IPv6Address("ff15::4244")!
        let (ip, upper, message) = try mld(capturedMLDv2GroupQuery)
        XCTAssertEqual(ip.source, bridge)
        XCTAssertEqual(ip.destination, group)
        XCTAssertTrue(upper.hasMLDRouterAlert)              // with Pad1 Pad1 after it, not PadN
        let expected = MLDQuery(version: .v2, group: group, maxResponseMilliseconds: 1000, robustness: 2,
                                queryIntervalSeconds: 125)
        XCTAssertEqual(message, .query(expected))
        guard case .query(let query) = message else { return XCTFail("not a query") }
        XCTAssertFalse(query.isGeneral)
        XCTAssertFalse(query.isGroupAndSourceSpecific)
        XCTAssertEqual(query.destination, group)
        var withS = expected
        withS.suppressRouterProcessing = true
        XCTAssertEqual(try mld(capturedMLDv2GroupQuerySFlag).2, .query(withS))

        let sourceGroup = IPv6Address("ff35::4244")!
        let gss = MLDQuery(version: .v2, group: sourceGroup, maxResponseMilliseconds: 1000, robustness: 2,
                           queryIntervalSeconds: 125, sources: [source])
        XCTAssertEqual(try mld(capturedMLDv2GroupAndSourceQuery).2, .query(gss))
        XCTAssertTrue(gss.isGroupAndSourceSpecific)
    }

    func testCapturedV1Queries() throws {
        let (ip, _, general) = try mld(capturedMLDv1GeneralQuery)
        XCTAssertEqual(general, .query(MLDQuery(version: .v1, maxResponseMilliseconds: 10000)))
        XCTAssertEqual(ip.destination, .allNodes)
        guard case .query(let query) = general else { return XCTFail("not a query") }
        XCTAssertTrue(query.isGeneral)
        XCTAssertEqual(query.destination, .allNodes)
        // RFC 2710 3.6 has group-specific queries go to the group; the Linux bridge sends them to ff02::1.
        let (groupIP, _, specific) = try mld(capturedMLDv1GroupQuery)
        XCTAssertEqual(specific, .query(MLDQuery(version: .v1, group: IPv6Address("ff15::4245")!, maxResponseMilliseconds: 1000)))
        XCTAssertEqual(groupIP.destination, .allNodes)
        XCTAssertTrue(general.announcesARouter)
    }

    /// The meaning emitted again gives the captured ICMPv6 bytes exactly, checksum included.
    func testEmitReproducesEveryCapturedMessage() throws {
        for frame in allCaptured {
            let (ip, _, message) = try mld(frame)
            XCTAssertEqual(message.emit(source: ip.source, destination: ip.destination), icmpv6(frame), "\(message)")
        }
    }

    func testEveryTruncationOfEveryCapturedFrameIsRefused() {
        for frame in allCaptured {
            for length in 0..<frame.count {
                XCTAssertThrowsError(try mld(Array(frame.prefix(length))), "accepted a frame cut at \(length) bytes")
            }
        }
    }

    func testTruncatedMessagesAreRefusedEvenWithoutTheChecksum() {
        // A v2 report of one record, cut anywhere: too short for its header, or for its record.
        let report = icmpv6(capturedMLDv2SourceJoin)
        for length in 0..<report.count {
            XCTAssertThrowsError(try parse(Array(report.prefix(length)), verifyChecksum: false), "cut at \(length)") {
                XCTAssertEqual($0 as? WireError, length < 8 ? .truncated : .badLength)
            }
        }
        // A v2 query: below 24 bytes truncated; 24 is an MLDv1 query; 25 to 27 neither (RFC 9777 8.1);
        // from 28 its source does not fit.
        let query = icmpv6(capturedMLDv2GroupAndSourceQuery)
        for length in 0..<query.count where length != MLDMessageView.v1Length {
            XCTAssertThrowsError(try parse(Array(query.prefix(length)), verifyChecksum: false), "cut at \(length)") {
                XCTAssertEqual($0 as? WireError, length < 24 ? .truncated : .badLength)
            }
        }
        // Done and MLDv1 reports need their address.
        XCTAssertThrowsError(try parse(Array(icmpv6(capturedMLDv1Done).prefix(23)), verifyChecksum: false)) {
            XCTAssertEqual($0 as? WireError, .truncated)
        }
    }

    private func parse(_ bytes: [UInt8], verifyChecksum: Bool = true,
                       source: IPv6Address = IPv6Address("fe80::1")!, destination: IPv6Address = .allNodes) throws -> MLDMessage {
        try bytes.withUnsafeBytes {
            try MLDMessage.parse($0, source: source, destination: destination, verifyChecksum: verifyChecksum)
        }
    }

    func testTheChecksumCoversThePseudoHeader() {
        var frame = capturedMLDv1Report
        frame[frame.count - 1] ^= 0x01                                   // the group: ICMPv6 checksum
        XCTAssertThrowsError(try mld(frame)) { XCTAssertEqual($0 as? WireError, .badChecksum) }
        XCTAssertNoThrow(try mld(frame, verifyChecksum: false))
        frame = capturedMLDv1Report
        frame[14 + 8 + 15] ^= 0x01                                       // the IPv6 source: pseudo-header
        XCTAssertThrowsError(try mld(frame)) { XCTAssertEqual($0 as? WireError, .badChecksum) }
        frame = capturedMLDv1Report
        frame[14 + 4 + 1] += 1                                            // payload length: truncated
        XCTAssertThrowsError(try mld(frame)) { XCTAssertEqual($0 as? WireError, .truncated) }

        // Computed over the captured report with its checksum zeroed: the captured checksum.
        var message = icmpv6(capturedMLDv1Report)
        XCTAssertEqual(message[2], 0xfc)
        XCTAssertEqual(message[3], 0x77)
        message[2] = 0
        message[3] = 0
        let checksum = message.withUnsafeBytes {
            InternetChecksum.compute($0, source: host, destination: IPv6Address("ff15::4243")!,
                                     nextHeader: IPv6HeaderView.NextHeader.icmpv6)
        }
        XCTAssertEqual(checksum, 0xfc77)
    }

    // MARK: Extension headers

    /// An IPv6 datagram from `host` to ff02::16 whose payload is `extensions` and then a v2 join.
    private func datagram(firstHeader: UInt8, extensions: [UInt8]) -> [UInt8] {
        let join = icmpv6(capturedMLDv2Join)
        var header = Array(capturedMLDv2Join[14..<54])
        header[4] = UInt8((extensions.count + join.count) >> 8)
        header[5] = UInt8(truncatingIfNeeded: extensions.count + join.count)
        header[6] = firstHeader
        return header + extensions + join
    }

    private func walk(_ bytes: [UInt8]) throws -> (IPv6UpperLayer, MLDMessage) {
        try bytes.withUnsafeBytes { b in
            let ip = try IPv6HeaderView(checking: b)
            return (try ip.upperLayer(), try MLDMessage.parse(datagram: ip))
        }
    }

    func testTheWalkCrossesDestinationOptionsAndFindsTheRouterAlertOnlyInHopByHop() throws {
        let hopByHop: [UInt8] = [60, 0, 5, 2, 0, 0, 1, 0]           // router alert MLD, PadN
        let destination: [UInt8] = [58, 1, 1, 12] + [UInt8](repeating: 0, count: 12)   // 16 bytes of PadN
        let (upper, message) = try walk(datagram(firstHeader: 0, extensions: hopByHop + destination))
        XCTAssertTrue(upper.hasMLDRouterAlert)
        XCTAssertEqual(message, .v2Report([MLDAddressRecord(type: .changeToExclude, group: IPv6Address("ff15::4242")!)]))
        // No hop-by-hop: no router alert, even in destination options.
        let alertInDestination: [UInt8] = [58, 0, 5, 2, 0, 0, 1, 0]
        let (plain, _) = try walk(datagram(firstHeader: 60, extensions: alertInDestination))
        XCTAssertNil(plain.routerAlert)
        XCTAssertFalse(plain.hasMLDRouterAlert)
        // Another router alert value (RFC 2711: 1 is RSVP) is not MLD's.
        let (rsvp, _) = try walk(datagram(firstHeader: 0, extensions: [58, 0, 5, 2, 0, 1, 1, 0]))
        XCTAssertEqual(rsvp.routerAlert, 1)
        XCTAssertFalse(rsvp.hasMLDRouterAlert)
    }

    func testMalformedExtensionHeadersAreRefused() {
        func refused(_ first: UInt8, _ extensions: [UInt8], _ why: String) {
            XCTAssertThrowsError(try walk(datagram(firstHeader: first, extensions: extensions)), why) {
                XCTAssertEqual($0 as? WireError, .badLength, why)
            }
        }
        refused(0, [58, 0, 5, 3, 0, 0, 0, 0], "router alert of length 3")
        refused(0, [58, 0, 1, 7, 0, 0, 0, 0], "PadN past the header")
        refused(0, [58, 0, 0, 0, 0, 0, 0, 5], "an option type without its length")
        refused(60, [0, 0, 1, 4, 0, 0, 0, 0], "hop-by-hop after another header")
        // A header length past the datagram: the next header claims 255 * 8 more bytes.
        var header = Array(capturedMLDv2Join[14..<54])
        header[5] = 2
        header[6] = 0
        let cut = header + [58, 0xff]
        XCTAssertThrowsError(try walk(cut)) { XCTAssertEqual($0 as? WireError, .badLength) }
    }

    func testOtherUpperLayersAndLaterFragmentsAreNotMLD() throws {
        // UDP after hop-by-hop: the walk stops there; MLD refuses it.
        let udp = datagram(firstHeader: 0, extensions: [17, 0, 5, 2, 0, 0, 1, 0])
        XCTAssertEqual(try udp.withUnsafeBytes { try IPv6HeaderView(checking: $0).upperLayer().protocol }, 17)
        XCTAssertThrowsError(try walk(udp)) { XCTAssertEqual($0 as? WireError, .unknownType) }
        // A fragment header with offset 8: the middle of a datagram.
        let later = datagram(firstHeader: 44, extensions: [58, 0, 0, 8, 0, 0, 0, 1])
        let upper = try later.withUnsafeBytes { try IPv6HeaderView(checking: $0).upperLayer() }
        XCTAssertTrue(upper.isFragment)
        XCTAssertFalse(upper.isFirstFragment)
        XCTAssertThrowsError(try walk(later)) { XCTAssertEqual($0 as? WireError, .unknownType) }
        // Neighbour solicitation (135) is ICMPv6 but not MLD.
        var solicitation = icmpv6(capturedMLDv1Report)
        solicitation[0] = 135
        XCTAssertThrowsError(try parse(solicitation, verifyChecksum: false)) { XCTAssertEqual($0 as? WireError, .unknownType) }
        // IPv4 (an IGMPv3 report, 40 bytes of IP) is not IPv6.
        XCTAssertThrowsError(try capturedV3Join.dropFirst(14).withUnsafeBytes { try IPv6HeaderView(checking: $0) }) {
            XCTAssertEqual($0 as? WireError, .badVersion)
        }
    }

    // MARK: Codes, builders, round trips

    func testMaxResponseCodesRoundTripAllCodes() {
        // RFC 9777 5.1.3: below 32768 literal, above (mant | 0x1000) << (exp + 3).
        XCTAssertEqual(MLDTimeCode.decode(0x7fff), 32767)
        XCTAssertEqual(MLDTimeCode.decode(0x8000), 32768)
        XCTAssertEqual(MLDTimeCode.decode(0xffff), 8_387_584)
        for code in 0...0xffff {
            let value = MLDTimeCode.decode(UInt16(code))
            XCTAssertEqual(MLDTimeCode.encode(value), UInt16(code), "code \(code)")
        }
        XCTAssertEqual(MLDTimeCode.encode(100_000_000), 0xffff)
        XCTAssertEqual(MLDTimeCode.encode(-1), 0)
    }

    func testV2QueriesRoundTripWithEveryCodeSFlagAndSources() throws {
        for code in stride(from: 0, through: 0xffff, by: 1) {
            let query = MLDQuery(version: .v2, maxResponseMilliseconds: MLDTimeCode.decode(UInt16(code)), robustness: 2,
                                 queryIntervalSeconds: 125)
            let bytes = MLDMessage.query(query).emit(source: bridge, destination: .allNodes)
            XCTAssertEqual(UInt16(bytes[4]) << 8 | UInt16(bytes[5]), UInt16(code))
            if code % 4099 == 0 {   // a sample through the parser (all of them take long in debug builds)
                XCTAssertEqual(try parse(bytes, source: bridge, destination: .allNodes), .query(query))
            }
        }
        for qqic in 0...255 {
            let query = MLDQuery(version: .v2, group: IPv6Address("ff35::1")!, maxResponseMilliseconds: 10000,
                                 suppressRouterProcessing: qqic % 2 == 0, robustness: qqic % 8,
                                 queryIntervalSeconds: IGMPTimeCode.decode(UInt8(qqic)),
                                 sources: Array([source, host, bridge].prefix(qqic % 4)))
            let bytes = MLDMessage.query(query).emit(source: bridge, destination: query.destination)
            XCTAssertEqual(bytes[25], UInt8(qqic))
            XCTAssertEqual(try parse(bytes, source: bridge, destination: query.destination), .query(query))
        }
    }

    func testBuiltQueryFramesCarryRouterAlertHopLimitOneAndALinkLocalSource() throws {
        let mac = MACAddress("02:53:4e:4f:4f:50")!
        let querier = IPv6Address.linkLocal(eui64From: mac)
        XCTAssertEqual(querier, IPv6Address("fe80::53:4eff:fe4f:4f50"))
        XCTAssertTrue(querier.isLinkLocalUnicast)
        let group = IPv6Address("ff15::4242")!
        let queries = [
            MLDQuery(version: .v2, maxResponseMilliseconds: 10000, robustness: 2, queryIntervalSeconds: 125),
            MLDQuery(version: .v2, group: group, maxResponseMilliseconds: 1000, robustness: 2, queryIntervalSeconds: 125),
            MLDQuery(version: .v2, group: group, maxResponseMilliseconds: 1000, robustness: 2, queryIntervalSeconds: 125,
                     sources: [source]),
            MLDQuery(version: .v1, maxResponseMilliseconds: 10000),
            MLDQuery(version: .v1, group: group, maxResponseMilliseconds: 1000),
        ]
        for query in queries {
            let frame = MLDFrameBuilder.query(query, from: mac, source: querier)
            let (ip, upper, message) = try mld(frame)
            XCTAssertEqual(message, .query(query))
            XCTAssertEqual(ip.hopLimit, 1)
            XCTAssertTrue(upper.hasMLDRouterAlert)
            XCTAssertEqual(ip.source, querier)
            XCTAssertEqual(ip.destination, query.isGeneral ? .allNodes : group)
            XCTAssertEqual(ip.trafficClass, 0)
            XCTAssertEqual(ip.flowLabel, 0)
            XCTAssertEqual(frame.count, 14 + 40 + 8 + (query.version == .v1 ? 24 : 28 + 16 * query.sources.count))
            XCTAssertEqual(Array(frame.prefix(14)),
                           MACAddress.ipv6Multicast(ip.destination).octets + mac.octets + [0x86, 0xdd])
        }
        // The general MLDv2 query, byte for byte.
        let general = MLDFrameBuilder.query(queries[0], from: mac, source: querier)
        XCTAssertEqual(general, hex("""
            3333 0000 0001 0253 4e4f 4f50 86dd 6000
            0000 0024 0001 fe80 0000 0000 0000 0053
            4eff fe4f 4f50 ff02 0000 0000 0000 0000
            0000 0000 0001 3a00 0502 0000 0100 8200
            b9a4 2710 0000 0000 0000 0000 0000 0000
            0000 0000 0000 027d 0000
            """))
        // (b9a4: the checksum over the pseudo-header, computed apart in Python.)
        // The MLDv1 general query equals the captured one but for source, MAC and padding.
        let v1 = MLDMessage.query(queries[3]).emit(source: bridge, destination: .allNodes)
        XCTAssertEqual(v1, icmpv6(capturedMLDv1GeneralQuery))
    }

    func testBuiltReportsRoundTripAndUnknownRecordTypesAreSkipped() throws {
        let records = MLDAddressRecord.RecordType.allCases.map {
            MLDAddressRecord(type: $0, group: IPv6Address(0xff15, 0, 0, 0, 0, 0, 0, UInt16($0.rawValue)), sources: [source])
        }
        let frame = MLDFrameBuilder.frame(.v2Report(records), from: MACAddress("02:00:00:00:00:02")!,
                                          source: host, destination: .mldv2Routers)
        XCTAssertEqual(try mld(frame).2, .v2Report(records))
        var bytes = icmpv6(frame)
        bytes[8] = 99   // the first record's type: unknown, ignored (RFC 9777 5.2.12)
        XCTAssertEqual(try parse(bytes, verifyChecksum: false), .v2Report(Array(records.dropFirst())))
        bytes[9] = 1    // ... with aux data of one word: the records that follow are misread, or run out
        XCTAssertThrowsError(try parse(bytes, verifyChecksum: false))
        bytes = icmpv6(frame)
        bytes[7] = 200  // more records than the message holds: a length error, not a read past the end
        XCTAssertThrowsError(try parse(bytes, verifyChecksum: false)) { XCTAssertEqual($0 as? WireError, .badLength) }
        // A report from :: (RFC 3590) checksums over the unspecified source.
        let anonymous = MLDFrameBuilder.frame(.v2Report(records), from: MACAddress("02:00:00:00:00:02")!,
                                              source: .any, destination: .mldv2Routers)
        XCTAssertEqual(try mld(anonymous).0.source, .any)
    }

    func testRouterDiscoveryMessagesRoundTrip() throws {
        // RFC 4286: advertisements to ff02::6a; solicitations to ff02::2 and terminations 4 bytes.
        let messages: [MLDMessage] = [
            .mrdAdvertisement(intervalSeconds: 20, queryIntervalSeconds: 125, robustness: 2),
            .mrdSolicitation, .mrdTermination,
        ]
        for message in messages {
            let bytes = message.emit(source: bridge, destination: .allSnoopers)
            XCTAssertEqual(bytes.count, message == messages[0] ? 8 : 4)
            XCTAssertEqual(try parse(bytes, source: bridge, destination: .allSnoopers), message)
            XCTAssertThrowsError(try parse(Array(bytes.prefix(3)), verifyChecksum: false)) {
                XCTAssertEqual($0 as? WireError, .truncated)
            }
        }
        XCTAssertTrue(messages[0].announcesARouter)
        XCTAssertFalse(messages[1].announcesARouter)
        XCTAssertTrue(messages[2].announcesARouter)
        XCTAssertThrowsError(try parse(Array(messages[0].emit(source: bridge, destination: .allSnoopers).prefix(7)),
                                       verifyChecksum: false)) { XCTAssertEqual($0 as? WireError, .truncated) }
    }

    func testTheViewReadsFieldsInPlace() throws {
        let bytes = icmpv6(capturedMLDv2GroupAndSourceQuery)
        try bytes.withUnsafeBytes { b in
            let view = try MLDMessageView(checking: b, source: bridge, destination: IPv6Address("ff35::4244")!)
            XCTAssertEqual(view.type, MLDMessage.MessageType.query)
            XCTAssertEqual(view.code, 0)
            XCTAssertEqual(view.checksum, 0xc86a)
            XCTAssertEqual(view.maximumResponseCode, 1000)
            XCTAssertTrue(view.isV2Query)
            XCTAssertEqual(view.querierRobustness, 2)
            XCTAssertEqual(view.querierQueryIntervalCode, 125)
            XCTAssertEqual(view.querySources, [source])
            XCTAssertEqual(view.multicastAddress, IPv6Address("ff35::4244"))
        }
        let solicitation = MLDMessage.mrdSolicitation.emit(source: host, destination: .allRouters)
        try solicitation.withUnsafeBytes { b in
            let view = try MLDMessageView(checking: b, source: host, destination: .allRouters)
            XCTAssertNil(view.multicastAddress)          // a 4-byte message has none, and reading it cannot trap
            XCTAssertNil(view.maximumResponseCode)
            XCTAssertEqual(view.recordCount, 0)
            XCTAssertEqual(view.querySources, [])
        }
    }

    // MARK: Addresses

    func testIPv6TextFollowsRFC5952() {
        let cases: [(String, String)] = [
            ("ff02::1", "ff02::1"), ("2001:db8::1", "2001:db8::1"), ("fe80::ff:fe00:2", "fe80::ff:fe00:2"),
            ("::", "::"), ("::1", "::1"), ("1::", "1::"),
            ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),          // 4.1, 4.2.1, 4.3
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),                       // 4.2.3: the first of equal runs
            ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),                    // 4.2.2: never one group
            ("2001:db8:0:0:0:1:0:0", "2001:db8::1:0:0"),                         // 4.2.3: the longest run
            ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),
            ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),                            // 5: IPv4-mapped
            ("::ffff:c000:201", "::ffff:192.0.2.1"),
            ("64:ff9b::192.0.2.33", "64:ff9b::c000:221"),
            ("ff02::1:ff00:2", "ff02::1:ff00:2"), ("ff15::4242", "ff15::4242"),
        ]
        for (text, canonical) in cases {
            XCTAssertEqual(IPv6Address(text)?.description, canonical, text)
            XCTAssertEqual(IPv6Address(canonical), IPv6Address(text), text)
        }
        for bad in ["", ":", ":::", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "g::1", ":1::",
                    "1::2:", "1.2.3.4::", "::1.2.3", "::256.0.0.1", "fe80::1%eth0", "1:2:3:4:5:6:7:8::", " ::1", "::+1"] {
            XCTAssertNil(IPv6Address(bad), bad)
        }
    }

    func testIPv6AddressKindsScopesAndMACs() {
        XCTAssertEqual(IPv6Address.allNodes, IPv6Address("ff02::1"))
        XCTAssertEqual(IPv6Address.allRouters, IPv6Address("ff02::2"))
        XCTAssertEqual(IPv6Address.mldv2Routers, IPv6Address("ff02::16"))
        XCTAssertEqual(IPv6Address.allPIMRouters, IPv6Address("ff02::d"))
        XCTAssertEqual(IPv6Address.allSnoopers, IPv6Address("ff02::6a"))
        XCTAssertEqual(IPv6Address("ff02::1")?.multicastScope, .linkLocal)
        XCTAssertEqual(IPv6Address("ff01::1")?.multicastScope, .interfaceLocal)
        XCTAssertEqual(IPv6Address("ff05::1:3")?.multicastScope, .siteLocal)
        XCTAssertEqual(IPv6Address("ff15::4242")?.multicastScope, .siteLocal)    // flags 1 (transient)
        XCTAssertEqual(IPv6Address("ff3e::8000:1")?.multicastScope, .global)
        XCTAssertEqual(IPv6Address("ff08::1")?.multicastScope, .organizationLocal)
        XCTAssertNil(IPv6Address("2001:db8::1")?.multicastScope)
        XCTAssertLessThan(IPv6MulticastScope.linkLocal, .global)
        XCTAssertEqual(IPv6MulticastScope(rawValue: 7).description, "scope 7")
        XCTAssertFalse(IPv6Address("2001:db8::1")!.isMulticast)
        XCTAssertTrue(IPv6Address.any.isUnspecified)
        XCTAssertTrue(IPv6Address("febf::1")!.isLinkLocalUnicast)
        XCTAssertFalse(IPv6Address("fec0::1")!.isLinkLocalUnicast)
        XCTAssertTrue(IPv6Address("ff02::1:ffab:cdef")!.isSolicitedNode)
        XCTAssertFalse(IPv6Address("ff02::1:fe00:2")!.isSolicitedNode)
        XCTAssertFalse(IPv6Address("ff02::2:ff00:2")!.isSolicitedNode)
        XCTAssertFalse(IPv6Address("ff05::1:ff00:2")!.isSolicitedNode)
        XCTAssertLessThan(IPv6Address("fe80::ff:fe00:1")!, IPv6Address("fe80::ff:fe00:2")!)
        XCTAssertLessThan(IPv6Address("fe80::ffff:ffff:ffff:ffff")!, IPv6Address("fe81::")!)
        XCTAssertLessThan(IPv6Address.any, IPv6Address("::1")!)
        // RFC 2464 7: 33:33 and the last 32 bits.
        XCTAssertEqual(MACAddress.ipv6Multicast(.allNodes), MACAddress("33:33:00:00:00:01"))
        XCTAssertEqual(MACAddress.ipv6Multicast(IPv6Address("ff02::1:ff00:2")!), MACAddress("33:33:ff:00:00:02"))
        XCTAssertEqual(MACAddress.ipv6Multicast(IPv6Address("ff15::dead:beef")!), MACAddress("33:33:de:ad:be:ef"))
        XCTAssertEqual(IPv6Address.linkLocal(eui64From: MACAddress("02:00:00:00:00:02")!), host)   // as Linux derived it
        let address = IPv6Address("2001:db8:1:2:3:4:5:6")!
        var bytes = [UInt8](repeating: 0xa5, count: 18)
        bytes.withUnsafeMutableBytes { address.write(to: $0, at: 1) }
        XCTAssertEqual(bytes, [0xa5] + hex("20010db8000100020003000400050006") + [0xa5])
        XCTAssertEqual(bytes.withUnsafeBytes { IPv6Address($0, at: 1) }, address)
        XCTAssertEqual(address.octets, Array(bytes[1..<17]))
        XCTAssertEqual(address.words, [0x2001, 0xdb8, 1, 2, 3, 4, 5, 6])
    }
}
