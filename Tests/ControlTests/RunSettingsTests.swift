import Foundation
import SwitchEngine
import Wire
import XCTest
@testable import Control

/// The settings of `run`: checked into a switch configuration, and laid over a configuration
/// file whose errors name their line.
final class RunSettingsTests: XCTestCase {
    private func settings(_ change: (inout RunSettings) -> Void) -> RunSettings {
        var settings = RunSettings()
        settings.ports = ["h1", "h2:pvid=10", "up:tagged=10,20:router"]
        change(&settings)
        return settings
    }

    private func error(_ change: (inout RunSettings) -> Void) -> SettingError? {
        do {
            _ = try settings(change).switchConfiguration()
            _ = try settings(change).datapath { $0 < 2 }
            return nil
        } catch {
            return error
        }
    }

    func testGoodSettingsMakeTheSwitch() throws {
        let config = try settings {
            $0.querier = true
            $0.querierAddress = "192.0.2.254"
            $0.igmpVersion = 2
            $0.queryInterval = "0.5"
            $0.queryResponseInterval = "0.2"
            $0.vlans = ["20:no-querier"]
            $0.forwardReserved = "lldp"
        }.switchConfiguration()
        XCTAssertEqual(config.ports.map(\.name), ["h1", "h2", "up"])
        XCTAssertEqual(config.querier, QuerierConfiguration(enabled: true, address: IPv4Address("192.0.2.254")!, version: .v2))
        XCTAssertEqual(config.timers.queryInterval, .milliseconds(500))
        XCTAssertEqual(config.timers.queryResponseInterval, .milliseconds(200))
        XCTAssertEqual(config.timers.lastMemberQueryCount, 2)
        XCTAssertEqual(config.vlans[VLANID(20)!]?.querier, false)
        XCTAssertEqual(config.ssmRange, IPv4Prefix("232.0.0.0/8"))
        let datapath = try settings { $0.cpus = "1,0"; $0.nice = -5 }.datapath { $0 < 2 }
        XCTAssertEqual(datapath, DatapathSettings(threads: nil, cpus: [1, 0], ringBytes: 1024 * 1024, nice: -5,
                                                  kernelFastPathFrameBytes: 1024, logLevel: "info"))
    }

