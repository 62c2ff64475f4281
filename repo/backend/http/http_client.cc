#include "repo/backend/http/http_client.h"

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <random>
#include <thread>

#include <curl/curl.h>
#include <fcntl.h>

#include "repo/core/cancel.h"

namespace coffer::repo::http {
namespace {

void global_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct SlistFree {
  void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};
using Slist = std::unique_ptr<curl_slist, SlistFree>;

// The largest body reserved up front from its Content-Length.
constexpr std::uint64_t kMaxReserve = 64ULL << 20;

// What the curl callbacks of one transfer write into.
struct Transfer {
  HttpResponse* resp = nullptr;
  Bytes* sink = nullptr;
  long status = 0;  // of the response whose headers arrived last (100 Continue is skipped)
};

std::string trim(std::string s) {
  while (!s.empty() && (std::isspace(static_cast<unsigned char>(s.back())) != 0)) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i])) != 0) ++i;
  return s.substr(i);
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string line(data, size * n);
  if (line.starts_with("HTTP/")) {  // a new response (after 100 Continue or a retry)
    t->resp->headers.clear();
    auto sp = line.find(' ');
    t->status = sp == std::string::npos ? 0 : std::strtol(line.c_str() + sp + 1, nullptr, 10);
    return size * n;
  }
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    t->resp->headers[name] = trim(line.substr(colon + 1));
  }
  return size * n;
}

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  Bytes& out =
      (t->sink != nullptr && t->status >= 200 && t->status < 300) ? *t->sink : t->resp->body;
  if (out.empty()) {
    // The whole body at once (a pack range of several MiB would otherwise grow by doubling,
    // copying it and holding up to twice its size), within reason for what a server claims.
    auto length = t->resp->headers.find("content-length");
    if (length != t->resp->headers.end()) {
      std::uint64_t expected = std::strtoull(length->second.c_str(), nullptr, 10);
      if (expected <= kMaxReserve)
        out.reserve(static_cast<std::size_t>(expected));
    }
  }
  out.insert(out.end(), bytes, bytes + size * n);
  t->resp->bytes_received += size * n;
  return size * n;
}

// Aborts the transfer (CURLE_ABORTED_BY_CALLBACK) once a cancel is requested.
int on_progress(void* /*user*/, curl_off_t /*dltotal*/, curl_off_t /*dlnow*/,
                curl_off_t /*ultotal*/, curl_off_t /*ulnow*/) {
  return cancel_requested() ? 1 : 0;
}

HttpResponse cancelled_response() {
  HttpResponse r;
  r.error = "interrupted";
  r.cancelled = true;
  r.permanent = true;
  return r;
}

// Stream mode: HTTP/2 with prior knowledge over the one relayed connection.
void configure_stream(CURL* h, const std::string& socket_name) {
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE));
  curl_easy_setopt(h, CURLOPT_ABSTRACT_UNIX_SOCKET, socket_name.c_str());
}

void configure_method(CURL* h, const HttpRequest& req) {
  if (req.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (req.method == "POST") {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  } else if (req.method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
}

// Sets every option of one request on a freshly reset handle.
void configure(CURL* h, const HttpConfig& c, const HttpRequest& req, curl_slist* headers,
               Transfer* t) {
  curl_easy_setopt(h, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, c.allow_http ? "http,https" : "https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!c.ca_file.empty())
    curl_easy_setopt(h, CURLOPT_CAINFO, c.ca_file.c_str());
  curl_easy_setopt(h, CURLOPT_USERAGENT, c.user_agent.c_str());
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c.connect_timeout_s);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, c.low_speed_bytes);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c.low_speed_time_s);
  std::uint64_t bytes = req.body.size() + req.expected_bytes;
  long deadline = c.timeout_s + static_cast<long>(bytes / static_cast<std::uint64_t>(c.min_rate));
  curl_easy_setopt(h, CURLOPT_TIMEOUT, deadline);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &on_progress);
  if (!c.username.empty() || !c.password.empty()) {
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(h, CURLOPT_USERNAME, c.username.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, c.password.c_str());
  }
  configure_method(h, req);
}

// A body that ended before its Content-Length (curl reports most of these itself).
bool body_short(const HttpRequest& req, const HttpResponse& r) {
  std::string cl = r.header("content-length");
  if (req.method == "HEAD" || cl.empty())
    return false;
  return std::strtoull(cl.c_str(), nullptr, 10) != r.bytes_received;
}

}  // namespace

HttpRequest make_request(std::string method, std::string url, std::vector<std::string> headers,
                         ByteSpan body) {
  HttpRequest req;
  req.method = std::move(method);
  req.url = std::move(url);
  req.headers = std::move(headers);
  req.body = body;
  return req;
}

std::string HttpResponse::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

// Idle easy handles; `created` counts handles alive (idle or lent out). Lock order: mutex only.
struct HttpClient::Pool {
  std::mutex mutex;
  std::condition_variable freed;
  std::vector<CURL*> idle;
  unsigned created = 0;
  unsigned limit = 1;

