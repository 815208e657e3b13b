import Control
import SwitchEngine

extension SwitchDaemon {
    /// What the status shows, copied out of the engine and the ports. Called with `lock` held.
    func statusParts() -> StatusParts {
        settleFastPathFlows()
        for port in ports {
            port?.collectKernelDrops()
        }
        let runtime = ports.enumerated().map { index, port in
            let sent = threads.reduce(into: Traffic()) {
                $0.frames &+= $1.traffic[index].frames
                $0.bytes &+= $1.traffic[index].bytes
                $0.drops &+= $1.traffic[index].drops
            }
            return PortRuntime(interfaceIndex: port?.interfaceIndex.map(Int.init),
                               txFrames: sent.frames, txBytes: sent.bytes,
                               txDrops: sent.drops + (port?.rxErrors ?? 0) + (port?.kernelDrops ?? 0),
                               linkChanges: port?.linkChanges ?? 0, socketOverruns: port?.kernelDrops ?? 0)
        }
        let packetPorts = ports.compactMap { $0 }.filter { $0.attachment == .packetSocket && $0.device != nil }
        let datapath = StatusReport.Datapath(threads: threads.count, nice: nice, ringBytes: ringBytes,
                                             packetPorts: packetPorts.count,
                                             hostStackFilteredPorts: packetPorts.filter {
                                                 $0.hostStackFilter != nil || ($0.fastPathHook != nil && filterHostStack)
                                             }.count,
                                             fastPathPorts: packetPorts.filter { $0.fastPathHook != nil }.count,
                                             kernelFlows: fastPath?.count ?? 0,
                                             replicatingPorts: packetPorts.filter { $0.replicationHook != nil }.count,
                                             clonedFrames: threads.reduce(0) { $0 &+ $1.clonedFrames },
                                             threadCPUs: threadCPUs)
        return StatusParts(snapshot: StatusSnapshot(engine: engine, at: Self.now()), runtime: runtime, datapath: datapath)
    }
}
