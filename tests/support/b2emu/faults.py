"""Fault-injection rules and run-time settings of the B2 emulator.

A rule is JSON: {"match": {...}, "action": {...}, "skip": 0, "count": 1, "probability": 1.0, "seed": 7}.
  match   op (B2 op name, a group "upload" | "download" | "list" | "api", "*", or a list of these), method,
          name_prefix (file name of uploads, by-name downloads and JSON calls with fileName), bucket (bucketId
          of uploads and JSON calls, bucket name of by-name downloads). Missing = any.
  skip    matching requests to let through before the rule starts firing.
  count   how many times it fires, then it retires; null = forever.
  probability  chance of firing per matching request (seeded random.Random, so runs are repeatable).
action.type:
  error        status, code, message, retry_after (s, sets Retry-After), when: "before" (request consumed, no
               effect; default) | "after" (the call takes effect, then the error replaces the reply),
               invalidate_upload_token (default: true for 5xx/408 on uploads), body (text sent as text/html
               instead of B2's JSON, like a proxy's 502 page)
  delay        ms: sleep before handling the request (adds to other matching delays)
  throttle     bytes_per_sec: cap on request-body reads and response writes of this request
  reset        when: "before_response" | "mid_request_body" | "mid_response_body", after_bytes: TCP RST
  truncate     after_bytes: send the full Content-Length header, then only this many body bytes, then close
  corrupt      offset: flip one byte of the upload body (before the SHA-1 check) or of the response body
  expire_token the presented account token expires now (the call then fails 401 expired_auth_token)
Every matching rule's delay and throttle apply; of the other ("terminal") actions the first matching one wins.

Thread contract: Faults and Settings are safe to use from any thread (one lock each).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

OP_GROUPS = {
    "upload": {"b2_upload_file", "b2_upload_part"},
    "download": {"b2_download_file_by_name", "b2_download_file_by_id"},
    "list": {"b2_list_file_names", "b2_list_file_versions"},
}
TERMINAL = {"error", "reset", "truncate", "corrupt", "expire_token"}
ACTIONS = TERMINAL | {"delay", "throttle"}
RESET_WHEN = {"before_response", "mid_request_body", "mid_response_body"}
DEFAULT_ERRORS = {
    400: ("bad_request", "Bad request (injected)"),
    401: ("expired_auth_token", "Authorization token has expired"),
    403: ("cap_exceeded", "Cap exceeded."),
    404: ("not_found", "Not found (injected)"),
    408: ("request_timeout", "Request timed out"),
    429: ("too_many_requests", "Too many requests"),
    500: ("internal_error", "An internal error occurred (injected)"),
    503: ("service_unavailable", "c001_v0001033_t0034 is too busy"),
}


def op_matches(pattern, op: str) -> bool:
    """True if op (a B2 op name) is selected by pattern (name, group, '*', 'api' or a list of these)."""
    if pattern is None or pattern == "*":
        return True
    if isinstance(pattern, list):
        return any(op_matches(p, op) for p in pattern)
    if pattern == "api":
        return op not in OP_GROUPS["upload"] and op not in OP_GROUPS["download"]
    return op == pattern or op in OP_GROUPS.get(pattern, ())


def _validate_action(action: dict) -> dict:
    kind = action.get("type")
    if kind not in ACTIONS:
        raise ValueError(f"unknown action type {kind!r}; one of {sorted(ACTIONS)}")
    action = dict(action)
    if kind == "error":
        status = int(action.get("status", 503))
        code, message = DEFAULT_ERRORS.get(status, ("error", "injected error"))
        action.update(status=status, code=action.get("code", code), message=action.get("message", message))
        if action.setdefault("when", "before") not in ("before", "after"):
            raise ValueError("error.when must be 'before' or 'after'")
    elif kind == "reset" and action.setdefault("when", "before_response") not in RESET_WHEN:
        raise ValueError(f"reset.when must be one of {sorted(RESET_WHEN)}")
    elif kind == "delay" and float(action.get("ms", -1)) < 0:
        raise ValueError("delay needs ms >= 0")
    elif kind == "throttle" and int(action.get("bytes_per_sec", 0)) <= 0:
        raise ValueError("throttle needs bytes_per_sec > 0")
    action.setdefault("after_bytes", 0)
    action.setdefault("offset", 0)
    return action


@dataclass
class Rule:
    id: int
    match: dict
    action: dict
    skip: int = 0
    count: int | None = 1
    probability: float = 1.0
    rng: random.Random = field(default_factory=random.Random)
    seen: int = 0
    fired: int = 0

    def spent(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def selects(self, req: dict) -> bool:
        m = self.match
        if not op_matches(m.get("op"), req["op"]):
            return False
        if m.get("method") and m["method"].upper() != req["method"]:
            return False
        if m.get("name_prefix") is not None and not (req.get("name") or "").startswith(m["name_prefix"]):
            return False
        return not m.get("bucket") or m["bucket"] in (req.get("bucket_id"), req.get("bucket_name"))

    def describe(self) -> dict:
        return {"id": self.id, "match": self.match, "action": self.action, "skip": self.skip, "count": self.count,
                "probability": self.probability, "seen": self.seen, "fired": self.fired, "spent": self.spent()}


@dataclass
class Plan:
    """What the matching rules decided for one request."""

    delay_s: float = 0.0
    bytes_per_sec: int | None = None
    action: dict | None = None  # the terminal action, if any
    rule_ids: list = field(default_factory=list)

    def kind(self) -> str | None:
        return self.action["type"] if self.action else None


class Faults:
    """The ordered list of fault rules."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._next_id = 1

    def add(self, spec: dict) -> dict:
        """Validates and appends a rule; returns its description (with its id). Raises ValueError."""
        count = spec.get("count", 1)
        prob = float(spec.get("probability", 1.0))
        if not 0.0 <= prob <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        match = dict(spec.get("match") or {})
        action = _validate_action(dict(spec.get("action") or {}))
        with self._lock:
            rule = Rule(self._next_id, match, action, int(spec.get("skip", 0)),
                        None if count is None else int(count), prob, random.Random(spec.get("seed", self._next_id)))
            self._next_id += 1
            self._rules.append(rule)
            return rule.describe()

    def describe(self) -> list[dict]:
        with self._lock:
            return [r.describe() for r in self._rules]

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def plan(self, req: dict) -> Plan:
        """Evaluates the rules for req = {op, method, name?, bucket_id?, bucket_name?}; updates their budgets."""
        plan = Plan()
        with self._lock:
            for rule in self._rules:
                if rule.spent() or not rule.selects(req):
                    continue
                kind = rule.action["type"]
                if kind in TERMINAL and plan.action is not None:
                    continue
                rule.seen += 1
                if rule.seen <= rule.skip or rule.rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                plan.rule_ids.append(rule.id)
                if kind == "delay":
                    plan.delay_s += float(rule.action["ms"]) / 1000.0
                elif kind == "throttle":
                    bps = int(rule.action["bytes_per_sec"])
                    plan.bytes_per_sec = min(bps, plan.bytes_per_sec or bps)
                else:
                    plan.action = rule.action
        return plan


