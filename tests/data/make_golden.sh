#!/usr/bin/env bash
# Regenerates the golden tree blobs (tests/data/trees/) and snapshot files
# (tests/data/snapshots/) with the real restic binary. Needs: restic (0.14), root (mknod,
# chown), setfattr, python3 with `cryptography`, zstd. See tests/data/README.md.
#
# Usage: sudo tests/data/make_golden.sh   (from anywhere; writes next to this script)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# Fixed path (stable labels); tmpfs keeps 64-bit timestamps and user xattrs.
work=/dev/shm/coffer-golden
rm -rf "$work" && mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
export RESTIC_PASSWORD=golden-password
export RESTIC_REPOSITORY="$work/repo"
export RESTIC_CACHE_DIR="$work/cache"
# Times are written in the local zone: snapshot 0 in Berlin (+01:00, +02:00, LMT +00:53:28),
# the later ones in Monrovia (Z today, -00:44:30 before 1972).
export TZ=Europe/Berlin

src="$work/src"
d="$src/data"
mkdir -p "$d/sub/deeper" "$d/sticky" "$d/sgid_dir" "$d/empty_dir"

# Regular files with awkward names.
printf 'hello\n' >"$d/plain.txt"
: >"$d/empty"
printf 'a' >"$d/with space.txt"
printf 'b' >"$d/"$'nl\nname'
printf 'c' >"$d/"'q"uo\te<&>.txt'
printf 'd' >"$d/"$'name_\xff.txt'
printf 'e' >"$d/$(printf 'L%.0s' $(seq 1 251)).txt"  # 255-byte name
printf 'f' >"$d/привет.txt"
printf 'g' >"$d/文件.txt"
printf 'h' >"$d/😀.txt"
# Not printable for Go's strconv: tab, DEL, 0x01, NBSP, ZWSP, U+2028, private use,
# a tag character (Cf, > U+FFFF) and U+1FAE0 (assigned in Unicode 14, after Go 1.19's 13).
printf 'i' >"$d/ctl"$'\t\x7f\x01'"_ $(printf '\u00a0\u200b\u2028\ue000')"
printf 'j' >"$d/sup_$(printf '\U000e0001\U0001fae0')_ok$(printf '\u0301\u00e9')"
printf 'k' >"$d/sub/deeper/file.bin"
printf 'sticky' >"$d/sticky/inside"
head -c 3000000 /dev/urandom >"$d/big.bin"  # several content blobs

# Links, special files, modes, owners.
ln -s plain.txt "$d/link_ok"
ln -s $'target_\xfe\xff/x' "$d/link_bad"
printf 'hard' >"$d/hard1"
ln "$d/hard1" "$d/hard2"
ln "$d/hard1" "$d/sub/hard3"
mkfifo -m 0644 "$d/fifo"
mknod -m 0644 "$d/null_dev" c 1 3
mknod -m 0600 "$d/loop_dev" b 7 200
printf 'x' >"$d/suid" && chmod 4755 "$d/suid"
chmod 1777 "$d/sticky"
chmod 2750 "$d/sgid_dir"
printf 'o' >"$d/owned" && chown 12345:54321 "$d/owned"

# Extended attributes (binary value, empty value, several on one file, on a dir).
setfattr -n user.test -v 0x76616c0075 "$d/plain.txt"
setfattr -n user.empty -v '""' "$d/plain.txt"
setfattr -n user.utf -v '"ünï<&>"' "$d/plain.txt"
setfattr -n user.dirattr -v 1 "$d/sub"

# Times: fractions, trailing zeros, before 1970, an LMT offset (Berlin 1890: +00:53:28).
touch -h -d '2021-03-04 05:06:07.123456789' "$d/plain.txt"
touch -h -d '2021-07-04 05:06:07.120000000' "$d/with space.txt"
touch -h -d '2000-01-01 00:00:00' "$d/empty"
touch -h -d '1960-06-01 12:00:00.5' "$d/owned"
touch -h -d '1890-05-05 10:00:00.25' "$d/suid"
touch -h -d '2022-02-02 22:22:22.000000001' "$d/link_bad"
touch -h -d '9999-12-31 23:59:59.999999999' "$d/sub/deeper/file.bin"
for dir in "$d/sub/deeper" "$d/sub" "$d/sticky" "$d/sgid_dir" "$d/empty_dir" "$d"; do
  touch -h -d '2023-10-29 02:30:00.75' "$dir"
done

restic init -q
cd "$src"
restic backup -q --host goldenhost --tag alpha --tag 'b<&>"' data
export TZ=Africa/Monrovia
restic backup -q --host goldenhost --exclude '*.tmp' "$d"
restic backup -q --host goldenhost --exclude '*.tmp' "$d"  # has "parent"
first="$(restic snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')"
restic tag -q --add retagged "$first"  # rewritten snapshot gets "original"

python3 - "$here" "$work" <<'EOF'
import base64, json, os, subprocess, sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

here, work = sys.argv[1], sys.argv[2]
repo = os.path.join(work, "repo")

def restic(*args):
    return subprocess.run(["restic", *args], check=True, capture_output=True).stdout

mk = json.loads(restic("cat", "masterkey"))
enc_key = base64.b64decode(mk["encrypt"])

def decrypt_unpacked(path):
    raw = open(path, "rb").read()
    iv, body = raw[:16], raw[16:-16]
    plain = Cipher(algorithms.AES(enc_key), modes.CTR(iv)).decryptor().update(body)
    if plain[:1] == b"\x02":  # repository v2: 0x02 + zstd frame
        plain = subprocess.run(["zstd", "-dcq"], input=plain[1:], check=True,
                               capture_output=True).stdout
    return plain

def label_of(n, path):
    return f"s{n}_" + (path.strip("/").replace("/", "_") if path else "root")

trees_dir = os.path.join(here, "trees")
snaps_dir = os.path.join(here, "snapshots")
for dd in (trees_dir, snaps_dir):
    os.makedirs(dd, exist_ok=True)
    for f in os.listdir(dd):
        os.remove(os.path.join(dd, f))

snaps = json.loads(restic("snapshots", "--json"))
def utc_key(t):  # RFC 3339 with up to 9 fraction digits -> comparable UTC datetime
    import datetime, re
    m = re.match(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", t)
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.datetime.fromisoformat(f"{m.group(1)}.{frac}{zone}")
snaps.sort(key=lambda s: (utc_key(s["time"]), s["id"]))
manifest, seen = [], set()
for n, s in enumerate(snaps):
    raw = decrypt_unpacked(os.path.join(repo, "snapshots", s["id"]))
    name = f"snapshot{n}.json"
    open(os.path.join(snaps_dir, name), "wb").write(raw)
    manifest.append(f"{name} {s['id']}")
    # Walk the trees of this snapshot; a tree seen before keeps its first label.
    stack = [("", json.loads(raw)["tree"])]
    while stack:
        path, tid = stack.pop()
        if tid in seen:
            continue
        seen.add(tid)
        blob = restic("cat", "blob", tid)
        open(os.path.join(trees_dir, f"{label_of(n, path)}.json"), "wb").write(blob)
        with open(os.path.join(trees_dir, "MANIFEST"), "a") as m:
            m.write(f"{label_of(n, path)}.json {tid}\n")
        for node in json.loads(blob)["nodes"]:
            if node.get("subtree"):
                child = node["name"] if not path else path + "/" + node["name"]
                stack.append((child, node["subtree"]))
open(os.path.join(snaps_dir, "MANIFEST"), "w").write("\n".join(manifest) + "\n")
EOF
echo "golden files written to $here/trees and $here/snapshots"
