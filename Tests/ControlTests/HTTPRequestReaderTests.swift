import XCTest
@testable import Control
import SwitchEngine

final class HTTPRequestReaderTests: XCTestCase {
    private let start = Instant(nanoseconds: 1_000_000_000)
    private func reader() -> HTTPRequestReader { HTTPRequestReader(deadline: start + .seconds(5)) }
    private let prometheus = Array(("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9419\r\nUser-Agent: Prometheus/2.45.0\r\n"
        + "Accept: text/plain;version=0.0.4;q=1\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n").utf8)
    private let metrics = HTTPRequestReader.Head(method: "GET", target: "/metrics", version: "HTTP/1.1")

    func testAScrapeInOneRead() {
        var r = reader()
        XCTAssertEqual(r.receive(prometheus, at: start), .complete(metrics))
    }

    /// Cut at every length: incomplete until the last byte, then complete.
    func testAScrapeInPiecesOfEverySize() {
        for cut in 1..<prometheus.count {
            var r = reader()
            XCTAssertEqual(r.receive(prometheus[..<cut], at: start), .incomplete, "cut at \(cut)")
            XCTAssertEqual(r.receive(prometheus[cut...], at: start + .milliseconds(1)), .complete(metrics), "cut at \(cut)")
        }
    }

    func testBareLineFeedsAndALeadingEmptyLine() {
        var r = reader()
        XCTAssertEqual(r.receive(Array("\r\nGET /metrics?x=1 HTTP/1.0\nAccept: */*\n\n".utf8), at: start),
                       .complete(.init(method: "GET", target: "/metrics?x=1", version: "HTTP/1.0")))
    }

    /// One byte a second: every byte is in time for its own read, but the deadline is for the
    /// whole request.
    func testTheDeadlineIsForTheWholeRequestNotEachRead() {
        var r = reader()
        var t = start
        for byte in prometheus.prefix(5) {
            XCTAssertEqual(r.receive([byte], at: t), .incomplete, "\(t)")
            t = t + .seconds(1)
        }
        XCTAssertEqual(r.receive([prometheus[5]], at: t), .timedOut)
        XCTAssertEqual(r.outcome(at: t), .timedOut)
        // Nothing more arrived: the caller asks at the deadline.
        var idle = reader()
        XCTAssertEqual(idle.outcome(at: start + .nanoseconds(4_999_999_999)), .incomplete)
        XCTAssertEqual(idle.outcome(at: start + .seconds(5)), .timedOut)
        // A request that came complete before it is still answered when read late.
        XCTAssertEqual(idle.receive(prometheus, at: start + .seconds(7)), .complete(metrics))
    }

    func testMalformedRequestLines() {
        for line in ["GET\r\n\r\n", "GET /metrics\r\n\r\n", "GET  /metrics HTTP/1.1\r\n\r\n", "GET /metrics FTP/1\r\n\r\n",
                     "\u{16}\u{03}\u{01}\u{02}\u{00} binary\r\n\r\n"] {
            var r = reader()
            guard case .malformed = r.receive(Array(line.utf8), at: start) else { return XCTFail("\(line.debugDescription) was read") }
        }
    }

    func testTooLongAHead() {
        var r = reader()
        XCTAssertEqual(r.receive(Array("GET /metrics HTTP/1.1\r\n".utf8), at: start), .incomplete)
        let header = Array("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".utf8)
        var outcome = HTTPRequestReader.Outcome.incomplete
        for _ in 0..<100 where outcome == .incomplete { outcome = r.receive(header, at: start) }
        XCTAssertEqual(outcome, .tooLarge)
        XCTAssertLessThanOrEqual(r.count, HTTPRequestReader.maximumBytes + 1)
    }

    func testAClientThatClosesItsEnd() {
        var r = reader()
        _ = r.receive(Array("GET /metrics HTTP/1.0\r\n".utf8), at: start)
        XCTAssertEqual(r.outcome(at: start, ended: true), .complete(.init(method: "GET", target: "/metrics", version: "HTTP/1.0")))
        var half = reader()
        _ = half.receive(Array("GET /met".utf8), at: start)
        guard case .malformed = half.outcome(at: start, ended: true) else { return XCTFail("half a request line was read") }
    }
}
