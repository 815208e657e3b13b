import XCTest
@testable import SwitchEngine
import Wire

/// The membership table's storage: dense records with an index, the first member inline and
/// the others beside it, older host timers inline. Its rules are tested through the engine
/// elsewhere; here, what the storage must keep right when records and members move.
final class MembershipTableTests: XCTestCase {
    typealias Table = MembershipTable<IPv4Address, IGMPVersion>

    static let timers = MembershipTimers(groupMembershipInterval: .seconds(260), lastMemberQueryTime: .seconds(2))
    static let s1 = IPv4Address(198, 51, 100, 1)
    static let s2 = IPv4Address(198, 51, 100, 2)

    static func group(_ i: Int) -> IPv4Address { IPv4Address(239, 3, UInt8(i >> 8), UInt8(i & 0xff)) }

    /// An IGMPv2 join: IS_EX({}).
    func join(_ table: Table, _ group: IPv4Address, on port: Int, at now: Instant = .zero) {
        table.apply(.isExclude, sources: [], version: .v2, on: PortID(port), to: group, in: .default, at: now,
                    timers: Self.timers)
    }

    func ports(_ table: Table, _ group: IPv4Address, from source: IPv4Address = s1) -> Set<Int>? {
        table.ports(of: group, in: .default, from: source, at: .zero).map { Set($0.map(\.index)) }
    }

    func testEveryPortInOneGroupAndRemovalsFromTheMiddle() {
        let table = Table(limits: MembershipLimits())
        let all = 0 ..< PortSet.capacity
        for port in all { join(table, g1, on: port) }
        XCTAssertEqual(ports(table, g1), Set(all))
        XCTAssertEqual(table.groupCount, 1)

        // The inline first member and a run from the middle of the others go; the rest stay.
        let removed = [0] + Array(100 ..< 200)
        for port in removed { XCTAssertTrue(table.remove(PortID(port), from: g1, in: .default)) }
        XCTAssertFalse(table.remove(PortID(0), from: g1, in: .default), "already gone")
        let left = Set(all).subtracting(removed)
        XCTAssertEqual(ports(table, g1), left)
        for port in all {
            XCTAssertEqual(table.member(PortID(port), of: g1, in: .default) != nil, left.contains(port), "port \(port)")
            XCTAssertEqual(table.groupCount(on: PortID(port)), left.contains(port) ? 1 : 0)
        }
        XCTAssertEqual(table.allGroups().first?.members.map(\.port.index), left.sorted())

        // A port joins again after others left.
        join(table, g1, on: 150)
        XCTAssertEqual(ports(table, g1), left.union([150]))

        for port in left.union([150]) { table.remove(PortID(port), from: g1, in: .default) }
        XCTAssertNil(ports(table, g1))
        XCTAssertEqual(table.groupCount, 0)
        XCTAssertEqual(table.groupCount(in: .default), 0)
    }

    func testGroupsRemovedFromTheMiddleLeaveTheOthersIntact() {
        let table = Table(limits: MembershipLimits())
        let count = 1000
        for i in 0 ..< count { join(table, Self.group(i), on: 1 + i % 4) }
        // The last record filters sources (INCLUDE {s1}) and shares its group with a port that does
        // not: it moves into the slots freed below and must keep asking its members.
        let last = Self.group(count)
        table.apply(.isInclude, sources: [Self.s1], version: .v3, on: PortID(7), to: last, in: .default, at: .zero,
                    timers: Self.timers)
        join(table, last, on: 8)
        XCTAssertEqual(ports(table, last, from: Self.s1), [7, 8])
        XCTAssertEqual(ports(table, last, from: Self.s2), [8])

        var gone = Set<Int>()
        for i in stride(from: 0, to: count, by: 7) {
            XCTAssertTrue(table.remove(PortID(1 + i % 4), from: Self.group(i), in: .default))
            gone.insert(i)
        }
        XCTAssertEqual(table.groupCount, count + 1 - gone.count)
        XCTAssertEqual(table.groupCount(in: .default), count + 1 - gone.count)
        for i in 0 ..< count {
            XCTAssertEqual(ports(table, Self.group(i)), gone.contains(i) ? nil : [1 + i % 4], "group \(i)")
        }
        XCTAssertEqual(ports(table, last, from: Self.s1), [7, 8])
        XCTAssertEqual(ports(table, last, from: Self.s2), [8])

        // The filtering member leaves: the other port alone gets every source.
        table.remove(PortID(7), from: last, in: .default)
        XCTAssertEqual(ports(table, last, from: Self.s1), [8])
        XCTAssertEqual(ports(table, last, from: Self.s2), [8])

        let listed = table.allGroups().map(\.key.group)
        XCTAssertEqual(listed, ((0 ... count).filter { !gone.contains($0) }).map(Self.group), "sorted, complete")
    }

