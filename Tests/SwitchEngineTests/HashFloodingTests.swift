import XCTest
import Wire
@testable import SwitchEngine

/// The tables hash what hosts choose (source MACs, groups) under a random seed of their own:
/// keys crafted to collide under a known hash spread like any others.
final class HashFloodingTests: XCTestCase {
    /// The first version's slot for a key: Fibonacci hashing, the top `bits` of key * C.
    static func oldSlot(_ key: UInt64, bits: UInt64) -> UInt64 { (key &* 0x9E37_79B9_7F4A_7C15) >> (64 - bits) }

    /// 8,192 unicast MACs in VLAN 1 that the old hash put in one slot of every table up to
    /// 32,768 slots: points of the lattice {(x, x*C mod 2^64)} around one of them, walked by its
    /// reduced basis (whose first coordinates are two Fibonacci numbers, C being the golden ratio
    /// times 2^64). scripts/colliding-macs.py derives them and prints them for a hostile host.
    static let craftedMACs: [MACAddress] = {
        let center: UInt64 = 0x02_7f_9d_e2_96_12
        let u: UInt64 = 102_334_155, v: UInt64 = 165_580_141
        var macs: [MACAddress] = []
        for i in 0..<128 {
            for j in 0..<64 {
                let x = center &+ UInt64(i) &* u &+ UInt64(j) &* v &- 64 &* u &- 32 &* v
                macs.append(MACAddress(rawValue: x))
            }
        }
        return macs
    }()

    func testTheCraftedAddressesCollideUnderTheOldHash() {
        let vlan = VLANID.default
        let slots = Set(Self.craftedMACs.map { Self.oldSlot(MacTable.key(vlan, $0), bits: 15) })
        XCTAssertEqual(slots.count, 1, "the test's keys no longer collide under the old hash: it would prove nothing")
        XCTAssertEqual(Set(Self.craftedMACs).count, 8192)
        XCTAssertTrue(Self.craftedMACs.allSatisfy { !$0.isMulticast })
    }

    /// Under the old hash the 8,192 addresses made one cluster: a lookup near it walked up to
    /// 8,192 slots. Under a seeded hash the longest walk stays that of random keys.
    func testCraftedAddressesDoNotClusterInTheMacTable() {
        let table = MacTable(limit: 65_536, perPortLimit: 65_536, aging: .seconds(300))
        for mac in Self.craftedMACs {
            XCTAssertTrue(table.learn(mac, vlan: .default, port: PortID(0), at: .zero))
        }
        XCTAssertEqual(table.count, 8192)
        XCTAssertLessThan(table.longestProbe, 64, "crafted source MACs cluster: the hash is predictable")
    }

    func testEachTableHasItsOwnSeed() {
        // Two maps holding the same keys lay them out differently: a seed is drawn per map.
        let a = OpenHashMap<UInt64, Int>(minimumCapacity: 1024), b = OpenHashMap<UInt64, Int>(minimumCapacity: 1024)
        for k in UInt64(0)..<512 {
            a.set(Int(k), for: k)
            b.set(Int(k), for: k)
        }
        XCTAssertNotEqual(a.entries().map(\.key), b.entries().map(\.key))
        // A fixed seed gives a fixed layout (what the seed is for: the layout is its function alone).
        let c = OpenHashMap<UInt64, Int>(minimumCapacity: 1024, seed: HashSeed(1, 2))
        let d = OpenHashMap<UInt64, Int>(minimumCapacity: 1024, seed: HashSeed(1, 2))
        for k in UInt64(0)..<512 {
            c.set(Int(k), for: k)
            d.set(Int(k), for: k)
        }
        XCTAssertEqual(c.entries().map(\.key), d.entries().map(\.key))
    }
}
