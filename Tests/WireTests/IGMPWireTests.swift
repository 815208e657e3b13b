import XCTest
@testable import Wire

final class IGMPWireTests: XCTestCase {
    /// Ethernet, then IPv4, then IGMP, each through its checked constructor.
    private func igmp(_ frame: [UInt8]) throws -> (IPv4HeaderView, IGMPMessage) {
        try frame.withUnsafeBytes { bytes in
            let ethernet = try EthernetFrameView(checking: bytes)
            XCTAssertEqual(ethernet.etherType, EtherType.ipv4)
            let ip = try IPv4HeaderView(checking: ethernet.payload)
            return (ip, try IGMPMessage.parse(ip.payload))
        }
    }

    func testCapturedV2ReportIsAJoinWithRouterAlertAndTTL1() throws {
        let (ip, message) = try igmp(capturedV2Report)
        XCTAssertEqual(message, .report(group: IPv4Address(239, 1, 2, 3), version: .v2))
        XCTAssertEqual(ip.source, IPv4Address(192, 0, 2, 2))
        XCTAssertEqual(ip.destination, IPv4Address(239, 1, 2, 3))
        XCTAssertEqual(ip.timeToLive, 1)
        XCTAssertTrue(ip.hasRouterAlert)
        capturedV2Report.withUnsafeBytes { bytes in
            let ethernet = try! EthernetFrameView(checking: bytes)
            XCTAssertEqual(ethernet.destination, MACAddress.ipv4Multicast(IPv4Address(239, 1, 2, 3)))
            XCTAssertEqual(ethernet.source, MACAddress("02:00:00:00:00:02"))
        }
    }

    func testCapturedV2LeaveGoesToAllRouters() throws {
        let (ip, message) = try igmp(capturedV2Leave)
        XCTAssertEqual(message, .leave(group: IPv4Address(239, 1, 2, 3)))
        XCTAssertEqual(ip.destination, .allRouters)
    }

    func testCapturedV3ReportsCarryChangeToExcludeAndChangeToInclude() throws {
        XCTAssertEqual(try igmp(capturedV3Join).1,
                       .v3Report([IGMPGroupRecord(type: .changeToExclude, group: IPv4Address(239, 4, 5, 6))]))
        XCTAssertEqual(try igmp(capturedV3Leave).1,
                       .v3Report([IGMPGroupRecord(type: .changeToInclude, group: IPv4Address(239, 4, 5, 6))]))
    }

    func testEveryTruncationOfACapturedReportIsRefused() {
        for length in 0..<capturedV3Join.count {
            let cut = Array(capturedV3Join.prefix(length))
            XCTAssertThrowsError(try igmp(cut), "accepted a frame cut at \(length) bytes")
        }
    }

    func testAFlippedBitFailsTheChecksum() {
        var frame = capturedV2Report
        frame[frame.count - 1] ^= 0x01                       // group address: IGMP checksum
        XCTAssertThrowsError(try igmp(frame)) { XCTAssertEqual($0 as? WireError, .badChecksum) }
        frame = capturedV2Report
        frame[14 + 8] = 2                                     // TTL: IP header checksum
        XCTAssertThrowsError(try igmp(frame)) { XCTAssertEqual($0 as? WireError, .badChecksum) }
    }

    func testQueryVersionFollowsLengthAndMaxResponseCode() throws {
        // RFC 3376 7.1: 8 bytes with code 0 is v1, 8 bytes with a code is v2, 12 or more is v3.
        let v1 = IGMPMessage.query(IGMPQuery(version: .v1, maxResponseDeciseconds: 100)).emit()
        XCTAssertEqual(v1, [0x11, 0, 0xee, 0xff, 0, 0, 0, 0])
        let v2 = IGMPMessage.query(IGMPQuery(version: .v2, maxResponseDeciseconds: 100)).emit()
        XCTAssertEqual(v2, [0x11, 100, 0xee, 0x9b, 0, 0, 0, 0])
        let v3 = IGMPMessage.query(IGMPQuery(version: .v3, maxResponseDeciseconds: 100, robustness: 2,
                                             queryIntervalSeconds: 125)).emit()
        XCTAssertEqual(v3, [0x11, 100, 0xec, 0x1e, 0, 0, 0, 0, 0x02, 125, 0, 0])
        for bytes in [v1, v2, v3] {
            let message = try bytes.withUnsafeBytes { try IGMPMessage.parse($0) }
            guard case .query(let query) = message else { return XCTFail("not a query") }
            XCTAssertEqual(query.maxResponseDeciseconds, 100)
        }
        XCTAssertThrowsError(try [UInt8](v3.prefix(10)).withUnsafeBytes { try IGMPMessage.parse($0, verifyChecksum: false) }) {
            XCTAssertEqual($0 as? WireError, .badLength)
        }
    }

