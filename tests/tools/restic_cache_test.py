#!/usr/bin/env python3
"""coffer's local cache: `--cache-dir`, COFFER_CACHE_DIR/RESTIC_CACHE_DIR, `--no-cache`, a warm cache that
reads no index file (checked with `strace -e trace=open,openat,openat2` when strace is installed), a damaged
cache (LMDB files overwritten with garbage or truncated) that is rebuilt with correct results, and a cache
that follows repository changes (new backup, forget --prune replacing index files and packs).
Run: COFFER_BIN=build/coffer python3 tests/tools/restic_cache_test.py
"""

import json
import os
import random
import re
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_support as E  # noqa: E402

F = None


class Fixture:
    def __init__(self):
        self.ws = E.Workspace("cache")
        self.data = self.ws.path("data")
        self.src = os.path.join(self.data, "src")
        rnd = random.Random(7)
        for d in range(10):
            os.makedirs(os.path.join(self.src, "d%02d" % d))
            for i in range(40):
                with open(os.path.join(self.src, "d%02d" % d, "f%03d" % i), "wb") as f:
                    f.write(b"%d/%d " % (d, i) + rnd.randbytes(rnd.randrange(10, 3000)))
        with open(os.path.join(self.src, "big.bin"), "wb") as f:
            f.write(rnd.randbytes(2 * E.MiB))
        E.set_times(os.fsencode(self.src))
        self.repo = E.ResticRepo(self.ws, "repo").init()
        self.s1 = self.repo.backup(["src"], "alpha", ["a"], cwd=self.data)
        with open(os.path.join(self.src, "d00", "new"), "wb") as f:
            f.write(b"second snapshot\n")
        self.s2 = self.repo.backup(["src"], "alpha", ["b"], cwd=self.data)


def setUpModule():
    global F
    F = Fixture()


def tearDownModule():
    if F is not None:
        F.ws.cleanup()


def opened_paths(log_path: str) -> list:
    paths = []
    with open(log_path, "rb") as f:
        for line in f:
            m = re.search(rb'open(?:at2?)?\((?:AT_FDCWD|\d+)?,? ?"((?:[^"\\]|\\.)*)"', line)
            if m and b"= -1" not in line:
                paths.append(m.group(1).decode(errors="replace"))
    return paths


def all_files(root: str) -> list:
    out = []
    for dirpath, _, filenames in os.walk(root):
        out += [os.path.join(dirpath, n) for n in filenames]
    return out


