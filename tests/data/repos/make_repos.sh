#!/usr/bin/env bash
# Regenerates the small restic-made repositories used by the unit tests
# (tests/repo/repository_test.cc). Made with the Debian restic 0.14 binary.
# Password of every repository: "coffer-test".
set -euo pipefail
cd "$(dirname "$0")"
export RESTIC_PASSWORD=coffer-test
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
mkdir -p "$src/data/sub dir"
printf 'hello coffer\n' > "$src/data/hello.txt"
: > "$src/data/empty"
head -c 300000 /dev/urandom > "$src/data/sub dir/random.bin"
head -c 700000 < <(yes 'compressible line of text') > "$src/data/text.txt"
ln -s hello.txt "$src/data/link"
touch -d '2020-02-03 04:05:06.123456789' "$src/data/hello.txt"
for v in 1 2; do
  rm -rf "v$v"
  restic init -q --repository-version "$v" -r "v$v"
  (cd "$src" && restic backup -q -r "$OLDPWD/v$v" --host golden --tag one data)
  (cd "$src" && restic backup -q -r "$OLDPWD/v$v" --host golden --tag two,three data)
  chmod -R u+w "v$v"
done
