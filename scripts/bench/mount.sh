#!/usr/bin/env bash
# Mount benchmark: `coffer mount` vs `restic mount` on the same restic-made repositories, same run.
#
#   scripts/bench/mount.sh [--small] [--repeat N] [--no-build]
#
# 1. Builds coffer (Release, build-bench/) unless COFFER_BIN is set or --no-build is given.
# 2. Creates, once, under $COFFER_BENCH_DIR (default /tmp/coffer-bench; --small: /tmp/coffer-bench-small):
#      mountsrc/big.bin   1 GiB of random bytes (--small: 64 MiB)
#      mountsrc/disk.img  a 2 GiB ext4 image made with `mke2fs -d` from ~600 MiB of text and random
#                         files (--small: 256 MiB)
#    backed up by restic into repo-mount/; and repo-index100/, a copy of restore.sh's repo-index (200,000
#    data blobs) with 99 older snapshots of a small directory added (100 snapshots in all).
# 3. For each tool, on a fresh mount with the page cache dropped (and coffer's chunk cache emptied):
#      cold sequential read of big.bin (dd, 1 MiB blocks), then a re-read on the same mount;
#      4 KiB random reads of big.bin (fio, 4 jobs, 20 s, readahead off);
#      `e2fsck -fn` of disk.img attached read-only with `losetup -r`;
#      time from starting the mount to the first `ls snapshots/latest/` of repo-index100;
#      the daemon's peak RSS (VmHWM) in each case.
#    Then coffer alone over a backend that waits 20 ms a request (COFFER_DEBUG_LATENCY_MS=20): a
#    sequential read with the defaults against one request at a time (--prefetch 0 --fetch-threads 1).
#    Prints ratios restic/coffer (speed-ups for throughput, time ratios for times).
# COFFER_MOUNT_ARGS adds options to every `coffer mount` (e.g. "--cache-mem 512M").
# Needs root (mounts, loop devices, dropping caches), restic, fio, e2fsprogs, fuse3; installs what is missing.
# Not a ctest. Exits non-zero when a command fails or the data read back differs.
set -euo pipefail

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/bench/lib.sh
source "$SRC_DIR/scripts/bench/lib.sh"
parse_bench_args "$@"
if [[ $SMALL == 1 ]]; then
  BENCH=${COFFER_BENCH_DIR:-/tmp/coffer-bench-small}; BIG_MIB=64; IMG_MIB=256; INDEX_FILES=20000
else
  BENCH=${COFFER_BENCH_DIR:-/tmp/coffer-bench}; BIG_MIB=1024; IMG_MIB=2048; INDEX_FILES=200000
fi
PW="$BENCH/password"
MNT="$BENCH/mnt"
CHUNKS="$BENCH/cache-coffer-mount"
LAT_MIB=$((BIG_MIB < 256 ? BIG_MIB : 256))  # bytes read in the latency case
DAEMON_PID=""