class Settings:
    """Run-time knobs, changed through POST /__control/settings."""

    DEFAULTS = {
        "token_ttl_s": 86400.0,  # account and upload tokens
        "list_lag_s": 0.0,  # versions younger than this are invisible to list calls
        "recommended_part_size": 100_000_000,
        "absolute_minimum_part_size": 5_000_000,
        "strict_names": True,  # also reject leading/trailing '/', '//', segments > 250 bytes
        "max_info_headers": 10,  # null = no count limit (the 7000-byte budget always applies)
        "upload_token_conflict_code": "bad_request",  # or "auth_token_limit"
        "busy_after_abort_s": 0.0,  # an aborted upload keeps its token busy this long
        "max_file_count_limit": 10000,
        "list_page_cap": None,  # pages of list calls hold at most this many entries (nextFileName still set)
    }

    def __init__(self):
        self._lock = threading.Lock()
        self._values = dict(self.DEFAULTS)

    def get(self, name: str):
        with self._lock:
            return self._values[name]

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self._values)

    def update(self, changes: dict) -> dict:
        """Applies known keys (type-coerced like their defaults); raises ValueError on an unknown key."""
        with self._lock:
            for k, v in changes.items():
                if k not in self.DEFAULTS:
                    raise ValueError(f"unknown setting {k!r}; known: {sorted(self.DEFAULTS)}")
                default = self.DEFAULTS[k]
                self._values[k] = v if v is None or default is None else type(default)(v)
            return dict(self._values)

    def reset(self) -> None:
        with self._lock:
            self._values = dict(self.DEFAULTS)
