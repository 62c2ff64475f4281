#include "repo/backend/rest/stream_relay.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <random>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace coffer::repo {
namespace {

std::string random_name() {
  std::random_device rd;
  std::uint64_t r = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  char buf[64];
  std::snprintf(buf, sizeof buf, "coffer-rclone-%d-%016llx", static_cast<int>(getpid()),
                static_cast<unsigned long long>(r));
  return buf;
}

// Writes all of `data` to `fd`; false if the other side is gone.
bool write_all(int fd, const char* data, std::size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// Moves one buffer from `from` to `to`; false on end of input or a failure.
bool pump(int from, int to) {
  std::array<char, 65536> buf;
  ssize_t n = read(from, buf.data(), buf.size());
  if (n < 0 && errno == EINTR)
    return true;
  if (n <= 0)
    return false;
  return write_all(to, buf.data(), static_cast<std::size_t>(n));
}

}  // namespace

Result<std::unique_ptr<StreamRelay>> StreamRelay::start(int peer) {
  std::string name = random_name();
  int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int wake = eventfd(0, EFD_CLOEXEC);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (listener < 0 || wake < 0 || bind(listener, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      listen(listener, 1) != 0) {
    std::string why = std::strerror(errno);
    for (int fd : {listener, wake, peer})
      if (fd >= 0)
        close(fd);
    return fail(Errc::kIo, "rclone: cannot set up the local socket: " + why);
  }
  return std::unique_ptr<StreamRelay>(new StreamRelay(listener, peer, wake, std::move(name)));
}

StreamRelay::StreamRelay(int listener, int peer, int wake, std::string name)
    : listener_(listener), peer_(peer), wake_(wake), name_(std::move(name)) {
  thread_ = std::thread([this] { run(); });
}

StreamRelay::~StreamRelay() {
  std::uint64_t one = 1;
  (void)!write(wake_, &one, sizeof one);
  thread_.join();
  for (int fd : {listener_, peer_, wake_})
    if (fd >= 0)
      close(fd);
}

void StreamRelay::run() {
  int conn = accept_own();
  close(listener_);  // nobody else gets in, not even a second connection of ours
  listener_ = -1;
  if (conn < 0)
    return;
  copy(conn);
  close(conn);
  shutdown(peer_, SHUT_WR);  // the child sees the end of its input
}

int StreamRelay::accept_own() {
  for (;;) {
    std::array<pollfd, 2> fds{pollfd{listener_, POLLIN, 0}, pollfd{wake_, POLLIN, 0}};
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (fds[1].revents != 0)
      return -1;
    int conn = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0)
      continue;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid == getpid())
      return conn;
    close(conn);  // another process found the name: not for it
  }
}

void StreamRelay::copy(int conn) {
  for (;;) {
    std::array<pollfd, 3> fds{pollfd{conn, POLLIN, 0}, pollfd{peer_, POLLIN, 0},
                              pollfd{wake_, POLLIN, 0}};
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR)
        continue;
      return;
    }
    if (fds[2].revents != 0)
      return;
    if (fds[0].revents != 0 && !pump(conn, peer_))
      return;
    if (fds[1].revents != 0 && !pump(peer_, conn))
      return;
  }
}

}  // namespace coffer::repo
