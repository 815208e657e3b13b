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
        XCTAssertEqual(Set(json.keys), ["datapath", "configuration", "ports", "macs", "groups", "router_ports", "queriers", "igmp",
                                         "mld", "drops_by_reason"])
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
        XCTAssertEqual(port["query_guard"] as? Bool, false)
        XCTAssertEqual(port["attachment"] as? String, "packet")
        XCTAssertEqual(Set(port.keys), ["name", "ifindex", "link", "pvid", "tagged", "router", "fast_leave", "query_guard",
                                        "attachment", "rx_frames", "tx_frames", "rx_bytes", "tx_bytes", "drops", "link_changes"])
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
        let configuration = try XCTUnwrap(json["configuration"] as? [String: Any])
        XCTAssertEqual(Set(configuration.keys), ["timers", "igmp_querier", "mld_querier", "flood_unregistered", "flood_solicited_node",
                                                 "ssm_range", "mld_ssm_range", "limits", "fdb_aging", "relayed_reserved_addresses",
                                                 "vlans"])
        let timers = try XCTUnwrap(configuration["timers"] as? [String: Any])
        XCTAssertEqual(Set(timers.keys), ["robustness", "query_interval", "query_response_interval", "last_member_query_interval",
                                          "last_member_query_count", "group_membership_interval", "other_querier_present_interval"])
        XCTAssertEqual(timers["query_interval"] as? Double, 125)
        XCTAssertEqual(timers["group_membership_interval"] as? Double, 260)
        XCTAssertEqual(timers["other_querier_present_interval"] as? Double, 255)
        let igmpQuerier = try XCTUnwrap(configuration["igmp_querier"] as? [String: Any])
        XCTAssertEqual(Set(igmpQuerier.keys), ["enabled", "address", "version"])
        XCTAssertEqual(igmpQuerier["address"] as? String, "192.0.2.254")
        XCTAssertEqual((configuration["mld_querier"] as? [String: Any])?["address"] as? String, "fe80::53:4eff:fe4f:4f50")
        XCTAssertEqual(configuration["ssm_range"] as? String, "232.0.0.0/8")
        XCTAssertEqual(configuration["mld_ssm_range"] as? String, "ff3x::/32")
        XCTAssertEqual(configuration["fdb_aging"] as? Double, 300)
        XCTAssertEqual(configuration["relayed_reserved_addresses"] as? [String], ["01:80:c2:00:00:00"])
        let limits = try XCTUnwrap(configuration["limits"] as? [String: Any])
        XCTAssertEqual(Set(limits.keys), ["macs", "macs_per_port", "groups_per_vlan", "groups_per_port", "sources_per_group",
                                          "messages_per_second_per_port"])
        let vlans = try XCTUnwrap(configuration["vlans"] as? [[String: Any]])
        XCTAssertEqual(vlans.map { $0["vlan"] as? Int }, [1, 20], "the VLANs the ports carry")
        XCTAssertEqual(Set(vlans[0].keys), ["vlan", "igmp_snooping", "mld_snooping", "igmp_querier", "mld_querier", "overrides"])
        let overrides = try XCTUnwrap(vlans[0]["overrides"] as? [String: Any])
        XCTAssertEqual(Set(overrides.keys), ["querier", "igmp_querier", "querier_address", "igmp_version", "snooping", "mld_querier",
                                             "mld_querier_address", "mld_version", "mld_snooping"])
        XCTAssertTrue(overrides.values.allSatisfy { $0 is NSNull }, "no VLAN settings of its own: \(overrides)")
        // And it reads back.
        XCTAssertEqual(try ControlProtocol.decoder().decode(StatusReport.self, from: data), report)
    }

    func testTextShowsEveryTable() {
        let text = StatusReport(engine: sampleEngine(), ports: [], at: .zero).renderText()
        for heading in ["Datapath\n  threads:", "1 forwarding thread at nice 0\n", "Configuration\n", "VLANs\n", "PORT", "GROUP",
                        "Router ports", "QUERIER", "MAC table", "IGMP\n", "MLD\n", "Drops\n"] {
            XCTAssertTrue(text.contains(heading), "missing \(heading) in\n\(text)")
        }
        XCTAssertTrue(text.contains("239.1.1.1"))
        XCTAssertTrue(text.contains("this switch"))
        XCTAssertTrue(text.contains("received: v2_report 1"))
        // Drops stand apart from IGMP's and MLD's counters.
        XCTAssertTrue(text.contains("errors:   -\nDrops\n  by reason: -\n"), text)
    }

    /// The Datapath block: one short labelled line a subject, the facts of the old single line.
    func testDatapathIsABlockOfShortLines() {
        let report = StatusReport(engine: sampleEngine(), ports: [],
                                  datapath: .init(threads: 2, nice: -10, ringBytes: 1 << 20, packetPorts: 3, hostStackFilteredPorts: 3,
                                                  fastPathPorts: 3, kernelFlows: 2, replicatingPorts: 3, clonedFrames: 40,
                                                  threadCPUs: [1, 0]),
                                  at: .zero)
        let text = report.renderText()
        let block = text.components(separatedBy: "\n\n")[0]
        XCTAssertEqual(block, """
            Datapath
              threads:            2 forwarding threads at nice -10, bound to CPUs 1,0
              receive ring:       1024 KiB per socket
              host stack filter:  host IP stack kept off 3 of 3 packet ports
              kernel fast path:   on 3 ports, 2 unicast flows
              egress replication: on 3 ports, 40 frames cloned
            """)
        for line in text.split(separator: "\n") {
            XCTAssertLessThanOrEqual(line.count, 110, "a long line: \(line)")
        }
        let plain = StatusReport(engine: sampleEngine(), ports: [], datapath: .init(threads: 1, ringBytes: 0), at: .zero).renderText()
        XCTAssertTrue(plain.hasPrefix("Datapath\n  threads:      1 forwarding thread at nice 0\n  receive ring: none (recvmmsg)\n\n"), plain)
    }

    /// Item 5 of issue 19: the settings in force, globally, per VLAN and per port, in the text.
    func testTextShowsTheConfigurationInForce() throws {
        var config = SwitchConfiguration(ports: [PortConfiguration(name: "h1", queryGuard: true),
                                                 PortConfiguration(name: "h2", pvid: VLANID(20), isStaticRouterPort: true,
                                                                   fastLeave: true, attachment: .tap)])
        config.timers.queryInterval = .seconds(60)
        config.timers.lastMemberQueryInterval = .milliseconds(200)
        config.floodUnregistered = true
        config.vlans[VLANID(20)!] = VLANSettings(igmpVersion: .v2, snooping: false)
        config.relayedReservedAddresses.insert(0xe)
        let engine = SnoopingSwitch(configuration: config, at: .zero)
        engine.memberships.addStatic(PortID(0), to: IPv4Address(239, 1, 1, 1), in: .default, version: .v3)
        let report = StatusReport(engine: engine, ports: [PortRuntime(interfaceIndex: 5, txFrames: 0, txDrops: 0),
                                                          PortRuntime(interfaceIndex: 6, txFrames: 0, txDrops: 0)], at: .zero)
        let text = report.renderText()
        for expected in ["query-interval 60s,", "last-member-query-interval 0.2s,", "group membership interval 130s",
                         "other querier present interval 125s", "flood-unregistered on, flood-solicited-node off",
                         "ssm-range 232.0.0.0/8, mld-ssm-range ff3x::/32", "fdb-aging 300s",
                         "relayed stp (01:80:c2:00:00:00), lldp (01:80:c2:00:00:0e)",
                         "MLD querier:  off, address fe80::53:4eff:fe4f:4f50, version 2"] {
            XCTAssertTrue(text.contains(expected), "missing \(expected) in\n\(text)")
        }
        let rows = text.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        XCTAssertTrue(rows.contains(["1", "IGMP", "on", "off", "0.0.0.0", "v3", "-"]), text)
        XCTAssertTrue(rows.contains(["20", "IGMP", "off", "off", "0.0.0.0", "v2", "igmp-version=2:no-snooping"]), text)
        XCTAssertTrue(rows.contains(["20", "MLD", "off", "off", "fe80::53:4eff:fe4f:4f50", "v2", "no-snooping"]), text)
        XCTAssertTrue(rows.contains(["h1", "5", "packet", "up", "1", "-", "-", "no", "yes", "0", "0", "0"]), text)
        XCTAssertTrue(rows.contains(["h2", "6", "tap", "up", "20", "-", "static", "yes", "no", "0", "0", "0"]), text)
        // A static entry says so in its KIND column, not under VERSION.
        XCTAssertTrue(rows.contains(["1", "239.1.1.1", "h1", "static", "-", "exclude", "never"]), text)
        XCTAssertTrue(text.contains("  VLAN  GROUP      PORT  KIND    VERSION  FILTER   EXPIRES\n"), text)

        let data = try ControlProtocol.encoder().encode(report)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let configuration = try XCTUnwrap(json["configuration"] as? [String: Any])
        XCTAssertEqual((configuration["timers"] as? [String: Any])?["query_interval"] as? Double, 60)
        XCTAssertEqual(configuration["flood_unregistered"] as? Bool, true)
        let vlan20 = try XCTUnwrap((configuration["vlans"] as? [[String: Any]])?.last)
        XCTAssertEqual(vlan20["vlan"] as? Int, 20)
        XCTAssertEqual(vlan20["igmp_snooping"] as? Bool, false)
        XCTAssertEqual(vlan20["mld_snooping"] as? Bool, false)
        XCTAssertEqual((vlan20["igmp_querier"] as? [String: Any])?["version"] as? Int, 2)
        XCTAssertEqual((vlan20["overrides"] as? [String: Any])?["snooping"] as? Bool, false)
        XCTAssertEqual((vlan20["overrides"] as? [String: Any])?["igmp_version"] as? Int, 2)
        let ports = try XCTUnwrap(json["ports"] as? [[String: Any]])
        XCTAssertEqual(ports.map { $0["query_guard"] as? Bool }, [true, false])
        XCTAssertEqual(ports.map { $0["attachment"] as? String }, ["packet", "tap"])
        XCTAssertEqual(try ControlProtocol.decoder().decode(StatusReport.self, from: data), report)
    }
}
