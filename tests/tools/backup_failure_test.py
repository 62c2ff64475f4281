#!/usr/bin/env python3
"""`coffer backup` when things go wrong, checked with the real restic 0.14 afterwards.

* Bad input: missing paths (all: exit 1, one of several: exit 3 with a snapshot; restic 0.14 itself
  exits 0 there), wrong password (exit 12, repository untouched), no repository (10), a repository
  locked exclusively by restic on another host (11), files and a directory the (non-root) user may
  not read (exit 3, snapshot without them, like restic run as the same user).
* kill -9 at several moments of a 40 MiB backup with 4 MiB packs: no index may name a missing pack,
  restic check passes, coffer still works and a new backup passes `restic check --read-data`.
* Ctrl-C (SIGINT): exit 130, no snapshot, no lock left, restic check passes.
* A repository on a full filesystem (3 MiB tmpfs): one-line error, no snapshot, consistent repository;
  after growing the filesystem the next backup works.
* The source changing under the backup (driven by inotify: the change happens right after coffer's
  first read): a file growing while it is read gives a warning and exit 0; files deleted after the
  walk started give one error each, exit 3 and a snapshot without them.
Run: COFFER_BIN=build/coffer python3 tests/tools/backup_failure_test.py
"""

import ctypes
import glob
import os
import select
import struct
import threading
import random
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backup_support as B  # noqa: E402
import e2e_support as E  # noqa: E402

F = None
NOBODY = 65534
CRASH_FILES = 5
CRASH_SIZE = 8 * E.MiB


class Fixture:
    def __init__(self):
        self.ws = E.Workspace("backup-fail")
        os.chmod(self.ws.root, 0o755)  # the non-root test user must reach its files
        self.crash = self.ws.path("crash")
        os.makedirs(self.crash)
        rnd = random.Random(31337)
        for i in range(CRASH_FILES):
            with open(os.path.join(self.crash, "f%d.bin" % i), "wb") as f:
                f.write(rnd.randbytes(CRASH_SIZE + i * 977))
        self.small = self.ws.path("small")
        os.makedirs(os.path.join(self.small, "sub"))
        for rel in ("a.txt", "b.txt", "sub/c.txt"):
            with open(os.path.join(self.small, rel), "w") as f:
                f.write(rel * 10)
        self.template = E.ResticRepo(self.ws, "repo-template").init()
        self.mounts = []

    def repo(self, name):
        return self.template.copy(name)

    def cleanup(self):
        for m in self.mounts:
            B.umount(m)
        self.ws.cleanup()


def setUpModule():
    global F
    F = Fixture()


def tearDownModule():
    if F is not None:
        F.cleanup()


def start_backup(repo, *args):
    argv = [E.COFFER_BIN, "-r", repo.path, "--password-file", F.ws.pwfile, "backup", *args]
    env = dict(repo.env, COFFER_CACHE_DIR=F.ws.path("coffer-cache", repo.name))
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def pack_files(repo) -> list:
    """Everything under data/ (finished packs and files still being written)."""
    return [p for p in glob.glob(os.path.join(repo.path, "data", "*", "*"))]


TRIGGERS = {  # moment -> predicate(repo, seconds since start); the index one last (later runs dedup)
    "after 0.25 s": lambda repo, t: t >= 0.25,
    "first file in data/": lambda repo, t: len(pack_files(repo)) >= 1,
    "4 packs": lambda repo, t: len(pack_files(repo)) >= 4,
    "8 packs": lambda repo, t: len(pack_files(repo)) >= 8,
    "first index file": lambda repo, t: bool(os.listdir(os.path.join(repo.path, "index"))),
}


def interrupt(proc, repo, when, sig):
    """Sends `sig` once when(repo, elapsed seconds) holds; returns the CmdResult (rc 0 when the
    backup finished first)."""
    start = time.monotonic()
    while proc.poll() is None and not when(repo, time.monotonic() - start):
        time.sleep(0.002)
    if proc.poll() is None:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    return E.CmdResult(proc.args, proc.returncode, out, err)


class Base(unittest.TestCase):
    maxDiff = None

    def assertRepoConsistent(self, repo, read_data=False):
        self.assertEqual(B.missing_indexed_packs(repo), [], "an index names a missing pack")
        res = repo.restic("check", *(["--read-data"] if read_data else []), check=False)
        self.assertEqual(res.rc, 0, res.describe())

    def snapshot_count(self, repo):
        repo.forget_memo()
        return len(repo.snapshots())


