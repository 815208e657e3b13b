import XCTest
@testable import SwitchEngine
import Wire

/// IEEE 802.1Q learning and VLAN rules.
final class ForwardingTests: XCTestCase {
    func testUnknownUnicastFloodsThenFollowsTheLearnedPort() {
        let s = EngineHarness(accessPorts: 4)
        XCTAssertEqual(s.unicast(to: EngineHarness.host(2), on: 0), [1, 2, 3], "unknown: flood, never back in")
        _ = s.unicast(to: EngineHarness.host(0), on: 2)                      // host 2 speaks: learned on port 2
        XCTAssertEqual(s.unicast(to: EngineHarness.host(2), on: 0), [2])
        XCTAssertEqual(s.unicast(to: EngineHarness.host(2), on: 2), [], "a frame for its own segment is filtered")
    }

    func testBroadcastFloodsInItsVLANOnly() {
        let s = EngineHarness([PortConfiguration(name: "a", pvid: vlan10), PortConfiguration(name: "b", pvid: vlan10),
                               PortConfiguration(name: "c", pvid: vlan20), PortConfiguration(name: "t", pvid: nil, tagged: [vlan10, vlan20])])
        XCTAssertEqual(s.unicast(to: .broadcast, on: 0), [1, 3])
        XCTAssertEqual(s.unicast(to: .broadcast, on: 2), [3])
    }

    func testStationMoveAndAging() {
        let s = EngineHarness(accessPorts: 3)
        _ = s.unicast(to: .broadcast, on: 1)
        XCTAssertEqual(s.unicast(to: EngineHarness.host(1), on: 0), [1])
        // the same MAC now speaks on port 2: it moved
        s.send(EngineHarness.udpFrame(to: IPv4Address(192, 0, 2, 9), mac: .broadcast, from: 1), on: 2)
        XCTAssertEqual(s.unicast(to: EngineHarness.host(1), on: 0), [2])
        XCTAssertEqual(s.engine.macs.moves, 1)
        s.at(299)
        XCTAssertEqual(s.unicast(to: EngineHarness.host(1), on: 0), [2])
        s.at(300)   // 300 s idle since the last frame from it (at 0): aged out, flood again
        XCTAssertEqual(s.unicast(to: EngineHarness.host(1), on: 0), [1, 2])
    }

    func testMacTableIsBoundedAndKeepsExistingEntries() {
        let s = EngineHarness(accessPorts: 3) { $0.macTableLimit = 2 }
        _ = s.unicast(to: .broadcast, on: 0, host: 0)
        _ = s.unicast(to: .broadcast, on: 1, host: 0)
        _ = s.unicast(to: .broadcast, on: 2, host: 0)                   // refused: table full
        XCTAssertEqual(s.engine.macs.count, 2)
        XCTAssertEqual(s.engine.counters.macTableFull, 1)
        XCTAssertEqual(s.unicast(to: EngineHarness.host(1), on: 0), [1], "existing entries keep working")
    }

    func testTaggedIngressAndEgressRules() {
        let s = EngineHarness([PortConfiguration(name: "access10", pvid: vlan10),
                               PortConfiguration(name: "access20", pvid: vlan20),
                               PortConfiguration(name: "trunk", pvid: nil, tagged: [vlan10, vlan20]),
                               PortConfiguration(name: "hybrid", pvid: vlan10, tagged: [vlan20])])
        // A frame tagged 10 with priority 5 on the trunk joins VLAN 10, keeps its priority.
        let decision = s.send(EngineHarness.udpFrame(to: IPv4Address(192, 0, 2, 9), mac: .broadcast, from: 2), on: 2,
                              tag: VLANTag(vlan: vlan10, priority: 5))
        XCTAssertEqual(decision.vlan, vlan10)
        XCTAssertEqual(decision.priority, 5)
        XCTAssertEqual(s.ports(decision), [0, 3])
        XCTAssertEqual(decision.untagged, PortSet([PortID(0), PortID(3)]), "VLAN 10 is their pvid")
        XCTAssertEqual(decision.tagged, .empty)
        // In VLAN 20 the hybrid port and the trunk tag, the access port does not; the tag keeps the bits.
        let twenty = s.send(EngineHarness.udpFrame(to: IPv4Address(192, 0, 2, 9), mac: .broadcast, from: 2), on: 2,
                            tag: VLANTag(vlan: vlan20, priority: 3, dropEligible: true))
        XCTAssertEqual(twenty.untagged, PortSet([PortID(1)]))
        XCTAssertEqual(twenty.tagged, PortSet([PortID(3)]))
        XCTAssertEqual(twenty.tag, VLANTag(vlan: vlan20, priority: 3, dropEligible: true))
        // Egress: untagged on the pvid, tagged otherwise.
        XCTAssertFalse(s.engine.egressTagged(PortID(0), vlan: vlan10))
        XCTAssertTrue(s.engine.egressTagged(PortID(2), vlan: vlan10))
        XCTAssertFalse(s.engine.egressTagged(PortID(3), vlan: vlan10))
        XCTAssertTrue(s.engine.egressTagged(PortID(3), vlan: vlan20))
        // A tag the port does not carry is dropped and counted; untagged on a pure trunk too.
        XCTAssertEqual(s.unicast(to: .broadcast, on: 2, tag: VLANTag(vlan: VLANID(30)!, priority: 0)), [])
        XCTAssertEqual(s.engine.counters.dropsByReason[.vlanNotAllowed], 1)
        XCTAssertEqual(s.unicast(to: .broadcast, on: 2), [])
        XCTAssertEqual(s.engine.counters.dropsByReason[.untaggedNotAllowed], 1)
        // Priority-tagged (VID 0) frames join the pvid.
        XCTAssertEqual(s.unicast(to: .broadcast, on: 0, tag: VLANTag(tci: 0x6000)), [2, 3])
        // An access port takes a frame tagged with its own pvid.
        XCTAssertEqual(s.unicast(to: .broadcast, on: 1, tag: VLANTag(vlan: vlan20, priority: 0)), [2, 3])
    }

