#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SwitchEngine
import Wire
import XCTest
@testable import Control

/// The capture stream's records, as the switch sends them, and the pcapng file the client writes.
final class CaptureTests: XCTestCase {
    /// A frame to 01:00:5e:01:02:03 from 02:00:00:00:00:01, IPv4 UDP (not control).
    private let frame: [UInt8] = [0x01, 0x00, 0x5e, 0x01, 0x02, 0x03, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]
        + [UInt8](repeating: 0xa5, count: 46)

    func testHeaderRoundTripsAndLaysOutAsDocumented() {
        let header = CaptureRecord.Header(length: 0x0102_0304, kind: .outbound, port: 0x0506, nanoseconds: 0x0708_090a_0b0c_0d0e)
        var bytes = [UInt8](repeating: 0xa5, count: CaptureRecord.headerLength)
        bytes.withUnsafeMutableBytes { header.write(into: $0) }
        XCTAssertEqual(bytes, [1, 2, 3, 4, 1, 5, 6, 7, 8, 9, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e])
        XCTAssertEqual(bytes.withUnsafeBytes { CaptureRecord.Header($0) }, header)
        bytes[4] = 9
        XCTAssertNil(bytes.withUnsafeBytes { CaptureRecord.Header($0) }.kind, "an unknown kind is read as nil, to be skipped")
    }

