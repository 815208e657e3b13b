// Frames captured with tcpdump -xx from a Linux 6.18 host (192.0.2.2, 02:00:00:00:00:02)
// joining and leaving groups through a socket.

/// IGMPv2 report for 239.1.2.3 (net.ipv4.conf.IF.force_igmp_version=2).
let capturedV2Report: [UInt8] = hex("""
    0100 5e01 0203 0200 0000 0002 0800 46c0
    0020 0000 4000 0102 3111 c000 0202 ef01
    0203 9404 0000 1600 f8fa ef01 0203
    """)

/// IGMPv2 leave for 239.1.2.3, to 224.0.0.2.
let capturedV2Leave: [UInt8] = hex("""
    0100 5e00 0002 0200 0000 0002 0800 46c0
    0020 0000 4000 0102 4213 c000 0202 e000
    0002 9404 0000 1700 f7fa ef01 0203
    """)

/// IGMPv3 report, one record CHANGE_TO_EXCLUDE({}) for 239.4.5.6: a join.
let capturedV3Join: [UInt8] = hex("""
    0100 5e00 0016 0200 0000 0002 0800 46c0
    0028 0000 4000 0102 41f7 c000 0202 e000
    0016 9404 0000 2200 e5f3 0000 0001 0400
    0000 ef04 0506
    """)

/// IGMPv3 report, one record CHANGE_TO_INCLUDE({}) for 239.4.5.6: a leave.
let capturedV3Leave: [UInt8] = hex("""
    0100 5e00 0016 0200 0000 0002 0800 46c0
    0028 0000 4000 0102 41f7 c000 0202 e000
    0016 9404 0000 2200 e6f3 0000 0001 0300
    0000 ef04 0506
    """)

func hex(_ text: String) -> [UInt8] {
    let digits = text.filter(\.isHexDigit)
    var bytes: [UInt8] = []
    var index = digits.startIndex
    while index < digits.endIndex {
        let next = digits.index(index, offsetBy: 2)
        bytes.append(UInt8(digits[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}
