import XCTest
@testable import SwitchEngine
import Wire

/// MLD on the engine harness: "at time t, this MLD message (or IPv6 datagram) arrives on port
/// p; these ports get it", and the MLD queries the switch sent, decoded with what RFC 9777
/// section 5 asks of their datagram (hop limit, router alert, source, length).
///
/// The host behind port p has the MAC `EngineHarness.host(p)` (02:00:00:00:00:0p+1) and the
/// link-local address of its EUI-64, fe80::ff:fe00:p+1: the host of the captured frames
/// (02:00:00:00:00:02, fe80::ff:fe00:2) is port 1's, their Linux bridge querier
/// (02:00:00:00:00:01, fe80::ff:fe00:1) port 0's.
extension EngineHarness {
    static func hostLL(_ port: Int, _ n: Int = 0) -> IPv6Address { .linkLocal(eui64From: host(port, n)) }

    /// An MLD or MRD message from the host behind `port`, built as a host sends it (hop limit 1,
    /// hop-by-hop router alert 0), then spoiled if asked: another hop limit, or the router
    /// alert turned into padding.
    @discardableResult
    func mld(_ message: MLDMessage, on port: Int, from source: IPv6Address? = nil, to destination: IPv6Address,
             hopLimit: UInt8 = 1, routerAlert: Bool = true, tag: VLANTag? = nil) -> Set<Int> {
        var frame = MLDFrameBuilder.frame(message, from: Self.host(port), source: source ?? Self.hostLL(port),
                                          destination: destination)
        frame[14 + 7] = hopLimit
        if !routerAlert { frame[14 + 40 + 2] = 1 }      // option type 5 (router alert) -> 1 (PadN)
        return ports(send(frame, on: port, tag: tag))
    }

    /// An MLDv2 report of one record, to ff02::16 (RFC 9777 5.2.14).
    @discardableResult
    func record(_ type: MLDAddressRecord.RecordType, _ group: IPv6Address, _ sources: [IPv6Address] = [],
                on port: Int, from source: IPv6Address? = nil, tag: VLANTag? = nil) -> Set<Int> {
        mld(.v2Report([MLDAddressRecord(type: type, group: group, sources: sources)]), on: port, from: source,
            to: .mldv2Routers, tag: tag)
    }

    /// A join: MLDv2 IS_EX({}) to ff02::16, or an MLDv1 report to the group (RFC 2710 3).
    @discardableResult
    func report(_ group: IPv6Address, on port: Int, version: MLDVersion = .v2, tag: VLANTag? = nil) -> Set<Int> {
        switch version {
        case .v2: record(.modeIsExclude, group, on: port, tag: tag)
        case .v1: mld(.report(group: group), on: port, to: group, tag: tag)
        }
    }

    /// An MLDv1 Done, to ff02::2 (RFC 2710 3).
    @discardableResult
    func done(_ group: IPv6Address, on port: Int, tag: VLANTag? = nil) -> Set<Int> {
        mld(.done(group: group), on: port, to: .allRouters, tag: tag)
    }

    /// A query from a router behind `port`: general to ff02::1, address-specific to the group.
    @discardableResult
    func mldQuery(on port: Int, from source: IPv6Address, version: MLDVersion = .v2, group: IPv6Address = .any,
                  sources: [IPv6Address] = [], maxResponseMilliseconds: Int = 10_000, robustness: Int = 2,
                  queryInterval: Int = 125, suppress: Bool = false, hopLimit: UInt8 = 1, routerAlert: Bool = true,
                  tag: VLANTag? = nil) -> Set<Int> {
        let query = MLDQuery(version: version, group: group, maxResponseMilliseconds: maxResponseMilliseconds,
                             suppressRouterProcessing: suppress, robustness: version == .v2 ? robustness : 0,
                             queryIntervalSeconds: version == .v2 ? queryInterval : 0, sources: sources)
        return mld(.query(query), on: port, from: source, to: query.destination, hopLimit: hopLimit,
                   routerAlert: routerAlert, tag: tag)
    }

    /// A UDP datagram to `group` from the host behind `port` (or from `source`): the ports it reaches.
    func data(to group: IPv6Address, from source: IPv6Address? = nil, on port: Int, tag: VLANTag? = nil) -> Set<Int> {
        let udp: [UInt8] = [0x13, 0x88, 0x13, 0x88, 0, 12, 0, 0, 0xde, 0xad, 0xbe, 0xef]
        return ports(send(Self.ipv6Frame(to: group, from: source ?? Self.hostLL(port), port: port, nextHeader: 17,
                                         hopLimit: 8, payload: udp), on: port, tag: tag))
    }

    /// A neighbour solicitation (RFC 4861 4.3) for `target` to its solicited-node group: ICMPv6
    /// that is not MLD, which the switch forwards as data.
    func neighbourSolicitation(for target: IPv6Address, on port: Int) -> Set<Int> {
        let group = target.solicitedNodeGroup
        let source = Self.hostLL(port)
        var icmp: [UInt8] = [135, 0, 0, 0, 0, 0, 0, 0] + target.octets
        icmp.withUnsafeMutableBytes { b in
            b.writeUInt16(InternetChecksum.compute(UnsafeRawBufferPointer(b), source: source, destination: group,
                                                   nextHeader: IPv6HeaderView.NextHeader.icmpv6), at: 2)
        }
        return ports(send(Self.ipv6Frame(to: group, from: source, port: port, nextHeader: IPv6HeaderView.NextHeader.icmpv6,
                                         hopLimit: 255, payload: icmp), on: port))
    }

