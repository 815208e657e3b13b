import Ports
import SwitchEngine

extension SwitchDaemon {
    /// Frames sent, by port, by one thread.
    struct Traffic {
        var frames: UInt64 = 0
        var bytes: UInt64 = 0
        var drops: UInt64 = 0
    }

    /// What one forwarding thread owns. Only its thread touches `queues`, `pending` and
    /// `egress`; `traffic` is written by its thread and read by the status, both under `lock`.
    final class ForwardingThread {
        let number: Int
        let batch = ReceiveBatch(capacity: 32)
        /// By port index, made on first use.
        var queues = [TransmitQueue?](repeating: nil, count: PortSet.capacity)
        var traffic = [Traffic](repeating: Traffic(), count: PortSet.capacity)
        /// Ports with frames queued since the last flush, and the devices to send them on
        /// (taken under the lock, so that a port closed meanwhile sends into its old socket).
        var pending = PortSet()
        var egress = [Device?](repeating: nil, count: PortSet.capacity)
        /// What the last unlocked flush sent, by port, until it is counted under the lock.
        var unsettled = [(sent: Int, failed: Int, bytes: Int)?](repeating: nil, count: PortSet.capacity)
        /// Forwarding threads other than the main one wait on their own epoll.
        let poller: Poller?
        let wakeup: Wakeup?
        var system: SystemThread?
        /// When this thread last received frames.
        var lastFrames = Instant.zero
        /// Unicast routes decided in this batch, handed to the kernel once the batch is sent.
        var routes: [(route: SnoopingSwitch.UnicastRoute, ingress: Int32, egress: Int32)] = []
        /// The port sets this thread's frames name for the kernel to clone to (nil: no replication).
        var replicaLists: ReplicaLists?
        /// Whether a queued frame names a replica list (sent before the forwarding state may move).
        var replicating = false
        /// Frames the kernel cloned for this thread's sends (under `lock`).
        var clonedFrames: UInt64 = 0

        init(number: Int) throws(SystemError) {
            self.number = number
            poller = number == 0 ? nil : try Poller()
            wakeup = number == 0 ? nil : try Wakeup()
            if let poller, let wakeup { try poller.add(wakeup.descriptor, token: Token.wakeup) }
        }

        /// Adds what a flush sent to the port's counts (under `lock`).
        func count(_ result: (sent: Int, failed: Int, bytes: Int), on index: Int) {
            traffic[index].frames &+= UInt64(result.sent)
            traffic[index].bytes &+= UInt64(result.bytes)
            traffic[index].drops &+= UInt64(result.failed)
        }

        func queue(_ index: Int) -> TransmitQueue {
            if let queue = queues[index] { return queue }
            let queue = TransmitQueue(capacity: 64)
            queues[index] = queue
            return queue
        }
    }
}
