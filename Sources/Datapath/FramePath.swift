#if canImport(Glibc)
import Glibc
#endif
import Control
import Ports
import SwitchEngine
import Wire

/// One forwarding thread's frame path: a batch read from a port, each frame decided by the
/// engine and queued on its egress ports (once for several, where the kernel clones it), the
/// queues sent, and the routes the engine decided offered to the kernel.
extension SwitchDaemon {
    /// Up to a few batches from one port, then the loop moves on so no port starves the others.
    /// Called with `lock` held; lets it go while sending.
    func receive(onPort index: Int, thread: ForwardingThread) {
        retireFlows()
        guard index < ports.count, let port = ports[index], let device = port.ingress(for: thread.number) else { return }
        noteFrames(on: port, id: PortID(index), thread: thread)
        for _ in 0..<8 {
            // Sending let the lock go: the port may have been removed or reopened meanwhile.
            guard ports[index] === port, let count = readBatch(from: device, of: port, thread: thread),
                  count > 0 else { return }
            let now = Self.now()
            thread.lastFrames = now
            // While it stays so, every route decided in this batch still holds after the send.
            let routeGeneration = engine.routeGeneration
            let wallClock = captures.isEmpty ? 0 : realtimeNanoseconds()
            for i in 0..<count {
                guard let frame = thread.batch.frame(i) else {
                    port.rxErrors &+= 1
                    continue
                }
                forward(frame, from: port, index: index, thread: thread, at: now, wallClock: wallClock)
            }
            sendBatch(receivedOn: device, thread: thread, at: now, routeGeneration: routeGeneration)
            if count < thread.batch.capacity { return }
        }
    }

    /// Frames on a port we hold down mean its link came up before the kernel says so (it
    /// reports carrier changes up to a second late): an interface that is up and receiving is up.
    private func noteFrames(on port: PortIO, id: PortID, thread: ForwardingThread) {
        port.lastReceive = Self.now()
        if !engine.linkUp.contains(id) { checkLink(thread: thread, at: port.lastReceive) }
    }

    /// Has the links looked at: now on the main thread, by the main thread on another.
    private func checkLink(thread: ForwardingThread, at now: Instant) {
        if thread.number == 0 { refreshLinks(at: now) } else { linkCheckWanted = true }
    }

    /// Reads a batch from the port into the thread's; nil where the device failed (its link is
    /// looked at).
    private func readBatch(from device: Device, of port: PortIO, thread: ForwardingThread) -> Int? {
        let batch = thread.batch
        do {
            switch device {
            case .packet(let socket):
                if let ring = socket.ring {
                    return try batch.receive(from: ring, of: socket)
                } else {
                    return try batch.receive(from: socket)
                }
            case .tap(let tap): return try batch.receive(from: tap)
            case .pcap(let pcap): return pcap.receive(into: batch)
            }
        } catch {
            logger.warning("port \(port.name): \(error); rechecking the link")
            checkLink(thread: thread, at: Self.now())
            return nil
        }
    }

    /// One frame: captured, decided by the engine, queued on its egress ports (once for several
    /// where the kernel clones it), its route noted for the kernel fast path, and what the
    /// engine generated meanwhile queued too.
    private func forward(_ frame: ReceivedFrame, from port: PortIO, index: Int, thread: ForwardingThread,
                         at now: Instant, wallClock: Int64) {
        let ingress = PortID(index)
        if !captures.isEmpty { capture(frame.bytes, tag: frame.tag, port: index, outbound: false, at: wallClock) }
        let input = IngressFrame(bytes: frame.bytes, tag: frame.tag, checksumPending: frame.header.checksumPending,
                                 serviceTagged: frame.serviceTagged)
        let decision = engine.receive(input, on: ingress, at: now)
        // A port must not get a flow's next frame on its own while the last one waits to
        // be cloned to it from another port's queue (or the other way round): where the
        // forwarding state may have moved, what is queued leaves first.
        if thread.replicating && decision.isControl { flushAllLocked(thread: thread) }
        var oneByOne = decision.ports
        if replication != nil && oneByOne.count > 1 {
            oneByOne = replicate(frame, decision: decision, thread: thread, wallClock: wallClock)
        }
        for egress in oneByOne {
            guard let out = ports[egress.index] else { continue }
            let tag = decision.tagged.contains(egress) ? decision.tag : nil
            queue(on: egress.index, port: out, thread: thread)
                .append(frame.bytes, header: frame.header, tag: tag, headerPrecedes: frame.headerPrecedes)
            if !captures.isEmpty { capture(frame.bytes, tag: tag, port: egress.index, outbound: true, at: wallClock) }
        }
        // The flow's next frames: the kernel's, once the engine has decided a large one.
        if fastPath != nil, let route = decision.route, frame.bytes.count >= kernelFastPathFrameBytes,
           captures.isEmpty, let ingressInterface = port.fastPathInterface,
           let egressInterface = ports[route.egress.index]?.fastPathInterface {
            thread.routes.append((route, ingressInterface, egressInterface))
        }
        if decision.framesWaiting { queueGenerated(thread: thread) }
    }

