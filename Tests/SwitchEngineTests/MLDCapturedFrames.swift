// MLD frames captured from real Linux hosts, copied from Tests/WireTests/CapturedMLDFrames.swift
// (test targets cannot share sources); that file says how they were captured:
//
// Frames captured with tcpdump from Linux 6.18 hosts in network namespaces joined by a veth pair:
// a host (02:00:00:00:00:02, 2001:db8::2, fe80::ff:fe00:2) joining and leaving groups through a
// socket, and on the other end a Linux bridge (02:00:00:00:00:01, fe80::ff:fe00:1) with
// mcast_querier 1, which sent the queries. Every MLD message carries a hop-by-hop header with
// the router alert (value 0) and hop limit 1.

/// MLDv2 report from fe80::ff:fe00:2, one record CHANGE_TO_EXCLUDE({}) for its solicited-node
/// group ff02::1:ff00:2, sent when the address 2001:db8::2 was added.
let capturedMLDv2SolicitedNodeJoin: [UInt8] = hexBytes("""
    3333 0000 0016 0200 0000 0002 86dd 6000
    0000 0024 0001 fe80 0000 0000 0000 0000
    00ff fe00 0002 ff02 0000 0000 0000 0000
    0000 0000 0016 3a00 0502 0000 0100 8f00
    7205 0000 0001 0400 0000 ff02 0000 0000
    0000 0000 0001 ff00 0002
    """)

/// MLDv2 report, CHANGE_TO_EXCLUDE({}) for ff15::4242 (IPV6_JOIN_GROUP): a join.
let capturedMLDv2Join: [UInt8] = hexBytes("""
    3333 0000 0016 0200 0000 0002 86dd 6000
    0000 0024 0001 fe80 0000 0000 0000 0000
    00ff fe00 0002 ff02 0000 0000 0000 0000
    0000 0000 0016 3a00 0502 0000 0100 8f00
    2eb4 0000 0001 0400 0000 ff15 0000 0000
    0000 0000 0000 0000 4242
    """)

/// MLDv2 report, CHANGE_TO_INCLUDE({}) for ff15::4242 (the socket closed): a leave.
let capturedMLDv2Leave: [UInt8] = hexBytes("""
    3333 0000 0016 0200 0000 0002 86dd 6000
    0000 0024 0001 fe80 0000 0000 0000 0000
    00ff fe00 0002 ff02 0000 0000 0000 0000
    0000 0000 0016 3a00 0502 0000 0100 8f00
    2fb4 0000 0001 0300 0000 ff15 0000 0000
    0000 0000 0000 0000 4242
    """)

/// MLDv2 report, ALLOW_NEW_SOURCES({2001:db8::99}) for ff35::4242 (MCAST_JOIN_SOURCE_GROUP).
let capturedMLDv2SourceJoin: [UInt8] = hexBytes("""
    3333 0000 0016 0200 0000 0002 86dd 6000
    0000 0034 0001 fe80 0000 0000 0000 0000
    00ff fe00 0002 ff02 0000 0000 0000 0000
    0000 0000 0016 3a00 0502 0000 0100 8f00
    ff30 0000 0001 0500 0001 ff35 0000 0000
    0000 0000 0000 0000 4242 2001 0db8 0000
    0000 0000 0000 0000 0099
    """)

/// MLDv2 report, BLOCK_OLD_SOURCES({2001:db8::99}) for ff35::4242.
let capturedMLDv2SourceLeave: [UInt8] = hexBytes("""
    3333 0000 0016 0200 0000 0002 86dd 6000
    0000 0034 0001 fe80 0000 0000 0000 0000
    00ff fe00 0002 ff02 0000 0000 0000 0000
    0000 0000 0016 3a00 0502 0000 0100 8f00
    fe30 0000 0001 0600 0001 ff35 0000 0000
    0000 0000 0000 0000 4242 2001 0db8 0000
    0000 0000 0000 0000 0099
    """)

/// MLDv2 report from the bridge host fe80::ff:fe00:1 with two records: its solicited-node group and
/// ff02::6a (all snoopers, which a snooping bridge joins).
let capturedMLDv2TwoRecords: [UInt8] = hexBytes("""
    3333 0000 0016 0200 0000 0001 86dd 6000
    0000 0038 0001 fe80 0000 0000 0000 0000
    00ff fe00 0001 ff02 0000 0000 0000 0000
    0000 0000 0016 3a00 0502 0000 0100 8f00
    6e85 0000 0002 0400 0000 ff02 0000 0000
    0000 0000 0001 ff00 0001 0400 0000 ff02
    0000 0000 0000 0000 0000 0000 006a
    """)

