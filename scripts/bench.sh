#!/usr/bin/env bash
# Side-by-side benchmark: snoopswitch, the kernel bridge (IGMP and MLD snooping on) and Open
# vSwitch's userspace datapath, one topology, the same generator, one table.
#
#   scripts/bench.sh [--duration S] [--only SWITCHES] [--figures FIGURES] [--out FILE]
#                    [--skip-build] [--trials N] [--rounds N]
#   --only SWITCHES     snoopswitch, bridge, ovs or a comma list of them (default: all three)
#   --figures FIGURES   a comma list of the figures to measure (default: all): unicast,
#                       multicast, multicast6, tcp, hash-flood, latency, memory, cpu, lock.
#                       E.g. the IPv6 multicast figure alone, snoopswitch and the bridge only:
#                       scripts/bench.sh --figures multicast6 --only snoopswitch,bridge
#   env SNOOPSWITCH=/path/to/snoopswitch   use this binary (no build)
#   env SNOOPSWITCH_FLAGS="--nice 0"         add these flags to `snoopswitch run` (a variant)
#
# Last (figure lock), a ping through snoopswitch while the kernel fast path holds 16,384 flows
# (scripts/bench-lock.sh), as a note below the table.
#
# The frame rates (unicast, multicast, multicast6) are measured in ROUNDS rounds (default 3),
# each switch in turn in every round, and the median round is the figure: one quiet or busy
# minute of a shared machine then falls on one round of each switch, not on one switch's only
# figure.
#
# Topology, built anew for each switch: namespaces gen (generator, 192.0.2.1), r1, r2, r3
# (receivers and members, 192.0.2.11-13) and n1, n2 (hosts that join no group, 192.0.2.21-22),
# each joined by a veth pair to a switch namespace whose ends are named after the hosts (gen,
# r1, ...). r1's port is a fast-leave port. The multicast figures count the frames at every
# receiver: the members' are the figure, the non-members' show whether the switch pruned.
# IPv6 (multicast6) is enabled on the hosts' eth0 for that figure only (2001:db8::/64 and
# fe80:: addresses, group ff15::4242); the kernel bridge has a link-local address of its own
# for its MLD querier (MLDv2) from the start.
# Root only. Everything created is removed on exit, also on failure or ^C.
set -euo pipefail

usage() {
    sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

DURATION=5
ONLY=all
FIGURES=all
OUT=""
SKIP_BUILD=0
TRIALS=5
ROUNDS=3
ARGS_TEXT="$0 $*"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) DURATION="${2:?--duration needs seconds}"; shift 2 ;;
        --only) ONLY="${2:?--only needs snoopswitch, bridge, ovs or a comma list of them}"; shift 2 ;;
        --figures) FIGURES="${2:?--figures needs a comma list of figures}"; shift 2 ;;
        --out) OUT="${2:?--out needs a file}"; shift 2 ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        --trials) TRIALS="${2:?--trials needs a count}"; shift 2 ;;
        --rounds) ROUNDS="${2:?--rounds needs a count}"; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "bench.sh: unknown argument '$1'" >&2; usage 2 ;;
    esac
done
ALL_FIGURES="unicast multicast multicast6 tcp hash-flood latency memory cpu lock"
for item in ${ONLY//,/ }; do
    case "$item" in all|snoopswitch|bridge|ovs) ;; *) echo "bench.sh: --only takes snoopswitch, bridge, ovs or a comma list of them" >&2; exit 2 ;; esac
done
for item in ${FIGURES//,/ }; do
    [[ "$item" == all || " $ALL_FIGURES " == *" $item "* ]] \
        || { echo "bench.sh: --figures takes a comma list of: $ALL_FIGURES (or all)" >&2; exit 2; }
done
[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -ge 1 ]] || { echo "bench.sh: --duration takes whole seconds (>= 1)" >&2; exit 2; }
[[ "$TRIALS" =~ ^[0-9]+$ && "$TRIALS" -ge 1 ]] || { echo "bench.sh: --trials takes a count (>= 1)" >&2; exit 2; }
[[ "$ROUNDS" =~ ^[0-9]+$ && "$ROUNDS" -ge 1 ]] || { echo "bench.sh: --rounds takes a count (>= 1)" >&2; exit 2; }
[[ $EUID -eq 0 ]] || { echo "bench.sh: needs root (namespaces, veth, packet sockets)" >&2; exit 1; }
if [[ -n "$OUT" ]]; then OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"; fi

REPO="$(cd "$(dirname "$0")/.." && pwd)"
HELPER="$REPO/scripts/bench-helper.py"
PY=/usr/bin/python3                     # Debian's, not a pyenv shim
export PATH="/opt/swift/usr/bin:$PATH:/usr/sbin:/sbin"

wants() { [[ ",$ONLY," == *,all,* || ",$ONLY," == *",$1,"* ]]; }            # wants SWITCH
figure() { [[ ",$FIGURES," == *,all,* || ",$FIGURES," == *",$1,"* ]]; }      # figure NAME
any_figure() { local f; for f in "$@"; do figure "$f" && return 0; done; return 1; }
log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

# ------------------------------------------------------------------ state and cleanup

ID="ssb$$"
TMP="$(mktemp -d /tmp/snoopswitch-bench.XXXXXX)"
RESULTS="$TMP/results"
: > "$RESULTS"
NAMESPACES=()          # every namespace this run created
PGROUPS=()             # process groups started with setsid (generators, joiners, servers)
SWITCH_PID=""          # snoopswitch
SNOOPSWITCH_NOTED=""   # its flags are noted once
OVSDIR=""              # private OVS run/db/log folder while OVS runs
OVS_STARTS=0

kill_group() {          # kill_group PGID [SIGNAL]: a process group this script started
    local pg="$1" sig="${2:-TERM}"
    kill -s "$sig" -- "-$pg" 2>/dev/null || true
}

