"""b2emu: a loopback Backblaze B2 native-API emulator (API v1..v4) for tests, Python 3.11 stdlib only.

Command line:
    python3 tests/support/b2emu/b2emu.py --port 0 --state-dir DIR [--accounts FILE] [--host 127.0.0.1] [-v]
prints one JSON line when ready, then serves until SIGTERM/SIGINT:
    {"port": 41234, "api_url": "http://127.0.0.1:41234", "control_url": "http://127.0.0.1:41234/__control",
     "accounts": [{"accountId": ..., "keyIds": [...]}]}   (secrets are never printed: put masterKey and
                                                          key into the file, or create keys via /__control/)
Without --state-dir everything is kept in memory. --accounts FILE is JSON:
    {"accounts": [{"accountId": "acc1", "masterKey": "secret",
                   "buckets": [{"bucketName": "bucket-one", "bucketType": "allPrivate"}],
                   "keys": [{"keyId": "k1", "key": "s1", "capabilities": ["listFiles", "readFiles"],
                             "bucketName": "bucket-one", "namePrefix": "photos/"}]}]}
(capabilities default to all; bucketNames: [...] makes a multi-bucket key, usable only with v4 authorize).

In-process (Python tests):
    sys.path.insert(0, "<source>/tests/support"); from b2emu import start
    emu = start(state_dir=None, accounts={...})    # serving on a daemon thread, emu.base_url, emu.control_url
    ...; emu.stop()

Clients point their B2 endpoint at api_url (rclone: RCLONE_CONFIG_X_ENDPOINT) and authorize with an accountId +
masterKey or an application key. apiUrl, downloadUrl and the upload URLs all point at the same port.
Faults, settings, counters, the request log and the stored state are driven through /__control/ (control.py;
the rule language is in faults.py). Example: 503 for the next 2 uploads, then success:
    POST /__control/faults {"match": {"op": "b2_upload_file"}, "action": {"type": "error", "status": 503},
                            "count": 2}
Modelled: authorize (v1/v2 flat, v3 apiInfo.storageApi, v4 allowed.buckets; master and application keys with
capabilities, bucket and namePrefix restrictions), list/create/delete bucket, get_upload_url (one upload per
token at a time, token dead after an injected 5xx/408), upload_file (percent-decoded names incl. '+' = space,
SHA-1 hex / hex_digits_at_end / do_not_verify, name and info rules), downloads by name and id (GET/HEAD, Range
incl. B2's quirks), list_file_names/versions (UTF-8 byte order, prefix, delimiter, paging), hide, delete
version, get_file_info, the large-file calls, token expiry (TTL setting, virtual clock), X-Bz-Test-Mode.
Not modelled: S3 API, TLS, several pods/ports, b2_copy_file/part, the keys API, download authorizations,
bucket updates/lifecycle rules, SSE, Object Lock, rate limits and caps (inject them as faults), notifications.
Tokens are not persisted (a restart answers 401 bad_auth_token to old ones); faults and settings neither.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

if __package__:
    from .server import Emulator
else:  # run as a script: make the package importable as b2emu
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    from b2emu.server import Emulator


def start(state_dir: str | None = None, port: int = 0, accounts: dict | None = None, host: str = "127.0.0.1",
          verbose: bool = False) -> Emulator:
    """Starts an emulator serving on a daemon thread; stop it with .stop()."""
    return Emulator(state_dir, host, port, accounts, verbose).start()


def _interrupt(*_):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Backblaze B2 native API emulator for tests")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0 = pick a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--state-dir", help="directory for persistent state (default: memory only)")
    parser.add_argument("--accounts", help="JSON file with accounts, buckets and keys to create")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    accounts = None
    if args.accounts:
        with open(args.accounts, encoding="utf-8") as f:
            accounts = json.load(f)
    emu = Emulator(args.state_dir, args.host, args.port, None, args.verbose)
    from b2emu import control  # noqa: E402 (same package as Emulator)

    loaded = control.load_accounts(emu, accounts) if accounts else []
    signal.signal(signal.SIGTERM, _interrupt)
    ids = [{"accountId": a["accountId"], "keyIds": [k["keyId"] for k in a["keys"]]} for a in loaded]
    print(json.dumps({"port": emu.port, "api_url": emu.base_url, "control_url": emu.control_url,
                      "accounts": ids}), flush=True)
    try:
        emu.serve_forever()
    except KeyboardInterrupt:
        pass
    emu.httpd.server_close()
    emu.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
