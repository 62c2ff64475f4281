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
  return fmt::format(
      "{}: {} class A, {} class B, {} class C calls; {} up, {} down; est. ${:.4f} (prices of {})",
      u.service, with_commas(u.class_a), with_commas(u.class_b), with_commas(u.class_c),
      format_bytes(u.bytes_up), format_bytes(u.bytes_down), repo::run_cost(u, t, 0), t.date);
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
  j["estimated_cost_usd"] = repo::run_cost(u, t, 0);
  j["price_table_date"] = t.date;
  return j;
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
