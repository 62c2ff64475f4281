#!/usr/bin/env python3
"""coffer on bad input: wrong password, missing repository, locked repository, and damaged repository
files (a flipped byte inside a data blob, truncated/missing packs, truncated index, garbled snapshot,
truncated key, truncated config).

Every coffer run here also passes e2e_support.check_sane: no crash/sanitizer/traceback text, the
password never in any output, and errors (exit 1/10/11/12) are exactly one stderr line.
Run: COFFER_BIN=build/coffer python3 tests/tools/restic_damage_test.py
"""

import json
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


class Fixture:
    def __init__(self):
        self.ws = E.Workspace("damage")
        data = self.ws.path("data")
        self.src = os.path.join(data, "src")
        self._make_source()
        self.repo = E.ResticRepo(self.ws, "repo").init()
        # 4 MiB packs (the minimum): the data is spread over several packs.
        self.s1 = self.repo.backup(["src"], "alpha", ["one"], cwd=data, extra=["--pack-size", "4"])
        with open(os.path.join(self.src, "late.txt"), "wb") as f:
            f.write(b"only in the second snapshot\n")
        self.s2 = self.repo.backup(["src"], "alpha", ["two"], cwd=data)
        self.src_scan = E.scan_tree(self.src)

    def _make_source(self):
        rnd = random.Random(99)
        os.makedirs(os.path.join(self.src, "many"))
        for i in range(60):
            with open(os.path.join(self.src, "many", "f%03d.txt" % i), "wb") as f:
                f.write(b"small file %d\n" % i * (i + 1))
        for name, size in (("victim.bin", 300_000), ("neighbour.bin", 200_000), ("big.bin", 7 * E.MiB)):
            with open(os.path.join(self.src, name), "wb") as f:
                f.write(rnd.randbytes(size))
        E.set_times(os.fsencode(self.src))


def setUpModule():
    global F
    F = Fixture()


def tearDownModule():
    if F is not None:
        F.ws.cleanup()


def flip_byte(path: str, offset: int) -> None:
    os.chmod(path, 0o600)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))


def truncate_to(path: str, size: int) -> None:
    os.chmod(path, 0o600)
    os.truncate(path, size)


def one_line(err: bytes) -> str:
    return err.decode(errors="replace").strip()


class Base(unittest.TestCase):
    maxDiff = None

    def assertFailsCleanly(self, res, codes=None):
        """Non-zero exit (in `codes` if given) with a non-empty message; check_sane already ran."""
        self.assertNotEqual(res.rc, 0, "expected a failure\n" + res.describe())
        if codes is not None:
            self.assertIn(res.rc, codes, res.describe())
        self.assertTrue(res.err.strip(), "no error message\n" + res.describe())

    def assertMentions(self, res, needle: str):
        self.assertIn(needle.lower(), res.err.decode(errors="replace").lower(),
                      "error should name %r\n%s" % (needle, res.describe()))

    def restore(self, repo, snap, *args):
        target = F.ws.fresh("restore")
        return target, repo.coffer("restore", snap, "--target", target, *args)


# --------------------------------------------------------------------------------------------------
class AccessErrorsTest(Base):
    def test_wrong_password_exit_12(self):
        for args in (["snapshots"], ["ls", "latest"], ["cat", "config"],
                     ["restore", "latest", "--target", F.ws.fresh("t")]):
            with self.subTest(args=args[0]):
                res = F.repo.coffer(*args, pwfile=F.ws.wrong_pwfile)
                self.assertFailsCleanly(res, codes=(12,))

    def test_wrong_password_from_env_exit_12(self):
        res = F.repo.coffer("snapshots", repo_args=False,
                            env={"RESTIC_REPOSITORY": F.repo.path, "RESTIC_PASSWORD": E.WRONG_PASSWORD})
        self.assertFailsCleanly(res, codes=(12,))

    def test_missing_repository_exit_10(self):
        empty = F.ws.fresh("empty-dir")
        os.mkdir(empty)
        for path in (F.ws.path("does", "not", "exist"), empty, "local:" + F.ws.path("nope")):
            with self.subTest(path=path):
                res = E.run([E.COFFER_BIN, "-r", path, "--password-file", F.ws.pwfile, "snapshots"],
                            env=E.clean_env())
                E.check_sane(res)
                self.assertFailsCleanly(res, codes=(10,))

    def test_no_repository_given(self):
        res = E.run([E.COFFER_BIN, "--password-file", F.ws.pwfile, "snapshots"], env=E.clean_env())
        E.check_sane(res)
        self.assertFailsCleanly(res, codes=(1, 10))

    def test_password_command_failing(self):
        res = F.repo.coffer("--password-command", "false", "snapshots", repo_args=False,
                            env={"RESTIC_REPOSITORY": F.repo.path})
        self.assertFailsCleanly(res)

    def test_password_never_printed_verbose(self):
        # -v on a failing and a succeeding command: check_sane verifies the password is absent.
        F.repo.coffer("-v", "ls", "latest", pwfile=F.ws.wrong_pwfile)
        res = F.repo.coffer("-v", "snapshots", repo_args=False,
                            env={"RESTIC_REPOSITORY": F.repo.path, "COFFER_PASSWORD": E.PASSWORD})
        self.assertEqual(res.rc, 0, res.describe())

    def test_unknown_command_and_option(self):
        for args in (["frobnicate"], ["ls", "--no-such-option", "latest"], ["restore", "latest"]):
            with self.subTest(args=args):
                res = F.repo.coffer(*args, sane=False)
                E.check_sane(res, one_line=False)  # usage errors may add a hint line
                self.assertNotEqual(res.rc, 0, res.describe())
        E.check_sane(F.repo.coffer(sane=False), one_line=False)