    /// IEEE 802.1ad: an S-tag (TPID 0x88A8) is a provider's VLAN, not one of ours. Whether the
    /// kernel stripped it (the backend says so) or it is still in the bytes, the frame is dropped
    /// and counted, never read as the C-VLAN of the same number.
    func testServiceTaggedFramesAreDroppedNotReadAsCustomerVLANs() {
        let s = EngineHarness([PortConfiguration(name: "access10", pvid: vlan10),
                               PortConfiguration(name: "trunk", pvid: nil, tagged: [vlan10]),
                               PortConfiguration(name: "other10", pvid: vlan10)])
        let frame = EngineHarness.udpFrame(to: IPv4Address(192, 0, 2, 9), mac: .broadcast, from: 1)
        let stripped = frame.withUnsafeBytes {
            s.engine.receive(IngressFrame(bytes: $0, tag: nil, serviceTagged: true), on: PortID(1), at: s.now)
        }
        XCTAssertEqual(s.ports(stripped), [])
        // The same S-tag left inline (a TAP or libpcap port): its TPID is the frame's EtherType.
        var inline = Array(frame[0..<12]) + [0x88, 0xa8, 0x00, 0x0a] + Array(frame[12...])
        XCTAssertEqual(s.ports(s.send(inline, on: 0)), [])
        XCTAssertEqual(s.engine.counters.dropsByReason[.serviceTagged], 2)
        // Inside a C-tag an 0x88A8 EtherType is payload: the C-tag decides.
        inline = Array(frame[0..<12]) + [0x88, 0xa8, 0x00, 0x0a] + Array(frame[12...])
        XCTAssertEqual(s.ports(s.send(inline, on: 1, tag: VLANTag(vlan: vlan10, priority: 0))), [0, 2])
    }

    /// IEEE 802.1Q 6.9.3: the drop eligible indicator travels with the frame, as its priority does.
    func testDropEligibleBitIsKept() {
        let s = EngineHarness([PortConfiguration(name: "trunk", pvid: nil, tagged: [vlan10]),
                               PortConfiguration(name: "trunk2", pvid: nil, tagged: [vlan10])])
        let frame = EngineHarness.udpFrame(to: IPv4Address(192, 0, 2, 9), mac: .broadcast, from: 0)
        let eligible = s.send(frame, on: 0, tag: VLANTag(vlan: vlan10, priority: 3, dropEligible: true))
        XCTAssertEqual(eligible.tag.tci, 0x700a, "priority 3, DEI, VID 10")
        XCTAssertEqual(s.send(frame, on: 0, tag: VLANTag(vlan: vlan10, priority: 3)).tag.tci, 0x600a)
    }

    func testLearningIsPerVLAN() {
        let s = EngineHarness([PortConfiguration(name: "a", pvid: vlan10), PortConfiguration(name: "t", pvid: nil, tagged: [vlan10, vlan20]),
                               PortConfiguration(name: "c", pvid: vlan20)])
        _ = s.unicast(to: .broadcast, on: 0)                        // host 0 learned in VLAN 10 only
        XCTAssertEqual(s.unicast(to: EngineHarness.host(0), on: 1, tag: VLANTag(vlan: vlan20, priority: 0)), [2])
        XCTAssertEqual(s.unicast(to: EngineHarness.host(0), on: 1, tag: VLANTag(vlan: vlan10, priority: 0)), [0])
    }

    func testMalformedFramesAreCountedAndDropped() {
        let s = EngineHarness(accessPorts: 2)
        XCTAssertEqual(s.ports(s.send([1, 2, 3], on: 0)), [])
        var frame = EngineHarness.udpFrame(to: g1, mac: MACAddress.ipv4Multicast(g1), from: 0)
        frame[24] ^= 0xff                                           // IPv4 header checksum
        XCTAssertEqual(s.ports(s.send(frame, on: 0)), [])
        XCTAssertEqual(s.engine.counters.dropsByReason[.malformed], 2)
        XCTAssertEqual(s.engine.counters.drops[0], 2)
        frame = EngineHarness.udpFrame(to: g1, mac: .broadcast, from: 0)
        frame[6] = 0x01                                             // multicast source MAC
        XCTAssertEqual(s.ports(s.send(frame, on: 0)), [])
    }

    func testLinkDownFlushesAndExcludesThePort() {
        let s = EngineHarness(accessPorts: 3)
        _ = s.unicast(to: .broadcast, on: 1)
        s.report(g1, on: 1)
        s.engine.setLink(PortID(1), up: false, at: s.now)
        XCTAssertNil(s.member(g1, on: 1))
        XCTAssertEqual(s.unicast(to: EngineHarness.host(1), on: 0), [2], "flooded, not to the port that is down")
        XCTAssertEqual(s.unicast(to: .broadcast, on: 1), [], "frames from a down port are dropped")
        s.engine.setLink(PortID(1), up: true, at: s.now)
        XCTAssertEqual(s.unicast(to: .broadcast, on: 0), [1, 2])
    }
}
