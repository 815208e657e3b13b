import XCTest
@testable import SwitchEngine
import Wire

/// IEEE 802.1Q 8.6.3 and Table 8-1: frames to 01:80:C2:00:00:00-0F are the link's own. A bridge
/// without spanning tree relays 00 (STP) and keeps the rest on their link (PAUSE, LACP, 802.1X,
/// LLDP, ...), unless told to relay some (the Linux bridge's group_fwd_mask).
final class ReservedAddressTests: XCTestCase {
    private static func reserved(_ last: UInt8) -> MACAddress { MACAddress(0x01, 0x80, 0xc2, 0, 0, last) }

    /// A frame from the host behind `port` to 01:80:C2:00:00:`last`, an LLC or slow-protocol payload.
    private func frame(to last: UInt8, from port: Int, host n: Int = 0) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 60)
        bytes.withUnsafeMutableBytes { b in
            Self.reserved(last).write(to: b, at: 0)
            EngineHarness.host(port, n).write(to: b, at: 6)
            b.writeUInt16(last == 0x0e ? 0x88cc : last == 0x03 ? 0x888e : last <= 0x02 ? 0x8808 : 0x0026, at: 12)
        }
        return bytes
    }

    func testSpanningTreeIsRelayedAsByABridgeWithoutSTP() {
        let s = EngineHarness(accessPorts: 3)
        XCTAssertEqual(s.ports(frame(to: 0x00, from: 0).withUnsafeBytes {
            s.engine.receive(IngressFrame(bytes: $0), on: PortID(0), at: s.now)
        }), [1, 2])
        XCTAssertNil(s.engine.counters.dropsByReason[.reservedAddress])
    }

    /// Every address from 01 to 0F stays on its link, each drop counted under its own reason.
    func testTheOtherFifteenStayOnTheirLinkAndAreCounted() {
        let s = EngineHarness(accessPorts: 3)
        for last in UInt8(1)...15 {
            XCTAssertEqual(s.ports(s.send(frame(to: last, from: 0), on: 0)), [], "01:80:c2:00:00:\(last) relayed")
        }
        XCTAssertEqual(s.engine.counters.dropsByReason[.reservedAddress], 15)
        XCTAssertEqual(s.engine.counters.drops[0], 15)
    }

    /// The bridge consumes them before it learns: a station heard only in LLDP is not learned.
    func testTheirSourceIsNotLearned() {
        let s = EngineHarness(accessPorts: 3)
        s.send(frame(to: 0x0e, from: 1), on: 1)
        XCTAssertEqual(s.unicast(to: EngineHarness.host(1), on: 0), [1, 2], "flooded: LLDP taught nothing")
    }

    /// group_fwd_mask: the chosen ones are relayed like any other multicast; the rest still stay.
    func testChosenAddressesAreRelayed() {
        let s = EngineHarness(accessPorts: 3) {
            $0.relayedReservedAddresses = ReservedAddressMask(bits: 1 << 0x0e | 1 << 0x03)
        }
        XCTAssertEqual(s.ports(s.send(frame(to: 0x0e, from: 0), on: 0)), [1, 2], "LLDP")
        XCTAssertEqual(s.ports(s.send(frame(to: 0x03, from: 2), on: 2)), [0, 1], "802.1X")
        XCTAssertEqual(s.ports(s.send(frame(to: 0x0d, from: 0), on: 0)), [])
        XCTAssertEqual(s.engine.counters.dropsByReason[.reservedAddress], 1)
    }

    /// PAUSE and slow protocols never leave their link, even when a mask names them (the
    /// command line refuses them; the engine holds the line too).
    func testPauseAndLACPAreNeverRelayed() {
        let s = EngineHarness(accessPorts: 2) { $0.relayedReservedAddresses = ReservedAddressMask(bits: 0xffff) }
        XCTAssertEqual(s.ports(s.send(frame(to: 0x01, from: 0), on: 0)), [])
        XCTAssertEqual(s.ports(s.send(frame(to: 0x02, from: 0), on: 0)), [])
        XCTAssertEqual(s.ports(s.send(frame(to: 0x0f, from: 0), on: 0)), [1])
    }

    /// Tagged, the same: 802.1Q's reserved addresses are per link, whatever the VLAN.
    func testTaggedFramesToReservedAddressesStayToo() {
        let s = EngineHarness([PortConfiguration(name: "t0", pvid: nil, tagged: [vlan10]),
                               PortConfiguration(name: "t1", pvid: nil, tagged: [vlan10])])
        XCTAssertEqual(s.ports(s.send(frame(to: 0x0e, from: 0), on: 0, tag: VLANTag(vlan: vlan10, priority: 0))), [])
        XCTAssertEqual(s.ports(s.send(frame(to: 0x00, from: 0), on: 0, tag: VLANTag(vlan: vlan10, priority: 0))), [1])
    }

    /// SIGHUP: a new mask applies to the next frame.
    func testReconfigureChangesWhatIsRelayed() {
        let s = EngineHarness(accessPorts: 2)
        XCTAssertEqual(s.ports(s.send(frame(to: 0x0e, from: 0), on: 0)), [])
        var configuration = s.engine.configuration
        configuration.relayedReservedAddresses.insert(0x0e)
        XCTAssertEqual(s.engine.reconfigure(configuration, at: s.now), [])
        XCTAssertEqual(s.ports(s.send(frame(to: 0x0e, from: 0), on: 0)), [1])
        configuration.relayedReservedAddresses = ReservedAddressMask()
        s.engine.reconfigure(configuration, at: s.now)
        XCTAssertEqual(s.ports(s.send(frame(to: 0x0e, from: 0), on: 0)), [])
    }

    /// Only the 16 addresses of the block: 01:80:C2:00:00:10 onward (GMRP's 20, MVRP's 21) and
    /// other multicast flood as before.
    func testAddressesPastTheBlockFlood() {
        let s = EngineHarness(accessPorts: 3)
        XCTAssertEqual(s.ports(s.send(frame(to: 0x10, from: 0), on: 0)), [1, 2])
        XCTAssertEqual(s.ports(s.send(frame(to: 0x21, from: 0), on: 0)), [1, 2])
        XCTAssertTrue(Self.reserved(0x0f).isBridgeReserved)
        XCTAssertFalse(Self.reserved(0x10).isBridgeReserved)
        XCTAssertFalse(MACAddress(0x01, 0x80, 0xc2, 0, 1, 0x0e).isBridgeReserved)
        XCTAssertFalse(MACAddress(0x03, 0x80, 0xc2, 0, 0, 0x0e).isBridgeReserved)
    }
}
