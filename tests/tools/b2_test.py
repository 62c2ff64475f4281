#!/usr/bin/env python3
"""coffer against Backblaze B2's native API, served by the B2 emulator (tests/support/b2emu) over real HTTP on
loopback.

Covers: init, backup, snapshots, ls, restore and dump over b2:BUCKET:PREFIX compared byte for byte with the
source; the backend's counters (the -v summary line) against the emulator's own transaction counters; a real
FUSE mount of a b2 repository (skipped without root and /dev/fuse); fault runs (10% of uploads failing 503, the
account token expiring mid-run, a 429 with Retry-After, connections reset mid-upload, connections reset and
bodies truncated mid-download) that complete, after which the bucket is copied back to disk and checked with
`restic check --read-data`; and bad input: a wrong key (exit 1, one line, one authorize call), a missing
bucket, keys restricted to another bucket or prefix, B2 failing every upload (no snapshot saved) and the
network down (the emulator stopped: bounded retries, one clear line); the network going down in the middle of a
backup or restore (the circuit breaker fails the remaining requests at once, the lock is still deleted); and
Ctrl-C while every upload is failing with long backoffs (exit 130 at once, no snapshot, no lock left).
The account key and the repository password must never appear in any output.
Run: COFFER_BIN=build/coffer python3 tests/tools/b2_test.py
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..", "support")))
import e2e_support as E  # noqa: E402
from b2emu import start  # noqa: E402
from b2emu.testclient import ACCOUNT, ACCOUNTS, MASTER, B2, Control  # noqa: E402

FAST = ["-o", "b2.backoff-ms=20"]  # keeps retry waits short; the rules under test are the same
HAVE_FUSE = E.IS_ROOT and os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None
COUNTERS = re.compile(rb"b2: (\d+) requests \((\d+) retried, (\d+) re-authorizations\); class A (\d+), "
                      rb"class B (\d+), class C (\d+); (\d+) bytes up, (\d+) bytes down")


def make_tree(root: str, seed: int, files: int, size: int) -> None:
    """Incompressible files of mixed sizes (one empty, one duplicate, awkward names) under root."""
    rnd = random.Random(seed)
    os.makedirs(os.path.join(root, "sub dir", "n\u00e9st"))
    for i in range(files):
        d = ("", "sub dir", os.path.join("sub dir", "n\u00e9st"))[i % 3]
        with open(os.path.join(root, d, "file+%02d %%.bin" % i), "wb") as f:
            f.write(rnd.randbytes(rnd.randint(size // 2, size)))
    open(os.path.join(root, "empty"), "wb").close()
    shutil.copy(os.path.join(root, "file+00 %.bin"), os.path.join(root, "sub dir", "dup.bin"))


def tree_files(root: str) -> dict:
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


class Shared:
    """The module's workspace, emulator (in memory) and source tree; `base` is a repository with one backup."""

    ws = emu = ctl = src = None
    base = None


def setUpModule():
    Shared.ws = E.Workspace("b2")
    Shared.emu = start(accounts=ACCOUNTS)
    Shared.ctl = Control(Shared.emu.control_url)
    Shared.src = Shared.ws.path("src")
    make_tree(Shared.src, 1, 12, 1_500_000)


def tearDownModule():
    Shared.emu.stop()
    Shared.ws.cleanup()


class TlsProxy:
    """A TLS front (the given certificate) forwarding every connection to a plain-HTTP port on loopback."""

    def __init__(self, cert: str, key: str, target_port: int):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.target = target_port
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            src.close()
            dst.close()

    def _serve(self, conn):
        self.connections += 1
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            conn.close()
            return
        up = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=self._pump, args=(up, tls), daemon=True).start()
        self._pump(tls, up)

    def stop(self):
        self.sock.close()


