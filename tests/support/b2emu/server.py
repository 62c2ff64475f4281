"""HTTP front of the B2 emulator: routing, request/response I/O with fault injection, and the Emulator object.

One loopback listener serves the API (/b2api/v1..v4/...), uploads (the URLs b2_get_upload_url hands out),
downloads (/file/<bucket>/<name>, b2_download_file_by_id) and the control plane (/__control/..., see
control.py). HTTP/1.1 with keep-alive; every response carries Content-Length.

Thread contract: ThreadingHTTPServer runs each connection on its own thread; an Exchange belongs to one request
on one thread; shared state lives in Store, Tokens, Faults, Settings and Stats, which lock internally.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote_plus

from . import api, control, transfer
from .auth import B2Error, Tokens, authorize_body, parse_basic
from .faults import OP_GROUPS, Faults, Plan, Settings
from .stats import Stats
from .store import Store

DRAIN_LIMIT = 64 * 1024 * 1024  # unread request bodies up to this size are drained, larger ones close the socket
CHUNK = 64 * 1024


class Exchange:
    """One request and its response; applies the request's fault plan to body reads and response writes."""

    def __init__(self, handler: BaseHTTPRequestHandler, emu):
        self.h, self.emu, self.method = handler, emu, handler.command
        raw_path, _, qs = handler.path.partition("?")
        self.path = raw_path
        self.query = {k: v[-1] for k, v in parse_qs(qs, keep_blank_values=True).items()}
        self.op, self.kind, self.version, self.route_args = "unknown", "none", 0, ()
        self.params: dict = {}
        self.plan = Plan()
        self.status, self.code = 0, None
        self.bytes_in = self.bytes_out = self.payload_in = self.payload_out = self.items = self._written = 0
        self.recorded = False
        length = handler.headers.get("Content-Length")
        self._remaining = int(length) if length and length.isdigit() else 0
        self.closed = False

    def header(self, name: str) -> str | None:
        return self.h.headers.get(name)

    def header_items(self):
        return self.h.headers.items()

    def _pace(self, n: int, started: float, done: int) -> None:
        bps = self.plan.bytes_per_sec
        if bps:
            ahead = (done + n) / bps - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)

    def _read(self, n: int) -> bytes:
        parts, done, started = [], 0, time.monotonic()
        step = min(CHUNK, max(1, (self.plan.bytes_per_sec or CHUNK * 20) // 20))
        while done < n:
            chunk = self.h.rfile.read(min(step, n - done))
            if not chunk:
                raise ConnectionError("client closed the connection in the middle of the body")
            parts.append(chunk)
            done += len(chunk)
            self._remaining -= len(chunk)
            self.bytes_in += len(chunk)
            self._pace(0, started, done)
        return b"".join(parts)

    def read_body(self) -> bytes:
        """The whole request body (Content-Length required, chunked refused); upload 'corrupt' faults apply."""
        if self.header("Transfer-Encoding"):
            raise B2Error(400, "bad_request", "chunked transfer encoding is not supported; send Content-Length")
        if self.method == "POST" and self.header("Content-Length") is None:
            raise B2Error(400, "bad_request", "Content-Length header is required")
        data = self._read(self._remaining)
        act = self.plan.action
        if act and act["type"] == "corrupt" and self.op in OP_GROUPS["upload"] and data:
            i = min(int(act["offset"]), len(data) - 1)
            data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
        return data

    def read_some(self, n: int) -> None:
        self._read(min(n, self._remaining))

    def finish_body(self) -> None:
        """Drains what the handler left unread (so keep-alive stays in sync), or closes if it is too big."""
        if self._remaining <= 0 or self.closed:
            return
        if self._remaining > DRAIN_LIMIT:
            self.h.close_connection = True
            return
        self._read(self._remaining)

    def reset(self) -> None:
        """Aborts the connection with a TCP RST (SO_LINGER 0), without any further bytes."""
        self.h.close_connection = True
        self.closed = True
        self.code = self.code or "reset"
        sock = self.h.connection
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        sock.close()

    def _write(self, data: bytes) -> None:
        started = time.monotonic()
        step = min(CHUNK, max(1, (self.plan.bytes_per_sec or CHUNK * 20) // 20))
        for i in range(0, len(data), step):
            piece = data[i:i + step]
            self._pace(len(piece), started, self._written)
            self.h.wfile.write(piece)
            self._written += len(piece)

    def record(self) -> None:
        """Adds this request to the counters and the log, once (control requests are not recorded)."""
        if self.recorded or self.path.startswith(control.PREFIX):
            return
        self.recorded = True
        self.emu.stats.record({"op": self.op, "method": self.method, "path": self.path, "status": self.status,
                               "code": self.code, "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
                               "payload_in": self.payload_in, "payload_out": self.payload_out,
                               "items": self.items, "rules": self.plan.rule_ids})

    def send(self, status: int, headers: dict, body: bytes) -> None:
        """Sends the response; response-side faults (truncate, mid-body reset, corrupt, throttle) apply.
        The request is recorded before the first byte goes out, so a client that has its answer always
        finds it counted; bytes that then fail to go out are taken back off the counters."""
        act = self.plan.action or {}
        kind = act.get("type")
        if kind == "corrupt" and self.op not in OP_GROUPS["upload"] and body:
            i = min(int(act["offset"]), len(body) - 1)
            body = body[:i] + bytes([body[i] ^ 0xFF]) + body[i + 1:]
        cut = None
        if kind == "truncate" or (kind == "reset" and act.get("when") == "mid_response_body"):
            cut = int(act["after_bytes"])
            self.code = ("truncated" if kind == "truncate" else "reset") if cut < len(body) else self.code
        out = body if cut is None else body[:cut]
        self.status, self.bytes_out = status, len(out)
        self.payload_out = len(out) if self.op in OP_GROUPS["download"] else 0
        self.h.send_response(status)
        for k, v in headers.items():
            if v is not None and k != "Content-Length":
                self.h.send_header(k, v)
        self.h.send_header("Content-Length", headers.get("Content-Length", str(len(body))))
        if self.h.close_connection:
            self.h.send_header("Connection", "close")
        self.record()
        self._written = 0
        try:
            self.h.end_headers()
            self._write(out)
        except OSError:
            self.emu.stats.unsent(len(out) - self._written, self.payload_out > 0)
            raise
        if cut is not None and cut < len(body):
            if kind == "truncate":
                self.h.close_connection = True
            else:
                self.reset()

    def send_error(self, err: B2Error) -> None:
        self.code = err.code
        ctype = "application/json;charset=utf-8" if err.raw_body is None else "text/html"
        body = json.dumps(err.body()).encode() if err.raw_body is None else err.raw_body.encode()
        self.send(err.status, dict(err.headers, **{"Content-Type": ctype}), b"" if self.method == "HEAD" else body)


def authorize(emu, ex):
    """GET /b2api/vN/b2_authorize_account with Basic auth."""
    key_id, secret = parse_basic(ex.header("Authorization"))
    key = emu.store.check_key(key_id, secret)
    if key is None:
        raise B2Error(401, "unauthorized", "Invalid application key id or application key")
    names = {b.bucket_id: b.bucket_name for b in emu.store.buckets_of(key.account_id)}
    body = authorize_body(key, "", ex.version, emu.base_url, emu.settings, names)
    body["authorizationToken"] = emu.tokens.issue_account(key, ex.version)
    return transfer.json_reply(body)


def json_call(emu, ex):
    """Any JSON call of api.OPS."""
    call = api.Call(emu, ex.version, ex.params, ex.header("Authorization"))
    body, ex.items = api.OPS[ex.op](emu, call)
    return transfer.json_reply(body)


ROUTES = [  # (regex on the raw path, kind, handler, allowed methods)
    (re.compile(r"/b2api/v(\d+)/(b2_authorize_account)"), "authorize", authorize, ("GET", "POST")),
    (re.compile(r"/b2api/v(\d+)/(b2_upload_file)/([^/]+)/([^/]+)"), "upload", transfer.upload_file, ("POST",)),
    (re.compile(r"/b2api/v(\d+)/(b2_upload_part)/([^/]+)/([^/]+)"), "upload", transfer.upload_part, ("POST",)),
    (re.compile(r"/b2api/v(\d+)/(b2_download_file_by_id)"), "download", transfer.download_by_id, ("GET", "HEAD")),
    (re.compile(r"/b2api/v(\d+)/(b2_\w+)"), "json", json_call, ("GET", "POST")),
]
FILE_ROUTE = re.compile(r"/file/(.+)")


def resolve(ex: Exchange):
    """Sets ex.op/kind/version/route_args and returns the handler; raises 404/405."""
    m = FILE_ROUTE.fullmatch(ex.path)
    if m:
        ex.op, ex.kind, ex.route_args = "b2_download_file_by_name", "download", (m[1],)
        fn, methods = transfer.download_by_name, ("GET", "HEAD")
    else:
        for regex, kind, fn, methods in ROUTES:
            m = regex.fullmatch(ex.path)
            if m:
                ex.version, ex.op, ex.kind, ex.route_args = int(m[1]), m[2], kind, tuple(m.groups()[2:])
                break
        else:
            raise B2Error(404, "not_found", f"no such API path: {ex.path}")
        if not 1 <= ex.version <= 4:
            raise B2Error(404, "not_found", f"unsupported API version v{ex.version}")
        if kind == "json" and ex.op not in api.OPS:
            raise B2Error(404, "not_found", f"unknown or unmodelled API call: {ex.op}")
    if ex.method not in methods:
        raise B2Error(405, "method_not_allowed", f"{ex.method} is not allowed for {ex.op}")
    return fn


def _fault_request(ex: Exchange) -> dict:
    """The request attributes fault rules match on (reads the JSON body of JSON calls)."""
    req = {"op": ex.op, "method": ex.method}
    if ex.kind == "json":
        raw = ex.read_body() if ex.method == "POST" else b""
        try:
            ex.params = json.loads(raw) if raw.strip() else dict(ex.query)
        except ValueError:
            raise B2Error(400, "bad_json", "request body is not valid JSON") from None
        if not isinstance(ex.params, dict):
            raise B2Error(400, "bad_json", "request body must be a JSON object")
        req.update(name=ex.params.get("fileName"), bucket_id=ex.params.get("bucketId"))
    elif ex.kind == "upload":
        req.update(name=unquote_plus(ex.header("X-Bz-File-Name") or ""), bucket_id=ex.route_args[0])
    elif ex.op == "b2_download_file_by_name":
        bucket, _, name = ex.route_args[0].partition("/")
        req.update(name=unquote_plus(name), bucket_name=bucket)
    return req


def _test_mode(ex: Exchange) -> None:
    """Honours B2's X-Bz-Test-Mode header when no fault rule chose a terminal action."""
    mode = ex.header("X-Bz-Test-Mode")
    if not mode or ex.plan.action or int(time.monotonic() * 1000) % 3:
        return
    if mode == "fail_some_uploads" and ex.kind == "upload":
        ex.plan.action = {"type": "error", "status": 503, "code": "service_unavailable",
                          "message": "test mode: failing some uploads", "when": "before"}
    elif mode == "expire_some_account_authorization_tokens":
        ex.plan.action = {"type": "expire_token"}
    elif mode == "force_cap_exceeded" and ex.kind == "upload":
        ex.plan.action = {"type": "error", "status": 403, "code": "cap_exceeded", "message": "Cap exceeded.",
                          "when": "before"}


def _injected(emu, ex: Exchange, act: dict) -> B2Error:
    """The error of an 'error' action; kills the upload URL's token when the pod 'rejected' the upload."""
    status = act["status"]
    kill = act.get("invalidate_upload_token", status >= 500 or status == 408)
    if ex.kind == "upload" and kill:
        emu.tokens.mark_url(ex.route_args[1], "dead")
    headers = {"Retry-After": str(act["retry_after"])} if act.get("retry_after") is not None else {}
    if status == 429 and not headers:
        headers = {"Retry-After": "1"}
    return B2Error(status, act["code"], act["message"], headers, act.get("body"))


def run_request(emu, ex: Exchange, fn) -> None:
    """Runs one B2 request through its fault plan and the handler, and sends the reply."""
    ex.plan = emu.faults.plan(_fault_request(ex))
    _test_mode(ex)
    if ex.plan.delay_s:
        time.sleep(ex.plan.delay_s)
    act = ex.plan.action or {}
    kind, when = act.get("type"), act.get("when")
    if kind == "expire_token":
        emu.tokens.expire(ex.header("Authorization") or ex.query.get("Authorization") or "-")
    if kind == "error" and when == "before":
        ex.finish_body()
        raise _injected(emu, ex, act)
    if kind == "reset" and when == "mid_request_body":
        ex.read_some(int(act["after_bytes"]))
        if ex.kind == "upload":
            emu.tokens.mark_url(ex.route_args[1], "aborted")
        return ex.reset()
    try:
        status, headers, body = fn(emu, ex)
    except B2Error as err:
        if kind != "error":
            raise
        status, headers, body = err.status, {}, b""
    if kind == "error":
        ex.finish_body()
        raise _injected(emu, ex, act)
    if kind == "reset" and when == "before_response":
        ex.finish_body()
        return ex.reset()
    ex.send(status, headers, body)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY, as real servers: no 40 ms stall per reply on delayed ACKs
    server_version = "b2emu/1"
    timeout = 60

    def do_GET(self):  # noqa: N802 (http.server naming)
        emu = self.server.emu
        ex = Exchange(self, emu)
        if ex.path.startswith(control.PREFIX):
            return control.handle(emu, ex)
        try:
            fn = resolve(ex)
            run_request(emu, ex, fn)
        except B2Error as err:
            self._reply_error(ex, err)
        except OSError as err:  # the peer went away (or we reset it)
            ex.code = ex.code or type(err).__name__
            self.close_connection = True
        except Exception as err:  # an emulator bug: answer 500 and say so on stderr
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            if not ex.status:
                self._reply_error(ex, B2Error(500, "internal_error", f"b2emu: {type(err).__name__}: {err}"))
        finally:
            if not ex.closed:
                try:
                    ex.finish_body()
                except OSError:
                    self.close_connection = True
            ex.record()  # if no response went out (resets, lost connections)

    do_POST = do_HEAD = do_PUT = do_DELETE = do_GET

    def _reply_error(self, ex: Exchange, err: B2Error) -> None:
        try:
            ex.send_error(err)
        except OSError:  # nobody is listening any more
            self.close_connection = True

    def log_message(self, format, *args):  # noqa: A002 (http.server signature)
        if self.server.emu.verbose:  # tokens passed as ?Authorization= are not logged
            sys.stderr.write("b2emu: " + re.sub(r"(Authorization=)[^&\s\"]+", r"\1-", format % args) + "\n")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Emulator:
    """A running (or ready-to-run) emulator: state, faults, counters and the HTTP listener."""

    def __init__(self, state_dir: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 accounts: dict | None = None, verbose: bool = False):
        self.verbose = verbose
        self.store = Store(state_dir)
        self.settings, self.faults, self.stats = Settings(), Faults(), Stats()
        self._clock_offset = 0.0
        self.tokens = Tokens(self.clock, self.settings)
        if accounts:
            control.load_accounts(self, accounts)
        self.httpd = _HTTPServer((host, port), Handler)
        self.httpd.emu = self
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://{host}:{self.port}"
        self.control_url = self.base_url + control.PREFIX
        self._thread: threading.Thread | None = None

    def clock(self) -> float:
        """Emulator time in seconds (wall clock plus /__control/clock/advance offsets)."""
        return time.time() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        self._clock_offset += seconds

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def start(self) -> "Emulator":
        """Serves on a daemon thread; returns self."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="b2emu", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        """Stops serving and closes the listener and the store."""
        if self._thread:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()
        self.store.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
