#!/usr/bin/env bash
# lab.sh: build a snoopswitch lab from a topology file, out of network namespaces.
#
#   lab.sh up FILE [LABNAME]       create the lab (default LABNAME: the file's base name;
#                                  FILE may be a name of topologies/: four-hosts)
#   lab.sh down LABNAME            stop the switch (and FRR), delete every namespace of the lab
#   lab.sh exec LABNAME HOST CMD…  run CMD in HOST's namespace (HOST "sw" = the switch's)
#   lab.sh status LABNAME [ARGS…]  `snoopswitch status` of the lab's switch (e.g. --json)
#   lab.sh frr LABNAME HOST        start FRR's zebra and pimd in HOST's namespace (IGMP
#                                  querier and PIM router on its eth0; frr-router.topo)
#   lab.sh list                    labs that are up
#
# Layout of a lab named L: the switch runs in namespace L-sw; each host H lives in
# namespace L-H with one interface eth0 (address and MAC from the topology file),
# the other end of its veth pair is the interface H in L-sw, and the switch port
# spec is H followed by the host's suffix (":pvid=10", ":router", ...).
# Nothing is created in the root namespace: each veth pair is created straight
# into the two namespaces it joins.
#
# The switch binary is $SNOOPSWITCH, else ./.build/debug/snoopswitch (from the
# current directory, then from the repository; built with `swift build` when there is
# none yet). Control socket: /run/snoopswitch-L.sock, log and state: /run/snoopswitch-lab/L/.
# A host line may add an IPv6 address (2001:db8::1/64): that host's IPv6 is on (MLD).
set -euo pipefail

PROG=$(basename "$0")
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
STATE_ROOT=/run/snoopswitch-lab

die() { echo "$PROG: $*" >&2; exit 1; }
say() { echo "$PROG: $*"; }

