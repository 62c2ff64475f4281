"""The JSON calls of B2's native API (everything except authorize, uploads and downloads), versions 1..4.

Each handler takes (emu, call) and returns (response dict, items) where items counts the entries a list call
returned (for the per-1000 transaction count). Errors are raised as auth.B2Error.
Thread contract: handlers are called concurrently from the HTTP server's threads; the Store serialises state.
"""

from __future__ import annotations

import mimetypes
import re

from .auth import B2Error, require, require_bucket, require_name, unauthorized
from .store import Bucket, FileRow, Key

INFO_BUDGET = 7000
INFO_KEY = re.compile(r"^[A-Za-z0-9\-_.`~!#$%^&*'|+]{1,50}$")
B2_INFO_KEYS = {"b2-content-disposition", "b2-content-language", "b2-expires", "b2-cache-control",
                "b2-content-encoding"}
BUCKET_NAME = re.compile(r"^[A-Za-z0-9-]{6,63}$")
HIDE_MARKER = "application/x-bz-hide-marker"


class Call:
    """One JSON API request: version, params, and the account token (checked lazily by key())."""

    def __init__(self, emu, version: int, params: dict, auth_header: str | None):
        self.emu, self.version, self.params, self.auth_header = emu, version, params, auth_header
        self._key: Key | None = None

    def key(self) -> Key:
        if self._key is None:
            self._key = self.emu.tokens.check_account(self.auth_header)
        return self._key

    def param(self, name: str, required: bool = True):
        value = self.params.get(name)
        if required and (value is None or value == ""):
            raise B2Error(400, "bad_request", f"required field {name} is missing")
        return value


def bad(message: str, code: str = "bad_request") -> B2Error:
    return B2Error(400, code, message)


def validate_name(name: str, strict: bool) -> None:
    """B2's file-name rules (strict adds the older rules: no leading/trailing '/', no '//', segments <= 250)."""
    raw = name.encode("utf-8", "surrogatepass")
    if not raw:
        raise bad("File names must contain at least one character")
    if len(raw) > 1024:
        raise bad("File names must be 1024 bytes or less")
    if any(b < 0x20 or b == 0x7F for b in raw):
        raise bad("File names must not contain control characters or DEL")
    if strict and (name.startswith("/") or name.endswith("/") or "//" in name):
        raise bad("File names must not start or end with '/' or contain '//'")
    if strict and any(len(seg.encode("utf-8")) > 250 for seg in name.split("/")):
        raise bad("File name segments must be 250 bytes or less")


def check_info(name: str, info: dict, settings) -> None:
    """Info keys/values rules and the 7000-byte name+info budget."""
    limit = settings.get("max_info_headers")
    if limit is not None and len(info) > limit:
        raise bad(f"too many file info entries: {len(info)} > {limit}")
    size = len(name.encode("utf-8"))
    for k, v in info.items():
        if not INFO_KEY.match(k):
            raise bad(f"invalid file info name: {k}")
        if k.lower().startswith("b2-") and k.lower() not in B2_INFO_KEYS:
            raise bad(f"file info names starting with b2- are reserved: {k}")
        if not isinstance(v, str):
            raise bad(f"file info values must be strings: {k}")
        size += len(k.encode("utf-8")) + len(v.encode("utf-8"))
    if size > INFO_BUDGET:
        raise bad(f"file name and file info together exceed {INFO_BUDGET} bytes")


def content_type_for(name: str, content_type: str | None) -> str:
    if not content_type:
        raise bad("Content-Type is required")
    if content_type == "b2/x-auto":
        return mimetypes.guess_type(name)[0] or "application/octet-stream"
    return content_type


def file_json(row: FileRow, version: int, account_id: str) -> dict:
    """A file version in the shape of list/upload/info responses (v1 also carries 'size')."""
    out = {"accountId": account_id, "action": row.action, "bucketId": row.bucket_id,
           "contentLength": row.content_length, "contentSha1": row.content_sha1, "contentType": row.content_type,
           "fileId": row.file_id, "fileInfo": row.file_info, "fileName": row.file_name,
           "uploadTimestamp": row.upload_ts}
    if version == 1:
        out["size"] = row.content_length
    return out


def folder_json(name: str, version: int) -> dict:
    out = {"action": "folder", "fileId": None, "fileName": name, "contentLength": 0, "contentSha1": None,
           "contentType": None, "fileInfo": {}, "uploadTimestamp": 0}
    if version == 1:
        out["size"] = 0
    return out


