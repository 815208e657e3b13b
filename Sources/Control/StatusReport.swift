import SwitchEngine
import Wire

/// Everything `snoopswitch status` shows, as one document. The daemon sends it as JSON; the
/// client prints it as tables or passes the JSON through.
public struct StatusReport: Codable, Equatable, Sendable {
    public struct Port: Codable, Equatable, Sendable {
        public var name: String
        @NullWhenAbsent public var ifindex: Int?
        public var link: String
        @NullWhenAbsent public var pvid: Int?
        public var tagged: [Int]
        @NullWhenAbsent public var router: String?
        public var fastLeave: Bool
        public var queryGuard: Bool
        /// How frames reach the port: "packet" (AF_PACKET), "tap" or "pcap".
        public var attachment: String
        public var rxFrames: UInt64
        public var txFrames: UInt64
        public var rxBytes: UInt64
        public var txBytes: UInt64
        public var drops: UInt64
        /// Times the link went down or came up since the start.
        public var linkChanges: UInt64
    }

    public struct MacEntry: Codable, Equatable, Sendable {
        public var vlan: Int
        public var mac: String
        public var port: String
        public var ageSeconds: Double
    }

    public struct Source: Codable, Equatable, Sendable {
        public var address: String
        public var expiresIn: Double
    }

    public struct Member: Codable, Equatable, Sendable {
        public var port: String
        public var expiresIn: Double
        /// The version of the last report; `compatibility` is the mode the group is in on this
        /// port (an older host heard recently: RFC 3376 7.3.2).
        public var version: Int
        public var compatibility: Int
        /// "include" or "exclude" (RFC 3376 6.2.1); `sources` are forwarded (INCLUDE) or
        /// requested (EXCLUDE), `excluded` are blocked (EXCLUDE).
        public var mode: String
        public var sources: [Source]
        public var excluded: [String]
        /// Configured with `snoopswitch mdb add`: kept until deleted.
        public var isStatic: Bool
    }

    public struct Group: Codable, Equatable, Sendable {
        public var vlan: Int
        /// "igmp" (an IPv4 group) or "mld" (IPv6).
        public var `protocol`: String
        public var group: String
        public var members: [Member]
    }

    public struct RouterPort: Codable, Equatable, Sendable {
        public var vlan: Int
        /// Routers of IPv4 ("igmp") or IPv6 ("mld"): a static router port is both.
        public var `protocol`: String
        public var port: String
        public var kind: String
        public var reason: String
        @NullWhenAbsent public var expiresIn: Double?
    }

    public struct Querier: Codable, Equatable, Sendable {
        public var vlan: Int
        public var `protocol`: String
        public var role: String
        @NullWhenAbsent public var address: String?
        /// The version our queries use (lowered while an older querier is present).
        public var version: Int
        @NullWhenAbsent public var nextQueryIn: Double?
        @NullWhenAbsent public var otherQuerierExpiresIn: Double?
    }

    public struct IGMPCounters: Codable, Equatable, Sendable {
        public var received: [String: UInt64]
        public var sent: [String: UInt64]
        public var errors: [String: UInt64]
    }

    /// How the switch moves frames: forwarding threads, the receive ring of each packet socket,
    /// and how many packet ports keep their frames from the host's IP stack.
    public struct Datapath: Codable, Equatable, Sendable {
        public var threads: Int
        /// The forwarding threads' scheduling nice value (-20 first, 19 last).
        public var nice: Int
        /// 0: no ring (recvmmsg).
        public var ringBytes: Int
        public var packetPorts: Int
        public var hostStackFilteredPorts: Int
        /// Packet ports whose established unicast flows the kernel forwards (the fast path).
        public var fastPathPorts: Int
        /// Unicast flows (ingress port, destination, source) the kernel forwards now.
        public var kernelFlows: Int
        /// Packet ports a frame for several ports reaches as the kernel's clone of one send.
        public var replicatingPorts: Int
        /// Frames the kernel cloned out of a port for the switch since it started.
        public var clonedFrames: UInt64
        /// The CPU each forwarding thread is bound to, by thread number (null: not bound).
        public var threadCpus: [Int?]

