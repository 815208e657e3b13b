import Foundation
import XCTest
@testable import Control
@testable import SwitchEngine
import Wire

final class PortSpecTests: XCTestCase {
    func testAccessTrunkAndHybridPorts() throws {
        XCTAssertEqual(try PortSpec.parse("h1"), PortConfiguration(name: "h1", pvid: .default))
        XCTAssertEqual(try PortSpec.parse("h1:pvid=10:fast-leave"), PortConfiguration(name: "h1", pvid: VLANID(10), fastLeave: true))
        XCTAssertEqual(try PortSpec.parse("up:tagged=10,20:router"),
                       PortConfiguration(name: "up", pvid: nil, tagged: [VLANID(10)!, VLANID(20)!], isStaticRouterPort: true))
        XCTAssertEqual(try PortSpec.parse("hy:pvid=5:tagged=6"), PortConfiguration(name: "hy", pvid: VLANID(5), tagged: [VLANID(6)!]))
    }

    func testBadSpecsSayWhatIsWrong() {
        let cases = [
            "h1:pvid=5000": "VLAN '5000' is not a number from 1 to 4094",
            "h1:bogus": "unknown option 'bogus'",
            ":pvid=3": "missing interface name",
            "h1:tagged=": "VLAN '' is not a number",
            "h1:pvid=3:tagged=3": "VLAN 3 cannot be both the pvid and tagged",
            "h1:tagged=4,4": "VLAN 4 listed twice",
            "averyveryverylongname": "is not a valid interface name",
            "h1:pvid=1:pvid=2": "pvid given twice",
            "h1:router:router": "router given twice",
            "h1:fast-leave:pvid=3:fast-leave": "fast-leave given twice",
            "h1:tagged=3:tagged=4": "tagged given twice",
            "h1:query-guard:query-guard": "query-guard given twice",
            "h1:tap:tap": "tap given twice",
            "lo": "lo is the loopback interface: loopback cannot be a switch port",
            "lo:pvid=3": "lo is the loopback interface",
        ]
        for (spec, expected) in cases {
            XCTAssertThrowsError(try PortSpec.parse(spec)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(expected), "\(spec): \(text)")
                XCTAssertTrue(text.hasPrefix("bad port spec '\(spec)'"))
                XCTAssertFalse(text.contains("\n"))
            }
        }
    }
}

final class StatusReportTests: XCTestCase {
    private func sampleEngine() -> SnoopingSwitch {
        var config = SwitchConfiguration(ports: [PortConfiguration(name: "h1", fastLeave: true),
                                                 PortConfiguration(name: "up", pvid: nil, tagged: [VLANID(1)!, VLANID(20)!],
                                                                   isStaticRouterPort: true)])
        config.querier = QuerierConfiguration(enabled: true, address: IPv4Address(192, 0, 2, 254), version: .v3)
        config.mldQuerier.enabled = true
        let engine = SnoopingSwitch(configuration: config, at: .zero)
        engine.advance(to: .zero)
        let report = IGMPFrameBuilder.frame(.report(group: IPv4Address(239, 1, 1, 1), version: .v2),
                                            from: MACAddress(2, 0, 0, 0, 0, 1), source: IPv4Address(192, 0, 2, 1),
                                            destination: IPv4Address(239, 1, 1, 1))
        _ = report.withUnsafeBytes { engine.receive(IngressFrame(bytes: $0), on: PortID(0), at: .zero) }
        return engine
    }

    func testJSONUsesTheDocumentedKeys() throws {
        let engine = sampleEngine()
        let report = StatusReport(engine: engine, ports: [PortRuntime(interfaceIndex: 7, txFrames: 3, txDrops: 0),
                                                         PortRuntime(interfaceIndex: 8, txFrames: 1, txDrops: 0)],
                                  datapath: .init(threads: 2, nice: -20, ringBytes: 1 << 20, packetPorts: 2, hostStackFilteredPorts: 1),
                                  at: Instant(nanoseconds: 1_000_000_000))
        let data = try ControlProtocol.encoder().encode(report)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(Set(json.keys), ["datapath", "ports", "macs", "groups", "router_ports", "queriers", "igmp", "mld",
                                         "drops_by_reason"])
        let datapath = try XCTUnwrap(json["datapath"] as? [String: Any])
        XCTAssertEqual(datapath["threads"] as? Int, 2)
        XCTAssertEqual(datapath["ring_bytes"] as? Int, 1 << 20)
        XCTAssertEqual(datapath["nice"] as? Int, -20)
        XCTAssertEqual(datapath["packet_ports"] as? Int, 2)
        XCTAssertEqual(datapath["host_stack_filtered_ports"] as? Int, 1)
        let port = try XCTUnwrap((json["ports"] as? [[String: Any]])?.first)
        XCTAssertEqual(port["name"] as? String, "h1")
        XCTAssertEqual(port["fast_leave"] as? Bool, true)
        XCTAssertEqual(port["rx_frames"] as? Int, 1)
        XCTAssertTrue(port["router"] is NSNull, "absent values are null, not missing")
        let group = try XCTUnwrap((json["groups"] as? [[String: Any]])?.first)
        XCTAssertEqual(group["group"] as? String, "239.1.1.1")
        XCTAssertEqual(group["protocol"] as? String, "igmp")
        let member = try XCTUnwrap((group["members"] as? [[String: Any]])?.first)
        XCTAssertEqual(member["port"] as? String, "h1")
        XCTAssertEqual(member["version"] as? Int, 2)
        XCTAssertEqual(member["expires_in"] as? Double, 259)
        let routers = try XCTUnwrap(json["router_ports"] as? [[String: Any]])
        // A static router port is one for IPv4 and IPv6 routers both.
        XCTAssertEqual(routers.map { $0["vlan"] as? Int }, [1, 1, 20, 20])
        XCTAssertEqual(routers.map { $0["protocol"] as? String }, ["igmp", "mld", "igmp", "mld"])
        XCTAssertEqual(routers.first?["kind"] as? String, "static")
        let queriers = try XCTUnwrap(json["queriers"] as? [[String: Any]])
        let querier = try XCTUnwrap(queriers.first)
        XCTAssertEqual(querier["protocol"] as? String, "igmp")
        XCTAssertEqual(querier["role"] as? String, "us")
        XCTAssertEqual(querier["address"] as? String, "192.0.2.254")
        // The MLD querier's default source: the switch MAC's link-local address (RFC 4291 A).
        let mldQuerier = try XCTUnwrap(queriers.first { $0["protocol"] as? String == "mld" })
        XCTAssertEqual(mldQuerier["address"] as? String, "fe80::53:4eff:fe4f:4f50")
        XCTAssertNotNil(json["mld"] as? [String: Any])
        // And it reads back.
        XCTAssertEqual(try ControlProtocol.decoder().decode(StatusReport.self, from: data), report)
    }

    func testTextShowsEveryTable() {
        let text = StatusReport(engine: sampleEngine(), ports: [], at: .zero).renderText()
        for heading in ["Datapath: 1 forwarding thread at nice 0,", "PORT", "GROUP", "Router ports", "QUERIER", "MAC table", "IGMP"] {
            XCTAssertTrue(text.contains(heading), "missing \(heading) in\n\(text)")
        }
        XCTAssertTrue(text.contains("239.1.1.1"))
        XCTAssertTrue(text.contains("this switch"))
        XCTAssertTrue(text.contains("received: v2_report 1"))
    }
}
