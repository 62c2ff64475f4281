// B2Api: the session with B2 (account authorization, bucket id) and the retry rules of
// b2-api.md §8 for requests made with the account token. Internal to repo/backend/b2.
//
// Retry rules of execute():
// - 2xx and definitive answers (400, 404, 416, ...) are returned to the caller;
// - 401 expired_auth_token / bad_auth_token / missing_auth_token, or a 401 without a body
//   (HEAD): one re-authorization shared by all threads (the token generation tells whether
//   another thread already renewed it), then an immediate retry; at most two per request;
// - 401 unauthorized / unsupported and every 403: kAccessDenied, never retried;
// - 408, 429, 5xx and transport failures (refused, reset, timeout, truncated body): retried
//   up to `attempts` times with exponential backoff and jitter (min(64 s, base * 2^n) *
//   [0.5, 1.5)); a 429's Retry-After wins. Then kIo, not retryable, naming B2 and the cause.
// - a cancel request (repo/core/cancel.h) ends a request or a backoff at once: kCancelled;
// - while the client's circuit breaker is open (http_client.h), requests fail at once: kIo.
// A failed authorization with a wrong key is remembered: later calls fail at once (no storm).
//
// Thread contract: every method is safe to call concurrently. Lock order: bucket_mutex_ before
// auth_mutex_. auth_mutex_ is held across the authorize request (one thread authorizes, the
// others wait for its token) and bucket_mutex_ across the bucket look-up; no other lock is
// held across a request.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "repo/backend/b2/b2_backend.h"
#include "repo/backend/http/http_client.h"

namespace coffer::repo::b2 {

using http::HttpClient;
using http::HttpConfig;
using http::HttpRequest;
using http::HttpResponse;
using http::make_request;

enum class TxClass { kA, kB, kC };

struct AuthInfo {
  std::string token;
  std::string api_url;
  std::string download_url;
  std::string account_id;
  std::uint64_t generation = 0;  // 1 for the first token, +1 per re-authorization
};

// Parsed error of a B2 reply ({"status","code","message"}); empty for a body that is not JSON.
struct B2Status {
  std::string code;
  std::string message;
};
B2Status parse_status(const HttpResponse& r);

// "HTTP <status> <code>: <message>" or the transport error, for messages, with every
// occurrence of `token` (an authorization token B2 may quote) replaced by "<token>".
std::string describe(const HttpResponse& r, std::string_view token = {});

// Percent-encodes `name` for X-Bz-File-Name and download URLs (keeps A-Z a-z 0-9 - . _ ~ /).
std::string encode_name(std::string_view name);

// The error of a request stopped by a cancel request (kCancelled, "interrupted").
Error cancelled_error();

// Lower-case hex SHA-1 of `data`.
std::string sha1_hex(ByteSpan data);

class B2Api {
 public:
  explicit B2Api(const B2Options& options);

  // The current authorization, authorizing first if needed.
  // Errors: kAccessDenied (wrong key, key restricted elsewhere), kIo (B2 unreachable).
  Result<AuthInfo> auth();
  // Renews the token unless another thread already did since `seen_generation`.
  Result<void> reauthorize(std::uint64_t seen_generation);
  // The bucket's id (looked up once). Errors: kNoRepository (no such bucket), as auth().
  Result<std::string> bucket_id();

  // Sends the request `build` makes from the current authorization under the rules above;
  // `op` names it in messages; `cls` is counted for answered calls.
  Result<HttpResponse> execute(const std::string& op, TxClass cls,
                               const std::function<HttpRequest(const AuthInfo&)>& build);
  // A JSON POST of `body` to {apiUrl}/b2api/v3/<op>; returns the answer (2xx or a
  // definitive 4xx) with its JSON parsed into `json` when it has one.
  Result<HttpResponse> call(const std::string& op, TxClass cls, const nlohmann::json& body,
                            nlohmann::json* json);

  // Waits the backoff before retry number `attempt` (1-based) after response `r`; false if a
  // cancel request cut it short.
  [[nodiscard]] bool backoff(unsigned attempt, const HttpResponse& r) const;
  // Counts one request and, if it was answered (status 1..399), `units` of class `cls`.
  void count(TxClass cls, const HttpResponse& r);
  // Adds `units` transactions of class `cls` (list calls: one per 1000 names beyond the first).
  void add_units(TxClass cls, std::uint64_t units);
  void count_retry() { ++retries_; }
  void count_bytes(std::uint64_t up, std::uint64_t down);

  HttpClient& http() { return http_; }
  [[nodiscard]] const B2Options& options() const { return options_; }
  [[nodiscard]] B2Counters counters() const;

 private:
  // b2_authorize_account with the key, retried while transient; the key copies are wiped.
  HttpResponse send_authorize();
  Result<AuthInfo> authorize_locked();
  Result<void> check_restrictions(const nlohmann::json& storage);
  Result<std::string> lookup_bucket();
  [[nodiscard]] Error fatal(const std::string& op, const HttpResponse& r,
                            std::string_view token) const;

  const B2Options& options_;  // owned by the B2Backend, which owns this
  HttpClient http_;

  std::mutex auth_mutex_;
  std::optional<AuthInfo> auth_;      // guarded by auth_mutex_
  std::optional<Error> auth_failed_;  // a permanent authorization failure, remembered
  std::string allowed_bucket_id_;     // the key's bucket restriction (v3 storageApi)

  std::mutex bucket_mutex_;
  std::string bucket_id_;  // guarded by bucket_mutex_; "" until looked up

  std::atomic<std::uint64_t> class_a_{0}, class_b_{0}, class_c_{0};
  std::atomic<std::uint64_t> bytes_up_{0}, bytes_down_{0};
  std::atomic<std::uint64_t> requests_{0}, retries_{0}, reauths_{0};
};

}  // namespace coffer::repo::b2
