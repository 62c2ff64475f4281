#!/usr/bin/env python3
"""`coffer init` and `coffer key list|add|remove|passwd` against the real restic 0.14 binary.

Repositories coffer creates (v1 and v2) must pass `restic check`, take a `restic backup` that coffer then
reads, and carry a config and key files in restic's exact shape. Chunker parameters copied with
`--copy-chunker-params` must equal the source's. Keys coffer adds or changes must open (or no longer open)
the repository for restic and coffer alike. Refusals (existing repository, current key, wrong password,
mismatching or empty new password, a lock held by restic) must leave the repository byte-for-byte as it was.
Passwords travel only through files, the environment, stdin or a pseudo-terminal, never argv.
Run: COFFER_BIN=build/coffer python3 tests/tools/init_key_test.py
"""

import hashlib
import json
import os
import pty
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_support as E  # noqa: E402

WS = None
DATA = None
NEW_PASSWORD = "n3w-E2E-key-Pa55word"
NEWER_PASSWORD = "n3wer-E2E-key-Pa55word"
SECRETS = (E.PASSWORD, E.WRONG_PASSWORD, NEW_PASSWORD, NEWER_PASSWORD)
KEY_FIELDS = ["created", "username", "hostname", "kdf", "N", "r", "p", "salt", "data"]
EXIT_WRONG_PASSWORD = 12
EXIT_LOCKED = 11


def setUpModule():
    global WS, DATA
    WS = E.Workspace("initkey")
    WS.new_pwfile = WS.write("new-password", NEW_PASSWORD)
    WS.newer_pwfile = WS.write("newer-password", NEWER_PASSWORD)
    DATA = WS.path("data")
    os.makedirs(os.path.join(DATA, "src", "sub"))
    for i in range(20):
        with open(os.path.join(DATA, "src", "sub" if i % 2 else "", "f%02d" % i), "wb") as f:
            f.write(os.urandom(1000 + 5000 * i))
    with open(os.path.join(DATA, "src", "big"), "wb") as f:  # several chunks: cut points need the polynomial
        f.write(os.urandom(6 * E.MiB))


def tearDownModule():
    if WS is not None:
        WS.cleanup()