        public init(threads: Int, nice: Int = 0, ringBytes: Int, packetPorts: Int = 0, hostStackFilteredPorts: Int = 0,
                    fastPathPorts: Int = 0, kernelFlows: Int = 0, replicatingPorts: Int = 0, clonedFrames: UInt64 = 0,
                    threadCPUs: [Int?] = []) {
            self.threads = threads
            self.nice = nice
            self.ringBytes = ringBytes
            self.packetPorts = packetPorts
            self.hostStackFilteredPorts = hostStackFilteredPorts
            self.fastPathPorts = fastPathPorts
            self.kernelFlows = kernelFlows
            self.replicatingPorts = replicatingPorts
            self.clonedFrames = clonedFrames
            self.threadCpus = threadCPUs
        }
    }

    /// The settings in force (after SIGHUP, the file's), as `ip -d link` shows a bridge's.
    public struct Configuration: Codable, Equatable, Sendable {
        /// RFC 3376 section 8 and RFC 9777 section 9, in seconds; the last two derived.
        public struct Timers: Codable, Equatable, Sendable {
            public var robustness: Int
            public var queryInterval: Double
            public var queryResponseInterval: Double
            public var lastMemberQueryInterval: Double
            public var lastMemberQueryCount: Int
            public var groupMembershipInterval: Double
            public var otherQuerierPresentInterval: Double
        }

        /// A querier's settings in one protocol.
        public struct Querier: Codable, Equatable, Sendable {
            public var enabled: Bool
            public var address: String
            public var version: Int
        }

        public struct Limits: Codable, Equatable, Sendable {
            public var macs: Int
            public var macsPerPort: Int
            public var groupsPerVlan: Int
            public var groupsPerPort: Int
            public var sourcesPerGroup: Int
            /// IGMP and MLD messages a port may send per second.
            public var messagesPerSecondPerPort: Int
        }

        /// What a VLAN's own settings say (`--vlan`); null where the switch's default holds.
        public struct Overrides: Codable, Equatable, Sendable {
            @NullWhenAbsent public var querier: Bool?
            @NullWhenAbsent public var igmpQuerier: Bool?
            @NullWhenAbsent public var querierAddress: String?
            @NullWhenAbsent public var igmpVersion: Int?
            @NullWhenAbsent public var snooping: Bool?
            @NullWhenAbsent public var mldQuerier: Bool?
            @NullWhenAbsent public var mldQuerierAddress: String?
            @NullWhenAbsent public var mldVersion: Int?
            @NullWhenAbsent public var mldSnooping: Bool?
        }

        /// The settings in force in one VLAN some port carries.
        public struct VLAN: Codable, Equatable, Sendable {
            public var vlan: Int
            public var igmpSnooping: Bool
            public var mldSnooping: Bool
            public var igmpQuerier: Querier
            public var mldQuerier: Querier
            public var overrides: Overrides
        }

        public var timers: Timers
        public var igmpQuerier: Querier
        public var mldQuerier: Querier
        public var floodUnregistered: Bool
        public var floodSolicitedNode: Bool
        public var ssmRange: String
        public var mldSsmRange: String
        public var limits: Limits
        /// MAC table aging, seconds.
        public var fdbAging: Double
        /// The IEEE 802.1Q reserved addresses relayed (spanning tree's always).
        public var relayedReservedAddresses: [String]
        public var vlans: [VLAN]
    }

    public var datapath: Datapath
    public var configuration: Configuration
    public var ports: [Port]
    public var macs: [MacEntry]
    public var groups: [Group]
    public var routerPorts: [RouterPort]
    public var queriers: [Querier]
    public var igmp: IGMPCounters
    /// MLD's, PIMv6's and ICMPv6 router discovery's, with IGMP's names.
    public var mld: IGMPCounters
    public var dropsByReason: [String: UInt64]
}

