#!/usr/bin/env python3
"""`coffer forget`, `coffer unlock` and `coffer tag` against the real restic 0.14 binary.

forget: restic makes a repository of a few dozen `backup --stdin --time` snapshots over two years, three
hosts, three paths, several tags and seven time zones (including +05:30, +12:45/+13:45, -03:30 and zones
with daylight saving), plus a snapshot in the future, a year-end pair whose local days differ from their
UTC days, an ISO-week boundary and a daylight-saving change inside a --keep-within window. For many
policies `coffer forget --dry-run --json` must give exactly restic's groups (keep, remove, reasons, counters,
every snapshot field) and the text output restic prints (group order aside: restic's is random). A real
forget by coffer must leave the snapshots restic's own forget leaves, and `restic check` must pass.
unlock: a lock of a `restic backup` killed with SIGKILL is stale and removed, a live one is kept (and blocks
forget), `--remove-all` removes both; `restic unlock` probing a running coffer with SIGHUP must not kill it.
tag: --add/--remove/--set change tags in restic's order and set "original", exactly as restic's tag does.
Run: COFFER_BIN=build/coffer python3 tests/tools/forget_test.py
"""

import concurrent.futures
import datetime
import json
import os
import random
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_support as E  # noqa: E402

WS = None
BASE = None  # the shared restic repository (only read, or copied, by the tests)
EXIT_LOCKED = 11
ZONES = ["UTC", "Asia/Kolkata", "America/New_York", "Pacific/Chatham", "America/St_Johns",
         "Europe/Berlin", "Pacific/Kiritimati"]
HOSTS = {"alpha": ["db.sql", "etc.tar"], "beta": ["db.sql"], "gamma": ["home.tar"]}
TAGS = ["daily", "manual", "keep", 'q<&>"\u00e9']  # Go's JSON escapes <, > and &


def snapshot_specs():
    """(host, stdin file name, local time, TZ, tags) of every snapshot; deterministic."""
    rnd = random.Random(20240101)
    start = datetime.datetime(2022, 6, 1)
    specs, times = [], []
    for _ in range(46):
        host = rnd.choice(sorted(HOSTS))
        name = rnd.choice(HOSTS[host])
        if times and rnd.random() < 0.35:  # clusters: same hour, day or week as an earlier one
            t = rnd.choice(times) + datetime.timedelta(seconds=rnd.randrange(60, 3 * 86400))
        else:
            t = start + datetime.timedelta(seconds=rnd.randrange(660 * 86400))
        times.append(t)
        tags = rnd.sample(TAGS, rnd.randrange(3))
        specs.append((host, name, t.strftime("%Y-%m-%d %H:%M:%S"), rnd.choice(ZONES), tags))
    specs += [
        # alpha:/db.sql ends in Berlin summer time; 7 days back crosses the 2024-03-31 switch.
        ("alpha", "db.sql", "2024-04-02 12:00:00", "Europe/Berlin", ["daily"]),
        ("alpha", "db.sql", "2024-03-26 11:30:00", "Europe/Berlin", []),
        ("alpha", "db.sql", "2024-03-26 10:30:00", "Europe/Berlin", ["manual"]),
        # beta:/db.sql: local 2024-01-01 in Berlin is 23:30Z, before a UTC snapshot on 2023-12-31.
        ("beta", "db.sql", "2024-01-01 00:30:00", "Europe/Berlin", ["daily"]),
        ("beta", "db.sql", "2023-12-31 23:59:30", "UTC", ["daily"]),
        ("beta", "db.sql", "2031-01-01 00:00:00", "UTC", []),  # in the future
        # gamma: Sunday 2023-01-01 is ISO week 2022-52, Monday 2023-01-02 week 2023-01.
        ("gamma", "home.tar", "2023-01-01 22:00:00", "Asia/Kolkata", ["keep"]),
        ("gamma", "home.tar", "2023-01-02 01:00:00", "Asia/Kolkata", ["keep", "daily"]),
        ("gamma", "home.tar", "2023-01-02 03:00:00", "America/St_Johns", []),
        # Two paths (restic's table then separates rows by blank lines), given in reverse order.
        ("alpha", ["tree-b", "tree-a"], "2023-07-01 08:00:00", "Pacific/Chatham", ["manual"]),
    ]
    return specs


