"""Object store of the B2 emulator: accounts, application keys, buckets, file versions and large-file parts.

Metadata lives in sqlite3 (`<state_dir>/meta.sqlite3`, or an in-memory database without a state dir); file
bytes live in `<state_dir>/blobs/<fileId>` and `<state_dir>/parts/<fileId>/<n>` (or in a dict). A restarted
emulator with the same state dir sees the same accounts, keys, buckets and files (tokens are not persisted).

Thread contract: every method may be called from any thread. One RLock serialises all metadata access; blob
files are written under a temporary name and renamed, so a reader never sees a partial blob.
Names are stored as TEXT (UTF-8); sqlite's BINARY collation orders them by UTF-8 bytes, which is B2's order.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
from dataclasses import dataclass

ALL_CAPABILITIES = [
    "listKeys", "writeKeys", "deleteKeys", "listBuckets", "listAllBucketNames", "readBuckets", "writeBuckets",
    "deleteBuckets", "readBucketEncryption", "writeBucketEncryption", "readBucketRetentions",
    "writeBucketRetentions", "readFileRetentions", "writeFileRetentions", "readFileLegalHolds",
    "writeFileLegalHolds", "bypassGovernance", "listFiles", "readFiles", "shareFiles", "writeFiles", "deleteFiles",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts(account_id TEXT PRIMARY KEY, master_key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys(key_id TEXT PRIMARY KEY, secret TEXT NOT NULL, account_id TEXT NOT NULL,
  key_name TEXT, capabilities TEXT NOT NULL, bucket_ids TEXT, name_prefix TEXT);
CREATE TABLE IF NOT EXISTS buckets(bucket_id TEXT PRIMARY KEY, account_id TEXT NOT NULL,
  bucket_name TEXT UNIQUE NOT NULL, bucket_type TEXT NOT NULL, bucket_info TEXT NOT NULL, revision INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS files(seq INTEGER PRIMARY KEY AUTOINCREMENT, file_id TEXT UNIQUE NOT NULL,
  bucket_id TEXT NOT NULL, file_name TEXT NOT NULL, action TEXT NOT NULL, content_length INTEGER NOT NULL,
  content_sha1 TEXT, content_type TEXT, file_info TEXT NOT NULL, upload_ts INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS files_by_name ON files(bucket_id, file_name, seq);
CREATE TABLE IF NOT EXISTS parts(file_id TEXT NOT NULL, part_number INTEGER NOT NULL,
  content_length INTEGER NOT NULL, content_sha1 TEXT NOT NULL, upload_ts INTEGER NOT NULL,
  PRIMARY KEY(file_id, part_number));
"""


@dataclass
class Key:
    """An application key (or an account's master key, is_master=True) and its restrictions."""

    key_id: str
    account_id: str
    capabilities: list
    bucket_ids: list | None  # None = all buckets
    name_prefix: str | None
    key_name: str = ""
    is_master: bool = False


@dataclass
class Bucket:
    bucket_id: str
    account_id: str
    bucket_name: str
    bucket_type: str
    bucket_info: dict
    revision: int


@dataclass
class FileRow:
    """One file version: action is 'upload', 'hide' or 'start' (unfinished large file)."""

    seq: int
    file_id: str
    bucket_id: str
    file_name: str
    action: str
    content_length: int
    content_sha1: str | None
    content_type: str | None
    file_info: dict
    upload_ts: int


def _file_row(r) -> FileRow:
    return FileRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8]), r[9])


_FILE_COLS = ("seq, file_id, bucket_id, file_name, action, content_length, content_sha1, content_type, file_info, "
              "upload_ts")


class Blobs:
    """File bytes, on disk under root (atomic writes) or in a dict when root is None."""

    def __init__(self, root: str | None):
        self._root = root
        self._mem: dict[str, bytes] = {}
        self._lock = threading.Lock()
        if root:
            os.makedirs(root, exist_ok=True)

    def _path(self, key: str) -> str:
        return os.path.join(self._root, *key.split("/"))

    def put(self, key: str, data: bytes) -> None:
        """Stores data under key, replacing any old value."""
        if not self._root:
            with self._lock:
                self._mem[key] = bytes(data)
            return
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{secrets.token_hex(4)}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        """Returns length bytes (all if None) from offset start of the blob."""
        if not self._root:
            with self._lock:
                data = self._mem[key]
            return data[start:] if length is None else data[start:start + length]
        with open(self._path(key), "rb") as f:
            f.seek(start)
            return f.read() if length is None else f.read(length)

    def delete(self, key: str) -> None:
        """Removes key (and, for a directory-like prefix, everything under it); missing keys are ignored."""
        if not self._root:
            with self._lock:
                for k in [k for k in self._mem if k == key or k.startswith(key + "/")]:
                    del self._mem[k]
            return
        path = self._path(key)
        if os.path.isdir(path):
            for name in os.listdir(path):
                os.unlink(os.path.join(path, name))
            os.rmdir(path)
        elif os.path.exists(path):
            os.unlink(path)


