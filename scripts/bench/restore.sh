#!/usr/bin/env bash
# Restore benchmark: coffer vs restic on repositories made by the real restic binary.
#
#   scripts/bench/restore.sh [--small] [--repeat N] [--no-build]
#
# 1. Builds coffer (Release, build dir build-bench/) unless COFFER_BIN is set or --no-build is given.
# 2. Creates, once, under $COFFER_BENCH_DIR (default /tmp/coffer-bench; --small: /tmp/coffer-bench-small):
#      mixed/       >= 1 GiB: ~30k small text files, 3 x 200 MiB random files, a 2 GiB sparse disk image
#      index-src/   200,000 small distinct files (>= 200k data blobs in the index)
#    and backs each up with restic into repo-mixed/ and repo-index/. Finished steps leave a stamp file, so
#    later runs reuse the data; delete the directory to start over.
# 3. Times `restic restore` and `coffer restore` of the same snapshot (page cache dropped before each run
#    when /proc/sys/vm/drop_caches is writable, no local cache), then a cold open + `ls latest` of the
#    200k-blob repository (no local cache, page cache dropped) and the same with a warm cache.
#    Wall time and peak RSS come from /usr/bin/time -v. Prints ratios restic/coffer.
# Needs: restic, /usr/bin/time (package `time`), python3, cmake; missing packages are installed with apt-get.
# Not a ctest. Exits non-zero when a command fails or coffer's restore differs from restic's in size/count.
set -euo pipefail

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/bench/lib.sh
source "$SRC_DIR/scripts/bench/lib.sh"
parse_bench_args "$@"

if [[ $SMALL == 1 ]]; then
  BENCH=${COFFER_BENCH_DIR:-/tmp/coffer-bench-small}; SCALE=0.05; INDEX_FILES=20000
else
  BENCH=${COFFER_BENCH_DIR:-/tmp/coffer-bench}; SCALE=1.0; INDEX_FILES=200000
fi
PW="$BENCH/password"

prepare() {
  mkdir -p "$BENCH"
  [[ -f "$PW" ]] || echo "bench-password-$(date +%s)" > "$PW"
  if [[ ! -f "$BENCH/mixed.stamp" ]]; then
    log "creating mixed data in $BENCH/mixed (scale $SCALE)"
    rm -rf "$BENCH/mixed" "$BENCH/repo-mixed"
    python3 "$SRC_DIR/scripts/bench/make_data.py" mixed "$BENCH/mixed" --scale "$SCALE"
    restic_env restic init -q -r "$BENCH/repo-mixed"
    (cd "$BENCH" && restic_env restic backup -q -r "$BENCH/repo-mixed" --host bench mixed)
    touch "$BENCH/mixed.stamp"
  fi
  prepare_index_repo "$INDEX_FILES"
}

tree_summary() {  # files, dirs, apparent bytes of a restored tree
  (cd "$1" && printf '%s files, %s dirs, %s bytes' "$(find . -type f | wc -l)" "$(find . -type d | wc -l)" \
    "$(find . -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')")
}

setup_restic_restore() { rm -rf "$BENCH/target-restic" "$BENCH/cache-restic"; drop_caches; }
setup_coffer_restore() { rm -rf "$BENCH/target-coffer" "$BENCH/cache-coffer"; drop_caches; }
setup_cold() { rm -rf "$BENCH/cache-restic" "$BENCH/cache-coffer"; drop_caches; }
setup_warm() { drop_caches; }

run_restore_bench() {
  local repo="$BENCH/repo-mixed"
  log "restore of the mixed snapshot ($(du -sh --apparent-size "$BENCH/mixed" | cut -f1) apparent)"
  bench "restic restore" setup_restic_restore \
    env RESTIC_PASSWORD_FILE="$PW" RESTIC_CACHE_DIR="$BENCH/cache-restic" restic -q -r "$repo" restore latest --target "$BENCH/target-restic"
  local rw=$BEST_WALL rr=$BEST_RSS
  bench "coffer restore" setup_coffer_restore \
    "$COFFER_BIN" -q -r "$repo" --password-file "$PW" --cache-dir "$BENCH/cache-coffer" \
    restore latest --target "$BENCH/target-coffer"
  report "restore (mixed data)" "$rw" "$rr" "$BEST_WALL" "$BEST_RSS"
  local a b
  a=$(tree_summary "$BENCH/target-restic"); b=$(tree_summary "$BENCH/target-coffer")
  echo "  restic restored: $a"; echo "  coffer restored: $b"
  echo "  disk image blocks: restic $(du -sh "$BENCH/target-restic/mixed/images/disk.img" | cut -f1)," \
    "coffer $(du -sh "$BENCH/target-coffer/mixed/images/disk.img" | cut -f1)"
  if [[ "$a" != "$b" ]]; then echo "MISMATCH between the restored trees" >&2; exit 1; fi
  if ! cmp -s "$BENCH/target-restic/mixed/large/random00.bin" "$BENCH/target-coffer/mixed/large/random00.bin"; then
    echo "MISMATCH: large/random00.bin differs" >&2; exit 1
  fi
  rm -rf "$BENCH/target-restic" "$BENCH/target-coffer"
}

run_ls_bench() {
  local repo="$BENCH/repo-index"
  log "open + ls latest of a repository with $INDEX_FILES data blobs"
  bench "restic ls (cold)" setup_cold \
    env RESTIC_PASSWORD_FILE="$PW" RESTIC_CACHE_DIR="$BENCH/cache-restic" restic -q -r "$repo" ls latest
  local rw=$BEST_WALL rr=$BEST_RSS lines_r
  lines_r=$(wc -l < "$BENCH/last.out")
  bench "coffer ls (cold)" setup_cold \
    "$COFFER_BIN" -q -r "$repo" --password-file "$PW" --cache-dir "$BENCH/cache-coffer" ls latest
  report "open+ls cold (${INDEX_FILES} blobs)" "$rw" "$rr" "$BEST_WALL" "$BEST_RSS"
  echo "  output lines: restic $lines_r, coffer $(wc -l < "$BENCH/last.out")"
  bench "restic ls (warm cache)" setup_warm \
    env RESTIC_PASSWORD_FILE="$PW" RESTIC_CACHE_DIR="$BENCH/cache-restic" restic -q -r "$repo" ls latest
  rw=$BEST_WALL; rr=$BEST_RSS
  bench "coffer ls (warm cache)" setup_warm \
    "$COFFER_BIN" -q -r "$repo" --password-file "$PW" --cache-dir "$BENCH/cache-coffer" ls latest
  report "open+ls warm (${INDEX_FILES} blobs)" "$rw" "$rr" "$BEST_WALL" "$BEST_RSS"
}

main() {
  ensure_tools
  build_coffer
  [[ -x "$COFFER_BIN" ]] || { echo "coffer binary not found: $COFFER_BIN" >&2; exit 1; }
  prepare
  run_restore_bench
  run_ls_bench
  print_results "summary (best of $REPEAT; $(nproc) cores; restic $(restic version | cut -d' ' -f2))"
}

main
