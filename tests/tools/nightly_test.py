#!/usr/bin/env python3
"""The README's nightly script, run as it stands over simulated days.

The script is taken from README.md (the ```bash block of "The nightly job"), so the documented example is the
tested one. Each simulated day changes the source tree and runs the script under libfaketime (`faketime`), which
moves coffer's, date's and curl's clocks to 02:30 of that day; `coffer` is found on PATH, as after an install.
A local HTTP listener stands in for the health check and records every ping.

Checked: every day exits 0 and pings once; `check --read-data-subset` runs on Sundays only; the snapshots left
are exactly those restic 0.14 keeps under the same policy (`restic forget --dry-run --json` removes nothing);
`*.tmp` and DIR1's `*.log` are excluded (DIR2's logs are not); `restic check --read-data` passes and restic
restores the last snapshot equal to the source; a day whose repository cannot be opened fails before the
ping. Against a local repository (`RESTIC_REPOSITORY=/path`) and against the B2 emulator
(`RESTIC_REPOSITORY=b2:bucket:prefix` with B2_ACCOUNT_ID/B2_ACCOUNT_KEY).
Run: COFFER_BIN=build/coffer python3 tests/tools/nightly_test.py
"""

from __future__ import annotations

import datetime
import http.server
import json
import os
import re
import shutil
import sys
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..", "support")))
import e2e_support as E  # noqa: E402
from b2emu import start  # noqa: E402
from b2emu.testclient import ACCOUNT, ACCOUNTS, MASTER, B2  # noqa: E402

