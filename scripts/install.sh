#!/usr/bin/env bash
# Build snoopswitch and install it, or remove what an earlier run installed.
#   scripts/install.sh [--prefix PREFIX] [--destdir DIR] [--configuration release|debug]
#                      [--unitdir DIR] [--uninstall]
# PREFIX defaults to /usr/local, the configuration to release. It installs
#   PREFIX/bin/snoopswitch
#   PREFIX/share/man/man8/snoopswitch.8             made from the command's own help
#   PREFIX/share/bash-completion/completions/snoopswitch, PREFIX/share/zsh/site-functions/_snoopswitch,
#   PREFIX/share/fish/vendor_completions.d/snoopswitch.fish    made by the command itself
#   PREFIX/lib/systemd/system/snoopswitch.service   (--unitdir to change; ExecStart: PREFIX/bin)
#   PREFIX/share/doc/snoopswitch/snoopswitch.conf   the example configuration
#   /etc/snoopswitch/snoopswitch.conf               the same, if absent and PREFIX is /usr or
#                                                   /usr/local (never overwritten)
#   PREFIX/share/snoopswitch/install-manifest       what was installed, for --uninstall
# With --destdir DIR every path above is written under DIR (a staging tree, as DESTDIR in make),
# while the unit still names PREFIX/bin/snoopswitch. --uninstall (with the same --prefix,
# --destdir) removes exactly the files and directories the manifest lists; an /etc file that was
# edited since is kept. It prints each path it writes or removes; an error is one line on stderr
# and a non-zero exit (64 for a bad command line).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

die() { echo "install.sh: $*" >&2; exit 1; }
usage_error() { echo "install.sh: $* (usage: scripts/install.sh [--prefix PREFIX] [--destdir DIR] [--configuration release|debug] [--unitdir DIR] [--uninstall])" >&2; exit 64; }

prefix=/usr/local
destdir=
configuration=release
unitdir=
uninstall=0
while (($#)); do
    case "$1" in
        --prefix|--destdir|--configuration|--unitdir)
            (($# >= 2)) || usage_error "$1 needs a value"
            value=$2; option=$1; shift 2 ;;
        --prefix=*|--destdir=*|--configuration=*|--unitdir=*)
            option=${1%%=*}; value=${1#*=}; shift ;;
        --uninstall) uninstall=1; shift; continue ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) usage_error "unknown argument '$1'" ;;
    esac
    case "$option" in
        --prefix) prefix=$value ;;
        --destdir) destdir=$value ;;
        --configuration) configuration=$value ;;
        --unitdir) unitdir=$value ;;
    esac
done

