#!/usr/bin/env python3
"""coffer check and coffer stats against restic 0.14 on the same repositories.

Two repositories: "restic-made" (every pack, index and snapshot written by restic backup) and
"coffer-made" (written by coffer backup). Both get their key from `coffer init` (scrypt p=1)
because restic's calibrated key (p=7 here) costs ~30 s per coffer run under ASan.
Damage is real bytes on disk: a flipped byte inside a data blob, a deleted pack, a truncated
index file. For each, coffer's exit status and the ids it names are checked, and restic's own
verdict on the same copy. --read-data-subset n/t is checked to read each pack exactly once over
1/5..5/5, the same packs as restic's rule and the same counts restic prints. stats --json is
compared field by field with restic's in all four modes and with snapshot selections.
Run: COFFER_BIN=build/coffer python3 tests/tools/check_stats_test.py
"""

import concurrent.futures
import json
import os
import random
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_support as E  # noqa: E402

F = None
MODES = ("restore-size", "files-by-contents", "raw-data", "blobs-per-file")


def flip_byte(path: str, offset: int) -> None:
    os.chmod(path, 0o600)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))


class Fixture:
    def __init__(self):
        self.ws = E.Workspace("checkstats")
        data = self.ws.path("data")
        src = os.path.join(data, "src")
        rnd = random.Random(7)
        os.makedirs(os.path.join(src, "sub"))
        for name, size in (("a.bin", 3 * E.MiB), ("b.bin", 2 * E.MiB), ("sub/c.bin", 3 * E.MiB)):
            with open(os.path.join(src, name), "wb") as f:
                f.write(rnd.randbytes(size))
        for i in range(10):
            with open(os.path.join(src, "sub", "t%d.txt" % i), "wb") as f:
                f.write(b"text %d\n" % i * 50)
        os.link(os.path.join(src, "a.bin"), os.path.join(src, "a-hardlink.bin"))
        E.set_times(os.fsencode(src))

        self.restic_repo = E.ResticRepo(self.ws, "restic-made").init_with_coffer()
        pack4 = ["--pack-size", "4"]  # several data packs
        self.r1 = self.restic_repo.backup(["src"], "alpha", ["one"], cwd=data, extra=pack4)
        with open(os.path.join(src, "b.bin"), "rb") as f, \
                open(os.path.join(src, "sub", "copy.bin"), "wb") as g:
            g.write(f.read())
        self.r2 = self.restic_repo.backup(["src"], "beta", ["two"], cwd=data, extra=pack4)

        self.coffer_repo = E.ResticRepo(self.ws, "coffer-made").init_with_coffer()
        for host in ("gamma", "delta"):
            self.coffer_repo.coffer_ok("backup", "--host", host, "--tag", host, "src", cwd=data)
        self.coffer_repo.forget_memo()


def setUpModule():
    global F
    F = Fixture()


def tearDownModule():
    if F is not None:
        F.ws.cleanup()


def out(res) -> str:
    return res.out.decode(errors="replace")


class Base(unittest.TestCase):
    maxDiff = None

    def coffer_check(self, repo, *args, rc):
        res = repo.coffer("check", *args)
        self.assertEqual(res.rc, rc, res.describe())
        if rc == 0:
            self.assertIn("no errors were found", out(res))
        else:
            self.assertIn(b"repository contains errors", res.err)
        return res

    def restic_check(self, repo, *args, rc):
        res = repo.restic("check", *args, check=False)
        self.assertEqual(res.rc, rc, res.describe())
        return res

    def data_blob(self, repo):
        """The largest data blob and its pack."""
        locs = repo.blob_locations()
        blob = max((b for b in locs if locs[b]["type"] == "data"), key=lambda b: locs[b]["length"])
        return blob, locs[blob]

    def packs(self, repo):
        return sorted({loc["pack"] for loc in repo.blob_locations().values()})