def irreducible(p: int) -> bool:
    """Ben-Or's test over GF(2), written independently of coffer's implementation."""
    deg = p.bit_length() - 1

    def mulmod(a, b):
        r = 0
        while b:
            if b & 1:
                r ^= a
            b >>= 1
            a <<= 1
            if a >> deg & 1:
                a ^= p
        return r

    def gcd(a, b):
        while b:
            while a and a.bit_length() >= b.bit_length():
                a ^= b << (a.bit_length() - b.bit_length())
            a, b = b, a
        return a

    x = 2
    for _ in range(deg // 2):
        x = mulmod(x, x)
        if gcd(p, x ^ 2) != 1:
            return False
    return True


def tree_state(root: str) -> dict:
    """Every path below `root` with its mode and content (files) — to prove nothing changed."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            content = None
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    content = f.read()
            state[os.path.relpath(p, root)] = (st.st_mode, content)
    return state


def key_files(repo: E.ResticRepo) -> dict:
    out = {}
    for name in sorted(os.listdir(os.path.join(repo.path, "keys"))):
        with open(os.path.join(repo.path, "keys", name), "rb") as f:
            out[name] = f.read()
    return out


class Base(unittest.TestCase):
    def new_repo(self, stem: str) -> E.ResticRepo:
        return E.ResticRepo(WS, os.path.basename(WS.fresh(stem)))

    def coffer(self, repo, *args, rc=0, pwfile=None, repo_args=True, env=None, input=b"") -> E.CmdResult:
        """Runs coffer (with -r and --password-file unless repo_args=False); stdin is `input`, never a tty."""
        argv = [E.COFFER_BIN]
        if repo_args:
            argv += ["-r", repo.path, "--password-file", pwfile or WS.pwfile]
        e = dict(repo.env, COFFER_CACHE_DIR=WS.path("coffer-cache", repo.name))
        e.update(env or {})
        res = E.run(argv + list(args), env=e, input=input)
        E.check_sane(res, secrets=SECRETS)
        if rc is not None and res.rc != rc:
            self.fail("expected rc=%d\n%s" % (rc, res.describe()))
        if res.rc != 0:
            self.assertEqual(res.err.count(b"\n"), 1, res.describe())
        return res

    def restic(self, repo, *args, pwfile=None, check=True, cwd=None) -> E.CmdResult:
        env = {"RESTIC_PASSWORD_FILE": pwfile} if pwfile else None
        return repo.restic(*args, env=env, check=check, cwd=cwd)

    def coffer_init(self, stem: str, *args) -> E.ResticRepo:
        repo = self.new_repo(stem)
        res = self.coffer(repo, "init", *args)
        self.assertRegex(res.out.decode(), r"^created restic repository [0-9a-f]{10} at %s" % re.escape(repo.path))
        self.assertIn(b"Losing your password means that your data is\nirrecoverably lost.\n", res.out)
        return repo

    def config(self, repo) -> dict:
        return json.loads(self.restic(repo, "cat", "config").out)


class InitTest(Base):
    def check_layout(self, repo):
        for dirpath, dirnames, filenames in os.walk(repo.path):
            self.assertEqual(os.stat(dirpath).st_mode & 0o777, 0o700, dirpath)
            for n in filenames:
                self.assertEqual(os.stat(os.path.join(dirpath, n)).st_mode & 0o777, 0o400, n)
        self.assertEqual(sorted(os.listdir(repo.path)),
                         ["config", "data", "index", "keys", "locks", "snapshots"])
        self.assertEqual(len(os.listdir(os.path.join(repo.path, "data"))), 256)
        self.assertEqual(os.path.getsize(os.path.join(repo.path, "config")), 155)
        (name, raw), = key_files(repo).items()
        self.assertEqual(hashlib.sha256(raw).hexdigest(), name)
        self.assertFalse(raw.endswith(b"\n"))
        key = json.loads(raw)
        self.assertEqual(list(key), KEY_FIELDS)
        self.assertEqual((key["kdf"], key["N"], key["r"], key["p"]), ("scrypt", 32768, 8, 1))
        self.assertRegex(key["created"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")

    def test_v1_and_v2_work_with_restic_and_coffer(self):
        for version in ("1", "2"):
            with self.subTest(version=version):
                repo = self.coffer_init("v" + version, "--repository-version", version)
                self.check_layout(repo)
                config = self.config(repo)
                self.assertEqual(list(config), ["version", "id", "chunker_polynomial"])
                self.assertEqual(config["version"], int(version))
                poly = int(config["chunker_polynomial"], 16)
                self.assertEqual(config["chunker_polynomial"], "%x" % poly)
                self.assertEqual(poly.bit_length() - 1, 53)
                self.assertTrue(irreducible(poly))
                self.assertIn(b"no errors were found", self.restic(repo, "check").out)
                snap = repo.backup(["src"], "host" + version, cwd=DATA)
                self.assertIn(b"no errors were found", self.restic(repo, "check", "--read-data").out)
                ours = json.loads(self.coffer(repo, "--json", "snapshots").out)
                self.assertEqual([s["id"] for s in ours], [snap])
                listing = self.coffer(repo, "ls", snap).out.decode()
                self.assertIn("/src/sub/f19", listing)
                self.assertIn("/src/f18", listing)
                out = self.coffer(repo, "dump", snap, "/src/sub/f19").out
                with open(os.path.join(DATA, "src", "sub", "f19"), "rb") as f:
                    self.assertEqual(out, f.read())

    def test_version_names(self):
        for arg, version in ((None, 2), ("stable", 2), ("latest", 2)):
            with self.subTest(arg=arg):
                repo = self.coffer_init("ver", *(["--repository-version", arg] if arg else []))
                self.assertEqual(self.config(repo)["version"], version)
        for bad in ("3", "0", "two"):
            repo = self.new_repo("badver")
            self.coffer(repo, "init", "--repository-version", bad, rc=1)
            self.assertFalse(os.path.exists(repo.path))

    def test_json_output(self):
        repo = self.new_repo("json")
        res = self.coffer(repo, "--json", "init")
        msg = json.loads(res.out)
        self.assertEqual(msg, {"message_type": "initialized", "id": self.config(repo)["id"],
                               "repository": repo.path})

    def test_copy_chunker_params_from_a_restic_repository(self):
        src = self.new_repo("src").init()
        src_poly = self.config(src)["chunker_polynomial"]
        env_repo = self.new_repo("copy-env")  # source password through restic's environment names
        res = self.coffer(env_repo, "init", "--copy-chunker-params",
                          env={"RESTIC_FROM_REPOSITORY": src.path, "RESTIC_FROM_PASSWORD_FILE": WS.pwfile})
        self.assertIn(b"with chunker parameters copied from secondary repository", res.out)
        flag_repo = self.new_repo("copy-flag")
        self.coffer(flag_repo, "init", "--copy-chunker-params", "--from-repo", src.path,
                    "--from-password-file", WS.pwfile, pwfile=WS.new_pwfile)
        for repo, pw in ((env_repo, None), (flag_repo, WS.new_pwfile)):
            self.assertEqual(self.config_with(repo, pw)["chunker_polynomial"], src_poly)
            self.assertNotEqual(self.config_with(repo, pw)["id"], self.config(src)["id"])
        # restic really chunks with it: the same data gives the same blobs in both repositories
        src.backup(["src"], "h", cwd=DATA)
        self.restic(flag_repo, "backup", "--host", "h", "src", pwfile=WS.new_pwfile, cwd=DATA)
        blobs = [{line for line in self.restic(r, "list", "blobs", pwfile=pw).out.split(b"\n")
                  if line.startswith(b"data ")} for r, pw in ((src, None), (flag_repo, WS.new_pwfile))]
        self.assertGreaterEqual(len(blobs[0]), 21)  # 20 small files + the chunks of big
        self.assertEqual(blobs[0], blobs[1])

    def config_with(self, repo, pwfile):
        return json.loads(self.restic(repo, "cat", "config", pwfile=pwfile).out)

    def test_copy_chunker_params_refusals(self):
        src = self.new_repo("src2").init()
        repo = self.new_repo("copy-bad")
        self.coffer(repo, "init", "--copy-chunker-params", "--from-repo", src.path,
                    "--from-password-file", WS.wrong_pwfile, rc=EXIT_WRONG_PASSWORD)
        self.coffer(repo, "init", "--from-repo", src.path, "--from-password-file", WS.pwfile, rc=1)
        self.coffer(repo, "init", "--copy-chunker-params", rc=1)
        self.assertFalse(os.path.exists(repo.path))

    def test_init_on_an_existing_repository_changes_nothing(self):
        made_by_restic = self.new_repo("existing").init()
        made_by_restic.backup(["src"], "h", cwd=DATA)
        made_by_coffer = self.coffer_init("existing-c")
        for repo in (made_by_restic, made_by_coffer):
            before = tree_state(repo.path)
            for pw in (WS.pwfile, WS.new_pwfile):
                res = self.coffer(repo, "init", pwfile=pw, rc=1)
                self.assertIn(b"already exists", res.err)
                res = self.coffer(repo, "init", "--repository-version", "1", pwfile=pw, rc=1)
            self.assertEqual(tree_state(repo.path), before)
            self.restic(repo, "check")

    def test_password_from_stdin_and_environment(self):
        repo = self.new_repo("stdin")
        self.coffer(repo, "init", repo_args=False, input=(NEW_PASSWORD + "\n").encode(),
                    env={"RESTIC_REPOSITORY": repo.path})
        self.restic(repo, "check", pwfile=WS.new_pwfile)
        repo = self.new_repo("envpw")
        self.coffer(repo, "-r", repo.path, "init", repo_args=False, env={"RESTIC_PASSWORD": NEWER_PASSWORD})
        self.restic(repo, "check", pwfile=WS.newer_pwfile)
        repo = self.new_repo("emptypw")
        self.coffer(repo, "-r", repo.path, "init", repo_args=False, input=b"\n", rc=1)
        self.assertFalse(os.path.exists(repo.path))

    def test_terminal_asks_twice(self):
        repo = self.new_repo("tty")
        rc, transcript = run_on_terminal(["-r", repo.path, "init"], [NEW_PASSWORD, NEW_PASSWORD + "x"])
        self.assertEqual(rc, 1, transcript)
        self.assertIn(b"enter password for new repository:", transcript)
        self.assertIn(b"enter password again:", transcript)
        self.assertIn(b"passwords do not match", transcript)
        self.assertNotIn(NEW_PASSWORD.encode(), transcript)  # no echo
        self.assertFalse(os.path.exists(repo.path))
        rc, transcript = run_on_terminal(["-r", repo.path, "init"], [NEW_PASSWORD, NEW_PASSWORD])
        self.assertEqual(rc, 0, transcript)
        self.restic(repo, "check", pwfile=WS.new_pwfile)


def run_on_terminal(args, lines):
    """Runs coffer with a pseudo-terminal as stdin/stderr, typing `lines` one per prompt."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([E.COFFER_BIN] + args, stdin=slave, stdout=slave, stderr=slave,
                            env=E.clean_env({"HOME": WS.root, "XDG_CACHE_HOME": WS.path("xdg")}))
    os.close(slave)
    transcript, typed = b"", 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        transcript += chunk
        if typed < min(len(lines), len(re.findall(rb"enter [^\n]*: ", transcript))):
            os.write(master, lines[typed].encode() + b"\n")
            typed += 1
    os.close(master)
    return proc.wait(timeout=120), transcript