extension StatusReport.Configuration {
    /// The settings of `configuration`, with those of `vlans` (the VLANs the ports carry).
    public init(_ configuration: SwitchConfiguration, vlans: Set<VLANID>) {
        let timers = configuration.timers
        self.timers = Timers(robustness: timers.robustness, queryInterval: timers.queryInterval.secondsValue,
                             queryResponseInterval: timers.queryResponseInterval.secondsValue,
                             lastMemberQueryInterval: timers.lastMemberQueryInterval.secondsValue,
                             lastMemberQueryCount: timers.lastMemberQueryCount,
                             groupMembershipInterval: timers.groupMembershipInterval.secondsValue,
                             otherQuerierPresentInterval: timers.otherQuerierPresentInterval.secondsValue)
        func querier<P: MembershipProtocol>(_ settings: QuerierSettings<P>) -> Querier {
            Querier(enabled: settings.enabled, address: settings.address.description, version: settings.version.rawValue)
        }
        igmpQuerier = querier(configuration.querier)
        mldQuerier = querier(configuration.mldQuerierInForce)
        floodUnregistered = configuration.floodUnregistered
        floodSolicitedNode = configuration.floodSolicitedNode
        ssmRange = configuration.ssmRange.description
        mldSsmRange = configuration.mldSSMRange.description
        let membership = configuration.membershipLimits
        limits = Limits(macs: configuration.macTableLimit, macsPerPort: configuration.macsPerPortLimit,
                        groupsPerVlan: membership.groupsPerVLAN, groupsPerPort: membership.groupsPerPort,
                        sourcesPerGroup: membership.sourcesPerGroup, messagesPerSecondPerPort: configuration.igmpRatePerPort)
        fdbAging = configuration.fdbAging.secondsValue
        let relayed = configuration.relayedReservedAddresses.inForce
        relayedReservedAddresses = (0..<16).filter(relayed.contains).map {
            MACAddress(rawValue: MACAddress.bridgeReservedBlock.rawValue | UInt64($0)).description
        }
        self.vlans = vlans.sorted().map { vlan in
            let own = configuration.vlans[vlan] ?? VLANSettings()
            return VLAN(vlan: Int(vlan.rawValue), igmpSnooping: configuration.snoops(vlan),
                        mldSnooping: configuration.snoopsMLD(vlan),
                        igmpQuerier: querier(configuration.querier(in: vlan)),
                        mldQuerier: querier(configuration.mldQuerier(in: vlan)),
                        overrides: Overrides(querier: own.querier, igmpQuerier: own.igmpQuerier,
                                             querierAddress: own.querierAddress?.description,
                                             igmpVersion: own.igmpVersion?.rawValue, snooping: own.snooping,
                                             mldQuerier: own.mldQuerier,
                                             mldQuerierAddress: own.mldQuerierAddress?.description,
                                             mldVersion: own.mldVersion?.rawValue, mldSnooping: own.mldSnooping))
        }
    }
}

/// An optional field written as `null` when absent rather than left out, so that a reader of the
/// JSON sees every field of the document.
@propertyWrapper
public struct NullWhenAbsent<Value: Codable & Equatable & Sendable>: Codable, Equatable, Sendable {
    public var wrappedValue: Value?

    public init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        wrappedValue = container.decodeNil() ? nil : try container.decode(Value.self)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}

/// What the datapath knows of a port that the engine does not.
public struct PortRuntime: Sendable {
    public var interfaceIndex: Int?
    public var txFrames: UInt64
    public var txBytes: UInt64
    public var txDrops: UInt64
    public var linkChanges: UInt64
    /// Frames the kernel dropped before the switch read them (its socket buffer was full).
    public var socketOverruns: UInt64 = 0

    public init(interfaceIndex: Int?, txFrames: UInt64, txBytes: UInt64 = 0, txDrops: UInt64, linkChanges: UInt64 = 0,
                socketOverruns: UInt64 = 0) {
        self.txBytes = txBytes
        self.socketOverruns = socketOverruns
        self.interfaceIndex = interfaceIndex
        self.txFrames = txFrames
        self.txDrops = txDrops
        self.linkChanges = linkChanges
    }
}

