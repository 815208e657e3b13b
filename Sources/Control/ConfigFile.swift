#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SwitchEngine

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

    /// What is wrong with a configuration file, and where: `FILE:LINE: message`, or
    /// `FILE: message` where no one line is at fault.
    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        /// What the file is: unreadable (missing, not permitted, a directory), or read and wrong.
        public enum Kind: Equatable, Sendable {
            case unreadable
            case content
        }

        public var path: String
        public var line: Int?
        public var message: String
        public var kind: Kind

        public init(path: String, line: Int? = nil, _ message: String, kind: Kind = .content) {
            self.path = path
            self.line = line
            self.message = message
            self.kind = kind
        }

        public var description: String { "\(path):" + (line.map { "\($0):" } ?? "") + " \(message)" }
    }

    public static func read(_ path: String) throws(ConfigFile.Error) -> [Line] {
        guard let text = String(validating: try contents(of: path), as: UTF8.self) else {
            throw Error(path: path, "not UTF-8 text")
        }
        return try parse(text, path: path)
    }

    /// The file's bytes, or why they cannot be read (the system's words: No such file or
    /// directory, Permission denied, Is a directory).
    static func contents(of path: String) throws(ConfigFile.Error) -> [UInt8] {
        func unreadable(_ code: Int32) -> ConfigFile.Error {
            Error(path: path, "cannot read the configuration file: \(String(cString: strerror(code)))", kind: .unreadable)
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw unreadable(errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count == 0 { return bytes }
            guard count > 0 else {
                if errno == EINTR { continue }
                throw unreadable(errno)
            }
            bytes += chunk[..<count]
        }
    }

    public static func parse(_ text: String, path: String) throws(ConfigFile.Error) -> [Line] {
        var lines: [Line] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let content = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = content.split(whereSeparator: \.isWhitespace).map(String.init)
            guard let key = words.first else { continue }
            guard !key.hasPrefix("-"), key != "config" else {
                throw Error(path: path, line: index + 1, "'\(key)' is not a setting (write settings as flags without their dashes)")
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

extension ConfigFile {
    /// The settings of `run --config FILE`: the file's with the command line's on top, knowing
    /// which line of the file set what, so that an error names it.
    public struct Settings: Sendable {
        public let path: String
        public let lines: [Line]
        /// The command line's arguments after `run`, without `--config FILE`.
        public let commandLine: [String]
        /// The file's arguments with the command line's on top, as `run` reads them.
        public let arguments: [String]
        /// What is in force.
        public let settings: RunSettings

        /// Reads the file at `path` and lays `commandLine` (the arguments after `run`) over it.
        /// `parse` reads arguments as `run` does; the description of what it throws is the one
        /// line to say (about a line of the file, its flags are named without their dashes).
        public init(file path: String, commandLine: [String], parse: ([String]) throws -> RunSettings) throws(ConfigFile.Error) {
            let lines = try ConfigFile.read(path)
            var seen = Set<String>()
            for line in lines {
                do {
                    _ = try parse(line.arguments)
                } catch {
                    // The file writes settings without dashes: so does the message.
                    throw Error(path: path, line: line.number, "\(error)".replacingOccurrences(of: "'--", with: "'"))
                }
                if line.arguments.count == 2, line.arguments[0] == "--port" || line.arguments[0] == "--vlan" {
                    let name = String(line.arguments[1].split(separator: ":").first ?? "")
                    let kind = line.arguments[0].dropFirst(2)
                    guard seen.insert("\(kind) \(name)").inserted else {
                        throw Error(path: path, line: line.number, "\(kind) \(name) given twice")
                    }
                }
            }
            let ownArguments = commandLine.filter { $0 != "--config" && $0 != path && !$0.hasPrefix("--config=") }
            arguments = ConfigFile.merge(lines, commandLine: ownArguments)
            do {
                settings = try parse(arguments)
            } catch {
                throw Error(path: path, "\(error)")
            }
            self.path = path
            self.lines = lines
            self.commandLine = ownArguments
        }

        /// The line of the file that set what `error` is about: the line of that port or VLAN,
        /// or the last line of that setting unless the command line gave it too.
        public func line(of error: SettingError) -> Int? {
            let flag = "--" + error.setting
            if let value = error.value {
                return lines.last { $0.arguments == [flag, value] }?.number
            }
            guard !commandLine.contains(where: { $0 == flag || $0.hasPrefix(flag + "=") }) else { return nil }
            return lines.last { $0.arguments.first == flag }?.number
        }

        /// `error` as the file's: naming the file, and the line when one line is at fault.
        public func located(_ error: SettingError) -> ConfigFile.Error {
            Error(path: path, line: line(of: error), error.message)
        }

        public func switchConfiguration(isLoopback: (String) -> Bool = { _ in false }) throws(ConfigFile.Error) -> SwitchConfiguration {
            do { return try settings.switchConfiguration(isLoopback: isLoopback) } catch { throw located(error) }
        }

        public func datapath(cpuAllowed: (Int) -> Bool) throws(ConfigFile.Error) -> DatapathSettings {
            do { return try settings.datapath(cpuAllowed: cpuAllowed) } catch { throw located(error) }
        }
    }
}