    /// A PIM hello (RFC 7761 4.9.2) to ff02::d with one holdtime option, its checksum over the
    /// IPv6 pseudo-header (4.9).
    @discardableResult
    func pimv6Hello(holdtime: UInt16, on port: Int) -> Set<Int> {
        let source = Self.hostLL(port)
        var hello = PIMMessage.helloBytes(holdtimeSeconds: holdtime)
        hello.withUnsafeMutableBytes { b in
            b.writeUInt16(0, at: 2)
            b.writeUInt16(InternetChecksum.compute(UnsafeRawBufferPointer(b), source: source, destination: .allPIMRouters,
                                                   nextHeader: IPv6HeaderView.NextHeader.pim), at: 2)
        }
        return ports(send(Self.ipv6Frame(to: .allPIMRouters, from: source, port: port, nextHeader: IPv6HeaderView.NextHeader.pim,
                                         hopLimit: 1, payload: hello), on: port))
    }

    /// An Ethernet frame to the group's 33:33 MAC (RFC 2464 7) carrying an IPv6 datagram
    /// without extension headers.
    static func ipv6Frame(to destination: IPv6Address, from source: IPv6Address, port: Int, nextHeader: UInt8,
                          hopLimit: UInt8, payload: [UInt8]) -> [UInt8] {
        var frame = [UInt8](repeating: 0, count: 14 + 40)
        frame.withUnsafeMutableBytes { b in
            MACAddress.ipv6Multicast(destination).write(to: b, at: 0)
            host(port).write(to: b, at: 6)
            b.writeUInt16(EtherType.ipv6, at: 12)
            b[14] = 0x60
            b.writeUInt16(UInt16(payload.count), at: 18)
            b[20] = nextHeader
            b[21] = hopLimit
            source.write(to: b, at: 22)
            destination.write(to: b, at: 38)
        }
        return frame + payload
    }

    /// An MLD query the switch sent, with its datagram.
    struct SentMLDQuery {
        var vlan: VLANID
        var ports: Set<Int>
        var sourceMAC: MACAddress
        var destinationMAC: MACAddress
        var source: IPv6Address
        var destination: IPv6Address
        var hopLimit: UInt8
        var routerAlert: UInt16?
        /// The ICMPv6 message's length: 24 for MLDv1, 28 and more for MLDv2 (RFC 9777 8.1).
        var length: Int
        var query: MLDQuery
    }

    /// The MLD queries the switch sent since the outbox was last taken (the other frames, IGMP
    /// queries and router solicitations, are taken and dropped).
    func sentMLDQueries() -> [SentMLDQuery] {
        engine.takeOutbox().compactMap { frame in
            frame.bytes.withUnsafeBytes { bytes -> SentMLDQuery? in
                guard let ethernet = try? EthernetFrameView(checking: bytes), ethernet.etherType == EtherType.ipv6,
                      let ip = try? IPv6HeaderView(checking: ethernet.payload), let upper = try? ip.upperLayer(),
                      case .query(let query)? = try? MLDMessage.parse(datagram: ip) else { return nil }
                return SentMLDQuery(vlan: frame.vlan, ports: Set(frame.ports.map(\.index)), sourceMAC: ethernet.source,
                                    destinationMAC: ethernet.destination, source: ip.source, destination: ip.destination,
                                    hopLimit: ip.hopLimit, routerAlert: upper.routerAlert, length: upper.payload.count,
                                    query: query)
            }
        }
    }

    func listener(_ group: IPv6Address, on port: Int, vlan: VLANID = .default) -> MembershipTable<IPv6Address, MLDVersion>.Member? {
        engine.mld.memberships.member(PortID(port), of: group, in: vlan)
    }

    /// The reason the MLD router port `port` is one (nil: it is none, or only static).
    func mldRouterReason(_ port: Int, vlan: VLANID = .default) -> RouterPortReason? {
        engine.mldRouters.learnedPorts().first { $0.port == PortID(port) && $0.vlan == vlan }?.learned.reason
    }
}

/// Groups outside the SSM range: a site-local and a global one, and a source-specific group.
let mg1 = IPv6Address("ff15::4242")!
let mg2 = IPv6Address("ff0e::1:2")!
let ssmGroup6 = IPv6Address("ff3e::8000:1")!
/// The router of the MLD tests: fe80::1, below the switch's own fe80::53:4eff:fe4f:4f50.
let router6 = IPv6Address("fe80::1")!
/// The switch's MLD source: the link-local address of its MAC 02:53:4e:4f:4f:50.
let switchLL = IPv6Address("fe80::53:4eff:fe4f:4f50")!

/// Bytes from the hex of a capture.
func hexBytes(_ text: String) -> [UInt8] {
    let digits = text.filter(\.isHexDigit)
    var out: [UInt8] = []
    var index = digits.startIndex
    while index < digits.endIndex {
        let next = digits.index(index, offsetBy: 2)
        out.append(UInt8(digits[index..<next], radix: 16)!)
        index = next
    }
    return out
}
