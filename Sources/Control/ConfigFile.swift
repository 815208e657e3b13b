import Foundation

/// The configuration file of `snoopswitch run --config FILE`: one setting per line, written as
/// the flag it stands for without its dashes, `#` starting a comment.
///
///     # two access ports and a trunk toward the router
///     port h1:pvid=10
///     port h2:pvid=20:fast-leave
///     port up:tagged=10,20:router
///     querier
///     querier-address 192.0.2.254
///     vlan 20:no-querier
public enum ConfigFile {
    public struct Line: Equatable, Sendable {
        public var number: Int
        /// The flag and its value, as on the command line: ["--port", "h1:pvid=10"].
        public var arguments: [String]
    }

    public struct Error: Swift.Error, CustomStringConvertible {
        public let description: String
    }

    public static func read(_ path: String) throws(ConfigFile.Error) -> [Line] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Error(description: "\(path): cannot read the configuration file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw Error(description: "\(path): not UTF-8 text")
        }
        return try parse(text, path: path)
    }

    public static func parse(_ text: String, path: String) throws(ConfigFile.Error) -> [Line] {
        var lines: [Line] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let content = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = content.split(whereSeparator: \.isWhitespace).map(String.init)
            guard let key = words.first else { continue }
            guard !key.hasPrefix("-"), key != "config" else {
                throw Error(description: "\(path):\(index + 1): '\(key)' is not a setting (write settings as flags without their dashes)")
            }
            lines.append(Line(number: index + 1, arguments: ["--" + key] + words.dropFirst()))
        }
        return lines
    }

    /// The file's settings with the command line's on top: a port or VLAN the command line
    /// names replaces the file's of the same name; other flags given on both take the command
    /// line's value (it comes last).
    public static func merge(_ file: [Line], commandLine: [String]) -> [String] {
        func names(of flag: String, in arguments: [String]) -> Set<String> {
            var found = Set<String>()
            for (i, argument) in arguments.enumerated() {
                if argument == flag, i + 1 < arguments.count { found.insert(key(arguments[i + 1])) }
                if argument.hasPrefix(flag + "=") { found.insert(key(String(argument.dropFirst(flag.count + 1)))) }
            }
            return found
        }
        func key(_ spec: String) -> String { String(spec.split(separator: ":").first ?? "") }
        let ports = names(of: "--port", in: commandLine), vlans = names(of: "--vlan", in: commandLine)
        let kept = file.filter { line in
            guard line.arguments.count == 2 else { return true }
            switch line.arguments[0] {
            case "--port": return !ports.contains(key(line.arguments[1]))
            case "--vlan": return !vlans.contains(key(line.arguments[1]))
            default: return true
            }
        }
        return kept.flatMap(\.arguments) + commandLine
    }
}
