"""A minimal raw B2 native-API client and a control-plane client, for tests of the emulator (stdlib only).

Deliberately thin: one HTTP connection per request, no retries, every status and header visible, so tests can
observe exactly what the emulator answers (including faults). Not thread-safe per object.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import time
import unittest
from urllib.parse import quote, urlsplit

ACCOUNT, MASTER = "acc0000c0ffee", "m4ster-K3y-for-b2emu-tests"
ACCOUNTS = {"accounts": [{"accountId": ACCOUNT, "masterKey": MASTER,
                          "buckets": [{"bucketName": "bucket-one"}, {"bucketName": "bucket-two"}]}]}


class Response:
    def __init__(self, status: int, headers, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body) if self.body else None

    def __repr__(self):
        return f"Response({self.status}, {self.body[:200]!r})"


def request(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None,
            timeout: float = 30) -> Response:
    """One HTTP request on a fresh connection; raises the socket/http.client error on connection faults."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = parts.path + (("?" + parts.query) if parts.query else "")
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Response(resp.status, resp.msg, resp.read())
    finally:
        conn.close()


def encode_name(name: str) -> str:
    """B2 percent-encoding of a file name: only A-Z a-z 0-9 - . _ ~ / stay literal."""
    return quote(name, safe="/-._~")


class B2:
    """Raw B2 calls with one account token (API version `version`)."""

    def __init__(self, base_url: str, key_id: str, key: str, version: int = 3):
        self.base_url, self.key_id, self.key, self.version = base_url, key_id, key, version
        self.token = self.account_id = None
        self.auth: dict = {}

    def authorize(self) -> Response:
        basic = base64.b64encode(f"{self.key_id}:{self.key}".encode()).decode()
        r = request(f"{self.base_url}/b2api/v{self.version}/b2_authorize_account",
                    headers={"Authorization": "Basic " + basic})
        if r.status == 200:
            self.auth = r.json()
            self.token, self.account_id = self.auth["authorizationToken"], self.auth["accountId"]
        return r

    def call(self, op: str, token: str | None = None, **params) -> Response:
        return request(f"{self.base_url}/b2api/v{self.version}/{op}", "POST", json.dumps(params).encode(),
                       {"Authorization": token or self.token, "Content-Type": "application/json"})

    def ok(self, op: str, **params) -> dict:
        r = self.call(op, **params)
        if r.status != 200:
            raise AssertionError(f"{op} {params} -> {r}")
        return r.json()

    def bucket_id(self, name: str) -> str:
        return self.ok("b2_list_buckets", accountId=self.account_id, bucketName=name)["buckets"][0]["bucketId"]

    def upload_url(self, bucket_id: str) -> dict:
        return self.ok("b2_get_upload_url", bucketId=bucket_id)

    def upload(self, bucket_id: str, name: str, data: bytes, url: dict | None = None, sha1: str | None = None,
               headers: dict | None = None) -> Response:
        """b2_upload_file with a fresh upload URL unless `url` (a b2_get_upload_url answer) is given."""
        url = url or self.upload_url(bucket_id)
        h = {"Authorization": url["authorizationToken"], "X-Bz-File-Name": encode_name(name),
             "Content-Type": "application/octet-stream", "X-Bz-Content-Sha1": sha1 or hashlib.sha1(data).hexdigest()}
        h.update(headers or {})
        return request(url["uploadUrl"], "POST", data, h)

    def put(self, bucket_id: str, name: str, data: bytes) -> dict:
        r = self.upload(bucket_id, name, data)
        if r.status != 200:
            raise AssertionError(f"upload {name} -> {r}")
        return r.json()

    def download(self, bucket: str, name: str, range_: str | None = None, method: str = "GET") -> Response:
        h = {"Authorization": self.token}
        if range_:
            h["Range"] = range_
        return request(f"{self.base_url}/file/{bucket}/{encode_name(name)}", method, headers=h)

    def download_by_id(self, file_id: str, range_: str | None = None) -> Response:
        h = {"Authorization": self.token}
        if range_:
            h["Range"] = range_
        return request(f"{self.base_url}/b2api/v{self.version}/b2_download_file_by_id?fileId={file_id}",
                       headers=h)

    def list_all(self, op: str, bucket_id: str, **params) -> tuple[list, int]:
        """Every entry of a listing, following nextFileName/nextFileId; returns (files, pages)."""
        files, pages, cursor = [], 0, {}
        while True:
            page = self.ok(op, bucketId=bucket_id, **params, **cursor)
            pages += 1
            files += page["files"]
            if page["nextFileName"] is None:
                return files, pages
            cursor = {"startFileName": page["nextFileName"]}
            if page.get("nextFileId"):
                cursor["startFileId"] = page["nextFileId"]


class Control:
    """Client of the emulator's /__control/ plane."""

    def __init__(self, control_url: str):
        self.url = control_url

    def _do(self, method: str, path: str, obj=None):
        body = json.dumps(obj).encode() if obj is not None else None
        r = request(self.url + path, method, body, {"Content-Type": "application/json"})
        if r.status != 200:
            raise AssertionError(f"control {method} {path} -> {r}")
        return r.json()

    def get(self, path: str):
        return self._do("GET", path)

    def post(self, path: str, obj=None):
        return self._do("POST", path, obj or {})

    def fault(self, op, action: dict, match: dict | None = None, **rule) -> int:
        """Adds a rule for op (see faults.py); rule takes skip, count, probability, seed. Returns its id."""
        spec = dict(rule, match=dict(match or {}, op=op), action=action)
        return self.post("/faults", spec)["id"]

    def settings(self, **changes) -> dict:
        return self.post("/settings", changes)

    def counters(self) -> dict:
        return self.get("/counters")

    def reset(self) -> None:
        self.post("/reset")
        self._do("DELETE", "/faults")


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def wait_for(predicate, what: str, deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class EmuCase(unittest.TestCase):
    """Base of emulator tests: one in-memory emulator per test class (ACCOUNTS loaded); faults, settings and
    counters are reset before each test; self.b2 is authorized with the master key, self.bid is bucket-one."""

    @classmethod
    def setUpClass(cls):
        from . import start  # the package entry point

        cls.emu = start(accounts=ACCOUNTS)
        cls.ctl = Control(cls.emu.control_url)

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def setUp(self):
        self.ctl.reset()
        self.b2 = self.client()
        self.bid = self.b2.bucket_id("bucket-one")
        self.pre = self.id().rsplit(".", 1)[-1] + "/"  # per-test name prefix

    def client(self, key_id=ACCOUNT, key=MASTER, version=3) -> B2:
        b2 = B2(self.emu.base_url, key_id, key, version)
        self.assertEqual(b2.authorize().status, 200)
        return b2

    def assertB2Error(self, r, status: int, code: str):  # noqa: N802 (unittest style)
        self.assertEqual(r.status, status, r)
        body = r.json()
        self.assertEqual((body["status"], body["code"]), (status, code), body)
        self.assertTrue(body["message"])

    def names(self, prefix: str, versions=False) -> list:
        op = "b2_list_file_versions" if versions else "b2_list_file_names"
        return [(f["fileName"], f["action"]) for f in self.b2.list_all(op, self.bid, prefix=prefix)[0]]
