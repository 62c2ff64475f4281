#!/usr/bin/env bash
# Fails if any C++ source is not clang-formatted.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.h' '*.cc' 2>/dev/null || find repo fs tools tests -name '*.h' -o -name '*.cc')
[[ -z "$files" ]] && exit 0
# shellcheck disable=SC2086
clang-format --dry-run --Werror $files
