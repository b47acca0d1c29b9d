#!/usr/bin/env bash
# Install the Debian packages xlb needs to build, test and run, if any are
# missing.  Idempotent and non-interactive; quiet when nothing is missing.
set -euo pipefail

PKGS=(
    make gcc clang llvm pkg-config
    libbpf-dev libxdp-dev bpftool libelf-dev zlib1g-dev
    libjansson-dev libuv1-dev libssl-dev libyaml-dev libcriterion-dev
    libpcre2-dev libbrotli-dev libzstd-dev libdeflate-dev
    iproute2 ethtool tcpdump python3 util-linux curl openssl prometheus
    systemd man-db groff-base binutils jq chromium chromium-driver fonts-dejavu-core
)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages: ${missing[*]}" >&2
    echo "deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
