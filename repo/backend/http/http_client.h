// HttpClient: blocking HTTP requests on libcurl for the remote backends (b2, rest, rclone), over
// a bounded pool of reused easy handles (keep-alive connections). Internal to repo/backend;
// <curl/curl.h> stays in http_client.cc.
//
// A request waits for a free handle, so at most `connections` requests are in flight at once.
// A handle whose request failed at the transport level, or was answered 408 or 5xx, is
// destroyed rather than reused (its TCP connection may be in an unknown state; B2 says to
// drop an upload connection after any error). Every request carries a deadline: a connect
// timeout, a low-speed abort and a total timeout that grows with the bytes to move.
//
// Stream mode (rclone): with HttpConfig::stream_socket set, the client speaks HTTP/2 with
// prior knowledge over one connection to that abstract Unix socket (a StreamRelay that accepts
// a single connection). Requests are serialized on one easy handle, which is never discarded
// over an HTTP status; once the connection broke, every request fails (marked permanent).
//
// Cancellation (repo/core/cancel.h): once a cancel is requested, perform() sends nothing and a
// running transfer is aborted from curl's progress callback (checked at least once a second);
// the response comes back `cancelled`, and backoff_sleep() returns early.
//
// Circuit breaker (circuit_breaker.h): while the server is unreachable, perform() fails at once
// with the last connection error, `short_circuited` and permanent. The callers' retry loops
// report a request whose retries are spent with retries_exhausted(). A request made inside a
// CancelShield (deleting the lock) may probe an open breaker once per trip. Not in stream mode.
//
// Thread contract: perform() is safe to call from any number of threads. Ownership: the
// client owns its handles; a request's body and sink are borrowed for the call only.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "repo/backend/http/circuit_breaker.h"
#include "repo/core/bytes.h"

namespace coffer::repo::http {

struct HttpConfig {
  unsigned connections = 8;
  std::string ca_file;      // "" = the system store
  bool allow_http = false;  // plain http:// only for an explicit endpoint override
  long connect_timeout_s = 10;
  long low_speed_bytes = 1024;  // abort a transfer slower than this ...
  long low_speed_time_s = 60;   // ... for this long
  long timeout_s = 120;         // total deadline of a request, plus the size term below
  long min_rate = 64 * 1024;    // bytes/s assumed when scaling the deadline with the size
  std::string user_agent = "coffer/0.1.0";
  std::string username;  // HTTP basic auth when not empty (never logged)
  std::string password;
  std::string stream_socket;  // not empty: stream mode over this abstract Unix socket
  BreakerConfig breaker;
};

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, POST or DELETE
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  ByteSpan body;                     // POST body (sent with Content-Length, never chunked)
  std::uint64_t expected_bytes = 0;  // download size if known (for the deadline)
  Bytes* sink = nullptr;  // if set, 2xx response bodies are appended here (kept on failure)
};

// A request without sink or size hint.
HttpRequest make_request(std::string method, std::string url, std::vector<std::string> headers,
                         ByteSpan body = {});

struct HttpResponse {
  long status = 0;               // 0: the transfer failed (see error)
  std::string error;             // transport error text ("" when the exchange completed)
  bool permanent = false;        // the error cannot go away by retrying (TLS trust, bad URL)
  bool cancelled = false;        // a cancel request stopped it (also permanent)
  bool short_circuited = false;  // not sent: the circuit breaker is open (also permanent)
  std::map<std::string, std::string> headers;  // lower-case names, of the final response
  Bytes body;                                  // the body unless it went to the request's sink
  std::uint64_t bytes_sent = 0;                // request body bytes that left this host
  std::uint64_t bytes_received = 0;            // response body bytes received

  [[nodiscard]] bool ok() const { return status >= 200 && status < 300 && error.empty(); }
  // No HTTP answer arrived and retrying might help (refused, reset, timed out).
  [[nodiscard]] bool connection_failed() const { return status == 0 && !permanent; }
  // The value of header `name` (lower case), or "".
  [[nodiscard]] std::string header(const std::string& name) const;
};

class HttpClient {
 public:
  explicit HttpClient(HttpConfig config);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `req` and waits for the answer. Never fails as a call: transport failures (refused,
  // reset, timeout, a body shorter than its Content-Length) come back with status 0 and
  // `error` set, or with the status and `error` set when the body broke off.
  HttpResponse perform(const HttpRequest& req);
  // A caller's retries of a request are spent and `last` was its final answer; counts towards
  // opening the circuit breaker if it was a connection failure.
  void retries_exhausted(const HttpResponse& last);

  [[nodiscard]] const HttpConfig& config() const { return config_; }
  [[nodiscard]] bool stream_mode() const { return !config_.stream_socket.empty(); }

 private:
  struct Pool;
  bool transfer(void* h, const HttpRequest& req, HttpResponse& resp);
  void finish(int rc, const HttpRequest& req, HttpResponse& resp) const;

  HttpConfig config_;
  std::unique_ptr<Pool> pool_;
  CircuitBreaker breaker_;
};

// Sleeps before retry number `attempt` (1 = the first retry): `base` doubled per attempt,
// capped at `cap`, times a random factor in [0.5, 1.5) so that clients do not retry in step.
// Returns false if a cancel request ended the sleep early (within about 50 ms).
bool backoff_sleep(std::chrono::milliseconds base, unsigned attempt, std::chrono::milliseconds cap);

}  // namespace coffer::repo::http
