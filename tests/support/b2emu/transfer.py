"""Uploads (b2_upload_file, b2_upload_part) and downloads (by name, by id; GET and HEAD, Range) of the emulator.

Handlers take (emu, ex) where ex is the server's Exchange, and return (status, headers, body bytes); errors are
raised as auth.B2Error. Thread contract: called concurrently from the server threads; the Store and Tokens
serialise shared state.
"""

from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import quote, unquote_plus

from .api import check_info, content_type_for, file_json, validate_name
from .auth import B2Error, require, require_bucket, require_name
from .store import FileRow

SAFE = "/-._~!$'()*;=:@"  # left literal when percent-encoding names and info values
FORBIDDEN = ("Content-Disposition", "Content-Encoding", "Content-Language", "Content-Location", "Content-Range",
             "Expires")
B2_HEADER_MAP = {"b2-content-disposition": "Content-Disposition", "b2-content-language": "Content-Language",
                 "b2-expires": "Expires", "b2-cache-control": "Cache-Control",
                 "b2-content-encoding": "Content-Encoding"}
HEX40 = re.compile(r"^[0-9a-fA-F]{40}$")


def json_reply(obj: dict, status: int = 200) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json;charset=utf-8"}, json.dumps(obj).encode()


def _bad(message: str) -> B2Error:
    return B2Error(400, "bad_request", message)


def split_sha1(header: str | None, body: bytes) -> tuple[bytes, str]:
    """(data, stored contentSha1) after checking X-Bz-Content-Sha1 (hex, hex_digits_at_end or do_not_verify)."""
    if not header:
        raise _bad("X-Bz-Content-Sha1 header is required")
    if header == "hex_digits_at_end":
        if len(body) < 40:
            raise _bad("body too short for hex_digits_at_end")
        body, header = body[:-40], body[-40:].decode("ascii", "replace")
    actual = hashlib.sha1(body).hexdigest()
    if header == "do_not_verify":
        return body, "unverified:" + actual
    if not HEX40.match(header):
        raise _bad(f"Invalid X-Bz-Content-Sha1: {header}")
    if header.lower() != actual:
        raise _bad("Sha1 did not match data received")
    return body, actual


def _upload_meta(emu, ex, key) -> tuple[str, str, dict]:
    """(fileName, contentType, fileInfo) from the upload headers, validated."""
    raw_name = ex.header("X-Bz-File-Name")
    if raw_name is None:
        raise _bad("X-Bz-File-Name header is required")
    try:
        name = unquote_plus(raw_name, errors="strict")
    except UnicodeDecodeError:
        raise _bad("X-Bz-File-Name is not percent-encoded UTF-8") from None
    validate_name(name, emu.settings.get("strict_names"))
    require_name(key, name)
    for h in FORBIDDEN:
        if ex.header(h) is not None:
            raise _bad(f"header {h} is not allowed on uploads")
    info = {}
    for h, v in ex.header_items():
        if h.lower().startswith("x-bz-info-"):
            info[h[10:].lower()] = unquote_plus(v)
    check_info(name, info, emu.settings)
    return name, content_type_for(name, ex.header("Content-Type")), info


def upload_file(emu, ex):
    """POST /b2api/vN/b2_upload_file/<bucketId>/<urlId>: stores a new version."""
    bucket_id, url_id = ex.route_args
    tok = emu.tokens.begin_upload(url_id, ex.header("Authorization"))
    outcome = "ok"
    try:
        if tok.bucket_id != bucket_id or tok.file_id is not None:
            raise B2Error(401, "bad_auth_token", "upload token does not belong to this upload URL")
        name, ctype, info = _upload_meta(emu, ex, tok.key)
        body = ex.read_body()
        data, sha1 = split_sha1(ex.header("X-Bz-Content-Sha1"), body)
        ex.payload_in = len(data)
        row = emu.store.add_file(bucket_id, name, "upload", len(data), sha1, ctype, info, emu.now_ms(), data)
        return json_reply(file_json(row, ex.version, tok.key.account_id))
    except OSError:  # connection lost or timed out while reading the body
        outcome = "aborted"
        raise
    finally:
        emu.tokens.end_upload(tok, outcome)


