import SwitchEngine
import Wire

/// The settings of `snoopswitch run` that are checked before the switch starts, as given on the
/// command line or in a configuration file (the rest, such as `--control` or `--busy-poll`, need
/// no checking). Their defaults are the command line's. `switchConfiguration()`
/// checks the switch's settings, `datapath(cpuAllowed:)` the datapath's; each error names the
/// setting at fault (`SettingError`), so that a configuration file can name its line.
public struct RunSettings: Equatable, Sendable {
    public var ports: [String] = []
    public var querier = false
    public var querierAddress = "0.0.0.0"
    public var igmpVersion = 3
    /// Nil: the link-local address of the switch's MAC.
    public var mldQuerierAddress: String?
    public var mldVersion = 2
    public var mldSSMRange = "ff3x::/32"
    public var floodSolicitedNode = false
    public var queryInterval = "125"
    public var queryResponseInterval = "10"
    public var lastMemberQueryInterval = "1"
    /// Nil: the robustness variable.
    public var lastMemberQueryCount: Int?
    public var robustness = 2
    public var vlans: [String] = []
    public var ssmRange = "232.0.0.0/8"
    public var floodUnregistered = false
    public var forwardReserved: String?
    public var maxMacs = 65_536
    public var maxMacsPerPort = 8_192
    public var maxGroupsPerVlan = 65_536
    public var maxGroupsPerPort = 16_384
    public var maxSourcesPerGroup = 256
    public var igmpRate = 1_000
    public var fdbAging = "300"

    // The datapath's.
    public var threads: Int?
    public var cpus: String?
    public var ringSize = 1024
    public var nice: Int?
    /// The command line's default is the daemon's (`SwitchDaemon.defaultKernelFastPathFrameBytes`).
    public var kernelFastPathFrame = 1024
    public var logLevel = "info"
    /// `A.B.C.D:PORT` to serve Prometheus metrics on; nil: none.
    public var metrics: String?

    public init() {}

    /// The defaults, for the command line's flags.
    public static let defaults = RunSettings()

    /// swift-log's level names, in order.
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
}

/// A setting that cannot be used, said in one line.
public struct SettingError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The setting at fault, as its flag without dashes ("query-interval", "port").
    public var setting: String
    /// For a setting given more than once (port, vlan), the one at fault.
    public var value: String?
    public var message: String

    public init(_ setting: String, value: String? = nil, _ message: String) {
        self.setting = setting
        self.value = value
        self.message = message
    }

    public var description: String { message }
}

/// The datapath's settings, checked.
public struct DatapathSettings: Equatable, Sendable {
    /// Nil: the daemon decides (one per CPU listed, otherwise one per usable CPU, at most 4).
    public var threads: Int?
    /// CPUs to bind the forwarding threads to, in order; empty: the daemon places them.
    public var cpus: [Int]
    public var ringBytes: Int
    public var nice: Int?
    public var kernelFastPathFrameBytes: Int
    /// One of `RunSettings.logLevels`.
    public var logLevel: String
}