class CacheTest(unittest.TestCase):
    maxDiff = None

    def coffer_argv(self, *args):
        return [E.COFFER_BIN, "-r", F.repo.path, "--password-file", F.ws.pwfile, *args]

    def ls(self, *global_args, env=None, trace=False):
        """`coffer <global_args> ls -l latest` (env: replaces COFFER_CACHE_DIR etc.), checked against
        restic; returns the repository index files it opened (None when not traced)."""
        argv = self.coffer_argv(*global_args, "ls", "-l", "latest")
        log = F.ws.fresh("strace") + ".log"
        if trace and E.STRACE_BIN:
            argv = [E.STRACE_BIN, "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", log] + argv
        env = dict(F.repo.env, **(env or {}))
        if trace and E.STRACE_BIN:  # LeakSanitizer cannot run under ptrace (sanitizer builds)
            env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
        res = E.run(argv, env=env)
        E.check_sane(res)
        self.assertEqual(res.rc, 0, res.describe())
        want = E.split_ls_header(F.repo.restic("ls", "-l", "latest").out)[1]
        self.assertTrue(E.split_ls_header(res.out)[1] == want, "ls -l node lines differ from restic")
        return self.index_files_opened(log) if trace and E.STRACE_BIN else None

    def index_files_opened(self, log):
        ids = F.repo.list("index")
        return [p for p in opened_paths(log) if any(p.endswith("index/" + i) for i in ids)]

    def require_strace(self):
        if not E.STRACE_BIN:
            self.skipTest("strace not installed: cannot observe index file reads")

    def test_warm_cache_reads_no_index_file(self):
        self.require_strace()
        cache = F.ws.fresh("cache")
        first = self.ls("--cache-dir", cache, trace=True)
        self.assertTrue(first, "a cold run must read the index files (is the strace check working?)")
        self.assertTrue(all_files(cache), "--cache-dir stayed empty")
        second = self.ls("--cache-dir", cache, trace=True)
        self.assertEqual(second, [], "warm cache still read index files")

    def test_no_cache_reads_index_and_writes_nothing(self):
        cache, env_cache = F.ws.fresh("cache"), F.ws.fresh("cache")
        opened = self.ls("--no-cache", "--cache-dir", cache, trace=True)
        self.ls("--no-cache", env={"COFFER_CACHE_DIR": env_cache})
        self.assertEqual(all_files(cache) + all_files(env_cache), [], "--no-cache wrote a cache")
        if E.STRACE_BIN:
            self.assertTrue(opened, "--no-cache must read the index files")
            self.assertTrue(self.ls("--no-cache", "--cache-dir", cache, trace=True),
                            "--no-cache must read the index files every time")

    def test_cache_dir_from_environment(self):
        for var in ("COFFER_CACHE_DIR", "RESTIC_CACHE_DIR"):
            with self.subTest(var=var):
                cache = F.ws.fresh("cache")
                self.ls(env={var: cache}, trace=False)
                self.assertTrue(all_files(cache), "%s was not used" % var)
                if E.STRACE_BIN:
                    self.assertEqual(self.ls(env={var: cache}, trace=True), [], "warm cache read the index")

    def damage_cache(self, cache, how):
        files = all_files(cache)
        self.assertTrue(files, "nothing cached")
        rnd = random.Random(5)
        for p in files:
            size = os.path.getsize(p)
            with open(p, "r+b" if how == "garbage" else "wb") as f:
                if how == "garbage":
                    f.write(rnd.randbytes(max(size, 4096)))

    def test_damaged_cache_is_rebuilt(self):
        for how in ("garbage", "truncate"):
            with self.subTest(how=how):
                cache = F.ws.fresh("cache")
                self.ls("--cache-dir", cache)
                self.damage_cache(cache, how)
                self.ls("--cache-dir", cache)
                target = F.ws.fresh("t")
                F.repo.coffer_ok("--cache-dir", cache, "restore", F.s2, "--target", target,
                                 "--include", "/src/d03")
                diffs = E.compare_scans(E.subscan(E.scan_tree(F.src), b"d03"),
                                        E.scan_tree(os.path.join(target, "src", "d03")))
                self.assertFalse(diffs, E.fmt_diffs(diffs))
                if E.STRACE_BIN:
                    self.assertEqual(self.ls("--cache-dir", cache, trace=True), [], "cache not rebuilt")

    def test_cache_follows_repository_changes(self):
        repo = F.repo.copy("repo-changing")
        cache = F.ws.fresh("cache")

        def run(*args):
            return repo.coffer_ok("--cache-dir", cache, *args)

        run("ls", "latest")
        data2 = F.ws.path("data2")
        shutil.copytree(F.src, os.path.join(data2, "src"), symlinks=True)
        with open(os.path.join(data2, "src", "d01", "added-later"), "wb") as f:
            f.write(b"third snapshot\n" * 1000)
        s3 = repo.backup(["src"], "beta", ["c"], cwd=data2)
        self.assertEqual(E.json_lines(run("ls", "--json", "latest").out),
                         E.json_lines(repo.restic("ls", "--json", "latest").out))
        repo.restic("forget", F.s1, F.s2, "--prune")
        repo.restic("rebuild-index")
        repo.forget_memo()
        self.assertEqual(json.loads(run("snapshots", "--json").out), repo.snapshots())
        target = F.ws.fresh("t")
        run("restore", s3, "--target", target)
        diffs = E.compare_scans(E.scan_tree(os.path.join(data2, "src")),
                                E.scan_tree(os.path.join(target, "src")))
        self.assertFalse(diffs, E.fmt_diffs(diffs))

    def test_unusable_cache_dir_still_works(self):
        blocker = F.ws.fresh("not-a-dir")
        with open(blocker, "w") as f:
            f.write("a file where the cache dir should be\n")
        self.ls("--cache-dir", os.path.join(blocker, "sub"))


if __name__ == "__main__":
    E.run_tests()
