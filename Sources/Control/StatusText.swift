import Foundation

/// The status as a network engineer reads it: one table per subject, in the manner of
/// `bridge mdb show` and a switch's `show ip igmp snooping`.
extension StatusReport {
    public func renderText() -> String {
        var out = datapathText() + configurationText()
        out += table(title: "VLANs", ["VLAN", "PROTO", "SNOOPING", "QUERIER", "ADDRESS", "VERSION", "OVERRIDES"],
                     configuration.vlans.flatMap { vlan in
                         [("IGMP", vlan.igmpSnooping, vlan.igmpQuerier, Self.igmpOverrides(vlan.overrides)),
                          ("MLD", vlan.mldSnooping, vlan.mldQuerier, Self.mldOverrides(vlan.overrides))].map { proto, snooping, querier, own in
                             [String(vlan.vlan), proto, Self.onOff(snooping), Self.onOff(querier.enabled), querier.address,
                              "v\(querier.version)", own.isEmpty ? "-" : own.joined(separator: ":")]
                         }
                     },
                     empty: "no VLANs")
        out += table(title: "Ports", ["PORT", "IFINDEX", "DEVICE", "LINK", "PVID", "TAGGED", "ROUTER", "FAST-LEAVE", "QUERY-GUARD",
                                      "RX", "TX", "DROPS"],
                     ports.map { p in
                         [p.name, p.ifindex.map(String.init) ?? "-", p.attachment, p.link, p.pvid.map(String.init) ?? "-",
                          p.tagged.isEmpty ? "-" : p.tagged.map(String.init).joined(separator: ","),
                          p.router ?? "-", p.fastLeave ? "yes" : "no", p.queryGuard ? "yes" : "no",
                          String(p.rxFrames), String(p.txFrames), String(p.drops)]
                     })
        var groupRows: [[String]] = []
        for group in groups {
            for (i, member) in group.members.enumerated() {
                var filter = member.mode
                if !member.sources.isEmpty { filter += " " + member.sources.map(\.address).joined(separator: ",") }
                if !member.excluded.isEmpty { filter += " !" + member.excluded.joined(separator: ",!") }
                let version = member.isStatic ? "-"
                    : member.compatibility < member.version ? "v\(member.version) (v\(member.compatibility) mode)" : "v\(member.version)"
                groupRows.append([i == 0 ? String(group.vlan) : "", i == 0 ? group.group : "",
                                  member.port, member.isStatic ? "static" : "learned", version, filter,
                                  member.isStatic ? "never" : Self.seconds(member.expiresIn)])
            }
        }
        out += table(title: "Groups", ["VLAN", "GROUP", "PORT", "KIND", "VERSION", "FILTER", "EXPIRES"], groupRows, empty: "no groups")
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

    /// How the switch moves frames, a line a subject.
    private func datapathText() -> String {
        let threads = datapath.threads
        let bound = datapath.threadCpus.compactMap { $0 }
        var lines = [("threads", "\(threads) forwarding thread\(threads == 1 ? "" : "s") at nice \(datapath.nice)"
                        + (bound.isEmpty ? ""
                            : ", bound to CPU\(bound.count == 1 ? "" : "s") "
                                + datapath.threadCpus.map { $0.map(String.init) ?? "-" }.joined(separator: ","))),
                     ("receive ring", datapath.ringBytes > 0 ? "\(datapath.ringBytes / 1024) KiB per socket" : "none (recvmmsg)")]
        if datapath.packetPorts > 0 {
            lines.append(("host stack filter", "host IP stack kept off \(datapath.hostStackFilteredPorts) of \(datapath.packetPorts) packet ports"))
            lines.append(("kernel fast path", datapath.fastPathPorts > 0
                ? "on \(datapath.fastPathPorts) ports, \(datapath.kernelFlows) unicast flow\(datapath.kernelFlows == 1 ? "" : "s")"
                : "off"))
            lines.append(("egress replication", datapath.replicatingPorts > 0
                ? "on \(datapath.replicatingPorts) ports, \(datapath.clonedFrames) frames cloned"
                : "off"))
        }
        return Self.block(title: "Datapath", lines)
    }

    /// The settings in force, in the words of `run`'s flags (and of the configuration file).
    private func configurationText() -> String {
        let c = configuration
        let t = c.timers
        func querier(_ q: Configuration.Querier) -> String { "\(Self.onOff(q.enabled)), address \(q.address), version \(q.version)" }
        let relayed = c.relayedReservedAddresses.map { address in
            let index = Int(address.suffix(1), radix: 16) ?? -1
            return ReservedAddressSpec.names.first { $0.index == index }.map { "\($0.name) (\(address))" } ?? address
        }
        return Self.block(title: "Configuration", [
            ("timers", "robustness \(t.robustness), query-interval \(Self.duration(t.queryInterval)), "
                + "query-response-interval \(Self.duration(t.queryResponseInterval))"),
            ("", "last-member-query-interval \(Self.duration(t.lastMemberQueryInterval)), "
                + "last-member-query-count \(t.lastMemberQueryCount)"),
            ("derived", "group membership interval \(Self.duration(t.groupMembershipInterval)), "
                + "other querier present interval \(Self.duration(t.otherQuerierPresentInterval))"),
            ("IGMP querier", querier(c.igmpQuerier)),
            ("MLD querier", querier(c.mldQuerier)),
            ("flooding", "flood-unregistered \(Self.onOff(c.floodUnregistered)), "
                + "flood-solicited-node \(Self.onOff(c.floodSolicitedNode))"),
            ("SSM", "ssm-range \(c.ssmRange), mld-ssm-range \(c.mldSsmRange)"),
            ("limits", "max-macs \(c.limits.macs), max-macs-per-port \(c.limits.macsPerPort), "
                + "max-groups-per-vlan \(c.limits.groupsPerVlan)"),
            ("", "max-groups-per-port \(c.limits.groupsPerPort), max-sources-per-group \(c.limits.sourcesPerGroup), "
                + "igmp-rate \(c.limits.messagesPerSecondPerPort)"),
            ("MAC table", "fdb-aging \(Self.duration(c.fdbAging))"),
            ("reserved", "relayed \(relayed.isEmpty ? "none" : relayed.joined(separator: ", "))"),
        ])
    }

    /// A VLAN's own settings of IGMP, as its VLAN spec writes them.
    static func igmpOverrides(_ o: Configuration.Overrides) -> [String] {
        [o.querier.map { $0 ? "querier" : "no-querier" }, o.igmpQuerier.map { $0 ? "igmp-querier" : "no-igmp-querier" },
         o.querierAddress.map { "querier-address=\($0)" }, o.igmpVersion.map { "igmp-version=\($0)" },
         o.snooping.map { $0 ? "snooping" : "no-snooping" }].compactMap { $0 }
    }

    /// A VLAN's own settings of MLD, as its VLAN spec writes them.
    static func mldOverrides(_ o: Configuration.Overrides) -> [String] {
        [o.querier.map { $0 ? "querier" : "no-querier" }, o.mldQuerier.map { $0 ? "mld-querier" : "no-mld-querier" },
         o.mldQuerierAddress.map { "mld-querier-address=[\($0)]" }, o.mldVersion.map { "mld-version=\($0)" },
         o.snooping.map { $0 ? "snooping" : "no-snooping" }, o.mldSnooping.map { $0 ? "mld-snooping" : "no-mld-snooping" }]
            .compactMap { $0 }
    }

    static func onOff(_ value: Bool) -> String { value ? "on" : "off" }

    /// Seconds as the flags take them: 125s, 0.2s.
    static func duration(_ value: Double) -> String {
        let text = String(value)
        return (text.hasSuffix(".0") ? String(text.dropLast(2)) : text) + "s"
    }

    /// A heading and its lines, each `label: text` with the texts aligned.
    private static func block(title: String, _ lines: [(String, String)]) -> String {
        let width = lines.map(\.0.count).max() ?? 0
        var out = "\(title)\n"
        for (label, text) in lines {
            let head = label.isEmpty ? "" : label + ":"
            out += "  " + head + String(repeating: " ", count: width + 2 - head.count) + text + "\n"
        }
        return out + "\n"
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
