#!/usr/bin/env python3
"""`coffer prune` and `coffer forget --prune` against the real restic 0.14 binary.

restic backs up four versions of a small source tree (files change, vanish and appear between
versions) into one repository; `restic forget` then leaves partly used and unused packs. On copies of it:
  * coffer prune's report (--dry-run, -v, every --max-unused / --max-repack-size / --repack-* variant)
    equals restic's own prune report on an identical copy, line by line (timers aside);
  * after coffer prune, `restic check --read-data` passes and every remaining snapshot restores
    byte-identical, and a second prune finds nothing to do;
  * restic prunes a repository coffer backed up and forgot in, and coffer restores from the result;
  * --dry-run changes no file; a missing needed pack makes prune refuse (exit 1, nothing deleted);
    a held restic lock gives exit 11; forget --prune works end to end (also with --dry-run);
  * crashes: prune is killed with a real SIGKILL right before its Nth unlink / rename / renameat2
    (strace fault injection) for every N until it finishes; after each kill, `coffer unlock` (what a
    user does) and `restic check` pass, and a second coffer prune completes with a clean repository.
Run: COFFER_BIN=build/coffer python3 tests/tools/prune_test.py
"""

import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backup_support as B  # noqa: E402
import e2e_support as E  # noqa: E402

WS = None
BASE = None      # restic repository with four snapshots of src (never changed by the tests)
FORGOTTEN = None  # BASE after `restic forget --keep-last 2`
VERSIONS = []    # directories holding each backed-up version of src
EXIT_LOCKED = 11
TIMER = re.compile(rb"^\[\d+:\d\d(:\d\d)?\] ", re.M)


def make_versions():
    """Four versions of data/src: each changes, deletes and adds some files."""
    rnd = random.Random(6)
    data = WS.path("data")
    src = os.path.join(data, "src")
    os.makedirs(os.path.join(src, "sub"))
    for i in range(40):
        with open(os.path.join(src, "sub" if i % 2 else "", "f%02d" % i), "wb") as f:
            f.write(rnd.randbytes(rnd.randrange(1000, 20000)))
    for v in range(4):
        with open(os.path.join(src, "big%d.bin" % v), "wb") as f:
            f.write(rnd.randbytes(600 * 1024 + v))
        if v >= 2:
            os.remove(os.path.join(src, "big%d.bin" % (v - 2)))
        for i in rnd.sample(range(40), 8):
            with open(os.path.join(src, "sub" if i % 2 else "", "f%02d" % i), "wb") as f:
                f.write(rnd.randbytes(rnd.randrange(1000, 20000)))
        keep = WS.path("version%d" % v)
        shutil.copytree(src, keep)
        VERSIONS.append(keep)
    return data


def file_hashes(root: str) -> dict:
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def setUpModule():
    global WS, BASE, FORGOTTEN
    WS = E.Workspace("prune")
    data = WS.path("data")
    os.makedirs(data)
    base = E.ResticRepo(WS, "base").init()
    rnd_versions = make_versions()
    for v, keep in enumerate(VERSIONS):
        shutil.rmtree(os.path.join(data, "src"))
        shutil.copytree(keep, os.path.join(data, "src"))
        base.backup(["src"], "host", cwd=rnd_versions)
    BASE = base
    FORGOTTEN = base.copy("forgotten")
    FORGOTTEN.restic("forget", "--keep-last", "2")
    FORGOTTEN.forget_memo()


def tearDownModule():
    if WS is not None:
        WS.cleanup()


def report(res: E.CmdResult) -> list:
    """stdout lines with the progress timers removed."""
    return TIMER.sub(b"[T] ", res.out).decode().split("\n")


def listing(repo: E.ResticRepo) -> dict:
    return {k: v for k, v in B.repo_listing(repo.path).items() if not k.startswith("locks/")}