def make_base_repo():
    repo = E.ResticRepo(WS, "base").init()

    for d in ("tree-a", "tree-b"):
        os.makedirs(WS.path(d))
        with open(WS.path(d, "file"), "w") as f:
            f.write(d + "\n")

    def backup(spec):
        host, name, when, tz, tags = spec
        args = ["backup", "-q", "--host", host, "--time", when]
        if isinstance(name, list):
            args += [WS.path(d) for d in name]
        else:
            args += ["--stdin", "--stdin-filename", name]
        for t in tags:
            args += ["--tag", t]
        data = ("%s %s %s\n" % (host, name, when)).encode()
        e = dict(repo.env, TZ=tz, RESTIC_PASSWORD_FILE=WS.pwfile, RESTIC_REPOSITORY=repo.path,
                 RESTIC_CACHE_DIR=WS.path("restic-cache", "base"))
        res = subprocess.run([E.RESTIC_BIN, *args], env=e, input=data, capture_output=True, timeout=300)
        if res.returncode != 0:
            raise AssertionError("restic backup failed: %r" % res.stderr)

    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(backup, snapshot_specs()))
    repo.forget_memo()
    instants = {}
    for s in repo.snapshots():  # equal times in a group would make restic's order random
        key = (s["hostname"], tuple(s["paths"]),
               datetime.datetime.fromisoformat(re.sub(r"\.\d+", "", s["time"]).replace("Z", "+00:00")))
        assert key not in instants, "two snapshots at the same instant: %r" % (key,)
        instants[key] = s["id"]
    return repo


def setUpModule():
    global WS, BASE
    WS = E.Workspace("forget")
    BASE = make_base_repo()


def tearDownModule():
    if WS is not None:
        WS.cleanup()


def group_map(out: bytes) -> dict:
    """restic's forget --json groups keyed by (host, paths, tags), each re-dumped in its own key order."""
    if not out.strip():
        return {}
    groups = json.loads(out)
    keyed = {}
    for g in groups:
        keyed[json.dumps([g["host"], g["paths"], g["tags"]])] = json.dumps(g)
    assert len(keyed) == len(groups), "duplicate group keys"
    return keyed


def text_sections(out: bytes):
    """Splits `forget -v` text output into (head, sorted group sections, tail)."""
    lines = out.decode().split("\n")
    starts = [i for i, ln in enumerate(lines) if ln.startswith("snapshots for (")]
    if not starts:
        return out.decode(), [], ""
    tail_at = next((i for i, ln in enumerate(lines) if ln.startswith("Would have removed")), len(lines))
    bounds = starts + [tail_at]
    sections = sorted("\n".join(lines[a:b]) for a, b in zip(bounds, bounds[1:]))
    return "\n".join(lines[:starts[0]]), sections, "\n".join(lines[tail_at:])


