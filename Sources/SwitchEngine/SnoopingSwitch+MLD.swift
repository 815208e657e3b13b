import Wire

/// IPv6 multicast: MLD messages heard in a snooping VLAN (RFC 4541 section 3, RFC 2710,
/// RFC 9777), PIMv6 hellos and multicast router discovery over ICMPv6 (RFC 4286), read and
/// handed to what IGMP and MLD share (SnoopingSwitch+Membership); data to its listeners.
extension SnoopingSwitch {
    /// An IPv6 frame to a 33:33 MAC: MLD and PIM are heard, data goes where it was asked for.
    /// The common case, UDP or TCP right after the fixed header, costs no walk of extension
    /// headers.
    @inline(__always)
    func decideIPv6(_ payload: UnsafeRawBufferPointer, frame: IngressFrame, decision: ForwardingDecision,
                    on port: PortID, flood: PortSet, at now: Instant) -> ForwardingDecision {
        guard let ip = try? IPv6HeaderView(checking: payload) else { return drop(.malformed, on: port) }
        let group = ip.destination
        guard group.isMulticast else { return decision }
        var decision = decision
        let next = ip.nextHeader
        if next == IPv6HeaderView.NextHeader.udp || next == IPv6HeaderView.NextHeader.tcp {
            decision.ports = dataPorts(toIPv6: group, from: ip.source, in: decision.vlan, flood: flood, at: now)
            return decision
        }
        guard let upper = try? ip.upperLayer() else { return drop(.malformed, on: port) }
        if upper.protocol == IPv6HeaderView.NextHeader.icmpv6, !upper.isFragment, let type = upper.payload.first,
           MLDMessage.MessageType.isListenerDiscovery(type) {
            if mld.snoops[Int(decision.vlan.rawValue)] {
                decision = receiveMLD(ip, upper, frame: frame, decision: decision, on: port, at: now)
                decision.isControl = true
                return decision
            }
            return electMLDWithoutSnooping(ip, upper, frame: frame, decision: decision, on: port, at: now)
        }
        if upper.protocol == IPv6HeaderView.NextHeader.pim, group == .allPIMRouters, !upper.isFragment {
            if !receivePIMv6(ip, upper, vlan: decision.vlan, on: port, at: now) { decision = .none }
            decision.isControl = true
            return decision
        }
        decision.ports = dataPorts(toIPv6: group, from: ip.source, in: decision.vlan, flood: flood, at: now)
        return decision
    }

    /// Where IPv6 data to `group` goes. ff02::1 and ff00::/15 flood (MLD.isSnooped). A
    /// solicited-node group floods while no listener is known, so that neighbour discovery
    /// reaches a host whose report the switch never heard (it joined before the switch
    /// started, or its report was lost); once listeners are known it goes to them and the
    /// router ports (README, "Neighbour discovery"). `floodSolicitedNode` floods them always.
    @inline(__always)
    func dataPorts(toIPv6 group: IPv6Address, from source: IPv6Address, in vlan: VLANID, flood: PortSet,
                   at now: Instant) -> PortSet {
        guard mld.snoops[Int(vlan.rawValue)], MLD.isSnooped(group) else { return flood }
        if group.isSolicitedNode {
            if configuration.floodSolicitedNode { return flood }
            return dataPorts(to: group, from: source, in: vlan, flood: flood, at: now, mld, floodUnregistered: true)
        }
        return dataPorts(to: group, from: source, in: vlan, flood: flood, at: now, mld,
                         floodUnregistered: configuration.floodUnregistered)
    }

