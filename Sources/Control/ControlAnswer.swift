import Foundation

/// The short answers of the control protocol, each one JSON object on one line:
/// `{"ok":true}` (a change made, or a capture started: its frame records follow),
/// `{"pong":true}`, `{"error":"..."}`. A status is answered with its own document
/// (`StatusReport`) or, for `status text`, with the tables as text.
public enum ControlAnswer: Equatable, Sendable {
    case ok
    case pong
    case error(String)

    /// The answer as the switch sends it, without its newline.
    public var line: String {
        // JSONEncoder cannot fail on one string or bool; the fallback is never used.
        let data = (try? JSONEncoder().encode(self)) ?? Data("{\"error\":\"unencodable answer\"}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// The answer and its newline, as bytes for the socket.
    public var lineBytes: [UInt8] { Array((line + "\n").utf8) }

    /// Reads an answer line.
    public init(line: String) throws(ControlError) {
        do {
            self = try JSONDecoder().decode(ControlAnswer.self, from: Data(line.utf8))
        } catch {
            throw ControlError("unreadable answer from the switch: \(line.prefix(64))")
        }
    }

    /// The error an answer says, if it is one. Only an answer that starts as an error document
    /// is decoded: a status of 100,000 groups is 17 MB to parse.
    public static func error(in answer: String) -> String? {
        guard answer.hasPrefix("{\"error\""), case .error(let message)? = try? ControlAnswer(line: answer) else { return nil }
        return message
    }
}

extension ControlAnswer: Codable {
    private enum Key: String, CodingKey { case ok, pong, error }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        if let message = try container.decodeIfPresent(String.self, forKey: .error) {
            self = .error(message)
        } else if try container.decodeIfPresent(Bool.self, forKey: .pong) == true {
            self = .pong
        } else if try container.decodeIfPresent(Bool.self, forKey: .ok) == true {
            self = .ok
        } else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "neither ok, pong nor error"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        switch self {
        case .ok: try container.encode(true, forKey: .ok)
        case .pong: try container.encode(true, forKey: .pong)
        case .error(let message): try container.encode(message, forKey: .error)
        }
    }
}