    /// Reads every record the stream's socket holds: (header, payload).
    private func records(_ fd: Int32) -> [(CaptureRecord.Header, [UInt8])] {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard n > 0 else { break }
            data += chunk[0..<n]
        }
        var out: [(CaptureRecord.Header, [UInt8])] = []
        var offset = 0
        while offset + CaptureRecord.headerLength <= data.count {
            let header = data[offset...].withUnsafeBytes { CaptureRecord.Header($0) }
            let start = offset + CaptureRecord.headerLength
            out.append((header, Array(data[start..<start + header.length])))
            offset = start + header.length
        }
        XCTAssertEqual(offset, data.count, "records end where the stream does")
        return out
    }

    private func socketPair() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
        return (fds[0], fds[1])
    }

    /// Ports are named before their frames; a frame carries its port and direction and the
    /// tag it has on that port's wire; an index given to another port is named again.
    func testPortsAreNamedBeforeTheirFramesAndFramesCarryPortAndDirection() {
        let (switchEnd, clientEnd) = socketPair()
        defer { close(clientEnd) }
        let stream = CaptureStream(descriptor: switchEnd, port: nil, controlOnly: false)
        stream.portNamed("h1", at: 0)
        stream.portNamed(nil, at: 1)
        stream.portNamed("h3", at: 2)
        frame.withUnsafeBytes { stream.offer($0, tag: nil, port: 2, outbound: false, at: 42) }
        frame.withUnsafeBytes { stream.offer($0, tag: VLANTag(tci: 0x600a), port: 0, outbound: true, at: 43) }
        stream.portNamed(nil, at: 2)
        stream.portNamed("h9", at: 2)
        frame.withUnsafeBytes { stream.offer($0, tag: nil, port: 2, outbound: true, at: 44) }
        let got = records(clientEnd)
        XCTAssertEqual(got.map { $0.0.kind }, [.port, .port, .inbound, .outbound, .port, .outbound])
        XCTAssertEqual(got.map { $0.0.port }, [0, 2, 2, 0, 2, 2])
        XCTAssertEqual(got.filter { $0.0.kind == .port }.map { String(decoding: $0.1, as: UTF8.self) }, ["h1", "h3", "h9"])
        XCTAssertEqual(got[2].1, frame)
        XCTAssertEqual(got[2].0.nanoseconds, 42)
        XCTAssertEqual(Array(got[3].1[12..<16]), [0x81, 0x00, 0x60, 0x0a], "the 802.1Q tag after the addresses")
        XCTAssertEqual(Array(got[3].1[16...]), Array(frame[12...]))
        XCTAssertEqual(stream.dropped, 0)
    }

    /// `--port h3`: only h3 is named, only its frames sent, and they follow its name, not its index.
    func testOnePortsCaptureFollowsThatPortsName() {
        let (switchEnd, clientEnd) = socketPair()
        defer { close(clientEnd) }
        let stream = CaptureStream(descriptor: switchEnd, port: "h3", controlOnly: false)
        stream.portNamed("h1", at: 0)
        stream.portNamed("h3", at: 1)
        XCTAssertFalse(stream.wants(port: 0))
        XCTAssertTrue(stream.wants(port: 1))
        stream.portNamed(nil, at: 1)
        stream.portNamed("h4", at: 1)
        XCTAssertFalse(stream.wants(port: 1), "an index given to another port leaves a one-port capture")
        stream.portNamed("h3", at: 5)
        XCTAssertTrue(stream.wants(port: 5))
        frame.withUnsafeBytes { stream.offer($0, tag: nil, port: 5, outbound: false, at: 1) }
        let got = records(clientEnd)
        XCTAssertEqual(got.map { $0.0.kind }, [.port, .port, .inbound])
        XCTAssertEqual(got.map { $0.0.port }, [1, 5, 5])
    }

    /// The file: a section header, interfaces with their names and nanosecond resolution,
    /// enhanced packet blocks with interface id, time and flags (direction, reception type).
    func testPcapngBlocks() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("capture-\(getpid()).pcapng").path
        defer { unlink(path) }
        let writer = try PcapngWriter(path: path)
        XCTAssertEqual(writer.addInterface(name: "h1"), 0)
        XCTAssertEqual(writer.addInterface(name: "trunk0"), 1)
        frame.withUnsafeBytes { writer.write($0, interface: 1, direction: .outbound, nanoseconds: 0x1_0000_0002) }
        try writer.flush()
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        func u32(_ at: Int) -> UInt32 { bytes[at..<at + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
        var blocks: [(type: UInt32, body: Range<Int>)] = []
        var offset = 0
        while offset < bytes.count {
            let length = Int(u32(offset + 4))
            XCTAssertEqual(length % 4, 0)
            XCTAssertEqual(Int(u32(offset + length - 4)), length, "the length repeated at the end")
            blocks.append((u32(offset), offset + 8..<offset + length - 4))
            offset += length
        }
        XCTAssertEqual(offset, bytes.count)
        XCTAssertEqual(blocks.map(\.type), [0x0A0D_0D0A, 1, 1, 6])
        XCTAssertEqual(u32(blocks[0].body.lowerBound), 0x1A2B_3C4D)
        /// The options of a block from `start`: code → value.
        func options(_ start: Int, _ end: Int) -> [UInt16: [UInt8]] {
            var out: [UInt16: [UInt8]] = [:]
            var i = start
            while i + 4 <= end, u16(i) != 0 {
                let length = Int(u16(i + 2))
                out[u16(i)] = Array(bytes[i + 4..<i + 4 + length])
                i += 4 + (length + 3) / 4 * 4
            }
            return out
        }
        let idb = blocks[2].body
        XCTAssertEqual(u16(idb.lowerBound), 1, "LINKTYPE_ETHERNET")
        let idbOptions = options(idb.lowerBound + 8, idb.upperBound)
        XCTAssertEqual(idbOptions[2], Array("trunk0".utf8), "if_name")
        XCTAssertEqual(idbOptions[9], [9], "if_tsresol: nanoseconds")
        let epb = blocks[3].body.lowerBound
        XCTAssertEqual([u32(epb), u32(epb + 4), u32(epb + 8), u32(epb + 12), u32(epb + 16)],
                       [1, 1, 2, UInt32(frame.count), UInt32(frame.count)])
        XCTAssertEqual(Array(bytes[epb + 20..<epb + 20 + frame.count]), frame)
        let epbOptions = options(epb + 20 + (frame.count + 3) / 4 * 4, blocks[3].body.upperBound)
        XCTAssertEqual(epbOptions[2], [0b010_10, 0, 0, 0], "epb_flags: outbound (10), multicast (010)")
    }

    func testAFileThatCannotBeCreatedIsOneError() {
        XCTAssertThrowsError(try PcapngWriter(path: "/nonexistent-directory/x.pcapng")) { error in
            XCTAssertEqual("\(error)", "/nonexistent-directory/x.pcapng: No such file or directory")
        }
    }
}
