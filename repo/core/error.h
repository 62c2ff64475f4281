// Error and Result: how every expected failure in coffer travels.
//
// Thread contract: values only; no shared state.
// An Error carries a code (what kind of failure), a message with context added on the way
// up ("loading pack 3fa2…: MAC mismatch"), and whether retrying may help (network blips).
#pragma once

#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace coffer::repo {

enum class Errc {
  kNotFound,         // a file, blob, snapshot or path does not exist
  kCorrupt,          // bytes failed a MAC, hash, length or syntax check
  kIo,               // the OS or the network failed
  kAuth,             // no key opens with the given password
  kInvalidArgument,  // the caller asked for something malformed
  kUnsupported,      // a valid thing we do not handle (e.g. repo version 3)
  kLocked,           // a repository lock is held by someone else
  kCancelled,        // the user interrupted the operation
  kNoRepository,     // the repository location holds no repository
  kAccessDenied,     // the storage service refused our credentials or permissions (B2 key)
};

struct Error {
  Errc code = Errc::kIo;
  std::string message;
  bool retryable = false;

  // Returns a copy whose message is prefixed with `context` and ": ".
  [[nodiscard]] Error with_context(const std::string& context) const {
    return Error{code, context + ": " + message, retryable};
  }
};

// Short human name of an error code ("not found", "corrupt", ...).
const char* errc_name(Errc code);

template <class T>
class [[nodiscard]] Result : public tl::expected<T, Error> {
 public:
  using tl::expected<T, Error>::expected;
  Result(const tl::expected<T, Error>& e) : tl::expected<T, Error>(e) {}        // NOLINT
  Result(tl::expected<T, Error>&& e) : tl::expected<T, Error>(std::move(e)) {}  // NOLINT
};

inline tl::unexpected<Error> fail(Errc code, std::string message, bool retryable = false) {
  return tl::make_unexpected(Error{code, std::move(message), retryable});
}

inline tl::unexpected<Error> fail(Error e) { return tl::make_unexpected(std::move(e)); }

}  // namespace coffer::repo

#define COFFER_CAT_INNER(a, b) a##b
#define COFFER_CAT(a, b) COFFER_CAT_INNER(a, b)

// Returns the error of `e` from the enclosing function if `e` failed.
#define COFFER_TRY(e)                                    \
  do {                                                   \
    auto r_ = (e);                                       \
    if (!r_)                                             \
      return tl::make_unexpected(std::move(r_).error()); \
  } while (0)

// Evaluates `e`; on failure returns its error, else moves its value into `lhs`.
#define COFFER_ASSIGN_OR_RETURN(lhs, e)                                      \
  auto COFFER_CAT(r_, __LINE__) = (e);                                       \
  if (!COFFER_CAT(r_, __LINE__))                                             \
    return tl::make_unexpected(std::move(COFFER_CAT(r_, __LINE__)).error()); \
  lhs = std::move(*COFFER_CAT(r_, __LINE__))

// Like COFFER_TRY, but prefixes the error message with `ctx` (a std::string expression).
#define COFFER_TRY_CTX(e, ctx)                                             \
  do {                                                                     \
    auto r_ = (e);                                                         \
    if (!r_)                                                               \
      return tl::make_unexpected(std::move(r_).error().with_context(ctx)); \
  } while (0)
