import ArgumentParser
import Control
import Datapath
import Foundation
import Logging
import Ports
import SwitchEngine
import Wire

/// Entry point. Errors on the command line are one line on stderr and a non-zero exit; help
/// is printed in full.
@main
enum Main {
    static func main() {
        do {
            var command = try SnoopSwitch.parseAsRoot()
            try command.run()
        } catch {
            let code = SnoopSwitch.exitCode(for: error)
            if code == .success {
                print(SnoopSwitch.fullMessage(for: error))
                exit(0)
            }
            let message = SnoopSwitch.message(for: error)
                .split(separator: "\n").first.map(String.init) ?? "\(error)"
            FileHandle.standardError.write(Data("snoopswitch: \(message)\n".utf8))
            exit(code.rawValue == 0 ? 1 : code.rawValue)
        }
    }
}

struct SnoopSwitch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snoopswitch",
        abstract: "A user-space IGMP snooping Ethernet switch.",
        subcommands: [Run.self, Status.self, PortCommand.self, FdbCommand.self, MdbCommand.self, Capture.self])
}

/// A failure that ends the command: printed as one line.
struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the switch on the given ports.",
        discussion: """
            SPEC = IFNAME[:pvid=N][:tagged=N,N,...][:router][:fast-leave][:query-guard]   (no pvid and no tagged: pvid=1)
            VLAN = ID[:querier|:no-querier][:querier-address=A.B.C.D][:igmp-version=1|2|3][:no-snooping]
            Durations are seconds, fractions allowed (0.2). Defaults are RFC 3376's.
            """)

    @Option(help: "A configuration file: the flags below, one a line, without their dashes. Flags given here override it; SIGHUP re-reads it.")
    var config: String?

    @Option(name: .customLong("port"), help: "A switch port (repeat for each port).")
    var ports: [String] = []

    @Flag(help: "Act as the IGMP querier of every VLAN (with election).")
    var querier = false

    @Option(help: "Source address of our queries.")
    var querierAddress: String = "0.0.0.0"

    @Option(help: "IGMP version of our queries: 1, 2 or 3.")
    var igmpVersion: Int = 3

    @Option(help: "Query interval, seconds.")
    var queryInterval: String = "125"

    @Option(help: "Query response interval (max response time of general queries), seconds.")
    var queryResponseInterval: String = "10"

    @Option(help: "Last member query interval, seconds.")
    var lastMemberQueryInterval: String = "1"

    @Option(help: "Last member query count (default: the robustness variable).")
    var lastMemberQueryCount: Int?

    @Option(help: "Robustness variable.")
    var robustness: Int = 2

    @Option(name: .customLong("vlan"), help: ArgumentHelp(
        "Settings of one VLAN, beside the defaults above (repeat for each VLAN).",
        discussion: "ID[:querier|:no-querier][:querier-address=A.B.C.D][:igmp-version=1|2|3][:no-snooping]"))
    var vlanSpecs: [String] = []

    @Option(help: "The source-specific multicast range: INCLUDE-mode membership only (RFC 4604).")
    var ssmRange: String = "232.0.0.0/8"

    @Flag(help: "Flood traffic of unregistered groups in its VLAN instead of sending it to router ports only.")
    var floodUnregistered = false

    @Option(help: ArgumentHelp("Relay these IEEE 802.1Q reserved addresses (01:80:C2:00:00:01 to 0F stay on their link otherwise; 00, spanning tree, is always relayed): names (lldp, eapol, ...), 0 to 15 or 0x0 to 0xf, comma-separated. PAUSE (1) and LACP (2) are refused.",
                               valueName: "LIST"))
    var forwardReserved: String?

    @Option(help: "Most MAC table entries.")
    var maxMacs: Int = 65_536

    @Option(help: "Most MAC table entries learned on one port.")
    var maxMacsPerPort: Int = 8_192

    @Option(help: "Most groups in one VLAN.")
    var maxGroupsPerVlan: Int = 65_536

    @Option(help: "Most groups one port may join.")
    var maxGroupsPerPort: Int = 16_384

    @Option(help: "Most sources one port may list for one group.")
    var maxSourcesPerGroup: Int = 256

    @Option(help: "IGMP messages per second a port may send before they are dropped.")
    var igmpRate: Int = 1_000

    @Option(help: "MAC table aging time, seconds.")
    var fdbAging: String = "300"

    @Option(help: "Path of the control socket.")
    var control: String = ControlProtocol.defaultPath

    @Flag(help: "Spin on the ports instead of sleeping until frames arrive: a core for lower latency and higher rates.")
    var busyPoll = false

    @Option(help: "Forwarding threads, each with its own socket on every port (default: one per CPU the switch may run on, at most 4).")
    var threads: Int?

    @Option(help: ArgumentHelp("Bind forwarding thread i to the i-th CPU of LIST (e.g. 0,1 or 2-3). Thread i of n takes the flows whose first frame the kernel receives on CPUs i, i+n... (a veth's: its sender's CPU); by default each thread is bound to a CPU whose flows it does not take.",
                               valueName: "LIST"))
    var cpus: String?

    @Option(help: ArgumentHelp("Receive ring of each packet socket, KiB (0: none, frames read with recvmmsg).",
                               valueName: "KiB"))
    var ringSize: Int = 1024

    /// Ahead of the hosts' processes (a sender that outruns the switch would waste its share
    /// on frames the switch drops), yet not so far that each frame of a TCP flow preempts its
    /// sender: in bench.sh -10 carried 18-19.8 Gbit/s of TCP where -20 carried 15.4-18.9, the
    /// frame rates alike.
    static let defaultNice = -10

    // Unconditional: the value is usually negative (--nice -10), which would read as a flag.
    @Option(parsing: .unconditional,
            help: ArgumentHelp("Scheduling nice value of the forwarding threads, -20 to 19 (default \(Run.defaultNice): ahead of the hosts' processes, as the kernel's own forwarding in softirq is).",
                               valueName: "N"))
    var nice: Int?

    @Flag(inversion: .prefixedNo,
          help: "Keep the frames of packet ports from this namespace's own IP stack, as a bridge port does (BPF on the TCX ingress hook, Linux 6.6 or later).")
    var hostStackFilter = true

    @Flag(inversion: .prefixedNo,
          help: "Let the kernel forward the later frames of a unicast flow between two untagged packet ports once the switch has decided its first (BPF on the TCX ingress hook, Linux 6.6 or later); without it, the switch's threads forward every frame.")
    var kernelFastPath = true

    @Flag(inversion: .prefixedNo,
          help: "Send a frame for several packet ports (a flood, a group's members) once, on one of them, and let the kernel clone it to the others (BPF on the TCX egress hook, Linux 6.6 or later); without it, the switch's threads send a copy to each port.")
    var egressReplication = true

    @Option(help: ArgumentHelp("With the kernel fast path, a flow goes to the kernel once the switch decides one of its frames of at least BYTES, its way back with it (default \(SwitchDaemon.defaultKernelFastPathFrameBytes): bulk traffic, which costs the switch's threads two copies a frame; 1: every flow).", valueName: "BYTES"))
    var kernelFastPathFrame: Int = SwitchDaemon.defaultKernelFastPathFrameBytes

    @Option(help: "Serve Prometheus metrics on ADDRESS:PORT (GET /metrics).")
    var metrics: String?

    @Option(help: "A group whose members may read the status over the control socket (mode 0660 instead of 0600); changes and captures stay root's.")
    var controlGroup: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func switchConfiguration() throws -> SwitchConfiguration {
        guard !ports.isEmpty else { throw Failure("at least one --port is needed") }
        var portConfigs: [PortConfiguration] = []
        for spec in ports {
            let port = try PortSpec.parse(spec)
            guard !portConfigs.contains(where: { $0.name == port.name }) else {
                throw Failure("port \(port.name) given twice")
            }
            portConfigs.append(port)
        }
        guard portConfigs.count <= PortSet.capacity else { throw Failure("at most \(PortSet.capacity) ports") }
        var config = SwitchConfiguration(ports: portConfigs)
        guard let address = IPv4Address(querierAddress), !address.isMulticast else {
            throw Failure("--querier-address '\(querierAddress)' is not a unicast IPv4 address")
        }
        guard let version = IGMPVersion(rawValue: igmpVersion) else {
            throw Failure("--igmp-version must be 1, 2 or 3, not \(igmpVersion)")
        }
        config.querier = QuerierConfiguration(enabled: querier, address: address, version: version)
        guard (1...7).contains(robustness) else { throw Failure("--robustness must be from 1 to 7, not \(robustness)") }
        config.timers.robustness = robustness
        config.timers.lastMemberQueryCount = lastMemberQueryCount ?? robustness
        guard config.timers.lastMemberQueryCount >= 1 else { throw Failure("--last-member-query-count must be at least 1") }
        config.timers.queryInterval = try seconds(queryInterval, "--query-interval", max: 31744)
        config.timers.queryResponseInterval = try seconds(queryResponseInterval, "--query-response-interval",
                                                          max: version == .v2 ? 25.5 : 3174.4)
        config.timers.lastMemberQueryInterval = try seconds(lastMemberQueryInterval, "--last-member-query-interval",
                                                            max: version == .v2 ? 25.5 : 3174.4)
        guard config.timers.queryResponseInterval < config.timers.queryInterval else {
            throw Failure("--query-response-interval (\(queryResponseInterval)) must be below --query-interval (\(queryInterval))")
        }
        config.fdbAging = try seconds(fdbAging, "--fdb-aging", max: 1_000_000)
        for (value, flag) in [(maxMacs, "--max-macs"), (maxMacsPerPort, "--max-macs-per-port"),
                              (maxGroupsPerVlan, "--max-groups-per-vlan"), (maxGroupsPerPort, "--max-groups-per-port"),
                              (maxSourcesPerGroup, "--max-sources-per-group"), (igmpRate, "--igmp-rate")] where value < 1 {
            throw Failure("\(flag) must be at least 1, not \(value)")
        }
        config.macTableLimit = maxMacs
        config.macsPerPortLimit = maxMacsPerPort
        config.membershipLimits.groupsPerVLAN = maxGroupsPerVlan
        config.membershipLimits.groupsPerPort = maxGroupsPerPort
        config.membershipLimits.sourcesPerGroup = maxSourcesPerGroup
        config.igmpRatePerPort = igmpRate
        config.floodUnregistered = floodUnregistered
        if let forwardReserved { config.relayedReservedAddresses = try ReservedAddressSpec.parse(forwardReserved) }
        guard let range = IPv4Prefix(ssmRange), range.address.isMulticast else {
            throw Failure("--ssm-range '\(ssmRange)' is not a multicast prefix A.B.C.D/N")
        }
        config.ssmRange = range
        for spec in vlanSpecs {
            let (vlan, settings) = try VLANSpec.parse(spec)
            guard config.vlans[vlan] == nil else { throw Failure("VLAN \(vlan) given twice") }
            guard config.allVLANs.contains(vlan) else { throw Failure("bad VLAN spec '\(spec)': no port carries VLAN \(vlan)") }
            if settings.igmpVersion == .v2, config.timers.queryResponseInterval > .milliseconds(25_500) {
                throw Failure("bad VLAN spec '\(spec)': an IGMPv2 querier cannot send a query response interval above 25.5 s")
            }
            config.vlans[vlan] = settings
        }
        return config
    }

    /// Seconds with fractions, positive and encodable in IGMP (tenths of a second).
    private func seconds(_ text: String, _ flag: String, max: Double) throws -> Duration {
        guard let value = Double(text), value.isFinite, value > 0 else {
            throw Failure("\(flag) '\(text)' is not a positive number of seconds")
        }
        guard value <= max else { throw Failure("\(flag) \(text) is above \(max) seconds") }
        return .nanoseconds(Int64((value * 1e9).rounded()))
    }

    /// `0,1`, `2-3`, `0,2-3`: CPUs this process may run on, in order, each once.
    static func parseCPUs(_ text: String) throws -> [Int] {
        var list: [Int] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
            guard (1...2).contains(bounds.count), let low = bounds.first!, let high = bounds.last!, low <= high, low >= 0 else {
                throw Failure("--cpus '\(text)': expected CPU numbers and ranges such as 0,1 or 2-3")
            }
            for cpu in low...high {
                guard cpuAllowed(cpu) else { throw Failure("--cpus '\(text)': CPU \(cpu) is not one this process may run on") }
                guard !list.contains(cpu) else { throw Failure("--cpus '\(text)': CPU \(cpu) is listed twice") }
                list.append(cpu)
            }
        }
        return list
    }

    /// The command line's own arguments after `run`, to lay over the file's.
    static var commandLineArguments: [String] {
        let all = Array(CommandLine.arguments.dropFirst())
        guard let run = all.firstIndex(of: "run") else { return all }
        return Array(all[(run + 1)...])
    }

    /// The settings in force: the configuration file's, with the command line's on top.
    static func effective(file path: String, commandLine: [String]) throws -> Run {
        let lines: [ConfigFile.Line]
        do {
            lines = try ConfigFile.read(path)
        } catch {
            throw Failure("\(error)")
        }
        var seen = Set<String>()
        for line in lines {
            do {
                _ = try Run.parse(line.arguments)
            } catch {
                // The file writes settings without dashes: so does the message.
                let message = (Run.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)")
                    .replacingOccurrences(of: "'--", with: "'")
                throw Failure("\(path):\(line.number): \(message)")
            }
            if line.arguments.count == 2, line.arguments[0] == "--port" || line.arguments[0] == "--vlan" {
                let name = String(line.arguments[1].split(separator: ":").first ?? "")
                let kind = line.arguments[0].dropFirst(2)
                guard seen.insert("\(kind) \(name)").inserted else {
                    throw Failure("\(path):\(line.number): \(kind) \(name) given twice")
                }
            }
        }
        let merged = ConfigFile.merge(lines, commandLine: commandLine.filter { $0 != "--config" && $0 != path && !$0.hasPrefix("--config=") })
        let run: Run
        do {
            run = try Run.parse(merged)
        } catch {
            throw Failure("\(path): \(Run.message(for: error).split(separator: "\n").first ?? "")")
        }
        do {
            _ = try run.switchConfiguration()
        } catch {
            // Name the line that set the flag the message is about, when the file set it.
            let message = "\(error)"
            let flag = message.split(separator: " ").first { $0.hasPrefix("--") }.map(String.init)
            if let flag, let line = lines.last(where: { $0.arguments.first == flag }),
               !commandLine.contains(flag) {
                throw Failure("\(path):\(line.number): \(message)")
            }
            if let line = lines.last(where: { $0.arguments.dropFirst().contains { message.contains("'\($0)'") } }) {
                throw Failure("\(path):\(line.number): \(message)")
            }
            throw Failure("\(path): \(message)")
        }
        return run
    }

    func run() throws {
        let settings = try config.map { try Run.effective(file: $0, commandLine: Run.commandLineArguments) } ?? self
        try settings.start(configFile: config)
    }

    private func start(configFile: String?) throws {
        let config = try switchConfiguration()
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw Failure("--log-level '\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "snoopswitch")
        if let threads, !(1...64).contains(threads) { throw Failure("--threads takes 1 to 64, not \(threads)") }
        guard (1...65535).contains(kernelFastPathFrame) else {
            throw Failure("--kernel-fast-path-frame takes 1 to 65535 bytes, not \(kernelFastPathFrame)")
        }
        let cpuList = try cpus.map(Run.parseCPUs) ?? []
        guard (0...262_144).contains(ringSize) else { throw Failure("--ring-size takes 0 to 262144 KiB, not \(ringSize)") }
        if let nice, !(-20...19).contains(nice) { throw Failure("--nice takes -20 to 19, not \(nice)") }
        // Before any thread starts: they inherit it. Asked for, it must take; by default, a
        // process without CAP_SYS_NICE forwards at its own priority.
        do throws(SystemError) {
            try SystemThread.setCurrentNice(nice ?? Self.defaultNice)
        } catch {
            if nice != nil { throw Failure("--nice: \(error)") }
            logger.warning("\(error); forwarding threads at nice \(SystemThread.currentNice)")
        }
        switch SystemThread.rankOwnSessionGroup(nice: SystemThread.currentNice) {
        case .failure(let error)?: logger.warning("\(error); this session's scheduling group keeps its rank")
        case .success?: logger.info("own session: its scheduling group (autogroup) at nice \(SystemThread.currentNice) too")
        case nil: break
        }
        let daemon: SwitchDaemon
        do {
            daemon = try SwitchDaemon(configuration: config, controlPath: control, controlGroup: controlGroup,
                                      metricsAddress: metrics,
                                      threads: threads ?? (cpuList.isEmpty ? min(4, usableCPUCount()) : cpuList.count),
                                      ringBytes: ringSize * 1024, cpus: cpuList, busyPoll: busyPoll,
                                      filterHostStack: hostStackFilter, kernelFastPath: kernelFastPath,
                                      egressReplication: egressReplication,
                                      kernelFastPathFrameBytes: kernelFastPathFrame, logger: logger)
        } catch {
            throw Failure("\(error)")
        }
        if let configFile {
            let commandLine = Run.commandLineArguments
            daemon.readConfiguration = {
                try Run.effective(file: configFile, commandLine: commandLine).switchConfiguration()
            }
        }
        throw ExitCode(daemon.run())
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show ports, groups, router ports, queriers, MAC table and counters.")

    @Option(help: "Path of the control socket.")
    var control: String = ControlProtocol.defaultPath

    @Flag(help: "Print the status as one JSON document.")
    var json = false

    func run() throws {
        if json {
            print(try ask(.status(.json), control: control))
            return
        }
        // The switch makes the tables itself; one from before it could sends its JSON.
        let answer = try ask(.status(.text), control: control)
        guard answer.hasPrefix("{") else {
            print(answer)
            return
        }
        do {
            let report = try ControlProtocol.decoder().decode(StatusReport.self, from: Data(answer.utf8))
            print(report.renderText(), terminator: "")
        } catch {
            throw Failure("unreadable answer from the switch: \(error)")
        }
    }
}

/// Sends one request to the running switch; its error, if any, becomes ours.
func ask(_ request: ControlRequest, control: String) throws -> String {
    do {
        return try ControlClient.ask(request, path: control)
    } catch {
        throw Failure("\(error)")
    }
}

/// A request made from the command line's words: what the switch would refuse is said here,
/// before asking, in the switch's words.
func checked<T>(_ make: () throws -> T) throws -> T {
    do {
        return try make()
    } catch {
        throw Failure("\(error)")
    }
}

struct ControlOption: ParsableArguments {
    @Option(help: "Path of the control socket.")
    var control: String = ControlProtocol.defaultPath
}

struct PortCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "port", abstract: "Add or remove a port of the running switch.",
        subcommands: [Add.self, Del.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a port: IFNAME[:pvid=N][:tagged=N,...][:router][:fast-leave][:query-guard].")
        @Argument var spec: String
        @OptionGroup var options: ControlOption
        func run() throws {
            let port = try PortSpec.parse(spec)        // a bad SPEC is said here, before asking
            _ = try ask(.port(.add(port)), control: options.control)
        }
    }

    struct Del: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a port; what was learned on it goes with it.")
        @Argument var name: String
        @OptionGroup var options: ControlOption
        func run() throws { _ = try ask(.port(.remove(name: name)), control: options.control) }
    }
}

