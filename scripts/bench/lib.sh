# Shared helpers of the benchmark scripts (sourced, not run). The caller sets SRC_DIR, calls
# parse_bench_args "$@" (which sets SMALL, REPEAT and BUILD), then sets BENCH and PW; it may set
# COFFER_BIN.
# Needs: restic, /usr/bin/time (package `time`), python3, cmake; missing packages are installed.

RESULTS=()
DROP_WARN=0

# --small, --repeat N, --no-build, -h (prints the calling script's header comment).
parse_bench_args() {
  SMALL=0 REPEAT=1 BUILD=1
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --small) SMALL=1 ;;
      --repeat) REPEAT=$2; shift ;;
      --no-build) BUILD=0 ;;
      -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
      *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
  done
}

log() { printf '\n== %s\n' "$*"; }

ensure_tools() {
  local missing=()
  command -v restic >/dev/null || missing+=(restic)
  [[ -x /usr/bin/time ]] || missing+=(time)
  command -v python3 >/dev/null || missing+=(python3)
  if [[ $BUILD == 1 && -z "${COFFER_BIN:-}" ]]; then command -v cmake >/dev/null || missing+=(cmake); fi
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
}

build_coffer() {
  if [[ -n "${COFFER_BIN:-}" ]]; then return; fi
  local dir="$SRC_DIR/build-bench"
  COFFER_BIN="$dir/coffer"
  if [[ $BUILD == 0 ]]; then return; fi
  log "building coffer (Release) in $dir"
  if [[ ! -f "$dir/CMakeCache.txt" ]]; then
    cmake -S "$SRC_DIR" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCOFFER_TESTS=OFF >/dev/null
  fi
  cmake --build "$dir" -j2 --target coffer 2>&1 | tail -1
}

restic_env() {  # restic_env CMD...: runs CMD with restic's password and cache settings (usable under time)
  env RESTIC_PASSWORD_FILE="$PW" RESTIC_CACHE_DIR="$BENCH/cache-restic" "$@"
}

drop_caches() {
  sync
  if [[ -w /proc/sys/vm/drop_caches ]]; then
    echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || DROP_WARN=1
  else
    DROP_WARN=1
  fi
}

# measure NAME CMD...: runs CMD under /usr/bin/time -v; sets LAST_WALL (s), LAST_CPU (s) and LAST_RSS (MiB).
measure() {
  local name=$1; shift
  local tf; tf=$(mktemp)
  if ! /usr/bin/time -v -o "$tf" "$@" >"$BENCH/last.out" 2>"$BENCH/last.err"; then
    echo "FAILED: $name: $*" >&2; tail -5 "$BENCH/last.err" >&2; rm -f "$tf"; exit 1
  fi
  LAST_WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {
      n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s }' "$tf")
  LAST_CPU=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$tf")
  LAST_RSS=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$tf")
  rm -f "$tf"
  printf '  %-34s %8.2f s  cpu %8.2f s  peak RSS %8.1f MiB\n' "$name" "$LAST_WALL" "$LAST_CPU" "$LAST_RSS"
}

# best-of-REPEAT: bench NAME SETUP_FN CMD...; sets BEST_WALL/BEST_CPU/BEST_RSS.
bench() {
  local name=$1 setup=$2; shift 2
  BEST_WALL=""; BEST_CPU=""; BEST_RSS=""
  for ((i = 1; i <= REPEAT; i++)); do
    $setup
    measure "$name (run $i)" "$@"
    if [[ -z "$BEST_WALL" ]] || awk "BEGIN{exit !($LAST_WALL < $BEST_WALL)}"; then
      BEST_WALL=$LAST_WALL; BEST_CPU=$LAST_CPU; BEST_RSS=$LAST_RSS
    fi
  done
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }

report() {  # report WHAT RESTIC_WALL RESTIC_RSS COFFER_WALL COFFER_RSS [RESTIC_CPU COFFER_CPU]
  local cpu=""
  if [[ $# -ge 7 ]]; then cpu=$(printf ', cpu restic %.2f s coffer %.2f s (%sx)' "$6" "$7" "$(ratio "$6" "$7")"); fi
  RESULTS+=("$(printf '%-28s restic %8.2f s %8.1f MiB | coffer %8.2f s %8.1f MiB | time ratio restic/coffer %sx, RSS ratio %sx%s' \
    "$1" "$2" "$3" "$4" "$5" "$(ratio "$2" "$4")" "$(ratio "$3" "$5")" "$cpu")")
}

print_results() {  # print_results HEADING
  log "$1"
  printf '%s\n' "${RESULTS[@]}"
  if [[ $DROP_WARN == 1 ]]; then echo "note: could not drop the page cache (not root?): runs were not cold"; fi
}

# prepare_mixed_data SCALE: $BENCH/mixed (make_data.py mixed) and the password file, made once.
# restore.sh's mixed.stamp (data plus repo-mixed) counts as done too.
prepare_mixed_data() {
  mkdir -p "$BENCH"
  [[ -f "$PW" ]] || echo "bench-password-$(date +%s)" > "$PW"
  if [[ ! -f "$BENCH/mixed.stamp" && ! -f "$BENCH/mixed-data.stamp" ]]; then
    log "creating mixed data in $BENCH/mixed (scale $1)"
    rm -rf "$BENCH/mixed"
    python3 "$SRC_DIR/scripts/bench/make_data.py" mixed "$BENCH/mixed" --scale "$1"
    touch "$BENCH/mixed-data.stamp"
  fi
}

# prepare_index_repo FILES: FILES small distinct files in $BENCH/index-src, backed up once by restic into
# $BENCH/repo-index (an index of at least FILES data blobs).
prepare_index_repo() {
  if [[ ! -f "$BENCH/index.stamp" ]]; then
    log "creating $1 small files in $BENCH/index-src"
    rm -rf "$BENCH/index-src" "$BENCH/repo-index"
    python3 "$SRC_DIR/scripts/bench/make_data.py" index "$BENCH/index-src" --files "$1"
    restic_env restic init -q -r "$BENCH/repo-index"
    (cd "$BENCH" && restic_env restic backup -q -r "$BENCH/repo-index" --host bench index-src)
    touch "$BENCH/index.stamp"
  fi
}
