import XCTest
@testable import Ports
import Wire

/// A frame the switch built itself is queued from an array whose bytes are only valid inside
/// `withUnsafeBytes`: the queue copies it into storage of its own, which outlives the array.
final class TransmitQueueTests: XCTestCase {
    private func frame(_ fill: UInt8, count: Int) -> [UInt8] { [UInt8](repeating: fill, count: count) }

    /// Each queued frame leaves with its own bytes, after the arrays it came from are gone.
    func testOwnedFramesOutliveTheirArrays() {
        let queue = TransmitQueue(capacity: 4)
        var sizes = [64, 300, 60, 1500]
        for (i, size) in sizes.enumerated() {
            var bytes = frame(UInt8(0xa0 + i), count: size)
            queue.append(owned: bytes, tag: nil)
            bytes.withUnsafeMutableBytes { $0.initializeMemory(as: UInt8.self, repeating: 0x55) }
        }
        var seen: [[UInt8]] = []
        let result = queue.drain { _, bytes in
            seen.append(Array(bytes))
            return true
        }
        XCTAssertEqual(result.sent, 4)
        XCTAssertEqual(seen.map(\.count), sizes)
        for (i, bytes) in seen.enumerated() {
            XCTAssertTrue(bytes.allSatisfy { $0 == UInt8(0xa0 + i) }, "frame \(i) was not what was queued")
        }
        // The slots' storage is reused, and grown where a frame is bigger than the last one.
        sizes = [1500, 64, 2000, 12]
        for (i, size) in sizes.enumerated() { queue.append(owned: frame(UInt8(0xb0 + i), count: size), tag: nil) }
        seen = []
        _ = queue.drain { _, bytes in
            seen.append(Array(bytes))
            return true
        }
        XCTAssertEqual(seen.map(\.count), sizes)
        for (i, bytes) in seen.enumerated() { XCTAssertTrue(bytes.allSatisfy { $0 == UInt8(0xb0 + i) }) }
    }

    /// A tag goes in after the MAC addresses, as for a received frame.
    func testOwnedFrameTagged() {
        let queue = TransmitQueue(capacity: 2)
        queue.append(owned: (0..<64).map { UInt8($0) }, tag: VLANTag(vlan: VLANID(10)!, priority: 6))
        var seen: [UInt8] = []
        _ = queue.drain { _, bytes in
            seen = Array(bytes)
            return true
        }
        XCTAssertEqual(seen.count, 68)
        XCTAssertEqual(Array(seen[0..<12]), (0..<12).map { UInt8($0) })
        XCTAssertEqual(Array(seen[12..<16]), [0x81, 0x00, 0xc0, 0x0a])
        XCTAssertEqual(Array(seen[16...]), (12..<64).map { UInt8($0) })
    }
}
