import XCTest
@testable import Control
import SwitchEngine

/// `--forward-reserved`: names, numbers and addresses of IEEE 802.1Q Table 8-1; PAUSE and LACP
/// refused as the Linux bridge's group_fwd_mask refuses them (BR_GROUPFWD_RESTRICTED).
final class ReservedAddressSpecTests: XCTestCase {
    func testNamesNumbersHexAndAddresses() throws {
        XCTAssertEqual(try ReservedAddressSpec.parse("lldp,eapol").bits, 1 << 0x0e | 1 << 0x03)
        XCTAssertEqual(try ReservedAddressSpec.parse("LLDP").bits, 1 << 0x0e)
        XCTAssertEqual(try ReservedAddressSpec.parse("14,0x3,0xF").bits, 1 << 14 | 1 << 3 | 1 << 15)
        XCTAssertEqual(try ReservedAddressSpec.parse("01:80:c2:00:00:0e").bits, 1 << 0x0e)
        XCTAssertEqual(try ReservedAddressSpec.parse("stp").bits, 1, "spanning tree: relayed anyway, asking is harmless")
        XCTAssertEqual(try ReservedAddressSpec.parse("802.1x,e-lmi,provider-stp,mvrp-provider").bits,
                       1 << 3 | 1 << 7 | 1 << 8 | 1 << 0x0d)
    }

    func testPauseAndSlowProtocolsAreRefusedInOneLine() {
        for spec in ["pause", "1", "0x1", "lacp", "slow-protocols", "lldp,2", "01:80:c2:00:00:02"] {
            XCTAssertThrowsError(try ReservedAddressSpec.parse(spec)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.hasPrefix("--forward-reserved '\(spec)': 01:80:c2:00:00:0"), text)
                XCTAssertTrue(text.contains("is never relayed"), text)
                XCTAssertFalse(text.contains("\n"))
            }
        }
    }

    func testUnknownEntriesAreRefused() {
        for spec in ["", "16", "-1", "0x10", "lldp,", "bogus", "01:80:c2:00:00:10", "ff:ff:ff:ff:ff:ff"] {
            XCTAssertThrowsError(try ReservedAddressSpec.parse(spec), spec) { error in
                XCTAssertTrue("\(error)".contains("is not a reserved address"), "\(error)")
            }
        }
    }
}
