import SwitchEngine
import Wire

/// The IEEE 802.1Q reserved addresses to relay, as written after `--forward-reserved`: a
/// comma-separated list of names (`lldp,eapol`), numbers 0 to 15, hex (`0x0e`) or whole
/// addresses (`01:80:c2:00:00:0e`). Like the Linux bridge's group_fwd_mask, PAUSE (01) and the
/// slow protocols (02, LACP) are refused: they belong to the link.
public enum ReservedAddressSpec {
    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// Names of the addresses of IEEE 802.1Q Table 8-1 (and what is sent to them).
    public static let names: [(name: String, index: Int)] = [
        ("stp", 0x00),              // Nearest Customer Bridge: spanning tree (relayed anyway)
        ("pause", 0x01),            // IEEE 802.3 MAC control: PAUSE
        ("lacp", 0x02), ("slow-protocols", 0x02),   // IEEE 802.3 slow protocols: LACP, marker, OAM
        ("eapol", 0x03), ("802.1x", 0x03),          // Nearest non-TPMR Bridge: 802.1X port authentication
        ("e-lmi", 0x07),            // Metro Ethernet Forum E-LMI
        ("provider-stp", 0x08),     // Provider Bridge group address
        ("mvrp-provider", 0x0d),    // Provider Bridge MVRP address
        ("lldp", 0x0e),             // Nearest Bridge: LLDP, PTP peer delay
    ]

    public static func parse(_ text: String) throws(ReservedAddressSpec.Error) -> ReservedAddressMask {
        func fail(_ why: String) -> ReservedAddressSpec.Error { Error(description: "--forward-reserved '\(text)': \(why)") }
        var mask = ReservedAddressMask()
        for item in text.split(separator: ",", omittingEmptySubsequences: false).map({ $0.lowercased() }) {
            guard let index = index(of: item) else {
                throw fail("'\(item)' is not a reserved address (a name such as lldp or eapol, 0 to 15, 0x0 to 0xf or 01:80:c2:00:00:00 to 0f)")
            }
            if ReservedAddressMask.neverRelayed.contains(index) {
                let what = index == 1 ? "PAUSE" : "slow protocols, LACP"
                throw fail("\(MACAddress(rawValue: MACAddress.bridgeReservedBlock.rawValue | UInt64(index))) (\(what)) is never relayed: it belongs to the link, as the Linux bridge's group_fwd_mask refuses it")
            }
            mask.insert(index)
        }
        return mask
    }

    private static func index(of item: String) -> Int? {
        if let named = names.first(where: { $0.name == item }) { return named.index }
        if item.hasPrefix("0x"), let value = Int(item.dropFirst(2), radix: 16), (0...15).contains(value) { return value }
        if item.allSatisfy(\.isASCII), let value = Int(item), (0...15).contains(value) { return value }
        if let mac = MACAddress(item), mac.isBridgeReserved { return Int(mac.rawValue & 0xf) }
        return nil
    }
}
