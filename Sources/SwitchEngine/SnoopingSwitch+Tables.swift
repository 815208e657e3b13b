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
    public func membershipSnapshot() -> MembershipTable<IPv4Address, IGMPVersion>.Snapshot { igmp.memberships.snapshot() }
    public func mldMembershipSnapshot() -> MembershipTable<IPv6Address, MLDVersion>.Snapshot { mld.memberships.snapshot() }
    /// Groups with members, IPv4 and IPv6.
    public var groupCount: Int { igmp.memberships.groupCount + mld.memberships.groupCount }
    /// Group records refused at the membership limits, by limit (IGMP's; `mldMembershipRefusals` MLD's).
    public var membershipRefusals: Counts<MembershipLimit> { igmp.memberships.refusals }
    public var mldMembershipRefusals: Counts<MembershipLimit> { mld.memberships.refusals }

    /// What the limits refused so far: group records, new stations, IGMP and MLD messages past the rate.
    public var refusedAtLimits: UInt64 {
        igmp.memberships.refusals.total &+ mld.memberships.refusals.total &+ counters.macTableFull
            &+ counters.errors[.rateLimited] &+ counters.mldErrors[.rateLimited]
    }

    /// Forgets every learned membership, in one VLAN or all (`mdb flush`); static ones stay.
    public func flushMemberships(in vlan: VLANID? = nil) {
        igmp.memberships.flush(vlan: vlan)
        mld.memberships.flush(vlan: vlan)
    }

    /// A membership the operator configured (`mdb add`): `port` gets `group` from every source.
    public func addStaticMembership(_ port: PortID, to group: IPv4Address, in vlan: VLANID) {
        igmp.memberships.addStatic(port, to: group, in: vlan, version: .v3)
    }

    public func addStaticMembership(_ port: PortID, to group: IPv6Address, in vlan: VLANID) {
        mld.memberships.addStatic(port, to: group, in: vlan, version: .v2)
    }

    /// Removes a configured membership (`mdb del`); false when there was none.
    @discardableResult
    public func removeStaticMembership(_ port: PortID, from group: IPv4Address, in vlan: VLANID) -> Bool {
        igmp.memberships.removeStatic(port, from: group, in: vlan)
    }

    @discardableResult
    public func removeStaticMembership(_ port: PortID, from group: IPv6Address, in vlan: VLANID) -> Bool {
        mld.memberships.removeStatic(port, from: group, in: vlan)
    }

    public func addStaticMembership(_ port: PortID, to group: MulticastGroupAddress, in vlan: VLANID) {
        switch group {
        case .ipv4(let address): addStaticMembership(port, to: address, in: vlan)
        case .ipv6(let address): addStaticMembership(port, to: address, in: vlan)
        }
    }

    @discardableResult
    public func removeStaticMembership(_ port: PortID, from group: MulticastGroupAddress, in vlan: VLANID) -> Bool {
        switch group {
        case .ipv4(let address): removeStaticMembership(port, from: address, in: vlan)
        case .ipv6(let address): removeStaticMembership(port, from: address, in: vlan)
        }
    }
}