class Store:
    """Accounts, keys, buckets and file versions, persisted in state_dir (or memory when state_dir is None)."""

    def __init__(self, state_dir: str | None):
        self._lock = threading.RLock()
        db = ":memory:"
        if state_dir:
            os.makedirs(state_dir, exist_ok=True)
            db = os.path.join(state_dir, "meta.sqlite3")
        self._db = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self.blobs = Blobs(os.path.join(state_dir, "data") if state_dir else None)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _q(self, sql: str, args=()) -> list:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # ---- accounts and keys ----

    def add_account(self, account_id: str | None = None, master_key: str | None = None) -> tuple[str, str]:
        """Creates (or keeps) an account; returns (accountId, masterKey)."""
        account_id = account_id or secrets.token_hex(6)
        with self._lock:
            row = self._q("SELECT master_key FROM accounts WHERE account_id=?", (account_id,))
            if row and not master_key:
                return account_id, row[0][0]
            master_key = master_key or "K" + secrets.token_urlsafe(22)
            self._q("INSERT OR REPLACE INTO accounts VALUES(?,?)", (account_id, master_key))
        return account_id, master_key

    def add_key(self, account_id: str, capabilities: list | None, bucket_ids: list | None,
                name_prefix: str | None, key_id: str | None = None, secret: str | None = None,
                key_name: str = "") -> tuple[str, str]:
        """Creates or replaces an application key of account_id; returns (keyId, key)."""
        if not self._q("SELECT 1 FROM accounts WHERE account_id=?", (account_id,)):
            raise KeyError(f"no account {account_id}")
        key_id = key_id or "00" + account_id + secrets.token_hex(5)
        secret = secret or "K0" + secrets.token_urlsafe(22)
        caps = json.dumps(capabilities if capabilities is not None else ALL_CAPABILITIES)
        buckets = json.dumps(bucket_ids) if bucket_ids is not None else None
        self._q("INSERT OR REPLACE INTO keys VALUES(?,?,?,?,?,?,?)",
                (key_id, secret, account_id, key_name, caps, buckets, name_prefix))
        return key_id, secret

    def check_key(self, key_id: str, secret: str) -> Key | None:
        """Returns the key whose id and secret match (master key: id = accountId), else None."""
        row = self._q("SELECT master_key FROM accounts WHERE account_id=?", (key_id,))
        if row:
            if not secrets.compare_digest(row[0][0], secret):
                return None
            return Key(key_id, key_id, list(ALL_CAPABILITIES), None, None, "", True)
        row = self._q("SELECT secret, account_id, key_name, capabilities, bucket_ids, name_prefix FROM keys "
                      "WHERE key_id=?", (key_id,))
        if not row or not secrets.compare_digest(row[0][0], secret):
            return None
        _, account_id, key_name, caps, buckets, prefix = row[0]
        return Key(key_id, account_id, json.loads(caps), json.loads(buckets) if buckets else None, prefix,
                   key_name or "")

    # ---- buckets ----

    def add_bucket(self, account_id: str, name: str, bucket_type: str, info: dict | None = None) -> Bucket:
        """Creates a bucket; raises ValueError if the name is taken (by any account)."""
        with self._lock:
            if self.bucket_by_name(name):
                raise ValueError(f"Bucket name is already in use: {name}")
            bucket_id = secrets.token_hex(12)
            self._q("INSERT INTO buckets VALUES(?,?,?,?,?,1)",
                    (bucket_id, account_id, name, bucket_type, json.dumps(info or {})))
        return self.bucket(bucket_id)

    def _buckets(self, where: str, args) -> list[Bucket]:
        rows = self._q("SELECT bucket_id, account_id, bucket_name, bucket_type, bucket_info, revision FROM buckets "
                       f"WHERE {where} ORDER BY bucket_name", args)
        return [Bucket(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    def bucket(self, bucket_id: str) -> Bucket | None:
        found = self._buckets("bucket_id=?", (bucket_id,))
        return found[0] if found else None

    def bucket_by_name(self, name: str) -> Bucket | None:
        found = self._buckets("bucket_name=?", (name,))
        return found[0] if found else None

    def all_buckets(self) -> list[Bucket]:
        return self._buckets("1=1", ())

    def buckets_of(self, account_id: str) -> list[Bucket]:
        return self._buckets("account_id=?", (account_id,))

    def delete_bucket(self, bucket_id: str) -> bool:
        """Deletes an empty bucket; returns False if it still holds file versions."""
        with self._lock:
            if self._q("SELECT 1 FROM files WHERE bucket_id=? LIMIT 1", (bucket_id,)):
                return False
            self._q("DELETE FROM buckets WHERE bucket_id=?", (bucket_id,))
        return True

    # ---- file versions ----

    def add_file(self, bucket_id: str, name: str, action: str, length: int, sha1: str | None,
                 content_type: str | None, info: dict, upload_ts: int, data: bytes | None = None) -> FileRow:
        """Stores a new version (bytes first, then metadata, so a listed version is always readable)."""
        file_id = f"4_z{bucket_id}_f{secrets.token_hex(8)}_d{upload_ts}"
        if data is not None:
            self.blobs.put(file_id, data)
        with self._lock:
            self._q("INSERT INTO files(file_id, bucket_id, file_name, action, content_length, content_sha1, "
                    "content_type, file_info, upload_ts) VALUES(?,?,?,?,?,?,?,?,?)",
                    (file_id, bucket_id, name, action, length, sha1, content_type, json.dumps(info), upload_ts))
        return self.file(file_id)

    def file(self, file_id: str) -> FileRow | None:
        rows = self._q(f"SELECT {_FILE_COLS} FROM files WHERE file_id=?", (file_id,))
        return _file_row(rows[0]) if rows else None

    def latest(self, bucket_id: str, name: str) -> FileRow | None:
        """The newest version of name that is not an unfinished large file (may be a hide marker)."""
        rows = self._q(f"SELECT {_FILE_COLS} FROM files WHERE bucket_id=? AND file_name=? AND action!='start' "
                       "ORDER BY seq DESC LIMIT 1", (bucket_id, name))
        return _file_row(rows[0]) if rows else None

    def scan(self, bucket_id: str, start_name: str, prefix: str, actions: tuple) -> list[FileRow]:
        """Versions with name >= start_name and the given prefix, by name (UTF-8 byte order), newest first."""
        marks = ",".join("?" * len(actions))
        rows = self._q(f"SELECT {_FILE_COLS} FROM files WHERE bucket_id=? AND file_name>=? AND file_name>=? "
                       f"AND substr(file_name, 1, ?)=? AND action IN ({marks}) ORDER BY file_name, seq DESC",
                       (bucket_id, start_name, prefix, len(prefix), prefix, *actions))
        return [_file_row(r) for r in rows]

    def delete_file(self, file_id: str) -> None:
        """Removes one version, its bytes and any large-file parts."""
        with self._lock:
            self._q("DELETE FROM files WHERE file_id=?", (file_id,))
            self._q("DELETE FROM parts WHERE file_id=?", (file_id,))
        self.blobs.delete(file_id)
        self.blobs.delete("parts/" + file_id)

    def all_files(self) -> list[FileRow]:
        return [_file_row(r) for r in self._q(f"SELECT {_FILE_COLS} FROM files ORDER BY bucket_id, file_name, seq")]

    # ---- large-file parts ----

    def put_part(self, file_id: str, number: int, data: bytes, sha1: str, upload_ts: int) -> None:
        """Stores (or overwrites) part `number` of an unfinished large file."""
        self.blobs.put(f"parts/{file_id}/{number}", data)
        self._q("INSERT OR REPLACE INTO parts VALUES(?,?,?,?,?)", (file_id, number, len(data), sha1, upload_ts))

    def parts(self, file_id: str) -> list[tuple[int, int, str, int]]:
        """(partNumber, length, sha1, uploadTimestamp) of the stored parts, by part number."""
        return [tuple(r) for r in self._q("SELECT part_number, content_length, content_sha1, upload_ts FROM parts "
                                          "WHERE file_id=? ORDER BY part_number", (file_id,))]

    def finish_large(self, row: FileRow, numbers: list[int]) -> FileRow:
        """Concatenates parts `numbers` into the file's blob and turns the 'start' row into an 'upload'."""
        total = 0
        if self.blobs._root:
            path = self.blobs._path(row.file_id)
            with open(path + ".tmp", "wb") as out:
                for n in numbers:
                    out.write(self.blobs.get(f"parts/{row.file_id}/{n}"))
                total = out.tell()
            os.replace(path + ".tmp", path)
        else:
            data = b"".join(self.blobs.get(f"parts/{row.file_id}/{n}") for n in numbers)
            total = len(data)
            self.blobs.put(row.file_id, data)
        with self._lock:
            self._q("UPDATE files SET action='upload', content_length=?, content_sha1='none' WHERE file_id=?",
                    (total, row.file_id))
            self._q("DELETE FROM parts WHERE file_id=?", (row.file_id,))
        self.blobs.delete("parts/" + row.file_id)
        return self.file(row.file_id)

    def stored_bytes(self) -> int:
        """Bytes billed as storage: every version plus the parts of unfinished large files."""
        a = self._q("SELECT COALESCE(SUM(content_length), 0) FROM files WHERE action='upload'")[0][0]
        b = self._q("SELECT COALESCE(SUM(content_length), 0) FROM parts")[0][0]
        return a + b
