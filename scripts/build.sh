#!/usr/bin/env bash
# Configures and builds coffer into build/ (Release unless BUILD_TYPE is set).
# Extra CMake arguments may be passed, e.g. scripts/build.sh -DCOFFER_SANITIZE=ON
set -euo pipefail
cd "$(dirname "$0")/.."
build_type="${BUILD_TYPE:-Release}"
cmake -S . -B build -DCMAKE_BUILD_TYPE="$build_type" "$@" >/dev/null
cmake --build build -j"$(nproc)"