/// The engine's state as plain values, copied under the datapath's lock. The report is made
/// from it (port names, sorting, text, JSON) after the lock is let go: for 100,000 groups that
/// takes seconds, and the forwarding threads must not wait for it.
public struct StatusSnapshot {
    public var at: Instant
    public var ports: [PortConfiguration?]
    public var linkUp: PortSet
    public var counters: SwitchCounters
    public var refusals: Counts<MembershipLimit>
    public var macAging: Duration
    public var macs: [(vlan: VLANID, mac: MACAddress, entry: MacTable.Entry)]
    public var groups: MembershipTable<IPv4Address, IGMPVersion>.Snapshot
    public var mldGroups: MembershipTable<IPv6Address, MLDVersion>.Snapshot
    public var mldRefusals: Counts<MembershipLimit>
    public var learnedRouters: [(vlan: VLANID, port: PortID, learned: RouterPortTracker.Learned)]
    public var mldLearnedRouters: [(vlan: VLANID, port: PortID, learned: RouterPortTracker.Learned)]
    public var queriers: [QuerierElection<IGMP>.VLANStatus]
    public var mldQueriers: [QuerierElection<MLD>.VLANStatus]
    /// The settings in force.
    public var configuration: SwitchConfiguration

    /// Copies what the status shows; the large tables unsorted (sorting waits for the report).
    public init(engine: SnoopingSwitch, at now: Instant) {
        at = now
        ports = engine.ports
        linkUp = engine.linkUp
        counters = engine.counters
        refusals = engine.membershipRefusals
        macAging = engine.macAging
        macs = engine.macEntries()
        groups = engine.membershipSnapshot()
        mldGroups = engine.mldMembershipSnapshot()
        mldRefusals = engine.mldMembershipRefusals
        learnedRouters = engine.routers.learnedPorts()
        mldLearnedRouters = engine.mldRouters.learnedPorts()
        queriers = engine.querier.status(at: now)
        mldQueriers = engine.mldQuerier.status(at: now)
        configuration = engine.configuration
    }
}

extension StatusReport {
    /// Reads the engine's state at `now`, with the datapath's per-port figures.
    public init(engine: SnoopingSwitch, ports runtime: [PortRuntime], datapath: Datapath = Datapath(threads: 1, ringBytes: 0),
                at now: Instant) {
        self.init(snapshot: StatusSnapshot(engine: engine, at: now), ports: runtime, datapath: datapath)
    }

