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
            VLAN = ID[:querier|:no-querier][:igmp-querier|:no-igmp-querier][:querier-address=A.B.C.D][:igmp-version=1|2|3][:mld-querier|:no-mld-querier][:mld-querier-address=[fe80::N]][:mld-version=1|2][:no-snooping|:no-mld-snooping]
            Durations are seconds, fractions allowed (0.2). Defaults are RFC 3376's (and RFC 9777's, the same).
            """)

    @Option(help: "A configuration file: the flags below, one a line, without their dashes. Flags given here override it; SIGHUP re-reads it.")
    var config: String?

    @Option(name: .customLong("port"), help: "A switch port (repeat for each port).")
    var ports: [String] = []

    @Flag(help: "Act as the IGMP and MLD querier of every VLAN (with election).")
    var querier = false

    @Option(help: "Source address of our IGMP queries.")
    var querierAddress: String = RunSettings.defaults.querierAddress

    @Option(help: "IGMP version of our queries: 1, 2 or 3.")
    var igmpVersion: Int = RunSettings.defaults.igmpVersion

    @Option(help: ArgumentHelp("Link-local source address of our MLD queries (default: the link-local address of the switch's MAC, fe80::53:4eff:fe4f:4f50).", valueName: "fe80::N"))
    var mldQuerierAddress: String?

    @Option(help: "MLD version of our queries: 1 or 2.")
    var mldVersion: Int = RunSettings.defaults.mldVersion

    @Option(help: "Query interval, seconds.")
    var queryInterval: String = RunSettings.defaults.queryInterval

    @Option(help: "Query response interval (max response time of general queries), seconds.")
    var queryResponseInterval: String = RunSettings.defaults.queryResponseInterval

    @Option(help: "Last member query interval, seconds.")
    var lastMemberQueryInterval: String = RunSettings.defaults.lastMemberQueryInterval

    @Option(help: "Last member query count (default: the robustness variable).")
    var lastMemberQueryCount: Int?

    @Option(help: "Robustness variable.")
    var robustness: Int = RunSettings.defaults.robustness

    @Option(name: .customLong("vlan"), help: ArgumentHelp(
        "Settings of one VLAN, beside the defaults above (repeat for each VLAN).",
        discussion: "ID[:querier|:no-querier][:igmp-querier|:no-igmp-querier][:querier-address=A.B.C.D][:igmp-version=1|2|3][:mld-querier|:no-mld-querier][:mld-querier-address=[fe80::N]][:mld-version=1|2][:no-snooping|:no-mld-snooping]"))
    var vlanSpecs: [String] = []

    @Option(help: "The source-specific multicast range: INCLUDE-mode membership only (RFC 4604).")
    var ssmRange: String = RunSettings.defaults.ssmRange

    @Option(help: "The IPv6 source-specific multicast range: INCLUDE-mode membership only (RFC 4604; default ff3x::/32 of every scope).")
    var mldSsmRange: String = RunSettings.defaults.mldSSMRange

    @Flag(help: "Flood traffic of unregistered groups in its VLAN instead of sending it to router ports only.")
    var floodUnregistered = false

    @Flag(help: "Flood neighbour solicitations (ff02::1:ff00:0/104) always, not only while a solicited-node group has no listener known.")
    var floodSolicitedNode = false

    @Option(help: ArgumentHelp("Relay these IEEE 802.1Q reserved addresses (01:80:C2:00:00:01 to 0F stay on their link otherwise; 00, spanning tree, is always relayed): names (lldp, eapol, ...), 0 to 15 or 0x0 to 0xf, comma-separated. PAUSE (1) and LACP (2) are refused.",
                               valueName: "LIST"))
    var forwardReserved: String?

    @Option(help: "Most MAC table entries.")
    var maxMacs: Int = RunSettings.defaults.maxMacs

    @Option(help: "Most MAC table entries learned on one port.")
    var maxMacsPerPort: Int = RunSettings.defaults.maxMacsPerPort

    @Option(help: "Most groups in one VLAN.")
    var maxGroupsPerVlan: Int = RunSettings.defaults.maxGroupsPerVlan

    @Option(help: "Most groups one port may join.")
    var maxGroupsPerPort: Int = RunSettings.defaults.maxGroupsPerPort

    @Option(help: "Most sources one port may list for one group.")
    var maxSourcesPerGroup: Int = RunSettings.defaults.maxSourcesPerGroup

    @Option(help: "IGMP messages per second a port may send before they are dropped.")
    var igmpRate: Int = RunSettings.defaults.igmpRate

    @Option(help: "MAC table aging time, seconds.")
    var fdbAging: String = RunSettings.defaults.fdbAging

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
    var ringSize: Int = RunSettings.defaults.ringSize

    /// Ahead of the hosts' processes (a sender that outruns the switch would waste its share
    /// on frames the switch drops), yet not so far that each frame of a TCP flow preempts its
    /// sender (README, Performance, has the measurements).
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

    @Option(help: ArgumentHelp("With the kernel fast path, a flow goes to the kernel once the switch decides one of its frames of at least BYTES, its way back with it (default \(DatapathOptions.defaultKernelFastPathFrameBytes): bulk traffic, which costs the switch's threads two copies a frame; 1: every flow).", valueName: "BYTES"))
    var kernelFastPathFrame: Int = DatapathOptions.defaultKernelFastPathFrameBytes

    @Option(help: "Serve Prometheus metrics on ADDRESS:PORT (GET /metrics).")
    var metrics: String?

    @Option(help: "A group whose members may read the status over the control socket (mode 0660 instead of 0600); changes and captures stay root's.")
    var controlGroup: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = RunSettings.defaults.logLevel

    /// The flags Control checks, as given.
    var settings: RunSettings {
        var settings = RunSettings()
        settings.ports = ports
        settings.querier = querier
        settings.querierAddress = querierAddress
        settings.igmpVersion = igmpVersion
        settings.mldQuerierAddress = mldQuerierAddress
        settings.mldVersion = mldVersion
        settings.mldSSMRange = mldSsmRange
        settings.floodSolicitedNode = floodSolicitedNode
        settings.queryInterval = queryInterval
        settings.queryResponseInterval = queryResponseInterval
        settings.lastMemberQueryInterval = lastMemberQueryInterval
        settings.lastMemberQueryCount = lastMemberQueryCount
        settings.robustness = robustness
        settings.vlans = vlanSpecs
        settings.ssmRange = ssmRange
        settings.floodUnregistered = floodUnregistered
        settings.forwardReserved = forwardReserved
        settings.maxMacs = maxMacs
        settings.maxMacsPerPort = maxMacsPerPort
        settings.maxGroupsPerVlan = maxGroupsPerVlan
        settings.maxGroupsPerPort = maxGroupsPerPort
        settings.maxSourcesPerGroup = maxSourcesPerGroup
        settings.igmpRate = igmpRate
        settings.fdbAging = fdbAging
        settings.threads = threads
        settings.cpus = cpus
        settings.ringSize = ringSize
        settings.nice = nice
        settings.kernelFastPathFrame = kernelFastPathFrame
        settings.logLevel = logLevel
        return settings
    }

    /// The command line's own arguments after `run`, to lay over the file's.
    static var commandLineArguments: [String] {
        let all = Array(CommandLine.arguments.dropFirst())
        guard let run = all.firstIndex(of: "run") else { return all }
        return Array(all[(run + 1)...])
    }

    /// The settings of `--config FILE` with the command line's on top; `run`'s own parser
    /// reads the file's lines.
    static func configured(file path: String, commandLine: [String]) throws -> ConfigFile.Settings {
        do {
            return try ConfigFile.Settings(file: path, commandLine: commandLine) { arguments in
                do {
                    return try Run.parse(arguments).settings
                } catch {
                    throw Failure(Run.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)")
                }
            }
        } catch {
            throw Failure("\(error)")
        }
    }

    func run() throws {
        let configured = try config.map { try Run.configured(file: $0, commandLine: Run.commandLineArguments) }
        let config: SwitchConfiguration, datapath: DatapathSettings
        do {
            if let configured {
                config = try configured.switchConfiguration()
                datapath = try configured.datapath(cpuAllowed: cpuAllowed)
            } else {
                config = try settings.switchConfiguration()
                datapath = try settings.datapath(cpuAllowed: cpuAllowed)
            }
        } catch {
            throw Failure("\(error)")
        }
        // The settings in force: the file's with the command line's on top (parsed once already).
        let run = try configured.map { try Run.parse($0.arguments) } ?? self
        try run.start(config, datapath, configFile: configured)
    }

    /// Starts the switch these flags describe; `config` and `datapath` are their checked settings.
    private func start(_ config: SwitchConfiguration, _ datapath: DatapathSettings, configFile: ConfigFile.Settings?) throws {
        guard let level = Logger.Level(rawValue: datapath.logLevel) else {
            throw Failure("--log-level '\(datapath.logLevel)' is not one of \(RunSettings.logLevels.joined(separator: ", "))")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "snoopswitch")
        let cpuList = datapath.cpus
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
            let options = DatapathOptions(controlPath: control, controlGroup: controlGroup, metricsAddress: metrics,
                                          threads: threads ?? (cpuList.isEmpty ? min(4, usableCPUCount()) : cpuList.count),
                                          ringBytes: ringSize * 1024, cpus: cpuList, busyPoll: busyPoll,
                                          filterHostStack: hostStackFilter, kernelFastPath: kernelFastPath,
                                          egressReplication: egressReplication,
                                          kernelFastPathFrameBytes: kernelFastPathFrame)
            daemon = try SwitchDaemon(configuration: config, options: options, logger: logger)
        } catch {
            throw Failure("\(error)")
        }
        if let configFile {
            daemon.readConfiguration = {
                try Run.configured(file: configFile.path, commandLine: configFile.commandLine).switchConfiguration()
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
