#!/usr/bin/env bash
# Remote benchmark: coffer over B2's native API, served by the B2 emulator on loopback with added latency and a
# per-connection bandwidth cap (restic 0.14 cannot be pointed at another B2 endpoint, so coffer is compared with
# itself: one connection against the default).
#
#   scripts/bench/remote.sh [--small] [--repeat N] [--no-build]
#
# 1. Builds coffer (Release, build-bench/) unless COFFER_BIN is set or --no-build is given.
# 2. Creates, once, $COFFER_BENCH_DIR/remote-src (default /tmp/coffer-bench): a 256 MiB random file and 2,000
#    small text files (--small: 32 MiB and 200 files).
# 3. Starts tests/support/b2emu (in memory) and makes every request wait LATENCY_MS (default 30) and every
#    connection move at most CAP_MBPS MB/s (default 16), then:
#      backup upload throughput (default connections);
#      restore throughput with -o b2.connections=1 and with the default;
#      sequential read of the big file through `coffer mount` (default connections, no disk cache);
#      the B2 calls of an unchanged nightly re-run (by transaction class), with and without the local cache.
#    Prints the ratios the issue asks for: default/one connection (target >= 6x) and mount/restore (>= 0.8).
# Needs root for the mount (skipped otherwise), python3, fuse3. Not a ctest.
set -euo pipefail

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/bench/lib.sh
source "$SRC_DIR/scripts/bench/lib.sh"
parse_bench_args "$@"
if [[ $SMALL == 1 ]]; then
  BENCH=${COFFER_BENCH_DIR:-/tmp/coffer-bench-small}; BIG_MIB=32; SMALL_FILES=200
else
  BENCH=${COFFER_BENCH_DIR:-/tmp/coffer-bench}; BIG_MIB=256; SMALL_FILES=2000
fi
LATENCY_MS=${LATENCY_MS:-30}
CAP_MBPS=${CAP_MBPS:-16}
PW="$BENCH/password"
WORK="$BENCH/remote-work"
MNT="$BENCH/remote-mnt"
ACCOUNT=bench-account
EMU_PID=""

prepare() {
  mkdir -p "$BENCH"
  [[ -f "$PW" ]] || echo "bench-password-$(date +%s)" > "$PW"
  if [[ ! -f "$BENCH/remote.stamp" ]]; then
    log "creating $BENCH/remote-src (${BIG_MIB} MiB random file, $SMALL_FILES small files)"
    rm -rf "$BENCH/remote-src"
    mkdir -p "$BENCH/remote-src/text"
    head -c "$((BIG_MIB * 1024 * 1024))" /dev/urandom > "$BENCH/remote-src/big.bin"
    python3 - "$BENCH/remote-src/text" "$SMALL_FILES" <<'EOF'
import os, random, sys
rnd = random.Random(7)
words = "backup restore chunk pack index blob tree snapshot bucket latency bandwidth".split()
for i in range(int(sys.argv[2])):
    with open(os.path.join(sys.argv[1], "f%05d.txt" % i), "w") as f:
        f.write(" ".join(rnd.choice(words) for _ in range(rnd.randrange(50, 2000))))
EOF
    touch "$BENCH/remote.stamp"
  fi
}

start_emulator() {
  rm -rf "$WORK"; mkdir -p "$WORK" "$MNT"
  local secret; secret=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  printf '{"accounts": [{"accountId": "%s", "masterKey": "%s", "buckets": [{"bucketName": "coffer-bench"}]}]}\n' \
    "$ACCOUNT" "$secret" > "$WORK/accounts.json"
  chmod 600 "$WORK/accounts.json"
  export B2_ACCOUNT_ID=$ACCOUNT B2_ACCOUNT_KEY=$secret
  coproc EMU { exec python3 "$SRC_DIR/tests/support/b2emu/b2emu.py" --port 0 --accounts "$WORK/accounts.json"; }
  EMU_PID=$EMU_PID
  local line; read -r -t 20 line <&"${EMU[0]}"
  API=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["api_url"])' "$line")
  export COFFER_B2_ENDPOINT=$API
  CONTROL="$API/__control"
}

control() {  # control METHOD PATH [JSON]
  curl -fsS -X "$1" -H 'Content-Type: application/json' ${3:+--data "$3"} "$CONTROL$2" >/dev/null
}

slow_network() {
  control DELETE /faults
  control POST /faults "{\"match\": {\"op\": \"*\"}, \"action\": {\"type\": \"delay\", \"ms\": $LATENCY_MS}, \"count\": null}"
  control POST /faults "{\"match\": {\"op\": \"*\"}, \"action\": {\"type\": \"throttle\", \"bytes_per_sec\": $((CAP_MBPS * 1000000))}, \"count\": null}"
}

counters() { curl -fsS "$CONTROL/counters"; }

