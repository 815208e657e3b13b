import XCTest
@testable import SwitchEngine
import Wire

/// `--querier` with `--vlan N:no-snooping`: the VLAN floods every multicast frame, IGMP included,
/// and tracks no membership, but our querier there takes part in the election as in any VLAN
/// (RFC 3376 6.6.2, RFC 2236 3): a query from a lower address silences it for the other querier
/// present interval, and it takes over when that querier goes quiet.
final class NoSnoopingQuerierTests: XCTestCase {
    private let us = IPv4Address(192, 0, 2, 254)
    private let router = IPv4Address(192, 0, 2, 1)

    /// Ports 0 and 1 in VLAN 20 (no snooping), 2 and 3 in VLAN 10 (snooping), querier on everywhere.
    private func lab(_ more: (inout SwitchConfiguration) -> Void = { _ in }) -> EngineHarness {
        EngineHarness([PortConfiguration(name: "a20", pvid: vlan20), PortConfiguration(name: "b20", pvid: vlan20),
                       PortConfiguration(name: "a10", pvid: vlan10), PortConfiguration(name: "b10", pvid: vlan10)]) {
            $0.querier = QuerierConfiguration(enabled: true, address: self.us)
            $0.vlans[vlan20] = VLANSettings(snooping: false)
            more(&$0)
        }
    }

    func testWeQueryAVLANWithoutSnoopingUntilALowerAddressIsHeardThere() {
        let s = lab()
        XCTAssertEqual(Set(s.sentQueries().map(\.vlan)), [vlan10, vlan20], "startup queries in both VLANs")
        s.at(1)
        XCTAssertEqual(s.query(on: 1, from: router), [0], "the router's query floods as in any VLAN")
        XCTAssertEqual(s.engine.querier.role(in: vlan20, at: s.now), .other)
        XCTAssertEqual(s.engine.querier.role(in: vlan10, at: s.now), .us, "the election is per VLAN")
        for t in stride(from: 2.0, through: 255.9, by: 1) {
            s.at(t)
            XCTAssertFalse(s.sentQueries().contains { $0.vlan == vlan20 }, "queried VLAN 20 at \(t) under another querier")
        }
        // Other querier present interval: 2 x 125 s + 10 s / 2 = 255 s after the router's query.
        s.at(256)
        XCTAssertTrue(s.sentQueries().contains { $0.vlan == vlan20 }, "we take over when the router goes quiet")
        XCTAssertEqual(s.engine.querier.role(in: vlan20, at: s.now), .us)
    }

    func testAHigherAddressDoesNotSilenceUsThere() {
        let s = lab()
        s.query(on: 0, from: IPv4Address(192, 0, 2, 255 - 0))
        XCTAssertEqual(s.engine.querier.role(in: vlan20, at: s.now), .us)
    }

    /// Still a VLAN without snooping: reports and leaves flood, no membership and no router port
    /// is learned, data floods.
    func testEverythingStillFloods() {
        let s = lab()
        s.query(on: 1, from: router)
        XCTAssertEqual(s.report(g1, on: 0), [1])
        XCTAssertEqual(s.report(g1, on: 0, version: .v3), [1])
        XCTAssertEqual(s.leave(g1, on: 0), [1])
        XCTAssertNil(s.member(g1, on: 0, vlan: vlan20))
        XCTAssertEqual(s.data(to: g2, on: 0), [1])
        XCTAssertEqual(s.engine.routers.ports(in: vlan20), PortSet())
        XCTAssertEqual(s.engine.counters.received[.queryV3], 1, "the query is counted as heard")
    }

    /// An older querier there puts our queries in its version (RFC 3376 7.3.1), as elsewhere.
    func testAnOlderQuerierThereIsHeard() {
        let s = lab()
        s.query(on: 1, from: IPv4Address(192, 0, 2, 255), version: .v2)
        XCTAssertEqual(s.engine.querier.version(in: vlan20, at: s.now), .v2)
        XCTAssertEqual(s.engine.querier.version(in: vlan10, at: s.now), .v3)
    }

    /// A guarded port cannot win the election there either: its query is refused and counted.
    func testAGuardedPortsQueryIsRefused() {
        let s = EngineHarness([PortConfiguration(name: "a20", pvid: vlan20),
                               PortConfiguration(name: "b20", pvid: vlan20, queryGuard: true)]) {
            $0.querier = QuerierConfiguration(enabled: true, address: self.us)
            $0.vlans[vlan20] = VLANSettings(snooping: false)
        }
        XCTAssertEqual(s.query(on: 1, from: router), [])
        XCTAssertEqual(s.engine.querier.role(in: vlan20, at: s.now), .us)
        XCTAssertEqual(s.engine.counters.dropsByReason[.queryGuard], 1)
    }

    /// A query that fails its checks is flooded (a plain bridge would) but elects nobody.
    func testABrokenQueryFloodsUnheard() {
        let s = lab()
        var frame = IGMPFrameBuilder.frame(.query(IGMPQuery(version: .v3, maxResponseDeciseconds: 100)),
                                           from: EngineHarness.host(1), source: router, destination: .allSystems)
        frame[frame.count - 1] ^= 0xff
        XCTAssertEqual(s.ports(s.send(frame, on: 1)), [0])
        XCTAssertEqual(s.engine.querier.role(in: vlan20, at: s.now), .us)
    }
}
