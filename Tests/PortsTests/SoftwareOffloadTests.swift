import XCTest
@testable import Ports
import Wire

/// What a pcap port does in software for frames without virtio-net headers: IPv6 UDP and TCP
/// checksums left partial by a sender's offload are finished over RFC 8200's pseudo-header.
final class SoftwareOffloadTests: XCTestCase {
    static let source = IPv6Address("2001:db8::1")!
    static let destination = IPv6Address("ff15::4242")!

    /// An untagged IPv6 UDP datagram with `payload`, its checksum field holding `checksum`.
    static func udpFrame(payload: [UInt8], checksum: UInt16) -> [UInt8] {
        var frame = [UInt8](repeating: 0, count: 14 + 40 + 8 + payload.count)
        frame.withUnsafeMutableBytes { b in
            MACAddress.ipv6Multicast(destination).write(to: b, at: 0)
            MACAddress(0x02, 0, 0, 0, 0, 1).write(to: b, at: 6)
            b.writeUInt16(EtherType.ipv6, at: 12)
            b[14] = 0x60
            b.writeUInt16(UInt16(8 + payload.count), at: 18)
            b[20] = IPv6HeaderView.NextHeader.udp
            b[21] = 1
            source.write(to: b, at: 22)
            destination.write(to: b, at: 38)
            b.writeUInt16(5000, at: 54)
            b.writeUInt16(5001, at: 56)
            b.writeUInt16(UInt16(8 + payload.count), at: 58)
            b.writeUInt16(checksum, at: 60)
            for (i, byte) in payload.enumerated() { b[62 + i] = byte }
        }
        return frame
    }

    static func checksumVerifies(_ frame: [UInt8]) -> Bool {
        frame.withUnsafeBytes { b in
            InternetChecksum.verify(UnsafeRawBufferPointer(rebasing: b[54...]), source: source, destination: destination,
                                    nextHeader: IPv6HeaderView.NextHeader.udp)
        }
    }

    func testAPartialIPv6ChecksumIsFinishedBeforeSending() {
        // What Linux leaves with CHECKSUM_PARTIAL: the pseudo-header's sum in the field.
        let frame = Self.udpFrame(payload: Array("hello, listeners".utf8), checksum: 0x1234)
        XCTAssertFalse(Self.checksumVerifies(frame))
        var header = VirtioNetHeader()
        header.flags = VirtioNetHeader.needsChecksum
        header.checksumStart = 54
        header.checksumOffset = 6
        var sent: [[UInt8]] = []
        frame.withUnsafeBytes { SoftwareOffload.finish($0, header: header, mtu: 1500) { sent.append(Array($0)) } }
        XCTAssertEqual(sent.count, 1)
        XCTAssertTrue(Self.checksumVerifies(sent[0]), "the UDP checksum is right over the IPv6 pseudo-header")
        XCTAssertEqual(sent[0][..<60], frame[..<60], "nothing but the checksum changes")
    }

    func testAReceivedIPv6DatagramGetsItsChecksum() {
        var frame = Self.udpFrame(payload: [1, 2, 3, 4, 5], checksum: 0)
        let header = frame.withUnsafeMutableBytes { SoftwareOffload.prepareReceived($0, mtu: 1500) }
        XCTAssertFalse(header.checksumPending)
        XCTAssertTrue(Self.checksumVerifies(frame))
    }

    func testATruncatedIPv6DatagramIsLeftAlone() {
        var frame = Self.udpFrame(payload: [1, 2, 3, 4, 5], checksum: 0x4242)
        frame.removeLast(3)      // the header says 13 bytes of UDP; 10 are here
        let before = frame
        _ = frame.withUnsafeMutableBytes { SoftwareOffload.prepareReceived($0, mtu: 1500) }
        XCTAssertEqual(frame, before)
    }

    /// A TCP segment of IPv6 larger than the MTU (a sender's GSO), cut as TSO would.
    func testALargeIPv6TCPSegmentIsCutToTheMTU() {
        let payload = (0..<3000).map { UInt8(truncatingIfNeeded: $0) }
        var frame = [UInt8](repeating: 0, count: 14 + 40 + 20 + payload.count)
        frame.withUnsafeMutableBytes { b in
            MACAddress(0x02, 0, 0, 0, 0, 2).write(to: b, at: 0)
            MACAddress(0x02, 0, 0, 0, 0, 1).write(to: b, at: 6)
            b.writeUInt16(EtherType.ipv6, at: 12)
            b[14] = 0x60
            b.writeUInt16(UInt16(20 + payload.count), at: 18)
            b[20] = IPv6HeaderView.NextHeader.tcp
            b[21] = 64
            Self.source.write(to: b, at: 22)
            IPv6Address("2001:db8::2")!.write(to: b, at: 38)
            b.writeUInt32(1000, at: 58)         // sequence
            b[66] = 5 << 4                      // data offset: 20 bytes
            b[67] = 0x18                        // PSH, ACK
            for (i, byte) in payload.enumerated() { b[74 + i] = byte }
        }
        let header = frame.withUnsafeMutableBytes { SoftwareOffload.prepareReceived($0, mtu: 1500) }
        XCTAssertEqual(header.gsoType, 4, "described as TCPv6 segmentation work")
        XCTAssertEqual(header.gsoSize, 1440)
        var sent: [[UInt8]] = []
        frame.withUnsafeBytes { SoftwareOffload.finish($0, header: header, mtu: 1500) { sent.append(Array($0)) } }
        XCTAssertEqual(sent.map(\.count), [14 + 60 + 1440, 14 + 60 + 1440, 14 + 60 + 120])
        var carried: [UInt8] = []
        for (i, piece) in sent.enumerated() {
            piece.withUnsafeBytes { b in
                XCTAssertEqual(Int(b.readUInt16(at: 18)), piece.count - 54, "payload length of segment \(i)")
                XCTAssertEqual(b.readUInt32(at: 58), 1000 + UInt32(1440 * i), "sequence of segment \(i)")
                XCTAssertEqual(b[67] & 0x08 != 0, i == 2, "PSH only on the last")
                XCTAssertTrue(InternetChecksum.verify(UnsafeRawBufferPointer(rebasing: b[54...]), source: Self.source,
                                                      destination: IPv6Address("2001:db8::2")!,
                                                      nextHeader: IPv6HeaderView.NextHeader.tcp), "checksum of segment \(i)")
            }
            carried += piece[74...]
        }
        XCTAssertEqual(carried, payload)
    }
}
