// RcloneBackend: a repository reached through `rclone serve restic REMOTE:PATH`, like
// restic's rclone: backend. Two modes, chosen by whether rclone.args contains --stdio:
//
// - TCP (the default, args "serve restic --b2-hard-delete"): the child listens on a free
//   loopback port (--addr 127.0.0.1:PORT) with a random user and password handed over in its
//   environment (RCLONE_USER, RCLONE_PASS; never in argv), and a RestBackend talks HTTP/1.1 to
//   it over up to 5 connections. start() waits until the port accepts connections.
// - stdio (restic's way, "serve restic --stdio ..."): the child gets one end of a socketpair as
//   stdin and stdout and speaks HTTP/2 (prior knowledge); a RestBackend in stream mode reaches
//   the other end through a StreamRelay. Debian 12's libcurl 7.88.1 cannot reuse such an
//   HTTP/2 connection (the second request fails with "Error in the HTTP2 framing layer", also
//   with the curl tool), so this mode only works with a newer libcurl; hence TCP by default.
//
// The child runs in its own process group (a Ctrl-C on coffer does not stop it mid-request),
// and inherits no descriptor but 0, 1 and 2 (stderr is ours, where its messages go; in TCP
// mode its stdout goes to our stderr too). Destruction closes the connections, tells a TCP
// server to stop (SIGTERM), waits up to 10 s for the child to exit, then kills it.
//
// Errors: kInvalidArgument when the program cannot be started (missing rclone); kIo when the
// child exited ("rclone exited with status 1") or never started serving, plus RestBackend's.
//
// Thread contract: every method is safe to call concurrently (backend.h). Ownership: the
// backend owns the child, the relay and the sockets.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <sys/types.h>

#include "repo/backend/backend.h"
#include "repo/backend/rest/rest_backend.h"
#include "repo/backend/rest/stream_relay.h"

namespace coffer::repo {

struct RcloneOptions {
  std::string remote;              // REMOTE:PATH (or a local path), appended to the args
  std::string program = "rclone";  // looked up in PATH
  std::string args = "serve restic --b2-hard-delete";  // split at spaces
  std::chrono::seconds exit_timeout{10};
};

class RcloneBackend final : public WriteBackend {
 public:
  // Starts the child. Errors: kInvalidArgument (the program cannot be run), kIo.
  static Result<std::unique_ptr<RcloneBackend>> start(RcloneOptions options);
  ~RcloneBackend() override;
  RcloneBackend(const RcloneBackend&) = delete;
  RcloneBackend& operator=(const RcloneBackend&) = delete;

  Result<Bytes> load(const Handle& h, std::uint64_t offset, std::uint64_t length) override;
  Result<std::uint64_t> stat(const Handle& h) override;
  Result<void> list(FileKind kind, const std::function<Result<void>(const FileInfo&)>& fn) override;
  [[nodiscard]] std::string location() const override { return "rclone:" + options_.remote; }
  [[nodiscard]] BackendProperties properties() const override;

  Result<void> save(const Handle& h, ByteSpan data) override;
  Result<void> remove(const Handle& h) override;
  Result<void> create() override;

 private:
  RcloneBackend(RcloneOptions options, pid_t child);
  // Sets up rest_ for the stdio mode over our socket end `fd` (taken over).
  Result<void> connect_stdio(int fd, RestOptions r);
  // Waits until the TCP server listens, then sets up rest_. Errors: kIo.
  Result<void> connect_tcp(RestOptions r);
  // `r` unchanged, unless it failed with kIo and the child has exited: then says so.
  template <class T>
  Result<T> explain(Result<T> r);
  void stop_child();

  RcloneOptions options_;
  std::mutex mutex_;                    // guards child_ and exit_status_ (reaping)
  pid_t child_ = -1;                    // -1 once reaped
  int exit_status_ = 0;                 // the wait status, once reaped
  std::unique_ptr<StreamRelay> relay_;  // stdio mode: owns our end of the socketpair
  std::unique_ptr<RestBackend> rest_;   // talks to relay_
};

}  // namespace coffer::repo
