#!/usr/bin/env python3
"""Interrupted and repeated restores: kill -9 and SIGINT in the middle of `coffer restore` on a bigger
file set, then re-running the restore into the same target must finish with an exact result; a restore
over a target with damaged/changed files must also give the exact snapshot content.
Run: COFFER_BIN=build/coffer python3 tests/tools/restic_interrupt_test.py
"""

import os
import random
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_support as E  # noqa: E402

F = None
BIG_FILES = 12
BIG_SIZE = 6 * E.MiB
SMALL_FILES = 300


class Fixture:
    def __init__(self):
        self.ws = E.Workspace("interrupt")
        data = self.ws.path("data")
        self.src = os.path.join(data, "src")
        self._make_source()
        self.repo = E.ResticRepo(self.ws, "repo").init()
        self.snap = self.repo.backup(["src"], "host", [], cwd=data, extra=["--compression", "off"])
        self.src_scan = E.scan_tree(self.src)

    def _make_source(self):
        rnd = random.Random(4242)
        os.makedirs(os.path.join(self.src, "small", "nested"))
        for i in range(BIG_FILES):
            with open(os.path.join(self.src, "big%02d.bin" % i), "wb") as f:
                f.write(rnd.randbytes(BIG_SIZE + i * 4099))
        for i in range(SMALL_FILES):
            sub = "small/nested" if i % 3 else "small"
            with open(os.path.join(self.src, sub, "s%04d.dat" % i), "wb") as f:
                f.write(rnd.randbytes(rnd.randrange(0, 64 * 1024)))
        os.symlink("big00.bin", os.path.join(self.src, "link"))
        os.chmod(os.path.join(self.src, "big03.bin"), 0o4750)
        E.set_times(os.fsencode(self.src))


def setUpModule():
    global F
    F = Fixture()


def tearDownModule():
    if F is not None:
        F.ws.cleanup()


def restored_bytes(target: str) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(target):
        for n in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
            except OSError:
                pass
    return total


class InterruptTest(unittest.TestCase):
    def start_restore(self, target):
        argv = [E.COFFER_BIN, "-r", F.repo.path, "--password-file", F.ws.pwfile,
                "restore", F.snap, "--target", target]
        env = dict(F.repo.env, COFFER_CACHE_DIR=F.ws.path("coffer-cache", "interrupt"))
        return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def interrupt(self, target, sig, threshold):
        """Starts a restore, sends `sig` once `threshold` bytes are on disk; returns (proc, still_running)."""
        proc = self.start_restore(target)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if os.path.isdir(target) and restored_bytes(target) >= threshold:
                break
            time.sleep(0.002)
        running = proc.poll() is None
        if running:
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        return E.CmdResult(proc.args, proc.returncode, out, err), running

    def rerun_and_check(self, target):
        res = F.repo.coffer_ok("restore", F.snap, "--target", target)
        got = E.scan_tree(os.path.join(target, "src"))
        diffs = E.compare_scans(F.src_scan, got)
        self.assertFalse(diffs, "re-run restore is not exact:\n%s\n%s" % (E.fmt_diffs(diffs), res.describe()))

    def test_kill9_then_rerun(self):
        for threshold in (3 * BIG_SIZE, BIG_SIZE, 1):
            target = F.ws.fresh("killed")
            res, running = self.interrupt(target, signal.SIGKILL, threshold)
            self.assertEqual(res.rc, -signal.SIGKILL if running else 0, res.describe())
            self.rerun_and_check(target)
            if running:
                return
        self.skipTest("restore always finished before it could be interrupted")

    def test_kill9_early_then_rerun(self):
        target = F.ws.fresh("killed-early")
        self.interrupt(target, signal.SIGKILL, 1)
        self.rerun_and_check(target)

    def test_sigint_exit_130_then_rerun(self):
        target = F.ws.fresh("sigint")
        res, running = self.interrupt(target, signal.SIGINT, 2 * BIG_SIZE)
        E.check_sane(res)
        if running:
            self.assertEqual(res.rc, 130, res.describe())
        self.rerun_and_check(target)

    def test_restore_over_changed_target(self):
        target = F.ws.fresh("changed")
        F.repo.coffer_ok("restore", F.snap, "--target", target)
        src = os.path.join(target, "src")
        os.truncate(os.path.join(src, "big01.bin"), 1000)
        with open(os.path.join(src, "big02.bin"), "ab") as f:
            f.write(b"junk at the end")
        with open(os.path.join(src, "big04.bin"), "r+b") as f:
            f.seek(E.MiB + 5)
            f.write(b"\0" * 4096)
        os.chmod(os.path.join(src, "big05.bin"), 0o666)
        os.unlink(os.path.join(src, "small", "s0000.dat"))
        os.truncate(os.path.join(src, "small", "nested", "s0001.dat"), 0)
        E.touch_fixed(os.path.join(src, "big04.bin"), F.src_scan[b"big04.bin"]["mtime_ns"])
        self.rerun_and_check(target)


if __name__ == "__main__":
    E.run_tests()
