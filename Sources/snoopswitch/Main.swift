import ArgumentParser
import Control
import Datapath
import Foundation
import Logging
import Ports
import SwitchEngine
import Wire

/// Entry point. Errors on the command line are one line on stderr and a non-zero exit
/// (`ExitStatus`); help is printed in full.
@main
enum Main {
    static func main() {
        do {
            var command = try SnoopSwitch.parseAsRoot()
            try command.run()
        } catch let failure as Failure {
            say(failure.description)
            exit(failure.status)
        } catch let code as ExitCode {
            exit(code.rawValue)       // the switch's own, after its log said why
        } catch {
            let code = SnoopSwitch.exitCode(for: error)
            if code == .success {
                print(SnoopSwitch.fullMessage(for: error))
                exit(0)
            }
            say(SnoopSwitch.message(for: error))
            exit(code.rawValue == 0 ? ExitStatus.failure : code.rawValue)
        }
    }

    /// The first line of `message` on stderr.
    private static func say(_ message: String) {
        let line = message.split(separator: "\n").first.map(String.init) ?? message
        FileHandle.standardError.write(Data("snoopswitch: \(line)\n".utf8))
    }
}

/// How every command exits when it fails (sysexits.h's codes where one fits); 0 when it did
/// what was asked (the switch: stopped by SIGTERM or SIGINT).
enum ExitStatus {
    /// A runtime failure: an interface missing, a socket that cannot be opened, the switch
    /// unreachable, the switch refused the request.
    static let failure: Int32 = 1
    /// EX_USAGE: the command line is wrong (a bad flag, SPEC or value, a configuration file
    /// line that is).
    static let usage: Int32 = 64
    /// EX_NOINPUT: the configuration file cannot be read (missing, not permitted, a directory).
    static let noInput: Int32 = 66
}

struct SnoopSwitch: ParsableCommand {
    /// The release, as `snoopswitch --version` prints it (with the command's name).
    static let version = "0.3.0"

    static let configuration = CommandConfiguration(
        commandName: "snoopswitch",
        abstract: "A user-space IGMP and MLD snooping Ethernet switch.",
        version: "snoopswitch \(version)",
        subcommands: [Run.self, Status.self, PortCommand.self, FdbCommand.self, MdbCommand.self, Capture.self])
}

/// A failure that ends the command: printed as one line, exiting with `status`.
struct Failure: Error, CustomStringConvertible {
    let description: String
    let status: Int32
    /// A runtime failure unless `status` says otherwise.
    init(_ description: String, status: Int32 = ExitStatus.failure) {
        self.description = description
        self.status = status
    }