POLICIES = [
    ["--keep-last", "3"],
    ["--keep-hourly", "5"],
    ["--keep-daily", "7"],
    ["--keep-weekly", "4"],
    ["--keep-monthly", "6"],
    ["--keep-yearly", "3"],
    ["-d", "3", "-w", "2", "-m", "2", "-y", "1"],
    ["--keep-last", "1", "--keep-daily", "2", "--keep-tag", "keep"],
    ["--keep-within", "2m"],
    ["--keep-within", "1y2m3d4h"],
    ["--keep-within", "7d"],
    ["--keep-within-hourly", "3d", "--keep-within-daily", "20d", "--keep-within-weekly", "2m",
     "--keep-within-monthly", "1y", "--keep-within-yearly", "2y"],
    ["--keep-tag", "keep", "--keep-tag", "daily,manual"],
    ["--keep-tag", "", "--keep-weekly", "1"],
    ["--keep-last", "2", "--group-by", "host"],
    ["--keep-daily", "2", "--group-by", "tags"],
    ["--keep-weekly", "1", "--group-by", "host,paths,tags"],
    ["--keep-monthly", "1", "--group-by", ""],
    ["--keep-yearly", "1", "--keep-tag", 'q<&>"\u00e9', "--group-by", ""],
    ["--keep-daily", "3", "--host", "alpha"],
    ["--keep-last", "1", "--tag", "manual"],
    ["--keep-last", "1", "--tag", ""],  # untagged snapshots only
    ["--keep-last", "1", "--tag", "daily,keep", "--tag", "manual"],
    ["--keep-last", "1", "--path", "/db.sql"],
    [],
]


class ForgetPolicyTest(unittest.TestCase):
    def compare_json(self, args, tz=None):
        # --no-lock (allowed with --dry-run) lets restic and coffer run at the same time.
        env = {"TZ": tz} if tz else None
        argv = ["forget", "--no-lock", "--dry-run", "--json", *args]
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            theirs = pool.submit(BASE.restic, *argv, env=env)
            ours = pool.submit(BASE.coffer_ok, *argv, env=env)
            want, got = theirs.result().out, ours.result().out
        self.assertEqual(want.endswith(b"\n"), got.endswith(b"\n"), args)
        w, g = group_map(want), group_map(got)
        self.assertEqual(sorted(w), sorted(g), "groups differ for %r" % args)
        if len(w) == 1:  # no random group order: byte for byte
            self.assertEqual(want, got, args)
        for key in w:
            self.assertEqual(json.loads(w[key]), json.loads(g[key]), "group %s, policy %r" % (key, args))
            self.assertEqual(w[key], g[key], "field order, group %s, policy %r" % (key, args))
        return w

    def test_json_equals_restic_for_many_policies(self):
        removed_any = False
        for args in POLICIES:
            with self.subTest(policy=args):
                groups = self.compare_json(args)
                removed_any |= any(json.loads(g)["remove"] for g in groups.values())
        self.assertTrue(removed_any)

    def test_keep_within_across_daylight_saving_in_the_local_zone(self):
        # In TZ=Europe/Berlin restic parses alpha's newest time as local and subtracts 7 calendar
        # days across the switch to summer time; elsewhere the +02:00 offset stays fixed.
        for tz in ("Europe/Berlin", "Asia/Kolkata"):
            groups = self.compare_json(["--keep-within", "7d", "--host", "alpha", "--path", "/db.sql"], tz)
            (group,) = groups.values()
            kept = {s["time"] for s in json.loads(group)["keep"]}
            self.assertEqual("2024-03-26T11:30:00+01:00" in kept, tz != "Europe/Berlin", tz)
            self.assertNotIn("2024-03-26T10:30:00+01:00", kept)

    def test_text_output_equals_restic(self):
        for args in (["--keep-daily", "3", "--keep-tag", "keep"], ["--keep-last", "2", "--compact"],
                     ["--keep-within-weekly", "3m", "--group-by", "host,tags"], []):
            with self.subTest(policy=args):
                want = BASE.restic("forget", "-v", "--dry-run", *args).out
                got = BASE.coffer_ok("forget", "-v", "--dry-run", *args).out
                self.assertEqual(text_sections(want), text_sections(got))
        args = ["--keep-weekly", "2", "--group-by", ""]
        self.assertEqual(BASE.restic("forget", "--dry-run", *args).out,
                         BASE.coffer_ok("forget", "--dry-run", *args).out)
        self.assertEqual(BASE.restic("forget", "-q", "--dry-run", *args).out,
                         BASE.coffer_ok("forget", "-q", "--dry-run", *args).out)

    def test_refusals(self):
        res = BASE.coffer("forget", "--no-lock", "--keep-last", "1")
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn(b"--no-lock is only applicable", res.err)
        self.assertEqual(BASE.coffer_ok("forget", "--no-lock", "--dry-run", "--keep-last", "1").rc, 0)
        for bad in (["--prune", "--max-unused", "100%", "--keep-last", "1"], ["--keep-last", "-1"],
                    ["--keep-within", "5"],
                    ["--keep-within", "3w"], ["--group-by", "host,colour", "--keep-last", "1"]):
            with self.subTest(args=bad):
                res = BASE.coffer("forget", "--dry-run", *bad)
                self.assertNotEqual(res.rc, 0, res.describe())
        self.assertEqual(len(BASE.snapshots()), len(snapshot_specs()))


