#!/usr/bin/env python3
"""`coffer copy` against the real restic 0.14.

* restic-made v2 source -> coffer-initialised destination (another password, another polynomial), and
  coffer-made v1 source -> restic-made v2 destination: `restic check --read-data` passes on the
  destination, and `restic restore` of every copied snapshot equals the restore of its source snapshot
  (every stat field, xattrs and hard links); "original" names the source snapshot, trees keep their ids.
* Already copied: a second coffer copy copies nothing (and writes nothing); restic's copy skips
  coffer's copies, and coffer skips restic's; filters (--host, --tag, --path, latest) choose.
* Dedup: into a destination made with `coffer init --copy-chunker-params` that already holds the data,
  copy adds no duplicate blob.
* Failures: a destination (or source) that is missing or has another password -> exit 10 / 12 and
  nothing written to the other repository; a corrupted source pack -> exit 1 naming the pack, no copy of
  that snapshot (the ones before stay), and the destination still passes restic check.
Run: COFFER_BIN=build/coffer python3 tests/tools/copy_test.py
"""

import collections
import os
import re
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_support as E  # noqa: E402

WS = None
F = None  # module fixture
EXIT_NO_REPO, EXIT_WRONG_PASSWORD = 10, 12
SNAP_LINE = re.compile(rb"^snapshot ([0-9a-f]{8}) of \[(.*)\] at (.+)\)$")


class Repo(E.ResticRepo):
    """A ResticRepo with its own password file (copy's two sides have different passwords)."""

    def __init__(self, ws, name, pwfile):
        super().__init__(ws, name)
        self.pwfile = pwfile

    def _restic(self, *args, check=True, cwd=None, env=None, timeout=600):
        return super()._restic(*args, check=check, cwd=cwd,
                               env=dict(env or {}, RESTIC_PASSWORD_FILE=self.pwfile), timeout=timeout)

    def coffer(self, *args, pwfile=None, **kw):
        return super().coffer(*args, pwfile=pwfile or self.pwfile, **kw)

    def clone(self, name):
        c = Repo(self.ws, name, self.pwfile)
        shutil.copytree(self.path, c.path, symlinks=True)
        for dirpath, _, files in os.walk(c.path):
            for n in files:
                os.chmod(os.path.join(dirpath, n), 0o600)
        return c


def listing(path):
    """Every file below `path` with its size and mtime (to see that nothing was written)."""
    out = {}
    for dirpath, _, files in os.walk(path):
        for n in files:
            st = os.lstat(os.path.join(dirpath, n))
            out[os.path.relpath(os.path.join(dirpath, n), path)] = (st.st_size, st.st_mtime_ns)
    return out


class Fixture:
    def __init__(self):
        self.ws = E.Workspace("copy")
        self.pw_src = self.ws.pwfile
        self.pw_dst = self.ws.write("dst-password", "c0ffer-E2E-destination-Pa55")
        self.data = self.ws.path("data")
        os.makedirs(self.data)
        self.src = E.build_source_tree(self.data, big_size=3 * E.MiB + 77)
        self.other = os.path.join(self.data, "other")
        os.makedirs(self.other)
        with open(os.path.join(self.other, "note.txt"), "w") as f:
            f.write("another host\n")
        self.templates = {}
        # restic-made v2 source: s1 (h1, tag a), s2 (h1, one file more), s3 (h2, tag b, other/)
        self.rsrc = Repo(self.ws, "rsrc", self.pw_src).init()
        self.rs = self.backup_three(self.rsrc, restic=True)
        # coffer-made v1 source with the same three snapshots
        self.csrc = Repo(self.ws, "csrc", self.pw_src)
        self.csrc.coffer_ok("init", "--repository-version", "1")
        self.cs = self.backup_three(self.csrc, restic=False)

    def backup_three(self, repo, restic):
        added = os.path.join(self.src, "added-%s.bin" % repo.name)
        ids = [self.backup(repo, restic, ["src"], "h1", ["a"])]
        with open(added, "wb") as f:
            f.write(os.urandom(2 * E.MiB))
        ids.append(self.backup(repo, restic, ["src"], "h1", []))
        os.unlink(added)
        ids.append(self.backup(repo, restic, ["other"], "h2", ["b"]))
        return ids

    def backup(self, repo, restic, paths, host, tags):
        if restic:
            return repo.backup(paths, host, tags=tags, cwd=self.data)
        args = ["backup", "--host", host] + [x for t in tags for x in ("--tag", t)] + paths
        repo.coffer_ok(*args, cwd=self.data)
        repo.forget_memo()
        return repo.snapshots()[-1]["id"]  # restic lists oldest first

    def empty(self, name, how, pwfile=None):
        """An empty destination: restic init (v2) or coffer init, cloned from a template."""
        pwfile = pwfile or self.pw_dst
        key = (how, pwfile)
        if key not in self.templates:
            t = Repo(self.ws, "template-%s-%d" % (how, len(self.templates)), pwfile)
            if how == "restic":
                t.init()
            else:
                t.coffer_ok("init")
            self.templates[key] = t
        return self.templates[key].clone(name)


