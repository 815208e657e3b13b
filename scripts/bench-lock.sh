#!/usr/bin/env bash
# A ping through the switch while the kernel fast path holds a full flow table (16,384 flows):
# what the main thread's work on those flows (settling their counts once a second, taking
# idle ones back) costs the frames the forwarding threads carry meanwhile.
#
#   scripts/bench-lock.sh [--macs N] [--pings N] [--interval S] [--skip-build]
#   env SNOOPSWITCH=/path/to/snoopswitch   use this binary (no build; else a release build)
#   env SNOOPSWITCH_FLAGS="..."            add these flags to `snoopswitch run`
#
# Topology: namespaces gen (192.0.2.1), dst (192.0.2.2) and pinger (192.0.2.3), each joined by
# a veth pair to a switch namespace. gen sends 1,100-byte frames (over the default
# --kernel-fast-path-frame) from N source MACs (default 8,192) to dst's MAC, once a second:
# each gives the kernel a flow and its way back, 2N flows. pinger pings dst with 56-byte
# echoes (below the fast path's threshold: they go through the switch's threads) and the
# script prints ping's summary (min/avg/max/mdev) with the kernel's flow count before and after.
# Root only. Everything created is removed on exit, also on failure or ^C.
set -euo pipefail

MACS=8192
PINGS=200
INTERVAL=0.01
SKIP_BUILD=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --macs) MACS="${2:?--macs needs a count}"; shift 2 ;;
        --pings) PINGS="${2:?--pings needs a count}"; shift 2 ;;
        --interval) INTERVAL="${2:?--interval needs seconds}"; shift 2 ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-lock.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ $EUID -eq 0 ]] || { echo "bench-lock.sh: needs root (namespaces, veth, packet sockets)" >&2; exit 1; }

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY=/usr/bin/python3
export PATH="/opt/swift/usr/bin:$PATH:/usr/sbin:/sbin"
log() { printf '[bench-lock %s] %s\n' "$(date +%T)" "$*" >&2; }

if [[ -n "${SNOOPSWITCH:-}" ]]; then
    BIN="$SNOOPSWITCH"
else
    if ((SKIP_BUILD == 0)); then (cd "$REPO" && swift build -c release >&2); fi
    BIN="$(cd "$REPO" && swift build -c release --show-bin-path)/snoopswitch"
fi
[[ -x "$BIN" ]] || { echo "bench-lock.sh: no binary at $BIN" >&2; exit 1; }

ID="sbl$$"
SW="$ID-sw"
TMP="$(mktemp -d /tmp/snoopswitch-bench-lock.XXXXXX)"
NAMESPACES=()
GEN_PID=""
SWITCH_PID=""
cleanup() {
    [[ -n "$GEN_PID" ]] && kill "$GEN_PID" 2>/dev/null || true
    [[ -n "$SWITCH_PID" ]] && kill "$SWITCH_PID" 2>/dev/null && wait "$SWITCH_PID" 2>/dev/null || true
    local ns
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

newns() {
    ip netns add "$1"
    NAMESPACES+=("$1")
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$1" link set lo up
}
newns "$SW"
host() {    # host NAME ADDRESS MAC: a namespace with one veth to the switch namespace's port NAME
    local ns="$ID-$1"
    newns "$ns"
    ip link add "$1" netns "$SW" type veth peer name eth0 netns "$ns"
    ip -n "$ns" link set eth0 address "$3"
    ip -n "$ns" addr add "$2/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$SW" link set "$1" up
}
host gen 192.0.2.1 02:00:00:00:0b:01
host dst 192.0.2.2 02:00:00:00:0b:02
host pinger 192.0.2.3 02:00:00:00:0b:03

SOCK="$TMP/snoopswitch.sock"
# One source MAC per flow pair: the per-port MAC limit (8,192 by default) is raised to take them.
ip netns exec "$SW" "$BIN" run --port gen --port dst --port pinger --control "$SOCK" --log-level warning \
    --max-macs-per-port 65536 ${SNOOPSWITCH_FLAGS:-} > "$TMP/snoopswitch.log" 2>&1 < /dev/null &
SWITCH_PID=$!
for _ in $(seq 1 100); do [[ -S "$SOCK" ]] && break; sleep 0.1; done
[[ -S "$SOCK" ]] || { log "snoopswitch did not come up: $(tail -3 "$TMP/snoopswitch.log")"; exit 1; }

flows() { "$BIN" status --json --control "$SOCK" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["datapath"]["kernel_flows"])'; }

# dst's and pinger's MACs learned (and ARP answered) before the flows.
ip netns exec "$ID-pinger" ping -c 2 -i 0.2 -q 192.0.2.2 > /dev/null
ip netns exec "$ID-gen" ping -c 1 -q 192.0.2.2 > /dev/null
ip netns exec "$ID-gen" "$PY" - "$MACS" 02:00:00:00:0b:02 > "$TMP/gen.log" 2>&1 <<'EOF' &
# Frames of 1,100 bytes from N source MACs to one destination, the whole set once a second,
# in bursts that the switch's socket queue takes.
import socket, struct, sys, time
n, dst = int(sys.argv[1]), bytes.fromhex(sys.argv[2].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
payload = bytes(1100 - 14)
frames = [dst + struct.pack("!HI", 0x0210, i) + b"\x88\xb5" + payload for i in range(n)]
while True:
    start = time.monotonic()
    for k in range(0, n, 256):
        for f in frames[k:k + 256]:
            s.send(f)
        time.sleep(0.002)
    time.sleep(max(0.0, 1.0 - (time.monotonic() - start)))
EOF
GEN_PID=$!

target=$((2 * MACS > 16384 ? 16384 : 2 * MACS))
for _ in $(seq 1 60); do
    f="$(flows)"
    ((f >= target)) && break
    sleep 0.5
done
log "kernel flows before the pings: $f (of $target wanted)"
((f >= target * 99 / 100)) || log "warning: fewer flows than wanted; the figure is for $f"
ip netns exec "$ID-pinger" ping -c "$PINGS" -i "$INTERVAL" -q 192.0.2.2 | tee "$TMP/ping.txt" | tail -2
log "kernel flows after the pings: $(flows)"
summary="$(grep -E '^(rtt|round-trip)' "$TMP/ping.txt" | sed 's/.*= //')"
loss="$(grep -oE '[0-9.]+% packet loss' "$TMP/ping.txt")"
echo "ping through the switch with $f kernel flows, $PINGS pings at ${INTERVAL} s: min/avg/max/mdev $summary ($loss)"
