// The B2 cost estimate: price-table parsing and the arithmetic (free allowances, classes).
#include "repo/ops/cost.h"

#include <cstdlib>
#include <string>

#include <catch2/catch.hpp>

#include "repo/backend/mem_backend.h"

using namespace coffer::repo;

TEST_CASE("class calls within the daily allowance are free", "[cost]") {
  PriceTable t = default_b2_prices();
  CHECK(class_cost(2500, t.class_c_per_1000, t.free_calls_per_day) == 0.0);
  CHECK(class_cost(3500, t.class_c_per_1000, t.free_calls_per_day) == Approx(0.004));
  CHECK(class_cost(12500, t.class_b_per_1000, t.free_calls_per_day) == Approx(0.004));
}

TEST_CASE("a run's cost adds classes and egress beyond the stored multiple", "[cost]") {
  PriceTable t = default_b2_prices();
  BackendUsage u;
  u.class_a = 100000;  // free
  u.class_b = 2500;
  u.class_c = 4500;
  u.bytes_down = 5'000'000'000;
  CHECK(run_cost(u, t, 1'000'000'000) == Approx(0.008 + 2 * 0.01));
  CHECK(run_cost(u, t, 2'000'000'000) == Approx(0.008));
}

TEST_CASE("a run's estimate without the stored size leaves free egress as 'up to'", "[cost]") {
  PriceTable t = default_b2_prices();
  BackendUsage u;
  u.class_c = 4500;
  u.bytes_down = 5'000'000'000;
  RunCostEstimate e = estimate_run_cost(u, t);
  CHECK(e.estimate == Approx(0.008));  // the calls only: egress may be within the 3x allowance
  CHECK(e.egress_up_to == Approx(5 * 0.01));
  t.egress_free_stored_multiple = 0;  // a table without the allowance charges it all
  e = estimate_run_cost(u, t);
  CHECK(e.estimate == Approx(0.008 + 5 * 0.01));
  CHECK(e.egress_up_to == 0.0);
  u.bytes_down = 0;
  CHECK(estimate_run_cost(u, default_b2_prices()).egress_up_to == 0.0);
}

TEST_CASE("storage is billed after the free gigabytes", "[cost]") {
  PriceTable t = default_b2_prices();
  CHECK(monthly_storage_cost(5'000'000'000, t) == 0.0);
  CHECK(monthly_storage_cost(1'010'000'000'000, t) == Approx(6.0));
  CHECK(full_restore_egress_cost(1'000'000'000'000, t) == 0.0);
}

TEST_CASE("a price table overrides the defaults it names", "[cost]") {
  auto t = parse_price_table(R"({"date":"2030-01","storage_gb_month":0.01,"storage_free_gb":0})");
  REQUIRE(t);
  CHECK(t->date == "2030-01");
  CHECK(monthly_storage_cost(2'000'000'000, *t) == Approx(0.02));
  CHECK(t->class_c_per_1000 == default_b2_prices().class_c_per_1000);
}

TEST_CASE("malformed price tables are refused with a clear error", "[cost]") {
  auto bad = parse_price_table("{not json");
  REQUIRE(!bad);
  CHECK(bad.error().code == Errc::kInvalidArgument);
  CHECK(bad.error().message.find("not valid JSON") != std::string::npos);
  auto negative = parse_price_table(R"({"date":"x","egress_gb":-1})");
  REQUIRE(!negative);
  CHECK(negative.error().message.find("negative") != std::string::npos);
  auto nodate = parse_price_table(R"({"egress_gb":1})");
  REQUIRE(!nodate);
  CHECK(nodate.error().message.find("date") != std::string::npos);
  auto wrong = parse_price_table(R"({"date":"x","egress_gb":"1"})");
  REQUIRE(!wrong);
  auto missing = load_price_table("/nonexistent/prices.json");
  REQUIRE(!missing);
  CHECK(missing.error().code == Errc::kIo);
}

TEST_CASE("the footprint adds up every kind of file the backend lists", "[cost]") {
  MemBackend b;
  std::string hex(64, 'a');
  std::string hex2(64, 'b');
  REQUIRE(b.save({FileKind::kConfig, "config"}, Bytes(100)));
  REQUIRE(b.save({FileKind::kKey, hex}, Bytes(400)));
  REQUIRE(b.save({FileKind::kSnapshot, hex}, Bytes(250)));
  REQUIRE(b.save({FileKind::kIndex, hex}, Bytes(1000)));
  REQUIRE(b.save({FileKind::kPack, hex}, Bytes(5000)));
  REQUIRE(b.save({FileKind::kPack, hex2}, Bytes(7000)));
  auto f = repository_footprint(b);
  REQUIRE(f);
  CHECK(f->files == 6);
  CHECK(f->bytes == 100 + 400 + 250 + 1000 + 5000 + 7000);
  MemBackend empty;
  auto none = repository_footprint(empty);
  REQUIRE(none);
  CHECK(none->files == 0);
  CHECK(none->bytes == 0);
}

TEST_CASE("the price table's origin: the option, then the variable, then built-in", "[cost]") {
  ::unsetenv("COFFER_PRICE_TABLE");
  CHECK(price_table_origin("") == "built-in");
  ::setenv("COFFER_PRICE_TABLE", "/tmp/env-prices.json", 1);
  CHECK(price_table_origin("") == "/tmp/env-prices.json");
  CHECK(price_table_origin("/tmp/opt.json") == "/tmp/opt.json");
  ::unsetenv("COFFER_PRICE_TABLE");
}

TEST_CASE("a custom table prices storage without allowance and charges all egress beyond it",
          "[cost]") {
  auto t = parse_price_table(
      R"({"date": "2030-01", "storage_gb_month": 1, "storage_free_gb": 0, "egress_gb": 2,)"
      R"( "egress_free_stored_multiple": 0})");
  REQUIRE(t);
  CHECK(monthly_storage_cost(2'500'000'000, *t) == Approx(2.5));
  CHECK(full_restore_egress_cost(2'500'000'000, *t) == Approx(5.0));
}