    /// The command line is at fault.
    static func usage(_ description: String) -> Failure { Failure(description, status: ExitStatus.usage) }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the switch on the given ports.",
        discussion: """
            SPEC = IFNAME[:pvid=N][:tagged=N,N,...][:router][:fast-leave][:query-guard]
                   [:tap|:pcap]   (no pvid and no tagged: pvid=1; :tap creates a TAP device
                   of that name, :pcap opens the interface through libpcap)
            VLAN = ID[:querier|:no-querier][:igmp-querier|:no-igmp-querier]
                   [:querier-address=A.B.C.D][:igmp-version=1|2|3]
                   [:mld-querier|:no-mld-querier][:mld-querier-address=[fe80::N]]
                   [:mld-version=1|2][:no-snooping|:no-mld-snooping]
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

    // Numbers and durations are parsed unconditionally: a negative one (-1) would read as a
    // flag ("Missing value"); taken as the value, it meets the check that says what is wrong.
    @Option(parsing: .unconditional, help: "IGMP version of our queries: 1, 2 or 3.")
    var igmpVersion: Int = RunSettings.defaults.igmpVersion

    @Option(help: ArgumentHelp("Link-local source address of our MLD queries (default: the link-local address of the switch's MAC, fe80::53:4eff:fe4f:4f50).", valueName: "fe80::N"))
    var mldQuerierAddress: String?

    @Option(parsing: .unconditional, help: "MLD version of our queries: 1 or 2.")
    var mldVersion: Int = RunSettings.defaults.mldVersion

    @Option(parsing: .unconditional, help: "Query interval, seconds.")
    var queryInterval: String = RunSettings.defaults.queryInterval

    @Option(parsing: .unconditional, help: "Query response interval (max response time of general queries), seconds.")
    var queryResponseInterval: String = RunSettings.defaults.queryResponseInterval

    @Option(parsing: .unconditional, help: "Last member query interval, seconds.")
    var lastMemberQueryInterval: String = RunSettings.defaults.lastMemberQueryInterval

    @Option(parsing: .unconditional, help: "Last member query count (default: the robustness variable).")
    var lastMemberQueryCount: Int?

    @Option(parsing: .unconditional, help: "Robustness variable.")
    var robustness: Int = RunSettings.defaults.robustness

    @Option(name: .customLong("vlan"), help: ArgumentHelp(
        "Settings of one VLAN, beside the defaults above (repeat for each VLAN).",
        discussion: "ID[:querier|:no-querier][:igmp-querier|:no-igmp-querier][:querier-address=A.B.C.D][:igmp-version=1|2|3][:mld-querier|:no-mld-querier][:mld-querier-address=[fe80::N]][:mld-version=1|2][:no-snooping|:no-mld-snooping]"))
    var vlanSpecs: [String] = []

    @Option(help: "The source-specific multicast range: INCLUDE-mode membership only (RFC 4604).")
    var ssmRange: String = RunSettings.defaults.ssmRange

    @Option(help: "The IPv6 source-specific multicast range: INCLUDE-mode membership only (RFC 4604; ff3x::/32 stands for ff3X::/32 of every scope X).")
    var mldSsmRange: String = RunSettings.defaults.mldSSMRange

    @Flag(help: "Flood traffic of unregistered groups in its VLAN instead of sending it to router ports only.")
    var floodUnregistered = false

    @Flag(help: "Flood neighbour solicitations (ff02::1:ff00:0/104) always, not only while a solicited-node group has no listener known.")
    var floodSolicitedNode = false

    @Option(help: ArgumentHelp("Relay these IEEE 802.1Q reserved addresses (01:80:C2:00:00:01 to 0F stay on their link otherwise; 00, spanning tree, is always relayed): names (lldp, eapol, ...), 0 to 15 or 0x0 to 0xf, comma-separated. PAUSE (1) and LACP (2) are refused.",
                               valueName: "LIST"))
    var forwardReserved: String?

    @Option(parsing: .unconditional, help: "Most MAC table entries.")
    var maxMacs: Int = RunSettings.defaults.maxMacs

    @Option(parsing: .unconditional, help: "Most MAC table entries learned on one port.")
    var maxMacsPerPort: Int = RunSettings.defaults.maxMacsPerPort

    @Option(parsing: .unconditional, help: "Most groups in one VLAN.")
    var maxGroupsPerVlan: Int = RunSettings.defaults.maxGroupsPerVlan

    @Option(parsing: .unconditional, help: "Most groups one port may join.")
    var maxGroupsPerPort: Int = RunSettings.defaults.maxGroupsPerPort

    @Option(parsing: .unconditional, help: "Most sources one port may list for one group.")
    var maxSourcesPerGroup: Int = RunSettings.defaults.maxSourcesPerGroup

    @Option(parsing: .unconditional, help: "IGMP and MLD messages per second a port may send (one budget for both) before they are dropped.")
    var igmpRate: Int = RunSettings.defaults.igmpRate

    @Option(parsing: .unconditional, help: "MAC table aging time, seconds.")
    var fdbAging: String = RunSettings.defaults.fdbAging

    @Option(help: "Path of the control socket.")
    var control: String = ControlProtocol.defaultPath

    @Flag(help: "Spin on the ports instead of sleeping until frames arrive: a core for lower latency and higher rates.")
    var busyPoll = false

    @Option(parsing: .unconditional, help: "Forwarding threads, each with its own socket on every port (default: one per CPU the switch may run on, at most 4).")
    var threads: Int?

    @Option(help: ArgumentHelp("Bind forwarding thread i to the i-th CPU of LIST (e.g. 0,1 or 2-3). Thread i of n takes the flows whose first frame the kernel receives on CPUs i, i+n... (a veth's: its sender's CPU); by default each thread is bound to a CPU whose flows it does not take.",
                               valueName: "LIST"))
    var cpus: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Receive ring of each packet socket, KiB (0: none, frames read with recvmmsg).",
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

    @Option(parsing: .unconditional, help: ArgumentHelp("With the kernel fast path, a flow goes to the kernel once the switch decides one of its frames of at least BYTES, its way back with it: bulk traffic, which costs the switch's threads two copies a frame (1: every flow).", valueName: "BYTES"))
    var kernelFastPathFrame: Int = DatapathOptions.defaultKernelFastPathFrameBytes

    @Flag(help: "Serve interfaces another running snoopswitch serves too (by default it is refused: each frame would go through both).")
    var sharePorts = false

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
        settings.metrics = metrics
        return settings
    }

    /// The command line's own arguments after `run`, to lay over the file's.
    static var commandLineArguments: [String] {
        let all = Array(CommandLine.arguments.dropFirst())
        guard let run = all.firstIndex(of: "run") else { return all }
        return Array(all[(run + 1)...])
    }

    /// The settings of `--config FILE` with the command line's on top; `run`'s own parser
    /// reads the file's lines. A file that cannot be read exits 66, one that is wrong 64.
    static func configured(file path: String, commandLine: [String]) throws(Failure) -> ConfigFile.Settings {
        do throws(ConfigFile.Error) {
            return try ConfigFile.Settings(file: path, commandLine: commandLine) { arguments in
                do {
                    return try Run.parse(arguments).settings
                } catch {
                    throw Failure.usage(Run.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)")
                }
            }
        } catch {
            throw Failure("\(error)", status: error.kind == .unreadable ? ExitStatus.noInput : ExitStatus.usage)
        }
    }

    func run() throws {
        let configured = try config.map { path throws(Failure) in try Run.configured(file: path, commandLine: Run.commandLineArguments) }
        let config: SwitchConfiguration, datapath: DatapathSettings
        do {
            if let configured {
                config = try configured.switchConfiguration(isLoopback: isLoopback)
                datapath = try configured.datapath(cpuAllowed: cpuAllowed)
            } else {
                config = try settings.switchConfiguration(isLoopback: isLoopback)
                datapath = try settings.datapath(cpuAllowed: cpuAllowed)
            }
        } catch {
            throw Failure.usage("\(error)")
        }
        // The settings in force: the file's with the command line's on top (parsed once already).
        let run = try configured.map { try Run.parse($0.arguments) } ?? self
        try run.start(config, datapath, configFile: configured)
    }

    /// Starts the switch these flags describe; `config` and `datapath` are their checked settings.
    private func start(_ config: SwitchConfiguration, _ datapath: DatapathSettings, configFile: ConfigFile.Settings?) throws {
        guard let level = Logger.Level(rawValue: datapath.logLevel) else {
            throw Failure.usage("--log-level '\(datapath.logLevel)' is not one of \(RunSettings.logLevels.joined(separator: ", "))")
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
                                          kernelFastPathFrameBytes: kernelFastPathFrame, sharePorts: sharePorts)
            daemon = try SwitchDaemon(configuration: config, options: options, logger: logger)
        } catch {
            throw Failure("\(error)")
        }
        if let configFile {
            daemon.readConfiguration = {
                try Run.configured(file: configFile.path, commandLine: configFile.commandLine).switchConfiguration(isLoopback: isLoopback)
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
/// before asking, in the switch's words (a usage error).
func checked<T>(_ make: () throws -> T) throws -> T {
    do {
        return try make()
    } catch {
        throw Failure.usage("\(error)")
    }
}

/// Whether the interface `name` of this namespace is a loopback one (`lo`, or `lo` renamed):
/// no switch port. False when there is no such interface (opening the port says so).
func isLoopback(_ name: String) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var request = ifreq()
    withUnsafeMutableBytes(of: &request.ifr_ifrn.ifrn_name) { raw in
        let bytes = Array(name.utf8.prefix(raw.count - 1))
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    guard ioctl(fd, UInt(SIOCGIFFLAGS), &request) == 0 else { return false }
    return Int32(request.ifr_ifru.ifru_flags) & Int32(IFF_LOOPBACK) != 0
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
        static let configuration = CommandConfiguration(abstract: "Add a port: IFNAME[:pvid=N][:tagged=N,...][:router][:fast-leave][:query-guard][:tap|:pcap].")
        @Argument var spec: String
        @OptionGroup var options: ControlOption
        func run() throws {
            let port = try checked { try PortSpec.parse(spec) }    // a bad SPEC is said here, before asking
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

    /// The `--vlan` of these commands, checked.
    static func vlan(_ number: Int) throws(Failure) -> VLANID {
        guard let id = VLANID(number) else { throw Failure.usage("--vlan \(number) is not a VLAN from 1 to 4094") }
        return id
    }

    struct Flush: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Forget learned memberships (static ones stay).")
        @Option(parsing: .unconditional, help: "Only in this VLAN.") var vlan: Int?
        @OptionGroup var options: ControlOption
        func run() throws {
            let id = try vlan.map(MdbCommand.vlan)
            _ = try ask(.mdb(.flush(vlan: id)), control: options.control)
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A static membership: PORT gets GROUP until it is deleted.")
        @Argument var port: String
        @Argument var group: String
        @Option(parsing: .unconditional, help: "The VLAN.") var vlan: Int = 1
        @OptionGroup var options: ControlOption
        func run() throws {
            let entry = try checked {
                ControlRequest.StaticMembership(port: port, group: try ControlRequest.group(group), vlan: try MdbCommand.vlan(vlan))
            }
            _ = try ask(.mdb(.add(entry)), control: options.control)
        }
    }

    struct Del: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a static membership.")
        @Argument var port: String
        @Argument var group: String
        @Option(parsing: .unconditional, help: "The VLAN.") var vlan: Int = 1
        @OptionGroup var options: ControlOption
        func run() throws {
            let entry = try checked {
                ControlRequest.StaticMembership(port: port, group: try ControlRequest.group(group), vlan: try MdbCommand.vlan(vlan))
            }
            _ = try ask(.mdb(.remove(entry)), control: options.control)
        }
    }
}

nonisolated(unsafe) private var captureStop = false

/// `snoopswitch capture FILE`: what the switch receives and sends, as pcapng. The file is
/// created (or truncated) only once the switch has accepted the capture: a capture that cannot
/// reach the switch, or that the switch refuses, leaves an existing FILE as it was.
struct Capture: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write what the switch receives and sends to a pcapng file (until ^C).",
        discussion: """
            The file is pcapng: one interface per switch port, named as the port, and each frame \
            marked inbound (the port received it) or outbound (the switch sent it out of that port). \
            A frame the switch forwards appears once as it came in and once per port it went out of. \
            tshark -r FILE -T fields -e frame.interface_name -e frame.packet_flags_direction shows both; \
            tcpdump -r FILE reads it too. FILE is created only once the switch has accepted the \
            capture: if it cannot be reached or refuses, an existing FILE is left untouched.
            """)

    @Argument(help: "The pcapng file to write.") var file: String
    @Option(help: "Only this port's frames (default: every port).") var port: String?
    @Flag(help: "Only IGMP, MLD, PIM and multicast router discovery frames.") var controlOnly = false
    @Option(parsing: .unconditional, help: "Stop after this many frames.") var count: Int?
    @Option(parsing: .unconditional, help: "Stop after this many seconds.") var duration: Double?
    @OptionGroup var options: ControlOption

    func run() throws {
        if let count, count < 1 { throw Failure.usage("--count must be at least 1, not \(count)") }
        if let duration, !(duration > 0) || !duration.isFinite {
            throw Failure.usage("--duration '\(duration)' is not a positive number of seconds")
        }
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
        guard let first = reader.line() else { throw Failure("the switch closed the connection before it answered") }
        switch try? ControlAnswer(line: first) {
        case .ok?: break
        case .error(let message)?: throw Failure(message)
        default: throw Failure("unreadable answer from the switch: \(first.prefix(64))")
        }
        // Only now, with the switch's yes, is the file created.
        let writer: PcapngWriter
        do { writer = try PcapngWriter(path: file) } catch { throw Failure("\(error)") }
        /// The pcapng interface of each port index, as the stream named them.
        var interfaces: [Int: UInt32] = [:]
        let deadline = duration.map { Date().addingTimeInterval($0) }
        while !captureStop, count.map({ writer.frames < $0 }) ?? true, deadline.map({ Date() < $0 }) ?? true {
            guard reader.wait(milliseconds: 200) else { continue }
            guard let bytes = reader.bytes(CaptureRecord.headerLength) else { break }
            let header = bytes.withUnsafeBytes { CaptureRecord.Header($0) }
            guard header.length <= CaptureRecord.maximumFrame, let payload = reader.bytes(header.length) else { break }
            switch header.kind {
            case .port?:
                let name = String(decoding: payload, as: UTF8.self)
                interfaces[header.port] = writer.addInterface(name: name, description: "snoopswitch port \(name)")
            case let kind?:
                let interface = interfaces[header.port] ?? {
                    // The switch names a port before its first frame; should it not, the index stands for it.
                    let id = writer.addInterface(name: "port \(header.port)")
                    interfaces[header.port] = id
                    return id
                }()
                payload.withUnsafeBytes {
                    writer.write($0, interface: interface, direction: kind == .inbound ? .inbound : .outbound,
                                 nanoseconds: header.nanoseconds)
                }
                if writer.frames % 64 == 0 { try flush(writer) }
            case nil:
                continue   // a record of a later switch's, skipped whole
            }
        }
        try flush(writer)
        FileHandle.standardError.write(Data("snoopswitch: \(writer.frames) frames written to \(file)\n".utf8))
    }

    private func flush(_ writer: PcapngWriter) throws {
        do { try writer.flush() } catch { throw Failure("\(error)") }
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