class B2Case(unittest.TestCase):
    """Faults and counters are reset before each test."""

    @property
    def ws(self):
        return Shared.ws

    @property
    def emu(self):
        return Shared.emu

    @property
    def ctl(self):
        return Shared.ctl

    @property
    def src(self):
        return Shared.src

    def base_repo(self) -> str:
        """The shared repository with one backup of src (made by the first test that needs it)."""
        if Shared.base is None:
            Shared.base = self.new_repo("base/repo")
        self.ctl.post("/counters/reset")
        return Shared.base

    def setUp(self):
        self.ctl.reset()
        self.ctl.post("/counters/reset")

    def env(self, key=(ACCOUNT, MASTER), endpoint=None) -> dict:
        return E.clean_env({"B2_ACCOUNT_ID": key[0], "B2_ACCOUNT_KEY": key[1],
                            "COFFER_B2_ENDPOINT": endpoint or self.emu.base_url,
                            "COFFER_CACHE_DIR": self.ws.path("cache")})

    def coffer(self, repo: str, *args, key=(ACCOUNT, MASTER), endpoint=None, opts=FAST, timeout=300):
        argv = [E.COFFER_BIN, "-r", repo, "--password-file", self.ws.pwfile, *opts, *args]
        res = E.run(argv, env=self.env(key, endpoint), cwd=self.ws.root, timeout=timeout)
        E.check_sane(res, secrets=(E.PASSWORD, MASTER, key[1]))
        return res

    def ok(self, repo: str, *args, **kw) -> E.CmdResult:
        res = self.coffer(repo, *args, **kw)
        self.assertEqual(res.rc, 0, res.describe())
        return res

    def new_repo(self, name: str, backup=True) -> str:
        repo = "b2:bucket-one:" + name
        self.ok(repo, "init")
        if backup:
            self.ok(repo, "backup", "src", "--compression", "off", "--pack-size", "4")
        return repo

    def snapshots(self, repo: str) -> list:
        return json.loads(self.ok(repo, "snapshots", "--json").out)

    def assert_restores(self, repo: str, *extra) -> None:
        target = self.ws.fresh("restore")
        self.ok(repo, "restore", "latest", "--target", target, *extra)
        self.assertEqual(tree_files(os.path.join(target, "src")), tree_files(self.src))

    def fetch_bucket(self, prefix: str) -> str:
        """Copies every file under prefix/ back to disk (list + download with a raw client)."""
        b2 = B2(self.emu.base_url, ACCOUNT, MASTER)
        self.assertEqual(b2.authorize().status, 200)
        files, _ = b2.list_all("b2_list_file_names", b2.bucket_id("bucket-one"), prefix=prefix + "/")
        local = self.ws.fresh("fetched")
        for sub in ("data", "index", "keys", "locks", "snapshots"):
            os.makedirs(os.path.join(local, sub))
        for f in files:
            r = b2.download("bucket-one", f["fileName"])
            self.assertEqual(r.status, 200, f)
            path = os.path.join(local, f["fileName"][len(prefix) + 1:])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as out:
                out.write(r.body)
        return local

    def restic_check(self, prefix: str) -> None:
        local = self.fetch_bucket(prefix)
        res = E.run([E.RESTIC_BIN, "-r", local, "--password-file", self.ws.pwfile, "--no-cache", "check",
                     "--read-data"], env=E.clean_env())
        self.assertEqual(res.rc, 0, res.describe())

    def ops(self) -> list:
        return [e["op"] for e in self.ctl.get("/log")]


