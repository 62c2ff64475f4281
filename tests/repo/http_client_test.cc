// The HTTP client's circuit breaker and cancellation, against a real TCP server on loopback
// (tests/repo/loopback below) that either closes every connection at once (the server is
// unreachable as far as HTTP goes), answers, or accepts and never answers. The connections it
// accepts are counted: a request the breaker refuses makes none.
#include "repo/backend/http/http_client.h"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "repo/backend/http/circuit_breaker.h"
#include "repo/backend/rest/rest_backend.h"
#include "repo/core/cancel.h"

namespace coffer::repo {
namespace {

enum class Mode { kClose, kAnswer404, kHang };

// A one-thread HTTP/1.1 server on 127.0.0.1 serving one request per connection.
class LoopbackServer {
 public:
  LoopbackServer() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listen_fd_, 64) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~LoopbackServer() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  [[nodiscard]] std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/repo/";
  }
  [[nodiscard]] int accepted() const { return accepted_; }
  void set_mode(Mode m) { mode_ = m; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0)
        continue;
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0)
        continue;
      ++accepted_;
      if (mode_ == Mode::kAnswer404)
        answer(fd);
      else if (mode_ == Mode::kHang)
        hang(fd);
      ::close(fd);
    }
  }
  static void answer(int fd) {
    std::string request;
    char buf[4096];
    while (request.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0)
        return;
      request.append(buf, static_cast<std::size_t>(n));
    }
    std::string reply = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    (void)::write(fd, reply.data(), reply.size());
  }
  void hang(int fd) const {  // holds the connection, answering nothing, until the peer leaves
    char buf[4096];
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) > 0 && ::read(fd, buf, sizeof buf) <= 0)
        return;
    }
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<Mode> mode_{Mode::kClose};
  std::thread thread_;
};

RestOptions rest_options(const LoopbackServer& server) {
  RestOptions o;
  o.base_url = server.url();
  o.location = "rest:" + server.url();
  o.connections = 2;
  o.attempts = 3;
  o.backoff = std::chrono::milliseconds(1);
  return o;
}

const Handle kConfig{FileKind::kConfig, "config"};

// Installs a cancel flag for one test case.
struct CancelFlag {
  std::atomic<bool> flag{false};
  CancelFlag() { set_cancel_flag(&flag); }
  ~CancelFlag() { set_cancel_flag(nullptr); }
};

}  // namespace

TEST_CASE("the breaker opens after two requests spent their retries on a dead server", "[http]") {
  LoopbackServer server;
  RestBackend backend(rest_options(server));
  for (int i = 0; i < 2; ++i) {
    auto r = backend.stat(kConfig);
    REQUIRE(!r);
    CHECK(r.error().code == Errc::kIo);
    CHECK(r.error().message.find("failed after 3 attempts") != std::string::npos);
  }
  CHECK(server.accepted() == 6);
  for (int i = 0; i < 5; ++i) {  // refused at once: no connection, no retries
    auto r = backend.stat(kConfig);
    REQUIRE(!r);
    CHECK(r.error().code == Errc::kIo);
    CHECK(r.error().message.find("the server is unreachable") != std::string::npos);
  }
  CHECK(server.accepted() == 6);
  const Handle lock{FileKind::kLock, std::string(64, 'b')};
  {
    CancelShield essential;  // deleting the lock probes the server once, then gives up too
    CHECK(backend.remove(lock).error().message.find("unreachable") != std::string::npos);
    CHECK(server.accepted() == 7);
    CHECK(backend.remove(lock).error().message.find("unreachable") != std::string::npos);
    CHECK(server.accepted() == 7);
  }
}

TEST_CASE("a lock deletion probing an open breaker closes it when answered", "[http]") {
  LoopbackServer server;
  RestBackend backend(rest_options(server));
  for (int i = 0; i < 3; ++i) CHECK(!backend.stat(kConfig));
  CHECK(server.accepted() == 6);
  server.set_mode(Mode::kAnswer404);
  CHECK(backend.remove(Handle{FileKind::kLock, std::string(64, 'c')}).error().code ==
        Errc::kNotFound);  // remove() shields lock files itself
  CHECK(server.accepted() == 7);
  CHECK(backend.stat(kConfig).error().code == Errc::kNotFound);
  CHECK(server.accepted() == 8);
}