stop_ovs_daemons() {
    [[ -n "$OVSDIR" && -d "$OVSDIR" ]] || return 0
    local name pid
    for name in ovs-vswitchd ovsdb-server; do
        if [[ -S "$OVSDIR/$name.ctl" ]]; then
            timeout 5 ovs-appctl -t "$OVSDIR/$name.ctl" exit >/dev/null 2>&1 || true
        fi
        if [[ -f "$OVSDIR/$name.pid" ]]; then
            pid="$(cat "$OVSDIR/$name.pid" 2>/dev/null || true)"
            if [[ -n "$pid" ]]; then
                for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
                kill -TERM "$pid" 2>/dev/null || true
                sleep 0.2
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
    done
    OVSDIR=""
}

stop_processes() {
    local pg
    for pg in "${PGROUPS[@]}"; do kill_group "$pg" INT; done
    if [[ ${#PGROUPS[@]} -gt 0 ]]; then sleep 0.3; fi
    for pg in "${PGROUPS[@]}"; do kill_group "$pg" KILL; done
    PGROUPS=()
    if [[ -n "$SWITCH_PID" ]]; then
        kill -TERM "$SWITCH_PID" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$SWITCH_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$SWITCH_PID" 2>/dev/null || true
        wait "$SWITCH_PID" 2>/dev/null || true
        SWITCH_PID=""
    fi
    stop_ovs_daemons
}

delete_namespaces() {
    local ns
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    NAMESPACES=()
}

cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    stop_processes
    delete_namespaces
    if [[ "${BENCH_KEEP:-0}" == 1 ]]; then log "logs kept in $TMP"; else rm -rf "$TMP"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Background command in its own process group (so that it and its children stop together).
spawn() {               # spawn LOGFILE CMD...: sets SPAWNED
    setsid "${@:2}" > "$1" 2>&1 < /dev/null &
    SPAWNED=$!
    PGROUPS+=("$SPAWNED")
}

unspawn() {             # unspawn PGID: stop one spawned group (INT first: trafgen prints and exits)
    local pg="$1" keep=() p
    kill_group "$pg" INT
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pg" 2>/dev/null || break; sleep 0.1; done
    kill_group "$pg" KILL
    wait "$pg" 2>/dev/null || true
    for p in "${PGROUPS[@]}"; do [[ "$p" == "$pg" ]] || keep+=("$p"); done
    PGROUPS=("${keep[@]+"${keep[@]}"}")
}

# Runs a command to its end like a foreground one, but as a spawned group that the script
# waits for: a TERM or ^C then acts at once (bash defers traps until a foreground command
# ends), and cleanup stops it. Output goes to LOGFILE; sets WAITED to the exit status.
run_waited() {          # run_waited LOGFILE CMD...
    spawn "$@"
    WAITED=0
    wait "$SPAWNED" || WAITED=$?
    unspawn "$SPAWNED"
}

record() { echo "val|$1|$2|$3" >> "$RESULTS"; }        # record COLUMN KEY VALUE
note() { echo "note|$*" >> "$RESULTS"; log "note: $*"; }

# ------------------------------------------------------------------ packages and build

install_packages() {
    local need=() ovs_need=()
    command -v trafgen >/dev/null || need+=(netsniff-ng)
    command -v iperf3 >/dev/null || need+=(iperf3)
    [[ -x "$PY" ]] || need+=(python3)
    command -v ip >/dev/null && command -v bridge >/dev/null || need+=(iproute2)
    command -v ping >/dev/null || need+=(iputils-ping)
    command -v taskset >/dev/null && command -v setsid >/dev/null || need+=(util-linux)
    command -v timeout >/dev/null || need+=(coreutils)
    if wants snoopswitch && [[ -z "${SNOOPSWITCH:-}" && $SKIP_BUILD == 0 ]]; then
        local pkg
        for pkg in libnl-3-dev libnl-route-3-dev pkg-config; do
            dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
        done
    fi
    if wants ovs; then
        command -v ovs-vswitchd >/dev/null && command -v ovsdb-server >/dev/null && command -v ovs-vsctl >/dev/null \
            || ovs_need+=(openvswitch-switch)
    fi
    if [[ ${#need[@]} -gt 0 || ${#ovs_need[@]} -gt 0 ]]; then
        log "installing missing Debian packages: ${need[*]} ${ovs_need[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    fi
    if [[ ${#need[@]} -gt 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2
    fi
    if [[ ${#ovs_need[@]} -gt 0 ]]; then
        # A failure here only costs the OVS column. On a machine with an init system this
        # package may start the system's own OVS daemons: this script never talks to them
        # (private database, sockets and run folder; vswitchd in our namespace) and leaves them be.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${ovs_need[@]}" >&2 \
            || log "openvswitch-switch could not be installed: the OVS column will read n/a"
    fi
}

BIN=""
build_snoopswitch() {
    if [[ -n "${SNOOPSWITCH:-}" ]]; then
        BIN="$SNOOPSWITCH"
    elif [[ $SKIP_BUILD == 1 ]]; then
        BIN="$REPO/.build/release/snoopswitch"
    else
        log "building the release binary (swift build -c release)"
        (cd "$REPO" && swift build -c release >&2)
        BIN="$(cd "$REPO" && swift build -c release --show-bin-path)/snoopswitch"
    fi
    [[ -x "$BIN" ]] || { echo "bench.sh: no snoopswitch binary at $BIN" >&2; exit 1; }
}

# ------------------------------------------------------------------ topology

HOSTS=(gen r1 r2 r3 n1 n2)
RECEIVERS=(r1 r2 r3 n1 n2)      # every host but the generator: members r1-r3, non-members n1, n2
declare -A IP=([gen]=192.0.2.1 [r1]=192.0.2.11 [r2]=192.0.2.12 [r3]=192.0.2.13 [n1]=192.0.2.21 [n2]=192.0.2.22)
declare -A MAC=([gen]=02:00:00:00:00:01 [r1]=02:00:00:00:00:11 [r2]=02:00:00:00:00:12 [r3]=02:00:00:00:00:13
                [n1]=02:00:00:00:00:21 [n2]=02:00:00:00:00:22)
# IPv6, for the multicast6 figure only: a global and a link-local address for each host (no
# duplicate address detection: usable at once), given when the figure starts.
declare -A IP6=([gen]=2001:db8::1 [r1]=2001:db8::11 [r2]=2001:db8::12 [r3]=2001:db8::13 [n1]=2001:db8::21 [n2]=2001:db8::22)
declare -A LL6=([gen]=fe80::1 [r1]=fe80::11 [r2]=fe80::12 [r3]=fe80::13 [n1]=fe80::21 [n2]=fe80::22)
BRIDGE_LL6=fe80::fe             # the kernel bridge's own address, the source of its MLD queries
SW="$ID-sw"
ns() { echo "$ID-$1"; }

setup_topology() {
    local h n
    for n in sw "${HOSTS[@]}"; do
        ip netns add "$ID-$n"
        NAMESPACES+=("$ID-$n")
        ip netns exec "$ID-$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        ip -n "$ID-$n" link set lo up
    done
    for h in "${HOSTS[@]}"; do
        ip -n "$SW" link add "$h" type veth peer name eth0 netns "$(ns "$h")"
        ip -n "$(ns "$h")" link set eth0 address "${MAC[$h]}"
        ip -n "$(ns "$h")" addr add "${IP[$h]}/24" dev eth0
        ip -n "$(ns "$h")" link set eth0 up
        ip -n "$SW" link set "$h" up
    done
}

teardown_topology() { delete_namespaces; }

# IPv6 on the hosts' eth0 (the namespaces were made with IPv6 off, so that the IPv4 figures see
# no neighbour discovery or MLD): fixed addresses without DAD, so that the first MLD report
# already leaves from the link-local address (a report from :: is one the bridge ignores).
enable_ipv6_hosts() {
    local h n
    for h in "${HOSTS[@]}"; do
        n="$(ns "$h")"
        ip -n "$n" link set eth0 addrgenmode none || return 1
        ip netns exec "$n" sysctl -qw net.ipv6.conf.eth0.disable_ipv6=0 || return 1
        ip -n "$n" -6 addr add "${LL6[$h]}/64" dev eth0 nodad || return 1
        ip -n "$n" -6 addr add "${IP6[$h]}/64" dev eth0 nodad || return 1
    done
}

counter() {             # counter HOST rx|tx: packets on the host's eth0
    ip netns exec "$(ns "$1")" cat "/sys/class/net/eth0/statistics/${2}_packets"
}

now_ns() { date +%s%N; }

# trafgen config: one 64-byte IPv4/UDP frame (without FCS), sent by the CPU 1 worker only
# (PREFIX "cpu(1):"), or by whichever worker runs (PREFIX "": trafgen's --gap mode runs one).
trafgen_config() {      # trafgen_config DSTMAC DSTIP [PREFIX]
    local mac ip prefix="${3-cpu(1):}"
    mac="$(echo "$1" | sed 's/\([0-9a-f][0-9a-f]\)/0x\1/g; s/:/, /g')"
    ip="${2//./, }"
    cat <<EOF
$prefix {
  $mac,  0x02, 0x00, 0x00, 0x00, 0x00, 0x01,  c16(0x0800),
  0x45, 0x00, c16(50), c16(0), c16(0), 16, 17, csumip(14, 33),
  192, 0, 2, 1,  $ip,
  c16(4000), c16(9), c16(30), c16(0),
  fill(0x00, 22)
}
EOF
}

# trafgen config: the same 64-byte frame over IPv6 (14 + 40 + 8 + 2 bytes), from 2001:db8::1,
# hop limit 16 as the IPv4 frame's TTL, UDP checksum filled in (IPv6 requires one).
trafgen_config6() {     # trafgen_config6 DSTMAC DSTIP6 [PREFIX]
    local mac dst src prefix="${3-cpu(1):}"
    mac="$(echo "$1" | sed 's/\([0-9a-f][0-9a-f]\)/0x\1/g; s/:/, /g')"
    dst="$("$PY" "$HELPER" ipv6-bytes "$2")"
    src="$("$PY" "$HELPER" ipv6-bytes "${IP6[gen]}")"
    cat <<EOF
$prefix {
  $mac,  0x02, 0x00, 0x00, 0x00, 0x00, 0x01,  c16(0x86dd),
  0x60, 0x00, 0x00, 0x00, c16(10), 17, 16,
  $src,
  $dst,
  c16(4000), c16(9), c16(10), csumudp6(14, 54),
  fill(0x00, 2)
}
EOF
}

# Starts trafgen in the generator namespace: one worker, pinned to CPU 1 by trafgen itself.
# trafgen pins worker i to CPU i whatever taskset says (`taskset -c 1 trafgen --cpus 1` runs
# on CPU 0), so it starts two workers and the config gives the frame to the CPU 1 one only;
# the other has nothing to send and exits.
start_trafgen() {       # start_trafgen CONFIG LOG [extra trafgen args]: sets SPAWNED
    spawn "$2" ip netns exec "$(ns gen)" trafgen --cpus 2 --no-sock-mem --notouch-irq --no-cpu-stats \
        --dev eth0 --conf "$1" "${@:3}"
}

# ------------------------------------------------------------------ the switches

SOCK=""
start_snoopswitch() {
    SOCK="$TMP/snoopswitch.sock"
    rm -f "$SOCK" || return 1
    # The memory figure has one host report 100,000 groups: the limits that would refuse such a
    # host (16,384 groups a port, 1,000 IGMP messages a second) are raised for the measurement.
    # In its own session, as a service manager starts it (ovs-vswitchd --detach, trafgen and
    # iperf3 here have theirs too): where the kernel groups tasks by session, it then ranks
    # its own group by its nice value instead of sharing the bench script's.
    setsid ip netns exec "$SW" "$BIN" run --port gen --port r1:fast-leave --port r2 --port r3 --port n1 --port n2 \
        --querier --querier-address 192.0.2.254 --control "$SOCK" --log-level warning \
        --max-groups-per-port 131072 --max-groups-per-vlan 131072 --max-macs-per-port 16384 --igmp-rate 1000000 ${SNOOPSWITCH_FLAGS:-} \
        > "$TMP/snoopswitch.log" 2>&1 < /dev/null &
    SWITCH_PID=$!
    if [[ -z "$SNOOPSWITCH_NOTED" ]]; then   # once, not at every round's start
        SNOOPSWITCH_NOTED=1
        [[ -n "${SNOOPSWITCH_FLAGS:-}" ]] && note "snoopswitch ran with SNOOPSWITCH_FLAGS: ${SNOOPSWITCH_FLAGS}, otherwise as below"
        note "snoopswitch ran with its defaults, in its own session: $(( $(nproc) < 4 ? $(nproc) : 4 )) forwarding threads (one per CPU, at most 4) at nice -10, each bound to a CPU whose flows it does not take (a port's flows are shared among the threads by the CPU their first frame arrives on: the generator's CPU 1 is served by the thread on CPU 0, and the excess rolls over to the other), a 1 MiB receive ring per packet socket, the ports' frames kept from the switch namespace's IP stack, the kernel fast path on for flows with frames of 1,024 bytes or more and their way back (TCP: the kernel forwards the stream after its first frames; the 64-byte unicast and the multicast frames go through the switch's threads), egress replication on (a multicast frame leaves the switch once, on one member's port, and the kernel clones it to the other two)"
    fi
    local i
    for i in $(seq 1 200); do
        [[ -S "$SOCK" ]] && return 0
        kill -0 "$SWITCH_PID" 2>/dev/null || break
        sleep 0.1
    done
    log "snoopswitch did not come up: $(tail -3 "$TMP/snoopswitch.log" 2>/dev/null)"
    return 1
}

start_bridge() {
    # Timers first, querier in a second command (TOOLING.md). Unregistered groups go to router
    # ports only (mcast_flood off), as snoopswitch does by default; r1 is a fast-leave port.
    # MLD snooping: MLDv2 queries (it sends MLDv1 ones otherwise), and IPv6 on br0 itself, a
    # link-local address without DAD before br0 comes up: the bridge's MLD querier sends from it,
    # and without one it has no IPv6 querier (LINUX-DATAPATH.md).
    # (Called from an `if`, where set -e does not act: every step checks its own status.)
    ip -n "$SW" link add br0 type bridge mcast_snooping 1 mcast_mld_version 2 mcast_query_response_interval 100 \
        mcast_startup_query_interval 100 mcast_last_member_interval 100 || return 1
    ip -n "$SW" link set br0 type bridge mcast_querier 1 || return 1
    ip -n "$SW" link set br0 addrgenmode none || return 1
    ip netns exec "$SW" sysctl -qw net.ipv6.conf.br0.disable_ipv6=0 || return 1
    ip -n "$SW" -6 addr add "$BRIDGE_LL6/64" dev br0 nodad || return 1
    local h
    for h in "${HOSTS[@]}"; do
        ip -n "$SW" link set "$h" master br0 || return 1
        bridge -n "$SW" link set dev "$h" mcast_flood off || return 1
    done
    bridge -n "$SW" link set dev r1 fastleave on || return 1
    ip -n "$SW" link set br0 up || return 1
    sleep 1.5       # past the query response interval: the bridge has its querier
}

OVS_BR=ssbr0
vsctl() { ovs-vsctl --db="unix:$OVSDIR/db.sock" --timeout=20 "$@"; }
start_ovs() {
    command -v ovs-vswitchd >/dev/null || { log "Open vSwitch is not installed"; return 1; }
    OVS_STARTS=$((OVS_STARTS + 1))          # a fresh database and run folder for each start
    OVSDIR="$TMP/ovs-$OVS_STARTS"
    mkdir -p "$OVSDIR" || return 1
    export OVS_RUNDIR="$OVSDIR" OVS_LOGDIR="$OVSDIR" OVS_DBDIR="$OVSDIR"
    local schema=/usr/share/openvswitch/vswitch.ovsschema
    # (Called from an `if`, where set -e does not act: every step checks its own status.)
    ovsdb-tool create "$OVSDIR/conf.db" "$schema" >&2 || return 1
    ip netns exec "$SW" ovsdb-server "$OVSDIR/conf.db" --remote="punix:$OVSDIR/db.sock" \
        --pidfile="$OVSDIR/ovsdb-server.pid" --unixctl="$OVSDIR/ovsdb-server.ctl" \
        --log-file="$OVSDIR/ovsdb-server.log" --detach --no-chdir > "$OVSDIR/ovsdb-server.out" 2>&1 || return 1
    vsctl --no-wait init || return 1
    ip netns exec "$SW" ovs-vswitchd "unix:$OVSDIR/db.sock" --disable-system \
        --pidfile="$OVSDIR/ovs-vswitchd.pid" --unixctl="$OVSDIR/ovs-vswitchd.ctl" \
        --log-file="$OVSDIR/ovs-vswitchd.log" --detach --no-chdir > "$OVSDIR/ovs-vswitchd.out" 2>&1 || return 1
    vsctl add-br "$OVS_BR" -- set bridge "$OVS_BR" datapath_type=netdev mcast_snooping_enable=true \
        other_config:mcast-snooping-disable-flood-unregistered=true || return 1
    local h
    for h in "${HOSTS[@]}"; do vsctl add-port "$OVS_BR" "$h" || return 1; done
    ip -n "$SW" link set "$OVS_BR" up 2>/dev/null || true
    sleep 1
}

switch_pid() {          # the process whose CPU and memory count, or nothing
    case "$1" in
        snoopswitch) echo "$SWITCH_PID" ;;
        ovs) [[ -f "$OVSDIR/ovs-vswitchd.pid" ]] && cat "$OVSDIR/ovs-vswitchd.pid" ;;
        *) ;;
    esac
}

members() {             # members KIND GROUP: members the switch itself shows for GROUP
    case "$1" in
        snoopswitch) ip netns exec "$SW" "$BIN" status --control "$SOCK" --json 2>/dev/null | "$PY" "$HELPER" members snoopswitch "$2" ;;
        bridge) bridge -n "$SW" -j mdb show dev br0 2>/dev/null | "$PY" "$HELPER" members bridge "$2" ;;
        ovs) ovs-appctl -t "$OVSDIR/ovs-vswitchd.ctl" mdb/show "$OVS_BR" 2>/dev/null | "$PY" "$HELPER" members ovs "$2" ;;
    esac
}

# ------------------------------------------------------------------ measurements

warm_up() {             # every receiver talks to the generator: MAC tables learn, ARP resolves
    local h ok=1
    for h in "${RECEIVERS[@]}"; do
        ip netns exec "$(ns "$h")" ping -q -c 2 -i 0.2 -W 2 "${IP[gen]}" >/dev/null 2>&1 || ok=0
    done
    [[ $ok == 1 ]] || note "$1: a warm-up ping from a receiver to the generator failed"
    sleep 0.5
}

thousands() { echo "$1" | rev | sed 's/\([0-9]\{3\}\)/\1,/g; s/,$//' | rev; }

# Rate of a trafgen run: frames delivered at the receivers and sent by the generator, over
# DURATION seconds of steady sending (the first second is not counted). An IPv6 DSTIP sends
# the IPv6 frame. Every receiver's count (rx_packets on its eth0: the generator's frames and
# the few control frames of the run) is left in COUNTS_TEXT, the addressed ones first, and
# COUNTS_PROBLEM says when a non-addressed receiver got frames (more than 100) or an addressed
# one got none (fewer than 100); the frames of the non-addressed ones are recorded as KEY's
# _stray figure (frames/s).
COUNTS_TEXT=""
COUNTS_PROBLEM=""
measure_rate() {        # measure_rate KIND KEY DSTMAC DSTIP RECEIVERS...
    local kind="$1" key="$2" cfg="$TMP/$2.cfg" receivers=("${@:5}") h pg
    if [[ "$4" == *:* ]]; then trafgen_config6 "$3" "$4" > "$cfg"; else trafgen_config "$3" "$4" > "$cfg"; fi
    start_trafgen "$cfg" "$TMP/$kind-$key-trafgen.log"
    pg=$SPAWNED
    sleep 1
    local t0 g0 t1 g1 delivered=0 stray=0 d addressed="" others="" missing="" flooded=""
    declare -A r0=() r1c=()
    for h in "${RECEIVERS[@]}"; do r0[$h]=$(counter "$h" rx); done
    g0=$(counter gen tx); t0=$(now_ns)
    sleep "$DURATION"
    g1=$(counter gen tx); t1=$(now_ns)
    for h in "${RECEIVERS[@]}"; do r1c[$h]=$(counter "$h" rx); done
    unspawn "$pg"
    COUNTS_TEXT=""
    COUNTS_PROBLEM=""
    if [[ $((g1 - g0)) -eq 0 ]]; then
        note "$kind: trafgen sent nothing ($(tail -2 "$TMP/$kind-$key-trafgen.log" | tr '\n' ' '))"
        record "$kind" "$key" n/a
        COUNTS_TEXT="trafgen sent nothing"
        COUNTS_PROBLEM="no frames sent"
        return
    fi
    for h in "${RECEIVERS[@]}"; do
        d=$((r1c[$h] - r0[$h]))
        if [[ " ${receivers[*]} " == *" $h "* ]]; then
            delivered=$((delivered + d))
            addressed+="${addressed:+, }$h $(thousands "$d")"
            [[ $d -ge 100 ]] || missing+="${missing:+, }$h"
        else
            stray=$((stray + d))
            others+="${others:+, }$h $(thousands "$d")"
            [[ $d -le 100 ]] || flooded+="${flooded:+, }$h"
        fi
    done
    COUNTS_TEXT="addressed: $addressed; others: $others"
    [[ -z "$flooded" ]] || COUNTS_PROBLEM="FLOODED: $flooded got the frames too"
    [[ -z "$missing" ]] || COUNTS_PROBLEM+="${COUNTS_PROBLEM:+; }NOTHING ARRIVED at $missing"
    local seconds
    seconds=$("$PY" -c "print(($t1 - $t0) / 1e9)")
    record "$kind" "$key" "$("$PY" -c "print($delivered / $seconds)")"
    record "$kind" "${key%_rate}_gen" "$("$PY" -c "print(($g1 - $g0) / $seconds)")"
    record "$kind" "${key%_rate}_stray" "$("$PY" -c "print($stray / $seconds)")"
    if [[ $stray -gt 100 ]]; then
        note "$kind: $key: $stray frames also reached receivers that were not addressed (flooded), not counted"
    fi
}

measure_unicast() { measure_rate "$1" uc_rate "${MAC[r1]}" "${IP[r1]}" r1; }

# Members join GROUP by socket (IP_ADD_MEMBERSHIP or IPV6_JOIN_GROUP) and hold it; the rate is
# measured once the switch shows the 3 members, or after WAIT seconds in any case. JOINERS
# holds their process groups.
JOINERS=()
join_members() {        # join_members KIND GROUP WAIT
    local kind="$1" group="$2" h n=0 i
    JOINERS=()
    for h in r1 r2 r3; do
        spawn "$TMP/$kind-join-$h.log" ip netns exec "$(ns "$h")" "$PY" "$HELPER" hold-join eth0 "$group"
        JOINERS+=("$SPAWNED")
    done
    for i in $(seq 1 $(( $3 * 5 ))); do
        n=$(members "$kind" "$group" 2>/dev/null || true)
        [[ "$n" =~ ^[0-9]+$ ]] || n=0
        [[ "$n" -ge 3 ]] && break
        sleep 0.2
    done
    if [[ "$n" -lt 3 ]]; then
        note "$kind: only $n of 3 members of $group shown by the switch after $3 s; multicast rate measured anyway"
    fi
}

# Per switch and figure, one line of every round's counts at the receivers, noted after the
# rounds: COUNT_NOTES[KIND|FIGURE].
declare -A COUNT_NOTES=()
keep_counts() {         # keep_counts KIND FIGURE ROUND
    COUNT_NOTES["$1|$2"]+="${COUNT_NOTES["$1|$2"]:+; }round $3: ${COUNTS_TEXT}${COUNTS_PROBLEM:+ (${COUNTS_PROBLEM})}"
    [[ -z "$COUNTS_PROBLEM" ]] || log "$1: $2, round $3: $COUNTS_PROBLEM ($COUNTS_TEXT)"
}

measure_multicast() {   # measure_multicast KIND ROUND
    local kind="$1" group=239.1.1.1 i
    join_members "$kind" "$group" 20
    measure_rate "$kind" mc_rate 01:00:5e:01:01:01 "$group" r1 r2 r3
    keep_counts "$kind" multicast "$2"
    if [[ "$kind" == snoopswitch && -z "${CLONES_NOTED:-}" ]]; then
        CLONES_NOTED=1
        note "snoopswitch: after the first multicast run: $(ip netns exec "$SW" "$BIN" status --control "$SOCK" --json 2>/dev/null \
            | "$PY" -c 'import json,sys; d=json.load(sys.stdin)["datapath"]; print("egress replication on %d ports, %d frames cloned by the kernel" % (d["replicating_ports"], d["cloned_frames"]))' 2>/dev/null || echo "no status")"
    fi
    for i in "${JOINERS[@]}"; do unspawn "$i"; done
}

cloned_frames() {       # snoopswitch's count of frames cloned by egress replication, or nothing
    ip netns exec "$SW" "$BIN" status --control "$SOCK" --json 2>/dev/null \
        | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["datapath"]["cloned_frames"])' 2>/dev/null || true
}

# The IPv4 figure over IPv6: the same generator, frame size and members, to ff15::4242
# (33:33:00:00:42:42; any-source, outside the SSM range ff3x::/32), joined with MLDv2 reports
# from the members' link-local addresses. The switches' reports are waited for 5 s at most: the
# members send theirs at the join.
MC6_GROUP=ff15::4242
measure_multicast6() {  # measure_multicast6 KIND ROUND
    local kind="$1" i
    if ! enable_ipv6_hosts; then
        note "$kind: IPv6 could not be enabled on the hosts; IPv6 multicast not measured"
        record "$kind" mc6_rate n/a
        return
    fi
    join_members "$kind" "$MC6_GROUP" 5
    local clones0=""
    [[ "$kind" != snoopswitch || -n "${CLONES6_NOTED:-}" ]] || clones0=$(cloned_frames)
    measure_rate "$kind" mc6_rate 33:33:00:00:42:42 "$MC6_GROUP" r1 r2 r3
    keep_counts "$kind" multicast6 "$2"
    if [[ -n "$clones0" ]]; then
        CLONES6_NOTED=1
        local clones1
        clones1=$(cloned_frames)
        note "snoopswitch: during the first IPv6 multicast run: $([[ -n "$clones1" ]] && echo "$((clones1 - clones0)) frames cloned by the kernel (egress replication)" || echo "no status")"
    fi
    for i in "${JOINERS[@]}"; do unspawn "$i"; done
}

# One TCP figure is the median of TCP_RUNS iperf3 runs: a single run of the kernel bridge
# moved between 14 and 27 Gbit/s on the 2-core machine (where the scheduler put client and
# server), ours less; the median keeps one lucky or unlucky placement from setting the ratio.
TCP_RUNS=3

TCP_GBPS=""
tcp_once() {            # tcp_once KIND RUN: one iperf3 run; sets TCP_GBPS (empty and a note on failure)
    local kind="$1" pg out="$TMP/$1-iperf3-$2.json" rc=0
    TCP_GBPS=""
    spawn "$TMP/$kind-iperf3-server.log" ip netns exec "$(ns r1)" iperf3 -s -1 -p 5201
    pg=$SPAWNED
    sleep 0.5
    run_waited "$out" ip netns exec "$(ns gen)" timeout $((DURATION + 20)) iperf3 -c "${IP[r1]}" -p 5201 \
        -t "$DURATION" --connect-timeout 3000 -J
    rc=$WAITED
    unspawn "$pg"
    local bps error
    error=$("$PY" -c '
import json, sys
try:
    print(json.load(open(sys.argv[1])).get("error", ""))
except Exception:
    print("")' "$out")
    bps=$("$PY" -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    print(d["end"]["sum_received"]["bits_per_second"])
except Exception:
    print("")' "$out")
    if [[ -n "$bps" ]]; then
        TCP_GBPS=$("$PY" -c "print($bps / 1e9)")
        [[ $rc == 0 ]] || note "$kind: iperf3 exited with status $rc"
    elif [[ $rc == 124 ]]; then
        note "$kind: TCP stalled: iperf3 got no result in $((DURATION + 20)) s (recorded as 0)"
    else
        note "$kind: TCP failed (recorded as 0): iperf3 status $rc${error:+: $error}"
    fi
}

measure_tcp() {
    local kind="$1" run runs=()
    for run in $(seq 1 "$TCP_RUNS"); do
        tcp_once "$kind" "$run"
        [[ -n "$TCP_GBPS" ]] || { record "$kind" tcp 0; return; }   # a failed run: no figure
        runs+=("$TCP_GBPS")
    done
    record "$kind" tcp "$(printf '%s\n' "${runs[@]}" | sort -g | sed -n "$(( (TCP_RUNS + 1) / 2 ))p")"
    note "$kind: TCP over $TCP_RUNS runs of $DURATION s, Gbit/s: $(printf '%.2f ' "${runs[@]}")(the median is the figure)"
    if [[ "$kind" == snoopswitch ]]; then
        note "snoopswitch: after the TCP runs: $(ip netns exec "$SW" "$BIN" status --control "$SOCK" --json 2>/dev/null \
            | "$PY" -c 'import json,sys; d=json.load(sys.stdin)["datapath"]; print("kernel fast path on %d ports, %d unicast flows in the kernel" % (d["fast_path_ports"], d["kernel_flows"]))' 2>/dev/null || echo "no status")"
    fi
}

measure_latency() {
    local kind="$1" group=239.10.10.10 cfg="$TMP/latency.cfg" pg json
    trafgen_config 01:00:5e:0a:0a:0a "$group" "" > "$cfg"
    spawn "$TMP/$kind-latency-trafgen.log" ip netns exec "$(ns gen)" trafgen --cpus 1 --no-sock-mem \
        --notouch-irq --no-cpu-stats --dev eth0 --conf "$cfg" --gap 100us
    pg=$SPAWNED
    sleep 0.5
    run_waited "$TMP/$kind-latency.out" ip netns exec "$(ns r1)" "$PY" "$HELPER" latency eth0 "$group" --trials "$TRIALS"
    json=$(grep '^{' "$TMP/$kind-latency.out" || true)
    unspawn "$pg"
    if [[ -z "$json" ]]; then
        note "$kind: latency helper failed: $(tail -2 "$TMP/$kind-latency.out" | tr '\n' ' ')"
        record "$kind" join_ms n/a; record "$kind" leave_ms n/a
        return
    fi
    "$PY" - "$kind" "$json" >> "$RESULTS" <<'EOF'
import json, sys
kind, doc = sys.argv[1], json.loads(sys.argv[2])
for key in ("join_ms", "leave_ms"):
    median = doc[key + "_median"]
    print(f"val|{kind}|{key}|{'' if median is None else median}")
    if doc[key]:
        print(f"note|{kind}: {key} over {len(doc[key])} trials: " + ", ".join(f"{v:.3f}" for v in doc[key]))
for problem in doc["problems"]:
    print(f"note|{kind}: {problem}")
EOF
}

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# The figure is read before each status request: a 100,000-group status document is built in
# memory by the switch, and what it costs is noted apart.
measure_memory() {      # snoopswitch only: RSS with 100,000 groups learned
    local count=100000 n=0 round before i rss=""
    before=$(rss_mib "$SWITCH_PID")
    for round in 1 2 3; do
        run_waited "$TMP/reports.log" ip netns exec "$(ns r3)" "$PY" "$HELPER" reports eth0 "$count" 239.100.0.0 "${IP[r3]}"
        sleep 1
        for i in $(seq 1 20); do
            rss=$(rss_mib "$SWITCH_PID")
            n=$(ip netns exec "$SW" timeout 60 "$BIN" status --control "$SOCK" --json 2>/dev/null | "$PY" "$HELPER" groups 2>/dev/null || true)
            [[ "$n" =~ ^[0-9]+$ ]] || n=0
            [[ "$n" -ge "$count" ]] && break
            sleep 1
        done
        [[ "$n" -ge "$count" ]] && break
        log "snoopswitch learned $n of $count groups; sending the reports again"
    done
    record snoopswitch mem_mib "$rss"
    note "snoopswitch: memory figure with $n groups learned (IGMPv2 reports for $count groups sent from r3); RSS before them: $before MiB, after serving the $n-group status document: $(rss_mib "$SWITCH_PID") MiB"
}

# A hostile host (r3) sends one frame from each of 8,192 source MACs crafted to land in one
# slot of the first version's MAC table hash (scripts/colliding-macs.py); the unicast rate from
# the generator to r1 is measured before and after they are learned.
measure_hash_flood() {  # measure_hash_flood KIND
    local kind="$1" macs="$TMP/colliding-macs.txt" sent
    "$PY" "$REPO/scripts/colliding-macs.py" 8192 1 > "$macs"
    measure_rate "$kind" hf_before_rate "${MAC[r1]}" "${IP[r1]}" r1
    sent=$(ip netns exec "$(ns r3)" "$PY" "$HELPER" source-macs eth0 "$macs")
    sleep 1
    measure_rate "$kind" hf_after_rate "${MAC[r1]}" "${IP[r1]}" r1
    local before after
    before=$(awk -F'|' -v k="$kind" '$2 == k && $3 == "hf_before_rate" { v = $4 } END { print v }' "$RESULTS")
    after=$(awk -F'|' -v k="$kind" '$2 == k && $3 == "hf_after_rate" { v = $4 } END { print v }' "$RESULTS")
    if [[ -n "$before" && -n "$after" && "$before" != n/a && "$after" != n/a ]]; then
        record "$kind" hash_flood "$("$PY" -c "print(100.0 * $after / $before)")"
        note "$kind: hash flood: $sent frames from colliding source MACs; unicast $("$PY" -c "print(f'{$before:,.0f}')") frames/s before, $("$PY" -c "print(f'{$after:,.0f}')") after"
    else
        record "$kind" hash_flood n/a
    fi
}

measure_cpu() {
    local kind="$1" pid
    pid=$(switch_pid "$kind")
    if [[ -z "$pid" ]]; then record "$kind" cpu_idle n/a; return; fi
    sleep 1
    record "$kind" cpu_idle "$("$PY" "$HELPER" cpu "$pid" "$DURATION")"
}

bring_up() {            # bring_up KIND: topology, switch, warm-up; fails (and cleans up) if the switch does not start
    setup_topology
    if ! "start_$1"; then
        note "$1: could not be started, not measured (see the log above)"
        stop_processes
        teardown_topology
        return 1
    fi
    warm_up "$1"
}

bring_down() {
    if [[ "$1" == snoopswitch ]] && ! kill -0 "$SWITCH_PID" 2>/dev/null; then
        note "snoopswitch exited during the run: $(tail -3 "$TMP/snoopswitch.log" | tr '\n' ' ')"
    fi
    stop_processes
    teardown_topology
}

run_rates() {           # run_rates KIND ROUND: one round of the frame-rate figures
    log "== $1: frame rates, round $2 of $ROUNDS"
    bring_up "$1" || return 0
    if figure unicast; then
        log "$1: unicast rate"
        measure_unicast "$1"
    fi
    if figure multicast; then
        log "$1: multicast rate"
        measure_multicast "$1" "$2"
    fi
    if figure multicast6; then    # last: it turns IPv6 on in the hosts
        log "$1: IPv6 multicast rate"
        measure_multicast6 "$1" "$2"
    fi
    bring_down "$1"
}

run_switch() {          # run_switch KIND: every other figure
    local kind="$1"
    any_figure cpu tcp hash-flood latency || { [[ "$kind" == snoopswitch ]] && figure memory; } || return 0
    log "== $kind"
    bring_up "$kind" || return 0
    if figure cpu; then
        log "$kind: CPU with no traffic ($DURATION s)"
        measure_cpu "$kind"
    fi
    if figure tcp; then
        log "$kind: TCP"
        measure_tcp "$kind"
    fi
    if figure hash-flood; then
        log "$kind: unicast with 8,192 colliding source MACs learned"
        measure_hash_flood "$kind"
    fi
    if figure latency; then
        log "$kind: join and leave latency ($TRIALS trials)"
        measure_latency "$kind"
    fi
    if [[ "$kind" == snoopswitch ]] && figure memory; then
        log "$kind: memory with 100,000 groups"
        measure_memory
    fi
    bring_down "$kind"
}

measure_ceiling() {     # the generator alone into a veth whose other end nobody reads
    log "== generator ceiling (no switch)"
    setup_topology
    local cfg="$TMP/ceiling.cfg" pg g0 g1 t0 t1
    trafgen_config "${MAC[r1]}" "${IP[r1]}" > "$cfg"
    start_trafgen "$cfg" "$TMP/ceiling-trafgen.log"
    pg=$SPAWNED
    sleep 1
    g0=$(counter gen tx); t0=$(now_ns)
    sleep "$DURATION"
    g1=$(counter gen tx); t1=$(now_ns)
    unspawn "$pg"
    teardown_topology
    note "generator alone (trafgen, one worker on CPU 1) into a bare veth: $("$PY" -c "print(f'{($g1 - $g0) / (($t1 - $t0) / 1e9):,.0f}')") frames/s: the ceiling of the frame-rate figures"
}

# ------------------------------------------------------------------ main

install_packages
if wants snoopswitch; then build_snoopswitch; fi

RATES=0
if any_figure unicast multicast multicast6; then RATES=1; fi
note "machine: $(nproc) cores, Linux $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); command: $ARGS_TEXT; $DURATION s per rate figure, $TRIALS latency trials; load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ $RATES == 1 ]]; then
    note "the generator (trafgen, 64-byte frames, one worker pinned to CPU 1) shares the machine's 2 cores with the switch under test, the receivers' kernels and, for the kernel bridge, the forwarding itself (softirq on the sending CPU): rates are comparable within this run, not absolute"
    note "rates count rx_packets at the receivers' eth0 over $DURATION s of steady sending; unicast counts the addressed receiver only, multicast sums the 3 members (r1-r3); the 2 hosts that joined nothing (n1, n2) count what a switch did not prune (their rows: a few control frames when it pruned)"
fi
if figure multicast6; then
    note "IPv6 multicast: the IPv4 multicast figure's frame size, generator, members and rounds; 64-byte IPv6/UDP frames from 2001:db8::1 to $MC6_GROUP, joined by socket (IPV6_JOIN_GROUP, MLDv2) on r1-r3 from their link-local addresses, n1 and n2 with IPv6 on and no join; bridge: mcast_snooping 1, mcast_mld_version 2, mcast_querier 1 with $BRIDGE_LL6 on br0, mcast_flood off on every port; snoopswitch: the same flags as for IPv4 (--querier: IGMP and, where the switch snoops MLD, MLD queries)"
fi
if figure latency; then
    note "latency: sender: trafgen --gap 100us (one frame every 100-150 us, so about 0.1 ms of resolution), kernel timestamps of the member's outgoing report/leave and incoming group frames on its own eth0; bridge: mcast_flood off on every port and fastleave on r1; OVS: mcast-snooping-disable-flood-unregistered, prunes on any leave (no fast-leave option); a leave figure of 0 means no group frame arrived after the leave left the member"
fi
if any_figure memory cpu; then
    note "memory and CPU are the switch process's (snoopswitch, ovs-vswitchd); the kernel bridge has no process: n/a"
fi
if [[ $RATES == 1 ]]; then
    note "frame rates: the median of $ROUNDS rounds; each round brings up and measures every switch in turn (the rounds are listed below the table)"
    measure_ceiling
    for round in $(seq 1 "$ROUNDS"); do
        for kind in snoopswitch bridge ovs; do
            if wants "$kind"; then run_rates "$kind" "$round"; fi
        done
    done
    for fig in multicast multicast6; do
        for kind in snoopswitch bridge ovs; do
            [[ -n "${COUNT_NOTES["$kind|$fig"]:-}" ]] || continue
            note "$kind: $fig, frames at each receiver's eth0 over $DURATION s (addressed: the members; others: the hosts that joined nothing), by round: ${COUNT_NOTES["$kind|$fig"]}"
        done
    done
fi
for kind in snoopswitch bridge ovs; do
    if wants "$kind"; then run_switch "$kind"; fi
done
# What the main thread's work on a full kernel flow table costs the frames the threads carry.
if wants snoopswitch && figure lock; then
    if lock_line="$(SNOOPSWITCH="$BIN" bash "$REPO/scripts/bench-lock.sh" 2>"$TMP/bench-lock.log" | tail -1)" && [[ -n "$lock_line" ]]; then
        note "snoopswitch: $lock_line (scripts/bench-lock.sh)"
    else
        note "snoopswitch: scripts/bench-lock.sh failed: $(tail -2 "$TMP/bench-lock.log" | tr '\n' ' ')"
    fi
fi

note "load average (1, 5, 15 min) at the end: $(cut -d' ' -f1-3 /proc/loadavg): other work on the machine during the run lowers every figure"

TITLE="## snoopswitch benchmark ($(date -u +%Y-%m-%d), $(nproc) cores, Linux $(uname -r))"
echo
echo "$TITLE"
echo
"$PY" "$HELPER" table "$RESULTS" ${OUT:+--out "$OUT"} --title "$TITLE"
if [[ -n "$OUT" ]]; then log "table written to $OUT"; fi
