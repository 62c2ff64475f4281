// B2Backend: a repository in a Backblaze B2 bucket, over B2's native API (b2-api.md), with
// restic's layout under an optional prefix: <prefix>/config, <prefix>/keys/<id>,
// <prefix>/data/<xx>/<id>, ... (no prefix: the names start at the bucket's root).
//
// Calls: b2_authorize_account (v3) once and again on an expired or bad token; the bucket id
// from the key's restriction or b2_list_buckets; uploads to upload URLs from
// b2_get_upload_url, one URL per upload in flight, with the SHA-1 of the body; loads and stat
// by name on the download URL (ranged GET, HEAD); lists with paginated b2_list_file_names;
// remove deletes every version (b2_list_file_versions + b2_delete_file_version), falling back
// to b2_hide_file when the key may not delete; a lock file this backend stored itself is
// deleted by the fileId its upload returned. Retries follow b2-api.md §8 (see b2_api.h).
// Nothing is sent before the first call, so constructing the backend is cheap and offline.
//
// save() does not check whether the name exists already (that would cost a call per file):
// names are content hashes, and B2 keeps a second upload as a second version.
//
// Errors: kAccessDenied for a wrong key id/key, a key restricted to another bucket or
// prefix, or a capability the key lacks; kNoRepository for a missing bucket; kIo, not
// retryable, once the bounded retries are spent (network down, B2 unavailable); kNotFound,
// kCorrupt as backend.h says. Messages name B2 and never contain the key.
//
// Thread contract: every method is safe to call concurrently (backend.h); at most
// `connections` HTTP requests are in flight at once. counters() may be read at any time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "repo/backend/backend.h"

namespace coffer::repo {

struct B2Options {
  std::string bucket;
  std::string prefix;  // without leading or trailing '/'; "" = the bucket's root
  std::string key_id;  // application key id or account id
  std::string key;     // the secret: never printed
  std::string endpoint = "https://api.backblazeb2.com";
  bool endpoint_overridden = false;         // only then may the endpoint and B2's URLs be http://
  std::string ca_file;                      // "" = the system store
  unsigned connections = 10;                // HTTP connections (and upload URLs) in flight
  unsigned attempts = 8;                    // tries of one request before giving up
  std::chrono::milliseconds backoff{1000};  // first backoff step (doubles, capped at 64 s)
  long timeout_s = 120;                     // per-request deadline (plus a size term)
};

// Calls and bytes of one backend, by B2 transaction class (b2-api.md §9). Only answered
// calls (status < 400) count towards a class; a list call counts one per 1000 names
// returned, at least one. bytes_up/bytes_down count upload and download bodies.
struct B2Counters {
  std::uint64_t class_a = 0;  // uploads, get_upload_url, deletes, hides
  std::uint64_t class_b = 0;  // downloads, HEAD
  std::uint64_t class_c = 0;  // authorize, list_buckets, listings
  std::uint64_t bytes_up = 0;
  std::uint64_t bytes_down = 0;
  std::uint64_t requests = 0;  // every HTTP request sent, failed ones included
  std::uint64_t retries = 0;   // requests repeated after a transient failure
  std::uint64_t reauthorizations = 0;
};

namespace b2 {
class B2Api;
class UploadUrls;
}  // namespace b2

class B2Backend final : public WriteBackend {
 public:
  explicit B2Backend(B2Options options);
  ~B2Backend() override;
  B2Backend(const B2Backend&) = delete;
  B2Backend& operator=(const B2Backend&) = delete;

  Result<Bytes> load(const Handle& h, std::uint64_t offset, std::uint64_t length) override;
  Result<std::uint64_t> stat(const Handle& h) override;
  Result<void> list(FileKind kind, const std::function<Result<void>(const FileInfo&)>& fn) override;
  [[nodiscard]] std::string location() const override;
  [[nodiscard]] BackendProperties properties() const override;

  Result<void> save(const Handle& h, ByteSpan data) override;
  Result<void> remove(const Handle& h) override;
  void prepare_writes() override;  // one upload URL into the pool
  // Checks that the bucket exists and holds no config under the prefix (B2 has no folders).
  Result<void> create() override;

  // A snapshot of the counters so far.
  [[nodiscard]] B2Counters counters() const;
  // The counters as a backend-neutral report (service "B2").
  [[nodiscard]] std::optional<BackendUsage> usage() const override;

 private:
  [[nodiscard]] std::string object_name(const Handle& h) const;
  Result<void> list_prefix(FileKind kind, const std::string& prefix,
                           const std::function<Result<void>(const FileInfo&)>& fn);
  Result<Bytes> load_once(const Handle& h, std::uint64_t offset, std::uint64_t length);
  Result<bool> delete_versions(const std::string& name);
  // Deletes one version: true, or false if B2 says it is not there (file_not_present).
  Result<bool> delete_version(const std::string& name, const std::string& file_id);
  Result<void> hide(const std::string& name);

  B2Options options_;
  std::unique_ptr<b2::B2Api> api_;  // refers to options_
  std::unique_ptr<b2::UploadUrls> uploads_;
  std::atomic<bool> warned_hide_{false};  // the "hiding instead of deleting" warning was shown
  // Lock files this backend stored in one attempt, by object name: their only version's
  // fileId, so releasing a lock is one b2_delete_file_version instead of a listing and a
  // delete (lock names are hashes of unique contents, so nobody else stores that name).
  std::mutex own_locks_mutex_;
  std::map<std::string, std::string> own_locks_;
};

}  // namespace coffer::repo
