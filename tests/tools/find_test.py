#!/usr/bin/env python3
"""coffer find against restic 0.14's find on the same repositories, byte for byte.

Two repositories: "restic-made" (three snapshots written by restic backup at fixed --time values,
hosts alpha/beta/alpha and tags one/two/one+two; the last two have the same tree) and
"coffer-made" (two snapshots written by coffer backup). Both get their key from `coffer init`
(scrypt p=1): restic's calibrated key costs seconds per coffer run under ASan.
The source tree has fixed mtimes, identical subtrees under different names (restic's walker
skips a subtree it found nothing in before, wherever it meets it again: coffer must too), a
non-UTF-8 name, a non-ASCII name, a symlink and an empty directory. Every file is far below
the chunker's minimum size, so each is exactly one blob whatever the chunker polynomial.

restic 0.14 loads snapshots on parallel workers, so without -s its snapshot order is random:
those runs are compared per snapshot (blocks sorted); runs with -s in a fixed order are compared
as they are. --show-pack-id prints from a Go map (random order): compared as a set of records.
Run: COFFER_BIN=build/coffer python3 tests/tools/find_test.py
"""

import concurrent.futures
import calendar
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_support as E  # noqa: E402

F = None
POOL = concurrent.futures.ThreadPoolExecutor(max_workers=2)


def utc(text: str) -> int:
    """Nanoseconds since the epoch of 'YYYY-MM-DD HH:MM:SS' UTC (plus a fraction for realism)."""
    return calendar.timegm(tuple(int(x) for x in text.replace("-", " ").replace(":", " ").split())
                           + (0, 0, 0)) * 10**9 + 123456789