def bucket_json(b: Bucket) -> dict:
    return {"accountId": b.account_id, "bucketId": b.bucket_id, "bucketName": b.bucket_name,
            "bucketType": b.bucket_type, "bucketInfo": b.bucket_info, "corsRules": [], "lifecycleRules": [],
            "revision": b.revision, "options": [], "defaultServerSideEncryption": {"isClientAuthorizedToRead": True,
                                                                                  "value": {"mode": None}}}


def bucket_for(emu, key: Key, bucket_id) -> Bucket:
    """The bucket of the key's account; raises 400 bad_bucket_id or 401 unauthorized (restricted key)."""
    bucket = emu.store.bucket(bucket_id) if bucket_id else None
    if bucket is None or bucket.account_id != key.account_id:
        raise bad(f"Invalid bucketId: {bucket_id}", "bad_bucket_id")
    require_bucket(key, bucket.bucket_id)
    return bucket


def _own_file(emu, key: Key, file_id, action: str | None = None) -> tuple[FileRow, Bucket]:
    row = emu.store.file(file_id) if file_id else None
    if row is None or (action and row.action != action):
        raise bad(f"Bad fileId: {file_id}" if action is None else f"No active upload for: {file_id}")
    return row, bucket_for(emu, key, row.bucket_id)


# ---- buckets ----

def list_buckets(emu, call: Call):
    key = call.key()
    require(key, "listBuckets")
    if call.param("accountId") != key.account_id:
        raise unauthorized("accountId does not match the application key")
    want_id, want_name = call.params.get("bucketId"), call.params.get("bucketName")
    types = call.params.get("bucketTypes") or ["allPublic", "allPrivate", "snapshot"]
    if key.bucket_ids is not None:
        named = emu.store.bucket_by_name(want_name) if want_name else None
        target = want_id or (named.bucket_id if named else None)
        if target is None and call.version == 1:
            want_id = key.bucket_ids[0]
        elif target not in key.bucket_ids:
            raise unauthorized("application key is restricted to a bucket; pass its bucketName or bucketId")
    found = [b for b in emu.store.buckets_of(key.account_id)
             if (not want_id or b.bucket_id == want_id) and (not want_name or b.bucket_name == want_name)
             and ("all" in types or b.bucket_type in types)]
    return {"buckets": [bucket_json(b) for b in found]}, len(found)


def create_bucket(emu, call: Call):
    key = call.key()
    require(key, "writeBuckets")
    if key.bucket_ids is not None or call.param("accountId") != key.account_id:
        raise unauthorized("application key may not create buckets")
    name, kind = call.param("bucketName"), call.param("bucketType")
    if not BUCKET_NAME.match(name):
        raise bad(f"Invalid bucket name: {name}")
    if kind not in ("allPublic", "allPrivate"):
        raise bad(f"Invalid bucketType: {kind}")
    try:
        bucket = emu.store.add_bucket(key.account_id, name, kind, call.params.get("bucketInfo"))
    except ValueError as e:
        raise bad(str(e), "duplicate_bucket_name") from None
    return bucket_json(bucket), 1


def delete_bucket(emu, call: Call):
    key = call.key()
    require(key, "deleteBuckets")
    bucket = bucket_for(emu, key, call.param("bucketId"))
    if not emu.store.delete_bucket(bucket.bucket_id):
        raise bad(f"Cannot delete non-empty bucket: {bucket.bucket_name}", "cannot_delete_non_empty_bucket")
    return bucket_json(bucket), 1


# ---- listing ----

def _max_count(emu, call: Call) -> int:
    raw = call.params.get("maxFileCount", 0) or 0
    try:
        n = int(raw)
    except (TypeError, ValueError):
        raise bad(f"maxFileCount must be a number: {raw}") from None
    limit = emu.settings.get("max_file_count_limit")
    if n < 0 or n > limit:
        raise bad(f"maxFileCount out of range: {n} (1..{limit})", "out_of_range")
    return n or 100


def _visible_latest(rows: list[FileRow]):
    last = None
    for row in rows:
        if row.file_name != last:
            last = row.file_name
            if row.action == "upload":
                yield row


def _collapse(rows, prefix: str, delimiter: str | None):
    """Yields (name, row) entries; with a delimiter, names below a folder become one (folder, None) entry."""
    folder = None
    for row in rows:
        name = row.file_name
        if folder is not None and name.startswith(folder):
            continue
        i = name.find(delimiter, len(prefix)) if delimiter else -1
        if i >= 0:
            folder = name[:i + len(delimiter)]
            yield folder, None
        else:
            yield name, row