TEST_CASE("the breaker ignores answers, even errors, and closes after its cool-down", "[http]") {
  LoopbackServer server;
  http::HttpConfig c;
  c.allow_http = true;
  c.breaker.trip_after = 2;
  c.breaker.cooldown = std::chrono::milliseconds(100);
  http::HttpClient client(c);
  auto get = [&] { return client.perform(http::make_request("GET", server.url() + "config", {})); };
  server.set_mode(Mode::kAnswer404);
  for (int i = 0; i < 3; ++i) client.retries_exhausted(get());  // answered: never counts
  CHECK(get().status == 404);
  server.set_mode(Mode::kClose);
  http::HttpResponse failed = get();
  CHECK(failed.connection_failed());
  client.retries_exhausted(failed);
  CHECK(!get().short_circuited);  // one exhausted request is not enough
  client.retries_exhausted(failed);
  int before = server.accepted();
  http::HttpResponse refused = get();
  CHECK(refused.short_circuited);
  CHECK(refused.permanent);
  CHECK(server.accepted() == before);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));  // past the cool-down
  server.set_mode(Mode::kAnswer404);
  CHECK(get().status == 404);  // the probe gets through, and the answer closes the breaker
  server.set_mode(Mode::kClose);
  CHECK(!get().short_circuited);
  CHECK(!get().short_circuited);
}

TEST_CASE("the breaker trips when every attempt failed for its window, without gaps", "[http]") {
  using std::chrono::milliseconds;
  http::CircuitBreaker b(http::BreakerConfig{100, milliseconds(1000), milliseconds(500)});
  const auto t0 = http::CircuitBreaker::Clock::now();
  b.attempt_done(true, "Connection refused", t0);
  b.attempt_done(true, "Connection refused", t0 + milliseconds(2000));  // after a quiet gap
  CHECK(!b.open());
  b.attempt_done(true, "Connection refused", t0 + milliseconds(2600));
  CHECK(!b.open());
  b.attempt_done(false, "", t0 + milliseconds(2700));  // an answer starts afresh
  b.attempt_done(true, "Connection refused", t0 + milliseconds(3600));
  CHECK(!b.open());
  b.attempt_done(true, "Connection refused", t0 + milliseconds(4200));
  CHECK(!b.open());
  b.attempt_done(true, "Connection refused", t0 + milliseconds(4700));  // 1.1 s of failures
  CHECK(b.open());
  auto refused = b.refuse(t0 + milliseconds(4800), false);
  REQUIRE(refused);
  CHECK(refused->find("Connection refused") == 0);
  CHECK(b.refuse(t0 + milliseconds(4800), true) == std::nullopt);  // one essential probe
  CHECK(b.refuse(t0 + milliseconds(4800), true));
  CHECK(b.refuse(t0 + milliseconds(5300), false) == std::nullopt);      // cool-down over
  b.attempt_done(true, "Connection refused", t0 + milliseconds(5300));  // the probe failed
  CHECK(b.open());
}

TEST_CASE("a cancel request ends backoffs and aborts transfers, except when shielded", "[http]") {
  CancelFlag cancel;
  LoopbackServer server;
  server.set_mode(Mode::kHang);
  http::HttpConfig c;
  c.allow_http = true;
  http::HttpClient client(c);
  std::thread ctrl_c([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel.flag = true;
  });
  // Without the cancel, this waits for the 120 s deadline.
  http::HttpResponse r = client.perform(http::make_request("GET", server.url() + "config", {}));
  ctrl_c.join();
  CHECK(r.cancelled);
  CHECK(r.permanent);
  CHECK(!r.connection_failed());
  CHECK(!http::backoff_sleep(std::chrono::hours(1), 1, std::chrono::hours(1)));
  int before = server.accepted();
  CHECK(client.perform(http::make_request("GET", server.url() + "config", {})).cancelled);
  CHECK(server.accepted() == before);  // nothing sent once cancelled
  {
    CancelShield shield;
    CHECK(!cancel_requested());
    CHECK(http::backoff_sleep(std::chrono::milliseconds(1), 1, std::chrono::milliseconds(1)));
  }
  CHECK(cancel_requested());
  server.set_mode(Mode::kClose);
  RestOptions o = rest_options(server);
  o.backoff = std::chrono::hours(1);
  RestBackend backend(o);
  auto stat = backend.stat(kConfig);
  REQUIRE(!stat);
  CHECK(stat.error().code == Errc::kCancelled);
}

TEST_CASE("a shielded lock removal still reaches the server after a cancel", "[http]") {
  CancelFlag cancel;
  LoopbackServer server;
  server.set_mode(Mode::kAnswer404);
  cancel.flag = true;
  RestBackend backend(rest_options(server));
  CHECK(backend.stat(kConfig).error().code == Errc::kCancelled);
  CHECK(server.accepted() == 0);
  auto removed = backend.remove(Handle{FileKind::kLock, std::string(64, 'a')});
  REQUIRE(!removed);
  CHECK(removed.error().code == Errc::kNotFound);  // the DELETE was sent and answered
  CHECK(server.accepted() == 1);
}

}  // namespace coffer::repo
