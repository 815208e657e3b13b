// The forwarding decision of SnoopingSwitch.receive(_:on:at:), one frame at a time, on tables
// of the sizes the issue names: time and allocations per frame (scaled: 1,000 frames per
// iteration, figures shown per frame).
import Benchmark
import SwitchEngine
import Wire

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident],
        timeUnits: .nanoseconds,
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 100_000
    )

    Benchmark("unicast between learned stations, 100,000 MACs, 64 ports") { benchmark in
        run(unicastWorkload, benchmark)
    } setup: {
        unicastWorkload = Workload.unicast(stations: 100_000, ports: 64)
    } teardown: {
        unicastWorkload = nil
    }

    Benchmark("multicast to a registered group, 10,000 groups, 64 ports") { benchmark in
        run(multicastWorkload, benchmark)
    } setup: {
        multicastWorkload = Workload.multicast(groups: 10_000, ports: 64, membersPerGroup: 3)
    } teardown: {
        multicastWorkload = nil
    }
}

nonisolated(unsafe) var unicastWorkload: Workload!
nonisolated(unsafe) var multicastWorkload: Workload!

@inline(never)
func run(_ workload: Workload, _ benchmark: Benchmark) {
    let engine = workload.engine
    let now = workload.now
    let mask = workload.frames.count - 1
    var next = 0
    for _ in benchmark.scaledIterations {
        let decision = engine.receive(IngressFrame(bytes: workload.frames.frame(next)),
                                      on: workload.ingress[next], at: now)
        blackHole(decision)
        next = (next + 1) & mask
    }
}

/// Frames of one size laid end to end in one allocation, fed in turn.
final class FrameRing {
    static let stride = 64
    let storage: UnsafeMutableRawBufferPointer
    let count: Int

    init(count: Int) {
        precondition(count > 0 && count & (count - 1) == 0, "a power of two")
        self.count = count
        storage = .allocate(byteCount: count * Self.stride, alignment: 64)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit { storage.deallocate() }

    @inline(__always)
    func frame(_ index: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: storage[index * Self.stride ..< index * Self.stride + UDPFrame.length])
    }

    func write(_ index: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) {
        fill(UnsafeMutableRawBufferPointer(rebasing: storage[index * Self.stride ..< (index + 1) * Self.stride]))
    }
}

/// A 64-byte IPv4/UDP frame (without FCS), as a host sends it.
enum UDPFrame {
    static let length = 64

    static func write(into b: UnsafeMutableRawBufferPointer, destinationMAC: MACAddress, sourceMAC: MACAddress,
                      source: IPv4Address, destination: IPv4Address) {
        destinationMAC.write(to: b, at: 0)
        sourceMAC.write(to: b, at: 6)
        b.writeUInt16(EtherType.ipv4, at: 12)
        b[14] = 0x45
        b.writeUInt16(UInt16(length - 14), at: 16)
        b[22] = 16                  // TTL
        b[23] = 17                  // UDP
        source.write(to: b, at: 26)
        destination.write(to: b, at: 30)
        b.writeUInt16(0, at: 24)
        b.writeUInt16(InternetChecksum.compute(UnsafeRawBufferPointer(rebasing: b[14 ..< 34])), at: 24)
        b.writeUInt16(4000, at: 34)
        b.writeUInt16(9, at: 36)
        b.writeUInt16(UInt16(length - 34), at: 38)
    }
}

/// A deterministic generator, so that every run feeds the same frames.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// An engine with its tables filled, and the frames to feed it.
final class Workload {
    let engine: SnoopingSwitch
    let frames: FrameRing
    let ingress: [PortID]
    let now = Instant(nanoseconds: 1_000_000_000)

    init(engine: SnoopingSwitch, frames: FrameRing, ingress: [PortID]) {
        self.engine = engine
        self.frames = frames
        self.ingress = ingress
    }

