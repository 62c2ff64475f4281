#include "repo/location.h"

#include <charconv>
#include <cstdlib>

#include "repo/backend/b2/b2_backend.h"
#include "repo/backend/local/local_backend.h"
#include "repo/backend/rest/rclone_backend.h"
#include "repo/backend/rest/rest_backend.h"

namespace coffer::repo {
namespace {

// The first of the environment variables `names` that is set and not empty, else "".
std::string env_first(std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (const char* v = std::getenv(name); v != nullptr && *v != '\0')
      return v;
  }
  return "";
}

// The option `key`, else the environment variable `env` (if given), else "".
std::string setting(const BackendOptions& o, const std::string& key, const char* env = nullptr) {
  auto it = o.find(key);
  if (it != o.end())
    return it->second;
  return env != nullptr ? env_first({env}) : "";
}

// Parses option `key` as a number in [min, max] into `out` (unchanged if the option is unset).
template <class T>
Result<void> number_option(const BackendOptions& o, const std::string& key, T min, T max, T& out) {
  auto it = o.find(key);
  if (it == o.end())
    return {};
  const std::string& v = it->second;
  T value{};
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
  if (ec != std::errc{} || end != v.data() + v.size() || v.empty() || value < min || value > max) {
    return fail(Errc::kInvalidArgument, "option " + key + "=" + v + ": expected a number from " +
                                            std::to_string(min) + " to " + std::to_string(max));
  }
  out = value;
  return {};
}

Result<void> check_b2_option_names(const BackendOptions& o) {
  static const char* const kKnown[] = {"b2.connections", "b2.endpoint",   "b2.ca-file",
                                       "b2.retries",     "b2.backoff-ms", "b2.timeout"};
  for (const auto& [key, value] : o) {
    if (!key.starts_with("b2."))
      continue;
    bool known = false;
    for (const char* k : kKnown) known = known || key == k;
    if (!known) {
      return fail(Errc::kInvalidArgument,
                  "unknown option " + key +
                      " (b2 knows connections, endpoint, ca-file, retries, backoff-ms, timeout)");
    }
  }
  return {};
}

// "bucket" or "bucket:prefix" into `b`. Errors: kInvalidArgument.
Result<void> parse_b2_location(std::string_view rest, B2Options& b) {
  auto colon = rest.find(':');
  b.bucket = std::string(rest.substr(0, colon));
  std::string prefix = colon == std::string_view::npos ? "" : std::string(rest.substr(colon + 1));
  bool bucket_ok = b.bucket.size() >= 6 && b.bucket.size() <= 63;
  for (char c : b.bucket)
    bucket_ok = bucket_ok && (std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-');
  if (!bucket_ok) {
    return fail(Errc::kInvalidArgument, "invalid B2 bucket name \"" + b.bucket +
                                            "\" (6 to 63 letters, digits and '-'); the "
                                            "location is b2:BUCKET or b2:BUCKET:PREFIX");
  }
  while (prefix.starts_with('/')) prefix.erase(0, 1);
  while (prefix.ends_with('/')) prefix.pop_back();
  std::string_view p(prefix);
  bool prefix_ok =
      p.find("//") == std::string_view::npos && p != "." && p != ".." && !p.starts_with("./") &&
      !p.starts_with("../") && p.find("/./") == std::string_view::npos &&
      p.find("/../") == std::string_view::npos && !p.ends_with("/.") && !p.ends_with("/..");
  if (!prefix_ok)
    return fail(Errc::kInvalidArgument, "invalid B2 prefix \"" + prefix + "\"");
  b.prefix = prefix;
  return {};
}

Result<void> apply_b2_settings(const BackendOptions& o, B2Options& b) {
  COFFER_TRY(check_b2_option_names(o));
  std::string endpoint = setting(o, "b2.endpoint", "COFFER_B2_ENDPOINT");
  if (!endpoint.empty()) {
    while (endpoint.ends_with('/')) endpoint.pop_back();
    if (!endpoint.starts_with("https://") && !endpoint.starts_with("http://")) {
      return fail(Errc::kInvalidArgument,
                  "b2.endpoint must be an http:// or https:// URL, not \"" + endpoint + "\"");
    }
    b.endpoint = endpoint;
    b.endpoint_overridden = endpoint.starts_with("http://");
  }
  b.ca_file = setting(o, "b2.ca-file", "COFFER_B2_CA_FILE");
  COFFER_TRY(number_option(o, "b2.connections", 1U, 128U, b.connections));
  COFFER_TRY(number_option(o, "b2.retries", 1U, 100U, b.attempts));
  long backoff_ms = b.backoff.count();
  COFFER_TRY(number_option(o, "b2.backoff-ms", 0L, 600000L, backoff_ms));
  b.backoff = std::chrono::milliseconds(backoff_ms);
  COFFER_TRY(number_option(o, "b2.timeout", 1L, 86400L, b.timeout_s));
  return {};
}

Result<std::unique_ptr<WriteBackend>> open_b2(std::string_view rest, const BackendOptions& o) {
  B2Options b;
  COFFER_TRY(parse_b2_location(rest, b));
  COFFER_TRY(apply_b2_settings(o, b));
  b.key_id = env_first({"COFFER_B2_ACCOUNT_ID", "B2_ACCOUNT_ID"});
  b.key = env_first({"COFFER_B2_ACCOUNT_KEY", "B2_ACCOUNT_KEY"});
  if (b.key_id.empty() || b.key.empty()) {
    return fail(Errc::kInvalidArgument,
                "B2 credentials missing: set B2_ACCOUNT_ID and B2_ACCOUNT_KEY (or "
                "COFFER_B2_ACCOUNT_ID and COFFER_B2_ACCOUNT_KEY)");
  }
  return std::unique_ptr<WriteBackend>(std::make_unique<B2Backend>(std::move(b)));
}

// Fails on an option of `ns` ("rest.") that is not in `known`.
Result<void> check_option_names(const BackendOptions& o, const std::string& ns,
                                std::initializer_list<const char*> known) {
  for (const auto& [key, value] : o) {
    if (!key.starts_with(ns))
      continue;
    bool ok = false;
    for (const char* k : known) ok = ok || key == ns + k;
    if (!ok) {
      std::string names;
      for (const char* k : known) names += (names.empty() ? "" : ", ") + std::string(k);
      return fail(
          Errc::kInvalidArgument,
          "unknown option " + key + " (" + ns.substr(0, ns.size() - 1) + " knows " + names + ")");
    }
  }
  return {};
}

Result<std::unique_ptr<WriteBackend>> open_rest(std::string_view rest, const BackendOptions& o) {
  COFFER_TRY(check_option_names(o, "rest.", {"connections", "retries", "backoff-ms", "timeout"}));
  COFFER_ASSIGN_OR_RETURN(RestUrl url, parse_rest_url(rest));
  RestOptions r;
  r.base_url = url.base;
  r.location = url.redacted;
  r.username = url.username;
  r.password = url.password;
  if (r.username.empty() && r.password.empty()) {
    r.username = env_first({"COFFER_REST_USERNAME", "RESTIC_REST_USERNAME"});
    r.password = env_first({"COFFER_REST_PASSWORD", "RESTIC_REST_PASSWORD"});
  }
  if (auto it = o.find("rest.connections"); it == o.end()) {
    if (std::string env = env_first({"COFFER_REST_CONNECTIONS"}); !env.empty()) {
      BackendOptions from_env{{"rest.connections", env}};
      COFFER_TRY(number_option(from_env, "rest.connections", 1U, 128U, r.connections));
    }
  }
  COFFER_TRY(number_option(o, "rest.connections", 1U, 128U, r.connections));
  COFFER_TRY(number_option(o, "rest.retries", 1U, 100U, r.attempts));
  long backoff_ms = r.backoff.count();
  COFFER_TRY(number_option(o, "rest.backoff-ms", 0L, 600000L, backoff_ms));
  r.backoff = std::chrono::milliseconds(backoff_ms);
  COFFER_TRY(number_option(o, "rest.timeout", 1L, 86400L, r.timeout_s));
  return std::unique_ptr<WriteBackend>(std::make_unique<RestBackend>(std::move(r)));
}

Result<std::unique_ptr<WriteBackend>> open_rclone(std::string_view remote,
                                                  const BackendOptions& o) {
  COFFER_TRY(check_option_names(o, "rclone.", {"program", "args"}));
  if (remote.empty())
    return fail(Errc::kInvalidArgument, "an rclone: location is rclone:REMOTE:PATH");
  RcloneOptions r;
  r.remote = std::string(remote);
  if (auto it = o.find("rclone.program"); it != o.end())
    r.program = it->second;
  if (auto it = o.find("rclone.args"); it != o.end())
    r.args = it->second;
  COFFER_ASSIGN_OR_RETURN(auto backend, RcloneBackend::start(std::move(r)));
  return std::unique_ptr<WriteBackend>(std::move(backend));
}

}  // namespace

std::string redact_location(std::string_view location) {
  if (!location.starts_with("rest:"))
    return std::string(location);
  auto url = parse_rest_url(location.substr(5));
  return url ? url->redacted : "rest:(invalid URL)";
}

Result<void> add_backend_option(BackendOptions& options, std::string_view text) {
  auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return fail(Errc::kInvalidArgument,
                "invalid option \"" + std::string(text) + "\" (expected key=value)");
  }
  options[std::string(text.substr(0, eq))] = std::string(text.substr(eq + 1));
  return {};
}

Result<std::unique_ptr<WriteBackend>> open_backend(std::string_view location,
                                                   const BackendOptions& options) {
  if (location.empty()) {
    return fail(
        Errc::kInvalidArgument,
        "please specify the repository location (-r or COFFER_REPOSITORY/RESTIC_REPOSITORY)");
  }
  if (location.starts_with("b2:"))
    return open_b2(location.substr(3), options);
  if (location.starts_with("rest:"))
    return open_rest(location.substr(5), options);
  if (location.starts_with("rclone:"))
    return open_rclone(location.substr(7), options);
  if (location.rfind("local:", 0) == 0)
    location.remove_prefix(6);
  auto colon = location.find(':');
  auto slash = location.find('/');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon < slash)) {
    std::string scheme(location.substr(0, colon));
    return fail(Errc::kInvalidArgument,
                "unsupported repository location scheme \"" + scheme + ":\"");
  }
  if (location.empty())
    return fail(Errc::kInvalidArgument, "empty local repository path");
  return std::unique_ptr<WriteBackend>(std::make_unique<LocalBackend>(std::string(location)));
}

}  // namespace coffer::repo
