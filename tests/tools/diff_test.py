#!/usr/bin/env python3
"""coffer diff against restic 0.14's diff on the same repositories, byte for byte.

Two repositories: "restic-made" (snapshots written by restic backup) and "coffer-made" (written by
coffer backup), both keyed by `coffer init` (scrypt p=1: restic's calibrated key costs seconds per
coffer run under ASan). Each gets three snapshots of a source tree: A; B = A with additions,
removals, a content change, a file that became a directory, one that became a symlink, a
directory that became a file, mode-only and mtime-only changes, a renamed directory, a file whose
content moved into another file, a file removed while a copy of it lives on in an unchanged
subtree (restic then counts its blob as not removed), a fifo, names that need JSON escapes or are
not UTF-8; C = B unchanged. A deep subtree stays the same throughout, so the snapshots share it.
Before each backup every file is read once and every directory listed, so that atime updates
(relatime) do not leak into the next snapshot. Output is compared with restic's for every pair
in text, --metadata, --json, -q, and with id prefixes. Bad input: exit codes and one-line errors.
Run: COFFER_BIN=build/coffer python3 tests/tools/diff_test.py
"""

import concurrent.futures
import os
import random
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_support as E  # noqa: E402

F = None


def write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def settle(root: str) -> None:
    """Reads every file and lists every directory, so the next backup sees settled atimes."""
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames:
            p = os.path.join(dirpath, n)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    f.read()


def make_state_a(src: str, rnd: random.Random) -> None:
    deep = os.path.join(src, "deep", "l1", "l2", "l3", "l4")
    for i in range(4):
        write(os.path.join(deep, "f%d.txt" % i), b"deep %d\n" % i * 40)
        write(os.path.join(src, "deep", "l1", "g%d.txt" % i), b"l1 %d\n" % i * 30)
    write(os.path.join(src, "deep", "l1", "keep.bin"), b"shared content\n" * 100)
    write(os.path.join(src, "dupfile.bin"), b"shared content\n" * 100)
    write(os.path.join(src, "a", "x.txt"), b"version one\n")
    write(os.path.join(src, "a", "b", "same.txt"), b"same\n")
    write(os.path.join(src, "gone", "inner", "f.txt"), b"gone\n")
    write(os.path.join(src, "gone", "g.txt"), b"gone too\n")
    write(os.path.join(src, "olddir", "r1.txt"), b"renamed 1\n")
    write(os.path.join(src, "olddir", "sub", "r2.txt"), b"renamed 2\n")
    write(os.path.join(src, "tofile", "t.txt"), b"dir becomes file\n")
    write(os.path.join(src, "todir"), b"file becomes dir\n")
    write(os.path.join(src, "tolink"), b"file becomes symlink\n")
    write(os.path.join(src, "mode.txt"), b"mode changes\n")
    write(os.path.join(src, "mtime.txt"), b"mtime changes\n")
    write(os.path.join(src, "empty"), b"")
    write(os.path.join(src, "mover.bin"), rnd.randbytes(2 * E.MiB))
    write(os.path.join(src, "big.bin"), rnd.randbytes(4 * E.MiB))
    write(os.path.join(src, "spec", "a<b>&c.txt"), b"json escapes\n")
    write(os.fsdecode(os.path.join(os.fsencode(src), b"spec", b"bad-\xff-name")), b"not utf-8\n")
    os.symlink("x.txt", os.path.join(src, "a", "link"))
    os.mkfifo(os.path.join(src, "a", "fifo"))
    os.utime(os.path.join(src, "mtime.txt"), ns=(1_500_000_000 * 10**9, 1_500_000_000 * 10**9))


def make_state_b(src: str, rnd: random.Random) -> None:
    write(os.path.join(src, "a", "x.txt"), b"version two, longer\n")
    write(os.path.join(src, "a", "new.txt"), b"added\n")
    write(os.path.join(src, "newdir", "n1", "n.txt"), b"new dir\n")
    shutil.rmtree(os.path.join(src, "gone"))
    os.rename(os.path.join(src, "olddir"), os.path.join(src, "newname"))
    shutil.rmtree(os.path.join(src, "tofile"))
    write(os.path.join(src, "tofile"), b"now a file\n")
    os.remove(os.path.join(src, "todir"))
    write(os.path.join(src, "todir", "inside.txt"), b"file becomes dir\n")
    os.remove(os.path.join(src, "tolink"))
    os.symlink("a/x.txt", os.path.join(src, "tolink"))
    os.chmod(os.path.join(src, "mode.txt"), 0o600)
    os.utime(os.path.join(src, "mtime.txt"), ns=(1_600_000_000 * 10**9, 1_600_000_000 * 10**9))
    os.remove(os.path.join(src, "dupfile.bin"))  # its blob lives on in deep/l1/keep.bin
    os.remove(os.path.join(src, "a", "link"))
    os.symlink("new.txt", os.path.join(src, "a", "link"))
    os.remove(os.path.join(src, "a", "fifo"))
    os.mkfifo(os.path.join(src, "newfifo"))
    with open(os.path.join(src, "mover.bin"), "rb") as f:
        moved = f.read()
    os.remove(os.path.join(src, "mover.bin"))
    write(os.path.join(src, "a", "b", "moved-here.bin"), moved)
    with open(os.path.join(src, "big.bin"), "rb") as f:
        big = f.read()
    write(os.path.join(src, "big.bin"), rnd.randbytes(777) + big)  # content shifts across blobs
    write(os.path.join(src, "spec2", "x<y>&z\u2028.txt"), b"json escapes\n")
    write(os.fsdecode(os.path.join(os.fsencode(src), b"spec2", b"bad-\xfe-name")), b"not utf-8\n")