def snapshot_ids(repo) -> set:
    repo.forget_memo()
    return {s["id"] for s in repo.snapshots()}


class ForgetRemovesTest(unittest.TestCase):
    def test_forget_leaves_what_restic_leaves(self):
        args = ["--keep-daily", "4", "--keep-monthly", "3", "--keep-tag", "keep"]
        theirs, ours = BASE.copy("by-restic"), BASE.copy("by-coffer")
        want = theirs.restic("forget", *args).out
        got = ours.coffer_ok("forget", *args).out
        norm = lambda b: re.sub(rb"\[\d+:\d\d\]", b"[T]", b)  # noqa: E731 (elapsed time)
        self.assertEqual(len(want.split(b"\n")), len(got.split(b"\n")))
        self.assertEqual(norm(want).split(b"\n")[-3:], norm(got).split(b"\n")[-3:])
        left = snapshot_ids(ours)
        self.assertEqual(snapshot_ids(theirs), left)
        self.assertLess(len(left), len(snapshot_specs()))
        ours.restic("check")
        self.assertEqual(os.listdir(os.path.join(ours.path, "locks")), [])
        # Nothing left to remove by the same policy.
        again = ours.coffer_ok("forget", "--json", *args).out
        self.assertTrue(all(not g["remove"] for g in json.loads(again)))

    def test_forget_by_id(self):
        theirs, ours = BASE.copy("ids-restic"), BASE.copy("ids-coffer")
        snaps = sorted(BASE.snapshots(), key=lambda s: s["id"])
        others = [s for s in snaps if s["hostname"] != "gamma"]
        names = [others[0]["id"], others[1]["id"][:10], "latest", "0000000000nosuch"]
        theirs.restic("forget", "--host", "gamma", *names)
        res = ours.coffer_ok("forget", "--host", "gamma", *names)
        self.assertIn(b"0000000000nosuch", res.err)
        self.assertEqual(snapshot_ids(theirs), snapshot_ids(ours))
        self.assertEqual(len(snapshot_ids(ours)), len(snaps) - 3)
        ours.restic("check")


