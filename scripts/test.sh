#!/usr/bin/env bash
# Installs what is needed, builds coffer with AddressSanitizer + UndefinedBehaviorSanitizer
# and warnings as errors, checks formatting and layering, and runs every test (unit tests
# and end-to-end tests against the real restic binary).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/check-layering.sh
scripts/check-format.sh
BUILD_TYPE=Debug scripts/build.sh -DCOFFER_SANITIZE=ON -DCOFFER_WERROR=ON
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd build
ctest --output-on-failure -j2 --timeout 1200
