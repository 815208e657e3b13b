import XCTest
@testable import SwitchEngine
import Wire

/// Drives the engine as the RFCs read: "at time t, this frame arrives on port p; these ports
/// get it". Time is virtual; ports are numbered from 0.
final class EngineHarness {
    private(set) var now = Instant.zero
    let engine: SnoopingSwitch

    init(_ ports: [PortConfiguration], _ configure: (inout SwitchConfiguration) -> Void = { _ in }) {
        var configuration = SwitchConfiguration(ports: ports)
        configure(&configuration)
        engine = SnoopingSwitch(configuration: configuration, at: .zero)
        engine.advance(to: .zero)
    }

    /// `count` access ports of VLAN 1, named p0, p1, ...
    convenience init(accessPorts count: Int, _ configure: (inout SwitchConfiguration) -> Void = { _ in }) {
        self.init((0..<count).map { PortConfiguration(name: "p\($0)") }, configure)
    }

    /// Moves the virtual clock to `seconds` and runs the timers due.
    func at(_ seconds: Double) {
        now = Instant(nanoseconds: Int64((seconds * 1e9).rounded()))
        engine.advance(to: now)
    }

    static func host(_ port: Int, _ n: Int = 0) -> MACAddress { MACAddress(0x02, 0, 0, 0, UInt8(n), UInt8(port + 1)) }
    static func hostIP(_ port: Int, _ n: Int = 0) -> IPv4Address { IPv4Address(192, 0, 2, UInt8(truncatingIfNeeded: 10 * n + port + 1)) }

    /// The decision of the last frame sent.
    private(set) var lastDecision = ForwardingDecision.none

    @discardableResult
    func send(_ frame: [UInt8], on port: Int, tag: VLANTag? = nil) -> ForwardingDecision {
        lastDecision = frame.withUnsafeBytes { engine.receive(IngressFrame(bytes: $0, tag: tag), on: PortID(port), at: now) }
        return lastDecision
    }

    /// The ports a frame leaves by, as indices.
    func ports(_ decision: ForwardingDecision) -> Set<Int> { Set(decision.ports.map(\.index)) }

    @discardableResult
    func igmp(_ message: IGMPMessage, on port: Int, from source: IPv4Address? = nil, to destination: IPv4Address,
              tag: VLANTag? = nil) -> Set<Int> {
        let frame = IGMPFrameBuilder.frame(message, from: Self.host(port), source: source ?? Self.hostIP(port),
                                           destination: destination)
        return ports(send(frame, on: port, tag: tag))
    }

    @discardableResult
    func report(_ group: IPv4Address, on port: Int, version: IGMPVersion = .v2) -> Set<Int> {
        switch version {
        case .v3: igmp(.v3Report([IGMPGroupRecord(type: .modeIsExclude, group: group)]), on: port, to: .igmpv3Routers)
        default: igmp(.report(group: group, version: version), on: port, to: group)
        }
    }

    @discardableResult
    func leave(_ group: IPv4Address, on port: Int) -> Set<Int> {
        igmp(.leave(group: group), on: port, to: .allRouters)
    }

    @discardableResult
    func query(on port: Int, from source: IPv4Address, version: IGMPVersion = .v3, group: IPv4Address = .any,
               maxResponseDeciseconds: Int = 100, robustness: Int = 2, queryInterval: Int = 125) -> Set<Int> {
        igmp(.query(IGMPQuery(version: version, group: group, maxResponseDeciseconds: maxResponseDeciseconds,
                              robustness: robustness, queryIntervalSeconds: queryInterval)),
             on: port, from: source, to: group == .any ? .allSystems : group)
    }

    /// A UDP datagram to `group` from the host behind `port`: the ports it reaches.
    func data(to group: IPv4Address, on port: Int, tag: VLANTag? = nil) -> Set<Int> {
        ports(send(Self.udpFrame(to: group, mac: MACAddress.ipv4Multicast(group), from: port), on: port, tag: tag))
    }

    static func udpFrame(to destination: IPv4Address, mac: MACAddress, from port: Int, host n: Int = 0) -> [UInt8] {
        var frame = [UInt8](repeating: 0, count: 14 + 20 + 8 + 4)
        frame.withUnsafeMutableBytes { b in
            mac.write(to: b, at: 0)
            host(port, n).write(to: b, at: 6)
            b.writeUInt16(EtherType.ipv4, at: 12)
            b[14] = 0x45
            b.writeUInt16(32, at: 16)
            b[22] = 8                   // TTL
            b[23] = 17                  // UDP
            hostIP(port, n).write(to: b, at: 26)
            destination.write(to: b, at: 30)
            b.writeUInt16(InternetChecksum.compute(UnsafeRawBufferPointer(rebasing: b[14..<34])), at: 24)
            b.writeUInt16(5000, at: 34)
            b.writeUInt16(5000, at: 36)
            b.writeUInt16(12, at: 38)
        }
        return frame
    }

    /// An Ethernet frame from the host behind `port` (host `n` there) to `destination`.
    func unicast(to destination: MACAddress, on port: Int, host n: Int = 0, tag: VLANTag? = nil) -> Set<Int> {
        ports(send(Self.udpFrame(to: IPv4Address(192, 0, 2, 200), mac: destination, from: port, host: n), on: port, tag: tag))
    }

    /// The queries the switch sent since the last call, decoded.
    func sentQueries() -> [(vlan: VLANID, ports: Set<Int>, source: IPv4Address, destination: IPv4Address, query: IGMPQuery)] {
        engine.takeOutbox().compactMap { frame in
            frame.bytes.withUnsafeBytes { bytes in
                guard let ethernet = try? EthernetFrameView(checking: bytes),
                      let ip = try? IPv4HeaderView(checking: ethernet.payload),
                      case .query(let query)? = try? IGMPMessage.parse(ip.payload) else { return nil }
                return (frame.vlan, Set(frame.ports.map(\.index)), ip.source, ip.destination, query)
            }
        }
    }

    func member(_ group: IPv4Address, on port: Int, vlan: VLANID = .default) -> MembershipTable<IPv4Address, IGMPVersion>.Member? {
        engine.memberships.member(PortID(port), of: group, in: vlan)
    }
}

let g1 = IPv4Address(239, 1, 1, 1)
let g2 = IPv4Address(239, 2, 2, 2)
let vlan10 = VLANID(10)!
let vlan20 = VLANID(20)!
