#!/usr/bin/env python3
"""`coffer backup` options, each run beside the real restic 0.14 with the same arguments: the exclude
options (patterns, files, case folding, CACHEDIR.TAG, marker files with headers, size limit,
--one-file-system across a tmpfs mounted inside the tree), --files-from and its -verbatim and -raw
variants, awkward target names; and coffer's own --dry-run, --stdin, --stdin-from-command and --json.
What restic stores is the reference: `restic ls` of both snapshots must list the same paths.
Run: COFFER_BIN=build/coffer python3 tests/tools/backup_options_test.py
"""

import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backup_support as B  # noqa: E402
import e2e_support as E  # noqa: E402

F = None
CACHEDIR_TAG = b"Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag.\n"
TREE = {  # relative path -> content (None: directory)
    "keep.txt": b"keep\n", "keep2.txt": b"keep too\n", "a.tmp": b"tmp\n", "UPPER.LOG": b"up\n",
    "lower.log": b"low\n", "sub/x.dat": b"dat\n", "sub/deep/y.txt": b"deep\n",
    "cache/CACHEDIR.TAG": CACHEDIR_TAG, "cache/junk": b"junk\n",
    "badcache/CACHEDIR.TAG": b"Signature: not the right one\n", "badcache/junk": b"kept\n",
    "marked/.nobackup": b"", "marked/m.txt": b"m\n", "hdr1/.skip": b"SKIPME please\n",
    "hdr1/h.txt": b"h1\n", "hdr2/.skip": b"other header\n", "hdr2/h.txt": b"h2\n",
    "  spaced name": b"spaces\n", "nl\nname": b"newline\n", "bad\udcff.bin": b"not utf-8\n",
}


class Fixture:
    def __init__(self):
        self.ws = E.Workspace("backup-opt")
        self.data = self.ws.path("data")
        self.opt = os.path.join(self.data, "opt")
        for rel, body in TREE.items():
            path = os.path.join(os.fsencode(self.opt), os.fsencode(rel))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(body)
        with open(os.path.join(self.opt, "large.bin"), "wb") as f:
            f.write(random.Random(5).randbytes(200 * 1024))
        self.template = E.ResticRepo(self.ws, "repo-template").init()
        self.mine = self.template.copy("repo-coffer")
        self.theirs = self.template.copy("repo-restic")
        self.mnt = os.path.join(self.opt, "mnt")
        self.mounted = False
        if E.IS_ROOT:  # last: a failing setUpModule gets no tearDownModule
            B.mount_tmpfs(self.mnt, "1m")
            self.mounted = True
            os.makedirs(os.path.join(self.mnt, "innerdir"))
            for rel in ("inner.txt", "innerdir/z"):
                with open(os.path.join(self.mnt, rel), "wb") as f:
                    f.write(b"on another filesystem\n")

    def cleanup(self):
        if self.mounted:
            B.umount(self.mnt)
        self.ws.cleanup()


def setUpModule():
    global F
    F = Fixture()


def tearDownModule():
    if F is not None:
        F.cleanup()


class Base(unittest.TestCase):
    maxDiff = None

    def both(self, *args, cwd=None):
        """The same backup by coffer and by restic; returns (coffer run, restic run)."""
        mine = B.coffer_backup(F.mine, *args, cwd=cwd or F.data)
        theirs = B.restic_backup(F.theirs, *args, cwd=cwd or F.data)
        return mine, theirs

    def assertSameListing(self, mine, theirs):
        got, want = B.ls_paths(F.mine, mine.snapshot_id), B.ls_paths(F.theirs, theirs.snapshot_id)
        self.assertEqual(want, got, "restic ls of coffer's snapshot vs restic's")
        return set(got)

    def assertSamePaths(self, mine, theirs):
        got = B.snapshot(F.mine, mine.snapshot_id)["paths"]
        self.assertEqual(B.snapshot(F.theirs, theirs.snapshot_id)["paths"], got, "snapshot paths")
        return got


