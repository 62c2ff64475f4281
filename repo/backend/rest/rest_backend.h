// RestBackend: a repository behind restic's REST protocol (rest-server, `rclone serve restic`),
// version 2: GET/HEAD/POST/DELETE on <base>config and <base><dir>/<name> (packs flat as
// data/<id>; the server adds the two-digit folders), lists as GET <base><dir>/ with
// `Accept: application/vnd.x.restic.rest.v2` (a v1 server's plain name array is accepted too,
// and its sizes are fetched with HEAD), ranged loads with `Range: bytes=a-b`, and
// POST <base>?create=true to create the layout.
//
// Transport failures, 5xx answers (other than 507) and 408/429 are retried with bounded
// exponential backoff; then the call fails with kIo. 404 is kNotFound, 401/403 kAccessDenied,
// 416 kCorrupt, 507 kIo "server out of space" (not retried). A cancel request
// (repo/core/cancel.h) ends a request or a backoff with kCancelled, except while removing a lock
// file; while the server is unreachable the circuit breaker (http_client.h) fails requests at
// once. Messages name the location with
// any password replaced by "***"; credentials never reach a message or a log.
//
// save() checks with HEAD that the name does not exist yet (backend.h's contract); this costs
// a request per saved file and is not atomic against a concurrent writer of the same name.
//
// Thread contract: every method is safe to call concurrently (backend.h); at most
// `connections` requests are in flight at once (one in stream mode, see http_client.h).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "repo/backend/backend.h"

namespace coffer::repo {

namespace http {
class HttpClient;
struct HttpRequest;
struct HttpResponse;
}  // namespace http

// A rest: URL taken apart: "http://user:pass@host:8000/path/" gives base
// "http://host:8000/path/", the credentials, and redacted "rest:http://user:***@host:8000/path/".
struct RestUrl {
  std::string base;  // scheme://host[:port]/path/ without credentials, ending in '/'
  std::string username;
  std::string password;  // the secret: never printed
  std::string redacted;  // "rest:" + the URL with the password replaced by "***"
};

// Parses the part after "rest:". User and password may be percent-encoded.
// Errors: kInvalidArgument (not http:// or https://, no host).
Result<RestUrl> parse_rest_url(std::string_view url);

struct RestOptions {
  std::string base_url;  // ends in '/'
  std::string username;
  std::string password;  // never printed
  std::string location;  // what location() returns (already redacted)
  unsigned connections = 5;
  unsigned attempts = 6;                   // tries of one request before giving up
  std::chrono::milliseconds backoff{500};  // first backoff step (doubles, capped at 16 s)
  long timeout_s = 120;                    // per-request deadline (plus a size term)
  std::string stream_socket;               // not empty: HTTP/2 over this relay socket (rclone)
};

class RestBackend final : public WriteBackend {
 public:
  explicit RestBackend(RestOptions options);
  ~RestBackend() override;
  RestBackend(const RestBackend&) = delete;
  RestBackend& operator=(const RestBackend&) = delete;

  Result<Bytes> load(const Handle& h, std::uint64_t offset, std::uint64_t length) override;
  Result<std::uint64_t> stat(const Handle& h) override;
  Result<void> list(FileKind kind, const std::function<Result<void>(const FileInfo&)>& fn) override;
  [[nodiscard]] std::string location() const override { return options_.location; }
  [[nodiscard]] BackendProperties properties() const override;

  Result<void> save(const Handle& h, ByteSpan data) override;
  Result<void> remove(const Handle& h) override;
  // Errors: kInvalidArgument if a config exists there already; those of the requests.
  Result<void> create() override;

 private:
  [[nodiscard]] std::string url_of(const Handle& h) const;
  Result<std::uint64_t> stat_by_range(const Handle& h);
  // Sends `req` with retries; returns the last answer unless it was transient every time.
  Result<http::HttpResponse> execute(const std::string& op, const http::HttpRequest& req);
  // The error for a non-2xx answer of `op` on `what`.
  [[nodiscard]] Error status_error(const std::string& op, const std::string& what,
                                   const http::HttpResponse& r) const;
  Result<void> list_names(FileKind kind, const http::HttpResponse& r,
                          const std::function<Result<void>(const FileInfo&)>& fn);
  // False if a cancel request cut the wait short.
  [[nodiscard]] bool backoff(unsigned attempt) const;

  RestOptions options_;
  std::unique_ptr<http::HttpClient> http_;
};

}  // namespace coffer::repo