cleanup() {
  if mountpoint -q "$MNT" 2>/dev/null; then fusermount3 -u "$MNT" || umount -l "$MNT" || true; fi
  if [[ -n "$EMU_PID" ]]; then kill "$EMU_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

coffer_b2() { "$COFFER_BIN" -q -r b2:coffer-bench:repo --password-file "$PW" "$@"; }

timed() {  # timed CMD...: runs CMD, prints seconds
  local t; t=$(date +%s.%N)
  "$@" >/dev/null
  awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'
}

mbps() { awk -v mib="$1" -v s="$2" 'BEGIN { printf "%.1f", mib * 1.048576 / s }'; }

main() {
  ensure_tools
  build_coffer
  [[ -x "$COFFER_BIN" ]] || { echo "coffer binary not found: $COFFER_BIN" >&2; exit 1; }
  prepare
  start_emulator
  local total_mib s up one def mnt=""
  total_mib=$(du -sm --apparent-size "$BENCH/remote-src" | cut -f1)
  coffer_b2 --cache-dir "$WORK/cache" init
  slow_network
  log "backup of $total_mib MiB over ${LATENCY_MS} ms a request, ${CAP_MBPS} MB/s a connection"
  s=$(cd "$BENCH" && timed "$COFFER_BIN" -q -r b2:coffer-bench:repo --password-file "$PW" --cache-dir "$WORK/cache" \
    backup remote-src)
  up=$(mbps "$total_mib" "$s"); echo "  $s s, $up MB/s up"

  log "restore with one connection, then with the default"
  rm -rf "$WORK/t1"; s=$(timed coffer_b2 --no-cache -o b2.connections=1 restore latest --target "$WORK/t1")
  one=$(mbps "$total_mib" "$s"); echo "  one connection: $s s, $one MB/s"
  rm -rf "$WORK/t2"; s=$(timed coffer_b2 --no-cache restore latest --target "$WORK/t2")
  def=$(mbps "$total_mib" "$s"); echo "  default: $s s, $def MB/s"
  cmp "$WORK/t2/remote-src/big.bin" "$BENCH/remote-src/big.bin"
  rm -rf "$WORK/t1" "$WORK/t2"

  if [[ $(id -u) == 0 && -e /dev/fuse ]]; then
    log "sequential read of big.bin through coffer mount (no disk cache)"
    # In the foreground with -v, so its statistics (chunks fetched, RAM hits, ranged reads)
    # are printed when it is unmounted.
    "$COFFER_BIN" -v -r b2:coffer-bench:repo --password-file "$PW" --no-cache mount "$MNT" \
      2>"$WORK/mount.log" &
    local mount_pid=$! waited=0
    until mountpoint -q "$MNT"; do
      sleep 0.1
      if ((++waited > 300)) || ! kill -0 "$mount_pid" 2>/dev/null; then
        cat "$WORK/mount.log" >&2; echo "coffer mount did not start" >&2; exit 1
      fi
    done
    s=$(timed dd if="$MNT/snapshots/latest/remote-src/big.bin" of=/dev/null bs=1M status=none)
    mnt=$(mbps "$BIG_MIB" "$s"); echo "  $s s, $mnt MB/s"
    fusermount3 -u "$MNT"
    wait "$mount_pid"
    grep -E '^(coffer: )?mount:' "$WORK/mount.log" | sed 's/^/  /' || true
  fi

  log "B2 calls of an unchanged nightly re-run"
  control POST /counters/reset
  (cd "$BENCH" && "$COFFER_BIN" -q -r b2:coffer-bench:repo --password-file "$PW" --cache-dir "$WORK/cache" backup remote-src >/dev/null)
  local cached; cached=$(counters)
  control POST /counters/reset
  (cd "$BENCH" && "$COFFER_BIN" -q -r b2:coffer-bench:repo --password-file "$PW" --no-cache backup remote-src >/dev/null)
  local uncached; uncached=$(counters)

  log "summary ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); ${LATENCY_MS} ms a request, ${CAP_MBPS} MB/s a connection)"
  printf '%-44s %s MB/s\n' "backup upload" "$up"
  printf '%-44s %s MB/s one connection, %s MB/s default: %sx (target >= 6x)\n' "restore" "$one" "$def" \
    "$(ratio "$def" "$one")"
  if [[ -n "$mnt" ]]; then
    printf '%-44s %s MB/s = %s of restore (target >= 0.8)\n' "mount sequential read" "$mnt" "$(ratio "$mnt" "$def")"
  fi
  python3 - "$cached" "$uncached" <<'EOF'
import json, sys
for label, text in (("unchanged re-run, with the local cache", sys.argv[1]),
                    ("unchanged re-run, --no-cache", sys.argv[2])):
    c = json.loads(text)
    calls = ", ".join("%s %d" % (k, v) for k, v in sorted(c["calls"].items()))
    print("%-44s %d calls (class A %d, B %d, C %d): %s" % (label, sum(c["calls"].values()), c["classes"].get("A", 0),
          c["classes"].get("B", 0), c["classes"].get("C", 0), calls))
EOF
}

main