    /// Sends what the batch queued, the ring's slots handed back, and the routes it decided
    /// offered to the kernel.
    private func sendBatch(receivedOn device: Device, thread: ForwardingThread, at now: Instant, routeGeneration: UInt64) {
        // Before the batch is sent: a frame that moved a station may be answered within
        // the send (the receiver's stack runs in our softirq), and the answer must not
        // meet a flow that still points where the station was.
        if let fastPath, fastPath.checkedGeneration != engine.routeGeneration { revalidateFastPath(at: now) }
        flushPending(thread: thread)
        if case .packet(let socket) = device { socket.ring?.release() }
        offerRoutes(thread: thread, at: now, routeGeneration: routeGeneration)
    }

    /// After the batch is sent: the kernel must not overtake the frame that decided the route
    /// (frames of the flow still in the ring may be, at its start).
    private func offerRoutes(thread: ForwardingThread, at now: Instant, routeGeneration: UInt64) {
        guard let fastPath, !thread.routes.isEmpty else { return }
        // Unless a station, link or port changed since the batch began (then the engine is
        // asked again), each route holds, and so does its way back: the same stations, ports
        // and VLAN.
        let unchanged = engine.routeGeneration == routeGeneration
        for (route, ingress, egress) in thread.routes
        where captures.isEmpty && fastPathCarries(route, ingress: ingress, egress: egress)
            && (unchanged || engine.holds(route, at: now)) {
            fastPath.offer(route, ingressInterface: ingress, egressInterface: egress, at: now)
            // The way back (a TCP stream's ACKs), when the engine would decide it so.
            if unchanged || engine.holds(route.reversed, at: now) {
                fastPath.offer(route.reversed, ingressInterface: egress, egressInterface: ingress, at: now)
            }
        }
        thread.routes.removeAll(keepingCapacity: true)
    }

    /// Queues a frame for several ports as few times as it can: once for each set of
    /// replicating ports that get the same bytes (tagged, untagged), on one of them, naming the
    /// others for the kernel to clone it to. Returns the ports it still has to be sent to.
    /// Called with `lock` held.
    private func replicate(_ frame: ReceivedFrame, decision: ForwardingDecision, thread: ForwardingThread,
                           wallClock: Int64) -> PortSet {
        let candidates = decision.ports.intersection(replicatingPorts)
        guard candidates.count > 1 else { return decision.ports }
        let tagged = candidates.intersection(decision.tagged)
        var rest = decision.ports
        rest = replicate(frame, to: candidates.subtracting(tagged), tag: nil, rest: rest, thread: thread, wallClock: wallClock)
        rest = replicate(frame, to: tagged, tag: decision.tag, rest: rest,
                         thread: thread, wallClock: wallClock)
        return rest
    }

    private func replicate(_ frame: ReceivedFrame, to targets: PortSet, tag: VLANTag?, rest: PortSet, thread: ForwardingThread,
                           wallClock: Int64) -> PortSet {
        guard let replication, let lists = thread.replicaLists else { return rest }
        var rest = rest
        var remaining = targets
        while remaining.count > 1 {
            var iterator = remaining.makeIterator()
            let carrier = iterator.next()!
            var list = PortSet()
            while list.count < EgressReplication.replicasPerList, let port = iterator.next() { list.insert(port) }
            var number = lists.number(of: list, generation: portsGeneration)
            if number == nil {
                if lists.needsReset(generation: portsGeneration) {
                    // Frames queued name the old numbers: they leave before any is rewritten.
                    if thread.replicating { flushAllLocked(thread: thread) }
                    lists.reset(generation: portsGeneration)
                }
                number = lists.add(list) { number, set in
                    let interfaces = set.compactMap { ports[$0.index]?.interfaceIndex }
                    guard interfaces.count == set.count else { return false }
                    do throws(SystemError) {
                        try replication.set(list: number, thread: thread.number, interfaces: interfaces)
                        return true
                    } catch {
                        logger.warning("\(error); frames for these ports are sent to each")
                        return false
                    }
                }
            }
            remaining = remaining.subtracting(list).removing(carrier)
            guard let number, let out = ports[carrier.index] else { continue }
            queue(on: carrier.index, port: out, thread: thread)
                .append(frame.bytes, header: frame.header, tag: tag, headerPrecedes: frame.headerPrecedes,
                        mark: replication.mark(list: Int(number), thread: thread.number), list: number)
            thread.replicating = true
            rest = rest.subtracting(list).removing(carrier)
            if !captures.isEmpty {
                capture(frame.bytes, tag: tag, port: carrier.index, outbound: true, at: wallClock)
                for port in list { capture(frame.bytes, tag: tag, port: port.index, outbound: true, at: wallClock) }
            }
        }
        return rest
    }