    func testV3QueryRoundTripsWithSourcesAndSFlag() throws {
        let query = IGMPQuery(version: .v3, group: IPv4Address(239, 1, 1, 1), maxResponseDeciseconds: 10,
                              suppressRouterProcessing: true, robustness: 3, queryIntervalSeconds: 200,
                              sources: [IPv4Address(192, 0, 2, 9), IPv4Address(198, 51, 100, 1)])
        let bytes = IGMPMessage.query(query).emit()
        XCTAssertEqual(bytes[8], 0x08 | 3)
        XCTAssertEqual(try bytes.withUnsafeBytes { try IGMPMessage.parse($0) }, .query(query))
    }

    func testTimeCodesRoundTripAllCodes() {
        // RFC 3376 4.1.1: values below 128 are literal, above is (mant | 0x10) << (exp + 3).
        XCTAssertEqual(IGMPTimeCode.decode(0x80), 128)
        XCTAssertEqual(IGMPTimeCode.decode(0xff), 31744)
        for code in 0...255 {
            let value = IGMPTimeCode.decode(UInt8(code))
            XCTAssertEqual(IGMPTimeCode.encode(value), UInt8(code), "code \(code)")
        }
        XCTAssertEqual(IGMPTimeCode.encode(1_000_000), 0xff)
    }

    func testV3ReportRoundTripsAndSkipsUnknownRecordTypes() throws {
        let records = IGMPGroupRecord.RecordType.allCases.map {
            IGMPGroupRecord(type: $0, group: IPv4Address(239, 0, 0, $0.rawValue), sources: [IPv4Address(192, 0, 2, 1)])
        }
        var bytes = IGMPMessage.v3Report(records).emit()
        XCTAssertEqual(try bytes.withUnsafeBytes { try IGMPMessage.parse($0) }, .v3Report(records))
        bytes[8] = 99   // first record's type: unknown, ignored (RFC 3376 4.2.12)
        XCTAssertEqual(try bytes.withUnsafeBytes { try IGMPMessage.parse($0, verifyChecksum: false) },
                       .v3Report(Array(records.dropFirst())))
        // A record count beyond the message is a length error, not a read past the end.
        bytes[7] = 200
        XCTAssertThrowsError(try bytes.withUnsafeBytes { try IGMPMessage.parse($0, verifyChecksum: false) }) {
            XCTAssertEqual($0 as? WireError, .badLength)
        }
    }

    func testBuiltQueryFrameIsCorrectOnTheWire() throws {
        let frame = IGMPFrameBuilder.frame(
            .query(IGMPQuery(version: .v3, maxResponseDeciseconds: 100, robustness: 2, queryIntervalSeconds: 125)),
            from: MACAddress("02:53:4e:4f:4f:50")!, source: IPv4Address(192, 0, 2, 254), destination: .allSystems)
        XCTAssertEqual(Array(frame.prefix(14)), hex("01005e000001 02534e4f4f50 0800"))
        let (ip, message) = try igmp(frame)
        XCTAssertEqual(ip.timeToLive, 1)
        XCTAssertTrue(ip.hasRouterAlert)
        XCTAssertEqual(ip.headerLength, 24)
        XCTAssertEqual(ip.totalLength, 24 + 12)
        XCTAssertEqual(ip.source, IPv4Address(192, 0, 2, 254))
        XCTAssertEqual(ip.destination, .allSystems)
        guard case .query(let query) = message else { return XCTFail("not a query") }
        XCTAssertTrue(query.isGeneral)
        XCTAssertEqual(query.robustness, 2)
        XCTAssertEqual(query.queryIntervalSeconds, 125)
    }

    func testPIMHelloHoldtime() throws {
        let hello = PIMMessage.helloBytes(holdtimeSeconds: 105)
        XCTAssertEqual(try hello.withUnsafeBytes { try PIMMessage.parse($0) }, .hello(holdtimeSeconds: 105))
        var bad = hello
        bad[9] ^= 1
        XCTAssertThrowsError(try bad.withUnsafeBytes { try PIMMessage.parse($0) })
    }

    func testAddressesParseAndPrint() {
        XCTAssertEqual(IPv4Address("239.1.2.3"), IPv4Address(239, 1, 2, 3))
        XCTAssertNil(IPv4Address("239.1.2"))
        XCTAssertNil(IPv4Address("239.1.2.256"))
        XCTAssertEqual(MACAddress("01:00:5e:01:02:03")?.description, "01:00:5e:01:02:03")
        XCTAssertEqual(MACAddress.ipv4Multicast(IPv4Address(239, 129, 2, 3)), MACAddress("01:00:5e:01:02:03"))
        XCTAssertTrue(IPv4Address(224, 0, 0, 251).isLocalNetworkControl)
        XCTAssertFalse(IPv4Address(224, 0, 1, 1).isLocalNetworkControl)
        XCTAssertNil(VLANID(0))
        XCTAssertNil(VLANID(4095))
    }
}