    /// An MLD or MRD message in a snooping VLAN: checked (the port's rate, which IGMP shares;
    /// the checksum; RFC 9777 5.1.14 and 5.2.13, RFC 2710 3: a link-local source, or :: for a
    /// report (RFC 3590), hop limit 1, and for MLD the router alert; a guarded port's router
    /// announcements), then heard by kind.
    func receiveMLD(_ ip: IPv6HeaderView, _ upper: IPv6UpperLayer, frame: IngressFrame, decision: ForwardingDecision,
                    on port: PortID, at now: Instant) -> ForwardingDecision {
        guard igmpBuckets[port.index].take(at: now) else {
            counters.mldErrors.add(.rateLimited)
            return drop(.rateLimited, on: port)
        }
        let message: MLDMessage
        do {
            message = try MLDMessage.parse(upper.payload, source: ip.source, destination: ip.destination,
                                           verifyChecksum: !frame.checksumPending)
        } catch {
            counters.mldErrors.add(MessageError(error))
            return drop(.badMLD, on: port)
        }
        if let error = Self.datagramError(of: message, ip, upper) {
            counters.mldErrors.add(error)
            return drop(.badMLD, on: port)
        }
        if queryGuardPorts.contains(port), message.announcesARouter {
            counters.mldErrors.add(.guardedQuery)
            return drop(.queryGuard, on: port)
        }
        // Reports and Done go to the router ports only, never to other hosts (RFC 4541 3).
        var towardRouters = decision
        towardRouters.ports = decision.ports.intersection(mld.routers.ports(in: decision.vlan))
        let vlan = decision.vlan

        switch message {
        case .query(let query):
            counters.mldReceived.add(.query(query.version))
            heardQuery(query.heard, from: ip.source, in: vlan, on: port, at: now, mld)
            return decision    // queries reach every port of the VLAN
        case .report(let group):
            counters.mldReceived.add(.reportV1)
            guard group.isMulticast else { return badGroup(on: port, mld, drop: .badMLD) }
            heardReport(group, version: .v1, in: vlan, on: port, at: now, mld)
            return towardRouters
        case .done(let group):
            counters.mldReceived.add(.done)
            guard group.isMulticast else { return badGroup(on: port, mld, drop: .badMLD) }
            heardLeave(group, in: vlan, on: port, at: now, mld)
            return towardRouters
        case .v2Report(let records):
            counters.mldReceived.add(.reportV2)
            for record in records {
                heardRecord(record.type, group: record.group, sources: record.sources, in: vlan, on: port, at: now, mld)
            }
            return towardRouters
        case .mrdAdvertisement(let interval, _, _):
            counters.mldReceived.add(.mrdAdvertisement)
            heardRouterAdvertisement(intervalSeconds: interval, in: vlan, on: port, at: now, mld)
            return decision
        case .mrdTermination:
            counters.mldReceived.add(.mrdTermination)
            heardRouterAdvertisement(intervalSeconds: nil, in: vlan, on: port, at: now, mld)
            return decision
        case .mrdSolicitation:
            counters.mldReceived.add(.mrdSolicitation)
            return towardRouters
        }
    }

    /// What the datagram around an MLD or MRD message must be (RFC 9777 5.1.14, 5.2.13;
    /// RFC 2710 3; RFC 4286 2): nil when it is.
    static func datagramError(of message: MLDMessage, _ ip: IPv6HeaderView, _ upper: IPv6UpperLayer) -> MessageError? {
        var isReport = false
        var isMLD = true
        switch message {
        case .report, .v2Report: isReport = true
        case .mrdAdvertisement, .mrdSolicitation, .mrdTermination: isMLD = false
        case .query, .done: break
        }
        guard ip.source.isLinkLocalUnicast || (isReport && ip.source.isUnspecified) else { return .badSource }
        guard ip.hopLimit == 1 else { return .badHopLimit }
        guard !isMLD || upper.hasMLDRouterAlert else { return .noRouterAlert }
        return nil
    }

    /// A VLAN without MLD snooping floods MLD like any multicast, but its queries still elect
    /// the querier (RFC 9777 7.6.2): ours yields there to a lower address as anywhere.
    func electMLDWithoutSnooping(_ ip: IPv6HeaderView, _ upper: IPv6UpperLayer, frame: IngressFrame,
                                 decision: ForwardingDecision, on port: PortID, at now: Instant) -> ForwardingDecision {
        guard upper.payload.first == MLDMessage.MessageType.query, igmpBuckets[port.index].take(at: now),
              case .query(let query)? = try? MLDMessage.parse(upper.payload, source: ip.source, destination: ip.destination,
                                                              verifyChecksum: !frame.checksumPending),
              Self.datagramError(of: .query(query), ip, upper) == nil
        else { return decision }
        if queryGuardPorts.contains(port) {
            counters.mldErrors.add(.guardedQuery)
            return drop(.queryGuard, on: port)
        }
        counters.mldReceived.add(.query(query.version))
        mld.querier.heard(query.heard, from: ip.source, in: decision.vlan, at: now)
        return decision
    }

    /// A PIM hello to ff02::d (RFC 7761, with the IPv6 pseudo-header in its checksum). False: refused.
    func receivePIMv6(_ ip: IPv6HeaderView, _ upper: IPv6UpperLayer, vlan: VLANID, on port: PortID, at now: Instant) -> Bool {
        let message = try? PIMMessage.parse(upper.payload, source: ip.source, destination: ip.destination)
        return heardPIM(message, in: vlan, on: port, at: now, mld) {
            counters.mldReceived.add($0 == .pimHello ? .pimHello : .pimOther)
        }
    }
}
