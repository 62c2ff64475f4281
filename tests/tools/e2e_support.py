"""Shared helpers for coffer's end-to-end tests against the real restic binary.

What lives here:
  * running commands (restic, coffer) with an isolated environment, and the sanity checks every coffer
    invocation must pass (no crash/sanitizer/traceback text, never the password in any output, one-line
    errors);
  * `build_source_tree`, the awkward source tree (every node type, awkward names, sparse and big files,
    hard links, xattrs, devices, setuid/sticky, foreign uids/gids, old mtimes);
  * `ResticRepo`, a repository made with the real restic binary, with helpers to back up, read trees and
    index files through restic, and to run coffer against it;
  * `scan_tree` / `compare_scans` to compare directory trees stat field by stat field, and tar helpers.

Only the Python standard library is used. Everything is created under $TMPDIR (default /tmp) in a
`Workspace`, removed again by `Workspace.cleanup()` (unless COFFER_E2E_KEEP=1).
Not thread-safe; each test file runs in its own process.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass

MiB = 1024 * 1024
PASSWORD = "c0ffer-E2E-s3cret-Pa55word"  # distinctive: must never show up in any output
WRONG_PASSWORD = "wr0ng-E2E-Pa55word-guess"
IS_ROOT = os.geteuid() == 0
TMPDIR = os.environ.get("TMPDIR") or "/tmp"
KEEP = os.environ.get("COFFER_E2E_KEEP") == "1"
T0 = time.time()
TRACE = os.environ.get("COFFER_E2E_TRACE") == "1"  # log every command with its duration
CRASH_MARKERS = (
    b"Segmentation fault", b"AddressSanitizer", b"LeakSanitizer", b"UndefinedBehaviorSanitizer",
    b"runtime error:", b"terminate called", b"Traceback (most recent call last)", b"core dumped",
    b"Aborted", b"std::bad_alloc", b"what():", b"panic:",
)
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _find_coffer() -> str:
    path = os.environ.get("COFFER_BIN")
    if not path:
        src = os.environ.get("COFFER_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
        path = os.path.join(src, "build", "coffer")
    return os.path.abspath(path)


COFFER_BIN = _find_coffer()
RESTIC_BIN = shutil.which("restic") or "/usr/bin/restic"
STRACE_BIN = shutil.which("strace")


def require_tools() -> None:
    """Exits the test process with status 1 if coffer or restic is missing (a missing tool is a failure)."""
    missing = [p for p in (COFFER_BIN, RESTIC_BIN) if not os.access(p, os.X_OK)]
    if missing:
        sys.stderr.write("e2e: missing executables: %s (set COFFER_BIN)\n" % ", ".join(missing))
        sys.exit(1)


# ----------------------------------------------------------------------------------------------------
# Running commands


@dataclass
class CmdResult:
    argv: list
    rc: int
    out: bytes
    err: bytes
    seconds: float = 0.0

    def describe(self, limit: int = 2000) -> str:
        return "$ %s\nrc=%d\nstdout: %r\nstderr: %r" % (
            " ".join(str(a) for a in self.argv), self.rc, self.out[:limit], self.err[:limit])


def clean_env(extra: dict | None = None) -> dict:
    """The inherited environment minus every RESTIC_*/COFFER_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "COFFER_"))}
    env.setdefault("TZ", "Asia/Kolkata")  # a +05:30 zone: catches local-time formatting bugs
    env["LC_ALL"] = "C.UTF-8"
    if extra:
        env.update(extra)
    return env


