"""Tokens, authorization and permission checks of the B2 emulator.

Account tokens come from b2_authorize_account; upload tokens from b2_get_upload_url / b2_get_upload_part_url
(one token per upload URL). Both expire after settings.token_ttl_s (emulator clock) or when the control plane
expires them. An upload token serves one upload at a time (a second concurrent one gets 400), and dies when
its pod "rejects" an upload (injected 5xx/408). Tokens live in memory only: a restarted emulator answers
401 bad_auth_token to old ones, like a token from another cluster.

Thread contract: Tokens is safe to use from any thread (one lock).
"""

from __future__ import annotations

import base64
import secrets
import threading
from dataclasses import dataclass

from .store import Key


class B2Error(Exception):
    """An error answered as B2's JSON body {"status", "code", "message"}."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None,
                 raw_body: str | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.raw_body = raw_body  # sent verbatim as text/html instead of the JSON body (proxy-style errors)

    def body(self) -> dict:
        return {"status": self.status, "code": self.code, "message": self.message}


def unauthorized(message: str) -> B2Error:
    return B2Error(401, "unauthorized", message)


@dataclass
class AccountToken:
    key: Key
    expires: float
    api_version: int


@dataclass
class UploadToken:
    token: str
    url_id: str
    key: Key
    bucket_id: str
    file_id: str | None  # set for upload-part tokens
    expires: float
    busy: bool = False
    busy_until: float = 0.0
    dead: bool = False


class Tokens:
    """Issues and checks account and upload tokens against the emulator clock."""

    def __init__(self, clock, settings):
        self._clock, self._settings = clock, settings
        self._lock = threading.Lock()
        self._account: dict[str, AccountToken] = {}
        self._upload: dict[str, UploadToken] = {}

    def issue_account(self, key: Key, api_version: int) -> str:
        token = "4_" + key.account_id + "_" + secrets.token_urlsafe(24)
        with self._lock:
            self._account[token] = AccountToken(key, self._clock() + self._settings.get("token_ttl_s"), api_version)
        return token

    def check_account(self, header: str | None) -> Key:
        """The key behind an account token; raises 401 missing/bad/expired_auth_token."""
        if not header:
            raise B2Error(401, "missing_auth_token", "Authorization header is missing")
        with self._lock:
            tok = self._account.get(header)
        if tok is None:
            raise B2Error(401, "bad_auth_token", "Invalid authorization token")
        if self._clock() >= tok.expires:
            raise B2Error(401, "expired_auth_token", "Authorization token has expired")
        return tok.key

    def issue_upload(self, key: Key, bucket_id: str, file_id: str | None) -> UploadToken:
        tok = UploadToken("4_" + key.account_id + "_u" + secrets.token_urlsafe(24), secrets.token_hex(8), key,
                          bucket_id, file_id, self._clock() + self._settings.get("token_ttl_s"))
        with self._lock:
            self._upload[tok.url_id] = tok
        return tok

    def begin_upload(self, url_id: str, header: str | None) -> UploadToken:
        """Marks the URL's token busy for one upload; raises 401 (missing/bad/expired) or 400 (in use)."""
        if not header:
            raise B2Error(401, "missing_auth_token", "Authorization header is missing")
        with self._lock:
            tok = self._upload.get(url_id)
            if tok is None or not secrets.compare_digest(tok.token, header) or tok.dead:
                raise B2Error(401, "bad_auth_token", "Invalid upload authorization token; get a new upload URL")
            if self._clock() >= tok.expires:
                raise B2Error(401, "expired_auth_token", "Authorization token has expired")
            if tok.busy or self._clock() < tok.busy_until:
                code = self._settings.get("upload_token_conflict_code")
                raise B2Error(400, code, f"more than one upload using auth token {tok.token}")
            tok.busy = True
            return tok

    def end_upload(self, tok: UploadToken, outcome: str) -> None:
        """Releases the token: outcome 'ok', 'dead' (pod rejected the upload) or 'aborted' (connection lost)."""
        with self._lock:
            tok.busy = False
            if outcome == "dead":
                tok.dead = True
            elif outcome == "aborted":
                tok.busy_until = self._clock() + self._settings.get("busy_after_abort_s")

    def uploads_in_flight(self) -> int:
        with self._lock:
            return sum(1 for t in self._upload.values() if t.busy)

    def mark_url(self, url_id: str, outcome: str) -> None:
        """Applies an outcome ('dead' or 'aborted') to an upload URL's token outside an upload (faults)."""
        with self._lock:
            tok = self._upload.get(url_id)
            if tok is None:
                return
            if outcome == "dead":
                tok.dead = True
            elif outcome == "aborted":
                tok.busy_until = self._clock() + self._settings.get("busy_after_abort_s")

    def expire(self, which: str = "all") -> int:
        """Expires the given account/upload token, or all of them; returns how many."""
        now = self._clock()
        n = 0
        with self._lock:
            for tok in list(self._account.items()):
                if which in ("all", tok[0]):
                    tok[1].expires = now
                    n += 1
            for up in self._upload.values():
                if which in ("all", up.token):
                    up.expires = now
                    n += 1
        return n