  CURL* acquire() {
    std::unique_lock lock(mutex);
    freed.wait(lock, [&] { return !idle.empty() || created < limit; });
    if (!idle.empty()) {
      CURL* h = idle.back();
      idle.pop_back();
      return h;
    }
    ++created;
    return nullptr;  // the caller creates one (outside the lock)
  }

  void release(CURL* h, bool discard) {
    if (discard && h != nullptr) {
      curl_easy_cleanup(h);
      h = nullptr;
    }
    std::scoped_lock lock(mutex);
    if (h != nullptr)
      idle.push_back(h);
    else
      --created;
    freed.notify_one();
  }

  ~Pool() {
    for (CURL* h : idle) curl_easy_cleanup(h);
  }
};

HttpClient::HttpClient(HttpConfig config)
    : config_(std::move(config)), pool_(new Pool), breaker_(config_.breaker) {
  global_init_once();
  pool_->limit = stream_mode() ? 1U : std::max(1U, config_.connections);
}

HttpClient::~HttpClient() = default;

HttpResponse HttpClient::perform(const HttpRequest& req) {
  if (cancel_requested())
    return cancelled_response();
  HttpResponse resp;
  if (!stream_mode()) {
    if (auto refused = breaker_.refuse(CircuitBreaker::Clock::now(), cancel_shielded())) {
      resp.error = std::move(*refused);
      resp.permanent = true;
      resp.short_circuited = true;
      return resp;
    }
  }
  CURL* h = pool_->acquire();
  if (h == nullptr)
    h = curl_easy_init();
  if (h == nullptr) {
    pool_->release(nullptr, true);
    resp.error = "cannot create a curl handle";
    return resp;
  }
  bool discard = transfer(h, req, resp);
  pool_->release(h, discard);
  if (resp.cancelled)
    return cancelled_response();
  if (!stream_mode() && (resp.connection_failed() || resp.status > 0))
    breaker_.attempt_done(resp.connection_failed(), resp.error, CircuitBreaker::Clock::now());
  return resp;
}

void HttpClient::retries_exhausted(const HttpResponse& last) {
  if (!stream_mode() && last.connection_failed())
    breaker_.retries_exhausted(CircuitBreaker::Clock::now());
}

// One exchange on handle `h`; returns whether the handle must be discarded.
bool HttpClient::transfer(CURL* h, const HttpRequest& req, HttpResponse& resp) {
  curl_easy_reset(h);  // keeps the connection cache
  Slist headers;
  std::vector<std::string> lines = req.headers;
  lines.emplace_back("Expect:");  // no 100-continue round trip before uploads
  for (const auto& line : lines) {
    curl_slist* l = curl_slist_append(headers.get(), line.c_str());
    if (l != nullptr) {
      (void)headers.release();
      headers.reset(l);
    }
  }
  Transfer t{&resp, req.sink, 0};
  configure(h, config_, req, headers.get(), &t);
  if (stream_mode())
    configure_stream(h, config_.stream_socket);
  CURLcode rc = curl_easy_perform(h);
  curl_off_t sent = 0;
  curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &sent);
  resp.bytes_sent = static_cast<std::uint64_t>(sent);
  resp.status = t.status;
  finish(rc, req, resp);
  if (rc == CURLE_ABORTED_BY_CALLBACK)
    return !stream_mode();  // the connection is mid-exchange
  bool discard = !resp.error.empty() || resp.status == 408 || resp.status >= 500;
  return discard && !stream_mode();  // stream mode: the one connection lives in this handle
}

// Sets the error fields of `resp` after curl returned `rc`.
void HttpClient::finish(int rc, const HttpRequest& req, HttpResponse& resp) const {
  auto code = static_cast<CURLcode>(rc);
  if (code != CURLE_OK)
    resp.error = curl_easy_strerror(code);
  else if (body_short(req, resp))
    resp.error = "the response body is shorter than its Content-Length";
  resp.cancelled = code == CURLE_ABORTED_BY_CALLBACK;
  resp.permanent = code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CACERT_BADFILE ||
                   code == CURLE_UNSUPPORTED_PROTOCOL || code == CURLE_URL_MALFORMAT ||
                   resp.cancelled;
  if (stream_mode() && code == CURLE_COULDNT_CONNECT) {
    resp.error = "the connection to the server was lost";
    resp.permanent = true;  // stream mode has a single connection
  }
}

bool backoff_sleep(std::chrono::milliseconds base, unsigned attempt,
                   std::chrono::milliseconds cap) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  auto step = base * (1LL << std::min(attempt == 0 ? 0U : attempt - 1, 16U));
  auto capped = std::min<std::chrono::milliseconds>(step, cap);
  return sleep_unless_cancelled(
      std::chrono::duration<double, std::milli>(static_cast<double>(capped.count()) * jitter(rng)));
}

}  // namespace coffer::repo::http
