#!/usr/bin/env python3
"""coffer list and coffer version against restic 0.14.

One repository (key from `coffer init`, as check_stats_test.py explains), with snapshots written
by restic and by coffer. `coffer list TYPE` must print the same ids as `restic list TYPE` for
every type (restic's order is the backend's, so both are compared as multisets), including a
lock held by a running backup, which `list locks` must show without taking a lock itself.
Bad input: no type, an unknown type, a wrong password, a missing repository.
Run: COFFER_BIN=build/coffer python3 tests/tools/list_test.py
"""

import collections
import json
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_support as E  # noqa: E402

F = None
TYPES = ("snapshots", "index", "packs", "keys", "locks", "blobs")


class Fixture:
    def __init__(self):
        self.ws = E.Workspace("list")
        self.data = self.ws.path("data")
        src = E.build_source_tree(self.data, big_size=3 * E.MiB + 99)
        self.repo = E.ResticRepo(self.ws, "repo").init_with_coffer()
        self.repo.backup([src], "restic-host")
        with open(os.path.join(src, "hello.txt"), "ab") as f:
            f.write(b"changed\n")
        self.repo.coffer_ok("backup", "--host", "coffer-host", src)
        self.repo.backup([src], "restic-host", tags=["again"])
        self.repo.forget_memo()


def setUpModule():
    global F
    F = Fixture()


def lines(res: E.CmdResult) -> collections.Counter:
    return collections.Counter(res.out.decode().splitlines())


class ListTest(unittest.TestCase):
    def test_every_type_lists_what_restic_lists(self):
        for kind in TYPES:
            with self.subTest(kind=kind):
                want = lines(F.repo.restic("list", kind))
                got = F.repo.coffer_ok("list", kind)
                self.assertEqual(lines(got), want)
                self.assertEqual(got.err, b"")
                if kind not in ("locks",):
                    self.assertTrue(want, "the fixture must have %s" % kind)

    def test_blobs_are_typed_lines_matching_the_index(self):
        got = lines(F.repo.coffer_ok("list", "blobs"))
        want = collections.Counter("%s %s" % (b["type"], i) for i, b in F.repo.blob_locations().items())
        self.assertEqual(got, want)
        self.assertTrue(all(re.fullmatch(r"(data|tree) [0-9a-f]{64}", k) for k in got))

    def test_json_changes_nothing(self):
        self.assertEqual(F.repo.coffer_ok("--json", "list", "snapshots").out,
                         F.repo.coffer_ok("list", "snapshots").out)

    def test_a_held_lock_is_listed_and_list_locks_takes_none(self):
        e = dict(F.repo.env, COFFER_CACHE_DIR=F.ws.path("coffer-cache", "held"))
        proc = subprocess.Popen([E.COFFER_BIN, "-r", F.repo.path, "--password-file", F.ws.pwfile,
                                 "backup", "--stdin", "--stdin-filename", "held.bin"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=e)
        try:
            locks_dir = os.path.join(F.repo.path, "locks")
            deadline = time.monotonic() + 120
            while not [n for n in os.listdir(locks_dir) if "-tmp-" not in n]:
                self.assertIsNone(proc.poll(), "the backup ended before it locked")
                self.assertLess(time.monotonic(), deadline, "no lock appeared")
                time.sleep(0.05)
            held = sorted(n for n in os.listdir(locks_dir) if "-tmp-" not in n)
            got = F.repo.coffer_ok("list", "locks")
            self.assertEqual(sorted(got.out.decode().split()), held)
            self.assertEqual(sorted(F.repo.restic("list", "locks").out.decode().split()), held)
            self.assertEqual(sorted(n for n in os.listdir(locks_dir) if "-tmp-" not in n), held,
                             "list locks must not lock")
        finally:
            proc.stdin.write(b"held\n")
            proc.stdin.close()
            self.assertEqual(proc.wait(timeout=300), 0)
        F.repo.forget_memo()
        self.assertEqual(F.repo.coffer_ok("list", "locks").out, b"")


class BadInputTest(unittest.TestCase):
    def test_no_type(self):
        res = F.repo.coffer("list")
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn(b"type not specified", res.err)

    def test_unknown_type(self):
        res = F.repo.coffer("list", "data")
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn(b'invalid type "data"', res.err)
        self.assertEqual(res.out, b"")

    def test_wrong_password(self):
        res = F.repo.coffer("list", "snapshots", pwfile=F.ws.wrong_pwfile)
        self.assertEqual(res.rc, 12, res.describe())

    def test_missing_repository(self):
        res = E.run([E.COFFER_BIN, "-r", F.ws.path("nowhere"), "--password-file", F.ws.pwfile,
                     "list", "snapshots"], env=F.repo.env)
        E.check_sane(res)
        self.assertEqual(res.rc, 10, res.describe())


class VersionTest(unittest.TestCase):
    def test_text_and_json(self):
        text = E.run([E.COFFER_BIN, "version"])
        self.assertEqual(text.rc, 0, text.describe())
        m = re.fullmatch(rb"coffer (\S+) compiled with (.+) on linux/(\S+)\n", text.out)
        self.assertIsNotNone(m, text.out)
        flag = E.run([E.COFFER_BIN, "--version"])
        self.assertEqual(flag.out.strip(), b"coffer " + m.group(1))
        j = json.loads(E.run([E.COFFER_BIN, "--json", "version"]).out)
        self.assertEqual((j["message_type"], j["version"], j["compiler"], j["os"], j["arch"]),
                         ("version", m.group(1).decode(), m.group(2).decode(), "linux",
                          m.group(3).decode()))
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "CMakeLists.txt")) as f:
            self.assertIn("project(coffer VERSION %s " % j["version"], f.read())


if __name__ == "__main__":
    E.run_tests()
