#!/usr/bin/env bash
# Installs every Debian 12 package coffer needs to build, test and benchmark.
# Usage: scripts/install-deps.sh   (as root, or with sudo available)
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libfuse3-dev fuse3 libcurl4-openssl-dev libssl-dev libzstd-dev liblmdb-dev
  libcli11-dev catch2 nlohmann-json3-dev libfmt-dev libexpected-dev
  restic python3 attr e2fsprogs clang-format zstd time openssl rclone faketime curl
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q "${missing[@]}"