def upload_part(emu, ex):
    """POST /b2api/vN/b2_upload_part/<fileId>/<urlId>: stores (or replaces) one part of a large file."""
    file_id, url_id = ex.route_args
    tok = emu.tokens.begin_upload(url_id, ex.header("Authorization"))
    outcome = "ok"
    try:
        if tok.file_id != file_id:
            raise B2Error(401, "bad_auth_token", "upload token does not belong to this upload URL")
        try:
            number = int(ex.header("X-Bz-Part-Number") or "")
        except ValueError:
            raise _bad("X-Bz-Part-Number header is required") from None
        if not 1 <= number <= 10000:
            raise _bad(f"X-Bz-Part-Number out of range: {number}")
        body = ex.read_body()
        row = emu.store.file(file_id)
        if row is None or row.action != "start":
            raise _bad(f"No active upload for: {file_id}")
        data, sha1 = split_sha1(ex.header("X-Bz-Content-Sha1"), body)
        ex.payload_in = len(data)
        ts = emu.now_ms()
        emu.store.put_part(file_id, number, data, sha1, ts)
        return json_reply({"fileId": file_id, "partNumber": number, "contentLength": len(data),
                           "contentSha1": sha1, "uploadTimestamp": ts})
    except OSError:  # connection lost or timed out while reading the body
        outcome = "aborted"
        raise
    finally:
        emu.tokens.end_upload(tok, outcome)


def parse_range(header: str | None, size: int) -> tuple[int, int, int]:
    """(status, start, end_exclusive) for a Range header, with B2's quirks; raises 416."""
    m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header or "")
    if not m or (m[1] == "" and m[2] == ""):
        return 200, 0, size  # absent or unparsable: the whole file
    unsatisfiable = B2Error(416, "range_not_satisfiable",
                            f"The range {header.strip()} is outside the size of the file ({size} bytes)",
                            {"Content-Range": f"bytes */{size}"})
    if size == 0:
        raise unsatisfiable
    if m[1] == "":
        n = int(m[2])
        if n == 0:
            raise unsatisfiable
        return 206, max(0, size - n), size
    start = int(m[1])
    if start >= size:
        raise unsatisfiable
    end = int(m[2]) + 1 if m[2] else size
    if end <= start:
        return 200, 0, size  # "bytes=9-3" is invalid: the whole file
    if start == 0 and m[2] == "":
        return 200, 0, size  # B2 answers "bytes=0-" with a plain 200
    return 206, start, min(end, size)


def _download_auth(emu, ex, bucket, name: str) -> None:
    if bucket.bucket_type == "allPublic":
        return
    key = emu.tokens.check_account(ex.header("Authorization") or ex.query.get("Authorization"))
    require(key, "readFiles")
    if key.account_id != bucket.account_id:
        raise B2Error(401, "unauthorized", "token does not belong to the bucket's account")
    require_bucket(key, bucket.bucket_id)
    require_name(key, name)


def _serve(emu, ex, row: FileRow):
    status, start, end = parse_range(ex.header("Range"), row.content_length)
    headers = {"Content-Type": row.content_type, "X-Bz-File-Id": row.file_id,
               "X-Bz-File-Name": quote(row.file_name, safe=SAFE), "X-Bz-Content-Sha1": row.content_sha1,
               "X-Bz-Upload-Timestamp": str(row.upload_ts), "Accept-Ranges": "bytes"}
    for k, v in row.file_info.items():
        if k.lower() in B2_HEADER_MAP:
            headers[B2_HEADER_MAP[k.lower()]] = v
        else:
            headers["X-Bz-Info-" + k] = quote(v, safe=SAFE)
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{row.content_length}"
    if ex.method == "HEAD":
        return status, dict(headers, **{"Content-Length": str(end - start)}), b""
    return status, headers, emu.store.blobs.get(row.file_id, start, end - start)


def download_by_name(emu, ex):
    """GET/HEAD /file/<bucketName>/<name>: the newest visible version."""
    bucket_name, _, raw = ex.route_args[0].partition("/")
    name = unquote_plus(raw)
    bucket = emu.store.bucket_by_name(bucket_name)
    if bucket is None:
        raise B2Error(404, "not_found", f"Bucket does not exist: {bucket_name}")
    _download_auth(emu, ex, bucket, name)
    row = emu.store.latest(bucket.bucket_id, name)
    if row is None or row.action != "upload":
        raise B2Error(404, "not_found", f"File with such name does not exist: {name}")
    return _serve(emu, ex, row)


def download_by_id(emu, ex):
    """GET/HEAD /b2api/vN/b2_download_file_by_id?fileId=...: any stored version."""
    file_id = ex.query.get("fileId") or ""
    row = emu.store.file(file_id) if file_id else None
    if row is None or row.action != "upload":
        raise B2Error(404, "not_found", f"File with such id does not exist: {file_id}")
    _download_auth(emu, ex, emu.store.bucket(row.bucket_id), row.file_name)
    return _serve(emu, ex, row)