usage() {
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

find_binary() {
    local candidate
    for candidate in "${SNOOPSWITCH:-}" ./.build/debug/snoopswitch "$REPO_DIR/.build/debug/snoopswitch"; do
        if [[ -n "$candidate" && -x "$candidate" ]]; then
            (cd "$(dirname "$candidate")" && echo "$(pwd)/$(basename "$candidate")")
            return 0
        fi
    done
    [[ -z "${SNOOPSWITCH:-}" ]] || die "SNOOPSWITCH=$SNOOPSWITCH is not an executable file"
    # None built yet: build it, as the README's commands would.
    local swift
    swift=$(PATH=/opt/swift/usr/bin:$PATH command -v swift) ||
        die "snoopswitch binary not found and no swift to build it (see the README's two commands)"
    echo "$PROG: no snoopswitch binary yet: building it (swift build, a few minutes the first time)" >&2
    (cd "$REPO_DIR" && "$swift" build >&2) || die "swift build failed"
    echo "$REPO_DIR/.build/debug/snoopswitch"
}

# A topology given by name: topologies/NAME.topo of the repository.
topology_file() {
    if [[ -r "$1" ]]; then echo "$1"
    elif [[ -r "$REPO_DIR/topologies/$1.topo" ]]; then echo "$REPO_DIR/topologies/$1.topo"
    elif [[ -r "$REPO_DIR/topologies/$1" ]]; then echo "$REPO_DIR/topologies/$1"
    else die "no topology '$1' (a file, or one of: $(cd "$REPO_DIR/topologies" && ls *.topo | sed 's/\.topo$//' | tr '\n' ' '))"
    fi
}

check_lab_name() {
    [[ "$1" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || die "bad lab name '$1' (letters, digits, _ . -)"
    ((${#1} <= 40)) || die "lab name '$1' is too long (40 characters at most)"
}

control_socket() { echo "/run/snoopswitch-$1.sock"; }
state_dir() { echo "$STATE_ROOT/$1"; }

# ---- topology file -------------------------------------------------------------
# Fills SWITCH_FLAGS (array) and HOSTS / H_ADDR / H_SUFFIX / H_MAC.
SWITCH_FLAGS=()
HOSTS=()
declare -A H_ADDR=() H_SUFFIX=() H_MAC=() H_ADDR6=()

parse_topology() {
    local file=$1 lineno=0 line kw name addr suffix mac tok
    local -a words
    [[ -r "$file" ]] || die "cannot read topology file '$file'"
    while IFS= read -r line || [[ -n "$line" ]]; do
        lineno=$((lineno + 1))
        line=${line%%#*}
        read -ra words <<<"$line" || true
        ((${#words[@]} == 0)) && continue
        kw=${words[0]}
        case "$kw" in
        switch)
            SWITCH_FLAGS+=("${words[@]:1}")
            ;;
        host)
            ((${#words[@]} >= 3)) || die "$file:$lineno: expected 'host NAME ADDRESS|- [:SUFFIX] [mac=MAC]'"
            name=${words[1]} addr=${words[2]} suffix="" mac="" addr6=""
            [[ "$name" =~ ^[A-Za-z0-9_]{1,15}$ ]] ||
                die "$file:$lineno: bad host name '$name' (1-15 letters, digits or _)"
            [[ "$name" != sw ]] || die "$file:$lineno: host name 'sw' is reserved for the switch"
            [[ -z "${H_ADDR[$name]+x}" ]] || die "$file:$lineno: host '$name' defined twice"
            if [[ "$addr" != - ]]; then
                [[ "$addr" =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$ ]] ||
                    die "$file:$lineno: bad address '$addr' (A.B.C.D/LEN or -)"
            fi
            for tok in "${words[@]:3}"; do
                case "$tok" in
                :*) suffix+=$tok ;;
                *:*/*)
                    [[ "$tok" =~ ^[0-9a-fA-F:]+/[0-9]{1,3}$ ]] || die "$file:$lineno: bad IPv6 address '$tok'"
                    addr6=$tok
                    ;;
                mac=*)
                    mac=${tok#mac=}
                    [[ "$mac" =~ ^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$ ]] || die "$file:$lineno: bad MAC '$mac'"
                    ;;
                *) die "$file:$lineno: unexpected '$tok' (a :SUFFIX, an IPv6 ADDRESS/LEN or mac=MAC)" ;;
                esac
            done
            HOSTS+=("$name")
            [[ -n "$mac" ]] || mac=$(printf '02:00:00:00:00:%02x' "${#HOSTS[@]}")
            H_ADDR[$name]=$addr H_SUFFIX[$name]=$suffix H_MAC[$name]=${mac,,} H_ADDR6[$name]=$addr6
            ;;
        *)
            die "$file:$lineno: unknown statement '$kw' (expected 'switch' or 'host')"
            ;;
        esac
    done <"$file"
    ((${#HOSTS[@]} > 0)) || die "$file: no hosts"
}

# ---- namespaces ----------------------------------------------------------------
ns_exists() { ip netns list | awk '{print $1}' | grep -qxF "$1"; }

make_ns() {
    local ns=$1
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # IPv6 off: no router solicitations or MLD reports to clutter the lab.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null
}

lab_namespaces() {
    # The lab's namespaces: L-sw and L-H (host names have no '-', so this cannot
    # pick up the namespaces of a lab whose name merely starts with L-).
    local lab=$1
    ip netns list | awk '{print $1}' | while read -r ns; do
        [[ "$ns" == "$lab"-* ]] || continue
        local rest=${ns#"$lab"-}
        [[ "$rest" =~ ^[A-Za-z0-9_]+$ ]] && echo "$ns"
    done
    return 0
}

wait_links_up() {
    local lab=$1 i h ok
    for ((i = 0; i < 100; i++)); do
        ok=1
        for h in "${HOSTS[@]}"; do
            ip -n "$lab-sw" -o link show "$h" | grep -q 'state UP' || { ok=0; break; }
            ip -n "$lab-$h" -o link show eth0 | grep -q 'state UP' || { ok=0; break; }
        done
        ((ok)) && return 0
        sleep 0.05
    done
    die "links of lab $lab did not come up within 5 s"
}

# ---- the switch ----------------------------------------------------------------
switch_pid() {
    local lab=$1 pidfile pid
    pidfile="$(state_dir "$lab")/switch.pid"
    [[ -r "$pidfile" ]] || return 1
    pid=$(<"$pidfile")
    [[ -n "$pid" && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q snoopswitch || return 1
    echo "$pid"
}

stop_switch() {
    local lab=$1 pid i
    pid=$(switch_pid "$lab") || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "$PROG: switch (pid $pid) ignored SIGTERM for 5 s, killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
}

# ---- commands ------------------------------------------------------------------
cmd_up() {
    (($# >= 1 && $# <= 2)) || usage
    local file lab=${2:-}
    file=$(topology_file "$1")
    [[ -n "$lab" ]] || lab=$(basename "$file" .topo)
    check_lab_name "$lab"
    [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces)"
    parse_topology "$file"
    local bin sock dir log
    bin=$(find_binary)
    sock=$(control_socket "$lab")
    dir=$(state_dir "$lab")
    log=$dir/switch.log

    if ns_exists "$lab-sw" || [[ -d "$dir" ]]; then
        die "lab '$lab' already exists (run '$PROG down $lab' first)"
    fi
    local h
    for h in "${HOSTS[@]}"; do
        ! ns_exists "$lab-$h" || die "namespace $lab-$h already exists (stale? run '$PROG down $lab')"
    done

    # From here on, a failure (or Ctrl-C) removes whatever was created.
    UP_LAB=$lab UP_DONE=0
    trap on_up_exit EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$dir"
    cp "$file" "$dir/topology"
    printf '%s\n' "${HOSTS[@]}" >"$dir/hosts"

    make_ns "$lab-sw"
    local ports=()
    for h in "${HOSTS[@]}"; do
        local ns=$lab-$h
        make_ns "$ns"
        ip -n "$lab-sw" link add "$h" type veth peer name eth0 netns "$ns"
        ip -n "$ns" link set eth0 address "${H_MAC[$h]}"
        ip -n "$ns" link set eth0 up
        ip -n "$lab-sw" link set "$h" up
        if [[ "${H_ADDR[$h]}" != - ]]; then
            ip -n "$ns" addr add "${H_ADDR[$h]}" dev eth0
            ip -n "$ns" route add 224.0.0.0/4 dev eth0
        fi
        if [[ -n "${H_ADDR6[$h]}" ]]; then
            ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 \
                net.ipv6.conf.eth0.disable_ipv6=0 >/dev/null
            ip -n "$ns" addr add "${H_ADDR6[$h]}" dev eth0 nodad
        fi
        ports+=(--port "$h${H_SUFFIX[$h]}")
        say "host $h: namespace $ns, eth0 ${H_MAC[$h]} ${H_ADDR[$h]}${H_ADDR6[$h]:+ ${H_ADDR6[$h]}}, switch port $h${H_SUFFIX[$h]}"
    done

    # The kernel reports carrier changes through linkwatch, up to a second late; a
    # switch started before that would see its ports down and drop their first frames.
    wait_links_up "$lab"

    rm -f "$sock"
    echo "# $(date -Is) $bin run ${ports[*]} ${SWITCH_FLAGS[*]} --control $sock" >"$log"
    ip netns exec "$lab-sw" "$bin" run "${ports[@]}" "${SWITCH_FLAGS[@]}" --control "$sock" \
        </dev/null >>"$log" 2>&1 &
    local pid=$!
    echo "$pid" >"$dir/switch.pid"

    local i
    for ((i = 0; i < 100; i++)); do
        [[ -S "$sock" ]] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$PROG: the switch exited before opening its control socket; its log:" >&2
            sed 's/^/    /' "$log" >&2
            false
        fi
        sleep 0.1
    done
    if [[ ! -S "$sock" ]]; then
        echo "$PROG: no control socket $sock after 10 s; the switch's log:" >&2
        sed 's/^/    /' "$log" >&2
        false
    fi
    UP_DONE=1
    trap - EXIT INT TERM
    say "switch up in namespace $lab-sw (pid $pid), control socket $sock, log $log"
    say "try: $PROG status $lab   |   $PROG exec $lab ${HOSTS[0]} ping -c1 <addr>   |   $PROG down $lab"
}

UP_LAB="" UP_DONE=1
on_up_exit() {
    if [[ "$UP_DONE" != 1 ]]; then
        echo "$PROG: setting up lab $UP_LAB failed, cleaning up" >&2
        teardown "$UP_LAB" >/dev/null 2>&1 || true
    fi
}

teardown() {
    local lab=$1 ns pid
    stop_switch "$lab"
    stop_frr "$lab"
    for ns in $(lab_namespaces "$lab"); do
        # Anything still running in the lab's namespaces was started for the lab.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -f "$(control_socket "$lab")"
    rm -rf "$(state_dir "$lab")"
    rmdir "$STATE_ROOT" 2>/dev/null || true
}

cmd_down() {
    (($# == 1)) || usage
    local lab=$1
    check_lab_name "$lab"
    [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces)"
    if ! ns_exists "$lab-sw" && [[ ! -d "$(state_dir "$lab")" ]] && [[ -z "$(lab_namespaces "$lab")" ]]; then
        say "lab '$lab' is not up; nothing to do"
        return 0
    fi
    teardown "$lab"
    say "lab '$lab' is down"
}

cmd_exec() {
    (($# >= 3)) || usage
    local lab=$1 host=$2
    shift 2
    check_lab_name "$lab"
    ns_exists "$lab-$host" || die "no namespace '$lab-$host' (is lab '$lab' up, and has it a host '$host'?)"
    exec ip netns exec "$lab-$host" "$@"
}

cmd_status() {
    (($# >= 1)) || usage
    local lab=$1
    shift
    check_lab_name "$lab"
    local sock bin
    sock=$(control_socket "$lab")
    [[ -S "$sock" ]] || die "lab '$lab' has no control socket $sock (is it up?)"
    bin=$(find_binary)
    exec "$bin" status --control "$sock" "$@"
}

# ---- FRR -----------------------------------------------------------------------
FRR_DAEMONS=/usr/lib/frr

stop_frr() {
    local lab=$1 pidfile
    for pidfile in "$(state_dir "$lab")"/frr-*/*.pid; do
        [[ -r "$pidfile" ]] || continue
        kill -TERM "$(<"$pidfile")" 2>/dev/null || true
    done
}

cmd_frr() {
    (($# == 2)) || usage
    local lab=$1 host=$2 d ns=$1-$2 daemon
    check_lab_name "$lab"
    [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces)"
    ns_exists "$ns" || die "no namespace '$ns' (is lab '$lab' up, and has it a host '$host'?)"
    for daemon in zebra pimd; do
        [[ -x "$FRR_DAEMONS/$daemon" ]] || die "$FRR_DAEMONS/$daemon not found (Debian package frr)"
    done
    # zebra and pimd with files of their own (-N, --vty_socket), so that /etc/frr stays untouched.
    d="$(state_dir "$lab")/frr-$host"
    [[ ! -d "$d" ]] || die "FRR already runs on $host (state in $d)"
    mkdir -p "$d" && chown frr:frr "$d"
    echo "hostname $host" >"$d/zebra.conf"
    printf 'hostname %s\ninterface eth0\n ip pim\n ip igmp\n ip igmp query-interval 10\n' "$host" >"$d/pimd.conf"
    chown frr:frr "$d"/*.conf
    for daemon in zebra pimd; do
        ip netns exec "$ns" "$FRR_DAEMONS/$daemon" -d -N "$ns" --vty_socket "$d" -f "$d/$daemon.conf" \
            -i "$d/$daemon.pid" -z "$d/zserv.api" --log "file:$d/$daemon.log" >>"$d/$daemon.stderr" 2>&1 ||
            die "$daemon did not start (log: $d/$daemon.log)"
        sleep 1
    done
    sleep 1
    if ! kill -0 "$(cat "$d/pimd.pid" 2>/dev/null)" 2>/dev/null; then
        die "pimd stopped (a kernel without multicast routing, CONFIG_IP_MROUTE, cannot run it): log $d/pimd.log"
    fi
    if grep -qs "MRT_INIT" "$d/pimd.log" "$d/pimd.stderr"; then
        say "warning: this kernel has no multicast routing (CONFIG_IP_MROUTE): pimd queries and speaks PIM but routes nothing"
    fi
    say "FRR runs on $host: IGMP querier and PIM router on its eth0 (vtysh --vty_socket $d -c 'show ip igmp groups')"
}

cmd_list() {
    local d lab pid
    [[ -d "$STATE_ROOT" ]] || return 0
    for d in "$STATE_ROOT"/*/; do
        [[ -d "$d" ]] || continue
        lab=$(basename "$d")
        if pid=$(switch_pid "$lab"); then
            echo "$lab  switch pid $pid  hosts: $(tr '\n' ' ' <"$d/hosts")"
        else
            echo "$lab  (switch not running)  hosts: $(tr '\n' ' ' <"$d/hosts" 2>/dev/null)"
        fi
    done
}

(($# >= 1)) || usage
command=$1
shift
case "$command" in
up) cmd_up "$@" ;;
down) cmd_down "$@" ;;
exec) cmd_exec "$@" ;;
status) cmd_status "$@" ;;
frr) cmd_frr "$@" ;;
list) cmd_list "$@" ;;
-h | --help | help) usage ;;
*) echo "$PROG: unknown command '$command'" >&2; usage ;;
esac