    /// The report of a snapshot, with the datapath's per-port figures.
    public init(snapshot: StatusSnapshot, ports runtime: [PortRuntime],
                datapath: Datapath = Datapath(threads: 1, ringBytes: 0)) {
        let now = snapshot.at
        self.datapath = datapath
        configuration = Configuration(snapshot.configuration,
                                      vlans: snapshot.ports.reduce(into: Set<VLANID>()) { $0.formUnion($1?.vlans ?? []) })
        func name(_ port: PortID) -> String { snapshot.ports[port.index]?.name ?? "port\(port.index)" }
        func seconds(until t: Instant) -> Double { max(0, (t - now).secondsValue) }
        let learnedRouterPorts = Set(snapshot.learnedRouters.map(\.port) + snapshot.mldLearnedRouters.map(\.port))

        ports = snapshot.ports.enumerated().compactMap { index, port in
            guard let port else { return nil }
            let id = PortID(index)
            let run = index < runtime.count ? runtime[index] : PortRuntime(interfaceIndex: nil, txFrames: 0, txDrops: 0)
            return Port(
                name: port.name, ifindex: run.interfaceIndex,
                link: snapshot.linkUp.contains(id) ? "up" : "down",
                pvid: port.pvid.map { Int($0.rawValue) },
                tagged: port.tagged.map { Int($0.rawValue) }.sorted(),
                router: port.isStaticRouterPort ? "static" : (learnedRouterPorts.contains(id) ? "learned" : nil),
                fastLeave: port.fastLeave,
                queryGuard: port.queryGuard,
                attachment: port.attachment.rawValue,
                rxFrames: snapshot.counters.rxFrames[index],
                txFrames: run.txFrames,
                rxBytes: snapshot.counters.rxBytes[index],
                txBytes: run.txBytes,
                drops: snapshot.counters.drops[index] + run.txDrops,
                linkChanges: run.linkChanges)
        }
        macs = snapshot.macs.filter { now < $0.entry.lastSeen + snapshot.macAging }
            .sorted { ($0.vlan, $0.mac) < ($1.vlan, $1.mac) }
            .map { MacEntry(vlan: Int($0.vlan.rawValue), mac: $0.mac.description, port: name($0.entry.port),
                            ageSeconds: (now - $0.entry.lastSeen).secondsValue) }
        func groupRows<P: MembershipProtocol>(_ table: MembershipTable<P.Address, P.Version>.Snapshot,
                                             _: P.Type) -> [Group] {
            table.ordered().map { key, members in
                Group(vlan: Int(key.vlan.rawValue), protocol: P.name, group: key.group.description,
                      members: members.map { port, member in
                          Member(port: name(port), expiresIn: seconds(until: member.expires), version: member.version.rawValue,
                                 compatibility: member.compatibilityMode(at: now).rawValue, mode: member.mode.rawValue,
                                 sources: member.sources.sorted { $0.key < $1.key }.map {
                                     Source(address: $0.key.description, expiresIn: seconds(until: $0.value))
                                 },
                                 excluded: member.excluded.sorted().map(\.description), isStatic: member.isStatic)
                      })
            }
        }
        groups = groupRows(snapshot.groups, IGMP.self) + groupRows(snapshot.mldGroups, MLD.self)
        var routerPorts: [RouterPort] = []
        for (index, port) in snapshot.ports.enumerated() where port?.isStaticRouterPort == true {
            guard let port else { continue }
            for vlan in port.vlans.sorted() {
                for proto in [IGMP.name, MLD.name] {
                    routerPorts.append(RouterPort(vlan: Int(vlan.rawValue), protocol: proto, port: name(PortID(index)),
                                                  kind: "static", reason: RouterPortReason.static.rawValue, expiresIn: nil))
                }
            }
        }
        for (proto, learnedRouters) in [(IGMP.name, snapshot.learnedRouters), (MLD.name, snapshot.mldLearnedRouters)] {
            for learned in learnedRouters where snapshot.ports[learned.port.index]?.isStaticRouterPort == false {
                routerPorts.append(RouterPort(vlan: Int(learned.vlan.rawValue), protocol: proto, port: name(learned.port),
                                              kind: "learned", reason: learned.learned.reason.rawValue,
                                              expiresIn: learned.learned.expires == .distantFuture
                                                ? nil : seconds(until: learned.learned.expires)))
            }
        }
        self.routerPorts = routerPorts.sorted { ($0.vlan, $0.protocol, $0.port) < ($1.vlan, $1.protocol, $1.port) }
        func querierRows<P: MembershipProtocol>(_ statuses: [QuerierElection<P>.VLANStatus]) -> [Querier] {
            statuses.map { status in
                Querier(vlan: Int(status.vlan.rawValue), protocol: P.name, role: status.role.rawValue,
                        address: status.address?.description, version: status.version.rawValue,
                        nextQueryIn: status.nextQuery.map(seconds(until:)),
                        otherQuerierExpiresIn: status.otherQuerierExpires.map(seconds(until:)))
            }
        }
        queriers = (querierRows(snapshot.queriers) + querierRows(snapshot.mldQueriers))
            .sorted { ($0.vlan, $0.protocol) < ($1.vlan, $1.protocol) }
        func errors(_ counts: Counts<MessageError>, _ refusals: Counts<MembershipLimit>) -> [String: UInt64] {
            var errors = counts.byName
            for limit in MembershipLimit.allCases where refusals[limit] > 0 {
                errors["limit_" + limit.name] = refusals[limit]
            }
            return errors
        }
        igmp = IGMPCounters(received: snapshot.counters.received.byName, sent: snapshot.counters.sent.byName,
                            errors: errors(snapshot.counters.errors, snapshot.refusals))
        mld = IGMPCounters(received: snapshot.counters.mldReceived.byName, sent: snapshot.counters.mldSent.byName,
                           errors: errors(snapshot.counters.mldErrors, snapshot.mldRefusals))
        dropsByReason = Dictionary(uniqueKeysWithValues: snapshot.counters.dropsByReason.map { ($0.key.rawValue, $0.value) })
        if snapshot.counters.macTableFull > 0 { dropsByReason["mac_table_full"] = snapshot.counters.macTableFull }
        let overruns = runtime.reduce(0) { $0 + $1.socketOverruns }
        if overruns > 0 { dropsByReason["socket_overrun"] = overruns }
    }
}