class PruneTest(unittest.TestCase):
    def check_restores(self, repo: E.ResticRepo, tool: str = "restic"):
        """Every snapshot restores to exactly the version it was made from."""
        repo.forget_memo()
        snaps = sorted(repo.snapshots(), key=lambda s: s["time"])
        want_all = [file_hashes(v) for v in VERSIONS]
        for s in snaps:
            target = WS.fresh("restore")
            if tool == "restic":
                repo.restic("restore", s["id"], "--target", target)
            else:
                repo.coffer_ok("restore", s["id"], "--target", target)
            got = file_hashes(os.path.join(target, "src"))
            self.assertIn(got, want_all, "snapshot %s restored something else" % s["short_id"])
            shutil.rmtree(target)

    def check_read_data(self, repo: E.ResticRepo):
        res = repo.restic("check", "--read-data", check=False)
        self.assertEqual(res.rc, 0, res.describe())
        self.assertIn(b"no errors were found", res.out)

    def test_prune_after_restic_forget(self):
        repo = FORGOTTEN.copy("after-forget")
        twin = FORGOTTEN.copy("after-forget-restic")
        mine = repo.coffer_ok("prune", "-v")
        theirs = twin.restic("prune", "-v")
        plan_mine = report(mine)[:report(mine).index("repacking packs")]
        plan_theirs = report(theirs)[:report(theirs).index("repacking packs")]
        self.assertEqual(plan_mine, plan_theirs)
        self.assertIn("done", report(mine))
        self.check_read_data(repo)
        self.check_restores(repo)
        again = repo.coffer_ok("prune")
        self.assertIn("total prune:           0 blobs / 0 B", report(again))
        self.assertEqual(len(os.listdir(os.path.join(repo.path, "index"))), 1)

    def test_reports_equal_restics_for_every_option(self):
        variants = [[], ["--max-unused", "0%"], ["--max-unused", "unlimited"], ["--max-unused", "20k"],
                    ["--max-repack-size", "700k"], ["--repack-cacheable-only"],
                    ["--repack-small", "--max-unused", "unlimited"]]
        repo = FORGOTTEN.copy("variants")
        for v in variants:
            with self.subTest(options=v):
                mine = repo.coffer_ok("prune", "--dry-run", "-v", *v)
                theirs = repo.restic("prune", "--dry-run", "-v", *v)
                self.assertEqual(report(mine), report(theirs))
        for v in variants[2:4]:
            with self.subTest(options=v, run=True):
                r = FORGOTTEN.copy("variant-run-%d" % variants.index(v))
                r.coffer_ok("prune", *v)
                res = r.restic("check", check=False)
                self.assertEqual(res.rc, 0, res.describe())
                r.coffer_ok("prune", *v)  # a second run is fine too

    def test_restic_prunes_what_coffer_wrote(self):
        repo = E.ResticRepo(WS, "coffer-made").init()
        data = WS.path("coffer-made-data")
        os.makedirs(data)
        for keep in VERSIONS:
            shutil.rmtree(os.path.join(data, "src"), ignore_errors=True)
            shutil.copytree(keep, os.path.join(data, "src"))
            B.coffer_backup(repo, "--host", "h", "src", cwd=data)
        repo.coffer_ok("forget", "--keep-last", "2")
        repo.restic("prune")
        self.check_read_data(repo)
        self.check_restores(repo, "coffer")
        # and coffer prunes restic's result further without complaint
        repo.coffer_ok("forget", "--keep-last", "1")
        repo.coffer_ok("prune", "--max-unused", "0%")
        self.check_read_data(repo)
        self.check_restores(repo, "coffer")

    def test_dry_run_changes_nothing(self):
        repo = FORGOTTEN.copy("dry-run")
        with open(os.path.join(repo.path, "data", "pending-tmp-0123456789abcdef"), "wb") as f:
            f.write(b"left by a killed writer")
        before = listing(repo)
        res = repo.coffer_ok("prune", "--dry-run", "-v")
        self.assertIn("Would have repacked and removed the following packs:", report(res))
        self.assertIn("to delete:             1 temporary files", report(res))
        self.assertEqual(listing(repo), before)
        self.assertEqual(os.listdir(os.path.join(repo.path, "locks")), [])
        repo.coffer_ok("prune")
        self.assertNotIn("data/pending-tmp-0123456789abcdef", listing(repo))

    def test_missing_needed_pack_refuses(self):
        repo = FORGOTTEN.copy("missing")
        latest = max(repo.snapshots(), key=lambda s: s["time"])
        tree = repo.cat_json("snapshot", latest["id"])["tree"]
        os.remove(repo.pack_path(repo.blob_locations()[tree]["pack"]))
        before = listing(repo)
        res = repo.coffer("prune")
        self.assertEqual(res.rc, 1, res.describe())  # the tree is gone: restic's "unable to load a tree"
        self.assertIn(b"run 'coffer check'", res.err)
        self.assertEqual(listing(repo), before)
        self.assertEqual(os.listdir(os.path.join(repo.path, "locks")), [])

    def test_locked_repository(self):
        repo = FORGOTTEN.copy("locked")
        e = dict(repo.env, RESTIC_PASSWORD_FILE=WS.pwfile, RESTIC_REPOSITORY=repo.path,
                 RESTIC_CACHE_DIR=WS.path("restic-cache", "locked"))
        holder = subprocess.Popen([E.RESTIC_BIN, "backup", "--stdin", "-q"], env=e, stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            locks = os.path.join(repo.path, "locks")
            for _ in range(300):
                if os.listdir(locks):
                    break
                subprocess.run(["sleep", "0.05"])
            self.assertTrue(os.listdir(locks), "restic took no lock")
            before = listing(repo)
            res = repo.coffer("prune")
            self.assertEqual(res.rc, EXIT_LOCKED, res.describe())
            self.assertIn(b"locked", res.err)
            res = repo.coffer("forget", "--keep-last", "1", "--prune")
            self.assertEqual(res.rc, EXIT_LOCKED, res.describe())
            self.assertEqual(listing(repo), before)
        finally:
            holder.communicate(b"x", timeout=120)
        repo.coffer_ok("prune")

    def test_forget_prune(self):
        repo = BASE.copy("forget-prune")
        before = listing(repo)
        dry = repo.coffer_ok("forget", "--keep-last", "1", "--prune", "--dry-run", "--max-unused", "0%")
        self.assertIn("3 snapshots have been removed, running prune", report(dry))
        self.assertIn("finding data that is still in use for 1 snapshots", report(dry))
        self.assertEqual(listing(repo), before)
        res = repo.coffer_ok("forget", "--keep-last", "1", "--prune", "--max-unused", "0%")
        lines = report(res)
        self.assertIn("3 snapshots have been removed, running prune", lines)
        self.assertIn("done", lines)
        self.assertEqual(len(repo.snapshots()), 1)
        self.check_read_data(repo)
        self.check_restores(repo)
        again = repo.coffer_ok("prune", "--max-unused", "0%")
        self.assertIn("total prune:           0 blobs / 0 B", report(again))
        bad = repo.coffer("forget", "--keep-last", "1", "--prune", "--max-unused", "100%")
        self.assertEqual(bad.rc, 1, bad.describe())

    @unittest.skipUnless(E.STRACE_BIN, "strace is not installed")
    def test_sigkill_at_every_step(self):
        base = FORGOTTEN.copy("crash-base")
        with open(os.path.join(base.path, "data", "pending-tmp-00aa11bb22cc33dd"), "wb") as f:
            f.write(b"partial")
        kills = 0
        # (every point costs three coffer runs: keep the file near 90 s on two cores)
        points = {"unlink": [1, 3, 6, 10, 15], "rename": [1, 3], "renameat2": [1]}
        for syscall, when in points.items():
            for n in when:
                repo = base.copy("crash-%s-%d" % (syscall, n))
                argv = [E.STRACE_BIN, "-f", "-o", "/dev/null", "-e",
                        "inject=%s:signal=SIGKILL:when=%d" % (syscall, n), E.COFFER_BIN, "-r", repo.path,
                        "--password-file", WS.pwfile, "--no-cache", "prune", "--max-unused", "0%"]
                res = E.run(argv, env=dict(repo.env, ASAN_OPTIONS="detect_leaks=0"))
                if res.rc == 0:
                    break
                self.assertIn(res.rc, (-9, 137), res.describe())
                kills += 1
                with self.subTest(syscall=syscall, n=n):
                    self.after_crash(repo)
                shutil.rmtree(repo.path)
        self.assertGreater(kills, 4)

    def after_crash(self, repo: E.ResticRepo):
        repo.coffer_ok("unlock")
        self.assertEqual(B.missing_indexed_packs(repo), [])
        res = repo.restic("check", check=False)
        self.assertEqual(res.rc, 0, res.describe())
        repo.coffer_ok("prune", "--max-unused", "0%")
        res = repo.restic("check", "--read-data", check=False)
        self.assertEqual(res.rc, 0, res.describe())
        self.assertNotIn(b"not referenced in any index", res.out)
        left = [n for n in os.listdir(os.path.join(repo.path, "data")) if "tmp" in n]
        self.assertEqual(left, [])


if __name__ == "__main__":
    E.run_tests()
