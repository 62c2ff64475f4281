#include "repo/backend/rest/rest_backend.h"

#include <algorithm>
#include <optional>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "repo/backend/http/http_client.h"
#include "repo/core/bytes.h"
#include "repo/core/cancel.h"
#include "repo/core/log.h"

namespace coffer::repo {
namespace {

using http::HttpRequest;
using http::HttpResponse;
using nlohmann::json;

constexpr const char* kAcceptV2 = "Accept: application/vnd.x.restic.rest.v2";
constexpr std::chrono::milliseconds kBackoffCap{16000};

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_digit_value(s[i + 1]) >= 0 &&
        hex_digit_value(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_digit_value(s[i + 1]) * 16 + hex_digit_value(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

bool valid_name(FileKind kind, std::string_view name) {
  if (kind == FileKind::kConfig)
    return name == "config";
  Bytes raw;
  return name.size() == 64 && hex_decode(name, raw);
}

// Transient: the transfer failed, or the server asks to come back later.
bool transient(const HttpResponse& r) {
  if (r.permanent)
    return false;
  if (r.status == 0 || !r.error.empty())
    return true;
  return r.status == 408 || r.status == 429 || (r.status >= 500 && r.status != 507);
}

std::string describe(const HttpResponse& r) {
  if (r.status == 0)
    return r.error;
  std::string text = "HTTP " + std::to_string(r.status);
  if (!r.error.empty())
    text += " (" + r.error + ")";
  return text;
}

}  // namespace

Result<RestUrl> parse_rest_url(std::string_view url) {
  std::string_view scheme = url.starts_with("https://")  ? "https://"
                            : url.starts_with("http://") ? "http://"
                                                         : "";
  if (scheme.empty()) {
    return fail(Errc::kInvalidArgument,
                "a rest: location is rest:http://HOST[:PORT]/PATH or rest:https://..., not "
                "\"rest:" +
                    std::string(url.substr(0, url.find('@'))) + "\"");
  }
  std::string_view rest = url.substr(scheme.size());
  std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (!path.ends_with('/'))
    path.push_back('/');
  RestUrl out;
  std::string userinfo_shown;
  std::size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    std::size_t colon = userinfo.find(':');
    out.username = percent_decode(userinfo.substr(0, colon));
    std::string shown_user(userinfo.substr(0, colon));
    if (colon != std::string_view::npos) {
      out.password = percent_decode(userinfo.substr(colon + 1));
      userinfo_shown = shown_user + ":***@";
    } else {
      userinfo_shown = shown_user + "@";
    }
    authority.remove_prefix(at + 1);
  }
  if (authority.empty() || authority.starts_with(':'))
    return fail(Errc::kInvalidArgument, "rest: location without a host");
  out.base = std::string(scheme) + std::string(authority) + path;
  out.redacted = "rest:" + std::string(scheme) + userinfo_shown + std::string(authority) + path;
  return out;
}

RestBackend::RestBackend(RestOptions options) : options_(std::move(options)) {
  http::HttpConfig c;
  c.connections = std::max(1U, options_.connections);
  c.allow_http = true;  // the location names the scheme explicitly
  c.timeout_s = options_.timeout_s;
  c.username = options_.username;
  c.password = options_.password;
  c.stream_socket = options_.stream_socket;
  http_ = std::make_unique<http::HttpClient>(std::move(c));
}

RestBackend::~RestBackend() = default;

BackendProperties RestBackend::properties() const {
  unsigned n = !options_.stream_socket.empty() ? 1U : std::max(1U, options_.connections);
  return BackendProperties{n, false};
}

std::string RestBackend::url_of(const Handle& h) const {
  if (h.kind == FileKind::kConfig)
    return options_.base_url + "config";
  return options_.base_url + file_kind_dir(h.kind) + "/" + h.name;
}

bool RestBackend::backoff(unsigned attempt) const {
  return http::backoff_sleep(options_.backoff, attempt, kBackoffCap);
}

Result<HttpResponse> RestBackend::execute(const std::string& op, const HttpRequest& req) {
  HttpResponse r;
  unsigned attempts = std::max(1U, options_.attempts);
  for (unsigned attempt = 1;; ++attempt) {
    r = http_->perform(req);
    if (r.cancelled)
      return fail(Errc::kCancelled, "interrupted");
    if (!transient(r))
      break;
    if (attempt >= attempts) {
      http_->retries_exhausted(r);
      return fail(Errc::kIo, location() + ": " + op + " failed after " + std::to_string(attempts) +
                                 " attempts: " + describe(r));
    }
    log::debug(location() + ": " + op + ": " + describe(r) + "; retrying");
    if (!backoff(attempt))
      return fail(Errc::kCancelled, "interrupted");
  }
  if (r.permanent)
    return fail(Errc::kIo, location() + ": " + op + ": " + describe(r));
  return r;
}

Error RestBackend::status_error(const std::string& op, const std::string& what,
                                const HttpResponse& r) const {
  std::string where = location() + ": " + op + " " + what + ": ";
  switch (r.status) {
    case 404:
      return Error{Errc::kNotFound, where + "does not exist", false};
    case 401:
    case 403:
      return Error{Errc::kAccessDenied,
                   where + "access denied (HTTP " + std::to_string(r.status) +
                       "); check the user name and password",
                   false};
    case 416:
      return Error{Errc::kCorrupt, where + "the file is shorter than expected", false};
    case 507:
      return Error{Errc::kIo, where + "server out of space (HTTP 507)", false};
    default:
      return Error{Errc::kIo, where + describe(r), false};
  }
}

Result<Bytes> RestBackend::load(const Handle& h, std::uint64_t offset, std::uint64_t length) {
  HttpRequest req = http::make_request("GET", url_of(h), {});
  req.expected_bytes = length;
  if (length > 0)
    req.headers.push_back(fmt::format("Range: bytes={}-{}", offset, offset + length - 1));
  else if (offset > 0)
    req.headers.push_back(fmt::format("Range: bytes={}-", offset));
  COFFER_ASSIGN_OR_RETURN(HttpResponse r, execute("load " + h.path(), req));
  if (!r.ok())
    return fail(status_error("load", h.path(), r));
  Bytes data = std::move(r.body);
  if (r.status == 200 && (offset > 0 || length > 0)) {  // the server ignored the range
    if (data.size() < offset)
      return fail(Errc::kCorrupt, location() + ": " + h.path() + " is shorter than expected");
    data.erase(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(offset));
    if (length > 0 && data.size() > length)
      data.resize(length);
  }
  if (length > 0 && data.size() != length)
    return fail(Errc::kCorrupt, location() + ": " + h.path() + " is shorter than expected");
  return data;
}

Result<std::uint64_t> RestBackend::stat(const Handle& h) {
  if (!options_.stream_socket.empty())
    return stat_by_range(h);
  COFFER_ASSIGN_OR_RETURN(HttpResponse r,
                          execute("stat " + h.path(), http::make_request("HEAD", url_of(h), {})));
  if (!r.ok())
    return fail(status_error("stat", h.path(), r));
  std::string cl = r.header("content-length");
  if (cl.empty())
    return fail(Errc::kIo, location() + ": stat " + h.path() + ": no Content-Length");
  return std::strtoull(cl.c_str(), nullptr, 10);
}

// libcurl 7.88 breaks the HTTP/2 session on a HEAD answer with a Content-Length (curl issue
// #10634), so stream mode asks for the first byte instead: 206 "bytes 0-0/SIZE", or 416
// "bytes */0" for an empty file, or 200 with the whole (tiny) body.
Result<std::uint64_t> RestBackend::stat_by_range(const Handle& h) {
  HttpRequest req = http::make_request("GET", url_of(h), {"Range: bytes=0-0"});
  COFFER_ASSIGN_OR_RETURN(HttpResponse r, execute("stat " + h.path(), req));
  std::string range = r.header("content-range");
  auto slash = range.find('/');
  if ((r.status == 206 || r.status == 416) && slash != std::string::npos)
    return std::strtoull(range.c_str() + slash + 1, nullptr, 10);
  if (r.status == 200)
    return r.body.size();
  if (!r.ok())
    return fail(status_error("stat", h.path(), r));
  return fail(Errc::kIo, location() + ": stat " + h.path() + ": no Content-Range");
}

Result<void> RestBackend::list(FileKind kind,
                               const std::function<Result<void>(const FileInfo&)>& fn) {
  if (kind == FileKind::kConfig)
    return list_config(*this, fn);
  std::string dir = std::string(file_kind_dir(kind)) + "/";
  COFFER_ASSIGN_OR_RETURN(
      HttpResponse r,
      execute("list " + dir, http::make_request("GET", options_.base_url + dir, {kAcceptV2})));
  if (r.status == 404)
    return {};  // no such directory yet: nothing of this kind
  if (!r.ok())
    return fail(status_error("list", dir, r));
  return list_names(kind, r, fn);
}

Result<void> RestBackend::list_names(FileKind kind, const HttpResponse& r,
                                     const std::function<Result<void>(const FileInfo&)>& fn) {
  json reply = json::parse(r.body.begin(), r.body.end(), nullptr, false);
  if (!reply.is_array()) {
    return fail(Errc::kIo,
                location() + ": list " + file_kind_dir(kind) + "/: the answer is not a JSON array");
  }
  for (const auto& entry : reply) {
    FileInfo info;
    if (entry.is_string()) {  // protocol v1: names only
      info.name = entry.get<std::string>();
      if (!valid_name(kind, info.name))
        continue;
      COFFER_ASSIGN_OR_RETURN(info.size, stat(Handle{kind, info.name}));
    } else if (entry.is_object()) {
      info.name = entry.value("name", "");
      info.size = entry.value("size", std::uint64_t{0});
      if (!valid_name(kind, info.name))
        continue;
    } else {
      continue;
    }
    COFFER_TRY(fn(info));
  }
  return {};
}

Result<void> RestBackend::save(const Handle& h, ByteSpan data) {
  auto existing = stat(h);
  if (existing)
    return fail(Errc::kInvalidArgument, location() + ": " + h.path() + " exists already");
  if (existing.error().code != Errc::kNotFound)
    return fail(existing.error());
  HttpRequest req =
      http::make_request("POST", url_of(h), {"Content-Type: application/octet-stream"}, data);
  COFFER_ASSIGN_OR_RETURN(HttpResponse r, execute("save " + h.path(), req));
  if (!r.ok())
    return fail(status_error("save", h.path(), r));
  return {};
}

Result<void> RestBackend::remove(const Handle& h) {
  std::optional<CancelShield> shield;  // an interrupted command still deletes its lock
  if (h.kind == FileKind::kLock)
    shield.emplace();
  COFFER_ASSIGN_OR_RETURN(
      HttpResponse r, execute("remove " + h.path(), http::make_request("DELETE", url_of(h), {})));
  if (!r.ok())
    return fail(status_error("remove", h.path(), r));
  return {};
}

Result<void> RestBackend::create() {
  auto existing = stat(Handle{FileKind::kConfig, "config"});
  if (existing)
    return fail(Errc::kInvalidArgument, location() + ": a repository exists there already");
  if (existing.error().code != Errc::kNotFound)
    return fail(existing.error());
  COFFER_ASSIGN_OR_RETURN(
      HttpResponse r,
      execute("create", http::make_request("POST", options_.base_url + "?create=true", {})));
  if (!r.ok())
    return fail(status_error("create", "repository", r));
  return {};
}

}  // namespace coffer::repo