class KeyTest(Base):
    def test_add_then_restic_opens_with_the_new_password(self):
        repo = self.coffer_init("add")
        self.coffer(repo, "key", "add", "--new-password-file", WS.new_pwfile, "--user", "u<&>", "--host", "h2")
        self.restic(repo, "snapshots", pwfile=WS.new_pwfile)
        self.restic(repo, "check", pwfile=WS.new_pwfile)
        # coffer's `key list --json` is restic's, byte for byte (order aside: restic lists in parallel)
        for pw in (WS.pwfile, WS.new_pwfile):
            theirs = sorted(json.loads(self.restic(repo, "key", "list", "--json", pwfile=pw).out),
                            key=lambda k: k["id"])
            ours = json.loads(self.coffer(repo, "--json", "key", "list", pwfile=pw).out)
            self.assertEqual(sorted(ours, key=lambda k: k["id"]), theirs)
            self.assertEqual([k["current"] for k in ours].count(True), 1)
        table = self.coffer(repo, "key", "list", pwfile=WS.new_pwfile).out.decode().splitlines()
        self.assertEqual(table[0].split(), ["ID", "User", "Host", "Created"])
        self.assertEqual(table[1], "-" * len(table[2]))
        self.assertTrue(any(line.startswith("*") and "u<&>" in line for line in table), table)
        self.assertEqual(len(table), 5)
        (raw,) = [v for v in key_files(repo).values() if json.loads(v)["hostname"] == "h2"]
        self.assertIn(b'"username":"u\\u003c\\u0026\\u003e"', raw)  # Go's JSON escaping, as restic

    def test_passwd_replaces_the_key(self):
        repo = self.coffer_init("passwd")
        before = set(key_files(repo))
        res = self.coffer(repo, "key", "passwd", "--new-password-file", WS.new_pwfile)
        self.assertRegex(res.out.decode(), r"saved new key with ID [0-9a-f]{64}")
        after = set(key_files(repo))
        self.assertEqual(len(after), 1)
        self.assertFalse(after & before)
        self.assertNotEqual(self.restic(repo, "snapshots", check=False).rc, 0)
        self.coffer(repo, "snapshots", rc=EXIT_WRONG_PASSWORD)
        self.restic(repo, "check", pwfile=WS.new_pwfile)
        self.coffer(repo, "snapshots", pwfile=WS.new_pwfile)
        # and on a repository restic made
        theirs = self.new_repo("passwd-r").init()
        theirs.backup(["src"], "h", cwd=DATA)
        self.coffer(theirs, "key", "passwd", "--new-password-file", WS.newer_pwfile)
        self.assertNotEqual(self.restic(theirs, "snapshots", check=False).rc, 0)
        self.restic(theirs, "check", "--read-data", pwfile=WS.newer_pwfile)

    def test_remove(self):
        repo = self.coffer_init("remove")
        (current,) = key_files(repo)
        self.coffer(repo, "key", "add", "--new-password-file", WS.new_pwfile)
        (other,) = set(key_files(repo)) - {current}
        before = tree_state(repo.path)
        res = self.coffer(repo, "key", "remove", current[:8], rc=1)
        self.assertIn(b"refusing to remove key currently used", res.err)
        self.coffer(repo, "key", "remove", rc=1)  # no ID
        self.coffer(repo, "key", "remove", "0" * 64, rc=1)
        self.assertEqual(tree_state(repo.path), before)
        res = self.coffer(repo, "key", "remove", other[:10])
        self.assertIn(("removed key " + other).encode(), res.out)
        self.assertEqual(set(key_files(repo)), {current})
        self.assertNotEqual(self.restic(repo, "snapshots", pwfile=WS.new_pwfile, check=False).rc, 0)
        self.restic(repo, "snapshots")

    def test_wrong_password_and_bad_new_passwords(self):
        repo = self.coffer_init("wrong")
        before = tree_state(repo.path)
        for args in (("key", "list"), ("key", "add", "--new-password-file", WS.new_pwfile),
                     ("key", "passwd", "--new-password-file", WS.new_pwfile), ("snapshots",)):
            self.coffer(repo, *args, pwfile=WS.wrong_pwfile, rc=EXIT_WRONG_PASSWORD)
        empty = WS.write("empty-password", "")
        self.coffer(repo, "key", "add", "--new-password-file", empty, rc=1)
        self.coffer(repo, "key", "add", "--new-password-file", WS.path("missing"), rc=1)
        self.coffer(repo, "key", "add", input=b"\n", rc=1)
        self.coffer(repo, "key", "frobnicate", rc=1)
        self.assertEqual(tree_state(repo.path), before)
        self.coffer(repo, "key", "add", input=(NEWER_PASSWORD + "\n").encode())  # stdin, not a tty
        self.restic(repo, "snapshots", pwfile=WS.newer_pwfile)

    def test_key_changes_are_refused_while_restic_holds_a_lock(self):
        repo = self.coffer_init("locked")
        e = dict(repo.env, RESTIC_PASSWORD_FILE=WS.pwfile, RESTIC_REPOSITORY=repo.path,
                 RESTIC_CACHE_DIR=WS.path("restic-cache", "locked"))
        backup = subprocess.Popen([E.RESTIC_BIN, "backup", "--stdin", "--stdin-filename", "x"], env=e,
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            locks = os.path.join(repo.path, "locks")
            for _ in range(600):  # restic is holding its lock once the file exists
                if os.listdir(locks):
                    break
                time.sleep(0.1)
            self.assertTrue(os.listdir(locks))
            before = key_files(repo)
            for args in (("key", "add", "--new-password-file", WS.new_pwfile),
                         ("key", "passwd", "--new-password-file", WS.new_pwfile)):
                res = self.coffer(repo, *args, rc=EXIT_LOCKED)
                self.assertIn(b"locked", res.err)
            self.assertEqual(key_files(repo), before)
            self.coffer(repo, "key", "list")  # a shared lock coexists with restic's
        finally:
            backup.stdin.close()
            backup.wait(timeout=300)
        self.coffer(repo, "key", "add", "--new-password-file", WS.new_pwfile)
        self.assertEqual(os.listdir(os.path.join(repo.path, "locks")), [])


if __name__ == "__main__":
    E.run_tests()