class RoundTripTest(B2Case):
    def test_commands_round_trip(self):
        repo = self.base_repo()
        snaps = self.snapshots(repo)
        self.assertEqual(snaps[0]["paths"], [self.src])
        listed = self.ok(repo, "ls", "latest").out.decode()
        self.assertIn("/src/sub dir/n\u00e9st/file+02 %.bin", listed)
        self.assert_restores(repo)
        dumped = self.ok(repo, "dump", "latest", "/src/sub dir/dup.bin").out
        with open(os.path.join(self.src, "file+00 %.bin"), "rb") as f:
            self.assertEqual(dumped, f.read())
        names = [f["fileName"] for f in self.ctl.get("/state")["files"]]
        self.assertIn("base/repo/config", names)
        self.assertTrue(any(re.fullmatch(r"base/repo/data/([0-9a-f]{2})/\1[0-9a-f]{62}", n) for n in names))
        self.assertFalse(any(n.startswith("base/repo/locks/") for n in names), "locks are deleted")
        self.restic_check("base/repo")

    def test_second_backup_is_cheap_and_init_refuses_an_existing_repo(self):
        repo = self.base_repo()
        self.ok(repo, "backup", "src")
        calls = self.ctl.counters()["calls"]
        self.assertNotIn("b2_download_file_by_name", {k for k, v in calls.items() if v > 20}, calls)
        self.assertEqual(calls.get("b2_authorize_account"), 1, calls)
        res = self.coffer(repo, "init")
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn(b"already exists", res.err)

    def test_unchanged_nightly_backup_makes_a_handful_of_calls(self):
        """The local cache of snapshots and trees: an unchanged re-run reads no pack, whatever the tree size."""
        repo = self.new_repo("nightly", backup=False)
        self.ok(repo, "backup", "src")
        seq = max([e["seq"] for e in self.ctl.get("/log")] or [0])
        self.ok(repo, "backup", "src")
        log = [e for e in self.ctl.get("/log") if e["seq"] > seq]
        pack_reads = [e for e in log if e["op"] == "b2_download_file_by_name" and "/data/" in e["path"]]
        self.assertEqual(pack_reads, [], "the parent's trees come from the local cache")
        self.assertLessEqual(len(log), 20, [(e["op"], e["path"]) for e in log])
        # Without the cache every tree of the parent is downloaded, and the backup still works.
        res = self.ok(repo, "--no-cache", "backup", "src")
        self.assertIn(b"snapshot", res.out)
        # A damaged cached tree is detected (MAC), dropped and fetched again.
        cache = self.ws.path("cache")
        trees = [os.path.join(d, f) for d, _, fs in os.walk(cache) if "/objects/trees/" in d for f in fs]
        self.assertTrue(trees, "trees are cached")
        for t in trees:
            with open(t, "r+b") as f:
                f.seek(20)
                b = f.read(1)
                f.seek(20)
                f.write(bytes([b[0] ^ 0x40]))
        self.ok(repo, "backup", "src")
        self.assert_restores(repo)
        for t in trees:
            self.assertEqual(os.stat(t).st_mode & 0o777, 0o600, t)

    def test_a_lock_goes_with_one_call_and_with_every_version(self):
        """A lock stored in one attempt is deleted by the fileId its upload returned: one
        b2_delete_file_version and no listing. A lock whose upload was retried after B2 had
        stored it has two versions, and both go (else the older one would show again)."""
        repo = self.base_repo()

        def locks():
            return [f for f in self.ctl.get("/state")["files"] if f["fileName"].startswith("base/repo/locks/")]

        self.ctl.post("/counters/reset")
        self.ok(repo, "snapshots")
        ops = self.ops()
        self.assertEqual(ops.count("b2_upload_file"), 1, ops)
        self.assertEqual(ops.count("b2_delete_file_version"), 1, ops)
        self.assertNotIn("b2_list_file_versions", ops)
        self.assertEqual(locks(), [])
        self.ctl.post("/counters/reset")
        self.ctl.fault("b2_upload_file", {"type": "error", "status": 503, "when": "after"}, count=1)
        self.ok(repo, "snapshots")
        ops = self.ops()
        self.assertEqual(ops.count("b2_upload_file"), 2, ops)
        self.assertIn("b2_list_file_versions", ops)
        self.assertEqual(ops.count("b2_delete_file_version"), 2, ops)
        self.assertEqual(locks(), [])

    def test_counters_match_the_emulator(self):
        repo = self.base_repo()
        res = self.ok(repo, "-v", "restore", "latest", "--target", self.ws.fresh("restore"))
        m = COUNTERS.search(res.err + res.out)
        self.assertIsNotNone(m, res.describe())
        requests, retries, reauths, a, b, c, up, down = map(int, m.groups())
        emu = self.ctl.counters()
        self.assertEqual((a, b, c), (emu["classes"]["A"], emu["classes"]["B"], emu["classes"]["C"]), emu)
        self.assertEqual(down, emu["download_bytes"])
        self.assertEqual(up, emu["upload_bytes"])
        self.assertEqual(requests, sum(emu["calls"].values()))
        self.assertEqual((retries, reauths), (0, 0))

    def test_connections_option(self):
        repo = self.new_repo("conn", backup=False)
        self.ok(repo, "backup", "src", opts=FAST + ["-o", "b2.connections=1"])
        self.assert_restores(repo)
        res = self.coffer(repo, "snapshots", opts=["-o", "b2.connections=0"])
        self.assertEqual(res.rc, 1, res.describe())
        res = self.coffer(repo, "snapshots", opts=["-o", "b2.nonsense=1"])
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn(b"unknown option b2.nonsense", res.err)

    @unittest.skipUnless(HAVE_FUSE, "needs root, /dev/fuse and fusermount3")
    def test_mount_reads_through_fuse(self):
        repo = self.base_repo()
        snap = self.snapshots(repo)[0]["id"]
        mp = self.ws.fresh("mnt")
        os.makedirs(mp)
        res = self.ok(repo, "mount", mp, "--daemon", timeout=120)
        try:
            root = os.path.join(mp, "ids", snap[:8], "src")
            self.assertEqual(tree_files(root), tree_files(self.src))
        finally:
            subprocess.run(["fusermount3", "-u", mp], timeout=60, capture_output=True)
        self.assertEqual(res.rc, 0)


