import Wire

/// One protocol's snooping state in the engine: who wants which groups, where the routers
/// are, who queries, and the VLANs it is snooped in. The engine keeps one for IGMP and one for
/// MLD; what they share (ports, VLANs, timers, limits, the per-port message rate) is the engine's.
final class SnoopedProtocol<P: MembershipProtocol> {
    let memberships: MembershipTable<P.Address, P.Version>
    @exclusivity(unchecked) var routers = RouterPortTracker(staticPorts: PortSet())
    @exclusivity(unchecked) var querier: QuerierElection<P>
    /// Whether the protocol is snooped in each VLAN, indexed by VLAN ID.
    @exclusivity(unchecked) var snoops = [Bool](repeating: true, count: 4096)
    /// Where its counts are kept in the engine's counters.
    let errors: WritableKeyPath<SwitchCounters, Counts<MessageError>>
    let sent: WritableKeyPath<SwitchCounters, Counts<SentMessage>>

    init(configuration: SwitchConfiguration, at now: Instant,
         errors: WritableKeyPath<SwitchCounters, Counts<MessageError>>,
         sent: WritableKeyPath<SwitchCounters, Counts<SentMessage>>) {
        memberships = MembershipTable(limits: configuration.membershipLimits)
        querier = QuerierElection(configuration: configuration, at: now)
        self.errors = errors
        self.sent = sent
    }
}