# --------------------------------------------------------------------------------------------------
class ExcludeTest(Base):
    def cases(self):
        exclude_file = F.ws.write("excludes", "# a comment\n\n   *.dat   \nhdr*")
        iexclude_file = F.ws.write("iexcludes", "*.LOG\nKEEP2.TXT")
        return [  # (name, options, paths below opt/ that must be absent, ... present)
            ("exclude", ["--exclude", "*.tmp", "--exclude", "sub/deep", "--exclude",
                         os.path.join(F.opt, "keep2.txt")], ["a.tmp", "sub/deep", "keep2.txt"],
             ["keep.txt", "sub/x.dat"]),
            ("iexclude", ["--iexclude", "*.log"], ["UPPER.LOG", "lower.log"], ["keep.txt"]),
            ("exclude-file", ["--exclude-file", exclude_file], ["sub/x.dat", "hdr1", "hdr2"],
             ["sub/deep/y.txt", "keep.txt"]),
            ("iexclude-file", ["--iexclude-file", iexclude_file], ["lower.log", "UPPER.LOG", "keep2.txt"],
             ["keep.txt"]),
            ("exclude-caches", ["--exclude-caches"], ["cache/junk"], ["badcache/junk", "cache"]),
            ("exclude-if-present", ["--exclude-if-present", ".nobackup"], ["marked/m.txt"],
             ["hdr1/h.txt", "marked"]),
            ("exclude-if-present with header", ["--exclude-if-present", ".skip:SKIPME"],
             ["hdr1/h.txt"], ["hdr2/h.txt", "marked/m.txt"]),
            ("exclude-larger-than", ["--exclude-larger-than", "100K"], ["large.bin"], ["keep.txt"]),
            ("one-file-system", ["-x"], ["mnt/inner.txt", "mnt/innerdir"], ["keep.txt", "mnt"]),
            ("none", [], [], ["mnt/innerdir/z", "cache/junk", "large.bin", "a.tmp"]),
        ]

    def test_exclude_options_like_restic(self):
        made = []
        for name, opts, absent, present in self.cases():
            with self.subTest(case=name):
                if name == "one-file-system" and not F.mounted:
                    self.skipTest("needs root to mount a tmpfs")
                mine, theirs = self.both(*opts, "opt")
                listing = self.assertSameListing(mine, theirs)
                for rel in absent:
                    self.assertNotIn(b"/opt/" + rel.encode(), listing)
                for rel in present:
                    self.assertIn(b"/opt/" + rel.encode(), listing)
                made.append((name, mine.snapshot_id, theirs.snapshot_id))
        for name, mine, theirs in made:  # restic records the --exclude flags only
            with self.subTest(case=name, field="excludes"):
                self.assertEqual(B.snapshot(F.theirs, theirs).get("excludes"),
                                 B.snapshot(F.mine, mine).get("excludes"))

    def test_bad_pattern_fails(self):
        res = F.mine.coffer("backup", "--exclude", "[", F.opt)
        self.assertEqual(res.rc, 1, res.describe())


# --------------------------------------------------------------------------------------------------
class FilesFromTest(Base):
    def test_files_from_globs_comments_and_spaces(self):
        listing = F.ws.write("files-from", "opt/k*.txt\n# comment\n\n   opt/sub   \n")
        mine, theirs = self.both("--files-from", listing, "opt/large.bin")
        paths = self.assertSamePaths(mine, theirs)
        self.assertEqual(sorted(paths), sorted(os.path.join(F.opt, n)
                                               for n in ("keep.txt", "keep2.txt", "sub", "large.bin")))
        self.assertSameListing(mine, theirs)

    def test_files_from_verbatim(self):
        listing = F.ws.write("files-verbatim", "opt/  spaced name\nopt/keep.txt\n\nopt/sub/deep")
        mine, theirs = self.both("--files-from-verbatim", listing)
        self.assertIn(os.path.join(F.opt, "  spaced name"), self.assertSamePaths(mine, theirs))
        self.assertSameListing(mine, theirs)

    def test_files_from_raw(self):
        listing = F.ws.path("files-raw")
        with open(listing, "wb") as f:
            f.write(b"opt/nl\nname\0opt/bad\xff.bin\0opt/hdr1\0")
        mine, theirs = self.both("--files-from-raw", listing)
        self.assertEqual(len(self.assertSamePaths(mine, theirs)), 3)
        self.assertSameListing(mine, theirs)
        with open(listing, "wb") as f:
            f.write(b"opt/keep.txt\0\0opt/hdr1")  # an empty name: restic refuses the listing
        self.assertEqual(F.theirs.restic("backup", "--files-from-raw", listing, check=False).rc, 1)
        res = F.mine.coffer("backup", "--files-from-raw", listing)
        self.assertEqual(res.rc, 1, res.describe())

    def test_awkward_names_as_arguments(self):
        mine, theirs = self.both(b"opt/nl\nname", b"opt/bad\xff.bin", "opt/  spaced name")
        self.assertEqual(len(self.assertSamePaths(mine, theirs)), 3)
        listing = self.assertSameListing(mine, theirs)
        self.assertIn(b"/opt/bad\xff.bin", listing)
        target = F.ws.fresh("restore")
        F.mine.coffer_ok("restore", mine.snapshot_id, "--target", target)
        for name in (b"nl\nname", b"bad\xff.bin", b"  spaced name"):
            with open(os.path.join(os.fsencode(target), b"opt", name), "rb") as f:
                self.assertEqual(f.read(), TREE[os.fsdecode(name)])