class CheckTest(Base):
    def test_clean_repositories_pass_with_restic_agreeing(self):
        for repo in (F.restic_repo, F.coffer_repo):
            with self.subTest(repo=repo.name):
                res = self.coffer_check(repo, "--read-data", rc=0)
                self.assertIn("create exclusive lock for repository", out(res))
                n = len(self.packs(repo))
                self.assertIn("%d / %d packs" % (n, n), out(res))
                self.restic_check(repo, "--read-data", rc=0)

    def test_flipped_byte_found_only_by_read_data(self):
        for base in (F.restic_repo, F.coffer_repo):
            with self.subTest(repo=base.name):
                repo = base.copy(base.name + "-flip")
                blob, loc = self.data_blob(repo)
                flip_byte(repo.pack_path(loc["pack"]), loc["offset"] + loc["length"] // 2)
                if base is F.restic_repo:
                    self.coffer_check(repo, rc=0)  # sizes and headers are intact
                res = self.coffer_check(repo, "--read-data", rc=1)
                lines = [ln for ln in out(res).splitlines() if loc["pack"] in ln]
                self.assertTrue(any("Pack ID does not match" in ln for ln in lines), res.describe())
                self.assertTrue(any(blob in ln for ln in lines), res.describe())
                r = self.restic_check(repo, "--read-data", rc=1)
                self.assertIn(loc["pack"].encode(), r.err)

    def test_read_data_subsets_read_each_pack_once_like_restic(self):
        repo = F.restic_repo.copy("subsets")
        blob, loc = self.data_blob(repo)
        flip_byte(repo.pack_path(loc["pack"]), loc["offset"] + 10)
        all_packs = self.packs(repo)
        bad_group = int(loc["pack"][:2], 16) % 5 + 1
        # Two at a time (each run is mostly key derivation), so without the exclusive lock.
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            mine = list(pool.map(lambda n: repo.coffer("--no-lock", "check", "-v",
                                                       "--read-data-subset", "%d/5" % n),
                                 range(1, 6)))
        read = []
        for n, res in zip(range(1, 6), mine):
            self.assertEqual(res.rc, 1 if n == bad_group else 0, res.describe())
            got = re.findall(r"^read pack ([0-9a-f]{64})$", out(res), re.M)
            for p in got:
                self.assertEqual(int(p[:2], 16) % 5, n - 1, "pack %s is not in group %d" % (p, n))
            read += got
            line = "read group #%d of %d data packs (out of total %d packs in 5 groups)" % (
                n, len(got), len(all_packs))
            self.assertIn(line, out(res))
            r = self.restic_check(repo, "--read-data-subset", "%d/5" % n,
                                  rc=1 if n == bad_group else 0)
            self.assertIn(line.encode(), r.out)  # restic selected as many packs
        self.assertEqual(sorted(read), all_packs)  # every pack exactly once
        for arg in ("100%", "1T"):  # everything: the damage is found
            with self.subTest(arg=arg):
                res = self.coffer_check(repo, "-v", "--read-data-subset", arg, rc=1)
                got = re.findall(r"^read pack ([0-9a-f]{64})$", out(res), re.M)
                self.assertEqual(sorted(got), all_packs)
        res = repo.coffer("check", "--read-data-subset", "0/5")
        self.assertEqual(res.rc, 1)
        self.assertIn(b"n <= t", res.err)

    def test_missing_pack_named_unreferenced_pack_only_noted(self):
        repo = F.restic_repo.copy("missing")
        blob, loc = self.data_blob(repo)
        other = "ee" * 32  # a copy of the pack under a name no index knows
        os.makedirs(os.path.join(repo.path, "data", "ee"), exist_ok=True)
        os.rename(repo.pack_path(loc["pack"]), repo.pack_path(other))
        res = self.coffer_check(repo, rc=1)
        self.assertIn("pack %s: does not exist" % loc["pack"], out(res))
        self.assertIn("pack %s: not referenced in any index" % other, out(res))
        self.assertNotIn(other, res.err.decode())  # a note, not an error
        self.assertIn(b"(1 found)", res.err)
        r = self.restic_check(repo, rc=1)
        self.assertIn(loc["pack"].encode(), r.out + r.err)

    def test_truncated_index_named(self):
        repo = F.coffer_repo.copy("index")
        index = repo.list("index")[0]
        os.truncate(os.path.join(repo.path, "index", index), 100)
        res = self.coffer_check(repo, rc=1)
        self.assertIn("error loading index %s" % index, out(res))
        self.assertIn("check snapshots, trees and blobs", out(res))  # it went on
        r = self.restic_check(repo, rc=1)
        self.assertIn(index[:10].encode(), r.err)


class StatsTest(Base):
    def compare(self, cases):
        """coffer stats --json (two runs at a time) equals restic's for each (repo, args)."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            mine = list(pool.map(lambda c: c[0].coffer_ok("stats", "--json", *c[1]), cases))
        for (repo, args), res in zip(cases, mine):
            with self.subTest(repo=repo.name, args=args):
                theirs = repo.restic("stats", "--json", *args)
                self.assertEqual(json.loads(res.out), json.loads(theirs.out))

    def test_every_mode_matches_restic(self):
        self.compare([(F.restic_repo, ["--mode", m]) for m in MODES] +
                     [(F.coffer_repo, ["--mode", m]) for m in ("files-by-contents", "raw-data")])

    def test_snapshot_selections_match_restic(self):
        self.compare([(F.restic_repo, ["--mode", "raw-data", "--host", "alpha", "--tag", "one"]),
                      (F.restic_repo, ["--mode", "blobs-per-file", "latest"]),
                      (F.restic_repo, ["--mode", "files-by-contents", F.r1[:8]])])

    def test_text_output(self):
        res = F.restic_repo.coffer_ok("stats", "--mode", "raw-data")
        text = out(res)
        self.assertIn("Stats in raw-data mode:", text)
        self.assertIn("Snapshots processed:   2", text)
        self.assertRegex(text, r"Deduplication Ratio:   \d+\.\d\dx")


if __name__ == "__main__":
    E.run_tests()
