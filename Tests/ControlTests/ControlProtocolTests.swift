import Foundation
import SwitchEngine
import Wire
import XCTest
@testable import Control

/// The request line and the short answers, as both ends read and write them.
final class ControlProtocolTests: XCTestCase {
    private let h3 = PortConfiguration(name: "h3", pvid: VLANID(10), tagged: [VLANID(30)!, VLANID(20)!], isStaticRouterPort: true,
                                       fastLeave: true)
    private let entry = ControlRequest.StaticMembership(port: "h3", group: .ipv4(IPv4Address("239.1.2.3")!), vlan: VLANID(7)!)

    /// Every request, its line, and the line read back.
    func testEveryRequestRoundTripsThroughItsLine() throws {
        let requests: [(ControlRequest, String)] = [
            (.ping, "ping"),
            (.status(.json), "status"),
            (.status(.text), "status text"),
            (.capture(.init(port: nil, controlOnly: false)), "capture * all"),
            (.capture(.init(port: "h1", controlOnly: true)), "capture h1 control"),
            (.port(.add(h3)), "port add h3:pvid=10:tagged=20,30:router:fast-leave"),
            (.port(.add(PortConfiguration(name: "vm0", pvid: nil, tagged: [VLANID(5)!], queryGuard: true, attachment: .tap))),
             "port add vm0:tagged=5:query-guard:tap"),
            (.port(.add(PortConfiguration(name: "p0", attachment: .pcap))), "port add p0:pvid=1:pcap"),
            (.port(.remove(name: "h5")), "port del h5"),
            (.fdb(.flush), "fdb flush"),
            (.mdb(.flush(vlan: nil)), "mdb flush"),
            (.mdb(.flush(vlan: VLANID(10))), "mdb flush 10"),
            (.mdb(.add(entry)), "mdb add h3 239.1.2.3 7"),
            (.mdb(.remove(entry)), "mdb del h3 239.1.2.3 7"),
        ]
        for (request, line) in requests {
            XCTAssertEqual(request.line, line)
            XCTAssertEqual(try ControlRequest(parsing: line), request, line)
            XCTAssertEqual(try ControlRequest.Words(parsing: line).command, request.command, line)
            // Codable as its line.
            let encoded = try JSONEncoder().encode([request])
            XCTAssertEqual(String(decoding: encoded, as: UTF8.self), "[\"\(line)\"]")
            XCTAssertEqual(try JSONDecoder().decode([ControlRequest].self, from: encoded), [request])
        }
    }

    /// Lines as clients wrote them before there were types: spaces, the spec as typed.
    func testLinesAsClientsWriteThem() throws {
        XCTAssertEqual(try ControlRequest(parsing: "  port   add  h5 "), .port(.add(PortConfiguration(name: "h5"))))
        XCTAssertEqual(try ControlRequest(parsing: "port add up:tagged=20,10"),
                       .port(.add(PortConfiguration(name: "up", pvid: nil, tagged: [VLANID(10)!, VLANID(20)!]))))
        XCTAssertEqual(try ControlRequest(parsing: "ping anything"), .ping)
    }

    /// The errors a malformed request is answered with, word for word as the switch said them.
    func testMalformedRequestsSayWhatIsExpected() {
        let bad: [String: String] = [
            "bogus": "unknown request 'bogus'",
            "status junk": "usage: status [text]",
            "status text junk": "usage: status [text]",
            "capture": "usage: capture PORT|* all|control",
            "capture * some": "usage: capture PORT|* all|control",
            "port": "usage: port add SPEC | port del NAME",
            "port add": "usage: port add SPEC | port del NAME",
            "port del a b": "usage: port add SPEC | port del NAME",
            "port add h1:bogus": "bad port spec 'h1:bogus': unknown option 'bogus' (expected pvid=N, tagged=N,N,..., router, fast-leave, query-guard, tap or pcap)",
            "fdb": "usage: fdb flush",
            "fdb flush all": "usage: fdb flush",
            "mdb": "usage: mdb flush [VLAN] | mdb add PORT GROUP VLAN | mdb del PORT GROUP VLAN",
            "mdb add h1 239.1.1.1": "usage: mdb flush [VLAN] | mdb add PORT GROUP VLAN | mdb del PORT GROUP VLAN",
            "mdb flush abc": "bad VLAN 'abc'",
            "mdb flush 4095": "bad VLAN '4095'",
            "mdb add h1 239.1.1.1 0": "bad VLAN '0'",
            "mdb add h1 10.0.0.1 1": "'10.0.0.1' is not a multicast group outside 224.0.0.0/24, ff02::1 and ff00::/15",
            "mdb del h1 224.0.0.5 1": "'224.0.0.5' is not a multicast group outside 224.0.0.0/24, ff02::1 and ff00::/15",
        ]
        for (line, message) in bad {
            XCTAssertThrowsError(try ControlRequest(parsing: line), line) { XCTAssertEqual("\($0)", message, line) }
        }
    }

    /// The short answers, byte for byte as the switch has always sent them.
    func testAnswersAreTheDocumentedJSON() throws {
        XCTAssertEqual(ControlAnswer.ok.line, #"{"ok":true}"#)
        XCTAssertEqual(ControlAnswer.pong.line, #"{"pong":true}"#)
        XCTAssertEqual(ControlAnswer.error("no port named h9").line, #"{"error":"no port named h9"}"#)
        XCTAssertEqual(ControlAnswer.ok.lineBytes, Array("{\"ok\":true}\n".utf8))
        XCTAssertEqual(ControlProtocol.errorDocument("x"), #"{"error":"x"}"#)
        for answer in [ControlAnswer.ok, .pong, .error("a \"quoted\" path /run/x.sock")] {
            XCTAssertEqual(try ControlAnswer(line: answer.line), answer)
        }
        XCTAssertThrowsError(try ControlAnswer(line: "Datapath: 1 thread"))
        XCTAssertThrowsError(try ControlAnswer(line: #"{"ok":false}"#))
    }

    /// An error is found without reading a status document.
    func testErrorsAreFoundInAnswers() {
        XCTAssertEqual(ControlAnswer.error(in: #"{"error":"usage: status [text]"}"#), "usage: status [text]")
        XCTAssertNil(ControlAnswer.error(in: #"{"ok":true}"#))
        XCTAssertNil(ControlAnswer.error(in: #"{"groups":[],"error_count":1}"#))
        XCTAssertNil(ControlAnswer.error(in: "Datapath: 2 threads"))
    }

    /// The spec a port is sent as reads back as the port, for every combination of options.
    func testPortSpecsRoundTrip() throws {
        for pvid in [nil, VLANID(1), VLANID(4094)] {
            for tagged in [Set<VLANID>(), [VLANID(2)!], [VLANID(3)!, VLANID(100)!, VLANID(4000)!]] where pvid != nil || !tagged.isEmpty {
                for flags in 0..<8 {
                    for attachment in [PortConfiguration.Attachment.packetSocket, .tap, .pcap] {
                        let router = flags & 1 != 0, guarded = flags & 4 != 0
                        guard !(router && guarded) else { continue }
                        let port = PortConfiguration(name: "eth0", pvid: pvid, tagged: tagged, isStaticRouterPort: router,
                                                     fastLeave: flags & 2 != 0, queryGuard: guarded, attachment: attachment)
                        XCTAssertEqual(try PortSpec.parse(PortSpec.format(port)), port, PortSpec.format(port))
                    }
                }
            }
        }
    }
}
