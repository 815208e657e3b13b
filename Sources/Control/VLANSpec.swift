import SwitchEngine
import Wire

/// Per-VLAN settings as written on the command line:
/// `ID[:querier|:no-querier][:igmp-querier|:no-igmp-querier][:querier-address=A.B.C.D][:igmp-version=1|2|3][:mld-querier|:no-mld-querier]
/// [:mld-querier-address=[fe80::N]][:mld-version=1|2][:no-snooping|:no-mld-snooping]`. An IPv6
/// address is written in brackets, or last, since its colons would split the spec.
public enum VLANSpec {
    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    public static func parse(_ text: String) throws(VLANSpec.Error) -> (VLANID, VLANSettings) {
        func fail(_ why: String) -> VLANSpec.Error { Error(description: "bad VLAN spec '\(text)': \(why)") }
        let parts = Self.options(text)
        guard let number = Int(parts[0]), let vlan = VLANID(number) else {
            throw fail("'\(parts[0])' is not a VLAN from 1 to 4094")
        }
        var settings = VLANSettings()
        /// Each setting once: `querier` and `no-querier` are one setting.
        var given: [String: String] = [:]
        for option in parts.dropFirst() {
            let pair = option.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let setting = pair[0].hasPrefix("no-") ? String(pair[0].dropFirst(3)) : pair[0]
            if pair.count == 1 ? switches.contains(setting) : values.contains(pair[0]) {
                if let earlier = given[setting] {
                    throw fail(earlier == pair[0] ? "\(pair[0]) given twice" : "\(earlier) and \(pair[0]) both given")
                }
                given[setting] = pair[0]
            }
            switch (pair[0], pair.count) {
            case ("querier", 1): settings.querier = true
            case ("no-querier", 1): settings.querier = false
            case ("snooping", 1): settings.snooping = true
            case ("no-snooping", 1): settings.snooping = false
            case ("igmp-querier", 1): settings.igmpQuerier = true
            case ("no-igmp-querier", 1): settings.igmpQuerier = false
            case ("mld-querier", 1): settings.mldQuerier = true
            case ("no-mld-querier", 1): settings.mldQuerier = false
            case ("mld-snooping", 1): settings.mldSnooping = true
            case ("no-mld-snooping", 1): settings.mldSnooping = false
            case ("mld-querier-address", 2):
                let text = pair[1].hasPrefix("[") && pair[1].hasSuffix("]") ? String(pair[1].dropFirst().dropLast()) : pair[1]
                guard let address = IPv6Address(text), address.isLinkLocalUnicast else {
                    throw fail("'\(pair[1])' is not a link-local unicast IPv6 address (fe80::/10)")
                }
                settings.mldQuerierAddress = address
            case ("mld-version", 2):
                guard let number = Int(pair[1]), let version = MLDVersion(rawValue: number) else {
                    throw fail("MLD version '\(pair[1])' is not 1 or 2")
                }
                settings.mldVersion = version
            case ("querier-address", 2):
                guard let address = IPv4Address(pair[1]), !address.isMulticast else {
                    throw fail("'\(pair[1])' is not a unicast IPv4 address")
                }
                settings.querierAddress = address
            case ("igmp-version", 2):
                guard let number = Int(pair[1]), let version = IGMPVersion(rawValue: number) else {
                    throw fail("IGMP version '\(pair[1])' is not 1, 2 or 3")
                }
                settings.igmpVersion = version
            default:
                throw fail("unknown option '\(option)' (expected querier, no-querier, igmp-querier, no-igmp-querier, querier-address=A, igmp-version=N, mld-querier, no-mld-querier, mld-querier-address=[A], mld-version=N, snooping, no-snooping, mld-snooping or no-mld-snooping)")
            }
        }
        return (vlan, settings)
    }

    /// The settings a spec may give, each once: switches (as themselves or their `no-` form)
    /// and settings with a value.
    private static let switches: Set<String> = ["querier", "snooping", "igmp-querier", "mld-querier", "mld-snooping"]
    private static let values: Set<String> = ["querier-address", "igmp-version", "mld-querier-address", "mld-version"]

    /// The spec's parts between colons; an IPv6 address in brackets, or one that runs to the
    /// end after `mld-querier-address=`, stays whole.
    static func options(_ text: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var bracketed = false
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if current == "mld-querier-address=", character != "[" {
                parts.append(current + text[index...])
                return parts
            }
            if character == "[" { bracketed = true }
            if character == "]" { bracketed = false }
            if character == ":" && !bracketed {
                parts.append(current)
                current = ""
            } else {
                current.append(character)
            }
            index = text.index(after: index)
        }
        parts.append(current)
        return parts
    }
}