def setUpModule():
    global F
    F = Fixture()


def tearDownModule():
    F.ws.cleanup()


def copy(dst, src, *args, rc=0):
    res = dst.coffer("copy", "--from-repo", src.path, "--from-password-file", src.pwfile, *args)
    if rc is not None and res.rc != rc:
        raise AssertionError("coffer copy: want exit %d\n%s" % (rc, res.describe()))
    dst.forget_memo()
    return res


def restic_copy(dst, src, *args):
    res = dst.restic("copy", "--from-repo", src.path, "--from-password-file", src.pwfile, *args)
    dst.forget_memo()
    return res


def copied_from(dst):
    """original id -> destination snapshot, for every snapshot of `dst`."""
    out = {}
    for s in dst.snapshots():
        out[s.get("original")] = s
    return out


class CopyTest(unittest.TestCase):
    def assert_copies(self, dst, src, ids):
        """Every snapshot `ids` of `src` has exactly one copy in `dst` that restores identically."""
        by_orig = collections.Counter(s.get("original") for s in dst.snapshots())
        srcs = {s["id"]: s for s in src.snapshots()}
        copies = copied_from(dst)
        for sid in ids:
            self.assertEqual(by_orig[sid], 1, "copies of %s" % sid)
            want, got = srcs[sid], copies[sid]
            for field in ("time", "tree", "paths", "hostname", "username", "tags"):
                self.assertEqual(want.get(field), got.get(field), field)
            self.assertNotIn("parent", got)
            a = E.scan_tree(src.restic_restore(sid))
            b = E.scan_tree(dst.restic_restore(got["id"]))
            diffs = E.compare_scans(a, b, skip=(b".",))  # the target dir itself is not restored
            self.assertEqual(diffs, [], E.fmt_diffs(diffs))

    def assert_check(self, repo):
        res = repo.restic("check", "--read-data")
        self.assertIn(b"no errors were found", res.out)

    def test_restic_source_into_coffer_destination(self):
        dst = F.empty("dst-coffer", "coffer")
        self.assertNotEqual(dst.cat_json("config")["chunker_polynomial"],
                            F.rsrc.cat_json("config")["chunker_polynomial"])
        res = copy(dst, F.rsrc)
        lines = res.out.split(b"\n")
        heads = [SNAP_LINE.match(ln) for ln in lines if ln.startswith(b"snapshot ") and b" of [" in ln]
        self.assertEqual(sorted(m.group(1).decode() for m in heads), sorted(s[:8] for s in F.rs))
        self.assertEqual(res.out.count(b"  copy started, this may take a while..."), 3)
        self.assertEqual(len(re.findall(rb"(?m)^snapshot [0-9a-f]{8} saved$", res.out)), 3)
        self.assertIn(b"3 snapshots copied, 0 already copied", res.out)
        self.assert_check(dst)
        self.assert_copies(dst, F.rsrc, F.rs)
        # again: nothing to copy, nothing written
        before = listing(dst.path)
        res = copy(dst, F.rsrc)
        self.assertEqual(res.out.count(b"skipping source snapshot"), 3)
        self.assertNotIn(b"copy started", res.out)
        self.assertIn(b"0 snapshots copied, 3 already copied; 0 new blobs", res.out)
        self.assertEqual(listing(dst.path), before)
        # restic's copy recognises coffer's copies
        res = restic_copy(dst, F.rsrc)
        self.assertEqual(res.out.count(b"skipping source snapshot"), 3, res.describe())
        self.assertNotIn(b"copy started", res.out)

    def test_coffer_v1_source_into_restic_v2_destination(self):
        dst = F.empty("dst-restic", "restic")
        self.assertEqual(F.csrc.cat_json("config")["version"], 1)
        location = F.ws.write("csrc-location", " %s \n" % F.csrc.path)
        res = dst.coffer("copy", "--from-repository-file", location, "--compression", "max",
                         "--from-password-command", "cat " + F.pw_src)
        self.assertEqual(res.rc, 0, res.describe())
        dst.forget_memo()
        self.assert_check(dst)
        self.assert_copies(dst, F.csrc, F.cs)
        locs = dst.blob_locations()
        trees = [b for b in locs.values() if b["type"] == "tree"]
        self.assertTrue(any("uncompressed_length" in b for b in trees))  # v2: compressed
        self.assertTrue(any("uncompressed_length" in b for b in locs.values() if b["type"] == "data"))
        res = restic_copy(dst, F.csrc)
        self.assertEqual(res.out.count(b"skipping source snapshot"), 3, res.describe())

    def test_restic_copies_are_recognised_and_filters_choose(self):
        dst = F.empty("dst-mixed", "restic")
        restic_copy(dst, F.rsrc, "latest", "--host", "h1")  # s2
        res = copy(dst, F.rsrc, "--host", "h1")
        self.assertIn(b"skipping source snapshot %s, was already copied to snapshot" % F.rs[1][:8].encode(),
                      res.out)
        self.assertEqual(res.out.count(b"copy started"), 1)  # s1 only
        self.assertIn(b"1 snapshots copied, 1 already copied", res.out)
        res = copy(dst, F.rsrc, "--tag", "b", "--path", os.path.join(F.data, "other"))
        self.assertIn(b"1 snapshots copied, 0 already copied", res.out)
        res = copy(dst, F.rsrc, "latest", F.rs[0][:10], "ffffffffff")
        self.assertIn(b'Ignoring "ffffffffff"', res.err)
        self.assertIn(b"0 snapshots copied, 2 already copied", res.out)
        self.assert_copies(dst, F.rsrc, F.rs)
        self.assert_check(dst)

    def test_shared_polynomial_adds_no_duplicate_blobs(self):
        dst = Repo(F.ws, "dst-dedup", F.pw_dst)
        dst.coffer_ok("init", "--copy-chunker-params", "--from-repo", F.rsrc.path,
                      env={"RESTIC_FROM_PASSWORD_FILE": F.pw_src})
        self.assertEqual(dst.cat_json("config")["chunker_polynomial"],
                         F.rsrc.cat_json("config")["chunker_polynomial"])
        dst.backup(["src"], "direct", cwd=F.data)
        before = dst.restic("list", "blobs").out.split(b"\n")
        src_data = {ln for ln in F.rsrc.restic("list", "blobs").out.split(b"\n") if ln.startswith(b"data ")}
        res = dst.coffer("copy", env={"RESTIC_FROM_REPOSITORY": F.rsrc.path,  # restic's variables
                                      "RESTIC_FROM_PASSWORD": E.PASSWORD})
        self.assertEqual(res.rc, 0, res.describe())
        dst.forget_memo()  # restic's list output is memoised per repository
        after = [ln for ln in dst.restic("list", "blobs").out.split(b"\n") if ln]
        self.assertEqual(len(after), len(set(after)), "duplicate blobs after copy")
        data_before = {ln for ln in before if ln.startswith(b"data ")}
        data_after = {ln for ln in after if ln.startswith(b"data ")}
        self.assertEqual(data_after, data_before | src_data)
        self.assertLess(len(data_after - data_before), len(src_data) // 2)  # most was there
        self.assert_check(dst)

    def test_unopenable_repositories(self):
        dst = F.empty("dst-fail", "coffer")
        src_before, dst_before = listing(F.rsrc.path), listing(dst.path)
        missing = Repo(F.ws, "missing", F.pw_dst)
        res = copy(missing, F.rsrc, rc=EXIT_NO_REPO)
        self.assertIn(b"destination repository", res.err)
        dst_wrong = Repo(F.ws, "dst-fail", F.pw_src)
        res = copy(dst_wrong, F.rsrc, rc=EXIT_WRONG_PASSWORD)
        self.assertIn(b"destination repository", res.err)
        res = copy(dst, Repo(F.ws, "no-source", F.pw_src), rc=EXIT_NO_REPO)
        self.assertIn(b"source repository", res.err)
        res = copy(dst, Repo(F.ws, "rsrc", F.pw_dst), rc=EXIT_WRONG_PASSWORD)
        self.assertIn(b"source repository", res.err)
        res = dst.coffer("copy")
        self.assertEqual(res.rc, 1)
        self.assertIn(b"--from-repo", res.err)
        self.assertEqual(listing(F.rsrc.path), src_before)
        self.assertEqual(listing(dst.path), dst_before)
        self.assertFalse(os.path.exists(missing.path))

    def test_corrupt_source_pack(self):
        src = F.rsrc.clone("rsrc-corrupt")
        added = src.node(F.rs[1], "/src/added-rsrc.bin")  # relative backup paths: root holds src
        pack = src.blob_locations()[added["content"][0]]["pack"]
        s1_blobs = set()
        for n in ("big.bin", "hello.txt"):
            s1_blobs |= set(src.node(F.rs[0], "/src/" + n)["content"])
        self.assertNotIn(pack, {src.blob_locations()[b]["pack"] for b in s1_blobs})
        loc = src.blob_locations()[added["content"][0]]
        with open(src.pack_path(pack), "r+b") as f:
            f.seek(loc["offset"] + 40)
            f.write(b"\x00corrupt\x00")
        dst = F.empty("dst-corrupt", "coffer")
        res = copy(dst, src, rc=1)
        self.assertIn(pack.encode(), res.err)
        self.assertIn(b"snapshot " + F.rs[1][:8].encode(), res.err)
        copies = copied_from(dst)
        self.assertIn(F.rs[0], copies)  # copied before the failure
        self.assertNotIn(F.rs[1], copies)
        self.assertNotIn(F.rs[2], copies)  # the run stops, as restic's
        self.assert_check(dst)
        self.assertEqual(os.listdir(os.path.join(dst.path, "locks")), [])


if __name__ == "__main__":
    E.run_tests()
