import Wire

/// A frame as a port backend hands it to the engine: the Ethernet bytes without an 802.1Q tag,
/// the tag (the kernel strips it into auxdata; the backend recovers it), and whether the
/// kernel left a transport checksum unfinished.
public struct IngressFrame {
    public var bytes: UnsafeRawBufferPointer
    public var tag: VLANTag?
    public var checksumPending: Bool
    /// The kernel took an 802.1ad S-tag (TPID 0x88A8), not an 802.1Q tag, out of the frame:
    /// `tag` is then nil. An S-tag still in the bytes shows as their EtherType.
    public var serviceTagged: Bool

    public init(bytes: UnsafeRawBufferPointer, tag: VLANTag? = nil, checksumPending: Bool = false,
                serviceTagged: Bool = false) {
        self.bytes = bytes
        self.tag = tag
        self.checksumPending = checksumPending
        self.serviceTagged = serviceTagged
    }
}

/// Everything the datapath needs to send a frame, decided in one pass: the egress ports split
/// by whether the frame leaves them tagged, its VLAN and 802.1p bits, whether deciding it may
/// have moved the forwarding state, and the unicast route it is, if it is one. A plain value:
/// the datapath asks the engine nothing more about the frame. No ports: nowhere.
public struct ForwardingDecision: Equatable, Sendable, BitwiseCopyable {
    public var vlan: VLANID
    public var priority: UInt8
    public var dropEligible: Bool
    /// Ports whose untagged VLAN (pvid) is `vlan`: the frame leaves them as it came, untagged.
    public var untagged: PortSet
    /// Ports that carry `vlan` tagged: the frame leaves them with `tag`.
    public var tagged: PortSet
    /// An IGMP or PIM frame: memberships and router ports may have moved, so the frames decided
    /// after it may go elsewhere than those before it.
    public var isControl: Bool
    /// The engine has frames of its own to send (`takeOutbox`): queries a report or leave owed.
    public var framesWaiting: Bool
    /// The unicast route this decision took, when it is one (an untagged frame from a learned
    /// station to another, out of an untagged port): the datapath may hand the flow to the
    /// kernel while `SnoopingSwitch.holds` says so.
    public var route: SnoopingSwitch.UnicastRoute?

    public init(vlan: VLANID, priority: UInt8, dropEligible: Bool = false, untagged: PortSet, tagged: PortSet = .empty,
                isControl: Bool = false, framesWaiting: Bool = false, route: SnoopingSwitch.UnicastRoute? = nil) {
        self.vlan = vlan
        self.priority = priority
        self.dropEligible = dropEligible
        self.untagged = untagged
        self.tagged = tagged
        self.isControl = isControl
        self.framesWaiting = framesWaiting
        self.route = route
    }

    /// Every egress port, tagged or not. The engine sets them all as `untagged` while it
    /// decides, and splits them once (`split`).
    public internal(set) var ports: PortSet {
        get { untagged.union(tagged) }
        set {
            untagged = newValue
            tagged = .empty
        }
    }

    /// Moves the ports outside `untaggedPorts` (those whose pvid is not `vlan`) to `tagged`.
    @inline(__always)
    mutating func split(untaggedIn untaggedPorts: PortSet) {
        tagged = untagged.subtracting(untaggedPorts)
        untagged = untagged.intersection(untaggedPorts)
    }

    /// The tag the frame carries out of the `tagged` ports.
    public var tag: VLANTag { VLANTag(vlan: vlan, priority: priority, dropEligible: dropEligible) }

    public static let none = ForwardingDecision(vlan: .default, priority: 0, untagged: .empty)
}

/// A frame the switch itself sends (a query, a solicitation), built untagged: it leaves the
/// `untagged` ports so and the `tagged` ports with `tag`.
public struct GeneratedFrame: Equatable, Sendable {
    public var vlan: VLANID
    /// The 802.1p priority it carries where it is tagged.
    public var priority: UInt8
    public var untagged: PortSet
    public var tagged: PortSet
    public var bytes: [UInt8]

    public var ports: PortSet { untagged.union(tagged) }
    public var tag: VLANTag { VLANTag(vlan: vlan, priority: priority) }
}
