// The end-of-command report of what remote backends cost: one line per remote backend the
// command used (B2 calls by class, bytes, an estimate in dollars with the price table's date).
//
// Thread contract: main thread, after the command has returned (its backends are destroyed
// and have recorded their usage, repo/backend/backend.h).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "repo/backend/backend.h"
#include "repo/ops/cost.h"

namespace coffer::tools {

// `n` with thousands separators: "1,234,567".
std::string with_commas(std::uint64_t n);

// "B2: 1,234 class A, 56 class B, 7 class C calls; 12.3 MiB up, 1.0 MiB down; est. $0.0012
// (prices of 2026-09)", and when something was downloaded and the table grants free egress:
// "; downloads are free up to 3x the stored data, else up to $0.0100 more" (estimate_run_cost).
std::string usage_line(const repo::BackendUsage& u, const repo::PriceTable& t);

// The usage as a JSON object with the estimate and the table's date.
nlohmann::ordered_json usage_json(const repo::BackendUsage& u, const repo::PriceTable& t);

// Adds "backend_usage" (usage_json) to a command's JSON summary `summary` when `backend` is
// remote: the calls made up to the summary. Releasing the lock comes after it and is counted
// only in the final report of print_usage_report.
void add_usage_field(nlohmann::ordered_json& summary, const repo::ReadBackend& backend,
                     const repo::PriceTable& t);

// Prints one line on stderr per backend recorded so far (a JSON line with --json), nothing
// with --quiet or when no remote backend was used, priced with `t` (the table main resolved
// from --price-table / COFFER_PRICE_TABLE before the command ran).
void print_usage_report(bool json, bool quiet, const repo::PriceTable& t);

}  // namespace coffer::tools
