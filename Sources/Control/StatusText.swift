import Foundation

/// The status as a network engineer reads it: one table per subject, in the manner of
/// `bridge mdb show` and a switch's `show ip igmp snooping`.
extension StatusReport {
    public func renderText() -> String {
        let bound = datapath.threadCpus.compactMap { $0 }
        var out = "Datapath: \(datapath.threads) forwarding thread\(datapath.threads == 1 ? "" : "s") at nice \(datapath.nice), "
            + (bound.isEmpty ? "" : "bound to CPU\(bound.count == 1 ? "" : "s") \(datapath.threadCpus.map { $0.map(String.init) ?? "-" }.joined(separator: ",")), ")
            + (datapath.ringBytes > 0 ? "\(datapath.ringBytes / 1024) KiB receive ring per socket" : "no receive rings (recvmmsg)")
        if datapath.packetPorts > 0 {
            out += ", host IP stack kept off \(datapath.hostStackFilteredPorts) of \(datapath.packetPorts) packet ports"
            out += datapath.fastPathPorts > 0
                ? ", kernel fast path on \(datapath.fastPathPorts) ports (\(datapath.kernelFlows) unicast flow\(datapath.kernelFlows == 1 ? "" : "s"))"
                : ", no kernel fast path"
            out += datapath.replicatingPorts > 0
                ? ", egress replication on \(datapath.replicatingPorts) ports"
                : ", no egress replication"
        }
        out += "\n\n"
        out += table(title: "Ports", ["PORT", "IFINDEX", "LINK", "PVID", "TAGGED", "ROUTER", "FAST-LEAVE", "RX", "TX", "DROPS"],
                     ports.map { p in
                         [p.name, p.ifindex.map(String.init) ?? "-", p.link, p.pvid.map(String.init) ?? "-",
                          p.tagged.isEmpty ? "-" : p.tagged.map(String.init).joined(separator: ","),
                          p.router ?? "-", p.fastLeave ? "yes" : "no",
                          String(p.rxFrames), String(p.txFrames), String(p.drops)]
                     })
        var groupRows: [[String]] = []
        for group in groups {
            for (i, member) in group.members.enumerated() {
                var filter = member.mode
                if !member.sources.isEmpty { filter += " " + member.sources.map(\.address).joined(separator: ",") }
                if !member.excluded.isEmpty { filter += " !" + member.excluded.joined(separator: ",!") }
                let version = member.isStatic ? "static"
                    : member.compatibility < member.version ? "v\(member.version) (v\(member.compatibility) mode)" : "v\(member.version)"
                groupRows.append([i == 0 ? String(group.vlan) : "", i == 0 ? group.group : "",
                                  member.port, version, filter, member.isStatic ? "never" : Self.seconds(member.expiresIn)])
            }
        }
        out += table(title: "Groups", ["VLAN", "GROUP", "PORT", "VERSION", "FILTER", "EXPIRES"], groupRows, empty: "no groups")
        out += table(title: "Router ports", ["VLAN", "PROTO", "PORT", "KIND", "REASON", "EXPIRES"],
                     routerPorts.map {
                         [String($0.vlan), $0.protocol.uppercased(), $0.port, $0.kind, $0.reason,
                          $0.expiresIn.map(Self.seconds) ?? "never"]
                     },
                     empty: "no router ports")
        out += table(title: "Queriers", ["VLAN", "PROTO", "QUERIER", "ADDRESS", "VERSION", "NEXT QUERY", "OTHER EXPIRES"],
                     queriers.map { q in
                         [String(q.vlan), q.protocol.uppercased(), q.role == "us" ? "this switch" : q.role, q.address ?? "-", "v\(q.version)",
                          q.nextQueryIn.map(Self.seconds) ?? "-", q.otherQuerierExpiresIn.map(Self.seconds) ?? "-"]
                     })
        out += table(title: "MAC table", ["VLAN", "MAC", "PORT", "AGE"],
                     macs.map { [String($0.vlan), $0.mac, $0.port, Self.seconds($0.ageSeconds)] }, empty: "no entries")
        out += "IGMP\n"
        out += "  received: \(Self.counters(igmp.received))\n"
        out += "  sent:     \(Self.counters(igmp.sent))\n"
        out += "  errors:   \(Self.counters(igmp.errors))\n"
        out += "MLD\n"
        out += "  received: \(Self.counters(mld.received))\n"
        out += "  sent:     \(Self.counters(mld.sent))\n"
        out += "  errors:   \(Self.counters(mld.errors))\n"
        out += "Drops\n"
        out += "  by reason: \(Self.counters(dropsByReason))\n"
        return out
    }

    static func seconds(_ value: Double) -> String {
        let tenths = (value * 10).rounded()
        return "\(Int(tenths) / 10).\(Int(tenths) % 10)s"
    }

    static func counters(_ values: [String: UInt64]) -> String {
        let shown = values.filter { $0.value > 0 }.sorted { $0.key < $1.key }
        return shown.isEmpty ? "-" : shown.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }

    private func table(title: String, _ headers: [String], _ rows: [[String]], empty: String? = nil) -> String {
        var out = "\(title)\n"
        if rows.isEmpty, let empty { return out + "  (\(empty))\n\n" }
        var widths = headers.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            var text = " "
            for (i, cell) in cells.enumerated() {
                text += " " + cell
                // Padded by hand: Foundation's padding(toLength:) took most of a 100,000-group table.
                if i < cells.count - 1 { text += String(repeating: " ", count: widths[i] + 1 - cell.count) }
            }
            return text + "\n"
        }
        out += line(headers)
        for row in rows { out += line(row) }
        return out + "\n"
    }
}
