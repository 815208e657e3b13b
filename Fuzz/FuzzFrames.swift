// libFuzzer target: arbitrary frames through the parsers and the engine together.
// Built by scripts/fuzz.sh (swiftc -sanitize=fuzzer,address); not part of the SwiftPM build.
//
// Input layout: byte 0 chooses the ingress port (bits 0-1), whether a VLAN tag came in auxdata
// (bit 2), whether the checksum is pending (bit 3), and how far the clock moves (bits 4-7,
// in seconds); bytes 1-2 are the tag; the rest is the frame.
import SwitchEngine
import Wire

nonisolated(unsafe) private var engine: SnoopingSwitch = {
    var configuration = SwitchConfiguration(ports: [
        PortConfiguration(name: "access1"),
        PortConfiguration(name: "fastleave", fastLeave: true),
        PortConfiguration(name: "trunk", pvid: nil, tagged: [VLANID(1)!, VLANID(10)!, VLANID(20)!]),
        PortConfiguration(name: "router", pvid: VLANID(10)!, tagged: [VLANID(20)!], isStaticRouterPort: true),
    ])
    configuration.querier = QuerierConfiguration(enabled: true, address: IPv4Address(192, 0, 2, 254))
    configuration.mldQuerier.enabled = true    // MLD's querier too: its queries after Done and BLOCK
    configuration.timers.queryInterval = .seconds(20)
    configuration.timers.queryResponseInterval = .seconds(2)
    configuration.membershipLimits.groupsPerPort = 512
    configuration.macTableLimit = 4096
    return SnoopingSwitch(configuration: configuration, at: .zero)
}()
nonisolated(unsafe) private var now = Instant.zero

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafeRawPointer, _ size: Int) -> CInt {
    guard size >= 3 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let control = input[0]
    let frame = UnsafeRawBufferPointer(rebasing: input[3...])

    // The parsers alone: each either refuses or gives a value, never traps.
    _ = try? EthernetFrameView(checking: frame)
    _ = try? IPv4HeaderView(checking: frame)
    _ = try? IGMPMessage.parse(frame)
    _ = try? PIMMessage.parse(frame)
    if let ip = try? IPv6HeaderView(checking: frame) {
        _ = try? ip.upperLayer()
        _ = try? MLDMessage.parse(datagram: ip, verifyChecksum: control & 0x08 == 0)
    }
    _ = try? MLDMessage.parse(frame, source: .any, destination: .allNodes, verifyChecksum: control & 0x08 == 0)

    // And the engine: every rule on whatever arrives.
    now = now + .seconds(Int(control >> 4))
    engine.advance(to: now)
    let port = PortID(Int(control & 0x03))
    let tag = control & 0x04 != 0 ? VLANTag(tci: UInt16(input[1]) << 8 | UInt16(input[2])) : nil
    let decision = engine.receive(IngressFrame(bytes: frame, tag: tag, checksumPending: control & 0x08 != 0), on: port, at: now)
    precondition(!decision.ports.contains(port), "a frame went back out of its ingress port")
    precondition(decision.ports.isEmpty || decision.ports.intersection(engine.activePorts(in: decision.vlan)) == decision.ports,
                 "a frame left its VLAN")
    precondition(decision.untagged.intersection(decision.tagged).isEmpty, "a port got the frame both tagged and untagged")
    if let route = decision.route {
        precondition(tag == nil && decision.ports == PortSet([route.egress]) && route.ingress == port,
                     "a route that is not the decision")
        precondition(engine.holds(route, at: now) && engine.holds(route.reversed, at: now), "a route that does not hold")
    }
    for generated in engine.takeOutbox() {
        precondition(generated.untagged.intersection(generated.tagged).isEmpty, "a port got a query both tagged and untagged")
        generated.bytes.withUnsafeBytes { bytes in
            guard let ethernet = try? EthernetFrameView(checking: bytes) else { preconditionFailure("the switch built a broken frame") }
            if ethernet.etherType == EtherType.ipv6 {
                // Its own MLD queries must pass its own checks, as a host's would.
                guard let ip = try? IPv6HeaderView(checking: ethernet.payload),
                      (try? MLDMessage.parse(datagram: ip)) != nil else { preconditionFailure("the switch built a broken MLD frame") }
            }
        }
    }
    return 0
}