# --------------------------------------------------------------------------------------------------
class LockTest(Base):
    def test_exclusive_lock_blocks_restore_exit_11(self):
        repo = F.repo.copy("repo-locked")
        self.hold_stale_exclusive_lock(repo)
        target, res = self.restore(repo, F.s2)
        self.assertFailsCleanly(res, codes=(11,))
        self.assertMentions(res, "lock")

    def hold_stale_exclusive_lock(self, repo):
        """Starts `restic check` (exclusive lock) and kill -9s it once its lock file exists."""
        e = dict(repo.env, RESTIC_PASSWORD_FILE=F.ws.pwfile, RESTIC_REPOSITORY=repo.path)
        proc = subprocess.Popen([E.RESTIC_BIN, "check", "--no-cache"], env=e,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        locks = os.path.join(repo.path, "locks")
        deadline = time.monotonic() + 60
        while not [n for n in os.listdir(locks) if E.HEX64.match(n)]:
            if proc.poll() is not None or time.monotonic() > deadline:
                self.fail("restic check finished before its lock could be kept")
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()


# --------------------------------------------------------------------------------------------------
class DamagedDataTest(Base):
    def victim(self, repo, name="victim.bin"):
        node = repo.node(F.s2, "/src/" + name)
        self.assertEqual(len(node["content"]), 1, "fixture: %s should be one blob" % name)
        blob = node["content"][0]
        return blob, repo.blob_locations()[blob]

    def check_others(self, target, damaged, maybe=()):
        """Every file except `damaged` and `maybe` restored exactly; damaged ones must not look correct;
        `maybe` ones (readable in principle, restic fails them too) are either exact or not looking right."""
        got = E.scan_tree(os.path.join(target, "src"))
        maybe_b = {os.fsencode(m) for m in maybe}
        skip = tuple(os.fsencode(d) for d in damaged) + tuple(maybe_b)
        diffs = E.compare_scans(F.src_scan, got, skip=skip)
        self.assertFalse(diffs, "files not affected by the damage differ:\n" + E.fmt_diffs(diffs))
        for d in skip:
            rec, want = got.get(d), F.src_scan[d]
            if d in maybe_b and rec is not None and rec.get("sha256") == want["sha256"]:
                continue
            if rec is not None and rec["type"] == "file":
                looks_ok = all(rec[k] == want[k] for k in ("size", "mtime_ns", "mode"))
                self.assertFalse(looks_ok and rec["sha256"] != want["sha256"],
                                 "%r has wrong content but looks correct (size, mtime, mode restored)" % d)
                self.assertNotEqual(rec["sha256"], want["sha256"], "damage was not noticed?")

    def test_flipped_byte_in_data_blob(self):
        repo = F.repo.copy("repo-flip")
        blob, loc = self.victim(repo)
        flip_byte(repo.pack_path(loc["pack"]), loc["offset"] + loc["length"] // 2)
        target, res = self.restore(repo, F.s2)
        self.assertEqual(res.rc, 3, res.describe())
        self.assertMentions(res, loc["pack"][:8])
        self.assertMentions(res, blob[:8])
        self.check_others(target, ["victim.bin"])
        for args in (["dump", F.s2, "/src/victim.bin"], ["cat", "blob", blob]):
            with self.subTest(args=args[0]):
                self.assertFailsCleanly(repo.coffer(*args))
        with open(os.path.join(F.src, "neighbour.bin"), "rb") as f:
            self.assertTrue(repo.coffer_ok("dump", F.s2, "/src/neighbour.bin").out == f.read())

    def test_verify_after_damage(self):
        repo = F.repo.copy("repo-flip-verify")
        blob, loc = self.victim(repo, "neighbour.bin")
        flip_byte(repo.pack_path(loc["pack"]), loc["offset"] + 40)
        target, res = self.restore(repo, F.s2, "--verify")
        self.assertEqual(res.rc, 3, res.describe())
        self.check_others(target, ["neighbour.bin"])

    def test_missing_pack(self):
        repo = F.repo.copy("repo-nopack")
        blob, loc = self.victim(repo)
        os.unlink(repo.pack_path(loc["pack"]))
        damaged = self.files_in_pack(repo, loc["pack"])
        target, res = self.restore(repo, F.s2)
        self.assertEqual(res.rc, 3, res.describe())
        self.assertMentions(res, loc["pack"][:8])
        self.check_others(target, damaged)

    def test_truncated_pack(self):
        repo = F.repo.copy("repo-cutpack")
        blob, loc = self.victim(repo)
        cut = loc["offset"] + loc["length"] // 2
        truncate_to(repo.pack_path(loc["pack"]), cut)
        damaged = self.files_in_pack(repo, loc["pack"], from_offset=loc["offset"])
        maybe = set(self.files_in_pack(repo, loc["pack"])) - set(damaged)
        self.assertGreater(len(repo.list("packs")), 2, "fixture: data should be in several packs")
        target, res = self.restore(repo, F.s2)
        self.assertEqual(res.rc, 3, res.describe())
        self.assertMentions(res, loc["pack"][:8])
        self.check_others(target, damaged, maybe)

    def files_in_pack(self, repo, pack, from_offset=0):
        """Relative paths of the snapshot's files with a blob in `pack` at or after `from_offset`."""
        locs = repo.blob_locations()
        out = []
        for rel, rec in F.src_scan.items():
            if rec["type"] != "file" or rec["size"] == 0:
                continue
            node = repo.node(F.s2, "/src/" + os.fsdecode(rel))
            if any(locs[b]["pack"] == pack and locs[b]["offset"] >= from_offset for b in node["content"]):
                out.append(os.fsdecode(rel))
        return out


# --------------------------------------------------------------------------------------------------
class DamagedMetadataTest(Base):
    def test_truncated_index(self):
        repo = F.repo.copy("repo-cutindex")
        idx = repo.list("index")[0]
        path = os.path.join(repo.path, "index", idx)
        truncate_to(path, os.path.getsize(path) // 2)
        for args in (["ls", F.s2], ["restore", F.s2, "--target", F.ws.fresh("t")], ["cat", "index", idx]):
            with self.subTest(args=args[0]):
                res = repo.coffer("--no-cache", *args)
                self.assertFailsCleanly(res)
                self.assertMentions(res, idx[:8])

    def test_garbage_index(self):
        repo = F.repo.copy("repo-junkindex")
        idx = repo.list("index")[0]
        path = os.path.join(repo.path, "index", idx)
        os.chmod(path, 0o600)
        with open(path, "wb") as f:
            f.write(b"\x00" * 20)
        res = repo.coffer("--no-cache", "ls", F.s2)
        self.assertFailsCleanly(res)

    def test_garbled_snapshot(self):
        repo = F.repo.copy("repo-garbled")
        path = os.path.join(repo.path, "snapshots", F.s1)
        flip_byte(path, os.path.getsize(path) // 2)
        for args in (["ls", F.s1], ["cat", "snapshot", F.s1], ["restore", F.s1, "--target", F.ws.fresh("t")]):
            with self.subTest(args=args[0]):
                res = repo.coffer("--no-cache", *args)
                self.assertFailsCleanly(res)
                self.assertMentions(res, F.s1[:8])
        res = repo.coffer("--no-cache", "ls", F.s2)  # the intact snapshot still works
        self.assertEqual(res.rc, 0, res.describe())
        res = repo.coffer("--no-cache", "snapshots", "--json")
        self.assertMentions(res, F.s1[:8])
        if res.rc == 0:
            self.assertEqual(json.loads(res.out), repo.snapshots("--no-cache"))

    def test_empty_and_short_snapshot_files(self):
        for size in (0, 10, 40):
            with self.subTest(size=size):
                repo = F.repo.copy("repo-shortsnap%d" % size)
                truncate_to(os.path.join(repo.path, "snapshots", F.s1), size)
                res = repo.coffer("--no-cache", "ls", F.s1)
                self.assertFailsCleanly(res)

    def test_truncated_key(self):
        for size in (0, 50, None):
            with self.subTest(size=size):
                repo = F.repo.copy("repo-cutkey-%s" % size)
                key = os.path.join(repo.path, "keys", repo.list("keys")[0])
                truncate_to(key, os.path.getsize(key) // 2 if size is None else size)
                res = repo.coffer("--no-cache", "snapshots")
                self.assertFailsCleanly(res, codes=(1, 12))

    def test_key_with_bad_fields(self):
        repo = F.repo.copy("repo-badkey")
        key = os.path.join(repo.path, "keys", repo.list("keys")[0])
        with open(key) as f:
            doc = json.load(f)
        for field, value in (("N", 3), ("salt", "AAAA"), ("data", "!!notbase64!!"), ("kdf", "argon9"),
                             ("N", 1 << 40), ("r", 0)):
            with self.subTest(field=field, value=value):
                os.chmod(key, 0o600)
                with open(key, "w") as f:
                    json.dump(dict(doc, **{field: value}), f)
                start = time.monotonic()
                res = repo.coffer("--no-cache", "snapshots", timeout=120)
                self.assertFailsCleanly(res, codes=(1, 12))
                self.assertLess(time.monotonic() - start, 60, "absurd KDF parameters must be refused quickly")

    def test_truncated_config(self):
        repo = F.repo.copy("repo-cutconfig")
        truncate_to(os.path.join(repo.path, "config"), 60)
        res = repo.coffer("--no-cache", "snapshots")
        self.assertFailsCleanly(res)


if __name__ == "__main__":
    E.run_tests()
