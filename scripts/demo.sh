#!/usr/bin/env bash
# demo.sh: IGMP snooping in one minute.
#
# Builds snoopswitch (unless $SNOOPSWITCH names a binary), brings up topologies/four-hosts.topo (four hosts, one switch,
# each in its own network namespace), then:
#   1. h1 joins 239.1.1.1 with an ordinary UDP socket (its kernel sends an IGMP report),
#   2. h4 sends 10 datagrams to 239.1.1.1,
#   3. h1 receives them; h2, which did not join, sees none of them on its wire,
#   4. the switch's status shows what it learned.
# Everything is torn down at the end, also on failure or Ctrl-C. Needs root.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
[[ $(id -u) -eq 0 ]] || { echo "demo.sh: please run as root (it creates network namespaces)" >&2; exit 1; }

GROUP=239.1.1.1
PORT=5000
COUNT=10
LAB=demo$$
RUN=$(mktemp -d /tmp/snoopswitch-demo.XXXXXX)
PY=/usr/bin/python3
LAB_SH="$REPO/scripts/lab.sh"
BG_PIDS=()

if [[ -t 1 ]]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD= PLAIN=; fi
step() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$PLAIN"; }
note() { printf '    %s\n' "$*"; }

cleanup() {
    local pid
    for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    bash "$LAB_SH" down "$LAB" >/dev/null 2>&1 || true
    rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "Checking the Debian packages the project needs"
bash scripts/install-deps.sh
note "all there"

if [[ -n "${SNOOPSWITCH:-}" && -x "${SNOOPSWITCH}" ]]; then
    step "Using the snoopswitch binary $SNOOPSWITCH (SNOOPSWITCH is set; not building)"
else
    step "Building snoopswitch (swift build)"
    if ! swift build >"$RUN/build.log" 2>&1; then
        tail -n 30 "$RUN/build.log" >&2
        echo "demo.sh: swift build failed" >&2
        exit 1
    fi
    tail -n 1 "$RUN/build.log" | sed 's/^/    /'
    SNOOPSWITCH="$(swift build --show-bin-path)/snoopswitch"
    export SNOOPSWITCH
fi

# Labs left by an earlier demo that was killed (its pid is gone): remove them.
for ns in $(ip netns list | awk '{print $1}' | grep -E '^demo[0-9]+-sw$' || true); do
    old=${ns%-sw}
    kill -0 "${old#demo}" 2>/dev/null || bash "$LAB_SH" down "$old" >/dev/null 2>&1 || true
done

step "Bringing up the lab: topologies/four-hosts.topo as '$LAB'"
bash "$LAB_SH" up topologies/four-hosts.topo "$LAB" | sed 's/^lab.sh: /    /'

step "h1 joins $GROUP with a UDP socket (IP_ADD_MEMBERSHIP)"
cat >"$RUN/receiver.py" <<'PYEOF'
import socket, struct, sys, time
group, port, count, wait = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((group, port))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4si", socket.inet_aton(group), socket.inet_aton("0.0.0.0"), socket.if_nametoindex("eth0")))
print("joined", flush=True)
s.settimeout(0.2)
got, deadline = 0, time.monotonic() + wait
while got < count and time.monotonic() < deadline:
    try:
        s.recv(2048)
        got += 1
    except socket.timeout:
        pass
print(got, flush=True)
time.sleep(60)  # stay a member until the demo ends (closing the socket would leave the group)
PYEOF
bash "$LAB_SH" exec "$LAB" h1 "$PY" "$RUN/receiver.py" "$GROUP" "$PORT" "$COUNT" 20 >"$RUN/h1.out" 2>&1 &
BG_PIDS+=($!)

# Wait until the switch lists h1 as a member (it heard h1's report).
member_check='import json,sys
s=json.load(sys.stdin)
sys.exit(0 if any(g["group"]==sys.argv[1] and any(m["port"]=="h1" for m in g["members"]) for g in s["groups"]) else 1)'
for ((i = 0; i < 50; i++)); do
    if bash "$LAB_SH" status "$LAB" --json 2>/dev/null | "$PY" -c "$member_check" "$GROUP"; then break; fi
    sleep 0.1
done
((i < 50)) || { echo "demo.sh: the switch never listed h1 as a member of $GROUP" >&2; exit 1; }
note "the switch saw h1's IGMP report: port h1 is now a member of $GROUP"

step "h2 (not a member) starts a capture (tcpdump) of UDP to $GROUP on its eth0"
bash "$LAB_SH" exec "$LAB" h2 tcpdump -i eth0 -nn -l -p --immediate-mode "udp and dst host $GROUP" \
    >"$RUN/h2.tcpdump" 2>"$RUN/h2.tcpdump.err" &
BG_PIDS+=($!)
for ((i = 0; i < 50; i++)); do
    grep -q "listening on" "$RUN/h2.tcpdump.err" 2>/dev/null && break
    sleep 0.1
done

step "h4 sends $COUNT datagrams to $GROUP:$PORT"
bash "$LAB_SH" exec "$LAB" h4 "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
for i in range(int(sys.argv[3])):
    s.sendto(b"hello from h4 #%d" % i, (sys.argv[1], int(sys.argv[2])))
' "$GROUP" "$PORT" "$COUNT"

# Let the receiver finish (it stops at COUNT datagrams, or after 20 s).
for ((i = 0; i < 50; i++)); do
    [[ $(wc -l <"$RUN/h1.out") -ge 2 ]] && break
    sleep 0.1
done
sleep 0.5
received=$(sed -n 2p "$RUN/h1.out")
received=${received:-0}
captured=$(grep -c "$GROUP" "$RUN/h2.tcpdump" || true)

step "Result"
ok=1
if [[ "$received" == "$COUNT" ]]; then
    note "h1 (member):     received $received of $COUNT datagrams   ✔"
else
    note "h1 (member):     received $received of $COUNT datagrams   ✘"
    ok=0
fi
if [[ "$captured" == 0 ]]; then
    note "h2 (not member): saw $captured of them on its wire   ✔ (snooping kept them away)"
else
    note "h2 (not member): saw $captured of them on its wire   ✘ (expected 0)"
    ok=0
fi

step "snoopswitch status"
bash "$LAB_SH" status "$LAB" | sed 's/^/    /'

step "Tearing down the lab"
cleanup
trap - EXIT
note "done"
if ((ok)); then
    echo
    echo "Demo succeeded: multicast reached the member only."
else
    echo
    echo "Demo FAILED: see the results above." >&2
    exit 1
fi