    /// Each error names its setting (and, for ports and VLANs, the one at fault), in the words
    /// the command line has always used.
    func testErrorsNameTheirSetting() {
        let cases: [(SettingError, (inout RunSettings) -> Void)] = [
            (SettingError("port", "at least one --port is needed"), { $0.ports = [] }),
            (SettingError("port", value: "h1:bogus",
                          "bad port spec 'h1:bogus': unknown option 'bogus' (expected pvid=N, tagged=N,N,..., router, fast-leave, query-guard, tap or pcap)"),
             { $0.ports.append("h1:bogus") }),
            (SettingError("port", value: "h1:fast-leave", "port h1 given twice"), { $0.ports.append("h1:fast-leave") }),
            (SettingError("querier-address", "--querier-address '239.1.1.1' is not a unicast IPv4 address"), { $0.querierAddress = "239.1.1.1" }),
            (SettingError("igmp-version", "--igmp-version must be 1, 2 or 3, not 4"), { $0.igmpVersion = 4 }),
            (SettingError("robustness", "--robustness must be from 1 to 7, not 8"), { $0.robustness = 8 }),
            (SettingError("last-member-query-count", "--last-member-query-count must be at least 1"), { $0.lastMemberQueryCount = 0 }),
            (SettingError("query-interval", "--query-interval 'abc' is not a positive number of seconds"), { $0.queryInterval = "abc" }),
            (SettingError("query-response-interval", "--query-response-interval 30 is above 25.5 seconds"),
             { $0.igmpVersion = 2; $0.queryResponseInterval = "30" }),
            (SettingError("query-response-interval", "--query-response-interval (10) must be below --query-interval (5)"),
             { $0.queryInterval = "5" }),
            (SettingError("fdb-aging", "--fdb-aging '-1' is not a positive number of seconds"), { $0.fdbAging = "-1" }),
            (SettingError("max-groups-per-port", "--max-groups-per-port must be at least 1, not 0"), { $0.maxGroupsPerPort = 0 }),
            (SettingError("ssm-range", "--ssm-range '10.0.0.0/8' is not a multicast prefix A.B.C.D/N"), { $0.ssmRange = "10.0.0.0/8" }),
            (SettingError("vlan", value: "30", "bad VLAN spec '30': no port carries VLAN 30"), { $0.vlans = ["30"] }),
            (SettingError("vlan", value: "10:querier", "VLAN 10 given twice"), { $0.vlans = ["10", "10:querier"] }),
            (SettingError("log-level", "--log-level 'loud' is not one of trace, debug, info, notice, warning, error, critical"),
             { $0.logLevel = "loud" }),
            (SettingError("threads", "--threads takes 1 to 64, not 65"), { $0.threads = 65 }),
            (SettingError("kernel-fast-path-frame", "--kernel-fast-path-frame takes 1 to 65535 bytes, not 0"), { $0.kernelFastPathFrame = 0 }),
            (SettingError("cpus", "--cpus '0,5': CPU 5 is not one this process may run on"), { $0.cpus = "0,5" }),
            (SettingError("cpus", "--cpus '0,0-1': CPU 0 is listed twice"), { $0.cpus = "0,0-1" }),
            (SettingError("cpus", "--cpus '1-0': expected CPU numbers and ranges such as 0,1 or 2-3"), { $0.cpus = "1-0" }),
            (SettingError("ring-size", "--ring-size takes 0 to 262144 KiB, not -1"), { $0.ringSize = -1 }),
            (SettingError("nice", "--nice takes -20 to 19, not 20"), { $0.nice = 20 }),
            (SettingError("query-interval", "--query-interval '-1' is not a positive number of seconds"), { $0.queryInterval = "-1" }),
            (SettingError("robustness", "--robustness must be from 1 to 7, not -1"), { $0.robustness = -1 }),
            (SettingError("metrics", "--metrics '127.0.0.1' is not ADDRESS:PORT (an IPv4 address and a TCP port, such as 127.0.0.1:9100)"),
             { $0.metrics = "127.0.0.1" }),
            (SettingError("metrics", "--metrics '127.0.0.1:0' is not ADDRESS:PORT (an IPv4 address and a TCP port, such as 127.0.0.1:9100)"),
             { $0.metrics = "127.0.0.1:0" }),
            (SettingError("metrics", "--metrics 'localhost:9100': 'localhost' is not an IPv4 address"), { $0.metrics = "localhost:9100" }),
            (SettingError("vlan", value: "10:querier:querier", "bad VLAN spec '10:querier:querier': querier given twice"),
             { $0.vlans = ["10:querier:querier"] }),
            (SettingError("vlan", value: "10:no-querier:querier", "bad VLAN spec '10:no-querier:querier': no-querier and querier both given"),
             { $0.vlans = ["10:no-querier:querier"] }),
            (SettingError("vlan", value: "10:igmp-version=2:igmp-version=3",
                          "bad VLAN spec '10:igmp-version=2:igmp-version=3': igmp-version given twice"),
             { $0.vlans = ["10:igmp-version=2:igmp-version=3"] }),
            (SettingError("port", value: "h3:router:router", "bad port spec 'h3:router:router': router given twice"),
             { $0.ports.append("h3:router:router") }),
        ]
        for (expected, change) in cases {
            XCTAssertEqual(error(change), expected, expected.message)
        }
        XCTAssertEqual(error { $0.forwardReserved = "pause" }?.setting, "forward-reserved")
        XCTAssertNil(error { _ in })
        XCTAssertNil(error { $0.metrics = "127.0.0.1:9100"; $0.vlans = ["10:querier:no-igmp-querier:igmp-version=2:mld-version=1"] })
    }

    /// A loopback interface, whatever its name, is no port (a TAP of that name would be
    /// created, not opened: refused by the kernel, not here).
    func testALoopbackInterfaceIsNoPort() {
        let settings = settings { $0.ports.append("lo2") }
        XCTAssertThrowsError(try settings.switchConfiguration(isLoopback: { $0 == "lo2" })) {
            XCTAssertEqual($0 as? SettingError, SettingError("port", value: "lo2",
                "bad port spec 'lo2': lo2 is the loopback interface: loopback cannot be a switch port (what is sent on it comes back to this host only)"))
        }
        XCTAssertNoThrow(try settings.switchConfiguration(isLoopback: { _ in false }))
    }

    // MARK: - The configuration file

    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("snoopswitch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try FileManager.default.removeItem(at: directory)
    }

