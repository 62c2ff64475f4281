#!/usr/bin/env bash
# Backup benchmark: `coffer backup` vs `restic backup` on the same data in the same run.
#
#   scripts/bench/backup.sh [--small] [--repeat N] [--no-build]
#
# 1. Builds coffer (Release, build-bench/) unless COFFER_BIN is set or --no-build is given.
# 2. Creates, once, under $COFFER_BENCH_DIR (default /tmp/coffer-bench; --small: /tmp/coffer-bench-small)
#    mixed/: >= 1 GiB of ~30k small text files, 3 x 200 MiB random files and a 2 GiB sparse disk image
#    (shared with restore.sh).
# 3. For each tool, in a fresh repository made by `restic init` (same compression: auto):
#      first backup, unchanged re-run, and a re-run after 1% of the files changed.
#    The page cache is dropped before each run. Wall time, CPU time (user+sys) and peak RSS come from
#    /usr/bin/time -v. Prints ratios restic/coffer. Checks that the repositories pass `restic check`.
# Not a ctest.
set -euo pipefail

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/bench/lib.sh
source "$SRC_DIR/scripts/bench/lib.sh"
parse_bench_args "$@"
if [[ $SMALL == 1 ]]; then
  BENCH=${COFFER_BENCH_DIR:-/tmp/coffer-bench-small}; SCALE=0.05
else
  BENCH=${COFFER_BENCH_DIR:-/tmp/coffer-bench}; SCALE=1.0
fi
PW="$BENCH/password"

prepare() { prepare_mixed_data "$SCALE"; }

# Changes 1% of the files: appends a line to every 100th file (sorted by name).
change_one_percent() {
  local n=0
  while IFS= read -r -d '' f; do
    n=$((n + 1))
    if ((n % 100 == 0)); then printf 'changed %s\n' "$(date +%s%N)" >> "$f"; fi
  done < <(find "$BENCH/mixed" -type f -print0 | sort -z)
  echo "  changed $((n / 100)) of $n files"
}

fresh_repos() {
  rm -rf "$BENCH/bk-restic" "$BENCH/bk-coffer" "$BENCH/cache-restic" "$BENCH/cache-coffer"
  restic_env restic init -q -r "$BENCH/bk-restic"
  restic_env restic init -q -r "$BENCH/bk-coffer"
}

restic_backup() {
  measure "$1" env -C "$BENCH" RESTIC_PASSWORD_FILE="$PW" RESTIC_CACHE_DIR="$BENCH/cache-restic" \
    restic -q -r "$BENCH/bk-restic" backup --host bench mixed
}

coffer_backup() {
  measure "$1" env -C "$BENCH" "$COFFER_BIN" -q -r "$BENCH/bk-coffer" --password-file "$PW" \
    --cache-dir "$BENCH/cache-coffer" backup --host bench mixed
}

# One round: both tools back up the same state; keeps the best of REPEAT per tool.
round() {  # round LABEL
  local label=$1 i rw="" rc="" rr="" cw="" cc="" cr=""
  for ((i = 1; i <= REPEAT; i++)); do
    drop_caches
    restic_backup "restic: $label (run $i)"
    if [[ -z "$rw" ]] || awk "BEGIN{exit !($LAST_WALL < $rw)}"; then rw=$LAST_WALL; rc=$LAST_CPU; rr=$LAST_RSS; fi
    drop_caches
    coffer_backup "coffer: $label (run $i)"
    if [[ -z "$cw" ]] || awk "BEGIN{exit !($LAST_WALL < $cw)}"; then cw=$LAST_WALL; cc=$LAST_CPU; cr=$LAST_RSS; fi
  done
  report "$label" "$rw" "$rr" "$cw" "$cr" "$rc" "$cc"
}

check_repos() {
  log "restic check of both repositories"
  restic_env restic -q -r "$BENCH/bk-restic" check >/dev/null
  restic_env restic -q -r "$BENCH/bk-coffer" check >/dev/null
  echo "  both pass; repository sizes: restic $(du -sh "$BENCH/bk-restic" | cut -f1)," \
    "coffer $(du -sh "$BENCH/bk-coffer" | cut -f1)"
}

main() {
  ensure_tools
  build_coffer
  [[ -x "$COFFER_BIN" ]] || { echo "coffer binary not found: $COFFER_BIN" >&2; exit 1; }
  prepare
  log "backup of $(du -sh --apparent-size "$BENCH/mixed" | cut -f1) apparent ($(find "$BENCH/mixed" -type f | wc -l) files)"
  fresh_repos
  # The first backup is measured once per tool (REPEAT > 1 would measure re-runs).
  drop_caches; restic_backup "restic: first backup"; local rw=$LAST_WALL rc=$LAST_CPU rr=$LAST_RSS
  drop_caches; coffer_backup "coffer: first backup"
  report "first backup" "$rw" "$rr" "$LAST_WALL" "$LAST_RSS" "$rc" "$LAST_CPU"
  round "unchanged re-run"
  change_one_percent
  round "re-run after 1% changed"
  check_repos
  print_results "summary ($(nproc) cores; restic $(restic version | cut -d' ' -f2))"
}

main