struct FdbCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fdb", abstract: "The MAC table of the running switch.", subcommands: [Flush.self])

    struct Flush: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Forget every learned MAC address.")
        @OptionGroup var options: ControlOption
        func run() throws { _ = try ask(.fdb(.flush), control: options.control) }
    }
}

struct MdbCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mdb", abstract: "The group membership table of the running switch.",
        subcommands: [Flush.self, Add.self, Del.self])

    struct Flush: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Forget learned memberships (static ones stay).")
        @Option(help: "Only in this VLAN.") var vlan: Int?
        @OptionGroup var options: ControlOption
        func run() throws {
            let id = try checked { try vlan.map { try ControlRequest.vlan(String($0)) } }
            _ = try ask(.mdb(.flush(vlan: id)), control: options.control)
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A static membership: PORT gets GROUP until it is deleted.")
        @Argument var port: String
        @Argument var group: String
        @Option(help: "The VLAN (default 1).") var vlan: Int = 1
        @OptionGroup var options: ControlOption
        func run() throws {
            let entry = try checked {
                ControlRequest.StaticMembership(port: port, group: try ControlRequest.group(group), vlan: try ControlRequest.vlan(String(vlan)))
            }
            _ = try ask(.mdb(.add(entry)), control: options.control)
        }
    }

    struct Del: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a static membership.")
        @Argument var port: String
        @Argument var group: String
        @Option(help: "The VLAN (default 1).") var vlan: Int = 1
        @OptionGroup var options: ControlOption
        func run() throws {
            let entry = try checked {
                ControlRequest.StaticMembership(port: port, group: try ControlRequest.group(group), vlan: try ControlRequest.vlan(String(vlan)))
            }
            _ = try ask(.mdb(.remove(entry)), control: options.control)
        }
    }
}

