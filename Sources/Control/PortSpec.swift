import SwitchEngine
import Wire

/// A port as written on the command line:
/// `IFNAME[:pvid=N][:tagged=N,N,...][:router][:fast-leave][:query-guard][:tap|:pcap]`.
/// With `:tap` the switch creates a TAP device of that name instead of opening an existing
/// interface; with `:pcap` it opens the interface through libpcap instead of a packet socket.
/// No pvid and no tagged VLANs means pvid 1 (an access port of the default VLAN); tagged
/// VLANs only make a trunk; both make a hybrid port. Each option is given at most once; the
/// loopback interface, `lo`, is no port (`RunSettings` refuses a renamed one too).
public enum PortSpec {
    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    public static func parse(_ text: String) throws(PortSpec.Error) -> PortConfiguration {
        func fail(_ why: String) -> PortSpec.Error { Error(description: "bad port spec '\(text)': \(why)") }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let name = parts[0]
        guard !name.isEmpty else { throw fail("missing interface name") }
        guard name.utf8.count <= 15, !name.contains("/"), !name.contains(where: \.isWhitespace) else {
            throw fail("'\(name)' is not a valid interface name")
        }
        guard name != loopback else { throw fail(loopbackReason(name)) }
        var pvid: VLANID?
        var tagged: Set<VLANID> = []
        var sawTagged = false
        var router = false, fastLeave = false, queryGuard = false
        var attachment = PortConfiguration.Attachment.packetSocket
        var given: Set<String> = []
        for option in parts.dropFirst() {
            let pair = option.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            if pair.count <= 2, known.contains(pair[0]) {
                guard given.insert(pair[0]).inserted else { throw fail("\(pair[0]) given twice") }
            }
            switch (pair.first ?? "", pair.count) {
            case ("pvid", 2):
                pvid = try vlan(pair[1], fail)
            case ("tagged", 2):
                sawTagged = true
                for item in pair[1].split(separator: ",", omittingEmptySubsequences: false) {
                    let id = try vlan(String(item), fail)
                    guard tagged.insert(id).inserted else { throw fail("VLAN \(id) listed twice") }
                }
            case ("router", 1): router = true
            case ("fast-leave", 1): fastLeave = true
            case ("query-guard", 1): queryGuard = true
            case ("tap", 1): attachment = .tap
            case ("pcap", 1): attachment = .pcap
            default:
                throw fail("unknown option '\(option)' (expected pvid=N, tagged=N,N,..., router, fast-leave, query-guard, tap or pcap)")
            }
        }
        if parts.dropFirst().contains("tap") && parts.dropFirst().contains("pcap") { throw fail("a port is either tap or pcap") }
        if router && queryGuard { throw fail("a router port cannot be query-guarded") }
        if let pvid, tagged.contains(pvid) { throw fail("VLAN \(pvid) cannot be both the pvid and tagged") }
        if pvid == nil && !sawTagged { pvid = .default }
        return PortConfiguration(name: name, pvid: pvid, tagged: tagged, isStaticRouterPort: router, fastLeave: fastLeave,
                                 queryGuard: queryGuard, attachment: attachment)
    }

    /// The options a spec may give, each once.
    private static let known: Set<String> = ["pvid", "tagged", "router", "fast-leave", "query-guard", "tap", "pcap"]

    /// The loopback interface's name in every network namespace (unless renamed).
    public static let loopback = "lo"

    /// Why the loopback interface `name` cannot be a port, for the one line that refuses it.
    public static func loopbackReason(_ name: String) -> String {
        "\(name) is the loopback interface: loopback cannot be a switch port (what is sent on it comes back to this host only)"
    }

    /// The spec of `port`, which `parse` reads back as `port` (VLANs in order, options in the
    /// order above).
    public static func format(_ port: PortConfiguration) -> String {
        var parts = [port.name]
        if let pvid = port.pvid { parts.append("pvid=\(pvid)") }
        if !port.tagged.isEmpty { parts.append("tagged=" + port.tagged.sorted().map(\.description).joined(separator: ",")) }
        if port.isStaticRouterPort { parts.append("router") }
        if port.fastLeave { parts.append("fast-leave") }
        if port.queryGuard { parts.append("query-guard") }
        switch port.attachment {
        case .packetSocket: break
        case .tap: parts.append("tap")
        case .pcap: parts.append("pcap")
        }
        return parts.joined(separator: ":")
    }

    private static func vlan(_ text: String, _ fail: (String) -> PortSpec.Error) throws(PortSpec.Error) -> VLANID {
        guard let number = Int(text), let id = VLANID(number) else {
            throw fail("VLAN '\(text)' is not a number from 1 to 4094")
        }
        return id
    }
}
