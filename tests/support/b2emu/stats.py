"""Counters and the request log of the B2 emulator (read through /__control/counters and /__control/log).

Transaction classes follow Backblaze's "pricing organized by API calls" table: A (uploads, deletes, large-file
calls, get_upload_url), B (downloads, get_file_info), C (authorize, buckets, listings, keys). A list call counts
ceil(items returned / 1000) transactions, at least 1. Classes count only answered calls (status < 400); the
per-op call counts include failed and fault-injected calls.

Thread contract: Stats is safe to use from any thread (one lock).
"""

from __future__ import annotations

import threading
import time
from collections import deque

CLASS_A = {
    "b2_cancel_large_file", "b2_delete_bucket", "b2_delete_file_version", "b2_delete_key", "b2_finish_large_file",
    "b2_get_upload_part_url", "b2_get_upload_url", "b2_hide_file", "b2_start_large_file",
    "b2_update_file_legal_hold", "b2_update_file_retention", "b2_upload_file", "b2_upload_part",
}
CLASS_B = {"b2_download_file_by_id", "b2_download_file_by_name", "b2_get_file_info"}
CLASS_C = {
    "b2_authorize_account", "b2_copy_file", "b2_copy_part", "b2_create_bucket", "b2_create_key",
    "b2_get_download_authorization", "b2_list_buckets", "b2_list_file_names", "b2_list_file_versions",
    "b2_list_keys", "b2_list_parts", "b2_list_unfinished_large_files", "b2_update_bucket",
}
PER_1000 = {"b2_list_file_names", "b2_list_file_versions", "b2_list_parts", "b2_list_unfinished_large_files"}
LOG_LIMIT = 20000


def transaction_class(op: str) -> str | None:
    """'A', 'B', 'C' or None (not a billable B2 call)."""
    if op in CLASS_A:
        return "A"
    if op in CLASS_B:
        return "B"
    return "C" if op in CLASS_C else None


class Stats:
    """Per-op call counts, transaction classes, byte counts and a bounded request log."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._calls: dict[str, int] = {}
            self._status: dict[str, int] = {}
            self._classes = {"A": 0, "B": 0, "C": 0}
            self._bytes = {"upload_bytes": 0, "download_bytes": 0, "request_bytes": 0, "response_bytes": 0}
            self._log: deque = deque(maxlen=LOG_LIMIT)
            self._seq = 0

    def record(self, entry: dict) -> None:
        """Adds one finished request: entry has op, method, path, status, code, bytes_in, bytes_out,
        items (list calls), payload_in (upload bytes stored or read), payload_out (download body bytes sent)."""
        op, status = entry["op"], entry["status"]
        with self._lock:
            self._seq += 1
            self._calls[op] = self._calls.get(op, 0) + 1
            key = str(status)
            self._status[key] = self._status.get(key, 0) + 1
            cls = transaction_class(op)
            if cls and 0 < status < 400:
                n = 1
                if op in PER_1000:
                    n = max(1, -(-entry.get("items", 0) // 1000))
                self._classes[cls] += n
            self._bytes["request_bytes"] += entry.get("bytes_in", 0)
            self._bytes["response_bytes"] += entry.get("bytes_out", 0)
            self._bytes["upload_bytes"] += entry.get("payload_in", 0)
            self._bytes["download_bytes"] += entry.get("payload_out", 0)
            self._log.append(dict(entry, seq=self._seq, t=round(time.time(), 3)))

    def unsent(self, n: int, download: bool) -> None:
        """Takes back n response bytes counted by the last record() of a request that then failed to send."""
        with self._lock:
            self._bytes["response_bytes"] -= n
            if download:
                self._bytes["download_bytes"] -= n

    def counters(self, stored_bytes: int) -> dict:
        with self._lock:
            return {"calls": dict(self._calls), "status": dict(self._status), "classes": dict(self._classes),
                    **self._bytes, "stored_bytes": stored_bytes}

    def log(self, since: int = 0) -> list[dict]:
        """Log entries with seq > since (the newest LOG_LIMIT are kept)."""
        with self._lock:
            return [e for e in self._log if e["seq"] > since]