SOURCE_DIR = os.environ.get("COFFER_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
FAKETIME = shutil.which("faketime")
POLICY = ["--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "6"]


def readme_script() -> str:
    with open(os.path.join(SOURCE_DIR, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("### The nightly job", 1)[1]
    m = re.search(r"```bash\n(.*?)```", section, re.S)
    assert m, "README.md: no ```bash block in the nightly-job section"
    return m.group(1)


class PingListener:
    """A health-check endpoint on loopback that records the path of every request."""

    def __init__(self):
        self.paths = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                listener.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/ping/node1" % self.server.server_address[1]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Source:
    """DIR1 and DIR2 of the script, changed a little every day."""

    def __init__(self, ws: E.Workspace):
        self.dir1, self.dir2 = ws.path("etc-pve"), ws.path("home")
        for d in (self.dir1, self.dir2):
            os.makedirs(d)
        self.write(self.dir1, "cluster.conf", b"nodes: node1 node2\n")
        self.write(self.dir2, "alice/notes.txt", os.urandom(300_000))

    @staticmethod
    def write(root: str, rel: str, data: bytes) -> None:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def change(self, day: int) -> None:
        self.write(self.dir1, "cluster.conf", b"nodes: node1 node2\nversion: %d\n" % day)
        self.write(self.dir1, "vm-%d.conf" % day, b"memory: %d\n" % (1024 * day))
        self.write(self.dir1, "task-%d.log" % day, b"excluded: DIR1/*.log\n")
        self.write(self.dir2, "alice/day-%d.bin" % day, os.urandom(50_000 + day))
        self.write(self.dir2, "alice/scratch-%d.tmp" % day, b"excluded: *.tmp\n")
        self.write(self.dir2, "alice/app-%d.log" % day, b"kept: only DIR1's logs are excluded\n")


class NightlyBase:
    """Mixin: runs the README script day by day against self.repository (set by the subclass)."""

    def setUp(self):
        self.assertIsNotNone(FAKETIME, "faketime is missing: run scripts/install-deps.sh")
        self.ws = E.Workspace("nightly")
        self.addCleanup(self.ws.cleanup)
        self.script = self.ws.path("nightly-backup")
        with open(self.script, "w") as f:
            f.write(readme_script())
        os.chmod(self.script, 0o755)
        self.bin = self.ws.path("bin")  # coffer on PATH, as installed
        os.makedirs(self.bin)
        os.symlink(E.COFFER_BIN, os.path.join(self.bin, "coffer"))
        self.ping = PingListener()
        self.addCleanup(self.ping.stop)
        self.src = Source(self.ws)

    def script_env(self, extra: dict) -> dict:
        asan = os.environ.get("ASAN_OPTIONS", "")
        env = E.clean_env(dict(extra, PATH=self.bin + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
                               RESTIC_PASSWORD_FILE=self.ws.pwfile, PING_URL=self.ping.url,
                               DIR1=self.src.dir1, DIR2=self.src.dir2,
                               COFFER_CACHE_DIR=self.ws.path("cache"),
                               # libfaketime is preloaded before the sanitizer runtime of a test build
                               ASAN_OPTIONS=(asan + ":" if asan else "") + "verify_asan_link_order=0"))
        return env

    def run_day(self, when: datetime.datetime, extra: dict) -> E.CmdResult:
        stamp = when.strftime("@%Y-%m-%d %H:%M:%S")
        return E.run([FAKETIME, "-f", stamp, self.script], env=self.script_env(extra), cwd=self.ws.root,
                     timeout=600)

    def run_days(self, first: datetime.date, days: int, extra: dict) -> None:
        for i in range(days):
            day = first + datetime.timedelta(days=i)
            self.src.change(i)
            pings = len(self.ping.paths)
            res = self.run_day(datetime.datetime.combine(day, datetime.time(2, 30)), extra)
            E.check_sane(res, secrets=(E.PASSWORD, MASTER))
            self.assertEqual(res.rc, 0, "day %s\n%s" % (day, res.describe()))
            self.assertEqual(len(self.ping.paths), pings + 1, "day %s: one ping" % day)
            checked = b"no errors were found" in res.out + res.err
            self.assertEqual(checked, day.isoweekday() == 7, "day %s: check on Sundays only\n%s"
                             % (day, res.describe()))

    def assert_outcome(self, local_repo: str, days: int, first: datetime.date) -> None:
        restic = ["--password-file", self.ws.pwfile, "--no-cache"]
        res = E.run([E.RESTIC_BIN, "-r", local_repo, *restic, "snapshots", "--json"], env=E.clean_env())
        self.assertEqual(res.rc, 0, res.describe())
        snaps = json.loads(res.out)
        for s in snaps:  # tagged node1 and with the month of its own (simulated) day
            self.assertIn("node1", s["tags"])
            self.assertIn(s["time"][:7], s["tags"])
        # The policy left exactly what restic keeps: restic's own forget removes nothing more.
        res = E.run([E.RESTIC_BIN, "-r", local_repo, *restic, "forget", *POLICY, "--tag", "node1", "--dry-run",
                     "--json"], env=E.clean_env())
        self.assertEqual(res.rc, 0, res.describe())
        removed = sum(len(g.get("remove") or []) for g in json.loads(res.out))
        self.assertEqual(removed, 0, res.out.decode())
        if days > 7:  # --keep-daily 7 keeps a week of them
            self.assertLess(len(snaps), days, "forget thinned the daily snapshots")
        last = (first + datetime.timedelta(days=days - 1)).isoformat()
        self.assertTrue(any(s["time"].startswith(last) for s in snaps), "the last day's snapshot is kept")
        res = E.run([E.RESTIC_BIN, "-r", local_repo, *restic, "check", "--read-data"], env=E.clean_env())
        self.assertEqual(res.rc, 0, res.describe())
        target = self.ws.fresh("restore")
        res = E.run([E.RESTIC_BIN, "-r", local_repo, *restic, "restore", "latest", "--target", target],
                    env=E.clean_env())
        self.assertEqual(res.rc, 0, res.describe())
        self.assert_restored(target)

    def assert_restored(self, target: str) -> None:
        for root in (self.src.dir1, self.src.dir2):
            for dirpath, _, files in os.walk(root):
                for name in files:
                    path = os.path.join(dirpath, name)
                    got = target + path
                    excluded = name.endswith(".tmp") or (root == self.src.dir1 and name.endswith(".log"))
                    self.assertEqual(os.path.exists(got), not excluded, path)
                    if not excluded:
                        with open(path, "rb") as a, open(got, "rb") as b:
                            self.assertEqual(a.read(), b.read(), path)


class LocalNightlyTest(NightlyBase, unittest.TestCase):
    def test_eight_days_on_a_local_repository(self):
        repo = self.ws.path("repo")
        E.run([E.RESTIC_BIN, "init", "-r", repo, "--password-file", self.ws.pwfile], env=E.clean_env())
        first = datetime.date(2026, 2, 23)  # a Monday: day 7 is a Sunday, day 8 in the next month
        self.run_days(first, 8, {"RESTIC_REPOSITORY": repo})
        self.assert_outcome(repo, 8, first)

    def test_a_failing_day_sends_no_ping(self):
        repo = self.ws.path("repo")
        E.run([E.RESTIC_BIN, "init", "-r", repo, "--password-file", self.ws.pwfile], env=E.clean_env())
        wrong = self.ws.path("wrong-password")
        with open(wrong, "w") as f:
            f.write(E.WRONG_PASSWORD)
        env = {"RESTIC_REPOSITORY": repo}
        res = E.run([FAKETIME, "-f", "@2026-03-02 02:30:00", self.script],
                    env=dict(self.script_env(env), RESTIC_PASSWORD_FILE=wrong), cwd=self.ws.root, timeout=300)
        E.check_sane(res)
        self.assertEqual(res.rc, 12, res.describe())
        self.assertEqual(self.ping.paths, [])
        res = E.run([FAKETIME, "-f", "@2026-03-02 02:30:00", self.script],
                    env=self.script_env({"RESTIC_REPOSITORY": self.ws.path("missing")}), cwd=self.ws.root,
                    timeout=300)
        self.assertEqual(res.rc, 10, res.describe())
        self.assertEqual(self.ping.paths, [])


class B2NightlyTest(NightlyBase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.emu = start(accounts=ACCOUNTS)
        self.addCleanup(self.emu.stop)

    def fetch_bucket(self, bucket: str, prefix: str) -> str:
        b2 = B2(self.emu.base_url, ACCOUNT, MASTER)
        self.assertEqual(b2.authorize().status, 200)
        files, _ = b2.list_all("b2_list_file_names", b2.bucket_id(bucket), prefix=prefix + "/")
        local = self.ws.fresh("fetched")
        for sub in ("data", "index", "keys", "locks", "snapshots"):
            os.makedirs(os.path.join(local, sub))
        for f in files:
            r = b2.download(bucket, f["fileName"])
            self.assertEqual(r.status, 200, f)
            path = os.path.join(local, f["fileName"][len(prefix) + 1:])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as out:
                out.write(r.body)
        return local

    def test_five_days_on_b2(self):
        env = {"RESTIC_REPOSITORY": "b2:bucket-one:node1", "B2_ACCOUNT_ID": ACCOUNT, "B2_ACCOUNT_KEY": MASTER,
               "COFFER_B2_ENDPOINT": self.emu.base_url}
        res = E.run([E.COFFER_BIN, "init"], env=dict(self.script_env(env)), cwd=self.ws.root)
        self.assertEqual(res.rc, 0, res.describe())
        first = datetime.date(2026, 3, 5)  # a Thursday: day 4 is a Sunday
        self.run_days(first, 5, env)
        self.assert_outcome(self.fetch_bucket("bucket-one", "node1"), 5, first)


if __name__ == "__main__":
    E.require_tools()
    unittest.main(verbosity=2)
