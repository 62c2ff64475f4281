#!/usr/bin/env python3
"""Creates benchmark source trees for scripts/bench/restore.sh (standard library only).

  make_data.py mixed DIR [--scale S]   many small text files, a few large incompressible files and a sparse
                                       disk image; S=1.0 gives >= 1 GiB of real data
  make_data.py index DIR --files N     N small distinct files (one data blob each) in dirs of 1000

Existing DIR is refused (the caller reuses finished trees by a stamp file).
"""

import argparse
import os
import random
import sys

MiB = 1024 * 1024
WORDS = ("restic coffer chunk pack index blob tree snapshot backup restore sparse hole extent inode "
         "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
         "labore et dolore magna aliqua").split()


def text_corpus(rnd: random.Random, size: int) -> bytes:
    lines, total = [], 0
    while total < size:
        line = " ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(4, 16))) + "\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()


def write_small_text(root: str, count: int, rnd: random.Random) -> int:
    corpus = text_corpus(rnd, 8 * MiB)
    total = 0
    for i in range(count):
        d = os.path.join(root, "text", "d%03d" % (i // 500))
        if i % 500 == 0:
            os.makedirs(d, exist_ok=True)
        n = int(rnd.lognormvariate(8.5, 1.0)) % (256 * 1024) + 1  # median ~5 KiB, long tail
        start = rnd.randrange(0, len(corpus) - n)
        with open(os.path.join(d, "f%06d.txt" % i), "wb") as f:
            f.write(b"file %d\n" % i + corpus[start:start + n])
        total += n
    return total


def write_large(root: str, count: int, size: int) -> int:
    os.makedirs(os.path.join(root, "large"), exist_ok=True)
    for i in range(count):
        with open(os.path.join(root, "large", "random%02d.bin" % i), "wb") as f:
            for _ in range(size // MiB):
                f.write(os.urandom(MiB))
    return count * size


def write_sparse(root: str, size: int, data: int, rnd: random.Random) -> int:
    """A disk image: `size` apparent bytes, `data` bytes written in 1 MiB extents, holes elsewhere."""
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    path = os.path.join(root, "images", "disk.img")
    extents = sorted(rnd.sample(range(size // MiB), data // MiB))
    with open(path, "wb") as f:
        f.truncate(size)
        for e in extents:
            f.seek(e * MiB)
            # half incompressible, half text-like (file system metadata and logs compress well)
            f.write(os.urandom(MiB) if e % 2 else text_corpus(rnd, MiB)[:MiB])
    return data


def make_mixed(root: str, scale: float) -> None:
    rnd = random.Random(20240601)
    small = write_small_text(root, int(30000 * scale), rnd)
    large = write_large(root, 3, max(1, int(200 * scale)) * MiB)
    sparse = write_sparse(root, max(8, int(2048 * scale)) * MiB, max(2, int(256 * scale)) * MiB, rnd)
    print("mixed data: %.0f MiB text, %.0f MiB random, %.0f MiB in the sparse image"
          % (small / MiB, large / MiB, sparse / MiB))


def make_index(root: str, files: int) -> None:
    for i in range(files):
        d = os.path.join(root, "d%04d" % (i // 1000))
        if i % 1000 == 0:
            os.makedirs(d)
        with open(os.path.join(d, "f%07d" % i), "wb") as f:
            f.write(b"distinct blob %d %s\n" % (i, os.urandom(12).hex().encode()))
    print("index data: %d files" % files)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=("mixed", "index"))
    ap.add_argument("dir")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--files", type=int, default=200_000)
    args = ap.parse_args()
    if os.path.exists(args.dir):
        print("refusing to overwrite %s" % args.dir, file=sys.stderr)
        return 1
    os.makedirs(args.dir)
    if args.kind == "mixed":
        make_mixed(args.dir, args.scale)
    else:
        make_index(args.dir, args.files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