[[ $prefix == /* && $prefix != / ]] || usage_error "--prefix must be an absolute path other than / (got '$prefix')"
prefix=${prefix%/}
[[ $prefix$unitdir$destdir != *[[:space:]\|\&\\%\$]* ]] || usage_error "paths with blanks or any of | & \\ % \$ are not supported"
[[ -z $unitdir || $unitdir == /* ]] || usage_error "--unitdir must be an absolute path (got '$unitdir')"
unitdir=${unitdir:-$prefix/lib/systemd/system}
unitdir=${unitdir%/}
[[ $configuration == release || $configuration == debug ]] \
    || usage_error "--configuration is release or debug (got '$configuration')"
if [[ -n $destdir ]]; then
    destdir=$(realpath -m -- "$destdir")
    [[ $destdir != / ]] || destdir=
fi

bin=$prefix/bin/snoopswitch
manpage=$prefix/share/man/man8/snoopswitch.8
unit=$unitdir/snoopswitch.service
docconf=$prefix/share/doc/snoopswitch/snoopswitch.conf
etcconf=/etc/snoopswitch/snoopswitch.conf
manifest=$prefix/share/snoopswitch/install-manifest
# systemd is running here, and this run is for this machine (not a staging tree).
live_systemd() { [[ -z $destdir && -d /run/systemd/system ]] && command -v systemctl >/dev/null; }

# ---- uninstall ------------------------------------------------------------------------------
if ((uninstall)); then
    [[ -f $destdir$manifest ]] || die "nothing to uninstall: no $destdir$manifest (give the --prefix and --destdir of the install)"
    files=() dirs=() configs=()
    while read -r kind rest; do
        case "$kind" in
            file) files+=("$rest") ;;
            dir) dirs+=("$rest") ;;
            config) configs+=("$rest") ;;
            ''|'#'*) ;;
            *) die "$destdir$manifest: unknown line '$kind $rest'" ;;
        esac
    done <"$destdir$manifest"
    ours=0
    for path in "${files[@]}"; do [[ $path == "$unit" ]] && ours=1; done
    if live_systemd && ((ours)); then
        if systemctl is-enabled --quiet snoopswitch.service 2>/dev/null || systemctl is-active --quiet snoopswitch.service; then
            systemctl disable --now --quiet snoopswitch.service && echo "stopped and disabled snoopswitch.service"
        fi
    fi
    for entry in "${configs[@]}"; do
        sum=${entry%% *}; path=${entry#* }
        [[ -e $destdir$path ]] || continue
        if [[ $(sha256sum <"$destdir$path" | cut -d' ' -f1) == "$sum" ]]; then
            rm -f -- "$destdir$path" && echo "removed $destdir$path"
        else
            echo "kept $destdir$path (edited since it was installed)"
        fi
    done
    for path in "${files[@]}"; do
        if [[ -e $destdir$path || -L $destdir$path ]]; then rm -f -- "$destdir$path" && echo "removed $destdir$path"; fi
    done
    rm -f -- "$destdir$manifest" && echo "removed $destdir$manifest"
    # Directories the install created, deepest first, if nothing else has come into them.
    while read -r path; do
        [[ -n $path && -d $destdir$path ]] || continue
        if rmdir -- "$destdir$path" 2>/dev/null; then echo "removed $destdir$path/"; fi
    done < <(printf '%s\n' "${dirs[@]}" | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-)
    if live_systemd; then systemctl daemon-reload; fi
    exit 0
fi

# ---- dependencies and build -----------------------------------------------------------------
# What the build needs, checked and installed as scripts/install-deps.sh does; that script also
# brings what the tests need (FRR, qemu, tshark, ...), which has no place on a machine that only
# runs the switch. The -dev packages bring the shared libraries the binary links.
PACKAGES=(libpcap-dev libnl-3-dev libnl-route-3-dev libbpf-dev pkg-config clang)
if command -v dpkg-query >/dev/null; then
    missing=()
    for pkg in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        [[ $status == installed ]] || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        [[ $(id -u) -eq 0 ]] || die "missing packages: ${missing[*]} (run as root to install them)"
        echo "install.sh: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null || die "apt-get update failed"
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
            || die "apt-get could not install ${missing[*]}"
    fi
fi

command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
command -v swift >/dev/null 2>&1 || die "swift not found (looked on PATH and in /opt/swift/usr/bin)"

# The nearest existing directory of each place must be writable before anything is built.
for target in "$destdir$prefix" "$destdir$unitdir"; do
    probe=$target
    while [[ ! -e $probe ]]; do probe=$(dirname -- "$probe"); done
    [[ -d $probe && -w $probe ]] || die "cannot write to $target ($probe is not a writable directory; run as root, or give --destdir)"
done

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

# Incremental: an up-to-date build (the test command's debug one, say) is reused as it is.
echo "install.sh: building ($configuration; the first release build takes a few minutes)"
swift build -c "$configuration" -q || die "the build failed (swift build -c $configuration, above)"
built=$(swift build -c "$configuration" --show-bin-path)/snoopswitch
version=$("$built" --version) || die "$built --version failed"

# The man page: swift-argument-parser's generate-manual plugin, from the command's own help (every
# subcommand, every option). The plugin takes seconds even with nothing to build: its page is kept
# in .build/install/ with the digest of what it was made from (the help as JSON, the date), and
# made again only when that changes.
manual_date=$(git -C "$repo" log -1 --format=%cs 2>/dev/null || date +%F)
manual_key=$( { "$built" --experimental-dump-help && echo "section 8, $manual_date"; } | sha256sum | cut -d' ' -f1)
manual=$repo/.build/install/snoopswitch.8
if [[ ! -s $manual || $(cat "$manual.key" 2>/dev/null) != "$manual_key" ]]; then
    manual_out=$repo/.build/plugins/GenerateManual/outputs/snoopswitch
    rm -f -- "$manual_out/snoopswitch.8" "$manual.key"
    swift package plugin generate-manual --configuration "$configuration" --section 8 --date "$manual_date" \
        >"$work/manual.log" 2>&1 || { cat "$work/manual.log" >&2; die "the man page could not be made (swift package plugin generate-manual, above)"; }
    [[ -s $manual_out/snoopswitch.8 ]] || die "generate-manual made no $manual_out/snoopswitch.8"
    mkdir -p -- "$(dirname -- "$manual")"
    cp -- "$manual_out/snoopswitch.8" "$manual"
    echo "$manual_key" >"$manual.key"
fi

for shell in bash zsh fish; do
    "$built" --generate-completion-script "$shell" >"$work/completion.$shell" \
        || die "snoopswitch --generate-completion-script $shell failed"
done

# The unit names the installed binary, and its man page where man finds it.
case "$prefix" in
    /usr|/usr/local) documentation="man:snoopswitch(8)" ;;
    *) documentation="file://$manpage" ;;
esac
sed -e "s|^ExecStart=/usr/local/bin/snoopswitch |ExecStart=$bin |" \
    -e "s|^Documentation=.*|Documentation=$documentation|" contrib/snoopswitch.service >"$work/snoopswitch.service"
grep -qF "ExecStart=$bin run " "$work/snoopswitch.service" \
    || die "contrib/snoopswitch.service: no 'ExecStart=/usr/local/bin/snoopswitch run ...' line to point at $bin"

# ---- install --------------------------------------------------------------------------------
entries=()
# Creates the directory (a path without DESTDIR) and records each level that did not exist.
make_dir() {
    local dir=$1 created=()
    while [[ $dir != / && ! -d $destdir$dir ]]; do created+=("$dir"); dir=$(dirname -- "$dir"); done
    mkdir -p -- "$destdir$1"
    local d
    for d in "${created[@]}"; do entries+=("dir $d"); done
}
# put MODE SOURCE PATH: installs SOURCE at PATH (without DESTDIR) and records it.
put() {
    make_dir "$(dirname -- "$3")"
    install -m "$1" -- "$2" "$destdir$3"
    entries+=("file $3")
    echo "installed $destdir$3"
}

put 755 "$built" "$bin"
put 644 "$manual" "$manpage"
put 644 "$work/completion.bash" "$prefix/share/bash-completion/completions/snoopswitch"
put 644 "$work/completion.zsh" "$prefix/share/zsh/site-functions/_snoopswitch"
put 644 "$work/completion.fish" "$prefix/share/fish/vendor_completions.d/snoopswitch.fish"
put 644 "$work/snoopswitch.service" "$unit"
put 644 contrib/snoopswitch.conf "$docconf"
# The configuration the unit reads: for a system prefix only (into DESTDIR when staging), and
# never over an existing one, which is the operator's.
case "$prefix" in
    /usr|/usr/local)
        if [[ -e $destdir$etcconf ]]; then
            echo "kept $destdir$etcconf (it exists; the example is $destdir$docconf)"
        else
            make_dir "$(dirname -- "$etcconf")"
            install -m 644 -- contrib/snoopswitch.conf "$destdir$etcconf"
            entries+=("config $(sha256sum <contrib/snoopswitch.conf | cut -d' ' -f1) $etcconf")
            echo "installed $destdir$etcconf"
        fi ;;
esac

# The manifest: this run's entries after those of an earlier install into the same place (a
# directory that install created is still to be removed, and its /etc file still to be judged).
make_dir "$(dirname -- "$manifest")"
{
    echo "# Installed by snoopswitch's scripts/install.sh ($version); removed by its --uninstall."
    { if [[ -f $destdir$manifest ]]; then grep -v '^#' "$destdir$manifest" || true; fi
      printf '%s\n' "${entries[@]}"; } | awk 'NF && !seen[$0]++'
} >"$work/manifest"
install -m 644 -- "$work/manifest" "$destdir$manifest"
echo "installed $destdir$manifest"

if live_systemd; then systemctl daemon-reload; fi
echo "install.sh: $version installed under $destdir$prefix; the unit is $destdir$unit"
case "$unitdir" in
    /etc/systemd/system|/usr/lib/systemd/system|/lib/systemd/system|/usr/local/lib/systemd/system) ;;
    *) echo "install.sh: systemd does not read $unitdir: link the unit into /etc/systemd/system to use it" ;;
esac
if [[ -z $destdir ]]; then
    case "$prefix" in
        /usr|/usr/local) echo "install.sh: name your ports in $etcconf, then: systemctl enable --now snoopswitch" ;;
        *) echo "install.sh: the unit reads $etcconf: copy $docconf there and name your ports" ;;
    esac
fi