def parse_basic(header: str | None) -> tuple[str, str]:
    """(keyId, key) from a Basic Authorization header; raises 401 unauthorized if absent or malformed."""
    if not header or not header.startswith("Basic "):
        raise unauthorized("Basic authorization with an application key is required")
    try:
        key_id, _, secret = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        raise B2Error(400, "bad_request", "Malformed Basic authorization header") from None
    return key_id, secret


def require(key: Key, capability: str) -> None:
    if capability not in key.capabilities:
        raise unauthorized(f"application key does not have the capability {capability}")


def require_bucket(key: Key, bucket_id: str) -> None:
    if key.bucket_ids is not None and bucket_id not in key.bucket_ids:
        raise unauthorized(f"application key is restricted to other buckets than {bucket_id}")


def require_name(key: Key, name: str) -> None:
    if key.name_prefix and not name.startswith(key.name_prefix):
        raise unauthorized(f"application key is restricted to names starting with {key.name_prefix}")


def authorize_body(key: Key, token: str, version: int, base_url: str, settings, bucket_names: dict) -> dict:
    """The b2_authorize_account response in the shape of API version 1..4 (bucket_names: id -> name)."""
    buckets = key.bucket_ids
    if buckets is not None and len(buckets) > 1 and version < 4:
        raise B2Error(401, "unsupported", "This application key is only usable with API version 4 or later")
    urls = {"apiUrl": base_url, "downloadUrl": base_url, "s3ApiUrl": base_url + "/__s3-not-modelled",
            "recommendedPartSize": settings.get("recommended_part_size"),
            "absoluteMinimumPartSize": settings.get("absolute_minimum_part_size")}
    bucket_id = buckets[0] if buckets else None
    bucket_name = bucket_names.get(bucket_id) if bucket_id else None
    caps = list(key.capabilities)
    body = {"accountId": key.account_id, "authorizationToken": token}
    if version <= 2:
        body.update(urls, minimumPartSize=urls["recommendedPartSize"],
                    allowed={"bucketId": bucket_id, "bucketName": bucket_name, "capabilities": caps,
                             "namePrefix": key.name_prefix})
        return body
    storage = dict(urls, infoType="storageApi")
    if version == 3:
        storage.update(bucketId=bucket_id, bucketName=bucket_name, capabilities=caps, namePrefix=key.name_prefix)
    else:
        allowed = None if buckets is None else [{"id": b, "name": bucket_names.get(b)} for b in buckets]
        storage["allowed"] = {"buckets": allowed, "capabilities": caps, "namePrefix": key.name_prefix}
    body.update(apiInfo={"storageApi": storage}, applicationKeyExpirationTimestamp=None)
    return body