    func testFlushAndLinkDownKeepStaticMembers() {
        let table = Table(limits: MembershipLimits())
        for i in 0 ..< 50 { join(table, Self.group(i), on: 1); join(table, Self.group(i), on: 2) }
        table.addStatic(PortID(1), to: Self.group(10), in: .default, version: .v3)
        table.addStatic(PortID(3), to: Self.group(20), in: .default, version: .v3)
        table.removeAll(on: PortID(1))
        XCTAssertEqual(table.groupCount(on: PortID(1)), 1, "the static one stays")
        XCTAssertEqual(table.groupCount, 50)
        table.flush()
        XCTAssertEqual(table.groupCount, 2)
        XCTAssertEqual(ports(table, Self.group(10)), [1])
        XCTAssertEqual(ports(table, Self.group(20)), [3])
        XCTAssertTrue(table.removeStatic(PortID(3), from: Self.group(20), in: .default))
        table.removeStatic(on: PortID(1))
        XCTAssertEqual(table.groupCount, 0)
    }

    /// RFC 3376 7.3.2: each older version's host present timer runs on its own; the oldest running
    /// one sets the mode, and when it expires the next older one does, then IGMPv3.
    func testOlderHostTimersExpireOneAfterTheOther() {
        let h = EngineHarness(accessPorts: 3)
        h.report(g1, on: 1, version: .v1)
        h.at(100)
        h.report(g1, on: 1, version: .v2)
        h.at(259.9)
        XCTAssertEqual(h.member(g1, on: 1)?.compatibilityMode(at: h.now), .v1)
        h.leave(g1, on: 1)
        XCTAssertEqual(h.engine.counters.errors[.ignoredInV1Mode], 1)
        h.at(260)
        XCTAssertEqual(h.member(g1, on: 1)?.compatibilityMode(at: h.now), .v2)
        XCTAssertEqual(h.member(g1, on: 1)?.olderHostPresent(.v1), Instant(nanoseconds: 260_000_000_000))
        XCTAssertEqual(h.member(g1, on: 1)?.olderHostPresent(.v2), Instant(nanoseconds: 360_000_000_000))
        XCTAssertNil(h.member(g1, on: 1)?.olderHostPresent(.v3))
        h.at(300)
        h.report(g1, on: 1, version: .v3)
        XCTAssertEqual(h.member(g1, on: 1)?.compatibilityMode(at: h.now), .v2, "a v3 report does not end v2 mode")
        h.at(360)
        XCTAssertEqual(h.member(g1, on: 1)?.compatibilityMode(at: h.now), .v3)
        h.leave(g1, on: 1)                                      // TO_IN({}): the last member query time
        h.at(362)
        XCTAssertNil(h.member(g1, on: 1))
        XCTAssertEqual(h.engine.counters.errors[.ignoredInV1Mode], 1)
    }

    /// What keeps 100,000 groups small: a member and a record of fixed, small size.
    func testRecordsStaySmall() {
        XCTAssertEqual(MemoryLayout<Table.Member>.stride, 56)
        XCTAssertEqual(MemoryLayout<Table.GroupRecord>.stride, 80)
        XCTAssertEqual(MemoryLayout<Table.Placement>.stride, 4)
    }
}
