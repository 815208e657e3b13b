#if canImport(Glibc)
import Glibc
#endif

/// What a control request does to the switch: the unit of the control socket's permissions.
public enum ControlAccess: Sendable {
    /// Status, status text, ping: the switch as it is.
    case read
    /// Ports added or removed, tables flushed, static memberships: the switch changed.
    case change
    /// Every frame the switch sees, streamed to the client.
    case capture
}

/// The requests of the control protocol, by their first word (`ControlRequest`). Each says the access it needs
/// here and nowhere else, so a request cannot be added without saying who may make it.
public enum ControlCommand: String, CaseIterable, Sendable {
    case ping, status, capture, port, fdb, mdb

    public var access: ControlAccess {
        switch self {
        case .ping, .status: .read
        case .port, .fdb, .mdb: .change
        case .capture: .capture
        }
    }
}

/// A client of the control socket as the kernel names it (SO_PEERCRED, SO_PEERGROUPS): the
/// process, user, group and supplementary groups that connected.
public struct PeerCredentials: Equatable, Sendable {
    public var pid: Int32
    public var uid: uid_t
    public var gid: gid_t
    /// The process's supplementary groups; nil where the kernel does not say (before Linux 4.13).
    public var groups: [gid_t]?

    public init(pid: Int32, uid: uid_t, gid: gid_t, groups: [gid_t]? = nil) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }

    /// The credentials of a connected Unix socket's peer, as they were when it connected; nil
    /// if the kernel gives none.
    public init?(socket fd: Int32) {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; } (socket(7)); Glibc hides it
        // behind _GNU_SOURCE, so its three 32-bit fields are read as a tuple.
        var raw = (Int32(0), UInt32(0), UInt32(0))
        var length = socklen_t(MemoryLayout.size(ofValue: raw))
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &raw, &length) == 0, length == 12 else { return nil }
        self.init(pid: raw.0, uid: raw.1, gid: raw.2, groups: Self.peerGroups(fd))
    }

    /// SO_PEERGROUPS (socket(7)): one call, no user database read; ERANGE says how many.
    private static func peerGroups(_ fd: Int32) -> [gid_t]? {
        let option: Int32 = 59     // SO_PEERGROUPS, asm-generic/socket.h
        var groups = [gid_t](repeating: 0, count: 64)
        for _ in 0..<2 {
            var length = socklen_t(groups.count * MemoryLayout<gid_t>.size)
            if getsockopt(fd, SOL_SOCKET, option, &groups, &length) == 0 {
                return Array(groups.prefix(Int(length) / MemoryLayout<gid_t>.size))
            }
            guard errno == ERANGE else { return nil }
            groups = [gid_t](repeating: 0, count: Int(length) / MemoryLayout<gid_t>.size)
        }
        return nil
    }
}

/// What a client of the control socket may do.
public enum ControlRole: Equatable, Sendable {
    /// Root, or the user the switch runs as: everything.
    case administrator
    /// A member of `--control-group`: reads the status, changes nothing, captures nothing.
    case reader(group: String)
    /// Anyone else (the socket's mode keeps them out already; the switch checks anyway).
    case stranger

    public func permits(_ access: ControlAccess) -> Bool {
        switch (self, access) {
        case (.administrator, _): true
        case (.reader, .read): true
        case (.reader, _), (.stranger, _): false
        }
    }
}

/// Who may do what on the control socket: root everything, members of the control group read
/// only, others nothing.
public struct ControlPolicy: Sendable {
    public struct Group: Equatable, Sendable {
        public var name: String
        public var id: gid_t
        public init(name: String, id: gid_t) {
            self.name = name
            self.id = id
        }
    }

    /// `--control-group`, if given.
    public var group: Group?
    /// The user the switch runs as: it may do what root may (the socket is its own).
    public var owner: uid_t

    public init(group: Group?, owner: uid_t = geteuid()) {
        self.group = group
        self.owner = owner
    }

    /// The role of `peer`: a member of the group by its process's group or supplementary
    /// groups, as the kernel checks the socket's mode. Where the kernel did not give the
    /// supplementary groups, `groupsOfUser` lists the user's from the system's databases.
    public func role(of peer: PeerCredentials, groupsOfUser: (uid_t) -> [gid_t] = ControlPolicy.userGroups(of:)) -> ControlRole {
        if peer.uid == 0 || peer.uid == owner { return .administrator }
        guard let group else { return .stranger }
        if peer.gid == group.id || (peer.groups ?? groupsOfUser(peer.uid)).contains(group.id) {
            return .reader(group: group.name)
        }
        return .stranger
    }

    /// Nil when `role` may make `request`; otherwise the error that says why not. Read from
    /// the request's words, before its arguments are: a request the client may not make is
    /// refused as such, well formed or not.
    public func refusal(of request: ControlRequest.Words, by peer: PeerCredentials, as role: ControlRole) -> String? {
        guard !role.permits(request.command.access) else { return nil }
        let administrator = owner == 0 ? "root" : "root or uid \(owner)"
        switch role {
        case .administrator:
            return nil
        case .reader(let group):
            let what = request.command.access == .capture ? "capture frames" : "change the switch"
            return "permission denied: uid \(peer.uid) (member of group \(group)) may read the status but not \(what)"
                + " (\(request.name) needs \(administrator))"
        case .stranger:
            guard let group else {
                return "permission denied: uid \(peer.uid) is not \(administrator), and the switch has no --control-group"
            }
            return "permission denied: uid \(peer.uid) is neither \(administrator) nor a member of group \(group.name)"
                + " (--control-group)"
        }
    }

    /// The groups of the user `uid` from the system's databases (getpwuid_r, getgrouplist):
    /// its primary group and its supplementary ones. Empty for a user without an entry.
    public static func userGroups(of uid: uid_t) -> [gid_t] {
        var entry = passwd()
        var found: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &found) == 0, found != nil, let name = entry.pw_name else {
            return []
        }
        var count: Int32 = 64
        while true {
            var groups = [gid_t](repeating: 0, count: Int(count))
            let wanted = count
            if getgrouplist(name, entry.pw_gid, &groups, &count) >= 0 { return Array(groups.prefix(Int(count))) }
            // Too small: `count` now says how many there are.
            guard count > wanted else { return [entry.pw_gid] }
        }
    }
}