def on_first_read(directory, action):
    """Starts a thread that runs action() once something in `directory` is first read (inotify
    IN_ACCESS); returns the thread (join it after the backup)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0 or libc.inotify_add_watch(fd, os.fsencode(directory), B.IN_ACCESS) < 0:
        raise OSError(ctypes.get_errno(), "inotify on %s" % directory)

    def watch():
        try:
            while True:
                ready, _, _ = select.select([fd], [], [], 120)
                if not ready:
                    return
                buf = os.read(fd, 1 << 16)
                _, mask, _, _ = struct.unpack_from("iIII", buf, 0)
                if not mask & B.IN_ISDIR:
                    action()
                    return
        finally:
            os.close(fd)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


# --------------------------------------------------------------------------------------------------
class BadInputTest(Base):
    def test_all_paths_missing(self):
        repo = F.repo("repo-missing-all")
        res = repo.coffer("backup", F.ws.path("nope"), "nope-relative")
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn(b"not exist", res.err)
        self.assertEqual(self.snapshot_count(repo), 0)
        self.assertEqual(repo.list("locks"), [])

    def test_one_path_missing(self):
        repo = F.repo("repo-missing-one")
        res = repo.coffer("backup", "--json", F.small, F.ws.path("nope"))
        self.assertEqual(res.rc, 3, res.describe())
        self.assertIn(b"nope", res.err)
        snaps = repo.snapshots()
        self.assertEqual([s["paths"] for s in snaps], [[F.small]])
        self.assertIn(os.fsencode(F.small) + b"/sub/c.txt", B.ls_paths(repo, snaps[0]["id"]))

    def test_wrong_password(self):
        repo = F.repo("repo-wrong-pw")
        B.coffer_backup(repo, F.small)
        before = B.repo_listing(repo.path)
        res = repo.coffer("backup", F.crash, pwfile=F.ws.wrong_pwfile)
        self.assertEqual(res.rc, 12, res.describe())
        self.assertEqual(before, B.repo_listing(repo.path), "the repository changed")

    def test_missing_repository(self):
        repo = E.ResticRepo(F.ws, "repo-does-not-exist")
        res = repo.coffer("backup", F.small)
        self.assertEqual(res.rc, 10, res.describe())
        self.assertFalse(os.path.exists(repo.path))

    def test_locked_by_restic_elsewhere(self):
        repo = F.repo("repo-locked")
        B.coffer_backup(repo, F.small)
        for _ in range(5):  # restic must be caught between writing its lock and removing it
            proc = subprocess.Popen(["unshare", "--uts", "sh", "-c", "hostname elsewhere && exec \"$0\" "
                                     "check --read-data", E.RESTIC_BIN], env=dict(
                repo.env, RESTIC_PASSWORD_FILE=F.ws.pwfile, RESTIC_REPOSITORY=repo.path,
                RESTIC_CACHE_DIR=F.ws.path("restic-cache", "locked")),
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            while proc.poll() is None and not [n for n in os.listdir(os.path.join(repo.path, "locks"))
                                               if "-tmp-" not in n]:
                time.sleep(0.0005)
            proc.kill()
            _, err = proc.communicate()
            if [n for n in os.listdir(os.path.join(repo.path, "locks")) if "-tmp-" not in n]:
                break
            if proc.returncode not in (0, -signal.SIGKILL):
                self.skipTest("cannot run restic in a UTS namespace: %r" % err[-300:])
        else:
            self.skipTest("restic never seen holding its lock")
        res = repo.coffer("backup", F.small)
        self.assertEqual(res.rc, 11, res.describe())
        self.assertEqual(len(os.listdir(os.path.join(repo.path, "snapshots"))), 1)
        # restore walks the trees while its lock is taken, but writes nothing before it is held;
        # the conflict is what it reports, also over an error found meanwhile.
        target = F.ws.path("locked-restore")
        for spec in ("latest", "latest:/no/such/path"):
            res = repo.coffer("restore", spec, "--target", target)
            self.assertEqual(res.rc, 11, res.describe())
            self.assertIn(b"locked", res.err)
            self.assertFalse(os.path.exists(target), "restore wrote before its lock was held")
        repo.restic("unlock", "--remove-all")
        B.coffer_backup(repo, F.small)

    def make_unreadable_tree(self):
        root = F.ws.path("u")
        os.makedirs(os.path.join(root, "sub"))
        os.makedirs(os.path.join(root, "closed", "inner"))
        for rel, mode in (("ok.txt", 0o644), ("secret.txt", 0o600), ("sub/a.txt", 0o644),
                          ("closed/hidden.txt", 0o644)):
            with open(os.path.join(root, rel), "w") as f:
                f.write(rel + "\n")
            os.chmod(os.path.join(root, rel), mode)
        os.chmod(os.path.join(root, "closed"), 0o700)
        return root

    def as_nobody(self, repo, argv, env):
        for d in (env.get("COFFER_CACHE_DIR"), env.get("RESTIC_CACHE_DIR")):
            if d:
                os.makedirs(d, exist_ok=True)
                os.chown(d, NOBODY, NOBODY)
        return E.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups", *argv],
                     env=env)

    def test_unreadable_files_as_other_user(self):
        if not E.IS_ROOT:
            self.skipTest("needs root to switch to another user")
        root = self.make_unreadable_tree()
        repo = F.repo("repo-nobody")
        os.chmod(repo.ws.path("tmp"), 0o1777)
        subprocess.run(["chown", "-R", "%d:%d" % (NOBODY, NOBODY), repo.path], check=True)
        env = dict(repo.env, COFFER_CACHE_DIR=F.ws.path("coffer-cache", "nobody"))
        res = self.as_nobody(repo, [E.COFFER_BIN, "-r", repo.path, "--password-file", F.ws.pwfile, "backup",
                                    "--json", root], env)
        E.check_sane(res)
        self.assertEqual(res.rc, 3, res.describe())
        self.assertIn(b"secret.txt", res.err)
        self.assertIn(b"closed", res.err)
        env = dict(repo.env, RESTIC_PASSWORD_FILE=F.ws.pwfile, RESTIC_REPOSITORY=repo.path,
                   RESTIC_CACHE_DIR=F.ws.path("restic-cache", "nobody"))
        theirs = self.as_nobody(repo, [E.RESTIC_BIN, "backup", "--json", root], env)
        self.assertEqual(theirs.rc, 3, theirs.describe())
        mine_id, restic_id = [s["id"] for s in repo.snapshots()]
        listing = B.ls_paths(repo, mine_id)
        self.assertEqual(B.ls_paths(repo, restic_id), listing)
        u = os.fsencode(root)
        self.assertIn(u + b"/sub/a.txt", listing)
        self.assertNotIn(u + b"/secret.txt", listing)
        self.assertNotIn(u + b"/closed", listing)  # restic leaves an unreadable directory out
        mine, want = repo.cat_json("snapshot", mine_id), repo.cat_json("snapshot", restic_id)
        self.assertEqual((mine.get("username"), mine.get("uid"), mine.get("gid")), ("nobody", NOBODY, NOBODY))
        self.assertEqual([want.get(k) for k in ("username", "uid", "gid")],
                         [mine.get(k) for k in ("username", "uid", "gid")])
        self.assertRepoConsistent(repo)


# --------------------------------------------------------------------------------------------------
class InterruptTest(Base):
    def test_kill9_at_several_moments(self):
        repo = F.repo("repo-kill9")
        snapshots, with_packs = 0, 0
        for name, when in TRIGGERS.items():
            with self.subTest(kill=name):
                res = interrupt(start_backup(repo, "--pack-size", "4", F.crash), repo, when, signal.SIGKILL)
                self.assertIn(res.rc, (-signal.SIGKILL, 0), res.describe())
                with_packs += res.rc != 0 and bool(pack_files(repo))
                # A kill can land after the snapshot was saved (the index trigger fires a moment
                # before it), so a killed run may have added one; a finished run must have.
                now = self.snapshot_count(repo)
                self.assertIn(now, (snapshots, snapshots + 1) if res.rc else (snapshots + 1,))
                snapshots = now
                self.assertEqual(B.missing_indexed_packs(repo), [], "an index names a missing pack")
                got = repo.coffer("snapshots", "--json")
                self.assertEqual(got.rc, 0, got.describe())
                # restic 0.14's check refuses any other lock, stale or not; `unlock` removes stale
                # ones only, so coffer's must carry this host and its (now dead) PID.
                repo.restic("unlock")
                self.assertEqual(os.listdir(os.path.join(repo.path, "locks")), [],
                                 "restic does not see coffer's lock as stale")
                check = repo.restic("check", check=False)
                self.assertEqual(check.rc, 0, check.describe())
        self.assertGreaterEqual(with_packs, 3, "too few kills hit a backup that had written packs")
        B.coffer_backup(repo, "--pack-size", "4", F.crash)
        self.assertEqual(self.snapshot_count(repo), snapshots + 1)
        self.assertRepoConsistent(repo, read_data=True)
        with open(os.path.join(F.crash, "f3.bin"), "rb") as f:
            want = f.read()
        sid = repo.snapshots()[-1]["id"]
        self.assertTrue(repo.restic("dump", sid, os.path.join(F.crash, "f3.bin")).out == want)

    def test_sigint(self):
        repo = F.repo("repo-sigint")
        res = interrupt(start_backup(repo, "--pack-size", "4", F.crash), repo, TRIGGERS["4 packs"],
                        signal.SIGINT)
        if res.rc == 0:
            self.skipTest("the backup finished before it could be interrupted")
        E.check_sane(res)
        self.assertEqual(res.rc, 130, res.describe())
        self.assertEqual(self.snapshot_count(repo), 0)
        self.assertEqual(repo.list("locks"), [])
        self.assertRepoConsistent(repo)
        B.coffer_backup(repo, "--pack-size", "4", F.crash)
        self.assertRepoConsistent(repo)


# --------------------------------------------------------------------------------------------------
class SourceChangeTest(Base):
    def test_file_growing_while_read_gives_a_warning(self):
        d = F.ws.fresh("growing")
        os.makedirs(d)
        path = os.path.join(d, "grows.bin")
        with open(path, "wb") as f:
            f.write(random.Random(5).randbytes(24 * E.MiB))

        def grow():
            with open(path, "ab") as f:
                f.write(b"appended while coffer reads\n" * 1000)

        repo = F.repo("repo-growing")
        watcher = on_first_read(d, grow)
        res = repo.coffer("backup", d)
        watcher.join(timeout=60)
        self.assertEqual(res.rc, 0, res.describe())
        self.assertIn(b"changed while it was read: " + os.fsencode(path), res.err)
        self.assertEqual(self.snapshot_count(repo), 1)
        self.assertRepoConsistent(repo)

    def test_files_vanishing_mid_run_are_errors(self):
        d = F.ws.fresh("vanish")
        os.makedirs(d)
        names = ["f%04d.txt" % i for i in range(3000)]
        for n in names:
            with open(os.path.join(d, n), "w") as f:
                f.write("file %s\n" % n)
        doomed = names[-1000:]

        def delete():
            for n in reversed(doomed):
                os.unlink(os.path.join(d, n))

        repo = F.repo("repo-vanish")
        watcher = on_first_read(d, delete)
        res = repo.coffer("backup", d, sane=False)
        watcher.join(timeout=60)
        E.check_sane(res, one_line=False)
        self.assertEqual(res.rc, 3, res.describe())
        self.assertIn(b"No such file or directory", res.err)
        snaps = repo.snapshots()
        self.assertEqual(len(snaps), 1)
        listed = {os.path.basename(p) for p in
                  repo.restic("ls", snaps[0]["id"]).out.decode().split("\n") if p}
        self.assertIn(names[0], listed)
        self.assertFalse(set(doomed) <= listed, "no deleted file is missing from the snapshot")
        self.assertRepoConsistent(repo)


class FullDiskTest(Base):
    def test_repository_filesystem_full(self):
        if not E.IS_ROOT:
            self.skipTest("needs root to mount a tmpfs")
        mnt = F.ws.path("small-fs")
        B.mount_tmpfs(mnt, "3m")
        F.mounts.append(mnt)
        repo = F.repo("small-fs/repo")
        res = repo.coffer("backup", "--json", F.crash)
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn(b"space", res.err.lower())
        self.assertEqual(os.listdir(os.path.join(repo.path, "snapshots")), [])
        self.assertEqual(B.missing_indexed_packs(repo), [], "an index names a missing pack")
        self.assertEqual(repo.list("locks"), [])
        subprocess.run(["mount", "-o", "remount,size=128m", mnt], check=True)
        self.assertRepoConsistent(repo)
        B.coffer_backup(repo, "--pack-size", "4", F.crash)
        self.assertRepoConsistent(repo, read_data=True)


if __name__ == "__main__":
    E.run_tests()
