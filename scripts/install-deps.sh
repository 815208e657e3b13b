#!/usr/bin/env bash
# Install the Debian packages snoopswitch needs to build, test and demo.
# Idempotent: prints nothing and touches nothing when every package is present.
# Runs `apt-get update` only when something is missing.
set -euo pipefail

PACKAGES=(
    libpcap-dev libnl-3-dev libnl-route-3-dev pkg-config
    clang libbpf-dev  # the BPF programs: compiled with clang -target bpf, loaded with libbpf
    iproute2 iputils-ping tcpdump procps iperf3
    python3 python3-scapy python3-pytest
    frr  # zebra + pimd: a real multicast router for tests/integration/test_rfc_router.py
    tshark python3-prometheus-client curl  # test_capture_metrics.py, test_capture_pcapng.py: pcapng decoding, metrics parsing
    qemu-system-x86 busybox-static gcc libc6-dev  # tests/integration/test_vm.py: a VM (TCG) on the switch, its initramfs
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark's wireshark-common asks whether users outside root may capture: answered (no) ahead.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