    static func station(_ k: Int) -> MACAddress { MACAddress(rawValue: 0x0200_0000_0000 | UInt64(k + 1)) }
    static func hostIP(_ k: Int) -> IPv4Address { IPv4Address(rawValue: 0xC000_0200 | UInt32(k & 0xff)) }   // 192.0.2.x

    static func engine(ports: Int, macLimit: Int = 65_536) -> SnoopingSwitch {
        var configuration = SwitchConfiguration(ports: (0 ..< ports).map { PortConfiguration(name: "p\($0)") })
        configuration.macTableLimit = macLimit
        let engine = SnoopingSwitch(configuration: configuration, at: .zero)
        engine.advance(to: .zero)
        return engine
    }

    /// `stations` learned stations, station k behind port k % ports; frames between random pairs
    /// on different ports (each a known unicast: one egress port).
    static func unicast(stations: Int, ports: Int) -> Workload {
        let engine = engine(ports: ports, macLimit: 2 * stations)
        let one = FrameRing(count: 1)
        for k in 0 ..< stations {
            one.write(0) {
                UDPFrame.write(into: $0, destinationMAC: .broadcast, sourceMAC: station(k),
                               source: hostIP(k), destination: IPv4Address(192, 0, 2, 255))
            }
            _ = engine.receive(IngressFrame(bytes: one.frame(0)), on: PortID(k % ports), at: .zero)
        }
        precondition(engine.stationCount == stations, "learned \(engine.stationCount) of \(stations) stations")

        var random = SplitMix64(state: 1)
        let frames = FrameRing(count: 4096)
        var ingress: [PortID] = []
        for i in 0 ..< frames.count {
            let a = random.below(stations)
            var b = random.below(stations)
            while b % ports == a % ports { b = random.below(stations) }
            frames.write(i) {
                UDPFrame.write(into: $0, destinationMAC: station(b), sourceMAC: station(a),
                               source: hostIP(a), destination: hostIP(b))
            }
            ingress.append(PortID(a % ports))
            let decision = engine.receive(IngressFrame(bytes: frames.frame(i)), on: ingress[i], at: .zero)
            precondition(decision.ports == PortSet([PortID(b % ports)]), "frame \(i) not forwarded to its station")
        }
        return Workload(engine: engine, frames: frames, ingress: ingress)
    }

    /// `groups` groups (239.1.0.0 onwards) joined by IGMPv2 reports on `membersPerGroup` ports
    /// each among ports 1 ..< ports; data from port 0 to random registered groups.
    static func multicast(groups: Int, ports: Int, membersPerGroup: Int) -> Workload {
        let engine = engine(ports: ports)
        var random = SplitMix64(state: 2)
        var members: [PortSet] = []
        for g in 0 ..< groups {
            let group = IPv4Address(rawValue: 0xEF01_0000 + UInt32(g))
            var set = PortSet()
            while set.count < membersPerGroup { set.insert(PortID(1 + random.below(ports - 1))) }
            for port in set {
                let report = IGMPFrameBuilder.frame(.report(group: group, version: .v2), from: station(port.index),
                                                    source: hostIP(port.index), destination: group)
                report.withUnsafeBytes { _ = engine.receive(IngressFrame(bytes: $0), on: port, at: .zero) }
            }
            members.append(set)
        }
        precondition(engine.groupCount == groups, "registered \(engine.groupCount) of \(groups) groups")

        let frames = FrameRing(count: 4096)
        var ingress: [PortID] = []
        for i in 0 ..< frames.count {
            let g = random.below(groups)
            let group = IPv4Address(rawValue: 0xEF01_0000 + UInt32(g))
            frames.write(i) {
                UDPFrame.write(into: $0, destinationMAC: .ipv4Multicast(group), sourceMAC: station(0),
                               source: hostIP(0), destination: group)
            }
            ingress.append(PortID(0))
            let decision = engine.receive(IngressFrame(bytes: frames.frame(i)), on: PortID(0), at: .zero)
            precondition(decision.ports == members[g], "frame \(i) not forwarded to the group's members")
        }
        return Workload(engine: engine, frames: frames, ingress: ingress)
    }
}