nonisolated(unsafe) private var captureStop = false

struct Capture: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write what the switch receives and sends to a pcap file (until ^C).")

    @Argument(help: "The pcap file to write.") var file: String
    @Option(help: "Only this port's frames (default: every port).") var port: String?
    @Flag(help: "Only IGMP, PIM and multicast router discovery frames.") var controlOnly = false
    @Option(help: "Stop after this many frames.") var count: Int?
    @Option(help: "Stop after this many seconds.") var duration: Double?
    @OptionGroup var options: ControlOption

    func run() throws {
        let writer: PcapWriter
        do { writer = try PcapWriter(path: file) } catch { throw Failure("\(error)") }
        let fd: Int32
        do {
            fd = try ControlClient.open(.capture(.init(port: port, controlOnly: controlOnly)), path: options.control)
        } catch {
            throw Failure("\(error)")
        }
        defer { close(fd) }
        signal(SIGINT) { _ in captureStop = true }
        signal(SIGTERM) { _ in captureStop = true }
        let reader = StreamReader(fd)
        guard let first = reader.line() else { throw Failure("the switch closed the connection") }
        if case .error(let message)? = try? ControlAnswer(line: first) { throw Failure(message) }
        let deadline = duration.map { Date().addingTimeInterval($0) }
        while !captureStop, count.map({ writer.frames < $0 }) ?? true, deadline.map({ Date() < $0 }) ?? true {
            guard reader.wait(milliseconds: 200) else { continue }
            guard let header = reader.bytes(CaptureRecord.headerLength) else { break }
            let length = Int(UInt32(header[0]) << 24 | UInt32(header[1]) << 16 | UInt32(header[2]) << 8 | UInt32(header[3]))
            var time: Int64 = 0
            for byte in header[5..<13] { time = time << 8 | Int64(byte) }
            guard length <= CaptureRecord.maximumFrame, let frame = reader.bytes(length) else { break }
            frame.withUnsafeBytes { writer.write($0, nanoseconds: time) }
            if writer.frames % 64 == 0 { writer.flush() }
        }
        writer.flush()
        FileHandle.standardError.write(Data("snoopswitch: \(writer.frames) frames written to \(file)\n".utf8))
    }
}

/// Buffered reads from the capture stream.
final class StreamReader {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0

    init(_ fd: Int32) { self.fd = fd }

    private var available: Int { buffer.count - start }

    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 262_144)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { if captureStop { return false } else { continue } }
            guard n > 0 else { return false }
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            buffer += chunk[0..<n]
            return true
        }
    }

    /// Whether data is there within the time (or already buffered).
    func wait(milliseconds: Int32) -> Bool {
        if available > 0 { return true }
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, milliseconds) > 0
    }

    func bytes(_ count: Int) -> [UInt8]? {
        while available < count { guard fill() else { return nil } }
        defer { start += count }
        return Array(buffer[start..<start + count])
    }

    func line() -> String? {
        while true {
            if let end = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                defer { start = end + 1 }
                return String(decoding: buffer[start..<end], as: UTF8.self)
            }
            guard fill() else { return nil }
        }
    }
}
