"""Helpers shared by the `coffer backup` end-to-end suites (backup_test.py, backup_failure_test.py).

  * `coffer_backup` / `restic_backup`: run a backup with --json and return the parsed summary;
  * `FileReads`: which files a process read, seen through inotify (IN_ACCESS) on a few directories;
  * `raw_snapshot`: a snapshot file's JSON exactly as stored (decrypted with openssl and zstd using
    the master key from `restic cat masterkey`), for fields restic 0.14's `cat snapshot` drops;
  * repository listings for "nothing changed" checks and the "every indexed pack exists" invariant.
Not thread-safe; used from one test process.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import shutil
import struct
import subprocess

import e2e_support as E

IN_ACCESS = 0x1
IN_ISDIR = 0x40000000
SUMMARY_KEYS = ("backup_start", "backup_end", "files_new", "files_changed", "files_unmodified",
                "dirs_new", "dirs_changed", "dirs_unmodified", "data_blobs", "tree_blobs", "data_added",
                "data_added_packed", "total_files_processed", "total_bytes_processed")


class BackupRun:
    """One backup: its command result, parsed JSON lines and summary (None when there is none)."""

    def __init__(self, res: E.CmdResult, lines: list):
        self.res = res
        self.lines = lines
        summaries = [ln for ln in lines if ln.get("message_type") == "summary"]
        self.summary = summaries[-1] if summaries else None

    @property
    def snapshot_id(self):
        return self.summary.get("snapshot_id") if self.summary else None


def fs_args(args) -> list:
    """Arguments as str; bytes (non-UTF-8 names) pass through os.fsdecode (surrogateescape)."""
    return [os.fsdecode(a) if isinstance(a, bytes) else a for a in args]


def parse_json_lines(res: E.CmdResult) -> list:
    """Every non-empty stdout line as JSON; raises AssertionError naming the first line that is not."""
    out = []
    for line in res.out.split(b"\n"):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            raise AssertionError("stdout line is not JSON: %r\n%s" % (line[:300], res.describe()))
    return out


def coffer_backup(repo: E.ResticRepo, *args, cwd=None, input=None, rc=0, env=None) -> BackupRun:
    """`coffer backup --json ARGS`; asserts the exit code `rc` (None: any) and JSON-only stdout."""
    args = fs_args(args)
    if input is None:
        res = repo.coffer("backup", "--json", *args, cwd=cwd, env=env)
    else:
        res = _coffer_with_input(repo, ["backup", "--json", *args], cwd, input, env)
    if rc is not None and res.rc != rc:
        raise AssertionError("coffer backup: want exit %d\n%s" % (rc, res.describe()))
    repo.forget_memo()
    return BackupRun(res, parse_json_lines(res))


def _coffer_with_input(repo, args, cwd, input, env) -> E.CmdResult:
    argv = [E.COFFER_BIN, "-r", repo.path, "--password-file", repo.ws.pwfile, *args]
    e = dict(repo.env, COFFER_CACHE_DIR=repo.ws.path("coffer-cache", repo.name), **(env or {}))
    res = E.run(argv, env=e, cwd=cwd, input=input)
    E.check_sane(res)
    return res


def restic_backup(repo: E.ResticRepo, *args, cwd=None) -> BackupRun:
    """`restic backup --json ARGS` (must succeed); snapshot_id is expanded to the full id."""
    args = fs_args(args)
    res = repo.restic("backup", "--json", *args, cwd=cwd)
    run = BackupRun(res, parse_json_lines(res))
    repo.forget_memo()
    short = run.summary["snapshot_id"]
    full = [n for n in os.listdir(os.path.join(repo.path, "snapshots")) if n.startswith(short)]
    assert len(full) == 1, full
    run.summary["snapshot_id"] = full[0]
    return run


def snapshot(repo: E.ResticRepo, sid: str) -> dict:
    """The snapshot as `restic snapshots --json` shows it."""
    found = [s for s in repo.snapshots() if s["id"] == sid]
    assert len(found) == 1, (sid, found)
    return found[0]


def ls_paths(repo: E.ResticRepo, sid: str) -> list:
    """Paths of a snapshot as `restic ls` lists them, without the header (which spans several
    lines when a snapshot path holds a newline; names with newlines also split, alike for both)."""
    out = repo.restic("ls", sid).out
    if out.startswith(b"snapshot "):
        out = out[out.index(b"):\n", out.index(b"] filtered by [")) + 3:]
    return [ln for ln in out.split(b"\n") if ln]


def raw_snapshot(repo: E.ResticRepo, sid: str) -> dict:
    """The stored JSON of snapshot `sid`: AES-256-CTR decrypted with openssl (MAC not checked),
    zstd-decompressed when the v2 compression header byte says so."""
    missing = [t for t in ("openssl", "zstd") if not shutil.which(t)]
    assert not missing, "raw_snapshot needs the command-line tools %s" % missing
    key = base64.b64decode(repo.cat_json("masterkey")["encrypt"]).hex()
    with open(os.path.join(repo.path, "snapshots", sid), "rb") as f:
        blob = f.read()
    plain = subprocess.run(["openssl", "enc", "-d", "-aes-256-ctr", "-K", key, "-iv", blob[:16].hex(),
                            "-nopad"], input=blob[16:-16], capture_output=True, check=True).stdout
    if plain[:1] == b"\x02":
        plain = subprocess.run(["zstd", "-d", "-c"], input=plain[1:], capture_output=True,
                               check=True).stdout
    return json.loads(plain)


def repo_listing(path: str) -> dict:
    """relative path -> (size, mtime_ns) of every file under a repository directory."""
    out = {}
    for dirpath, _, filenames in os.walk(path):
        for n in filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[os.path.relpath(p, path)] = (st.st_size, st.st_mtime_ns)
    return out


def missing_indexed_packs(repo: E.ResticRepo) -> list:
    """Packs named by some index file but absent from data/ (must always be empty)."""
    repo.forget_memo()
    missing = []
    for idx in repo.list("index"):
        for pack in repo.cat_json("index", idx)["packs"]:
            if not os.path.exists(repo.pack_path(pack["id"])):
                missing.append("%s (index %s)" % (pack["id"], idx[:8]))
    return missing


class FileReads:
    """Files read (IN_ACCESS) in the watched directories (not recursive) while the watch is open.
    Use as a context manager; `paths` holds the full paths (bytes) read by anyone meanwhile."""

    def __init__(self, dirs):
        self.dirs = [os.fsencode(d) for d in dirs]
        self.paths = set()

    def __enter__(self) -> "FileReads":
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.wds = {}
        for d in self.dirs:
            wd = libc.inotify_add_watch(self.fd, d, IN_ACCESS)
            if wd < 0:
                raise OSError(ctypes.get_errno(), "inotify_add_watch %r" % d)
            self.wds[wd] = d
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._drain()
        finally:
            os.close(self.fd)

    def _drain(self) -> None:
        while True:
            try:
                buf = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return
            off = 0
            while off < len(buf):
                wd, mask, _, n = struct.unpack_from("iIII", buf, off)
                name = buf[off + 16:off + 16 + n].rstrip(b"\0")
                off += 16 + n
                if name and not mask & IN_ISDIR and wd in self.wds:
                    self.paths.add(os.path.join(self.wds[wd], name))


def count_files(scan: dict) -> int:
    """Regular-file paths in a scan_tree result (each hard link counts)."""
    return sum(1 for rec in scan.values() if rec["type"] == "file")


def mount_tmpfs(path: str, size: str) -> None:
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", path], check=True)


def umount(path: str) -> None:
    subprocess.run(["umount", "-l", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