# --------------------------------------------------------------------------------------------------
class OtherOptionsTest(Base):
    def test_dry_run_stores_nothing(self):
        repo = F.template.copy("repo-dry")
        before = B.repo_listing(repo.path)
        run = B.coffer_backup(repo, "--dry-run", F.opt)
        self.assertEqual(before, B.repo_listing(repo.path), "--dry-run changed the repository")
        self.assertTrue(run.summary["dry_run"])
        self.assertIsNone(run.snapshot_id)
        self.assertGreater(run.summary["data_blobs"], 0)
        self.assertGreater(run.summary["files_new"], 10)
        short = B.coffer_backup(repo, "-n", F.opt)
        self.assertEqual(run.summary["files_new"], short.summary["files_new"])
        self.assertEqual(before, B.repo_listing(repo.path))

    def test_stdin_round_trip(self):
        # Longer than restic's largest chunk (8 MiB), so two chunks whatever the repository's
        # chunker polynomial (3 MiB gave one chunk now and then: the polynomial is random).
        data = random.Random(8).randbytes(9 * E.MiB) + b"tail"
        run = B.coffer_backup(F.mine, "--stdin", "--stdin-filename", "in.bin", input=data)
        self.assertEqual(B.snapshot(F.mine, run.snapshot_id)["paths"], ["/in.bin"])
        self.assertTrue(F.mine.restic("dump", run.snapshot_id, "/in.bin").out == data, "dump differs")
        self.assertGreaterEqual(len(F.mine.node(run.snapshot_id, "/in.bin")["content"]), 2)
        default = B.coffer_backup(F.mine, "--stdin", input=b"small input\n")
        self.assertEqual(B.snapshot(F.mine, default.snapshot_id)["paths"], ["/stdin"])
        self.assertEqual(F.mine.restic("dump", default.snapshot_id, "/stdin").out, b"small input\n")

    def test_stdin_from_command(self):
        script = "printf 'first\\nsecond\\n'; head -c 1500000 /dev/zero; printf end"
        run = B.coffer_backup(F.mine, "--stdin-from-command", "--stdin-filename", "cmd.out", "--",
                              "sh", "-c", script)
        got = F.mine.restic("dump", run.snapshot_id, "/cmd.out").out
        self.assertTrue(got == b"first\nsecond\n" + bytes(1500000) + b"end", "dump differs")

    def test_failing_command_saves_nothing(self):
        for cmd in (["sh", "-c", "printf partial; exit 3"], ["sh", "-c", "kill -9 $$"],
                    [F.ws.path("no-such-command")]):
            with self.subTest(cmd=cmd[-1]):
                F.mine.forget_memo()
                count = len(F.mine.snapshots())
                run = B.coffer_backup(F.mine, "--stdin-from-command", "--", *cmd, rc=1)
                self.assertIsNone(run.snapshot_id)
                self.assertEqual(len(F.mine.snapshots()), count, "a snapshot was saved")
                self.assertEqual(F.mine.list("locks"), [])

    def test_json_lines(self):
        res = F.mine.coffer("backup", "--json", "--host", "json", F.opt, F.ws.path("missing"))
        self.assertEqual(res.rc, 3, res.describe())
        lines = B.parse_json_lines(res)
        self.assertTrue(lines)
        self.assertEqual({ln["message_type"] for ln in lines[:-1]} - {"status"}, set())
        self.assertEqual(lines[-1]["message_type"], "summary")
        self.assertEqual(sorted(set(B.SUMMARY_KEYS[2:]) - set(lines[-1])), [])
        F.mine.forget_memo()
        self.assertIn(lines[-1]["snapshot_id"], [s["id"] for s in F.mine.snapshots()])
        errors = B.parse_json_lines(E.CmdResult(res.argv, res.rc, res.err, b""))
        self.assertTrue(any("missing" in e.get("error", {}).get("message", "") for e in errors), errors)

    def test_bad_option_values(self):
        for args in (["--compression", "fast"], ["--exclude-larger-than", "12q"], ["--time", "yesterday"],
                     ["--stdin", F.opt]):
            with self.subTest(args=args):
                res = F.mine.coffer("backup", *args, *([] if "--stdin" in args else [F.opt]))
                self.assertEqual(res.rc, 1, res.describe())


if __name__ == "__main__":
    E.run_tests()
