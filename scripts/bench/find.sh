#!/usr/bin/env bash
# Find benchmark: `coffer find` vs `restic find` on the same repository in the same run.
#
#   scripts/bench/find.sh [--small] [--repeat N] [--no-build]
#
# 1. Builds coffer (Release, build-bench/) unless COFFER_BIN is set or --no-build is given.
# 2. Creates, once, under $COFFER_BENCH_DIR (default /tmp/coffer-bench; --small: /tmp/coffer-bench-small)
#    find-src/: 100k small distinct files in dirs of 1000 (--small: 10k; make_data.py index), and
#    repo-find/: a repository with 20 snapshots of it (restic backup), each after
#    0.5% of the files changed, so consecutive snapshots share most trees.
# 3. Times, best of REPEAT after one warm-up run of each (page cache warm for both alike):
#      a name pattern over all snapshots:  find 'f*77'   (plus --json)
#      a pack search (the data pack holding the most blobs):  find --pack ID
#    Wall time, CPU time (user+sys) and peak RSS from /usr/bin/time -v; prints restic/coffer
#    ratios. Checks that both print the same lines (restic's snapshot order is random: sorted).
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
REPO="$BENCH/repo-find"
SNAPSHOTS=20

# Appends a line to every 200th file, starting at a different file each round.
change_half_percent() {  # change_half_percent ROUND
  local n=0
  while IFS= read -r -d '' f; do
    if (((n + $1 * 37) % 200 == 0)); then printf 'round %s\n' "$1" >> "$f"; fi
    n=$((n + 1))
  done < <(find "$BENCH/find-src" -type f -print0 | sort -z)
}

prepare() {
  mkdir -p "$BENCH"
  [[ -f "$PW" ]] || echo "bench-password-$(date +%s)" > "$PW"
  if [[ -f "$BENCH/find.stamp" ]]; then return; fi
  log "creating $FILES files and $SNAPSHOTS snapshots in $REPO"
  rm -rf "$BENCH/find-src" "$REPO"
  python3 "$SRC_DIR/scripts/bench/make_data.py" index "$BENCH/find-src" --files "$FILES"
  restic_env restic init -q -r "$REPO"
  local i
  for ((i = 1; i <= SNAPSHOTS; i++)); do
    if ((i > 1)); then change_half_percent "$i"; fi
    (cd "$BENCH" && restic_env restic -q -r "$REPO" backup --host bench find-src)
  done
  touch "$BENCH/find.stamp"
}

# The data pack that holds the most blobs (from the index, via restic cat).
biggest_pack() {
  local idx
  for idx in $(restic_env restic -q -r "$REPO" list index); do
    restic_env restic -q -r "$REPO" cat index "$idx"
  done | python3 -c '
import json, sys
dec = json.JSONDecoder(); text = sys.stdin.read(); pos = 0; best = (0, "")
while pos < len(text.rstrip()):
    obj, pos = dec.raw_decode(text, pos)
    while pos < len(text) and text[pos].isspace(): pos += 1
    for p in obj["packs"]:
        n = sum(1 for b in p["blobs"] if b["type"] == "data")
        best = max(best, (n, p["id"]))
print(best[1])'
}

run_restic() { restic_env restic -r "$REPO" --no-lock find "$@"; }
run_coffer() { "$COFFER_BIN" -r "$REPO" --password-file "$PW" --cache-dir "$BENCH/cache-coffer" --no-lock find "$@"; }

# Output lines sorted; a --json array sorted by element (restic's snapshot order is random).
normalized() {
  python3 -c '
import json, sys
text = open(sys.argv[1], "rb").read()
if text.startswith(b"["):
    print("\n".join(sorted(json.dumps(x, sort_keys=True) for x in json.loads(text))))
else:
    sys.stdout.buffer.write(b"\n".join(sorted(text.split(b"\n"))))' "$1"
}

compare() {  # compare LABEL ARGS...: warm-up, timing of both tools, output check
  local label=$1; shift
  run_restic "$@" > "$BENCH/find-restic.out"
  run_coffer "$@" > "$BENCH/find-coffer.out"
  if ! cmp -s <(normalized "$BENCH/find-restic.out") <(normalized "$BENCH/find-coffer.out"); then
    echo "outputs differ for: find $*" >&2; exit 1
  fi
  echo "  $label: $(wc -c < "$BENCH/find-coffer.out") bytes of output, same in both (order aside)"
  bench "restic: $label" true env RESTIC_PASSWORD_FILE="$PW" RESTIC_CACHE_DIR="$BENCH/cache-restic" \
    restic -r "$REPO" --no-lock find "$@"
  local rw=$BEST_WALL rc=$BEST_CPU rr=$BEST_RSS
  bench "coffer: $label" true "$COFFER_BIN" -r "$REPO" --password-file "$PW" \
    --cache-dir "$BENCH/cache-coffer" --no-lock find "$@"
  report "$label" "$rw" "$rr" "$BEST_WALL" "$BEST_RSS" "$rc" "$BEST_CPU"
}

main() {
  ensure_tools
  build_coffer
  [[ -x "$COFFER_BIN" ]] || { echo "coffer binary not found: $COFFER_BIN" >&2; exit 1; }
  prepare
  local pack; pack=$(biggest_pack)
  log "find over $SNAPSHOTS snapshots of $FILES files; pack $pack"
  compare "name pattern" 'f*77'
  compare "name pattern --json" --json 'f*77'
  compare "--pack (data pack)" --pack "$pack"
  print_results "summary ($(nproc) cores; restic $(restic version | cut -d' ' -f2))"
}

main