extension RunSettings {
    /// The switch these settings describe, or the first thing wrong with them. `isLoopback`
    /// says whether an interface of this namespace is a loopback one (renamed or not).
    public func switchConfiguration(isLoopback: (String) -> Bool = { _ in false }) throws(SettingError) -> SwitchConfiguration {
        var config = SwitchConfiguration(ports: try portConfigurations(isLoopback: isLoopback))
        guard let address = IPv4Address(querierAddress), !address.isMulticast else {
            throw SettingError("querier-address", "--querier-address '\(querierAddress)' is not a unicast IPv4 address")
        }
        guard let version = IGMPVersion(rawValue: igmpVersion) else {
            throw SettingError("igmp-version", "--igmp-version must be 1, 2 or 3, not \(igmpVersion)")
        }
        config.querier = QuerierConfiguration(enabled: querier, address: address, version: version)
        config.mldQuerier = try mldQuerier()
        guard (1...7).contains(robustness) else {
            throw SettingError("robustness", "--robustness must be from 1 to 7, not \(robustness)")
        }
        config.timers.robustness = robustness
        config.timers.lastMemberQueryCount = lastMemberQueryCount ?? robustness
        guard config.timers.lastMemberQueryCount >= 1 else {
            throw SettingError("last-member-query-count", "--last-member-query-count must be at least 1")
        }
        // RFC 3376 4.1.1 and 8: what a query's codes can carry (IGMPv2: one byte of tenths).
        config.timers.queryInterval = try Self.seconds(queryInterval, "query-interval", max: 31744)
        config.timers.queryResponseInterval = try Self.seconds(queryResponseInterval, "query-response-interval",
                                                               max: version == .v2 ? 25.5 : 3174.4)
        config.timers.lastMemberQueryInterval = try Self.seconds(lastMemberQueryInterval, "last-member-query-interval",
                                                                 max: version == .v2 ? 25.5 : 3174.4)
        guard config.timers.queryResponseInterval < config.timers.queryInterval else {
            throw SettingError("query-response-interval",
                               "--query-response-interval (\(queryResponseInterval)) must be below --query-interval (\(queryInterval))")
        }
        config.fdbAging = try Self.seconds(fdbAging, "fdb-aging", max: 1_000_000)
        for (value, setting) in [(maxMacs, "max-macs"), (maxMacsPerPort, "max-macs-per-port"),
                                 (maxGroupsPerVlan, "max-groups-per-vlan"), (maxGroupsPerPort, "max-groups-per-port"),
                                 (maxSourcesPerGroup, "max-sources-per-group"), (igmpRate, "igmp-rate")] where value < 1 {
            throw SettingError(setting, "--\(setting) must be at least 1, not \(value)")
        }
        config.macTableLimit = maxMacs
        config.macsPerPortLimit = maxMacsPerPort
        config.membershipLimits.groupsPerVLAN = maxGroupsPerVlan
        config.membershipLimits.groupsPerPort = maxGroupsPerPort
        config.membershipLimits.sourcesPerGroup = maxSourcesPerGroup
        config.igmpRatePerPort = igmpRate
        config.floodUnregistered = floodUnregistered
        if let forwardReserved {
            do {
                config.relayedReservedAddresses = try ReservedAddressSpec.parse(forwardReserved)
            } catch {
                throw SettingError("forward-reserved", error.description)
            }
        }
        guard let range = IPv4Prefix(ssmRange), range.address.isMulticast else {
            throw SettingError("ssm-range", "--ssm-range '\(ssmRange)' is not a multicast prefix A.B.C.D/N")
        }
        config.ssmRange = range
        if mldSSMRange != RunSettings.defaults.mldSSMRange {
            guard let prefix = IPv6Prefix(mldSSMRange), prefix.address.isMulticast, prefix.length >= 8 else {
                throw SettingError("mld-ssm-range", "--mld-ssm-range '\(mldSSMRange)' is not an IPv6 multicast prefix ffXX::/N (N at least 8)")
            }
            config.mldSSMRange = .prefix(prefix)
        }
        config.floodSolicitedNode = floodSolicitedNode
        // RFC 2710 3: an MLDv1 query says its max response time in 16 bits of milliseconds.
        if config.mldQuerier.version == .v1, config.timers.queryResponseInterval > .milliseconds(65_535) {
            throw SettingError("query-response-interval", "an MLDv1 querier cannot send a query response interval above 65.535 s")
        }
        for spec in vlans {
            func fail(_ message: String) -> SettingError { SettingError("vlan", value: spec, message) }
            let vlan: VLANID, settings: VLANSettings
            do { (vlan, settings) = try VLANSpec.parse(spec) } catch { throw fail(error.description) }
            guard config.vlans[vlan] == nil else { throw fail("VLAN \(vlan) given twice") }
            guard config.allVLANs.contains(vlan) else { throw fail("bad VLAN spec '\(spec)': no port carries VLAN \(vlan)") }
            if settings.igmpVersion == .v2, config.timers.queryResponseInterval > .milliseconds(25_500) {
                throw fail("bad VLAN spec '\(spec)': an IGMPv2 querier cannot send a query response interval above 25.5 s")
            }
            if settings.mldVersion == .v1, config.timers.queryResponseInterval > .milliseconds(65_535) {
                throw fail("bad VLAN spec '\(spec)': an MLDv1 querier cannot send a query response interval above 65.535 s")
            }
            config.vlans[vlan] = settings
        }
        return config
    }

    /// RFC 9777 5.1.14, RFC 2710 3: hosts take queries from link-local sources only.
    private func mldQuerier() throws(SettingError) -> QuerierSettings<MLD> {
        guard let version = MLDVersion(rawValue: mldVersion) else {
            throw SettingError("mld-version", "--mld-version must be 1 or 2, not \(mldVersion)")
        }
        var settings = QuerierSettings<MLD>(enabled: querier, version: version)
        if let text = mldQuerierAddress {
            guard let address = IPv6Address(text), address.isLinkLocalUnicast else {
                throw SettingError("mld-querier-address", "--mld-querier-address '\(text)' is not a link-local unicast IPv6 address (fe80::/10)")
            }
            settings.address = address
        }
        return settings
    }

