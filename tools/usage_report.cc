#include "tools/usage_report.h"

#include <cstdio>

#include <fmt/format.h>

#include "tools/format.h"

namespace coffer::tools {
std::string with_commas(std::uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0)
      out += ',';
    out += digits[i];
  }
  return out;
}

std::string usage_line(const repo::BackendUsage& u, const repo::PriceTable& t) {
  repo::RunCostEstimate cost = repo::estimate_run_cost(u, t);
  std::string line = fmt::format(
      "{}: {} class A, {} class B, {} class C calls; {} up, {} down; est. ${:.4f} (prices of {})",
      u.service, with_commas(u.class_a), with_commas(u.class_b), with_commas(u.class_c),
      format_bytes(u.bytes_up), format_bytes(u.bytes_down), cost.estimate, t.date);
  if (cost.egress_up_to > 0) {
    line += fmt::format("; downloads are free up to {:g}x the stored data, else up to ${:.4f} more",
                        t.egress_free_stored_multiple, cost.egress_up_to);
  }
  return line;
}

nlohmann::ordered_json usage_json(const repo::BackendUsage& u, const repo::PriceTable& t) {
  nlohmann::ordered_json j;
  j["service"] = u.service;
  j["requests"] = u.requests;
  j["retries"] = u.retries;
  j["class_a"] = u.class_a;
  j["class_b"] = u.class_b;
  j["class_c"] = u.class_c;
  j["bytes_up"] = u.bytes_up;
  j["bytes_down"] = u.bytes_down;
  repo::RunCostEstimate cost = repo::estimate_run_cost(u, t);
  j["estimated_cost_usd"] = cost.estimate;
  j["egress_free_stored_multiple"] = t.egress_free_stored_multiple;
  j["egress_up_to_usd"] = cost.egress_up_to;  // billed only beyond the free multiple
  j["price_table_date"] = t.date;
  return j;
}

void add_usage_field(nlohmann::ordered_json& summary, const repo::ReadBackend& backend,
                     const repo::PriceTable& t) {
  if (auto u = backend.usage())
    summary["backend_usage"] = usage_json(*u, t);
}

void print_usage_report(bool json, bool quiet, const repo::PriceTable& t) {
  auto records = repo::recorded_backend_usage();
  if (quiet || records.empty())
    return;
  for (const auto& [location, u] : records) {
    if (json) {
      nlohmann::ordered_json j;
      j["message_type"] = "backend_usage";
      j["location"] = location;
      j["backend_usage"] = usage_json(u, t);
      std::fprintf(stderr, "%s\n", j.dump().c_str());
    } else {
      std::fprintf(stderr, "%s (%s)\n", usage_line(u, t).c_str(), location.c_str());
    }
  }
}

}  // namespace coffer::tools
