// Uploading one file to B2 (b2-api.md §3): upload URLs with their tokens, one per upload in
// flight, and the retry rules of §3.6. Internal to repo/backend/b2.
//
// Thread contract: UploadUrls and upload_file are safe to use from any number of threads; an
// upload URL is lent to one upload at a time and returned to the pool only after a clean 200.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "repo/backend/b2/b2_api.h"

namespace coffer::repo::b2 {

struct UploadUrl {
  std::string url;
  std::string token;
};

// Idle upload URLs. Lock order: mutex_ only, never held across a request.
class UploadUrls {
 public:
  std::optional<UploadUrl> take();
  void give(UploadUrl u);

 private:
  std::mutex mutex_;
  std::vector<UploadUrl> idle_;
};

// Puts one fresh upload URL into `urls`, if B2 gives one (failures are left to the next
// upload, which asks again).
void prepare_upload_url(B2Api& api, UploadUrls& urls);

// Stores `data` as `name` in the bucket. A failed attempt (transport error, 408, 5xx, 401,
// a token in use, a SHA-1 mismatch) drops its URL and retries with a fresh one, backing off
// from the second retry on; 429 waits Retry-After. Gives up after options().attempts tries.
// Errors: kAccessDenied (403, or b2_get_upload_url refused), kIo (not retryable: gave up, or a
// permanent 400 such as a bad name).
// Returns B2's fileId of the new version when the first attempt stored it, so the file has
// exactly this one version if its name is new; "" after a retry (an attempt that seemed to
// fail may have stored another version).
Result<std::string> upload_file(B2Api& api, UploadUrls& urls, const std::string& name,
                                ByteSpan data);

}  // namespace coffer::repo::b2
