import Wire

/// The tables as the control plane reads and changes them: copies to read, flushes and
/// static entries.
extension SnoopingSwitch {
    // MARK: - Tables, for the control plane

    /// The learned stations, in no order: a copy to read without the table.
    public func macEntries() -> [(vlan: VLANID, mac: MACAddress, entry: MacTable.Entry)] { macs.unorderedEntries() }
    public var macAging: Duration { macs.aging }
    public var stationCount: Int { macs.count }

    /// Forgets every learned station (`fdb flush`).
    public func flushMACs() { macs.removeAll() }

    /// The memberships as they are now, to read on another thread (MembershipTable.Snapshot).
    public func membershipSnapshot() -> MembershipTable<IPv4Address, IGMPVersion>.Snapshot { memberships.snapshot() }
    public var groupCount: Int { memberships.groupCount }
    /// Group records refused at the membership limits, by limit.
    public var membershipRefusals: Counts<MembershipLimit> { memberships.refusals }

    /// What the limits refused so far: group records, new stations, IGMP messages past the rate.
    public var refusedAtLimits: UInt64 {
        memberships.refusals.total &+ counters.macTableFull &+ counters.errors[.rateLimited]
    }

    /// Forgets every learned membership, in one VLAN or all (`mdb flush`); static ones stay.
    public func flushMemberships(in vlan: VLANID? = nil) { memberships.flush(vlan: vlan) }

    /// A membership the operator configured (`mdb add`): `port` gets `group` from every source.
    public func addStaticMembership(_ port: PortID, to group: IPv4Address, in vlan: VLANID) {
        memberships.addStatic(port, to: group, in: vlan, version: .v3)
    }

    /// Removes a configured membership (`mdb del`); false when there was none.
    @discardableResult
    public func removeStaticMembership(_ port: PortID, from group: IPv4Address, in vlan: VLANID) -> Bool {
        memberships.removeStatic(port, from: group, in: vlan)
    }
}