def write(path: bytes, data: bytes, when: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    ns = utc(when)
    os.utime(path, ns=(ns, ns))


def make_source(src: bytes) -> None:
    files = {
        b"bar/sub/f.txt": (b"same\n", "2023-05-05 10:00:00"),
        b"foo/sub/f.txt": (b"same\n", "2023-05-05 10:00:00"),
        b"foo/readme.md": (b"foo readme\n", "2023-05-05 10:00:00"),
        b"docs/readme.txt": (b"docs\n", "2020-03-01 12:00:00"),
        b"docs/Notes.TXT": (b"notes\n", "2020-03-01 12:00:00"),
        b"docs/cfg.json": (b"{}\n", "2020-03-01 12:00:00"),
        b"code/a.c": (b"int a;\n", "2021-07-15 08:30:00"),
        b"code/b.c": (b"int b;\n", "2021-07-15 08:30:00"),
        b"code/abc.h": (b"int abc;\n", "2021-07-15 08:30:00"),
        b"code/[x].c": (b"int x;\n", "2021-07-15 08:30:00"),
        b"deep/l1/l2/l3/leaf.txt": (b"leaf\n", "2022-01-01 00:00:00"),
        "Ünïcode.TXT".encode(): (b"unicode\n", "2023-05-05 10:00:00"),
        b"bad\xffname.txt": (b"bad\n", "2023-05-05 10:00:00"),
    }
    for rel, (data, when) in files.items():
        write(os.path.join(src, rel), data, when)
    os.makedirs(os.path.join(src, b"empty"))
    os.symlink(b"docs/readme.txt", os.path.join(src, b"link"))
    set_dir_times(src)


def set_dir_times(src: bytes) -> None:
    ns = utc("2023-06-01 09:00:00")
    os.utime(os.path.join(src, b"link"), ns=(ns, ns), follow_symlinks=False)
    for dirpath, _, _ in sorted(os.walk(src), key=lambda t: -len(t[0])):
        os.utime(dirpath, ns=(ns, ns))


class Fixture:
    def __init__(self):
        self.ws = E.Workspace("find")
        data = self.ws.path("data")
        src = os.fsencode(os.path.join(data, "src"))
        make_source(src)
        r = self.restic_repo = E.ResticRepo(self.ws, "restic-made").init_with_coffer()
        self.s1 = r.backup(["src"], "alpha", ["one"], cwd=data, extra=["--time", "2024-01-05 10:00:00"])
        write(os.path.join(src, b"code/new.c"), b"int n;\n", "2021-08-01 00:00:00")
        write(os.path.join(src, b"docs/readme.txt"), b"docs v2\n", "2020-03-02 12:00:00")
        set_dir_times(src)
        self.s2 = r.backup(["src"], "beta", ["two"], cwd=data, extra=["--time", "2024-02-05 11:00:00"])
        self.s3 = r.backup(["src"], "alpha", ["one,two"], cwd=data,
                           extra=["--time", "2024-03-05 12:00:00"])
        self.order = [self.s3, self.s1, self.s2]

        c = self.coffer_repo = E.ResticRepo(self.ws, "coffer-made").init_with_coffer()
        c.coffer_ok("backup", "--host", "gamma", "--tag", "g", "--time", "2024-04-01 08:00:00",
                    "src", cwd=data)
        os.unlink(os.path.join(src, b"code/a.c"))
        c.coffer_ok("backup", "--host", "delta", "--time", "2024-05-01 08:00:00", "src", cwd=data)
        c.forget_memo()
        self.c_order = [s["id"] for s in c.snapshots()][::-1]


def setUpModule():
    global F
    F = Fixture()


def tearDownModule():
    POOL.shutdown()
    if F is not None:
        F.ws.cleanup()


def blocks(out: bytes, is_json: bool):
    """Output per snapshot, order-free (restic's snapshot order without -s is random)."""
    if is_json:
        return sorted(json.dumps(x, sort_keys=True) for x in json.loads(out))
    return sorted(b.strip(b"\n") for b in out.split(b"\n\n"))


def records(out: bytes):
    """--show-pack-id lines grouped per object, order-free (restic prints from a Go map)."""
    lines = out.decode("utf-8", "replace").split("\n")
    head = [ln for ln in lines if not ln.startswith(("Object ", " ... Pack ", "Note: "))]
    objs = sorted(ln for ln in lines if ln.startswith(("Object ", " ... Pack ", "Note: ")))
    return head, objs


class FindTest(unittest.TestCase):
    def both(self, repo, *args, env=None):
        r = POOL.submit(repo.restic, "find", *args, check=False, env=env)
        c = POOL.submit(repo.coffer, "find", *args, env=env)
        return r.result(), c.result()

    def same(self, repo, *args, mode="exact", env=None):
        r, c = self.both(repo, *args, env=env)
        msg = "\nrestic:\n%s\ncoffer:\n%s" % (r.describe(4000), c.describe(4000))
        self.assertEqual(c.rc, r.rc, msg)
        if mode == "exact":
            self.assertEqual(c.out, r.out, msg)
        elif mode == "blocks":
            self.assertEqual(blocks(c.out, "--json" in args), blocks(r.out, "--json" in args), msg)
        else:
            self.assertEqual(records(c.out), records(r.out), msg)
        return r, c

    def snaps(self, order):
        return [a for s in order for a in ("-s", s)]

    def test_patterns_text_and_json_in_fixed_snapshot_order(self):
        # several patterns per run (restic prints what matches any of them), except the ones
        # that show the walker's skip-a-subtree-seen-before quirk: "foo" skips /src/foo/sub
        # because /src/bar/sub (the same tree) matched nothing
        groups = [["f.txt", "?.c", "[^a-c]*.c"], ["*.TXT", "readme*", "\\[x\\].c"],
                  ["[a-c]*", "link", "empty"], ["foo"], ["sub"],
                  ["/src/docs/*", "src/*/sub", "l?/l2"], ["/src/deep/**/leaf.txt", "**/l2"],
                  ["nomatch"], ["*bad*", "Ünïcode.*"], ["/src"], [""]]
        order = self.snaps(F.order)
        for i, pat in enumerate(groups):
            with self.subTest(patterns=pat):
                if i % 2:
                    self.same(F.restic_repo, *order, *(["--long"] if i % 4 == 1 else []), "--", *pat)
                else:
                    self.same(F.restic_repo, "--json", *order, "--", *pat)

    def test_ignore_case_long_and_quiet(self):
        order = self.snaps(F.order)
        self.same(F.restic_repo, "-i", *order, "README*", "/SRC/DOCS/*")
        self.same(F.restic_repo, "--json", "--ignore-case", "-l", *order, "*.txt", "ÜNÏ*")
        self.same(F.restic_repo, "--quiet", "-l", *order, "*.c")

    def test_all_snapshots_and_filters(self):
        r = F.restic_repo
        self.same(r, "*.c", mode="blocks")
        self.same(r, "--json", "*.txt", "readme*", mode="blocks")
        for i, flt in enumerate((["--host", "alpha"], ["-H", "beta", "--tag", "one"],
                                 ["--tag", "one,two"], ["--path", F.ws.path("data", "src")],
                                 ["--path", "/nowhere"])):
            with self.subTest(filter=flt):
                self.same(r, *flt, *(["--json"] if i % 2 else []), "new.c", "*.h", mode="blocks")
        self.same(r, "-s", "latest", "--host", "beta", "*.c")
        self.same(r, "-s", "latest", "--host", "nobody", "*.c")
        self.same(r, "-s", F.s1[:8], "-s", F.s1, "--host", "beta", "*.h")
        _, c = self.same(r, "-s", "deadbeef", "--json", "*.c")
        self.assertIn(b"deadbeef", c.err)

    def test_oldest_and_newest(self):
        order = self.snaps(F.order)
        for i, times in enumerate((["--oldest", "2021-01-01", "-N", "15.07.2021 14:00:01"],
                                   ["-O", "2020-03-01 17:30:00", "-N", "2022-01-01 05:30:00"],
                                   ["-O", "2021-07-15 08:30:00 +0000", "-N", "2022-01-01 05:30"],
                                   ["-N", "2022-01-01 05:30:00 IST", "-O", "02.03.2020"],
                                   ["-O", "2021-07-15 08:30:00 UTC"],
                                   ["-N", "Sun Jan 2 10:00:00 +0000 UTC 2022"])):
            with self.subTest(times=times):
                if i % 2:
                    self.same(F.restic_repo, *times, *order, "-l", "*")
                else:
                    # a matched directory whose files are all out of range: its subtree is
                    # ignored from then on, and restic skips the directory in later snapshots
                    self.same(F.restic_repo, *times, *order, "--json", "sub", "deep", "*.c")

    def test_without_the_tree_cache(self):
        # COFFER_DEBUG_FIND_TREE_CACHE makes this small repository take a large one's path:
        # nothing (1 byte) or a little (16 KiB) fits in the decoded-tree cache, so the walks
        # load trees as they reach them; the output must not change
        order = self.snaps(F.order)
        r = F.restic_repo
        blob = self.blob_of(r, F.s1, "/src/bar/sub/f.txt")
        sub = r.node(F.s1, "/src/foo/sub")["subtree"]
        for size in ("1", "16384"):
            with self.subTest(cache=size):
                env = {"COFFER_DEBUG_FIND_TREE_CACHE": size}
                self.same(r, *order, "--json", "foo", "*.c", "/src/docs/*", env=env)
                self.same(r, *order, "-l", "sub", "deep", env=env)
                self.same(r, "--blob", *order, blob, env=env)
                self.same(r, "--tree", *order, sub, env=env)

    def test_coffer_made_repository(self):
        c = F.coffer_repo
        order = self.snaps(F.c_order)
        for pat in (["-l", "*"], ["--json", "-i", "*.txt", "foo"]):
            with self.subTest(pattern=pat):
                self.same(c, *order, *pat)
        self.same(c, "--host", "gamma", "--tag", "g", "--json", "*.h", mode="blocks")

    def blob_of(self, repo, snap, path):
        return repo.node(snap, path)["content"][0]

    def test_blob_and_tree_ids(self):
        r = F.restic_repo
        order = self.snaps(F.order)
        blob = self.blob_of(r, F.s1, "/src/bar/sub/f.txt")
        sub = r.node(F.s1, "/src/foo/sub")["subtree"]
        code = r.node(F.s2, "/src/code")["subtree"]
        self.same(r, "--blob", *order, blob)
        self.same(r, "--blob", "--json", *order, blob[:8], "0" * 64)
        self.same(r, "--blob", "--show-pack-id", *order, blob[:8])
        self.same(r, "--blob", "--show-pack-id", *order, "xyz")
        self.same(r, "--tree", *order, sub[:8])
        self.same(r, "--tree", "--json", *order, sub)
        # two trees: restic stops a snapshot's walk after as many hits as ids, over the run
        self.same(r, "--tree", *order, sub, code)
        self.same(r, "--tree", "--show-pack-id", *order, sub)
        self.same(r, "--tree", "--blob", blob, mode="exact")

    def test_pack_ids_and_missing_pack(self):
        r = F.restic_repo
        order = self.snaps(F.order)
        locs = r.blob_locations()
        pack = locs[self.blob_of(r, F.s2, "/src/code/new.c")]["pack"]
        self.same(r, "--pack", *order, pack)
        self.same(r, "--pack", "--json", *order, pack[:8])
        self.same(r, "--pack", "--show-pack-id", *order, pack, mode="records")
        _, c = self.same(r, "--pack", "0123456789abcdef" + "0" * 48, "feedf00d")
        self.assertIn(b"unable to find pack(s): [0123456789abcdef", c.err)
        # after `check` reports a pack missing: the index still says what was in it
        broken = r.copy("missing-pack")
        os.unlink(broken.pack_path(pack))
        _, c = self.same(broken, "--pack", *order, pack)
        self.assertIn(b"some pack files are missing from the repository", c.err)

    def test_damaged_tree_reported_and_walk_goes_on(self):
        r = F.restic_repo
        tree = r.node(F.s1, "/src/docs")["subtree"]
        broken = r.copy("missing-tree")
        os.unlink(broken.pack_path(r.blob_locations()[tree]["pack"]))
        # an index without the pack: restic fails at once (a missing pack file it would retry)
        broken.restic("rebuild-index")
        for extra in ([], ["--json"]):
            res = broken.restic("find", "-s", F.s1, *extra, "*.txt", check=False)
            c = broken.coffer("find", "-s", F.s1, *extra, "*.txt", "--no-cache")
            self.assertEqual(c.rc, res.rc, c.describe())
            self.assertEqual(c.out, res.out, "\n" + res.describe() + "\n" + c.describe())
        self.assertIn(b"Unable to load tree ", c.out)

    def test_bad_input(self):
        r = F.restic_repo
        for args, code in ((["find"], 1), (["find", "--oldest", "yesterday", "x"], 1),
                           (["find", "--blob", "--pack", "x"], 1), (["find", "["], 1),
                           (["find", "-N", "2021-02-30", "x"], 1)):
            with self.subTest(args=args):
                res = r.restic(*args, check=False)
                c = r.coffer(*args)
                self.assertEqual(c.rc, code, c.describe())
                self.assertEqual(res.rc, code, res.describe())
                E.check_sane(c)
        c = r.coffer("find", "x", pwfile=F.ws.wrong_pwfile)
        self.assertEqual(c.rc, 12, c.describe())
        E.check_sane(c)
        c = E.run([E.COFFER_BIN, "-r", F.ws.path("no-such-repo"), "--password-file", F.ws.pwfile,
                   "find", "x"], env=r.env)
        self.assertEqual(c.rc, 10, c.describe())
        E.check_sane(c)
        empty = E.ResticRepo(F.ws, "empty").init_with_coffer()
        self.same(empty, "--json", "x")
        self.same(empty, "x")


if __name__ == "__main__":
    E.run_tests()
