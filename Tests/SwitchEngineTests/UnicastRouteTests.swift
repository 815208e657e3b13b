import XCTest
@testable import SwitchEngine
import Wire

/// The unicast decisions the datapath may hand to the kernel (SnoopingSwitch.UnicastRoute):
/// which are routes, and when a route stops holding.
final class UnicastRouteTests: XCTestCase {
    /// The route of a unicast frame from the host behind `from` to the host behind `to`.
    private func route(_ s: EngineHarness, from: Int, to: Int, tag: VLANTag? = nil) -> SnoopingSwitch.UnicastRoute? {
        let frame = EngineHarness.udpFrame(to: IPv4Address(192, 0, 2, 200), mac: EngineHarness.host(to), from: from)
        return s.send(frame, on: from, tag: tag).route
    }

    func testALearnedStationIsARouteAndAnUnknownOneIsNot() {
        let s = EngineHarness(accessPorts: 2)
        XCTAssertNil(route(s, from: 0, to: 1), "unknown destination: a flood, even to the one other port")
        let back = route(s, from: 1, to: 0)
        XCTAssertEqual(back, SnoopingSwitch.UnicastRoute(vlan: .default, source: EngineHarness.host(1),
                                                          destination: EngineHarness.host(0),
                                                          ingress: PortID(1), egress: PortID(0)))
        XCTAssertEqual(route(s, from: 0, to: 1), back?.reversed, "the flow back is the reverse of the route")
    }

    func testBroadcastMulticastAndFramesForTheirOwnSegmentAreNotRoutes() {
        let s = EngineHarness(accessPorts: 3)
        _ = s.unicast(to: .broadcast, on: 1)
        XCTAssertNil(s.send([], on: 0).route, "too short for a frame")
        XCTAssertNil(s.send(EngineHarness.udpFrame(to: IPv4Address(192, 0, 2, 9), mac: .broadcast, from: 0), on: 0).route)
        XCTAssertNil(s.send(EngineHarness.udpFrame(to: g1, mac: MACAddress.ipv4Multicast(g1), from: 0), on: 0).route)
        XCTAssertNil(route(s, from: 1, to: 1), "filtered: no egress")
    }

    func testTaggedFramesAndTaggedEgressStayWithTheSwitch() {
        let s = EngineHarness([PortConfiguration(name: "a", pvid: vlan10), PortConfiguration(name: "t", pvid: nil, tagged: [vlan10]),
                               PortConfiguration(name: "b", pvid: vlan10)])
        _ = s.unicast(to: .broadcast, on: 1, tag: VLANTag(vlan: vlan10, priority: 0))
        _ = s.unicast(to: .broadcast, on: 2)
        XCTAssertNil(route(s, from: 0, to: 1), "the egress port tags the frame")
        XCTAssertNil(route(s, from: 1, to: 0, tag: VLANTag(vlan: vlan10, priority: 0)), "a tagged frame")
        XCTAssertNotNil(route(s, from: 0, to: 2))
    }

    func testARouteStopsHoldingWhenAStationMovesOrAgesOrALinkGoesDown() throws {
        let s = EngineHarness(accessPorts: 3)
        _ = s.unicast(to: .broadcast, on: 1)
        let r = try XCTUnwrap(route(s, from: 0, to: 1))
        var generation = s.engine.routeGeneration
        XCTAssertTrue(s.engine.holds(r, at: s.now))
        XCTAssertTrue(s.engine.holds(r.reversed, at: s.now), "a route's way back holds with it")
        _ = route(s, from: 0, to: 1)
        XCTAssertEqual(s.engine.routeGeneration, generation, "frames of known stations change nothing")

        // The destination speaks from port 2: moved.
        s.send(EngineHarness.udpFrame(to: IPv4Address(192, 0, 2, 9), mac: .broadcast, from: 1), on: 2)
        XCTAssertFalse(s.engine.holds(r, at: s.now))
        XCTAssertNotEqual(s.engine.routeGeneration, generation, "a move changes the route generation")

        let back = try XCTUnwrap(route(s, from: 0, to: 1))
        XCTAssertEqual(back.egress, PortID(2))
        generation = s.engine.routeGeneration
        s.engine.setLink(PortID(2), up: false, at: s.now)
        XCTAssertFalse(s.engine.holds(back, at: s.now), "link down")
        XCTAssertNotEqual(s.engine.routeGeneration, generation, "so does a link going down")
    }

    func testRemovingAPortChangesTheRouteGeneration() throws {
        let s = EngineHarness(accessPorts: 3)
        _ = s.unicast(to: .broadcast, on: 1)
        let r = try XCTUnwrap(route(s, from: 0, to: 1))
        let generation = s.engine.routeGeneration
        s.engine.removePort(PortID(1), at: s.now)
        XCTAssertFalse(s.engine.holds(r, at: s.now))
        XCTAssertNotEqual(s.engine.routeGeneration, generation)
    }

    func testASourceTheFullTableRefusedIsNoRoute() {
        let s = EngineHarness(accessPorts: 3) { $0.macTableLimit = 1 }
        _ = s.unicast(to: .broadcast, on: 1)
        XCTAssertNil(route(s, from: 0, to: 1), "the source is not learned: its frames are the switch's")
        XCTAssertEqual(s.engine.counters.macTableFull, 1)
    }

    func testKernelForwardedFramesAreCountedAndKeepTheSourceLearned() throws {
        let s = EngineHarness(accessPorts: 2)
        _ = s.unicast(to: .broadcast, on: 1)
        let r = try XCTUnwrap(route(s, from: 0, to: 1))
        let received = s.engine.counters.rxFrames[0]
        // For 250 s the kernel forwards the flow; the switch sees none of its frames.
        s.at(250)
        s.engine.forwardedElsewhere(r, frames: 1000, bytes: 1_500_000, lastSeen: s.now)
        XCTAssertEqual(s.engine.counters.rxFrames[0], received + 1000)
        // Host 0 last reached the switch itself at 0 s; at 400 s it is still learned, as the
        // kernel saw it at 250 s (host 1 spoke at 250 s too).
        _ = s.unicast(to: EngineHarness.host(0), on: 1)
        s.at(400)
        XCTAssertEqual(s.unicast(to: EngineHarness.host(0), on: 1), [0])
        XCTAssertTrue(s.engine.holds(r, at: s.now))
        s.at(551)
        XCTAssertFalse(s.engine.holds(r, at: s.now), "300 s after the last frame: aged out")
    }

    func testRefreshNeverMovesAStationNorTurnsItsClockBack() {
        let table = MacTable(limit: 10, aging: .seconds(300))
        let mac = EngineHarness.host(0)
        table.learn(mac, vlan: .default, port: PortID(0), at: Instant(nanoseconds: 100))
        table.refresh(mac, vlan: .default, port: PortID(1), seen: Instant(nanoseconds: 200))
        XCTAssertEqual(table.lookup(mac, vlan: .default, at: Instant(nanoseconds: 300)), PortID(0))
        table.refresh(mac, vlan: .default, port: PortID(0), seen: Instant(nanoseconds: 50))
        XCTAssertEqual(table.allEntries().first?.entry.lastSeen, Instant(nanoseconds: 100))
    }
}
