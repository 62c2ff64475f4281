"""Cost accounting end to end: against the B2 emulator over loopback HTTP, commands print one
usage line whose class counts equal the emulator's own counters; --json prints it as a JSON
line on stderr, and the JSON summaries of backup and restore carry it as a field; a local repository prints none; a malformed price table (COFFER_PRICE_TABLE or
--price-table) is one line and exit 1 before the command runs; `stats --cost` prices the
repository's files (local: summed here with os.walk) with the chosen table, over B2 with its own
calls."""
import json
import os
import re
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import b2_test  # noqa: E402
import e2e_support as E  # noqa: E402
from b2_test import B2Case, setUpModule, tearDownModule  # noqa: E402,F401

LINE = re.compile(rb"B2: ([\d,]+) class A, ([\d,]+) class B, ([\d,]+) class C calls; .* est\. \$[\d.]+ "
                  rb"\(prices of ([^)]+)\)")


def num(b: bytes) -> int:
    return int(b.replace(b",", b""))


class CostTest(B2Case):
    extra_env: dict = {}

    def env(self, *args, **kw) -> dict:
        return {**super().env(*args, **kw), **self.extra_env}

    def test_usage_line_matches_the_emulator(self):
        repo = self.base_repo()
        for args in (["snapshots"], ["check"], ["restore", "latest", "--target", self.ws.fresh("r")]):
            self.ctl.post("/counters/reset")
            res = self.ok(repo, *args)
            m = LINE.search(res.err)
            self.assertIsNotNone(m, res.describe())
            emu = self.ctl.counters()
            self.assertEqual((num(m[1]), num(m[2]), num(m[3])),
                             (emu["classes"]["A"], emu["classes"]["B"], emu["classes"]["C"]), emu)
            self.assertEqual(m[4], b"2026-09")

    def test_json_usage_is_a_json_line_on_stderr(self):
        repo = self.base_repo()
        self.ctl.post("/counters/reset")
        res = self.ok(repo, "--json", "snapshots")
        json.loads(res.out)
        lines = [json.loads(l) for l in res.err.splitlines() if l.startswith(b"{")]
        usage = [l for l in lines if l.get("message_type") == "backend_usage"]
        self.assertEqual(len(usage), 1, res.describe())
        emu = self.ctl.counters()
        self.assertEqual(usage[0]["backend_usage"]["class_c"], emu["classes"]["C"])

    def test_json_summaries_carry_the_usage(self):
        """backup and restore --json: the summary object has a backend_usage field with the calls and bytes up
        to the summary (all data moved by then; only the lock's release follows), the final line the rest."""
        repo = "b2:bucket-one:json-summary"
        self.ok(repo, "init")
        for args, moved in ((["backup", "src"], "bytes_up"),
                            (["restore", "latest", "--target", self.ws.fresh("r")], "bytes_down")):
            self.ctl.post("/counters/reset")
            res = self.ok(repo, "--json", *args)
            summary = [l for l in E.json_lines(res.out) if l.get("message_type") == "summary"]
            self.assertEqual(len(summary), 1, res.describe())
            usage = summary[0]["backend_usage"]
            final = [json.loads(l) for l in res.err.splitlines() if l.startswith(b"{")]
            final = [l["backend_usage"] for l in final if l.get("message_type") == "backend_usage"]
            self.assertEqual(len(final), 1, res.describe())
            emu = self.ctl.counters()
            self.assertEqual(final[0]["class_a"] + final[0]["class_b"] + final[0]["class_c"],
                             sum(emu["classes"].values()), emu)
            for cls in ("class_a", "class_b", "class_c"):
                self.assertLessEqual(usage[cls], final[0][cls], (usage, final))
            self.assertEqual(usage[moved], emu["upload_bytes" if moved == "bytes_up" else "download_bytes"])
            self.assertGreater(usage[moved], 1_500_000 * 12 // 2)
            self.assertEqual(usage["price_table_date"], "2026-09")
            # Egress is free up to 3x the stored data, which one run cannot see: it is an "up to".
            self.assertEqual(usage["egress_free_stored_multiple"], 3)
            self.assertAlmostEqual(usage["egress_up_to_usd"], usage["bytes_down"] / 1e9 * 0.01, places=9)
            self.assertEqual(usage["estimated_cost_usd"], 0.0)  # the calls are within the free ones
        res = self.ok(repo, "restore", "latest", "--target", self.ws.fresh("r"))
        self.assertRegex(res.err, rb"est\. \$0\.0000 \(prices of 2026-09\); downloads are free up to 3x the "
                                  rb"stored data, else up to \$0\.0\d\d\d more")
        res = self.ok(repo, "--json", "--quiet", "snapshots")
        self.assertNotIn(b"backend_usage", res.err)

    def test_quiet_prints_nothing_and_bad_table_is_reported(self):
        repo = self.base_repo()
        res = self.ok(repo, "--quiet", "snapshots")
        self.assertIsNone(LINE.search(res.err), res.describe())
        bad = self.ws.fresh("prices.json")
        with open(bad, "w") as f:
            f.write("{not json")
        self.extra_env = {"COFFER_PRICE_TABLE": bad}
        self.ctl.post("/counters/reset")
        res = self.coffer(repo, "snapshots")
        self.assert_bad_table(res)
        self.assertEqual(self.ctl.counters()["classes"]["C"], 0, "the command ran")
        self.extra_env = {}
        res = self.coffer(repo, "--price-table", bad, "snapshots")
        self.assert_bad_table(res)
        res = self.coffer(repo, "--price-table", self.ws.path("no-such-table.json"), "snapshots")
        self.assertEqual(res.rc, 1, res.describe())
        self.assertEqual(len(res.err.strip().splitlines()), 1, res.describe())

    def assert_bad_table(self, res):
        self.assertEqual(res.rc, 1, res.describe())
        self.assertEqual(res.out, b"", res.describe())
        self.assertEqual(res.err.strip().splitlines(), [b"coffer: price table: not valid JSON"],
                         res.describe())

    def table(self, name: str, date: str) -> str:
        path = self.ws.path(name)
        with open(path, "w") as f:
            json.dump({"date": date, "storage_gb_month": 1000, "storage_free_gb": 0,
                       "egress_gb": 2000, "egress_free_stored_multiple": 0}, f)
        return path

    def local_repo(self) -> tuple:
        path = self.ws.path("local-cost-repo")
        if not os.path.exists(path):
            self.ok(path, "init")
            self.ok(path, "backup", "src", "--pack-size", "4")
        total = files = 0
        for dirpath, _, names in os.walk(path):
            for n in names:
                total += os.path.getsize(os.path.join(dirpath, n))
                files += 1
        return path, total, files

    def test_stats_cost_on_a_local_repository(self):
        path, total, files = self.local_repo()
        table = self.table("prices-2031.json", "2031-07")
        res = self.ok(path, "--price-table", table, "stats", "--cost")
        m = re.search(rb"Storage: \$([\d.]+) a month", res.out)
        self.assertIsNotNone(m, res.describe())
        self.assertAlmostEqual(float(m[1]), total / 1e9 * 1000, delta=0.006)
        m = re.search(rb"Full restore: \$([\d.]+) egress", res.out)
        self.assertAlmostEqual(float(m[1]), total / 1e9 * 2000, delta=0.006)
        self.assertIn(("in %s files" % format(files, ",")).encode(), res.out)
        self.assertIn(b"Prices of 2031-07", res.out)
        self.assertIn(b"an estimate", res.out)
        self.assertIn(b"would cost on Backblaze B2", res.out)
        self.assertNotIn(b"Snapshots processed", res.out)
        res = self.ok(path, "--json", "--price-table", table, "stats", "--cost", "--mode", "raw-data")
        j = json.loads(res.out)
        self.assertEqual((j["bytes"], j["files"]), (total, files))
        self.assertAlmostEqual(j["monthly_storage_usd"], total / 1e9 * 1000, places=6)
        self.assertAlmostEqual(j["restore_egress_usd"], total / 1e9 * 2000, places=6)
        self.assertEqual((j["price_table_date"], j["price_table_source"]), ("2031-07", table))
        self.assertNotIn("this_run", j)

    def test_price_table_option_wins_over_the_variable(self):
        path, _, _ = self.local_repo()
        self.extra_env = {"COFFER_PRICE_TABLE": self.table("env-prices.json", "2040-01")}
        j = json.loads(self.ok(path, "--json", "stats", "--cost").out)
        self.assertEqual(j["price_table_date"], "2040-01")
        opt = self.table("opt-prices.json", "2041-02")
        j = json.loads(self.ok(path, "--json", "--price-table", opt, "stats", "--cost").out)
        self.assertEqual((j["price_table_date"], j["price_table_source"]), ("2041-02", opt))
        bad = self.ws.fresh("bad-env.json")
        with open(bad, "w") as f:
            f.write("[]")
        self.extra_env = {"COFFER_PRICE_TABLE": bad}
        j = json.loads(self.ok(path, "--json", "--price-table", opt, "stats", "--cost").out)
        self.assertEqual(j["price_table_date"], "2041-02")
        self.extra_env = {}
        res = self.ok(path, "stats", "--cost")
        self.assertIn(b"Prices of 2026-09 (built-in table", res.out)

    def test_stats_cost_over_b2_reports_its_own_calls(self):
        repo = self.base_repo()
        self.ctl.post("/counters/reset")
        res = self.ok(repo, "stats", "--cost")
        self.assertRegex(res.out, rb"Repository size: .* in [\d,]+ files")
        m = LINE.search(res.out)
        self.assertIsNotNone(m, res.describe())
        self.assertIn(b"This run: B2:", res.out)
        emu = self.ctl.counters()
        self.assertEqual((num(m[1]), num(m[2]), num(m[3])),
                         (emu["classes"]["A"], emu["classes"]["B"], emu["classes"]["C"]), emu)
        self.assertGreater(num(m[3]), 0)
        self.ctl.post("/counters/reset")
        res = self.ok(repo, "--json", "stats", "--cost")
        j = json.loads(res.out)
        emu = self.ctl.counters()
        self.assertEqual(j["this_run"]["class_c"], emu["classes"]["C"], emu)
        self.assertEqual(j["price_table_source"], "built-in")
        self.assertGreater(j["bytes"], 1_500_000 * 12 // 2)


if __name__ == "__main__":
    unittest.main()
