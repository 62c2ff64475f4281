#!/usr/bin/env bash
# Diff benchmark: `coffer diff` vs `restic diff` on the same repository in the same run.
#
#   scripts/bench/diff.sh [--small] [--repeat N] [--no-build]
#
# 1. Builds coffer (Release, build-bench/) unless COFFER_BIN is set or --no-build is given.
# 2. Creates, once, under $COFFER_BENCH_DIR (default /tmp/coffer-bench; --small: /tmp/coffer-bench-small)
#    diff-src/ with 100,000 small distinct files (--small: 10,000) in directories of 1000
#    (make_data.py index), and repo-diff/, a restic repository with two snapshots of it made by
#    `restic backup`: the second after 1% of the files changed (every 100th file, sorted by name,
#    gets a line appended; every 1000th is removed; 0.1% new files in a new directory).
# 3. Times `restic diff` and `coffer diff` (text output to /dev/null) with warm caches: each tool runs
#    once unmeasured first, then REPEAT measured runs, best kept. Wall, CPU (user+sys) and peak RSS
#    come from /usr/bin/time -v. Checks that both print the same output, then prints ratios
#    restic/coffer.
# Not a ctest.
set -euo pipefail

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/bench/lib.sh
source "$SRC_DIR/scripts/bench/lib.sh"
parse_bench_args "$@"
if [[ $SMALL == 1 ]]; then
  BENCH=${COFFER_BENCH_DIR:-/tmp/coffer-bench-small}; FILES=10000
else
  BENCH=${COFFER_BENCH_DIR:-/tmp/coffer-bench}; FILES=100000
fi
PW="$BENCH/password"
REPO="$BENCH/repo-diff"

# Changes 1% of the files of diff-src, removes 0.1% and adds 0.1% in a new directory.
change_one_percent() {
  local n=0
  while IFS= read -r -d '' f; do
    n=$((n + 1))
    if ((n % 1000 == 0)); then rm "$f"; elif ((n % 100 == 0)); then echo "changed $n" >> "$f"; fi
  done < <(find "$BENCH/diff-src" -type f -print0 | sort -z)
  mkdir -p "$BENCH/diff-src/added"
  for ((i = 0; i < n / 1000; i++)); do echo "added file $i" > "$BENCH/diff-src/added/new$i.txt"; done
  echo "  changed $((n / 100 - n / 1000)), removed $((n / 1000)), added $((n / 1000)) of $n files"
}

prepare() {
  mkdir -p "$BENCH"
  [[ -f "$PW" ]] || echo "bench-password-$(date +%s)" > "$PW"
  if [[ -f "$BENCH/diff.stamp" ]]; then return; fi
  log "creating $FILES files in $BENCH/diff-src and two snapshots in $REPO"
  rm -rf "$BENCH/diff-src" "$REPO"
  python3 "$SRC_DIR/scripts/bench/make_data.py" index "$BENCH/diff-src" --files "$FILES"
  restic_env restic init -q -r "$REPO"
  (cd "$BENCH" && restic_env restic backup -q -r "$REPO" --host bench diff-src)
  change_one_percent
  (cd "$BENCH" && restic_env restic backup -q -r "$REPO" --host bench diff-src)
  touch "$BENCH/diff.stamp"
}

snapshot_ids() {
  restic_env restic -r "$REPO" snapshots --json |
    python3 -c 'import json, sys; print(" ".join(s["id"] for s in json.load(sys.stdin)))'
}

# The two commands as argv prefixes (run under /usr/bin/time, so no shell functions).
restic_cmd() { RUN=(env RESTIC_PASSWORD_FILE="$PW" RESTIC_CACHE_DIR="$BENCH/cache-restic" restic -r "$REPO" diff); }
coffer_cmd() { RUN=("$COFFER_BIN" -r "$REPO" --password-file "$PW" --cache-dir "$BENCH/cache-coffer-diff" diff); }

# bench_tool NAME CMD_FN ARGS...: one warm-up run, then best of REPEAT; sets BEST_WALL/BEST_CPU/BEST_RSS.
bench_tool() {
  local name=$1 cmd=$2; shift 2
  $cmd
  "${RUN[@]}" "$@" > /dev/null
  bench "$name" true "${RUN[@]}" "$@"
}

main() {
  ensure_tools
  build_coffer
  [[ -x "$COFFER_BIN" ]] || { echo "coffer binary not found: $COFFER_BIN" >&2; exit 1; }
  prepare
  read -r -a ids <<< "$(snapshot_ids)"
  log "diff of two snapshots of $(find "$BENCH/diff-src" -type f | wc -l) files" \
    "(repository $(du -sh "$REPO" | cut -f1))"
  restic_cmd; "${RUN[@]}" "${ids[@]}" > "$BENCH/diff-restic.out"
  coffer_cmd; "${RUN[@]}" "${ids[@]}" > "$BENCH/diff-coffer.out"
  if ! cmp -s "$BENCH/diff-restic.out" "$BENCH/diff-coffer.out"; then
    echo "outputs differ: $BENCH/diff-restic.out $BENCH/diff-coffer.out" >&2; exit 1
  fi
  echo "  same output: $(grep -c '^[-+MTU]' "$BENCH/diff-restic.out") change lines"
  tail -7 "$BENCH/diff-restic.out" | sed 's/^/  /'
  for mode in text json; do
    local extra=(); [[ $mode == json ]] && extra=(--json)
    bench_tool "restic diff ($mode)" restic_cmd "${extra[@]}" "${ids[@]}"
    local rw=$BEST_WALL rr=$BEST_RSS rc=$BEST_CPU
    bench_tool "coffer diff ($mode)" coffer_cmd "${extra[@]}" "${ids[@]}"
    report "diff, 1% changed ($mode)" "$rw" "$rr" "$BEST_WALL" "$BEST_RSS" "$rc" "$BEST_CPU"
  done
  print_results "summary ($(nproc) cores; restic $(restic version | cut -d' ' -f2); warm cache)"
}

main