def wait_for(pred, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


class UnlockTest(unittest.TestCase):
    def locks(self, repo) -> set:
        # Lock files only: a writer's temporary file ("<id>-tmp-...") is renamed a moment later.
        return {n for n in os.listdir(os.path.join(repo.path, "locks")) if len(n) == 64}

    def start_blocked(self, repo, argv, env):
        """Starts a backup that holds a lock while it waits for stdin; returns (process, lock name)."""
        before = self.locks(repo)
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        fresh = wait_for(lambda: self.locks(repo) - before, "a lock of %s" % argv[0])
        self.assertEqual(len(fresh), 1)
        return proc, fresh.pop()

    def start_restic(self, repo):
        env = dict(repo.env, RESTIC_PASSWORD_FILE=WS.pwfile, RESTIC_REPOSITORY=repo.path,
                   RESTIC_CACHE_DIR=WS.path("restic-cache", repo.name))
        return self.start_blocked(repo, [E.RESTIC_BIN, "backup", "--stdin", "-q"], env)

    def test_stale_locks_are_removed_live_ones_kept(self):
        repo = BASE.copy("unlock")
        dead, stale = self.start_restic(repo)
        dead.kill()
        dead.communicate()
        live, held = self.start_restic(repo)
        try:
            self.assertEqual(self.locks(repo), {stale, held})
            res = repo.coffer_ok("unlock")
            self.assertEqual(res.out, b"successfully removed locks\n")
            self.assertEqual(self.locks(repo), {held})
            blocked = repo.coffer("forget", "--keep-last", "1")
            self.assertEqual(blocked.rc, EXIT_LOCKED, blocked.describe())
            self.assertEqual(repo.coffer_ok("unlock", "-q").out, b"")
            self.assertEqual(self.locks(repo), {held})
            repo.coffer_ok("unlock", "--remove-all")
            self.assertEqual(self.locks(repo), set())
        finally:
            live.kill()
            live.communicate()
        repo.restic("check")

    def test_restic_unlock_does_not_kill_a_running_coffer(self):
        # restic 0.14's unlock sends SIGHUP to the owner of a lock made on this host.
        repo = BASE.copy("hup")
        env = dict(repo.env, COFFER_CACHE_DIR=WS.path("coffer-cache", "hup"))
        argv = [E.COFFER_BIN, "-r", repo.path, "--password-file", WS.pwfile, "backup", "--stdin",
                "--host", "hup"]
        proc, held = self.start_blocked(repo, argv, env)
        try:
            repo.restic("unlock")
            time.sleep(0.3)
            self.assertIsNone(proc.poll(), "coffer died from restic's SIGHUP")
            self.assertIn(held, self.locks(repo))
            out, err = proc.communicate(b"data after the probe\n", timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        E.check_sane(E.CmdResult(argv, proc.returncode, out, err))
        self.assertEqual(proc.returncode, 0, err)
        repo.forget_memo()
        self.assertEqual(len([s for s in repo.snapshots() if s["hostname"] == "hup"]), 1)


def by_original(repo) -> dict:
    """original (or own) id -> (tags, original) of every snapshot, as restic shows them."""
    repo.forget_memo()
    return {s.get("original", s["id"]): (s.get("tags"), s.get("original")) for s in repo.snapshots()}


class TagTest(unittest.TestCase):
    def both(self, *args):
        """Runs the same tag command with restic and coffer on two copies; returns their outputs."""
        want = self.theirs.restic("tag", *args)
        got = self.ours.coffer_ok("tag", *args)
        self.assertEqual(want.out, got.out, args)
        self.assertEqual(by_original(self.theirs), by_original(self.ours), args)
        return got

    def test_add_remove_set_as_restic(self):
        self.theirs, self.ours = BASE.copy("tag-restic"), BASE.copy("tag-coffer")
        first = sorted(s["id"] for s in BASE.snapshots() if s["hostname"] == "beta")[0]
        out = self.both("--add", "x,y", "--add", "daily", "--remove", "daily", "--host", "alpha").out
        self.assertRegex(out.decode(), r"modified tags on \d+ snapshots\n$")
        self.both("--remove", "manual", "--tag", "x")
        self.both("--set", "c, d", "--set", "e", first[:12])
        self.both("--set", "", "--host", "beta")  # flattened away: nothing changes
        self.both("--add", "x", "--host", "alpha")  # already there: nothing changes
        self.both("--add", "again", "latest", "--host", "beta", "--tag", "e")  # original stays
        tags, original = by_original(self.ours)[first]
        self.assertEqual((tags, original), (["c", "d", "e", "again"], first))
        self.assertEqual(len(self.ours.snapshots()), len(snapshot_specs()))
        self.ours.restic("check")
        self.assertEqual(os.listdir(os.path.join(self.ours.path, "locks")), [])

    def test_refusals(self):
        for args, msg in ((["latest"], b"nothing to do!"),
                          (["--set", "a", "--add", "b"], b"cannot be given at the same time")):
            res = BASE.coffer("tag", *args)
            self.assertEqual(res.rc, 1, res.describe())
            self.assertIn(msg, res.err)


if __name__ == "__main__":
    E.run_tests()