    /// Sends every queue the batch filled so far, lock held (before the forwarding state may
    /// move mid-batch, or a replica list is rewritten).
    private func flushAllLocked(thread: ForwardingThread) {
        for id in thread.pending { flushLocked(id.index, thread: thread) }
        thread.replicating = false
    }

    /// Counts the frames the kernel cloned from a queue just sent, on the ports they went to.
    private func countReplicas(of queue: TransmitQueue, thread: ForwardingThread) {
        guard queue.replicated > 0, let lists = thread.replicaLists else { return }
        queue.forEachReplicated { list, sent, bytes in
            for port in lists.sets[Int(list)] {
                if sent {
                    thread.traffic[port.index].frames &+= 1
                    thread.traffic[port.index].bytes &+= UInt64(bytes)
                    thread.clonedFrames &+= 1
                } else {
                    thread.traffic[port.index].drops &+= 1
                }
            }
        }
    }

    /// The queue of an egress port to append a frame to: marked pending with the device to send
    /// it on, first emptied if full. Called with `lock` held.
    private func queue(on index: Int, port: PortIO, thread: ForwardingThread) -> TransmitQueue {
        let queue = thread.queue(index)
        if queue.isFull { flushLocked(index, thread: thread) }
        let id = PortID(index)
        if !thread.pending.contains(id) {
            thread.pending.insert(id)
            thread.egress[index] = port.egress(for: thread.number)
        }
        return queue
    }

    /// Sends one port's queue now, lock held (a full queue mid-batch; libpcap ports).
    private func flushLocked(_ index: Int, thread: ForwardingThread) {
        guard let queue = thread.queues[index], queue.count > 0 else { return }
        // Mid-batch the lock stays: a port command or a link change on the main thread just before.
        retireFlows(lettingGo: false)
        thread.count(send(queue, to: thread.egress[index]), on: index)
        countReplicas(of: queue, thread: thread)
    }

    private func send(_ queue: TransmitQueue, to device: Device?) -> (sent: Int, failed: Int, bytes: Int) {
        sendGate.sending {
            switch device {
            case .packet(let socket)?: return queue.flush(to: socket)
            case .tap(let tap)?: return queue.flush(to: tap)
            case .pcap(let pcap)?: return pcap.flush(queue)
            case nil:
                let dropped = queue.count
                queue.discard()
                return (0, dropped, 0)
            }
        }
    }

    /// Sends every queue the batch filled. Called with `lock` held; packet sockets and TAPs are
    /// written without it (libpcap handles are not for sharing between threads: with it).
    private func flushPending(thread: ForwardingThread) {
        retireFlows()
        guard !thread.pending.isEmpty else { return }
        for id in thread.pending {
            if case .pcap? = thread.egress[id.index] { flushLocked(id.index, thread: thread) }
        }
        lock.unlock()
        for id in thread.pending {
            guard let queue = thread.queues[id.index], queue.count > 0 else { continue }
            // Counted below, under the lock.
            thread.unsettled[id.index] = send(queue, to: thread.egress[id.index])
        }
        lock.lock()
        for id in thread.pending {
            if let result = thread.unsettled[id.index] {
                thread.count(result, on: id.index)
                thread.unsettled[id.index] = nil
                if let queue = thread.queues[id.index] { countReplicas(of: queue, thread: thread) }
            }
            thread.egress[id.index] = nil
        }
        thread.pending = PortSet()
        thread.replicating = false
    }

    private func queueGenerated(thread: ForwardingThread) {
        for frame in engine.takeOutbox() {
            for egress in frame.ports {
                guard let out = ports[egress.index] else { continue }
                let tag = frame.tagged.contains(egress) ? frame.tag : nil
                queue(on: egress.index, port: out, thread: thread).append(owned: frame.bytes, tag: tag)
                if !captures.isEmpty {
                    frame.bytes.withUnsafeBytes {
                        capture($0, tag: tag, port: egress.index, outbound: true, at: realtimeNanoseconds())
                    }
                }
            }
        }
    }

    /// Sends what the engine built (queries, forwarded reports) from the main thread.
    func sendGenerated() {
        guard engine.hasOutbox else { return }
        queueGenerated(thread: threads[0])
        flushPending(thread: threads[0])
    }

    private func capture(_ frame: UnsafeRawBufferPointer, tag: VLANTag?, port: Int, outbound: Bool, at time: Int64) {
        var anyClosed = false
        for stream in captures where stream.wants(port: port) {
            stream.offer(frame, tag: tag, port: port, outbound: outbound, at: time)
            anyClosed = anyClosed || stream.closed
        }
        if anyClosed {
            captures.removeAll { $0.closed }
            logger.info("a capture client left")
        }
    }
}
