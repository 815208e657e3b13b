import Control
import SwitchEngine

/// New settings while running (SIGHUP): read without the lock, then applied.
extension SwitchDaemon {
    /// New settings while running (SIGHUP): ports removed, added or changed are applied one by
    /// one, the rest through the engine. Returns a line for the log.
    public func apply(_ new: SwitchConfiguration) -> String {
        let current = engine.ports.compactMap { $0 }
        var changes: [String] = []
        // A port whose flags alone changed (router, fast-leave, query-guard) keeps its device,
        // counters, MAC entries and memberships; one whose VLANs or attachment changed is made anew.
        var changedInPlace: Set<String> = []
        for port in current where !new.ports.contains(port) {
            if let changed = new.ports.first(where: { $0.name == port.name }), port.isSamePort(flagsAside: changed),
               let id = engine.port(named: port.name), engine.updatePort(id, with: changed) {
                changedInPlace.insert(port.name)
                changes.append("~\(port.name)(\(Self.flagChanges(from: port, to: changed)))")
                continue
            }
            try? removePort(named: port.name)
            changes.append("-\(port.name)")
        }
        for port in new.ports where !current.contains(port) && !changedInPlace.contains(port.name) {
            do {
                try addPort(port)
                changes.append("+\(port.name)")
            } catch {
                changes.append("\(port.name) not added: \(error)")
            }
        }
        let kept = engine.reconfigure(new, at: Self.now())
        revalidateFastPath(at: Self.now())
        var line = "configuration re-read; ports: \(changes.isEmpty ? "unchanged" : changes.joined(separator: " "))"
        if !kept.isEmpty { line += "; needs a restart to change: \(kept.joined(separator: ", "))" }
        return line
    }

    /// The flags that changed, as the port SPEC names them: `+fast-leave,-router`.
    static func flagChanges(from old: PortConfiguration, to new: PortConfiguration) -> String {
        [("router", old.isStaticRouterPort, new.isStaticRouterPort), ("fast-leave", old.fastLeave, new.fastLeave),
         ("query-guard", old.queryGuard, new.queryGuard)]
            .filter { $0.1 != $0.2 }
            .map { ($0.2 ? "+" : "-") + $0.0 }
            .joined(separator: ",")
    }

    /// SIGHUP: the configuration read again (without `lock`) and applied, or why not, logged.
    func reloadConfiguration() {
        guard let readConfiguration else {
            logger.notice("SIGHUP: nothing to re-read (no configuration file)")
            return
        }
        switch withoutLock({ Result { try readConfiguration() } }) {
        case .success(let configuration): logger.notice("SIGHUP: \(apply(configuration))")
        case .failure(let error): logger.error("SIGHUP: \(error); the switch keeps running with its previous settings")
        }
    }
}