class FaultTest(B2Case):
    def test_backup_survives_503s_expired_token_429_and_resets(self):
        repo = self.new_repo("faulty", backup=False)
        self.ctl.post("/counters/reset")  # also clears the request log
        self.ctl.fault("b2_upload_file", {"type": "error", "status": 503}, probability=0.1, count=None, seed=2)
        self.ctl.fault("b2_upload_file", {"type": "reset", "when": "mid_request_body", "after_bytes": 70000},
                       skip=4, count=1)
        self.ctl.fault("b2_get_upload_url", {"type": "expire_token"}, skip=2, count=1)
        self.ctl.fault("b2_list_file_names", {"type": "error", "status": 429, "retry_after": 1}, count=1)
        self.ok(repo, "backup", "src", "--compression", "off", "--pack-size", "4")
        status = self.ctl.counters()["status"]
        self.assertGreaterEqual(status.get("503", 0), 1, status)
        self.assertGreaterEqual(status.get("429", 0), 1, status)
        self.assertGreaterEqual(status.get("401", 0), 1, status)
        self.assertNotIn("400", status, "never two uploads on one upload token, never a bad request")
        self.assertEqual(self.ops().count("b2_authorize_account"), 2, "exactly one re-authorization")
        self.assertTrue(all(f["fired"] > 0 for f in self.ctl.get("/faults")), self.ctl.get("/faults"))
        self.assertEqual(self.ctl.get("/state")["uploads_in_flight"], 0)
        self.ctl.reset()
        self.assert_restores(repo)
        self.restic_check("faulty")

    def test_restore_survives_resets_and_truncated_bodies(self):
        repo = self.base_repo()
        self.ctl.fault("download", {"type": "reset", "when": "mid_response_body", "after_bytes": 300000},
                       probability=0.3, count=None, seed=3)
        self.ctl.fault("download", {"type": "truncate", "after_bytes": 1000}, probability=0.2, count=None,
                       seed=4)
        self.ctl.fault("download", {"type": "error", "status": 503}, count=2)
        self.assert_restores(repo)
        dumped = self.ok(repo, "dump", "latest", "/src/file+03 %.bin").out
        with open(os.path.join(self.src, "file+03 %.bin"), "rb") as f:
            self.assertEqual(dumped, f.read())
        fired = [f["fired"] for f in self.ctl.get("/faults")]
        self.assertTrue(all(n > 0 for n in fired), fired)
        resumed = [e for e in self.ctl.get("/log") if e["op"] == "b2_download_file_by_name"
                   and e["status"] == 206]
        self.assertTrue(resumed)

    def test_failing_uploads_save_no_snapshot(self):
        repo = self.new_repo("never", backup=False)
        self.ctl.fault("b2_upload_file", {"type": "error", "status": 503}, match={"name_prefix": "never/data/"},
                       count=None)
        res = self.coffer(repo, "backup", "src", opts=["-o", "b2.backoff-ms=5", "-o", "b2.retries=3"])
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn(b"B2 upload of never/data/", res.err)
        self.assertLessEqual(self.ctl.counters()["calls"]["b2_upload_file"], 3 * 8 * 4)
        self.ctl.reset()
        self.assertEqual(self.snapshots(repo), [])


