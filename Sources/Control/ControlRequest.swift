import SwitchEngine
import Wire

/// A request of the control protocol, as both ends mean it: the command line builds one and
/// sends its `line`; the switch reads the line back with `init(parsing:)` and answers it. The
/// line format is defined here and nowhere else.
///
///     ping
///     status [text]
///     capture PORT|* all|control
///     port add SPEC | port del NAME
///     fdb flush
///     mdb flush [VLAN] | mdb add PORT GROUP VLAN | mdb del PORT GROUP VLAN
///
/// Words are separated by spaces (runs of them count as one). Codable as that line, a string.
public enum ControlRequest: Equatable, Sendable {
    case ping
    case status(StatusFormat)
    /// The client's socket becomes a stream of the frames the switch receives and sends.
    case capture(CaptureRequest)
    case port(PortChange)
    case fdb(FDBChange)
    case mdb(MDBChange)

    public enum StatusFormat: Equatable, Sendable {
        /// The status as one JSON document (`StatusReport`).
        case json
        /// The tables `snoopswitch status` prints, as text.
        case text
    }

    public struct CaptureRequest: Equatable, Sendable {
        /// Only this port's frames; nil: every port (`*`).
        public var port: String?
        /// Only IGMP, PIM and multicast router discovery frames.
        public var controlOnly: Bool

        public init(port: String?, controlOnly: Bool) {
            self.port = port
            self.controlOnly = controlOnly
        }
    }

    public enum PortChange: Equatable, Sendable {
        case add(PortConfiguration)
        /// What was learned on the port goes with it.
        case remove(name: String)
    }

    public enum FDBChange: Equatable, Sendable {
        /// Forget every learned MAC address.
        case flush
    }

    public enum MDBChange: Equatable, Sendable {
        /// Learned memberships, of one VLAN or all; static ones stay.
        case flush(vlan: VLANID?)
        case add(StaticMembership)
        case remove(StaticMembership)
    }

    /// A membership made by hand: `port` gets `group` in `vlan` until it is deleted.
    public struct StaticMembership: Equatable, Sendable {
        public var port: String
        public var group: MulticastGroupAddress
        public var vlan: VLANID

        public init(port: String, group: MulticastGroupAddress, vlan: VLANID) {
            self.port = port
            self.group = group
            self.vlan = vlan
        }
    }

    /// The first word of the request: what it is and the access it needs.
    public var command: ControlCommand {
        switch self {
        case .ping: .ping
        case .status: .status
        case .capture: .capture
        case .port: .port
        case .fdb: .fdb
        case .mdb: .mdb
        }
    }

    /// The request line, without its newline.
    public var line: String {
        switch self {
        case .ping: "ping"
        case .status(.json): "status"
        case .status(.text): "status text"
        case .capture(let capture): "capture \(capture.port ?? "*") \(capture.controlOnly ? "control" : "all")"
        case .port(.add(let port)): "port add \(PortSpec.format(port))"
        case .port(.remove(let name)): "port del \(name)"
        case .fdb(.flush): "fdb flush"
        case .mdb(.flush(nil)): "mdb flush"
        case .mdb(.flush(let vlan?)): "mdb flush \(vlan)"
        case .mdb(.add(let entry)): "mdb add \(entry.port) \(entry.group) \(entry.vlan)"
        case .mdb(.remove(let entry)): "mdb del \(entry.port) \(entry.group) \(entry.vlan)"
        }
    }

    /// Reads a request line: the unknown first word, or the arguments that do not fit it, are
    /// the error the client is answered.
    public init(parsing line: String) throws(ControlError) {
        try self.init(try ControlRequest.Words(parsing: line))
    }

    /// The request whose words these are. The control server reads the words first, to check
    /// the client's access by the command alone, then this.
    public init(_ request: Words) throws(ControlError) {
        let words = request.arguments
        switch request.command {
        case .ping:
            self = .ping
        case .status:
            switch words.first {
            case nil: self = .status(.json)
            case "text" where words.count == 1: self = .status(.text)
            default: throw ControlError("usage: status [text]")
            }
        case .capture:
            guard words.count == 2, words[1] == "all" || words[1] == "control" else {
                throw ControlError("usage: capture PORT|* all|control")
            }
            self = .capture(CaptureRequest(port: words[0] == "*" ? nil : words[0], controlOnly: words[1] == "control"))
        case .port:
            switch (words.first, words.count) {
            case ("add", 2):
                do { self = .port(.add(try PortSpec.parse(words[1]))) } catch { throw ControlError(error.description) }
            case ("del", 2):
                self = .port(.remove(name: words[1]))
            default:
                throw ControlError("usage: port add SPEC | port del NAME")
            }
        case .fdb:
            guard words == ["flush"] else { throw ControlError("usage: fdb flush") }
            self = .fdb(.flush)
        case .mdb:
            switch (words.first, words.count) {
            case ("flush", 1):
                self = .mdb(.flush(vlan: nil))
            case ("flush", 2):
                self = .mdb(.flush(vlan: try Self.vlan(words[1])))
            case ("add", 4), ("del", 4):
                let entry = try StaticMembership(port: words[1], group: Self.group(words[2]), vlan: Self.vlan(words[3]))
                self = .mdb(words[0] == "add" ? .add(entry) : .remove(entry))
            default:
                throw ControlError("usage: mdb flush [VLAN] | mdb add PORT GROUP VLAN | mdb del PORT GROUP VLAN")
            }
        }
    }

    /// A VLAN of an mdb request, as the switch says it is bad.
    public static func vlan(_ text: String) throws(ControlError) -> VLANID {
        guard let number = Int(text), let id = VLANID(number) else { throw ControlError("bad VLAN '\(text)'") }
        return id
    }

    /// A group of an mdb request: IPv4 or IPv6 multicast, outside what always floods.
    public static func group(_ text: String) throws(ControlError) -> MulticastGroupAddress {
        guard let group = MulticastGroupAddress(text) else {
            throw ControlError("'\(text)' is not a multicast group outside 224.0.0.0/24, ff02::1 and ff00::/15")
        }
        return group
    }
}

extension ControlRequest: Codable {
    public init(from decoder: any Decoder) throws {
        self = try ControlRequest(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(line)
    }
}

extension ControlRequest {
    /// A request line split into words: its command, which says the access the request needs,
    /// and the words after it, not yet read.
    public struct Words: Equatable, Sendable {
        public var command: ControlCommand
        public var arguments: [String]

        public init(_ command: ControlCommand, _ arguments: [String] = []) {
            self.command = command
            self.arguments = arguments
        }

        /// Splits a request line at spaces; a first word that names no request is an error.
        public init(parsing line: String) throws(ControlError) {
            let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard let first = words.first, let command = ControlCommand(rawValue: first) else {
                throw ControlError("unknown request '\(line.prefix(64))'")
            }
            self.init(command, Array(words.dropFirst()))
        }

        /// The request as an error names it: "port add", "mdb flush", "capture".
        public var name: String {
            guard command.access == .change, let verb = arguments.first else { return command.rawValue }
            return "\(command.rawValue) \(verb.prefix(16))"
        }
    }
}