def run(argv, env=None, cwd=None, input=None, timeout=600) -> CmdResult:
    start = time.monotonic()
    proc = subprocess.run([str(a) for a in argv], env=env, cwd=cwd, input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    res = CmdResult(list(argv), proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)
    if TRACE:
        cmd = " ".join(str(a) for a in argv)[:200]
        sys.stderr.write("[%6.2fs rc=%d t=%.1f] %s\n" % (res.seconds, res.rc, time.time() - T0, cmd))
    return res


def check_sane(res: CmdResult, secrets=(PASSWORD, WRONG_PASSWORD), one_line: bool = True) -> None:
    """Rules every coffer invocation obeys: no signal death, no crash text, no secrets, 1-line errors."""
    if res.rc < 0:
        raise AssertionError("coffer died from signal %d\n%s" % (-res.rc, res.describe()))
    for marker in CRASH_MARKERS:
        if marker in res.err:
            raise AssertionError("crash marker %r in output\n%s" % (marker, res.describe()))
    for secret in secrets:
        s = secret.encode()
        if s in res.out or s in res.err:
            raise AssertionError("password %r leaked into output\n%s" % (secret, res.describe()))
    if one_line and res.rc in (1, 10, 11, 12, 130):
        lines = [ln for ln in res.err.split(b"\n") if ln.strip()]
        if len(lines) != 1:
            raise AssertionError("an error must be exactly one stderr line, got %d\n%s"
                                 % (len(lines), res.describe()))


# ----------------------------------------------------------------------------------------------------
# Workspace


class Workspace:
    """A temp directory under $TMPDIR holding everything one test module creates."""

    def __init__(self, name: str):
        self.root = tempfile.mkdtemp(prefix="coffer-e2e-%s-" % name, dir=TMPDIR)
        self.pwfile = self.write("password", PASSWORD)
        self.wrong_pwfile = self.write("wrong-password", WRONG_PASSWORD)
        self._n = 0

    def path(self, *parts) -> str:
        return os.path.join(self.root, *parts)

    def write(self, name: str, text: str) -> str:
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text + "\n")
        return p

    def fresh(self, stem: str) -> str:
        """A new, non-existing path inside the workspace."""
        self._n += 1
        return self.path("%s-%03d" % (stem, self._n))

    def cleanup(self) -> None:
        if KEEP:
            sys.stderr.write("e2e: keeping %s\n" % self.root)
            return
        shutil.rmtree(self.root, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------
# The awkward source tree

SPECIAL_NAMES = [
    b"with space.txt", b"  leading and trailing  ", b"nl\nname", b"bad\xff\xfe.bin", b"n" * 255,
    ("\u044f" * 127 + "x").encode(), "\u65e5\u672c\u8a9e\u306e\u30d5\u30a1\u30a4\u30eb.txt".encode(),
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac".encode(), "\u05e2\u05d1\u05e8\u05d9\u05ea".encode(),
    "emoji_\U0001f600".encode(), b'q"uo\\te<&>.txt', b"tab\there", b"-dash", b"*star?", b"back\\slash",
    b"ctl\x01\x7f", "caf\u00e9-nfc".encode(), "cafe\u0301-nfd".encode(),
]
SPARSE_BLOCKS = [(16 * MiB + 123, 4096), (33 * MiB, 8192), (47 * MiB + 4095, 4096)]
OLD_TIMES = {  # name -> mtime in ns
    b"epoch_plus_day": 86400 * 10**9 + 123456789,
    b"y1985": 481_000_000 * 10**9 + 1,
    b"y2001": 1_000_000_000 * 10**9 + 987654321,
    b"pre1970": -315_619_200 * 10**9 + 500_000_000,
}


def _wb(path: bytes, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _mk_names(d: bytes, rnd: random.Random) -> None:
    os.mkdir(d)
    for i, name in enumerate(SPECIAL_NAMES):
        _wb(os.path.join(d, name), b"name %d %r\n" % (i, name) + rnd.randbytes(i * 37))
    os.mkdir(os.path.join(d, "\u4e2d\u6587\u76ee\u5f55".encode()))
    _wb(os.path.join(d, "\u4e2d\u6587\u76ee\u5f55".encode(), "\u6587\u4ef6".encode()), b"zh\n")


def _mk_links(d: bytes) -> None:
    os.mkdir(d)
    _wb(d + b"/hard_a", b"hard linked content\n" * 100)
    os.link(d + b"/hard_a", d + b"/hard_b")
    os.mkdir(d + b"/sub")
    os.link(d + b"/hard_a", d + b"/sub/hard_c")
    _wb(d + b"/pair_1", b"second group\n")
    os.link(d + b"/pair_1", d + b"/pair_2")
    os.symlink(b"../hello.txt", d + b"/sym_rel")
    os.symlink(b"/etc/hostname", d + b"/sym_abs")
    os.symlink(b"nowhere/at all", d + b"/sym_dangling")
    os.symlink(b"../names", d + b"/sym_dir")
    os.symlink(b"target\xff\xfe-not-utf8", d + b"/sym_bad")
    os.symlink(b"L" * 1000, d + b"/sym_long")


def _mk_special(d: bytes) -> None:
    os.mkdir(d)
    os.mkfifo(d + b"/fifo", 0o644)
    if IS_ROOT:
        os.mknod(d + b"/chardev_null", 0o644 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(d + b"/chardev_big", 0o600 | stat.S_IFCHR, os.makedev(240, 70000))
        os.mknod(d + b"/blockdev", 0o640 | stat.S_IFBLK, os.makedev(7, 200))


def _mk_modes(d: bytes) -> None:
    os.mkdir(d)
    for name, mode in ((b"setuid", 0o4755), (b"setgid", 0o2750), (b"private", 0o600),
                       (b"noperm", 0o000), (b"exec", 0o700), (b"all", 0o777)):
        _wb(d + b"/" + name, name + b"\n")
        os.chmod(d + b"/" + name, mode)
    for name, mode in ((b"sticky_dir", 0o1777), (b"setgid_dir", 0o2775), (b"closed_dir", 0o500)):
        os.mkdir(d + b"/" + name)
        _wb(d + b"/" + name + b"/inside", b"x")
        os.chmod(d + b"/" + name, mode)


def _mk_owned(d: bytes) -> None:
    os.mkdir(d)
    _wb(d + b"/file", b"owned\n")
    _wb(d + b"/nobody", b"nobody\n")
    os.symlink(b"file", d + b"/link")
    if IS_ROOT:
        os.chown(d + b"/file", 1234, 5678)
        os.chown(d + b"/nobody", 65534, 65534)
        os.lchown(d + b"/link", 4321, 8765)
        _wb(d + b"/suid_owned", b"suid\n")
        os.chown(d + b"/suid_owned", 1234, 5678)
        os.chmod(d + b"/suid_owned", 0o6755)  # after chown: chown clears setuid
        os.chown(d, 1234, 5678)


def _mk_xattrs(d: bytes) -> None:
    os.mkdir(d)
    f = d + b"/x_file"
    _wb(f, b"has xattrs\n")
    os.setxattr(f, "user.test", b"val\x00ue")
    os.setxattr(f, "user.empty", b"")
    os.setxattr(f, "user.binary", bytes(range(256)))
    os.setxattr(f, "user.long", b"L" * 2000)
    os.setxattr(d, "user.on_dir", b"directory attr")


def _mk_sparse(path: bytes, size: int, rnd: random.Random) -> None:
    with open(path, "wb") as f:
        f.truncate(size)
        for off, n in SPARSE_BLOCKS:
            f.seek(off)
            f.write(rnd.randbytes(n))


def _mk_misc(src: bytes, rnd: random.Random, big_size: int) -> None:
    _wb(src + b"/empty", b"")
    _wb(src + b"/hello.txt", b"hello world\n")
    _wb(src + b"/big.bin", rnd.randbytes(big_size))
    os.makedirs(src + b"/deep/a/b/c/d/e/f/g")
    _wb(src + b"/deep/a/b/c/d/e/f/g/leaf.txt", b"leaf\n")
    _wb(src + b"/deep/a/b/mid.txt", b"mid\n")
    os.mkdir(src + b"/emptydir")
    os.mkdir(src + b"/text")
    words = [b"alpha", b"beta", b"gamma", b"delta", b"restic", b"coffer", b"chunk", b"pack"]
    for i in range(20):
        body = b" ".join(rnd.choice(words) for _ in range(400 + 50 * i))
        _wb(src + b"/text/file%02d.txt" % i, body + b"\n")
    os.mkdir(src + b"/times")
    for name in OLD_TIMES:
        _wb(src + b"/times/" + name, name + b"\n")


def build_source_tree(parent: str, name: str = "src", big_size: int = 9 * MiB + 12345,
                      sparse_size: int = 64 * MiB, seed: int = 1234) -> str:
    """Creates parent/name with every node type and awkward names; returns its path (str)."""
    rnd = random.Random(seed)
    src = os.fsencode(os.path.join(parent, name))
    os.makedirs(src)
    _mk_misc(src, rnd, big_size)
    _mk_sparse(src + b"/sparse.img", sparse_size, rnd)
    _mk_names(src + b"/names", rnd)
    _mk_links(src + b"/links")
    _mk_special(src + b"/special")
    _mk_modes(src + b"/modes")
    _mk_owned(src + b"/owned")
    _mk_xattrs(src + b"/xattrs")
    set_times(src)
    return os.fsdecode(src)


def set_times(root: bytes, seed: int = 77) -> None:
    """Gives every entry a fixed mtime (ns precision), post-order so directories keep theirs."""
    rnd = random.Random(seed)
    root = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in sorted(filenames) + sorted(dirnames):
            p = os.path.join(dirpath, name)
            ns = OLD_TIMES.get(name) if os.path.basename(dirpath) == b"times" else None
            if ns is None:
                ns = (1_500_000_000 + rnd.randrange(10**8)) * 10**9 + rnd.randrange(10**9)
            os.utime(p, ns=(ns, ns), follow_symlinks=False)
    ns = 1_600_000_000 * 10**9 + 424242
    os.utime(root, ns=(ns, ns))


def touch_fixed(path: str, ns: int) -> None:
    os.utime(path, ns=(ns, ns), follow_symlinks=False)


# ----------------------------------------------------------------------------------------------------
# Tree scans and comparisons


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "chardev"), (stat.S_ISBLK, "dev"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "unknown"


def _sha256_file(path: bytes) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _xattrs(path: bytes) -> dict:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in sorted(names)}


def _record(path: bytes, st: os.stat_result) -> dict:
    kind = _kind(st.st_mode)
    rec = {"type": kind, "mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid,
           "mtime_ns": st.st_mtime_ns, "atime_ns": st.st_atime_ns, "ino": st.st_ino,
           "nlink": st.st_nlink, "xattrs": _xattrs(path)}
    if kind == "file":
        rec.update(size=st.st_size, blocks=st.st_blocks)  # sha256 added by scan_tree afterwards
    elif kind == "symlink":
        rec["target"] = os.readlink(path)
    elif kind in ("chardev", "dev"):
        rec["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
    return rec


def scan_tree(root: str) -> dict:
    """Maps relative path (bytes; b'.' = root) -> stat record. All lstat calls happen before any file is
    read and each before its directory is listed, so the atimes are the restored ones."""
    root_b = os.fsencode(root)
    out = {b".": _record(root_b, os.lstat(root_b))}
    stack = [b""]
    while stack:
        rel = stack.pop()
        full = os.path.join(root_b, rel) if rel else root_b
        for name in sorted(os.listdir(full)):
            r = os.path.join(rel, name) if rel else name
            p = os.path.join(root_b, r)
            rec = _record(p, os.lstat(p))
            out[r] = rec
            if rec["type"] == "dir":
                stack.append(r)
    for r, rec in out.items():
        if rec["type"] == "file":
            rec["sha256"] = _sha256_file(os.path.join(root_b, r) if r != b"." else root_b)
    return out


_SCAN_CACHE = {}


def scan_cached(root: str) -> dict:
    """scan_tree once per root: reading files updates atimes, so reference trees are scanned only once."""
    if root not in _SCAN_CACHE:
        _SCAN_CACHE[root] = scan_tree(root)
    return _SCAN_CACHE[root]


def link_groups(scan: dict) -> set:
    """Sets of paths sharing an inode (hard links), non-directories only."""
    by_ino = {}
    for path, rec in scan.items():
        if rec["type"] != "dir" and rec["nlink"] > 1:
            by_ino.setdefault(rec["ino"], []).append(path)
    return {frozenset(v) for v in by_ino.values() if len(v) > 1}


SOURCE_FIELDS = ("type", "mode", "uid", "gid", "mtime_ns", "size", "sha256", "target", "rdev", "xattrs")
ALL_FIELDS = SOURCE_FIELDS + ("atime_ns",)


def compare_scans(want: dict, got: dict, fields=SOURCE_FIELDS, skip=(), overrides=None,
                  check_links: bool = True) -> list:
    """Differences between two scans as readable strings (empty = equal).
    skip: relative paths to ignore entirely; overrides: {path: {field: expected}} replacing `want`."""
    diffs = []
    overrides = overrides or {}
    for path in sorted(set(want) | set(got)):
        if path in skip:
            continue
        if path not in got:
            diffs.append("missing: %r" % path)
            continue
        if path not in want:
            diffs.append("unexpected: %r" % path)
            continue
        w = dict(want[path], **overrides.get(path, {}))
        for f in fields:
            if w.get(f) != got[path].get(f):
                diffs.append("%r: %s want %r got %r" % (path, f, brief(w.get(f)), brief(got[path].get(f))))
    if check_links:
        wl = {g for g in link_groups(want) if not (g & set(skip))}
        gl = {g for g in link_groups(got) if not (g & set(skip))}
        if wl != gl:
            diffs.append("hard-link groups differ: want %r got %r"
                         % (sorted(map(sorted, wl)), sorted(map(sorted, gl))))
    return diffs


def brief(v):
    if isinstance(v, int) and v > 0o777 and v < 0o1000000:
        return oct(v)
    if isinstance(v, dict):
        return {k: (x if len(x) < 40 else x[:40] + b"...") for k, x in v.items()}
    return v


def subscan(scan: dict, prefix: bytes) -> dict:
    """The part of `scan` under relative dir `prefix`, re-rooted (prefix itself becomes b'.')."""
    out = {}
    for path, rec in scan.items():
        if path == prefix:
            out[b"."] = rec
        elif path.startswith(prefix + b"/"):
            out[path[len(prefix) + 1:]] = rec
    return out


def fmt_diffs(diffs: list, limit: int = 40) -> str:
    more = "" if len(diffs) <= limit else "\n... and %d more" % (len(diffs) - limit)
    return "\n".join(diffs[:limit]) + more


# ----------------------------------------------------------------------------------------------------
# tar helpers


def read_tar(data: bytes) -> dict:
    """Parses a tar stream; maps member name (bytes, no trailing '/') -> dict of fields incl. content hash."""
    members = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:", encoding="utf-8", errors="surrogateescape") as tf:
        for m in tf.getmembers():
            name = os.fsencode(m.name).rstrip(b"/")
            rec = {"type": m.type, "size": m.size, "mode": m.mode, "mtime": m.mtime, "uid": m.uid,
                   "gid": m.gid, "linkname": os.fsencode(m.linkname), "dev": (m.devmajor, m.devminor),
                   "xattrs": {k[len("SCHILY.xattr."):]: v for k, v in m.pax_headers.items()
                              if k.startswith("SCHILY.xattr.")}}
            if m.isreg():
                rec["sha256"] = hashlib.sha256(tf.extractfile(m).read()).hexdigest()
            members[name] = rec
    return members


# ----------------------------------------------------------------------------------------------------
# A repository made by restic


class ResticRepo:
    """A restic repository in `path`, plus helpers for restic and coffer calls against it."""

    def __init__(self, ws: Workspace, name: str, tz: str | None = None):
        self.ws = ws
        self.path = ws.path(name)
        self.name = name
        os.makedirs(ws.path("tmp"), exist_ok=True)  # restic leaves restic-check-cache-* when killed
        self.env = clean_env({"XDG_CACHE_HOME": ws.path("xdg-cache"), "HOME": ws.root,
                              "TMPDIR": ws.path("tmp")})
        if tz:
            self.env["TZ"] = tz
        self._memo = {}

    # -- restic -----------------------------------------------------------------------------------
    def restic(self, *args, check=True, cwd=None, env=None, timeout=600) -> CmdResult:
        """Runs restic against this repository; read-only commands are memoised until the next backup."""
        pure = args and args[0] in ("ls", "cat", "dump", "snapshots", "list") and env is None and check
        if pure and ("restic",) + args in self._memo:
            return self._memo[("restic",) + args]
        res = self._restic(*args, check=check, cwd=cwd, env=env, timeout=timeout)
        if pure:
            self._memo[("restic",) + args] = res
        return res

    def _restic(self, *args, check=True, cwd=None, env=None, timeout=600) -> CmdResult:
        e = dict(self.env, RESTIC_PASSWORD_FILE=self.ws.pwfile, RESTIC_REPOSITORY=self.path)
        e["RESTIC_CACHE_DIR"] = self.ws.path("restic-cache", self.name)
        if env:
            e.update(env)
        res = run([RESTIC_BIN, *args], env=e, cwd=cwd, timeout=timeout)
        if check and res.rc != 0:
            raise AssertionError("restic failed\n" + res.describe())
        return res

    def init(self, *extra) -> "ResticRepo":
        self.restic("init", *extra)
        return self

    def init_with_coffer(self) -> "ResticRepo":
        """`coffer init` (a key with scrypt p=1): restic's calibrated key costs seconds in every
        coffer run under ASan. restic still writes the snapshots of such a repository."""
        res = run([COFFER_BIN, "-r", self.path, "--password-file", self.ws.pwfile, "init"],
                  env=self.env)
        assert res.rc == 0, res.describe()
        return self

    def forget_memo(self) -> None:
        """Call after changing the repository with restic outside `backup`."""
        self._memo.clear()

    def backup(self, paths, host: str, tags=(), cwd=None, extra=()) -> str:
        args = ["backup", "--json", "--host", host, *extra]
        for t in tags:
            args += ["--tag", t]
        res = self.restic(*args, *paths, cwd=cwd)
        summary = json.loads(res.out.strip().split(b"\n")[-1])
        sid = summary["snapshot_id"]
        self._memo.clear()
        full = [s["id"] for s in self.snapshots() if s["id"].startswith(sid)]
        assert len(full) == 1, full
        return full[0]

    def snapshots(self, *filters) -> list:
        return json.loads(self.restic("snapshots", "--json", *filters).out)

    def list(self, kind: str) -> list:
        return sorted(self.restic("list", kind).out.decode().split())

    def cat_json(self, *args):
        key = ("cat",) + args
        if key not in self._memo:
            self._memo[key] = json.loads(self.restic("cat", *args).out)
        return self._memo[key]

    def cat_blob(self, blob_id: str) -> bytes:
        return self.restic("cat", "blob", blob_id).out

    def tree(self, tree_id: str) -> dict:
        key = ("tree", tree_id)
        if key not in self._memo:
            self._memo[key] = json.loads(self.cat_blob(tree_id))
        return self._memo[key]

    def node(self, snap_id: str, path: str) -> dict:
        """The tree node at absolute `path` (e.g. '/src/big.bin') of a snapshot, via restic."""
        tree_id = self.cat_json("snapshot", snap_id)["tree"]
        parts = [p for p in path.split("/") if p]
        node = {"type": "dir", "subtree": tree_id}
        for part in parts:
            nodes = self.tree(node["subtree"])["nodes"]
            node = next(n for n in nodes if n["name"] == part)
        return node

    def blob_locations(self) -> dict:
        """blob id -> {pack, offset, length, type, uncompressed_length?} from restic cat index."""
        if "locs" not in self._memo:
            locs = {}
            for idx in self.list("index"):
                for pack in self.cat_json("index", idx)["packs"]:
                    for b in pack["blobs"]:
                        locs[b["id"]] = dict(b, pack=pack["id"], index=idx)
            self._memo["locs"] = locs
        return self._memo["locs"]

    def pack_path(self, pack_id: str) -> str:
        return os.path.join(self.path, "data", pack_id[:2], pack_id)

    def copy(self, name: str) -> "ResticRepo":
        clone = ResticRepo(self.ws, name)
        clone.env = dict(self.env)
        shutil.copytree(self.path, clone.path, symlinks=True)
        for dirpath, dirnames, filenames in os.walk(clone.path):
            for n in filenames:
                os.chmod(os.path.join(dirpath, n), 0o600)
        return clone

    # -- coffer -----------------------------------------------------------------------------------
    def coffer(self, *args, pwfile=None, repo_args=True, env=None, sane=True, timeout=600,
               cwd=None) -> CmdResult:
        """Runs coffer with -r/--password-file (unless repo_args=False) and checks `check_sane`."""
        argv = [COFFER_BIN]
        if repo_args:
            argv += ["-r", self.path, "--password-file", pwfile or self.ws.pwfile]
        e = dict(self.env, COFFER_CACHE_DIR=self.ws.path("coffer-cache", self.name))
        if env:
            e.update(env)
        res = run(argv + list(args), env=e, cwd=cwd, timeout=timeout)
        if sane:
            check_sane(res)
        return res

    def coffer_ok(self, *args, **kw) -> CmdResult:
        res = self.coffer(*args, **kw)
        if res.rc != 0:
            raise AssertionError("coffer failed\n" + res.describe())
        return res

    def restic_restore(self, snap: str, *filters) -> str:
        """Restores with restic into a fresh dir (memoised per arguments); returns the target."""
        key = ("restore", snap) + filters
        if key not in self._memo:
            target = self.ws.fresh("restic-restore")
            self.restic("restore", snap, "--target", target, *filters)
            self._memo[key] = target
        return self._memo[key]


def split_ls_header(out: bytes):
    """restic ls prints one 'snapshot ... filtered by ...' line first; returns (header, rest)."""
    if out.startswith(b"snapshot "):
        head, _, rest = out.partition(b"\n")
        return head, rest
    return b"", out


def json_lines(data: bytes) -> list:
    return [json.loads(line) for line in data.split(b"\n") if line.strip()]


def run_tests() -> None:
    """unittest.main with verbosity 2; exits non-zero on any failure."""
    import unittest
    require_tools()
    unittest.main(verbosity=2, buffer=False)
