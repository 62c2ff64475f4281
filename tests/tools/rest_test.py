#!/usr/bin/env python3
"""coffer over restic's REST protocol (rest:URL) and over rclone (rclone:PATH), against real servers.

A real `rclone serve restic --addr 127.0.0.1:PORT DIR` (with a user and password) is the REST server. Covers:
coffer init/backup/snapshots/restore (and a FUSE mount when possible) over rest: compared byte for byte with
the source; restic 0.14 checking (--read-data) and restoring the coffer-made repository over rest:; coffer
reading a restic-made one; the REST password never shown (location, messages); a wrong password (exit 1, one
clear line); the server down (bounded retries, one clear line). Then the round trip over rclone:DIR, with
`restic -r rclone:DIR` checking coffer's repository, and a missing rclone program (one clear line).
Run: COFFER_BIN=build/coffer python3 tests/tools/rest_test.py
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_support as E  # noqa: E402

RCLONE = shutil.which("rclone")
REST_USER = "backup-user"
REST_PASS = "R3st-E2E-s3cret-Pa55"  # distinctive: must never show up in any output
SECRETS = (E.PASSWORD, E.WRONG_PASSWORD, REST_PASS)
FAST = ["-o", "rest.backoff-ms=20", "-o", "rest.retries=3"]
HAVE_FUSE = E.IS_ROOT and os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tree(root: str, seed: int) -> None:
    rnd = random.Random(seed)
    os.makedirs(os.path.join(root, "sub dir"))
    for i in range(8):
        d = "" if i % 2 else "sub dir"
        with open(os.path.join(root, d, "f%02d.bin" % i), "wb") as f:
            f.write(rnd.randbytes(rnd.randint(1, 700_000)))
    open(os.path.join(root, "empty"), "wb").close()


def tree_files(root: str) -> dict:
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


class RestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if RCLONE is None:
            raise unittest.SkipTest("rclone is not installed")
        cls.ws = E.Workspace("rest")
        cls.src = cls.ws.path("src")
        make_tree(cls.src, 5)
        cls.srv_dir = cls.ws.path("served")
        os.makedirs(cls.srv_dir)
        cls.port = free_port()
        env = dict(os.environ, RCLONE_USER=REST_USER, RCLONE_PASS=REST_PASS, RCLONE_CONFIG="/dev/null")
        cls.server = subprocess.Popen([RCLONE, "serve", "restic", "--addr", "127.0.0.1:%d" % cls.port,
                                       cls.srv_dir], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", cls.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        cls.env = E.clean_env({"HOME": cls.ws.root, "XDG_CACHE_HOME": cls.ws.path("xdg"),
                               "RCLONE_CONFIG": "/dev/null"})

    @classmethod
    def tearDownClass(cls):
        cls.server.terminate()
        cls.server.wait(timeout=30)
        cls.ws.cleanup()

    def url(self, name: str, password: str = REST_PASS) -> str:
        return "rest:http://%s:%s@127.0.0.1:%d/%s/" % (REST_USER, password, self.port, name)

    def coffer(self, repo: str, *args, opts=(), timeout=300, sane=True) -> E.CmdResult:
        argv = [E.COFFER_BIN, "-r", repo, "--password-file", self.ws.pwfile, *opts, *args]
        env = dict(self.env, COFFER_CACHE_DIR=self.ws.path("coffer-cache"))
        res = E.run(argv, env=env, cwd=self.ws.root, timeout=timeout)
        E.check_sane(res, secrets=SECRETS, one_line=sane)
        return res

    def ok(self, repo: str, *args, **kw) -> E.CmdResult:
        res = self.coffer(repo, *args, **kw)
        self.assertEqual(res.rc, 0, res.describe())
        return res

    def restic(self, repo: str, *args) -> E.CmdResult:
        env = dict(self.env, RESTIC_PASSWORD_FILE=self.ws.pwfile, RESTIC_REPOSITORY=repo,
                   RESTIC_CACHE_DIR=self.ws.path("restic-cache"))
        res = E.run([E.RESTIC_BIN, *args], env=env, cwd=self.ws.root, timeout=300)
        self.assertEqual(res.rc, 0, res.describe())
        return res

    def restore_and_compare(self, repo: str) -> None:
        target = self.ws.fresh("restore")
        self.ok(repo, "restore", "latest", "--target", target)
        self.assertEqual(tree_files(os.path.join(target, "src")), tree_files(self.src))

    def restic_restore_and_compare(self, repo: str) -> None:
        target = self.ws.fresh("restic-restore")
        self.restic(repo, "restore", "latest", "--target", target)
        self.assertEqual(tree_files(os.path.join(target, "src")), tree_files(self.src))


class RestTest(RestCase):
    def test_coffer_round_trip_and_restic_reads_it(self):
        repo = self.url("coffer-made")
        res = self.ok(repo, "init")
        self.assertIn(b"rest:http://%s:***@127.0.0.1" % REST_USER.encode(), res.out + res.err)
        self.ok(repo, "backup", "src")
        snaps = json.loads(self.ok(repo, "snapshots", "--json").out)
        self.assertEqual(len(snaps), 1)
        self.restore_and_compare(repo)
        self.restic(repo, "check", "--read-data")
        self.restic_restore_and_compare(repo)
        if HAVE_FUSE:
            self.mount_and_compare(repo, snaps[0]["id"])

    def mount_and_compare(self, repo: str, snap: str) -> None:
        mp = self.ws.fresh("mnt")
        os.makedirs(mp)
        res = self.ok(repo, "mount", mp, "--daemon", timeout=120)
        try:
            root = os.path.join(mp, "ids", snap[:8], "src")
            self.assertEqual(tree_files(root), tree_files(self.src))
            # The REST password is in no process's argv and not in the mount table.
            with open("/proc/self/mountinfo", "rb") as f:
                mounts = [line for line in f.read().splitlines() if mp.encode() in line]
            self.assertEqual(len(mounts), 1, mounts)
            self.assertNotIn(REST_PASS.encode(), mounts[0])
            self.assertIn(b"coffer:rest:http://%s:***@" % REST_USER.encode(), mounts[0])
            for pid in os.listdir("/proc"):
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as f:
                        cmdline = f.read()
                except OSError:
                    continue
                self.assertNotIn(REST_PASS.encode(), cmdline, "password in the argv of pid " + pid)
        finally:
            subprocess.run(["fusermount3", "-u", mp], timeout=60, capture_output=True)
        self.assertEqual(res.rc, 0)

    def test_coffer_reads_restic_made_repository(self):
        repo = self.url("restic-made")
        self.restic(repo, "init")
        self.restic(repo, "backup", "src")
        self.ok(repo, "check", "--read-data")
        self.restore_and_compare(repo)

    def test_credentials_from_environment(self):
        repo = "rest:http://127.0.0.1:%d/env-creds/" % self.port
        self.env["COFFER_REST_USERNAME"] = REST_USER
        self.env["COFFER_REST_PASSWORD"] = REST_PASS
        try:
            self.ok(repo, "init")
        finally:
            del self.env["COFFER_REST_USERNAME"], self.env["COFFER_REST_PASSWORD"]
        res = self.coffer(repo, "snapshots")
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn(b"access denied", res.err)

    def test_wrong_password_is_one_clear_line(self):
        res = self.coffer(self.url("coffer-made", E.WRONG_PASSWORD), "snapshots")
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn(b"access denied (HTTP 401)", res.err)
        self.assertIn(b":***@", res.err)

    def test_server_down_bounded_retries(self):
        repo = "rest:http://u:%s@127.0.0.1:%d/x/" % (REST_PASS, free_port())
        res = self.coffer(repo, "snapshots", opts=FAST)
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn(b"failed after 3 attempts", res.err)

    def test_bad_location_and_option(self):
        res = self.coffer("rest:ftp://host/x", "snapshots")
        self.assertEqual(res.rc, 1, res.describe())
        res = self.coffer(self.url("x"), "snapshots", opts=["-o", "rest.nonsense=1"])
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn(b"unknown option rest.nonsense", res.err)


class RcloneTest(RestCase):
    def test_round_trip_and_restic_reads_it(self):
        repo = "rclone:" + self.ws.path("via-rclone")
        self.ok(repo, "init")
        self.ok(repo, "backup", "src")
        self.restore_and_compare(repo)
        self.restic(repo, "check", "--read-data")
        self.restic_restore_and_compare(repo)
        leftovers = subprocess.run(["pgrep", "-f", "--addr 127.0.0.1:[0-9]* " + repo[len("rclone:"):]],
                                   capture_output=True)
        self.assertEqual(leftovers.stdout, b"", "the rclone child outlived coffer")

    def test_missing_program_is_one_clear_line(self):
        res = self.coffer("rclone:" + self.ws.path("x"), "snapshots",
                          opts=["-o", "rclone.program=/nonexistent"])
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn(b"cannot run rclone program", res.err)

    def test_child_that_exits_early_is_an_error(self):
        res = self.coffer("rclone:" + self.ws.path("x"), "snapshots",
                          opts=["-o", "rclone.args=serve nonsense"], sane=False)
        self.assertEqual(res.rc, 1)
        self.assertIn(b"rclone exited with status", res.err)


if __name__ == "__main__":
    E.run_tests()
