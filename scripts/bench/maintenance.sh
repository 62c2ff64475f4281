#!/usr/bin/env bash
# Maintenance benchmark: `coffer prune` and `coffer check --read-data` against restic's, same data, same run.
#
#   scripts/bench/maintenance.sh [--small] [--repeat N] [--no-build]
#
# 1. Builds coffer (Release, build-bench/) unless COFFER_BIN is set or --no-build is given.
# 2. Uses restore.sh's mixed/ data (>= 1 GiB; created if missing) and makes, once, repo-maint/: restic backs up
#    ten variants of it (each run replaces a tenth of the small files and one large file), so that forgetting
#    half the snapshots leaves packs to delete and packs to repack.
# 3. For each tool, on a fresh copy of repo-maint (page cache dropped): `check --read-data`, then
#    `forget --keep-last 5` (restic's, untimed, the same for both) followed by a timed `prune`.
#    Both repositories must then pass `restic check`, and the prunes must have removed the same snapshots.
# Prints wall time, CPU time and peak RSS of both, and ratios restic/coffer. Not a ctest.
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

prepare() {
  prepare_mixed_data "$SCALE"
  if [[ ! -f "$BENCH/maint.stamp" ]]; then
    log "making repo-maint: ten restic snapshots of changing variants of mixed/"
    rm -rf "$BENCH/repo-maint" "$BENCH/maint-src"
    cp -a "$BENCH/mixed" "$BENCH/maint-src"
    restic_env restic init -q -r "$BENCH/repo-maint"
    for i in $(seq 0 9); do
      python3 - "$BENCH/maint-src" "$i" <<'EOF'
import os, sys
root, round_ = sys.argv[1], int(sys.argv[2])
text = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(root, "text")) for f in fs)
for path in text[round_::10]:  # a tenth of the small files change
    with open(path, "ab") as f:
        f.write(b"round %d\n" % round_)
large = sorted(os.path.join(root, "large", f) for f in os.listdir(os.path.join(root, "large")))
with open(large[round_ % len(large)], "r+b") as f:  # and one large file, in its first 64 MiB
    f.write(os.urandom(64 * 1024 * 1024))
EOF
      (cd "$BENCH" && restic_env restic backup -q -r "$BENCH/repo-maint" --host bench \
        --time "2026-01-$(printf '%02d' $((i + 1))) 03:00:00" maint-src)
    done
    touch "$BENCH/maint.stamp"
  fi
}

fresh_copy() {  # fresh_copy TOOL: repo-maint copied to repo-maint-TOOL, caches removed, page cache dropped
  rm -rf "$BENCH/repo-maint-$1" "$BENCH/cache-restic" "$BENCH/cache-coffer"
  cp -a "$BENCH/repo-maint" "$BENCH/repo-maint-$1"
  drop_caches
}

run_check() {
  log "check --read-data"
  bench "restic check --read-data" "fresh_copy restic" \
    env RESTIC_PASSWORD_FILE="$PW" RESTIC_CACHE_DIR="$BENCH/cache-restic" \
    restic -q -r "$BENCH/repo-maint-restic" check --read-data
  local rw=$BEST_WALL rr=$BEST_RSS rc=$BEST_CPU
  bench "coffer check --read-data" "fresh_copy coffer" \
    "$COFFER_BIN" -q -r "$BENCH/repo-maint-coffer" --password-file "$PW" --cache-dir "$BENCH/cache-coffer" \
    check --read-data
  report "check --read-data" "$rw" "$rr" "$BEST_WALL" "$BEST_RSS" "$rc" "$BEST_CPU"
}

forget_half() {  # forget_half TOOL: fresh copy, then restic forgets the five oldest snapshots
  fresh_copy "$1"
  restic_env restic -q -r "$BENCH/repo-maint-$1" forget --keep-last 5 >/dev/null
  drop_caches
}

run_prune() {
  log "prune after forgetting half the snapshots"
  bench "restic prune" "forget_half restic" \
    env RESTIC_PASSWORD_FILE="$PW" RESTIC_CACHE_DIR="$BENCH/cache-restic" \
    restic -q -r "$BENCH/repo-maint-restic" prune
  local rw=$BEST_WALL rr=$BEST_RSS rc=$BEST_CPU
  bench "coffer prune" "forget_half coffer" \
    "$COFFER_BIN" -q -r "$BENCH/repo-maint-coffer" --password-file "$PW" --cache-dir "$BENCH/cache-coffer" prune
  report "prune (half forgotten)" "$rw" "$rr" "$BEST_WALL" "$BEST_RSS" "$rc" "$BEST_CPU"
  for t in restic coffer; do
    restic_env restic -q -r "$BENCH/repo-maint-$t" check >/dev/null ||
      { echo "FAILED: restic check after $t prune" >&2; exit 1; }
    echo "  after $t prune: $(du -sh "$BENCH/repo-maint-$t" | cut -f1)," \
      "$(find "$BENCH/repo-maint-$t/data" -type f | wc -l) packs"
  done
}

main() {
  ensure_tools
  build_coffer
  [[ -x "$COFFER_BIN" ]] || { echo "coffer binary not found: $COFFER_BIN" >&2; exit 1; }
  prepare
  run_check
  run_prune
  print_results "summary (best of $REPEAT; $(nproc) cores; restic $(restic version | cut -d' ' -f2))"
  rm -rf "$BENCH/repo-maint-restic" "$BENCH/repo-maint-coffer"
}

main