def _list(emu, call: Call, versions: bool):
    key = call.key()
    require(key, "listFiles")
    bucket = bucket_for(emu, key, call.param("bucketId"))
    prefix, start = call.params.get("prefix") or "", call.params.get("startFileName") or ""
    if key.name_prefix and not prefix.startswith(key.name_prefix):
        raise unauthorized(f"application key is restricted to names starting with {key.name_prefix}")
    max_count = _max_count(emu, call)
    cap = emu.settings.get("list_page_cap")
    max_count = min(max_count, cap) if cap else max_count
    actions = ("upload", "hide", "start") if versions else ("upload", "hide")
    rows = emu.store.scan(bucket.bucket_id, start, prefix, actions)
    lag = emu.settings.get("list_lag_s")
    if lag > 0:
        cutoff = (emu.clock() - lag) * 1000
        rows = [r for r in rows if r.upload_ts <= cutoff]
    if versions and call.params.get("startFileId"):
        first = emu.store.file(call.params["startFileId"])
        if first is None or first.file_name != start:
            raise bad("startFileId does not belong to startFileName", "invalid_file_id")
        rows = [r for r in rows if r.file_name != start or r.seq <= first.seq]
    entries = _collapse(rows if versions else _visible_latest(rows), prefix, call.params.get("delimiter") or None)
    page = []
    for entry in entries:
        page.append(entry)
        if len(page) > max_count:
            break
    files = [file_json(r, call.version, key.account_id) if r else folder_json(n, call.version)
             for n, r in page[:max_count]]
    nxt = page[max_count] if len(page) > max_count else None
    body = {"files": files, "nextFileName": nxt[0] if nxt else None}
    if versions:
        body["nextFileId"] = nxt[1].file_id if nxt and nxt[1] else None
    return body, len(files)


def list_file_names(emu, call: Call):
    return _list(emu, call, versions=False)


def list_file_versions(emu, call: Call):
    return _list(emu, call, versions=True)


# ---- hide, delete, info ----

def hide_file(emu, call: Call):
    key = call.key()
    require(key, "writeFiles")
    bucket = bucket_for(emu, key, call.param("bucketId"))
    name = call.param("fileName")
    require_name(key, name)
    latest = emu.store.latest(bucket.bucket_id, name)
    if latest is None:
        raise bad(f"no such file: {name}", "no_such_file")
    if latest.action == "hide":
        raise bad(f"file already hidden: {name}", "already_hidden")
    row = emu.store.add_file(bucket.bucket_id, name, "hide", 0, None, HIDE_MARKER, {}, emu.now_ms())
    return file_json(row, call.version, key.account_id), 1


def delete_file_version(emu, call: Call):
    key = call.key()
    require(key, "deleteFiles")
    name, file_id = call.param("fileName"), call.param("fileId")
    row = emu.store.file(file_id)
    if row is None or row.file_name != name:
        raise bad(f"File not present: {name} {file_id}", "file_not_present")
    bucket_for(emu, key, row.bucket_id)
    require_name(key, name)
    emu.store.delete_file(file_id)
    return {"fileId": file_id, "fileName": name}, 1


def get_file_info(emu, call: Call):
    key = call.key()
    require(key, "readFiles")
    file_id = call.param("fileId")
    row = emu.store.file(file_id)
    if row is None or row.action == "start":
        raise B2Error(404, "not_found", f"File not present: {file_id}")
    bucket_for(emu, key, row.bucket_id)
    require_name(key, row.file_name)
    return file_json(row, call.version, key.account_id), 1


# ---- upload URLs and large files ----

def get_upload_url(emu, call: Call):
    key = call.key()
    require(key, "writeFiles")
    bucket = bucket_for(emu, key, call.param("bucketId"))
    tok = emu.tokens.issue_upload(key, bucket.bucket_id, None)
    url = f"{emu.base_url}/b2api/v{call.version}/b2_upload_file/{bucket.bucket_id}/{tok.url_id}"
    return {"bucketId": bucket.bucket_id, "uploadUrl": url, "authorizationToken": tok.token}, 1