class Fixture:
    def __init__(self):
        self.ws = E.Workspace("diff")
        data = self.ws.path("data")
        src = os.path.join(data, "src")
        rnd = random.Random(11)
        os.makedirs(src)
        self.restic_repo = E.ResticRepo(self.ws, "restic-made").init_with_coffer()
        self.coffer_repo = E.ResticRepo(self.ws, "coffer-made").init_with_coffer()
        self.snaps = {self.restic_repo.name: [], self.coffer_repo.name: []}
        for step in (make_state_a, make_state_b, None):
            if step:
                step(src, rnd)
            settle(src)
            self.restic_repo.backup(["src"], "host", cwd=data)
            self.coffer_repo.coffer_ok("backup", "--host", "host", "src", cwd=data)
        for repo in (self.restic_repo, self.coffer_repo):
            repo.forget_memo()
            self.snaps[repo.name] = [s["id"] for s in repo.snapshots()]
            assert len(self.snaps[repo.name]) == 3, self.snaps


def setUpModule():
    global F
    F = Fixture()


def tearDownModule():
    if F is not None:
        F.ws.cleanup()


def both(repo: E.ResticRepo, args) -> tuple:
    r = repo.restic("diff", *args, check=False)
    c = repo.coffer("diff", *args)
    return r, c


class DiffTest(unittest.TestCase):
    maxDiff = None

    def compare(self, cases):
        """cases: (repo, args); coffer's stdout and exit code must equal restic's."""
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda c: both(*c), cases))
        for (repo, args), (r, c) in zip(cases, results):
            with self.subTest(repo=repo.name, args=args):
                self.assertEqual(r.rc, 0, r.describe())
                self.assertEqual(c.rc, 0, c.describe())
                self.assertEqual(c.out.decode(errors="replace"), r.out.decode(errors="replace"))
                self.assertEqual(c.out, r.out)
        return results

    def pairs(self, repo):
        a, b, c = F.snaps[repo.name]
        return [(a, b), (b, a), (b, c)]

    def test_text_matches_restic(self):
        cases = []
        for repo in (F.restic_repo, F.coffer_repo):
            for s1, s2 in self.pairs(repo):
                cases.append((repo, [s1, s2]))
                cases.append((repo, ["--metadata", s1, s2]))
        results = self.compare(cases)
        text = results[0][1].out
        for want in (b"M    /src/a/x.txt\n", b"T    /src/todir/\n", b"T    /src/tofile\n",
                     b"T    /src/tolink\n", b"-    /src/gone/inner/\n", b"+    /src/newname/sub/r2.txt\n",
                     b"+    /src/a/b/moved-here.bin\n", b"-    /src/mover.bin\n"):
            self.assertIn(want, text)
        self.assertNotIn(b"/src/deep/", text)
        meta = results[1][1].out
        self.assertIn(b"U    /src/mode.txt\n", meta)
        self.assertIn(b"U    /src/mtime.txt\n", meta)

    def test_json_matches_restic(self):
        cases = []
        for repo in (F.restic_repo, F.coffer_repo):
            for s1, s2 in self.pairs(repo):
                cases.append((repo, ["--json", s1, s2]))
            a, b, _ = F.snaps[repo.name]
            cases.append((repo, ["--json", "--metadata", a, b]))
        results = self.compare(cases)
        lines = E.json_lines(results[0][1].out)
        self.assertEqual(lines[-1]["message_type"], "statistics")
        self.assertTrue(any("\\u003c" in ln for ln in results[0][1].out.decode().split("\n")))

    def test_identical_snapshots(self):
        cases = []
        for repo in (F.restic_repo, F.coffer_repo):
            a, b, c = F.snaps[repo.name]
            cases += [(repo, [a, a]), (repo, ["--json", b, b])]
        results = self.compare(cases)
        self.assertIn(b"Files:           0 new,     0 removed,     0 changed", results[0][1].out)

    def test_quiet_and_prefixes(self):
        cases = []
        for repo in (F.restic_repo, F.coffer_repo):
            a, b, _ = F.snaps[repo.name]
            cases += [(repo, ["-q", a, b]), (repo, ["-q", "--json", a, b]),
                      (repo, [a[:8], b[:12]]), (repo, ["--json", a[:8], b])]
        results = self.compare(cases)
        self.assertTrue(results[0][1].out.startswith(b"\nFiles:"))

    def test_bad_input(self):
        repo = F.restic_repo
        a, b, _ = F.snaps[repo.name]
        for args in ([a, "0000000000"], ["latest", b], [a, b + "0"], [a], [a[:8].upper(), b],
                     [a[:8] + ":src", b], [a, b, a]):
            with self.subTest(args=args):
                r, c = both(repo, args)
                self.assertEqual(r.rc, 1, r.describe())
                self.assertEqual(c.rc, 1, c.describe())
                self.assertEqual(c.out, b"")
        c = repo.coffer("diff", a, b, pwfile=F.ws.wrong_pwfile)
        self.assertEqual(c.rc, 12,
                         c.describe())
        c = E.run([E.COFFER_BIN, "-r", F.ws.path("no-such-repo"), "--password-file", F.ws.pwfile,
                   "diff", a, b], env=repo.env)
        E.check_sane(c)
        self.assertEqual(c.rc, 10, c.describe())


if __name__ == "__main__":
    E.run_tests()
