// StreamRelay: lets libcurl reach a process that speaks HTTP on a socketpair (rclone's
// `serve restic --stdio`). It listens on a fresh abstract Unix socket, accepts the first
// connection that comes from this very process (SO_PEERCRED) and then copies bytes both ways
// between that connection and the socketpair end until either side closes.
//
// Why not hand the socketpair to curl directly: Debian 12's libcurl 7.88.1 ignores
// CURL_SOCKOPT_ALREADY_CONNECTED (curl issue #10626) and calls connect() on it anyway.
//
// Only one connection is ever relayed: the listener is closed after the first accept, so a
// second connection attempt (curl after a broken stream) is refused, never spliced mid-stream.
//
// Thread contract: construction and destruction on one thread; the relay runs on its own
// thread. Ownership: the relay owns `peer` and everything it opens; the destructor stops the
// thread and closes them all.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "repo/core/error.h"

namespace coffer::repo {

class StreamRelay {
 public:
  // Starts relaying to `peer` (taken over, closed by the relay). Errors: kIo.
  static Result<std::unique_ptr<StreamRelay>> start(int peer);
  ~StreamRelay();
  StreamRelay(const StreamRelay&) = delete;
  StreamRelay& operator=(const StreamRelay&) = delete;

  // The abstract socket's name, without the leading NUL (for CURLOPT_ABSTRACT_UNIX_SOCKET).
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  StreamRelay(int listener, int peer, int wake, std::string name);
  void run();
  int accept_own();     // the first connection from this process, or -1
  void copy(int conn);  // relays until a side closes or the wake fd fires

  int listener_ = -1;
  int peer_ = -1;
  int wake_ = -1;  // an eventfd: the destructor writes it to stop the thread
  std::string name_;
  std::thread thread_;
};

}  // namespace coffer::repo