ensure_mount_tools() {
  local missing=()
  command -v fio >/dev/null || missing+=(fio)
  command -v mke2fs >/dev/null || missing+=(e2fsprogs)
  command -v fusermount3 >/dev/null || missing+=(fuse3)
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

prepare() {
  mkdir -p "$BENCH" "$MNT"
  [[ -f "$PW" ]] || echo "bench-password-$(date +%s)" > "$PW"
  if [[ ! -f "$BENCH/mount.stamp" ]]; then
    log "creating $BENCH/mountsrc (${BIG_MIB} MiB random file, ${IMG_MIB} MiB ext4 image)"
    rm -rf "$BENCH/mountsrc" "$BENCH/imgsrc" "$BENCH/repo-mount"
    mkdir -p "$BENCH/mountsrc" "$BENCH/imgsrc"
    head -c "$((BIG_MIB * 1024 * 1024))" /dev/urandom > "$BENCH/mountsrc/big.bin"
    python3 "$SRC_DIR/scripts/bench/make_data.py" mixed "$BENCH/imgsrc/data" --scale "$(awk -v m="$IMG_MIB" 'BEGIN { printf "%.3f", m / 4096 }')"
    rm -f "$BENCH/imgsrc/data/images/disk.img"
    head -c "$((IMG_MIB * 1024 * 1024 / 8))" /dev/urandom > "$BENCH/imgsrc/blob.bin"
    mke2fs -q -F -t ext4 -d "$BENCH/imgsrc" "$BENCH/mountsrc/disk.img" "${IMG_MIB}M"
    rm -rf "$BENCH/imgsrc"
    restic_env restic init -q -r "$BENCH/repo-mount"
    (cd "$BENCH" && restic_env restic backup -q -r "$BENCH/repo-mount" --host bench mountsrc)
    touch "$BENCH/mount.stamp"
  fi
  prepare_index_repo "$INDEX_FILES"
  if [[ ! -f "$BENCH/index100.stamp" ]]; then
    log "adding 99 older snapshots to a copy of repo-index (repo-index100)"
    rm -rf "$BENCH/repo-index100" "$BENCH/tiny"
    cp -a "$BENCH/repo-index" "$BENCH/repo-index100"
    mkdir -p "$BENCH/tiny"
    for i in $(seq 1 99); do
      echo "day $i" > "$BENCH/tiny/note.txt"
      (cd "$BENCH" && restic_env restic backup -q -r "$BENCH/repo-index100" --host "host$((i % 3))" \
        --tag "t$((i % 5))" --time "$(date -u -d "2024-01-01 + $i days" '+%Y-%m-%d %H:%M:%S')" tiny)
    done
    touch "$BENCH/index100.stamp"
  fi
}

# --- mounting --------------------------------------------------------------------------------------

# mount_coffer REPO [EXTRA...]: mounts REPO on $MNT in the background (returns once the tree is up).
mount_coffer() {
  local repo=$1; shift
  # shellcheck disable=SC2086 # COFFER_MOUNT_ARGS is a list of words
  "$COFFER_BIN" -q -r "$repo" --password-file "$PW" --cache-dir "$CHUNKS" mount --daemon \
    ${COFFER_MOUNT_ARGS:-} "$@" "$MNT"
  DAEMON_PID=$(pgrep -n -f "coffer-mount .*$MNT\$")
}

# mount_restic REPO: starts `restic mount` on $MNT and waits until snapshots/ answers.
mount_restic() {
  # env execs restic, so $! is restic's own pid (a shell function here would put a subshell between).
  env RESTIC_PASSWORD_FILE="$PW" RESTIC_CACHE_DIR="$BENCH/cache-restic" \
    restic -q -r "$1" mount "$MNT" >"$BENCH/restic-mount.log" 2>&1 &
  DAEMON_PID=$!
  wait_listing "$MNT/snapshots" 120
}

# wait_listing DIR SECONDS: polls `ls DIR` every 20 ms until it lists something.
wait_listing() {
  local deadline=$((SECONDS + $2))
  until [[ -n "$(ls "$1" 2>/dev/null)" ]]; do
    if ((SECONDS > deadline)); then echo "FAILED: $1 did not appear" >&2; exit 1; fi
    sleep 0.02
  done
}

peak_rss_mib() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$DAEMON_PID/status"; }

unmount_all() {
  if mountpoint -q "$MNT"; then
    fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" || true
  fi
  if [[ -n "$DAEMON_PID" ]]; then
    for _ in $(seq 1 200); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
  fi
}
trap 'unmount_all' EXIT

# fresh_mount TOOL REPO [EXTRA...]: unmounts, empties coffer's chunk cache, drops the page cache, mounts.
fresh_mount() {
  local tool=$1; shift
  unmount_all
  rm -rf "$CHUNKS" "$BENCH/cache-restic"
  drop_caches
  "mount_$tool" "$@"
}

# --- measurements ----------------------------------------------------------------------------------

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
mbps() { awk -v mib="$1" -v s="$2" 'BEGIN { printf "%.0f", mib * 1.048576 / s }'; }

# file_in_mount NAME: path of mountsrc/NAME under snapshots/latest/ (the tree starts at the last
# component of the backed-up path).
file_in_mount() { echo "$MNT/snapshots/latest/mountsrc/$1"; }

# seq_read PATH MIB: reads MIB MiB with dd; prints the seconds taken.
seq_read() {
  local t; t=$(now)
  dd if="$1" of=/dev/null bs=1M count="$2" status=none
  elapsed "$t"
}

# rand_iops PATH: 4 KiB random reads, 4 jobs, 20 s; prints the IOPS.
rand_iops() {
  fio --name=rand --filename="$1" --readonly --rw=randread --bs=4k --numjobs=4 --runtime=20 \
    --time_based --ioengine=psync --fadvise_hint=1 --invalidate=1 --group_reporting \
    --output-format=json >"$BENCH/fio.json"
  python3 -c 'import json,sys; print("%.0f" % json.load(open(sys.argv[1]))["jobs"][0]["read"]["iops"])' \
    "$BENCH/fio.json"
}

# fsck_image PATH: attaches PATH read-only to a loop device and runs e2fsck -fn; prints the seconds.
fsck_image() {
  local dev t secs
  dev=$(losetup -r -f --show "$1")
  t=$(now)
  if ! e2fsck -fn "$dev" >"$BENCH/fsck.out" 2>&1; then
    losetup -d "$dev"; echo "FAILED: e2fsck found problems in $1" >&2; cat "$BENCH/fsck.out" >&2; exit 1
  fi
  secs=$(elapsed "$t")
  losetup -d "$dev"
  echo "$secs"
}

declare -A R  # results: R[tool.case], the best over --repeat runs

# put KEY VALUE max|min: keeps the higher (rates) or lower (times, RSS) of VALUE and R[KEY].
put() {
  local old=${R[$1]:-}
  if [[ -z "$old" ]] || awk -v a="$2" -v b="$old" -v m="$3" 'BEGIN { exit !(m == "max" ? a > b : a < b) }'; then
    R[$1]=$2
  fi
}

run_reads() {
  local tool=$1 big img s
  big=$(file_in_mount big.bin); img=$(file_in_mount disk.img)
  log "$tool: sequential read of ${BIG_MIB} MiB, cold, then again"
  fresh_mount "$tool" "$BENCH/repo-mount"
  s=$(seq_read "$big" "$BIG_MIB") || exit 1
  put "$tool.cold" "$(mbps "$BIG_MIB" "$s")" max
  s=$(seq_read "$big" "$BIG_MIB") || exit 1
  put "$tool.reread" "$(mbps "$BIG_MIB" "$s")" max
  if ! cmp -s "$big" "$BENCH/mountsrc/big.bin"; then echo "MISMATCH: $tool read big.bin wrong" >&2; exit 1; fi
  put "$tool.rss_seq" "$(peak_rss_mib)" min
  echo "  cold ${R[$tool.cold]} MB/s, re-read ${R[$tool.reread]} MB/s, peak RSS ${R[$tool.rss_seq]} MiB"

  log "$tool: 4 KiB random reads (fio, 4 jobs, 20 s), cold mount"
  fresh_mount "$tool" "$BENCH/repo-mount"
  local iops; iops=$(rand_iops "$big") || exit 1
  put "$tool.iops" "$iops" max
  put "$tool.rss_rand" "$(peak_rss_mib)" min
  echo "  ${R[$tool.iops]} IOPS, peak RSS ${R[$tool.rss_rand]} MiB"

  log "$tool: e2fsck -fn of the ${IMG_MIB} MiB image on a read-only loop device, cold mount"
  fresh_mount "$tool" "$BENCH/repo-mount"
  s=$(fsck_image "$img") || exit 1
  put "$tool.fsck" "$s" min
  put "$tool.rss_fsck" "$(peak_rss_mib)" min
  echo "  ${R[$tool.fsck]} s, peak RSS ${R[$tool.rss_fsck]} MiB"
  unmount_all
}

run_first_ls() {
  local tool=$1 t
  log "$tool: start to first ls of snapshots/latest/ (${INDEX_FILES} blobs, 100 snapshots), no cache"
  unmount_all
  rm -rf "$CHUNKS" "$BENCH/cache-restic"
  drop_caches
  t=$(now)
  "mount_$tool" "$BENCH/repo-index100"
  wait_listing "$MNT/snapshots/latest" 300
  put "$tool.first_ls" "$(elapsed "$t")" min
  put "$tool.rss_ls" "$(peak_rss_mib)" min
  echo "  ${R[$tool.first_ls]} s, peak RSS ${R[$tool.rss_ls]} MiB"
  unmount_all
}

run_latency() {
  log "coffer over a backend with 20 ms a request: ${LAT_MIB} MiB sequential, defaults vs one request at a time"
  local big s
  big=$(file_in_mount big.bin)
  export COFFER_DEBUG_LATENCY_MS=20
  fresh_mount coffer "$BENCH/repo-mount" --cache-size 0
  s=$(seq_read "$big" "$LAT_MIB") || exit 1
  R[lat.default]=$(mbps "$LAT_MIB" "$s")
  fresh_mount coffer "$BENCH/repo-mount" --cache-size 0 --prefetch 0 --fetch-threads 1
  s=$(seq_read "$big" "$LAT_MIB") || exit 1
  R[lat.serial]=$(mbps "$LAT_MIB" "$s")
  unset COFFER_DEBUG_LATENCY_MS
  unmount_all
  echo "  defaults ${R[lat.default]} MB/s, one request at a time ${R[lat.serial]} MB/s"
}

main() {
  ensure_tools
  ensure_mount_tools
  build_coffer
  [[ -x "$COFFER_BIN" ]] || { echo "coffer binary not found: $COFFER_BIN" >&2; exit 1; }
  prepare
  for _ in $(seq 1 "$REPEAT"); do
    run_reads restic; run_reads coffer
    run_first_ls restic; run_first_ls coffer
  done
  run_latency
  log "summary ($(nproc) cores; restic $(restic version | cut -d' ' -f2); speed-up = coffer/restic for rates, restic/coffer for times)"
  printf '%-40s restic %8s | coffer %8s | speed-up %sx\n' \
    "cold sequential read (MB/s)" "${R[restic.cold]}" "${R[coffer.cold]}" "$(ratio "${R[coffer.cold]}" "${R[restic.cold]}")" \
    "re-read (MB/s)" "${R[restic.reread]}" "${R[coffer.reread]}" "$(ratio "${R[coffer.reread]}" "${R[restic.reread]}")" \
    "4 KiB random reads (IOPS)" "${R[restic.iops]}" "${R[coffer.iops]}" "$(ratio "${R[coffer.iops]}" "${R[restic.iops]}")" \
    "e2fsck -fn of the image (s)" "${R[restic.fsck]}" "${R[coffer.fsck]}" "$(ratio "${R[restic.fsck]}" "${R[coffer.fsck]}")" \
    "start to first ls (s)" "${R[restic.first_ls]}" "${R[coffer.first_ls]}" "$(ratio "${R[restic.first_ls]}" "${R[coffer.first_ls]}")"
  printf '%-40s restic %8s | coffer %8s | ratio %sx\n' \
    "peak RSS, sequential (MiB)" "${R[restic.rss_seq]}" "${R[coffer.rss_seq]}" "$(ratio "${R[restic.rss_seq]}" "${R[coffer.rss_seq]}")" \
    "peak RSS, random (MiB)" "${R[restic.rss_rand]}" "${R[coffer.rss_rand]}" "$(ratio "${R[restic.rss_rand]}" "${R[coffer.rss_rand]}")" \
    "peak RSS, e2fsck (MiB)" "${R[restic.rss_fsck]}" "${R[coffer.rss_fsck]}" "$(ratio "${R[restic.rss_fsck]}" "${R[coffer.rss_fsck]}")" \
    "peak RSS, first ls (MiB)" "${R[restic.rss_ls]}" "${R[coffer.rss_ls]}" "$(ratio "${R[restic.rss_ls]}" "${R[coffer.rss_ls]}")"
  printf '%-40s %s MB/s with defaults, %s MB/s one request at a time: %sx\n' \
    "20 ms a request, sequential" "${R[lat.default]}" "${R[lat.serial]}" "$(ratio "${R[lat.default]}" "${R[lat.serial]}")"
  if [[ $DROP_WARN == 1 ]]; then echo "note: could not drop the page cache (not root?): runs were not cold"; fi
}

main
