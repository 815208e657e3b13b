import Wire

/// IGMP messages heard in a snooping VLAN (RFC 4541, RFC 2236, RFC 3376) and PIM hellos
/// (RFC 7761), read and handed to what IGMP and MLD share (SnoopingSwitch+Membership).
extension SnoopingSwitch {
    // MARK: - IGMP

    /// An IGMP message in a snooping VLAN: checked (the port's rate, the checksum, a guarded
    /// port's router announcements), then heard by kind.
    func receiveIGMP(_ ip: IPv4HeaderView, frame: IngressFrame, decision: ForwardingDecision,
                     on port: PortID, at now: Instant) -> ForwardingDecision {
        guard igmpBuckets[port.index].take(at: now) else {
            counters.errors.add(.rateLimited)
            return drop(.rateLimited, on: port)
        }
        let message: IGMPMessage
        do {
            message = try IGMPMessage.parse(ip.payload, verifyChecksum: !frame.checksumPending)
        } catch .unknownType {
            // RFC 4541 2.1.1 (3): unrecognized IGMP messages are flooded to all other ports.
            counters.errors.add(.unknownType)
            return decision
        } catch {
            counters.errors.add(MessageError(error))
            return drop(.badIGMP, on: port)
        }
        if queryGuardPorts.contains(port), message.announcesARouter {
            // A guarded port's hosts cannot speak for a router: refused, so a rogue host can
            // neither silence our querier nor draw every group to itself.
            counters.errors.add(.guardedQuery)
            return drop(.queryGuard, on: port)
        }
        // Reports and leaves go to the router ports only, never to other hosts (RFC 4541 2.1.1).
        var towardRouters = decision
        towardRouters.ports = decision.ports.intersection(igmp.routers.ports(in: decision.vlan))
        let vlan = decision.vlan

        switch message {
        case .query(let query):
            counters.received.add(.query(query.version))
            heardQuery(query.heard, from: ip.source, in: vlan, on: port, at: now, igmp)
            return decision    // queries reach every port of the VLAN
        case .report(let group, let version):
            counters.received.add(.report(version))
            guard group.isMulticast else { return badGroup(on: port, igmp, drop: .badIGMP) }
            heardReport(group, version: version, in: vlan, on: port, at: now, igmp)
            return towardRouters
        case .leave(let group):
            counters.received.add(.leave)
            guard group.isMulticast else { return badGroup(on: port, igmp, drop: .badIGMP) }
            heardLeave(group, in: vlan, on: port, at: now, igmp)
            return towardRouters
        case .v3Report(let records):
            counters.received.add(.reportV3)
            for record in records {
                heardRecord(record.type, group: record.group, sources: record.sources, in: vlan, on: port, at: now, igmp)
            }
            return towardRouters
        case .dvmrp(let code):
            counters.received.add(.dvmrp)
            if code == 1 {   // a probe: a DVMRP router's neighbor timeout is 35 s
                igmp.routers.heard(.dvmrpProbe, on: port, in: vlan, until: now + .seconds(35))
            }
            return decision
        case .mrdAdvertisement(let interval, _, _):
            counters.received.add(.mrdAdvertisement)
            heardRouterAdvertisement(intervalSeconds: interval, in: vlan, on: port, at: now, igmp)
            return decision
        case .mrdTermination:
            counters.received.add(.mrdTermination)
            heardRouterAdvertisement(intervalSeconds: nil, in: vlan, on: port, at: now, igmp)
            return decision
        case .mrdSolicitation:
            counters.received.add(.mrdSolicitation)
            return towardRouters
        }
    }

    /// A VLAN without snooping floods IGMP like any multicast, but its queries still elect the
    /// querier (RFC 3376 6.6.2, RFC 2236 3): ours yields there to a lower address as anywhere.
    /// Past the port's IGMP rate a query is flooded unheard; a guarded port's is refused.
    func electWithoutSnooping(_ ip: IPv4HeaderView, frame: IngressFrame, decision: ForwardingDecision,
                              on port: PortID, at now: Instant) -> ForwardingDecision {
        let payload = ip.payload
        guard payload.count >= 8, payload[0] == IGMPMessage.MessageType.query,
              igmpBuckets[port.index].take(at: now),
              case .query(let query)? = try? IGMPMessage.parse(payload, verifyChecksum: !frame.checksumPending)
        else { return decision }
        if queryGuardPorts.contains(port) {
            counters.errors.add(.guardedQuery)
            return drop(.queryGuard, on: port)
        }
        counters.received.add(.query(query.version))
        igmp.querier.heard(query.heard, from: ip.source, in: decision.vlan, at: now)
        return decision
    }

    // MARK: - PIM

    /// A PIM hello to 224.0.0.13 (RFC 7761). False: refused.
    func receivePIM(_ ip: IPv4HeaderView, vlan: VLANID, on port: PortID, at now: Instant) -> Bool {
        heardPIM(try? PIMMessage.parse(ip.payload), in: vlan, on: port, at: now, igmp) {
            counters.received.add($0 == .pimHello ? .pimHello : .pimOther)
        }
    }
}
