import SwitchEngine
import Wire

/// Per-VLAN settings as written on the command line:
/// `ID[:querier|:no-querier][:querier-address=A.B.C.D][:igmp-version=1|2|3][:no-snooping]`.
public enum VLANSpec {
    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    public static func parse(_ text: String) throws(VLANSpec.Error) -> (VLANID, VLANSettings) {
        func fail(_ why: String) -> VLANSpec.Error { Error(description: "bad VLAN spec '\(text)': \(why)") }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard let number = Int(parts[0]), let vlan = VLANID(number) else {
            throw fail("'\(parts[0])' is not a VLAN from 1 to 4094")
        }
        var settings = VLANSettings()
        for option in parts.dropFirst() {
            let pair = option.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            switch (pair[0], pair.count) {
            case ("querier", 1): settings.querier = true
            case ("no-querier", 1): settings.querier = false
            case ("snooping", 1): settings.snooping = true
            case ("no-snooping", 1): settings.snooping = false
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
                throw fail("unknown option '\(option)' (expected querier, no-querier, querier-address=A, igmp-version=N, snooping or no-snooping)")
            }
        }
        return (vlan, settings)
    }
}