def start_large_file(emu, call: Call):
    key = call.key()
    require(key, "writeFiles")
    bucket = bucket_for(emu, key, call.param("bucketId"))
    name = call.param("fileName")
    validate_name(name, emu.settings.get("strict_names"))
    require_name(key, name)
    info = call.params.get("fileInfo") or {}
    check_info(name, info, emu.settings)
    ctype = content_type_for(name, call.param("contentType"))
    row = emu.store.add_file(bucket.bucket_id, name, "start", 0, "none", ctype, info, emu.now_ms())
    return file_json(row, call.version, key.account_id), 1


def get_upload_part_url(emu, call: Call):
    key = call.key()
    require(key, "writeFiles")
    row, bucket = _own_file(emu, key, call.param("fileId"), "start")
    tok = emu.tokens.issue_upload(key, bucket.bucket_id, row.file_id)
    url = f"{emu.base_url}/b2api/v{call.version}/b2_upload_part/{row.file_id}/{tok.url_id}"
    return {"fileId": row.file_id, "uploadUrl": url, "authorizationToken": tok.token}, 1


def finish_large_file(emu, call: Call):
    key = call.key()
    require(key, "writeFiles")
    row, _ = _own_file(emu, key, call.param("fileId"), "start")
    shas = call.param("partSha1Array")
    parts = {p[0]: p for p in emu.store.parts(row.file_id)}
    minimum = emu.settings.get("absolute_minimum_part_size")
    for n in range(1, len(shas) + 1):
        if n not in parts:
            raise bad(f"Part number {n} has not been uploaded", "missing_part")
        if parts[n][2] != shas[n - 1]:
            raise bad(f"Part number {n} sha1 does not match partSha1Array", "part_sha1_mismatch")
        if n < len(shas) and parts[n][1] < minimum:
            raise bad(f"Part number {n} is smaller than the minimum part size {minimum}")
    if not shas or len(parts) != len(shas):
        raise bad(f"partSha1Array has {len(shas)} entries but {len(parts)} parts were uploaded")
    done = emu.store.finish_large(row, list(range(1, len(shas) + 1)))
    return file_json(done, call.version, key.account_id), 1


def cancel_large_file(emu, call: Call):
    key = call.key()
    require(key, "writeFiles")
    row, _ = _own_file(emu, key, call.param("fileId"), "start")
    emu.store.delete_file(row.file_id)
    return {"fileId": row.file_id, "accountId": key.account_id, "bucketId": row.bucket_id,
            "fileName": row.file_name}, 1


def list_parts(emu, call: Call):
    key = call.key()
    require(key, "writeFiles")
    row, _ = _own_file(emu, key, call.param("fileId"), "start")
    start = int(call.params.get("startPartNumber") or 1)
    limit = int(call.params.get("maxPartCount") or 100)
    parts = [p for p in emu.store.parts(row.file_id) if p[0] >= start]
    out = [{"fileId": row.file_id, "partNumber": n, "contentLength": size, "contentSha1": sha,
            "uploadTimestamp": ts} for n, size, sha, ts in parts[:limit]]
    return {"parts": out, "nextPartNumber": parts[limit][0] if len(parts) > limit else None}, len(out)


def list_unfinished_large_files(emu, call: Call):
    key = call.key()
    require(key, "listFiles")
    bucket = bucket_for(emu, key, call.param("bucketId"))
    prefix = call.params.get("namePrefix") or ""
    rows = sorted(emu.store.scan(bucket.bucket_id, "", prefix, ("start",)), key=lambda r: r.seq)
    if call.params.get("startFileId"):
        first = emu.store.file(call.params["startFileId"])
        rows = [r for r in rows if first is None or r.seq >= first.seq]
    limit = _max_count(emu, call)
    files = [file_json(r, call.version, key.account_id) for r in rows[:limit]]
    return {"files": files, "nextFileId": rows[limit].file_id if len(rows) > limit else None}, len(files)


OPS = {
    "b2_list_buckets": list_buckets, "b2_create_bucket": create_bucket, "b2_delete_bucket": delete_bucket,
    "b2_list_file_names": list_file_names, "b2_list_file_versions": list_file_versions,
    "b2_hide_file": hide_file, "b2_delete_file_version": delete_file_version, "b2_get_file_info": get_file_info,
    "b2_get_upload_url": get_upload_url, "b2_start_large_file": start_large_file,
    "b2_get_upload_part_url": get_upload_part_url, "b2_finish_large_file": finish_large_file,
    "b2_cancel_large_file": cancel_large_file, "b2_list_parts": list_parts,
    "b2_list_unfinished_large_files": list_unfinished_large_files,
}