class BadInputTest(B2Case):
    def assert_one_line(self, res: E.CmdResult, rc: int, text: bytes) -> None:
        self.assertEqual(res.rc, rc, res.describe())
        self.assertEqual(len(res.err.strip().split(b"\n")), 1, res.describe())
        self.assertIn(text, res.err)

    def test_wrong_key_fails_once_with_exit_1(self):
        repo = "b2:bucket-one:wrongkey"  # the key fails before anything else
        for args in (["snapshots"], ["backup", "src"]):
            res = self.coffer(repo, *args, key=(ACCOUNT, "not-the-key"))
            self.assert_one_line(res, 1, b"B2 authorization failed")
        self.assertEqual(self.ctl.counters()["calls"], {"b2_authorize_account": 2})
        res = self.coffer(repo, "snapshots", key=("no-such-key-id", "x"))
        self.assert_one_line(res, 1, b"B2 authorization failed")

    def test_missing_credentials_and_bad_locations(self):
        env = E.clean_env({"COFFER_B2_ENDPOINT": self.emu.base_url})
        res = E.run([E.COFFER_BIN, "-r", "b2:bucket-one:x", "--password-file", self.ws.pwfile, "snapshots"],
                    env=env)
        self.assert_one_line(res, 1, b"B2_ACCOUNT_ID")
        for bad in ("b2:", "b2:ab", "b2:bad_bucket!:x", "b2:bucket-one:a//b"):
            res = self.coffer(bad, "snapshots")
            self.assert_one_line(res, 1, b"invalid B2")

    def test_missing_bucket(self):
        res = self.coffer("b2:no-such-bucket:repo", "init")
        self.assert_one_line(res, 10, b'B2 bucket "no-such-bucket" does not exist')
        res = self.coffer("b2:no-such-bucket:repo", "snapshots")
        self.assert_one_line(res, 10, b'does not exist')

    def test_keys_restricted_elsewhere(self):
        repo = self.base_repo()
        other = self.ctl.post("/keys", {"accountId": ACCOUNT, "bucketName": "bucket-two"})
        res = self.coffer(repo, "snapshots", key=(other["keyId"], other["key"]))
        self.assert_one_line(res, 1, b'restricted to bucket "bucket-two"')
        prefixed = self.ctl.post("/keys", {"accountId": ACCOUNT, "bucketName": "bucket-one",
                                           "namePrefix": "elsewhere/"})
        res = self.coffer(repo, "snapshots", key=(prefixed["keyId"], prefixed["key"]))
        self.assert_one_line(res, 1, b'only allows names starting with "elsewhere/"')
        readonly = self.ctl.post("/keys", {"accountId": ACCOUNT, "bucketName": "bucket-one",
                                           "capabilities": ["listFiles", "readFiles"]})
        res = self.coffer(repo, "backup", "src", key=(readonly["keyId"], readonly["key"]))
        self.assert_one_line(res, 1, b"B2 refused")
        allowed = self.ctl.post("/keys", {"accountId": ACCOUNT, "bucketName": "bucket-one",
                                          "namePrefix": "base/"})
        self.assertEqual(self.coffer(repo, "snapshots", key=(allowed["keyId"], allowed["key"])).rc, 0)

    def test_tls_is_verified_against_the_system_store_or_the_ca_file(self):
        d = self.ws.fresh("tls")
        os.makedirs(d)
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        res = E.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                     "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        self.assertEqual(res.rc, 0, res.describe())
        emu = start(accounts=ACCOUNTS)
        proxy = TlsProxy(cert, key, emu.port)
        emu.base_url = "https://127.0.0.1:%d" % proxy.port  # B2 hands out https URLs only
        try:
            repo = "b2:bucket-one:tls"
            res = self.coffer(repo, "init", endpoint=emu.base_url)
            self.assert_one_line(res, 1, b"B2 authorization failed")
            self.assertEqual(Control(emu.control_url).counters()["calls"], {}, "nothing reached B2")
            self.assertEqual(proxy.connections, 1, "an untrusted certificate is not retried")
            self.ok(repo, "init", endpoint=emu.base_url, opts=["-o", "b2.ca-file=" + cert])
        finally:
            proxy.stop()
            emu.stop()

    def test_network_down(self):
        state = self.ws.fresh("emu-state")
        emu = start(state_dir=state, accounts=ACCOUNTS)
        repo = "b2:bucket-one:down"
        self.assertEqual(self.coffer(repo, "init", endpoint=emu.base_url).rc, 0)
        dead = emu.base_url
        emu.stop()
        start_t = time.monotonic()
        res = self.coffer(repo, "backup", "src", endpoint=dead, opts=["-o", "b2.backoff-ms=50", "-o", "b2.retries=4"])
        self.assert_one_line(res, 1, b"B2")
        self.assertIn(b"after 4 attempts", res.err)
        self.assertLess(time.monotonic() - start_t, 60)
        emu = start(state_dir=state, accounts=ACCOUNTS)  # the network is back: nothing was saved
        try:
            res = self.coffer(repo, "snapshots", "--json", endpoint=emu.base_url)
            self.assertEqual((res.rc, json.loads(res.out)), (0, []), res.describe())
        finally:
            emu.stop()