    private func file(_ text: String) throws -> String {
        let path = directory.appendingPathComponent("snoopswitch.conf").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private struct ParseError: Error, CustomStringConvertible { let description: String }

    /// A stand-in for the command line's parser: the few flags these tests use.
    private func parse(_ arguments: [String]) throws -> RunSettings {
        var settings = RunSettings()
        var rest = arguments[...]
        while let flag = rest.popFirst() {
            func value() throws -> String {
                guard let value = rest.popFirst() else { throw ParseError(description: "Missing value for '\(flag) <value>'") }
                return value
            }
            switch flag {
            case "--port": settings.ports.append(try value())
            case "--vlan": settings.vlans.append(try value())
            case "--querier": settings.querier = true
            case "--query-interval": settings.queryInterval = try value()
            case "--query-response-interval": settings.queryResponseInterval = try value()
            case "--threads":
                let text = try value()
                guard let number = Int(text) else { throw ParseError(description: "The value '\(text)' is invalid for '--threads <threads>'") }
                settings.threads = number
            default: throw ParseError(description: "Unknown option '\(flag)'")
            }
        }
        return settings
    }

    /// The error of a file and command line, with the path replaced by FILE.
    private func failure(_ text: String, _ commandLine: [String] = [],
                         _ check: (ConfigFile.Settings) throws -> Void = { _ = try $0.switchConfiguration() }) throws -> String? {
        let path = try file(text)
        do {
            try check(try ConfigFile.Settings(file: path, commandLine: commandLine, parse: parse))
            return nil
        } catch let error as ConfigFile.Error {
            XCTAssertEqual(error.path, path)
            return "\(error)".replacingOccurrences(of: path, with: "FILE")
        }
    }

    func testTheCommandLineGoesOverTheFile() throws {
        let path = try file("port h1\nport h2\nquery-interval 5\nquerier\n")
        let configured = try ConfigFile.Settings(file: path, commandLine: ["--config", path, "--port", "h1:fast-leave",
                                                                           "--query-interval", "7"], parse: parse)
        XCTAssertEqual(configured.commandLine, ["--port", "h1:fast-leave", "--query-interval", "7"])
        let settings = configured.settings
        XCTAssertEqual(settings.ports, ["h2", "h1:fast-leave"])
        XCTAssertEqual(settings.queryInterval, "7")
        XCTAssertTrue(settings.querier)
    }

    /// The line of the file that set what is wrong, found from the error's setting.
    func testErrorsNameTheLineThatSetTheSetting() throws {
        let head = "# a configuration\nport h1\n"
        XCTAssertEqual(try failure(head + "bogus-setting 1\nport h2\n"), "FILE:3: Unknown option 'bogus-setting'")
        XCTAssertEqual(try failure(head + "threads many\n"), "FILE:3: The value 'many' is invalid for 'threads <threads>'")
        XCTAssertEqual(try failure(head + "query-interval\n"), "FILE:3: Missing value for 'query-interval <value>'")
        XCTAssertEqual(try failure(head + "--querier\n"),
                       "FILE:3: '--querier' is not a setting (write settings as flags without their dashes)")
        XCTAssertEqual(try failure(head + "port h1:fast-leave\n"), "FILE:3: port h1 given twice")
        // Checked after merging: the line that set the setting at fault...
        XCTAssertEqual(try failure(head + "query-interval abc\nport h2\n"),
                       "FILE:3: --query-interval 'abc' is not a positive number of seconds")
        XCTAssertEqual(try failure(head + "port h3:bogus\nport h2\n"),
                       "FILE:3: bad port spec 'h3:bogus': unknown option 'bogus' (expected pvid=N, tagged=N,N,..., router, fast-leave, query-guard, tap or pcap)")
        XCTAssertEqual(try failure(head + "query-interval 5\n\nquery-response-interval 5\n"),
                       "FILE:5: --query-response-interval (5) must be below --query-interval (5)")
        XCTAssertEqual(try failure(head + "vlan 30\n"), "FILE:3: bad VLAN spec '30': no port carries VLAN 30")
        // ...unless the command line gave it: then the file is named, not a line of it.
        XCTAssertEqual(try failure(head + "query-interval 5\n", ["--query-interval", "abc"]),
                       "FILE: --query-interval 'abc' is not a positive number of seconds")
        XCTAssertEqual(try failure(head, ["--port", "h2:bogus"]),
                       "FILE: bad port spec 'h2:bogus': unknown option 'bogus' (expected pvid=N, tagged=N,N,..., router, fast-leave, query-guard, tap or pcap)")
        XCTAssertEqual(try failure("querier\n"), "FILE: at least one --port is needed")
        // The datapath's settings likewise.
        XCTAssertEqual(try failure(head + "threads 65\n", [], { _ = try $0.datapath { _ in true } }),
                       "FILE:3: --threads takes 1 to 64, not 65")
        XCTAssertNil(try failure(head + "query-interval 5\nquery-response-interval 2\n"))
    }

    /// An unreadable file is named with the system's reason, and told from a wrong one.
    func testAnUnreadableFileIsNamedWithItsReason() throws {
        let missing = directory.appendingPathComponent("missing.conf").path
        for (path, reason) in [(missing, "No such file or directory"), (directory.path, "Is a directory")] {
            XCTAssertThrowsError(try ConfigFile.Settings(file: path, commandLine: [], parse: parse)) {
                XCTAssertEqual("\($0)", "\(path): cannot read the configuration file: \(reason)")
                XCTAssertEqual(($0 as? ConfigFile.Error)?.line, nil)
                XCTAssertEqual(($0 as? ConfigFile.Error)?.kind, .unreadable)
            }
        }
        let wrong = try file("port h1\nbogus-setting\n")
        XCTAssertThrowsError(try ConfigFile.Settings(file: wrong, commandLine: [], parse: parse)) {
            XCTAssertEqual(($0 as? ConfigFile.Error)?.kind, .content)
        }
        let binary = directory.appendingPathComponent("binary.conf").path
        try Data([0x70, 0xff, 0xfe, 0x0a]).write(to: URL(fileURLWithPath: binary))
        XCTAssertThrowsError(try ConfigFile.Settings(file: binary, commandLine: [], parse: parse)) {
            XCTAssertEqual("\($0)", "\(binary): not UTF-8 text")
            XCTAssertEqual(($0 as? ConfigFile.Error)?.kind, .content)
        }
    }
}