    private func portConfigurations(isLoopback: (String) -> Bool) throws(SettingError) -> [PortConfiguration] {
        guard !ports.isEmpty else { throw SettingError("port", "at least one --port is needed") }
        var configurations: [PortConfiguration] = []
        for spec in ports {
            let port: PortConfiguration
            do { port = try PortSpec.parse(spec) } catch { throw SettingError("port", value: spec, error.description) }
            guard !configurations.contains(where: { $0.name == port.name }) else {
                throw SettingError("port", value: spec, "port \(port.name) given twice")
            }
            if port.attachment != .tap, isLoopback(port.name) {
                throw SettingError("port", value: spec, "bad port spec '\(spec)': \(PortSpec.loopbackReason(port.name))")
            }
            configurations.append(port)
        }
        guard configurations.count <= PortSet.capacity else { throw SettingError("port", "at most \(PortSet.capacity) ports") }
        return configurations
    }

    /// Seconds with fractions, positive and encodable in IGMP (tenths of a second).
    static func seconds(_ text: String, _ setting: String, max: Double) throws(SettingError) -> Duration {
        guard let value = Double(text), value.isFinite, value > 0 else {
            throw SettingError(setting, "--\(setting) '\(text)' is not a positive number of seconds")
        }
        guard value <= max else { throw SettingError(setting, "--\(setting) \(text) is above \(max) seconds") }
        return .nanoseconds(Int64((value * 1e9).rounded()))
    }

    /// The datapath's settings, checked in the order the command line always said them.
    /// `cpuAllowed` says whether this process may run on a CPU.
    public func datapath(cpuAllowed: (Int) -> Bool) throws(SettingError) -> DatapathSettings {
        guard Self.logLevels.contains(logLevel) else {
            throw SettingError("log-level", "--log-level '\(logLevel)' is not one of \(Self.logLevels.joined(separator: ", "))")
        }
        if let threads, !(1...64).contains(threads) { throw SettingError("threads", "--threads takes 1 to 64, not \(threads)") }
        guard (1...65535).contains(kernelFastPathFrame) else {
            throw SettingError("kernel-fast-path-frame", "--kernel-fast-path-frame takes 1 to 65535 bytes, not \(kernelFastPathFrame)")
        }
        let cpuList = try cpus.map { text throws(SettingError) in try Self.parseCPUs(text, allowed: cpuAllowed) } ?? []
        guard (0...262_144).contains(ringSize) else {
            throw SettingError("ring-size", "--ring-size takes 0 to 262144 KiB, not \(ringSize)")
        }
        if let nice, !(-20...19).contains(nice) { throw SettingError("nice", "--nice takes -20 to 19, not \(nice)") }
        if let metrics { try Self.checkMetricsAddress(metrics) }
        return DatapathSettings(threads: threads, cpus: cpuList, ringBytes: ringSize * 1024, nice: nice,
                                kernelFastPathFrameBytes: kernelFastPathFrame, logLevel: logLevel)
    }

    /// `A.B.C.D:PORT`, as the metrics listener takes it.
    static func checkMetricsAddress(_ text: String) throws(SettingError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let port = UInt16(parts[1]), port > 0 else {
            throw SettingError("metrics", "--metrics '\(text)' is not ADDRESS:PORT (an IPv4 address and a TCP port, such as 127.0.0.1:9100)")
        }
        guard IPv4Address(String(parts[0])) != nil else {
            throw SettingError("metrics", "--metrics '\(text)': '\(parts[0])' is not an IPv4 address")
        }
    }

    /// `0,1`, `2-3`, `0,2-3`: CPUs this process may run on, in order, each once.
    public static func parseCPUs(_ text: String, allowed: (Int) -> Bool) throws(SettingError) -> [Int] {
        var list: [Int] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
            guard (1...2).contains(bounds.count), let low = bounds.first!, let high = bounds.last!, low <= high, low >= 0 else {
                throw SettingError("cpus", "--cpus '\(text)': expected CPU numbers and ranges such as 0,1 or 2-3")
            }
            for cpu in low...high {
                guard allowed(cpu) else { throw SettingError("cpus", "--cpus '\(text)': CPU \(cpu) is not one this process may run on") }
                guard !list.contains(cpu) else { throw SettingError("cpus", "--cpus '\(text)': CPU \(cpu) is listed twice") }
                list.append(cpu)
            }
        }
        return list
    }
}