class InterruptTest(B2Case):
    def test_ctrl_c_during_long_retries_exits_130(self):
        """Every upload fails 503 and the backoff starts at 30 s (minutes of retries): SIGINT ends the
        backup at once with exit 130 and one line; no snapshot is saved and the lock is still deleted."""
        repo = self.new_repo("sigint", backup=False)
        self.ctl.fault("b2_upload_file", {"type": "error", "status": 503}, count=None)
        argv = [E.COFFER_BIN, "-r", repo, "--password-file", self.ws.pwfile, "-o", "b2.backoff-ms=30000",
                "-o", "b2.retries=8", "backup", "src"]
        proc = subprocess.Popen(argv, env=self.env(), cwd=self.ws.root, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            while self.ctl.counters()["status"].get("503", 0) < 2 and proc.poll() is None:
                time.sleep(0.05)  # until the uploads are failing (and waiting out their backoff)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)  # the retries alone would take minutes
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        res = E.CmdResult(argv, proc.returncode, out, err)
        E.check_sane(res, secrets=(E.PASSWORD, MASTER))
        self.assertEqual(res.rc, 130, res.describe())
        self.assertIn(b"interrupted", res.err)
        names = [f["fileName"] for f in self.ctl.get("/state")["files"]]
        self.assertFalse(any(n.startswith("sigint/locks/") for n in names), names)
        self.ctl.reset()
        self.assertEqual(self.snapshots(repo), [])


class BreakerTest(B2Case):
    """The network goes down in the middle of a command: every pack download or upload is reset before its
    answer (a connection-level failure). Two requests spend their retries, then the circuit breaker fails the
    others at once instead of each running its own retry chain; deleting the lock still probes the server."""

    SLOW = ["-o", "b2.backoff-ms=20", "-o", "b2.retries=4", "-o", "b2.connections=2"]

    def pack_calls(self, op: str) -> int:
        return len([e for e in self.ctl.get("/log") if e["op"] == op and "/data/" in e["path"]])

    def test_network_down_mid_restore_fails_fast(self):
        repo = self.base_repo()
        self.ctl.fault("download", {"type": "reset", "when": "before_response"},
                       match={"name_prefix": "base/repo/data/"}, count=None)
        res = self.coffer(repo, "restore", "latest", "--target", self.ws.fresh("restore"), opts=self.SLOW)
        self.assertEqual(res.rc, 3, res.describe())  # restore goes on file by file: partial
        errors = [ln for ln in res.err.splitlines() if b"loading pack" in ln]
        self.assertGreater(len(errors), 2, res.describe())
        self.assertTrue(all(b"after 4 attempts" in ln or b"the server is unreachable" in ln for ln in errors),
                        res.describe())
        chains = [ln for ln in errors if b"after 4 attempts" in ln]
        self.assertLessEqual(len(chains), 4, res.describe())  # the others were refused at once
        # Without the breaker every failed file costs a whole retry chain.
        self.assertLess(self.pack_calls("b2_download_file_by_name"), 4 * len(errors) // 2, res.describe())
        self.assertNotIn(b"removing the repository lock failed", res.err)

    def test_network_down_mid_backup_fails_fast_and_saves_nothing(self):
        repo = self.new_repo("down-mid", backup=False)
        self.ctl.fault("b2_upload_file", {"type": "reset", "when": "before_response"},
                       match={"name_prefix": "down-mid/data/"}, count=None)
        res = self.coffer(repo, "backup", "src", "--compression", "off", "--pack-size", "4", opts=self.SLOW)
        self.assertEqual(res.rc, 1, res.describe())  # check_sane: exactly one line
        self.assertIn(b"B2 upload of down-mid/data/", res.err)
        # The two uploads that trip the breaker, and at most those retrying beside them.
        self.assertLessEqual(self.pack_calls("b2_upload_file"), 4 * 4)
        self.ctl.reset()
        names = [f["fileName"] for f in self.ctl.get("/state")["files"]]
        self.assertFalse(any(n.startswith("down-mid/locks/") for n in names), names)
        self.assertEqual(self.snapshots(repo), [])

if __name__ == "__main__":
    E.run_tests()
