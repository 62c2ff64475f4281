"""Tests of the B2 emulator (tests/support/b2emu) that coffer's B2 backend will be tested against.

Real clients only: rclone 1.60 (Debian package) runs a copy/list/cat/delete round trip against the emulator's
command-line form, and a raw stdlib HTTP client (b2emu/testclient.py) checks auth, uploads, ranges, listing,
versions, token expiry, every fault kind and the transaction counters against the in-process form.
COFFER_BIN is not used. Runs standalone: python3 tests/tools/b2emu_test.py
"""

from __future__ import annotations

import http.client
import json
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SUPPORT = os.path.normpath(os.path.join(HERE, "..", "support"))
sys.path.insert(0, SUPPORT)

from b2emu import start  # noqa: E402
from b2emu.testclient import ACCOUNT, ACCOUNTS, MASTER, B2, Control, EmuCase, request, sha1, wait_for  # noqa: E402

B2EMU_PY = os.path.join(SUPPORT, "b2emu", "b2emu.py")
CONNECTION_FAULTS = (ConnectionError, http.client.HTTPException)


class RcloneTest(unittest.TestCase):
    """rclone 1.60 against the command-line emulator, restarted on the same state dir halfway."""

    def setUp(self):
        self.rclone = shutil.which("rclone")
        self.assertIsNotNone(self.rclone, "rclone is missing: run scripts/install-deps.sh")
        self.tmp = tempfile.mkdtemp(prefix="b2emu-rclone-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.accounts = os.path.join(self.tmp, "accounts.json")
        acc = json.loads(json.dumps(ACCOUNTS))
        acc["accounts"][0]["keys"] = [{"keyId": "key-docs", "key": "s3cret-docs-key", "bucketName": "bucket-one",
                                       "namePrefix": "dir/"}]
        with open(self.accounts, "w") as f:
            json.dump(acc, f)

    def start_cli(self) -> dict:
        proc = subprocess.Popen([sys.executable, B2EMU_PY, "--port", "0", "--state-dir",
                                 os.path.join(self.tmp, "state"), "--accounts", self.accounts],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (proc.terminate(), proc.wait(10), proc.stdout.close(), proc.stderr.close()))
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        line = proc.stdout.readline() if ready else ""
        self.assertTrue(line, f"emulator did not start: {proc.stderr.read() if proc.poll() is not None else ''}")
        info = json.loads(line)
        self.assertEqual(info["api_url"], f"http://127.0.0.1:{info['port']}")
        self.proc = proc
        return info

    def rclone_run(self, info: dict, *args, key=(ACCOUNT, MASTER), check=True) -> subprocess.CompletedProcess:
        env = dict(os.environ, RCLONE_CONFIG_EMU_TYPE="b2", RCLONE_CONFIG_EMU_ACCOUNT=key[0],
                   RCLONE_CONFIG_EMU_KEY=key[1], RCLONE_CONFIG_EMU_ENDPOINT=info["api_url"])
        cmd = [self.rclone, "--config", "/dev/null", "--low-level-retries", "2", "--retries", "1", *args]
        p = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
        if check:
            self.assertEqual(p.returncode, 0, f"{args}: {p.stderr.decode(errors='replace')[-3000:]}")
        return p

    def lsjson(self, info, remote: str) -> dict:
        out = self.rclone_run(info, "lsjson", "-R", "--files-only", remote).stdout
        return {e["Path"]: e["Size"] for e in json.loads(out)}

    def test_round_trip(self):
        rng = random.Random(1)
        src = os.path.join(self.tmp, "src")
        os.makedirs(os.path.join(src, "sub"))
        files = {"small.bin": rng.randbytes(3000), "sub/space and+plus%.txt": b"hello b2\n", "empty": b"",
                 "big.bin": rng.randbytes(12 * 1024 * 1024 + 123)}  # > cutoff: the large-file path
        for name, data in files.items():
            with open(os.path.join(src, name), "wb") as f:
                f.write(data)
        info = self.start_cli()
        ctl = Control(info["control_url"])
        self.rclone_run(info, "copy", src, "emu:bucket-one/dir", "--b2-upload-cutoff", "5M", "--b2-chunk-size", "5M")
        ops = [e["op"] for e in ctl.get("/log")]
        for op in ("b2_authorize_account", "b2_list_buckets", "b2_get_upload_url", "b2_upload_file",
                   "b2_start_large_file", "b2_get_upload_part_url", "b2_finish_large_file"):
            self.assertIn(op, ops)
        self.assertEqual(ops.count("b2_upload_part"), 3)
        self.assertEqual(self.lsjson(info, "emu:bucket-one"), {"dir/" + n: len(d) for n, d in files.items()})
        self.check_download_and_delete(info, ctl, files)
        self.proc.terminate()
        self.proc.wait(10)
        info = self.start_cli()  # same state dir, new port: the data is still there
        self.assertEqual(len(self.lsjson(info, "emu:bucket-one")), 3)
        whole = self.rclone_run(info, "cat", "emu:bucket-one/dir/big.bin").stdout
        self.assertEqual(sha1(whole), sha1(files["big.bin"]))
        restricted = ("key-docs", "s3cret-docs-key")
        listed = self.rclone_run(info, "lsf", "-R", "emu:bucket-one/dir", key=restricted).stdout.decode()
        self.assertIn("sub/space and+plus%.txt", listed.splitlines())
        self.assertNotEqual(self.rclone_run(info, "lsf", "emu:bucket-two", key=restricted, check=False).returncode, 0)

    def check_download_and_delete(self, info: dict, ctl: Control, files: dict):
        down = os.path.join(self.tmp, "down")
        self.rclone_run(info, "copy", "emu:bucket-one/dir", down)
        for name, data in files.items():
            with open(os.path.join(down, name), "rb") as f:
                self.assertEqual(f.read(), data, name)
        part = self.rclone_run(info, "cat", "--offset", "5000000", "--count", "70000", "emu:bucket-one/dir/big.bin")
        self.assertEqual(part.stdout, files["big.bin"][5000000:5070000])
        self.assertIn(206, [e["status"] for e in ctl.get("/log")])

        self.rclone_run(info, "delete", "emu:bucket-one/dir", "--include", "small.bin")
        self.assertNotIn("dir/small.bin", self.lsjson(info, "emu:bucket-one"))
        self.assertIn("b2_hide_file", [e["op"] for e in ctl.get("/log")])
        versions = self.rclone_run(info, "lsf", "-R", "--b2-versions", "emu:bucket-one/dir").stdout.decode()
        self.assertRegex(versions, r"small-v\d{4}-\d\d-\d\d-\d{6}-\d{3}\.bin")


class AuthTest(EmuCase):
    def test_bad_key_is_401_with_b2_error_json(self):
        self.assertB2Error(B2(self.emu.base_url, ACCOUNT, "wrong-key").authorize(), 401, "unauthorized")
        self.assertB2Error(B2(self.emu.base_url, "no-such-key", "x").authorize(), 401, "unauthorized")
        r = request(f"{self.emu.base_url}/b2api/v3/b2_authorize_account")
        self.assertB2Error(r, 401, "unauthorized")
        self.assertB2Error(self.b2.call("b2_list_buckets", token="garbage", accountId=ACCOUNT), 401, "bad_auth_token")
        r = request(f"{self.emu.base_url}/b2api/v3/b2_list_buckets", "POST", b"{}")
        self.assertB2Error(r, 401, "missing_auth_token")

    def test_response_shapes_per_version(self):
        for version in (1, 2):
            auth = self.client(version=version).auth
            self.assertEqual(auth["apiUrl"], self.emu.base_url)
            self.assertEqual(auth["downloadUrl"], self.emu.base_url)
            self.assertIn("writeFiles", auth["allowed"]["capabilities"])
            self.assertEqual(auth["absoluteMinimumPartSize"], 5000000)
            self.assertIn("minimumPartSize", auth)
        storage = self.client(version=3).auth["apiInfo"]["storageApi"]
        self.assertEqual((storage["apiUrl"], storage["bucketId"], storage["infoType"]),
                         (self.emu.base_url, None, "storageApi"))
        self.assertEqual(storage["recommendedPartSize"], 100000000)
        allowed = self.client(version=4).auth["apiInfo"]["storageApi"]["allowed"]
        self.assertIsNone(allowed["buckets"])
        self.assertIn("listFiles", allowed["capabilities"])

    def test_restricted_key_sees_only_its_bucket_and_prefix(self):
        key = self.ctl.post("/keys", {"accountId": ACCOUNT, "bucketName": "bucket-two", "namePrefix": "docs/",
                                      "capabilities": ["listBuckets", "listFiles", "readFiles", "writeFiles"]})
        r3 = self.client(key["keyId"], key["key"])
        storage = r3.auth["apiInfo"]["storageApi"]
        self.assertEqual((storage["bucketName"], storage["namePrefix"]), ("bucket-two", "docs/"))
        self.assertEqual(self.client(key["keyId"], key["key"], 1).auth["allowed"]["bucketName"], "bucket-two")
        self.assertB2Error(r3.call("b2_list_buckets", accountId=ACCOUNT), 401, "unauthorized")
        self.assertB2Error(r3.call("b2_list_buckets", accountId=ACCOUNT, bucketName="bucket-one"), 401,
                           "unauthorized")
        two = r3.bucket_id("bucket-two")
        v1 = self.client(key["keyId"], key["key"], 1).ok("b2_list_buckets", accountId=ACCOUNT)
        self.assertEqual([b["bucketName"] for b in v1["buckets"]], ["bucket-two"])
        self.assertB2Error(r3.call("b2_list_file_names", bucketId=self.bid, prefix="docs/"), 401, "unauthorized")
        self.assertB2Error(r3.call("b2_list_file_names", bucketId=two), 401, "unauthorized")
        self.assertEqual(r3.put(two, "docs/a.txt", b"doc")["fileName"], "docs/a.txt")
        self.assertB2Error(r3.upload(two, "other/a.txt", b"x"), 401, "unauthorized")
        self.assertEqual([f["fileName"] for f in r3.ok("b2_list_file_names", bucketId=two, prefix="docs/")["files"]],
                         ["docs/a.txt"])
        self.b2.put(two, "secret/x", b"not for you")
        self.assertEqual(r3.download("bucket-two", "docs/a.txt").body, b"doc")
        self.assertB2Error(r3.download("bucket-two", "secret/x"), 401, "unauthorized")
        fid = r3.ok("b2_list_file_names", bucketId=two, prefix="docs/")["files"][0]["fileId"]
        self.assertB2Error(r3.call("b2_delete_file_version", fileName="docs/a.txt", fileId=fid), 401, "unauthorized")

    def test_multi_bucket_key_needs_v4(self):
        key = self.ctl.post("/keys", {"accountId": ACCOUNT, "bucketNames": ["bucket-one", "bucket-two"]})
        self.assertB2Error(B2(self.emu.base_url, key["keyId"], key["key"], 3).authorize(), 401, "unsupported")
        buckets = self.client(key["keyId"], key["key"], 4).auth["apiInfo"]["storageApi"]["allowed"]["buckets"]
        self.assertEqual(sorted(b["name"] for b in buckets), ["bucket-one", "bucket-two"])


class UploadTest(EmuCase):
    def test_sha1_mismatch_is_400_and_stores_nothing(self):
        r = self.b2.upload(self.bid, self.pre + "x", b"hello", sha1=sha1(b"hellO"))
        self.assertB2Error(r, 400, "bad_request")
        self.assertIn("sha1", r.json()["message"].lower())
        self.assertEqual(self.names(self.pre, versions=True), [])

    def test_sha1_modes(self):
        data = b"hello"
        self.assertEqual(self.b2.put(self.bid, self.pre + "a", data)["contentSha1"],
                         "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d")
        r = self.b2.upload(self.bid, self.pre + "b", data + sha1(data).encode(), sha1="hex_digits_at_end")
        self.assertEqual((r.status, r.json()["contentLength"], r.json()["contentSha1"]), (200, 5, sha1(data)))
        r = self.b2.upload(self.bid, self.pre + "c", data, sha1="do_not_verify")
        self.assertEqual(r.json()["contentSha1"], "unverified:" + sha1(data))
        self.assertB2Error(self.b2.upload(self.bid, self.pre + "d", data, sha1="1234"), 400, "bad_request")
        self.assertEqual(self.b2.download("bucket-one", self.pre + "b").body, data)

    def test_names_info_headers_and_rules(self):
        name = self.pre + "sp ace+plus%/ü€😀#?.bin"
        r = self.b2.upload(self.bid, name, b"x", headers={"X-Bz-Info-Author": "J%C3%BCrgen",
                                                           "X-Bz-Info-b2-content-disposition": "inline"})
        self.assertEqual((r.status, r.json()["fileName"]), (200, name), r)
        self.assertEqual(r.json()["fileInfo"], {"author": "Jürgen", "b2-content-disposition": "inline"})
        d = self.b2.download("bucket-one", name)
        self.assertEqual((d.headers["X-Bz-Info-author"], d.headers["Content-Disposition"]), ("J%C3%BCrgen", "inline"))
        encoded = "sp%20ace%2Bplus%25/%C3%BC%E2%82%AC%F0%9F%98%80%23%3F.bin"
        self.assertEqual(d.headers["X-Bz-File-Name"], self.pre + encoded)
        r = self.b2.upload(self.bid, "ignored", b"y", headers={"X-Bz-File-Name": self.pre + "a+b%2Bc"})
        self.assertEqual(r.json()["fileName"], self.pre + "a b+c")  # '+' means space
        for bad in ("/lead", self.pre + "trail/", self.pre + "a//b", self.pre + "ctl\x01"):
            self.assertB2Error(self.b2.upload(self.bid, bad, b"z"), 400, "bad_request")
        self.assertB2Error(self.b2.upload(self.bid, self.pre + "f", b"z", headers={"Content-Disposition": "x"}),
                           400, "bad_request")
        many = {f"X-Bz-Info-k{i}": "v" for i in range(11)}
        self.assertB2Error(self.b2.upload(self.bid, self.pre + "g", b"z", headers=many), 400, "bad_request")
        self.assertB2Error(self.b2.upload(self.bid, self.pre + "h", b"z", headers={"X-Bz-Info-k": "v" * 7000}),
                           400, "bad_request")

    def test_one_upload_per_token_at_a_time(self):
        url = self.b2.upload_url(self.bid)
        data = b"a" * 10000
        host, port = self.emu.base_url.rsplit(":", 1)
        first = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
        first.putrequest("POST", url["uploadUrl"].split(port, 1)[1])
        for k, v in {"Authorization": url["authorizationToken"], "X-Bz-File-Name": self.pre + "first",
                     "Content-Type": "b2/x-auto", "X-Bz-Content-Sha1": sha1(data),
                     "Content-Length": str(len(data))}.items():
            first.putheader(k, v)
        first.endheaders(data[:4000])
        wait_for(lambda: self.ctl.get("/state")["uploads_in_flight"] == 1, "the first upload to start")
        second = self.b2.upload(self.bid, self.pre + "second", b"2", url=url)
        self.assertB2Error(second, 400, "bad_request")
        self.assertIn("more than one upload using auth token", second.json()["message"])
        first.send(data[4000:])
        resp = first.getresponse()
        self.assertEqual((resp.status, json.loads(resp.read())["contentLength"]), (200, 10000))
        first.close()
        self.assertEqual(self.b2.upload(self.bid, self.pre + "third", b"3", url=url).status, 200)

    def test_upload_url_errors(self):
        url = self.b2.upload_url(self.bid)
        self.assertB2Error(self.b2.upload(self.bid, self.pre + "a", b"a", url=dict(url, authorizationToken="bad")),
                           401, "bad_auth_token")
        self.assertB2Error(self.b2.call("b2_get_upload_url", bucketId="nope"), 400, "bad_bucket_id")


class DownloadTest(EmuCase):
    def setUp(self):
        super().setUp()
        self.data = random.Random(2).randbytes(1000)
        self.old = self.b2.put(self.bid, self.pre + "f", b"old version")
        self.file = self.b2.put(self.bid, self.pre + "f", self.data)
        self.b2.put(self.bid, self.pre + "empty", b"")

    def test_ranges(self):
        name = self.pre + "f"
        cases = [("bytes=10-19", 206, "bytes 10-19/1000", self.data[10:20]),
                 ("bytes=0-", 200, None, self.data), ("bytes=-10", 206, "bytes 990-999/1000", self.data[-10:]),
                 ("bytes=990-5000", 206, "bytes 990-999/1000", self.data[990:]), ("bytes=abc", 200, None, self.data)]
        for rng, status, content_range, body in cases:
            r = self.b2.download("bucket-one", name, rng)
            self.assertEqual((r.status, r.headers["Content-Range"], r.body), (status, content_range, body), rng)
            self.assertEqual(r.headers["X-Bz-Content-Sha1"], sha1(self.data))
            self.assertEqual(r.headers["Content-Length"], str(len(body)))
        self.assertB2Error(self.b2.download("bucket-one", name, "bytes=1000-"), 416, "range_not_satisfiable")
        self.assertB2Error(self.b2.download("bucket-one", self.pre + "empty", "bytes=0-0"), 416,
                           "range_not_satisfiable")
        self.assertEqual(self.b2.download("bucket-one", self.pre + "empty").body, b"")

    def test_headers_head_and_by_id(self):
        r = self.b2.download("bucket-one", self.pre + "f", method="HEAD")
        self.assertEqual((r.status, r.body, r.headers["Content-Length"]), (200, b"", "1000"))
        self.assertEqual(r.headers["X-Bz-File-Id"], self.file["fileId"])
        self.assertEqual(r.headers["X-Bz-Upload-Timestamp"], str(self.file["uploadTimestamp"]))
        self.assertEqual(r.headers["Accept-Ranges"], "bytes")
        missing = self.b2.download("bucket-one", self.pre + "nope", method="HEAD")
        self.assertEqual((missing.status, missing.body), (404, b""))
        self.assertB2Error(self.b2.download("bucket-one", self.pre + "nope"), 404, "not_found")
        self.assertEqual(self.b2.download_by_id(self.old["fileId"]).body, b"old version")
        self.assertEqual(self.b2.download_by_id(self.file["fileId"], "bytes=1-2").body, self.data[1:3])

    def test_private_needs_token_public_does_not(self):
        r = request(f"{self.emu.base_url}/file/bucket-one/{self.pre}f")
        self.assertB2Error(r, 401, "missing_auth_token")
        self.ctl.post("/buckets", {"accountId": ACCOUNT, "bucketName": "public-bucket", "bucketType": "allPublic"})
        self.b2.put(self.b2.bucket_id("public-bucket"), "p.txt", b"public")
        self.assertEqual(request(f"{self.emu.base_url}/file/public-bucket/p.txt").body, b"public")


class ListTest(EmuCase):
    def test_pagination_order_prefix_delimiter(self):
        names = [self.pre + n for n in ["f%02d" % i for i in range(10)] + ["sub/a", "sub/b", "é", "😀", "a-b", "a0"]]
        for n in reversed(names):
            self.b2.put(self.bid, n, n.encode())
        self.b2.put(self.bid, self.pre[:-1] + "-sibling", b"outside the prefix")
        files, pages = self.b2.list_all("b2_list_file_names", self.bid, prefix=self.pre, maxFileCount=3)
        self.assertEqual([f["fileName"] for f in files], sorted(names, key=lambda s: s.encode()))
        self.assertEqual(pages, 6)
        files, _ = self.b2.list_all("b2_list_file_names", self.bid, prefix=self.pre, delimiter="/", maxFileCount=2)
        entries = [(f["fileName"][len(self.pre):], f["action"]) for f in files]
        self.assertIn(("sub/", "folder"), entries)
        self.assertEqual(len(entries), 15)
        page = self.b2.ok("b2_list_file_names", bucketId=self.bid, prefix=self.pre, startFileName=self.pre + "f05",
                          maxFileCount=1)
        self.assertEqual((page["files"][0]["fileName"], page["nextFileName"]), (self.pre + "f05", self.pre + "f06"))
        self.assertB2Error(self.b2.call("b2_list_file_names", bucketId=self.bid, maxFileCount=10001), 400,
                           "out_of_range")

    def test_version_pagination_with_file_ids(self):
        ids = [self.b2.put(self.bid, self.pre + "x", b"%d" % i)["fileId"] for i in range(5)]
        ids += [self.b2.put(self.bid, self.pre + "y", b"y")["fileId"]]
        files, pages = self.b2.list_all("b2_list_file_versions", self.bid, prefix=self.pre, maxFileCount=2)
        self.assertEqual([f["fileId"] for f in files], ids[4::-1] + ids[5:])
        self.assertEqual(pages, 3)


class VersionsTest(EmuCase):
    def test_versions_hide_and_delete(self):
        name = self.pre + "a"
        v1, v2 = self.b2.put(self.bid, name, b"one"), self.b2.put(self.bid, name, b"two")
        hide = self.b2.ok("b2_hide_file", bucketId=self.bid, fileName=name)
        self.assertEqual((hide["action"], hide["contentType"]), ("hide", "application/x-bz-hide-marker"))
        self.assertEqual(self.names(self.pre), [])
        self.assertEqual(self.names(self.pre, versions=True), [(name, "hide"), (name, "upload"), (name, "upload")])
        self.assertB2Error(self.b2.download("bucket-one", name), 404, "not_found")
        self.assertB2Error(self.b2.call("b2_hide_file", bucketId=self.bid, fileName=name), 400, "already_hidden")
        self.assertB2Error(self.b2.call("b2_hide_file", bucketId=self.bid, fileName=name + "x"), 400, "no_such_file")
        self.b2.ok("b2_delete_file_version", fileName=name, fileId=hide["fileId"])  # un-hides
        self.assertEqual(self.b2.download("bucket-one", name).body, b"two")
        self.b2.ok("b2_delete_file_version", fileName=name, fileId=v2["fileId"])  # exposes v1
        self.assertEqual(self.b2.download("bucket-one", name).body, b"one")
        for fname, fid in ((name + "x", v1["fileId"]), (name, v2["fileId"])):
            self.assertB2Error(self.b2.call("b2_delete_file_version", fileName=fname, fileId=fid), 400,
                               "file_not_present")
        info = self.b2.ok("b2_get_file_info", fileId=v1["fileId"])
        self.assertEqual((info["fileName"], info["contentLength"], info["contentSha1"]), (name, 3, sha1(b"one")))
        self.assertB2Error(self.b2.call("b2_get_file_info", fileId=v2["fileId"]), 404, "not_found")

    def test_large_file(self):
        self.ctl.settings(absolute_minimum_part_size=1000)
        parts = [os.urandom(1500), os.urandom(1200), b"tail"]
        start = self.b2.ok("b2_start_large_file", bucketId=self.bid, fileName=self.pre + "big",
                           contentType="b2/x-auto", fileInfo={"large_file_sha1": sha1(b"".join(parts))})
        self.assertEqual(self.names(self.pre, versions=True), [(self.pre + "big", "start")])
        url = self.b2.ok("b2_get_upload_part_url", fileId=start["fileId"])
        for i, p in enumerate(parts, 1):
            r = request(url["uploadUrl"], "POST", p, {"Authorization": url["authorizationToken"],
                                                      "X-Bz-Part-Number": str(i), "X-Bz-Content-Sha1": sha1(p)})
            self.assertEqual(r.json()["contentSha1"], sha1(p))
        shas = [sha1(p) for p in parts]
        self.assertB2Error(self.b2.call("b2_finish_large_file", fileId=start["fileId"], partSha1Array=shas[::-1]),
                           400, "part_sha1_mismatch")
        self.assertB2Error(self.b2.call("b2_finish_large_file", fileId=start["fileId"], partSha1Array=shas[:2]),
                           400, "bad_request")
        done = self.b2.ok("b2_finish_large_file", fileId=start["fileId"], partSha1Array=shas)
        self.assertEqual((done["action"], done["contentSha1"], done["contentLength"]), ("upload", "none", 2704))
        r = self.b2.download("bucket-one", self.pre + "big")
        self.assertEqual((r.body, r.headers["X-Bz-Content-Sha1"]), (b"".join(parts), "none"))
        self.assertEqual(r.headers["X-Bz-Info-large_file_sha1"], sha1(b"".join(parts)))
        other = self.b2.ok("b2_start_large_file", bucketId=self.bid, fileName=self.pre + "gone",
                           contentType="text/plain")
        self.assertEqual(len(self.b2.ok("b2_list_unfinished_large_files", bucketId=self.bid)["files"]), 1)
        self.b2.ok("b2_cancel_large_file", fileId=other["fileId"])
        self.assertEqual(self.names(self.pre, versions=True), [(self.pre + "big", "upload")])


class TokenTest(EmuCase):
    def test_expire_all_then_reauthorize(self):
        url = self.b2.upload_url(self.bid)
        self.assertGreaterEqual(self.ctl.post("/tokens/expire", {"token": "all"})["expired"], 2)
        self.assertB2Error(self.b2.call("b2_list_buckets", accountId=ACCOUNT), 401, "expired_auth_token")
        self.assertB2Error(self.b2.upload(self.bid, self.pre + "a", b"a", url=url), 401, "expired_auth_token")
        self.assertEqual(self.b2.authorize().status, 200)
        self.assertEqual(self.b2.put(self.bid, self.pre + "a", b"a")["contentLength"], 1)

    def test_configurable_lifetime(self):
        self.ctl.settings(token_ttl_s=60)
        b2 = self.client()
        self.ctl.post("/clock/advance", {"seconds": 30})
        self.assertEqual(b2.call("b2_list_buckets", accountId=ACCOUNT).status, 200)
        self.ctl.post("/clock/advance", {"seconds": 31})
        self.assertB2Error(b2.call("b2_list_buckets", accountId=ACCOUNT), 401, "expired_auth_token")
        self.assertEqual(self.client().call("b2_list_buckets", accountId=ACCOUNT).status, 200)


class FaultTest(EmuCase):
    def test_503_for_exactly_k_uploads_then_success(self):
        rule = self.ctl.fault("b2_upload_file", {"type": "error", "status": 503}, count=2)
        urls = [self.b2.upload_url(self.bid) for _ in range(3)]
        results = [self.b2.upload(self.bid, self.pre + "a", b"a", url=u) for u in urls]
        for r in results[:2]:
            self.assertB2Error(r, 503, "service_unavailable")
        self.assertEqual(results[2].status, 200)
        self.assertB2Error(self.b2.upload(self.bid, self.pre + "a", b"a", url=urls[0]), 401, "bad_auth_token")
        described = {r["id"]: r for r in self.ctl.get("/faults")}[rule]
        self.assertEqual((described["fired"], described["spent"]), (2, True))

    def test_percentage_and_skip(self):
        self.ctl.fault("upload", {"type": "error", "status": 503}, count=None, probability=0.5, seed=7)
        failed = sum(self.b2.upload(self.bid, self.pre + "p", b"p").status == 503 for _ in range(20))
        self.assertTrue(0 < failed < 20, failed)
        self.ctl.reset()
        self.ctl.fault("b2_list_buckets", {"type": "error", "status": 500}, skip=1, count=1)
        statuses = [self.b2.call("b2_list_buckets", accountId=ACCOUNT).status for _ in range(3)]
        self.assertEqual(statuses, [200, 500, 200])

    def test_429_with_retry_after(self):
        self.ctl.fault("list", {"type": "error", "status": 429, "retry_after": 3})
        r = self.b2.call("b2_list_file_names", bucketId=self.bid)
        self.assertB2Error(r, 429, "too_many_requests")
        self.assertEqual(r.headers["Retry-After"], "3")
        self.assertEqual(self.b2.call("b2_list_file_names", bucketId=self.bid).status, 200)

    def test_expire_token_action(self):
        self.ctl.fault("b2_list_buckets", {"type": "expire_token"})
        self.assertB2Error(self.b2.call("b2_list_buckets", accountId=ACCOUNT), 401, "expired_auth_token")
        self.assertB2Error(self.b2.call("b2_list_file_names", bucketId=self.bid), 401, "expired_auth_token")
        self.assertEqual(self.b2.authorize().status, 200)

    def test_connection_reset_mid_upload_body(self):
        self.ctl.fault("b2_upload_file", {"type": "reset", "when": "mid_request_body", "after_bytes": 1000})
        with self.assertRaises(CONNECTION_FAULTS):
            self.b2.upload(self.bid, self.pre + "r", os.urandom(200000))
        self.assertEqual(self.names(self.pre, versions=True), [])
        self.assertEqual(self.b2.upload(self.bid, self.pre + "r", b"again").status, 200)

    def test_reset_and_truncation_of_downloads(self):
        data = os.urandom(100000)
        self.b2.put(self.bid, self.pre + "d", data)
        self.ctl.fault("download", {"type": "reset", "when": "mid_response_body", "after_bytes": 500})
        with self.assertRaises(CONNECTION_FAULTS):
            self.b2.download("bucket-one", self.pre + "d")
        self.ctl.fault("download", {"type": "truncate", "after_bytes": 1000})
        with self.assertRaises(http.client.IncompleteRead) as cm:
            self.b2.download("bucket-one", self.pre + "d")
        self.assertEqual((len(cm.exception.partial), cm.exception.expected), (1000, 99000))
        self.assertEqual(self.b2.download("bucket-one", self.pre + "d").body, data)

    def test_error_after_store_and_corruption(self):
        self.ctl.fault("b2_upload_file", {"type": "error", "status": 503, "when": "after"})
        self.assertEqual(self.b2.upload(self.bid, self.pre + "amb", b"stored anyway").status, 503)
        self.assertEqual(self.names(self.pre), [(self.pre + "amb", "upload")])
        self.ctl.fault("b2_upload_file", {"type": "corrupt", "offset": 3})
        self.assertB2Error(self.b2.upload(self.bid, self.pre + "c", b"payload"), 400, "bad_request")
        self.ctl.fault("download", {"type": "corrupt", "offset": 0})
        r = self.b2.download("bucket-one", self.pre + "amb")
        self.assertNotEqual(sha1(r.body), r.headers["X-Bz-Content-Sha1"])

    def test_latency_and_bandwidth(self):
        rule = self.ctl.fault("b2_list_buckets", {"type": "delay", "ms": 300}, count=None)
        t0 = time.monotonic()
        self.b2.ok("b2_list_buckets", accountId=ACCOUNT)
        self.assertGreaterEqual(time.monotonic() - t0, 0.25)
        self.ctl._do("DELETE", f"/faults/{rule}")
        self.b2.put(self.bid, self.pre + "bw", os.urandom(100000))
        self.ctl.fault("download", {"type": "throttle", "bytes_per_sec": 200000}, count=None)
        t0 = time.monotonic()
        self.assertEqual(len(self.b2.download("bucket-one", self.pre + "bw").body), 100000)
        self.assertGreaterEqual(time.monotonic() - t0, 0.35)

    def test_listing_lag(self):
        self.ctl.settings(list_lag_s=30)
        self.b2.put(self.bid, self.pre + "new", b"fresh")
        self.assertEqual(self.names(self.pre), [])
        self.assertEqual(self.b2.download("bucket-one", self.pre + "new").body, b"fresh")
        self.ctl.post("/clock/advance", {"seconds": 31})
        self.assertEqual(self.names(self.pre), [(self.pre + "new", "upload")])

    def test_proxy_error_body_and_short_pages(self):
        self.ctl.fault("b2_get_upload_url", {"type": "error", "status": 502, "body": "<html>Bad Gateway</html>"})
        r = self.b2.call("b2_get_upload_url", bucketId=self.bid)
        self.assertEqual((r.status, r.headers["Content-Type"], r.body), (502, "text/html", b"<html>Bad Gateway</html>"))
        for i in range(5):
            self.b2.put(self.bid, f"{self.pre}{i}", b"x")
        self.ctl.settings(list_page_cap=2)
        page = self.b2.ok("b2_list_file_names", bucketId=self.bid, prefix=self.pre, maxFileCount=100)
        self.assertEqual((len(page["files"]), page["nextFileName"]), (2, self.pre + "2"))
        self.assertEqual(self.b2.list_all("b2_list_file_names", self.bid, prefix=self.pre)[1], 3)

    def test_match_on_name_prefix(self):
        self.ctl.fault("upload", {"type": "error", "status": 500}, match={"name_prefix": self.pre + "bad/"},
                       count=None)
        self.assertEqual(self.b2.upload(self.bid, self.pre + "good/x", b"x").status, 200)
        self.assertB2Error(self.b2.upload(self.bid, self.pre + "bad/x", b"x"), 500, "internal_error")


class CounterTest(EmuCase):
    def test_calls_classes_and_bytes(self):
        self.ctl.post("/counters/reset")
        b2 = self.client()  # C: authorize
        bid = b2.bucket_id("bucket-one")  # C
        url = b2.upload_url(bid)  # A
        sizes = [10, 200, 3000]
        ids = [b2.upload(bid, self.pre + f"f{i}", os.urandom(n), url=url).json()["fileId"] for i, n in
               enumerate(sizes)]  # A x3
        self.assertEqual(len(b2.download("bucket-one", self.pre + "f2").body), 3000)  # B
        b2.download("bucket-one", self.pre + "f1", "bytes=0-99")  # B, 100 bytes
        b2.ok("b2_get_file_info", fileId=ids[0])  # B
        b2.ok("b2_hide_file", bucketId=bid, fileName=self.pre + "f0")  # A
        b2.call("b2_list_buckets", token="bad", accountId=ACCOUNT)  # failed: counted as a call, not a class
        for i in range(2500):
            self.emu.store.add_file(bid, f"{self.pre}bulk/{i:05d}", "upload", 0, sha1(b""), "text/plain", {},
                                    self.emu.now_ms(), b"")
        self.assertEqual(len(b2.ok("b2_list_file_names", bucketId=bid, prefix=self.pre,
                                   maxFileCount=10000)["files"]), 2502)  # C x3 (per 1000 items)
        b2.ok("b2_list_file_versions", bucketId=bid, prefix=self.pre, maxFileCount=5)  # C x1
        c = self.ctl.counters()
        self.assertEqual(c["classes"], {"A": 5, "B": 3, "C": 6})
        self.assertEqual(c["calls"]["b2_upload_file"], 3)
        self.assertEqual(c["calls"]["b2_list_buckets"], 2)
        self.assertEqual(c["status"]["401"], 1)
        self.assertEqual((c["upload_bytes"], c["download_bytes"]), (sum(sizes), 3100))
        self.assertGreaterEqual(c["stored_bytes"], sum(sizes))


class PersistenceTest(unittest.TestCase):
    def test_restart_keeps_data_not_tokens(self):
        state = tempfile.mkdtemp(prefix="b2emu-state-")
        self.addCleanup(shutil.rmtree, state, True)
        emu = start(state_dir=state, accounts=ACCOUNTS)
        b2 = B2(emu.base_url, ACCOUNT, MASTER)
        b2.authorize()
        data = os.urandom(5000)
        fid = b2.put(b2.bucket_id("bucket-one"), "kept.bin", data)["fileId"]
        old_token = b2.token
        emu.stop()
        emu = start(state_dir=state)
        self.addCleanup(emu.stop)
        b2.base_url = emu.base_url
        r = b2.call("b2_list_buckets", token=old_token, accountId=ACCOUNT)
        self.assertEqual((r.status, r.json()["code"]), (401, "bad_auth_token"))
        self.assertEqual(b2.authorize().status, 200)
        self.assertEqual(b2.download("bucket-one", "kept.bin").body, data)
        self.assertEqual(b2.download_by_id(fid).headers["X-Bz-Content-Sha1"], sha1(data))


if __name__ == "__main__":
    unittest.main(verbosity=2)
