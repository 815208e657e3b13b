import XCTest
@testable import Control

final class ControlAccessTests: XCTestCase {
    func testEveryRequestHasItsAccess() throws {
        let expected: [String: ControlAccess] = [
            "ping": .read, "status": .read, "status text": .read,
            "port add h5:pvid=10": .change, "port del h5": .change, "fdb flush": .change,
            "mdb flush": .change, "mdb flush 10": .change, "mdb add h3 239.1.2.3 1": .change, "mdb del h3 239.1.2.3 1": .change,
            "capture * all": .capture, "capture h1 control": .capture,
        ]
        for (line, access) in expected {
            XCTAssertEqual(try ControlRequest(parsing: line).command.access, access, line)
            XCTAssertEqual(try ControlRequest.Words(parsing: line).command.access, access, line)
        }
        XCTAssertEqual(Set(ControlCommand.allCases.map(\.rawValue)), ["ping", "status", "capture", "port", "fdb", "mdb"])
    }

    func testRequestLinesSplitIntoCommandAndArguments() throws {
        XCTAssertEqual(try ControlRequest.Words(parsing: "  port   add  h5:pvid=10 "), ControlRequest.Words(.port, ["add", "h5:pvid=10"]))
        XCTAssertEqual(try ControlRequest.Words(parsing: "port add h5").name, "port add")
        XCTAssertEqual(try ControlRequest.Words(parsing: "mdb flush 10").name, "mdb flush")
        XCTAssertEqual(try ControlRequest.Words(parsing: "status text").name, "status")
        XCTAssertEqual(try ControlRequest.Words(parsing: "capture * all").name, "capture")
        // A change is named by its verb even when malformed: the refusal comes before the usage.
        XCTAssertEqual(try ControlRequest.Words(parsing: "port junk").name, "port junk")
        XCTAssertThrowsError(try ControlRequest.Words(parsing: "bogus request")) {
            XCTAssertEqual("\($0)", "unknown request 'bogus request'")
        }
        XCTAssertThrowsError(try ControlRequest(parsing: "bogus request")) {
            XCTAssertEqual("\($0)", "unknown request 'bogus request'")
        }
        XCTAssertThrowsError(try ControlRequest.Words(parsing: "Status"))    // requests are lower case
    }

    private let snoop = ControlPolicy.Group(name: "snoop", id: 4000)
    private func peer(_ uid: uid_t, gid: gid_t = 1000) -> PeerCredentials { PeerCredentials(pid: 42, uid: uid, gid: gid) }

    func testRootAndTheSwitchsOwnUserMayDoEverything() {
        let policy = ControlPolicy(group: snoop, owner: 0)
        XCTAssertEqual(policy.role(of: peer(0, gid: 0)) { _ in XCTFail("no lookup for root"); return [] }, .administrator)
        let asUser = ControlPolicy(group: nil, owner: 990)
        XCTAssertEqual(asUser.role(of: peer(990)) { _ in [] }, .administrator)
        for access in [ControlAccess.read, .change, .capture] { XCTAssertTrue(ControlRole.administrator.permits(access)) }
    }

    func testGroupMembersReadOnly() {
        let policy = ControlPolicy(group: snoop, owner: 0)
        // By the process's group or its supplementary groups, as the kernel said them.
        XCTAssertEqual(policy.role(of: peer(1000, gid: 4000)) { _ in [] }, .reader(group: "snoop"))
        XCTAssertEqual(policy.role(of: PeerCredentials(pid: 42, uid: 1000, gid: 1000, groups: [27, 4000])) { _ in [] },
                       .reader(group: "snoop"))
        // The process dropped the group: the user's entry does not bring it back.
        XCTAssertEqual(policy.role(of: PeerCredentials(pid: 42, uid: 1000, gid: 1000, groups: [27])) { _ in [4000] }, .stranger)
        // A kernel that does not say: the user's groups in the system's databases.
        XCTAssertEqual(policy.role(of: peer(1000)) { uid in uid == 1000 ? [1000, 27, 4000] : [] }, .reader(group: "snoop"))
        let reader = ControlRole.reader(group: "snoop")
        XCTAssertTrue(reader.permits(.read))
        XCTAssertFalse(reader.permits(.change))
        XCTAssertFalse(reader.permits(.capture))
    }

    func testOthersMayDoNothing() {
        XCTAssertEqual(ControlPolicy(group: snoop, owner: 0).role(of: peer(1001)) { _ in [1001, 27] }, .stranger)
        XCTAssertEqual(ControlPolicy(group: nil, owner: 0).role(of: peer(1001, gid: 4000)) { _ in [4000] }, .stranger)
        for access in [ControlAccess.read, .change, .capture] { XCTAssertFalse(ControlRole.stranger.permits(access)) }
    }

    func testRefusalsSayWhoAndWhy() throws {
        let policy = ControlPolicy(group: snoop, owner: 0)
        let reader = ControlRole.reader(group: "snoop")
        XCTAssertNil(policy.refusal(of: try ControlRequest.Words(parsing: "status text"), by: peer(1000), as: reader))
        XCTAssertEqual(policy.refusal(of: try ControlRequest.Words(parsing: "port add h5"), by: peer(1000), as: reader),
                       "permission denied: uid 1000 (member of group snoop) may read the status but not change the switch (port add needs root)")
        XCTAssertEqual(policy.refusal(of: try ControlRequest.Words(parsing: "capture * all"), by: peer(1000), as: reader),
                       "permission denied: uid 1000 (member of group snoop) may read the status but not capture frames (capture needs root)")
        XCTAssertEqual(policy.refusal(of: ControlRequest.Words(.ping), by: peer(1001), as: .stranger),
                       "permission denied: uid 1001 is neither root nor a member of group snoop (--control-group)")
        XCTAssertEqual(ControlPolicy(group: nil, owner: 0).refusal(of: ControlRequest.Words(.status), by: peer(1001), as: .stranger),
                       "permission denied: uid 1001 is not root, and the switch has no --control-group")
        XCTAssertEqual(ControlPolicy(group: snoop, owner: 990).refusal(of: try ControlRequest.Words(parsing: "fdb flush"), by: peer(1000), as: reader),
                       "permission denied: uid 1000 (member of group snoop) may read the status but not change the switch (fdb flush needs root or uid 990)")
        XCTAssertNil(policy.refusal(of: try ControlRequest.Words(parsing: "capture * all"), by: peer(0), as: .administrator))
    }

    func testThisProcessIsKnownByItsSocketPeer() throws {
        var pair: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
        defer { close(pair[0]); close(pair[1]) }
        let credentials = try XCTUnwrap(PeerCredentials(socket: pair[0]))
        var groups = [gid_t](repeating: 0, count: Int(getgroups(0, nil)))
        XCTAssertEqual(getgroups(Int32(groups.count), &groups), Int32(groups.count))
        XCTAssertEqual(credentials, PeerCredentials(pid: getpid(), uid: geteuid(), gid: getegid(), groups: groups))
        XCTAssertNil(PeerCredentials(socket: -1))
        // The system's own lookup: root's groups include its primary group.
        XCTAssertTrue(ControlPolicy.userGroups(of: 0).contains(0))
    }
}
