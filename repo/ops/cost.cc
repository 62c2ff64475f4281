#include "repo/ops/cost.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace coffer::repo {
namespace {

constexpr double kGb = 1e9;

Result<void> read_price(const nlohmann::json& j, const char* key, double& out) {
  if (!j.contains(key))
    return {};
  if (!j[key].is_number())
    return fail(Errc::kInvalidArgument,
                std::string("price table: \"") + key + "\" must be a number");
  double v = j[key].get<double>();
  if (v < 0)
    return fail(Errc::kInvalidArgument,
                std::string("price table: \"") + key + "\" must not be negative");
  out = v;
  return {};
}

}  // namespace

PriceTable default_b2_prices() {
  PriceTable t;
  t.date = "2026-09";
  t.source =
      "Backblaze B2 list price widely quoted 2023-2026 (leanops 2026, cloudslinker): "
      "$6/TB-month, 10 GB free; egress free up to 3x stored, then $0.01/GB; class B "
      "$0.004/10,000 and class C $0.004/1,000 after 2,500 a day";
  t.storage_gb_month = 0.006;
  t.storage_free_gb = 10;
  t.egress_gb = 0.01;
  t.egress_free_stored_multiple = 3;
  t.class_a_per_1000 = 0;
  t.class_b_per_1000 = 0.0004;
  t.class_c_per_1000 = 0.004;
  t.free_calls_per_day = 2500;
  return t;
}

Result<PriceTable> parse_price_table(const std::string& json_text) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, false);
  if (j.is_discarded())
    return fail(Errc::kInvalidArgument, "price table: not valid JSON");
  if (!j.is_object())
    return fail(Errc::kInvalidArgument, "price table: not a JSON object");
  if (!j.contains("date") || !j["date"].is_string() || j["date"].get<std::string>().empty())
    return fail(Errc::kInvalidArgument, "price table: \"date\" (a string) is required");
  PriceTable t = default_b2_prices();
  t.date = j["date"].get<std::string>();
  t.source = j.value("source", std::string("user price table"));
  COFFER_TRY(read_price(j, "storage_gb_month", t.storage_gb_month));
  COFFER_TRY(read_price(j, "storage_free_gb", t.storage_free_gb));
  COFFER_TRY(read_price(j, "egress_gb", t.egress_gb));
  COFFER_TRY(read_price(j, "egress_free_stored_multiple", t.egress_free_stored_multiple));
  COFFER_TRY(read_price(j, "class_a_per_1000", t.class_a_per_1000));
  COFFER_TRY(read_price(j, "class_b_per_1000", t.class_b_per_1000));
  COFFER_TRY(read_price(j, "class_c_per_1000", t.class_c_per_1000));
  double free_calls = static_cast<double>(t.free_calls_per_day);
  COFFER_TRY(read_price(j, "free_calls_per_day", free_calls));
  t.free_calls_per_day = static_cast<std::uint64_t>(free_calls);
  return t;
}

Result<PriceTable> load_price_table(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return fail(Errc::kIo, "price table: cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return parse_price_table(text.str());
}

Result<PriceTable> resolve_price_table(const std::string& path) {
  if (!path.empty())
    return load_price_table(path);
  const char* env = std::getenv("COFFER_PRICE_TABLE");
  if (env != nullptr && *env != '\0')
    return load_price_table(env);
  return default_b2_prices();
}

std::string price_table_origin(const std::string& path) {
  if (!path.empty())
    return path;
  const char* env = std::getenv("COFFER_PRICE_TABLE");
  if (env != nullptr && *env != '\0')
    return env;
  return "built-in";
}

Result<RepositoryFootprint> repository_footprint(ReadBackend& backend) {
  RepositoryFootprint f;
  for (FileKind kind : {FileKind::kConfig, FileKind::kKey, FileKind::kLock, FileKind::kSnapshot,
                        FileKind::kIndex, FileKind::kPack}) {
    COFFER_TRY(backend.list(kind, [&f](const FileInfo& info) -> Result<void> {
      f.bytes += info.size;
      ++f.files;
      return {};
    }));
  }
  return f;
}

double class_cost(std::uint64_t calls, double per_1000, std::uint64_t free_per_day) {
  std::uint64_t billed = calls > free_per_day ? calls - free_per_day : 0;
  return static_cast<double>(billed) * per_1000 / 1000.0;
}

double run_cost(const BackendUsage& u, const PriceTable& t, std::uint64_t stored_bytes) {
  double cost = static_cast<double>(u.class_a) * t.class_a_per_1000 / 1000.0;
  cost += class_cost(u.class_b, t.class_b_per_1000, t.free_calls_per_day);
  cost += class_cost(u.class_c, t.class_c_per_1000, t.free_calls_per_day);
  double free_egress = static_cast<double>(stored_bytes) * t.egress_free_stored_multiple;
  double billed = std::max(0.0, static_cast<double>(u.bytes_down) - free_egress);
  return cost + billed / kGb * t.egress_gb;
}

RunCostEstimate estimate_run_cost(const BackendUsage& u, const PriceTable& t) {
  if (t.egress_free_stored_multiple <= 0)
    return RunCostEstimate{run_cost(u, t, 0), 0};
  BackendUsage calls = u;
  calls.bytes_down = 0;
  return RunCostEstimate{run_cost(calls, t, 0),
                         static_cast<double>(u.bytes_down) / kGb * t.egress_gb};
}

double monthly_storage_cost(std::uint64_t stored_bytes, const PriceTable& t) {
  double gb = static_cast<double>(stored_bytes) / kGb;
  return std::max(0.0, gb - t.storage_free_gb) * t.storage_gb_month;
}

double full_restore_egress_cost(std::uint64_t stored_bytes, const PriceTable& t) {
  BackendUsage u;
  u.bytes_down = stored_bytes;
  return run_cost(u, t, stored_bytes);
}

}  // namespace coffer::repo
