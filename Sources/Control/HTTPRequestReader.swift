import SwitchEngine

/// An HTTP/1.x request head (RFC 9112 section 2.1: a request line, header fields, an empty
/// line), read as its bytes arrive against one deadline for the whole of it: a client that
/// sends a byte a second is cut off when the deadline passes, however many it has sent by then.
/// Pure: the caller reads the socket and the clock.
public struct HTTPRequestReader: Sendable {
    /// The request line (RFC 9112 section 3): `GET /metrics HTTP/1.1`.
    public struct Head: Equatable, Sendable {
        public var method: String
        public var target: String
        public var version: String

        public init(method: String, target: String, version: String) {
            self.method = method
            self.target = target
            self.version = version
        }
    }

    public enum Outcome: Equatable, Sendable {
        /// More bytes are needed, and there is time left for them.
        case incomplete
        case complete(Head)
        /// The request line is not `METHOD TARGET HTTP/x.y`, or the client left halfway.
        case malformed(String)
        /// No empty line within `maximumBytes`.
        case tooLarge
        /// The deadline passed before the head was complete.
        case timedOut
    }

    /// Longer heads are refused (Prometheus sends a few hundred bytes).
    public static let maximumBytes = 8192

    public let deadline: Instant
    private var received: [UInt8] = []
    /// Where the line being read starts; bytes before it are scanned.
    private var lineStart = 0
    private var scanned = 0
    private var requestLine: [UInt8]?
    private var headEnded = false

    public init(deadline: Instant) {
        self.deadline = deadline
    }

    /// Bytes received so far.
    public var count: Int { received.count }

    /// Takes the bytes that arrived at `now` and says where the request stands.
    public mutating func receive(_ bytes: some Collection<UInt8>, at now: Instant) -> Outcome {
        if !headEnded && received.count <= Self.maximumBytes {
            received.append(contentsOf: bytes.prefix(Self.maximumBytes + 1 - received.count))
            scan()
        }
        return outcome(at: now)
    }

    /// Where the request stands at `now`; `ended`: the client closed its end (a request line
    /// without the empty line after it is then answered, as HTTP/1.0 clients may send).
    public func outcome(at now: Instant, ended: Bool = false) -> Outcome {
        if headEnded || (ended && requestLine != nil) {
            return requestLine.map(Self.parse) ?? .malformed("no request line")
        }
        if received.count > Self.maximumBytes { return .tooLarge }
        if now >= deadline { return .timedOut }
        if ended { return .malformed("the connection ended before the request line did") }
        return .incomplete
    }

    /// Finds the ends of lines (CRLF, or a bare LF as RFC 9112 section 2.2 lets a server accept)
    /// in the bytes not yet scanned: the first is the request line, an empty one ends the head.
    private mutating func scan() {
        while scanned < received.count, !headEnded {
            defer { scanned += 1 }
            guard received[scanned] == UInt8(ascii: "\n") else { continue }
            var line = received[lineStart..<scanned]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            lineStart = scanned + 1
            if line.isEmpty {
                // An empty line before the request line is skipped (RFC 9112 section 2.2).
                if requestLine != nil { headEnded = true }
            } else if requestLine == nil {
                requestLine = Array(line)
            }
        }
    }

    /// `METHOD SP TARGET SP HTTP-VERSION` (RFC 9112 section 3).
    private static func parse(_ line: [UInt8]) -> Outcome {
        let words = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
        guard words.count == 3, !words[0].isEmpty, !words[1].isEmpty, words[2].hasPrefix("HTTP/") else {
            return .malformed("request line is not METHOD TARGET HTTP/VERSION")
        }
        return .complete(Head(method: words[0], target: words[1], version: words[2]))
    }
}