/// MLDv1 report for ff15::4243, to the group (force_mld_version=1).
let capturedMLDv1Report: [UInt8] = hexBytes("""
    3333 0000 4243 0200 0000 0002 86dd 6000
    0000 0020 0001 fe80 0000 0000 0000 0000
    00ff fe00 0002 ff15 0000 0000 0000 0000
    0000 0000 4243 3a00 0502 0000 0100 8300
    fc77 0000 0000 ff15 0000 0000 0000 0000
    0000 0000 4243
    """)

/// MLDv1 Done for ff15::4243, to ff02::2.
let capturedMLDv1Done: [UInt8] = hexBytes("""
    3333 0000 0002 0200 0000 0002 86dd 6000
    0000 0020 0001 fe80 0000 0000 0000 0000
    00ff fe00 0002 ff02 0000 0000 0000 0000
    0000 0000 0002 3a00 0502 0000 0100 8400
    3dcc 0000 0000 ff15 0000 0000 0000 0000
    0000 0000 4243
    """)

/// MLDv2 group-specific query for ff15::4244 from the bridge (querier), after CHANGE_TO_INCLUDE({}):
/// max response code 1000, QRV 2, QQIC 125; its hop-by-hop header pads with two Pad1.
let capturedMLDv2GroupQuery: [UInt8] = hexBytes("""
    3333 0000 4244 0200 0000 0001 86dd 6000
    0000 0024 0001 fe80 0000 0000 0000 0000
    00ff fe00 0001 ff15 0000 0000 0000 0000
    0000 0000 4244 3a00 0502 0000 0000 8200
    f70d 03e8 0000 ff15 0000 0000 0000 0000
    0000 0000 4244 027d 0000
    """)

/// The same query, retransmitted with the S flag set.
let capturedMLDv2GroupQuerySFlag: [UInt8] = hexBytes("""
    3333 0000 4244 0200 0000 0001 86dd 6000
    0000 0024 0001 fe80 0000 0000 0000 0000
    00ff fe00 0001 ff15 0000 0000 0000 0000
    0000 0000 4244 3a00 0502 0000 0000 8200
    ef0d 03e8 0000 ff15 0000 0000 0000 0000
    0000 0000 4244 0a7d 0000
    """)

/// MLDv2 group-and-source-specific query for ff35::4244 and 2001:db8::99, after BLOCK_OLD_SOURCES.
let capturedMLDv2GroupAndSourceQuery: [UInt8] = hexBytes("""
    3333 0000 4244 0200 0000 0001 86dd 6000
    0000 0034 0001 fe80 0000 0000 0000 0000
    00ff fe00 0001 ff35 0000 0000 0000 0000
    0000 0000 4244 3a00 0502 0000 0000 8200
    c86a 03e8 0000 ff35 0000 0000 0000 0000
    0000 0000 4244 027d 0001 2001 0db8 0000
    0000 0000 0000 0000 0099
    """)

/// MLDv1 group-specific query for ff15::4245, after its Done (mcast_mld_version 1), to ff02::1.
let capturedMLDv1GroupQuery: [UInt8] = hexBytes("""
    3333 0000 0001 0200 0000 0001 86dd 6000
    0000 0020 0001 fe80 0000 0000 0000 0000
    00ff fe00 0001 ff02 0000 0000 0000 0000
    0000 0000 0001 3a00 0502 0000 0000 8200
    3be4 03e8 0000 ff15 0000 0000 0000 0000
    0000 0000 4245
    """)

/// MLDv1 general query, max response delay 10000 ms.
let capturedMLDv1GeneralQuery: [UInt8] = hexBytes("""
    3333 0000 0001 0200 0000 0001 86dd 6000
    0000 0020 0001 fe80 0000 0000 0000 0000
    00ff fe00 0001 ff02 0000 0000 0000 0000
    0000 0000 0001 3a00 0502 0000 0000 8200
    5a17 2710 0000 0000 0000 0000 0000 0000
    0000 0000 0000
    """)
