"""Control plane of the B2 emulator, served under /__control/ on the emulator's port (JSON in, JSON out).

  GET  /__control/health                 {"ok": true, "apiUrl": ...}
  POST /__control/accounts               {accountId?, masterKey?} -> {accountId, masterKey}
  POST /__control/keys                   {accountId, capabilities?, bucketName? | bucketId? | bucketNames?,
                                          namePrefix?, keyId?, key?, keyName?} -> {keyId, key}
  POST /__control/buckets                {accountId, bucketName, bucketType?} -> bucket
  GET|POST|DELETE /__control/faults      list | add a rule (see faults.py) | remove all
  DELETE /__control/faults/<id>          remove one rule
  GET|POST /__control/settings           read | change knobs (faults.Settings.DEFAULTS)
  POST /__control/tokens/expire          {"token": "all" | <token>} -> {"expired": n}
  POST /__control/clock/advance          {"seconds": s} (tokens expire, timestamps move)
  GET  /__control/counters               calls per op, status counts, classes A/B/C, byte counts, stored bytes
  POST /__control/counters/reset
  GET  /__control/log?since=N            request log entries with seq > N
  GET  /__control/state                  buckets, every stored version, uploads in flight (for assertions)
  POST /__control/reset                  clears faults, settings, counters and the log (not the data)
Errors: 400 {"error": message}. Control calls are not counted and never faulted.
Thread contract: runs on the server threads; all state it touches locks internally.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

PREFIX = "/__control"


def _bucket_ids(emu, spec: dict) -> list | None:
    names = spec.get("bucketNames")
    if names is None and spec.get("bucketName"):
        names = [spec["bucketName"]]
    if spec.get("bucketId"):
        return [spec["bucketId"]]
    if names is None:
        return None
    ids = []
    for name in names:
        bucket = emu.store.bucket_by_name(name)
        if bucket is None:
            raise ValueError(f"no bucket named {name}")
        ids.append(bucket.bucket_id)
    return ids


def add_key(emu, spec: dict) -> dict:
    key_id, secret = emu.store.add_key(spec["accountId"], spec.get("capabilities"), _bucket_ids(emu, spec),
                                       spec.get("namePrefix"), spec.get("keyId"), spec.get("key"),
                                       spec.get("keyName", ""))
    return {"keyId": key_id, "key": secret}


def add_bucket(emu, spec: dict) -> dict:
    existing = emu.store.bucket_by_name(spec["bucketName"])
    bucket = existing or emu.store.add_bucket(spec["accountId"], spec["bucketName"],
                                              spec.get("bucketType", "allPrivate"), spec.get("bucketInfo"))
    return {"bucketId": bucket.bucket_id, "bucketName": bucket.bucket_name, "bucketType": bucket.bucket_type,
            "accountId": bucket.account_id}


def load_accounts(emu, spec: dict) -> list[dict]:
    """Creates the accounts, buckets and keys of an accounts document (idempotent by id/name)."""
    out = []
    for acc in spec.get("accounts", []):
        account_id, master = emu.store.add_account(acc.get("accountId"), acc.get("masterKey"))
        for b in acc.get("buckets", []):
            add_bucket(emu, dict(b, accountId=account_id))
        keys = [add_key(emu, dict(k, accountId=account_id)) for k in acc.get("keys", [])]
        out.append({"accountId": account_id, "masterKey": master, "keys": keys})
    return out


def _state(emu) -> dict:
    files = [{"bucketId": r.bucket_id, "fileName": r.file_name, "fileId": r.file_id, "action": r.action,
              "contentLength": r.content_length, "contentSha1": r.content_sha1, "uploadTimestamp": r.upload_ts,
              "parts": len(emu.store.parts(r.file_id)) if r.action == "start" else None}
             for r in emu.store.all_files()]
    buckets = [{"bucketId": b.bucket_id, "bucketName": b.bucket_name, "bucketType": b.bucket_type,
                "accountId": b.account_id} for b in emu.store.all_buckets()]
    return {"buckets": buckets, "files": files, "stored_bytes": emu.store.stored_bytes(),
            "uploads_in_flight": emu.tokens.uploads_in_flight()}


def _route(emu, method: str, path: str, query: dict, body: dict):
    """The JSON answer for one control request; raises KeyError (404) or ValueError (400)."""
    simple_get = {
        "/health": lambda: {"ok": True, "apiUrl": emu.base_url, "port": emu.port},
        "/faults": emu.faults.describe,
        "/settings": emu.settings.snapshot,
        "/counters": lambda: emu.stats.counters(emu.store.stored_bytes()),
        "/log": lambda: emu.stats.log(int(query.get("since", 0))),
        "/state": lambda: _state(emu),
    }
    simple_post = {
        "/accounts": lambda: dict(zip(("accountId", "masterKey"),
                                      emu.store.add_account(body.get("accountId"), body.get("masterKey")))),
        "/keys": lambda: add_key(emu, body),
        "/buckets": lambda: add_bucket(emu, body),
        "/faults": lambda: emu.faults.add(body),
        "/settings": lambda: emu.settings.update(body),
        "/tokens/expire": lambda: {"expired": emu.tokens.expire(body.get("token", "all"))},
        "/clock/advance": lambda: (emu.advance_clock(float(body["seconds"])), {"clock": emu.clock()})[1],
        "/counters/reset": lambda: (emu.stats.reset(), {"ok": True})[1],
        "/reset": lambda: (emu.faults.clear(), emu.settings.reset(), emu.stats.reset(), {"ok": True})[3],
        "/accounts/load": lambda: {"accounts": load_accounts(emu, body)},
    }
    if method == "GET" and path in simple_get:
        return simple_get[path]()
    if method == "POST" and path in simple_post:
        return simple_post[path]()
    if method == "DELETE" and path == "/faults":
        emu.faults.clear()
        return {"ok": True}
    if method == "DELETE" and path.startswith("/faults/"):
        return {"removed": emu.faults.remove(int(path[len("/faults/"):]))}
    raise KeyError(f"no control endpoint {method} {path}")


def handle(emu, ex) -> None:
    """Serves one /__control/ request on the Exchange ex."""
    query = {k: v[-1] for k, v in parse_qs(ex.h.path.partition("?")[2]).items()}
    status = 200
    try:
        raw = ex.read_body() if ex.header("Content-Length") else b""
        body = json.loads(raw) if raw.strip() else {}
        answer = _route(emu, ex.method, ex.path[len(PREFIX):].rstrip("/") or "/health", query, body)
    except KeyError as e:
        status, answer = 404, {"error": str(e)}
    except (ValueError, TypeError) as e:
        status, answer = 400, {"error": str(e)}
    ex.send(status, {"Content-Type": "application/json"}, json.dumps(answer).encode())
