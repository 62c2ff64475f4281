#include "repo/backend/rest/rclone_backend.h"

#include <cerrno>
#include <cstring>
#include <random>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "repo/core/log.h"

extern char** environ;

namespace coffer::repo {
namespace {

constexpr int kReadyAttempts = 300;  // times 50 ms: how long rclone may take to listen

// What the child gets: argv, extra environment entries, and its stdin/stdout (a socket in
// stdio mode; else /dev/null and our stderr).
struct Launch {
  std::vector<std::string> argv;
  std::vector<std::string> env;
  int stdio = -1;
};

// Spawns `l` in a new process group with no inherited descriptor beyond 0, 1 and 2.
// Returns 0 or the errno of the failure.
int spawn_child(const Launch& l, pid_t& pid) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  if (l.stdio >= 0) {
    posix_spawn_file_actions_adddup2(&actions, l.stdio, 0);
    posix_spawn_file_actions_adddup2(&actions, l.stdio, 1);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, 2, 1);  // keep our stdout clean (--json)
  }
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> args;
  for (const auto& a : l.argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
  for (const auto& e : l.env) env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);
  int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), env.data());
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  return rc;
}

std::string describe_status(int status) {
  if (WIFEXITED(status))
    return "rclone exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "rclone was killed by signal " + std::to_string(WTERMSIG(status));
  return "rclone stopped";
}

std::string random_hex() {
  std::random_device rd;
  char buf[33];
  std::snprintf(buf, sizeof buf, "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return buf;
}

// A loopback TCP port that was free a moment ago (0 on failure).
int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

bool port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  bool ok = fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  if (fd >= 0)
    close(fd);
  return ok;
}

}  // namespace

Result<std::unique_ptr<RcloneBackend>> RcloneBackend::start(RcloneOptions options) {
  if (options.program.empty())
    return fail(Errc::kInvalidArgument, "rclone.program is empty");
  Launch l;
  l.argv.push_back(options.program);
  std::istringstream words(options.args);
  bool stdio = false;
  for (std::string w; words >> w;) {
    stdio = stdio || w == "--stdio";
    l.argv.push_back(w);
  }
  RestOptions r;
  r.location = "rclone:" + options.remote;
  int sv[2] = {-1, -1};
  if (stdio) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
      return fail(Errc::kIo, std::string("rclone: socketpair: ") + std::strerror(errno));
    l.stdio = sv[1];
    r.base_url = "http://localhost/";
  } else {
    int port = free_port();
    r.username = random_hex();
    r.password = random_hex();
    l.argv.insert(l.argv.end(), {"--addr", "127.0.0.1:" + std::to_string(port)});
    l.env = {"RCLONE_USER=" + r.username, "RCLONE_PASS=" + r.password};
    r.base_url = "http://127.0.0.1:" + std::to_string(port) + "/";
  }
  l.argv.push_back(options.remote);
  pid_t pid = -1;
  int rc = spawn_child(l, pid);
  if (stdio)
    close(sv[1]);
  if (rc != 0) {
    if (stdio)
      close(sv[0]);
    return fail(Errc::kInvalidArgument, "cannot run rclone program \"" + options.program +
                                            "\": " + std::strerror(rc) +
                                            " (install rclone or set -o rclone.program=PATH)");
  }
  std::unique_ptr<RcloneBackend> b(new RcloneBackend(std::move(options), pid));
  COFFER_TRY(stdio ? b->connect_stdio(sv[0], std::move(r)) : b->connect_tcp(std::move(r)));
  return b;
}

RcloneBackend::RcloneBackend(RcloneOptions options, pid_t child)
    : options_(std::move(options)), child_(child) {}

Result<void> RcloneBackend::connect_stdio(int fd, RestOptions r) {
  COFFER_ASSIGN_OR_RETURN(relay_, StreamRelay::start(fd));
  r.connections = 1;
  r.stream_socket = relay_->name();
  rest_ = std::make_unique<RestBackend>(std::move(r));
  return {};
}

Result<void> RcloneBackend::connect_tcp(RestOptions r) {
  std::string port = r.base_url.substr(r.base_url.rfind(':') + 1);
  for (int i = 0; i < kReadyAttempts; ++i) {
    if (port_open(std::atoi(port.c_str()))) {
      rest_ = std::make_unique<RestBackend>(std::move(r));
      return {};
    }
    {
      std::scoped_lock lock(mutex_);
      if (waitpid(child_, &exit_status_, WNOHANG) == child_) {
        child_ = -1;
        return fail(Errc::kIo, location() + ": " + describe_status(exit_status_) +
                                   " before serving (see its messages above)");
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return fail(Errc::kIo, location() + ": rclone did not start serving within 15 s");
}

RcloneBackend::~RcloneBackend() {
  bool tcp = relay_ == nullptr;
  rest_.reset();   // closes curl's connections
  relay_.reset();  // stdio mode: closes our end, rclone sees the end of its input and exits
  {
    std::scoped_lock lock(mutex_);
    if (child_ >= 0 && tcp)
      kill(-child_, SIGTERM);  // a TCP server runs until told to stop
  }
  stop_child();
}

void RcloneBackend::stop_child() {
  std::scoped_lock lock(mutex_);
  if (child_ < 0)
    return;
  auto deadline = std::chrono::steady_clock::now() + options_.exit_timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(child_, &exit_status_, WNOHANG) == child_) {
      child_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  log::warn("rclone did not exit in time; killing it");
  kill(-child_, SIGKILL);
  waitpid(child_, &exit_status_, 0);
  child_ = -1;
}

template <class T>
Result<T> RcloneBackend::explain(Result<T> r) {
  if (r || r.error().code != Errc::kIo)
    return r;
  std::scoped_lock lock(mutex_);
  if (child_ >= 0) {
    // The child may be about to exit after closing the stream; give it a moment.
    for (int i = 0; i < 50 && child_ >= 0; ++i) {
      if (waitpid(child_, &exit_status_, WNOHANG) == child_)
        child_ = -1;
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (child_ >= 0)
    return r;
  return fail(Errc::kIo,
              location() + ": " + describe_status(exit_status_) + " (see its messages above)");
}

BackendProperties RcloneBackend::properties() const { return rest_->properties(); }

Result<Bytes> RcloneBackend::load(const Handle& h, std::uint64_t offset, std::uint64_t length) {
  return explain(rest_->load(h, offset, length));
}

Result<std::uint64_t> RcloneBackend::stat(const Handle& h) { return explain(rest_->stat(h)); }

Result<void> RcloneBackend::list(FileKind kind,
                                 const std::function<Result<void>(const FileInfo&)>& fn) {
  return explain(rest_->list(kind, fn));
}

Result<void> RcloneBackend::save(const Handle& h, ByteSpan data) {
  return explain(rest_->save(h, data));
}

Result<void> RcloneBackend::remove(const Handle& h) { return explain(rest_->remove(h)); }

Result<void> RcloneBackend::create() { return explain(rest_->create()); }

}  // namespace coffer::repo
