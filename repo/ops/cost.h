// Cost estimates for a repository on Backblaze B2: a dated, user-overridable price table and
// the arithmetic that turns a backend's usage (BackendUsage) and a repository size into
// dollars. Everything here is an estimate; callers label it with PriceTable::date.
//
// Thread contract: plain values and pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <string>

#include "repo/backend/backend.h"
#include "repo/core/error.h"

namespace coffer::repo {

// Prices in US dollars; GB is 10^9 bytes as B2 bills it. Free call allowances reset daily.
struct PriceTable {
  std::string date;    // when the prices were read ("2026-09"); required
  std::string source;  // where they come from
  double storage_gb_month = 0;
  double storage_free_gb = 0;
  double egress_gb = 0;
  double egress_free_stored_multiple = 0;  // egress free up to this multiple of stored data
  double class_a_per_1000 = 0;
  double class_b_per_1000 = 0;
  double class_c_per_1000 = 0;
  std::uint64_t free_calls_per_day = 0;  // per class B and C
};

// The built-in table: the widely quoted 2023-2026 list price (b2-api.md §9).
PriceTable default_b2_prices();

// Parses a JSON object with the fields of PriceTable (same names); "date" is required, any
// other field left out keeps the default_b2_prices() value. Errors: kInvalidArgument (not
// JSON, not an object, a field of the wrong type, a negative price, no date).
Result<PriceTable> parse_price_table(const std::string& json_text);

// Reads `path` and parses it. Errors: kIo (unreadable), kInvalidArgument as above.
Result<PriceTable> load_price_table(const std::string& path);

// The table named by `path`, else by env COFFER_PRICE_TABLE, else the built-in one.
// Errors: those of load_price_table.
Result<PriceTable> resolve_price_table(const std::string& path);

// Where resolve_price_table(path) takes its table from: `path`, else the value of env
// COFFER_PRICE_TABLE, else "built-in".
std::string price_table_origin(const std::string& path);

// The files of a repository as its backend lists them.
struct RepositoryFootprint {
  std::uint64_t bytes = 0;
  std::uint64_t files = 0;
};

// Lists every FileKind of `backend` (listing only, nothing is read) and adds up the sizes.
// Errors: those of ReadBackend::list (kIo, ...).
Result<RepositoryFootprint> repository_footprint(ReadBackend& backend);

// Calls of one class beyond the daily free allowance, all made within one day, in dollars.
double class_cost(std::uint64_t calls, double per_1000, std::uint64_t free_per_day);

// The estimated cost of one run's usage (calls within one UTC day). Egress beyond the
// free multiple of `stored_bytes` is charged; with stored_bytes 0 it is all charged.
double run_cost(const BackendUsage& u, const PriceTable& t, std::uint64_t stored_bytes);

// One run's cost when the stored size is unknown (the per-run report): B2 bills egress only
// beyond a free multiple of the account's average stored data, which one run cannot see. So
// `estimate` charges the calls, and the egress only when the table grants no free multiple;
// otherwise the egress at list price is `egress_up_to`, billed only beyond the allowance.
struct RunCostEstimate {
  double estimate = 0;
  double egress_up_to = 0;  // 0 when charged in `estimate` or nothing was downloaded
};
RunCostEstimate estimate_run_cost(const BackendUsage& u, const PriceTable& t);

// Storage for a month of `stored_bytes`, after the free allowance.
double monthly_storage_cost(std::uint64_t stored_bytes, const PriceTable& t);

// Downloading `stored_bytes` once within a month of storing them.
double full_restore_egress_cost(std::uint64_t stored_bytes, const PriceTable& t);

}  // namespace coffer::repo
