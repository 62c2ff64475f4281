#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs what is needed, builds coffer, and
# works a local repository (default: ~/coffer-demo/repo, override with COFFER_DEMO_DIR).
# coffer creates the repository (restic's format) and backs up a demo tree twice (the second
# run reads only what changed), `restic check --read-data` verifies what coffer wrote, coffer
# lists and restores the latest snapshot and the restore is compared with the source; finally
# every snapshot is mounted read-only at ~/coffer-demo/mnt.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
coffer="$PWD/build/coffer"

demo="${COFFER_DEMO_DIR:-$HOME/coffer-demo}"
repo="$demo/repo"
mkdir -p "$demo"
chmod 700 "$demo"
if [[ ! -f "$demo/password" ]]; then
  head -c 24 /dev/urandom | base64 > "$demo/password"
  chmod 600 "$demo/password"
fi
export RESTIC_REPOSITORY="$repo" RESTIC_PASSWORD_FILE="$demo/password"

src="$demo/source"
if [[ ! -d "$src" ]]; then
  mkdir -p "$src"
  cp -a /etc/apt /etc/ssh "$src/" 2>/dev/null || true
  cp -a "$PWD/repo" "$src/coffer-sources"
fi
if [[ ! -f "$repo/config" ]]; then
  echo "== coffer init"
  "$coffer" init
fi
echo "== coffer backup $src"
"$coffer" backup --tag demo "$src"
date > "$src/last-run.txt"
echo "== coffer backup $src (again: only changed files are read)"
"$coffer" backup --tag demo "$src"
echo "== restic check --read-data (restic verifies what coffer wrote)"
restic check --read-data -q && echo "restic check: no errors"

echo "== coffer snapshots"
"$coffer" snapshots
echo "== coffer ls latest (first lines)"
"$coffer" ls latest | head -n 8
target="$demo/restore-$(date +%s)"
echo "== coffer restore latest --target $target --verify"
"$coffer" restore latest --target "$target" --verify
diff -r "$src" "$target$src" && echo "restore matches the source: OK"

mnt="$demo/mnt"
mkdir -p "$mnt"
if mountpoint -q "$mnt"; then umount "$mnt" 2>/dev/null || fusermount3 -u "$mnt"; fi
echo "== coffer mount $mnt --daemon"
"$coffer" mount "$mnt" --daemon
ls "$mnt/snapshots/latest$src" | head -n 5
echo "The repository is mounted at $mnt (browse snapshots/latest/); unmount with: umount $mnt"
