#include "repo/backend/b2/b2_upload.h"

namespace coffer::repo::b2 {
namespace {

using nlohmann::json;

enum class Next { kDone, kNewUrl, kFatal };

// A fresh upload URL and token from b2_get_upload_url.
Result<UploadUrl> new_upload_url(B2Api& api) {
  COFFER_ASSIGN_OR_RETURN(std::string bucket, api.bucket_id());
  json reply;
  COFFER_ASSIGN_OR_RETURN(
      HttpResponse r, api.call("b2_get_upload_url", TxClass::kA, {{"bucketId", bucket}}, &reply));
  if (!r.ok())
    return fail(Errc::kIo, "B2 b2_get_upload_url: " + describe(r));
  UploadUrl u{reply.value("uploadUrl", ""), reply.value("authorizationToken", "")};
  if (u.url.empty() || u.token.empty())
    return fail(Errc::kIo, "B2 b2_get_upload_url: the answer lacks uploadUrl or its token");
  return u;
}

// What to do after upload answer `r` (`sha1` sent); `sha_retried` limits SHA-1 retries to one.
Next classify(const HttpResponse& r, const std::string& sha1, bool& sha_retried) {
  if (r.ok()) {
    const auto* p = reinterpret_cast<const char*>(r.body.data());
    json j = json::parse(p, p + r.body.size(), nullptr, false);
    bool same = j.is_object() && j.value("contentSha1", "") == sha1;
    return same ? Next::kDone : Next::kNewUrl;
  }
  if (r.permanent)
    return Next::kFatal;
  if (r.status == 0 || !r.error.empty() || r.status == 401 || r.status == 408 || r.status == 429 ||
      r.status >= 500)
    return Next::kNewUrl;
  if (r.status == 400) {
    B2Status s = parse_status(r);
    if (s.code == "auth_token_limit" || s.message.find("more than one upload") != std::string::npos)
      return Next::kNewUrl;
    if (s.message.find("sha1 did not match") != std::string::npos ||
        s.message.find("error reading uploaded data") != std::string::npos) {
      bool again = !sha_retried;
      sha_retried = true;
      return again ? Next::kNewUrl : Next::kFatal;
    }
  }
  return Next::kFatal;
}

HttpRequest upload_request(const UploadUrl& u, const std::string& name, const std::string& sha1,
                           ByteSpan data) {
  return make_request("POST", u.url,
                      {"Authorization: " + u.token, "X-Bz-File-Name: " + encode_name(name),
                       "Content-Type: application/octet-stream", "X-Bz-Content-Sha1: " + sha1},
                      data);
}

}  // namespace

std::optional<UploadUrl> UploadUrls::take() {
  std::scoped_lock lock(mutex_);
  if (idle_.empty())
    return std::nullopt;
  UploadUrl u = std::move(idle_.back());
  idle_.pop_back();
  return u;
}

void UploadUrls::give(UploadUrl u) {
  std::scoped_lock lock(mutex_);
  idle_.push_back(std::move(u));
}

void prepare_upload_url(B2Api& api, UploadUrls& urls) {
  auto u = new_upload_url(api);
  if (u)
    urls.give(std::move(*u));
}

Result<std::string> upload_file(B2Api& api, UploadUrls& urls, const std::string& name,
                                ByteSpan data) {
  const std::string sha1 = sha1_hex(data);
  const unsigned attempts = api.options().attempts;
  bool sha_retried = false;
  std::string last;
  HttpResponse r;
  for (unsigned attempt = 1; attempt <= attempts; ++attempt) {
    std::optional<UploadUrl> u = urls.take();
    if (!u) {
      COFFER_ASSIGN_OR_RETURN(u, new_upload_url(api));
    }
    r = api.http().perform(upload_request(*u, name, sha1, data));
    if (r.cancelled)
      return fail(cancelled_error());
    api.count(TxClass::kA, r);
    api.count_bytes(r.bytes_sent, 0);
    Next next = classify(r, sha1, sha_retried);
    last = r.ok() ? "the stored SHA-1 differs from the data's" : describe(r, u->token);
    if (next == Next::kDone) {
      urls.give(std::move(*u));
      if (attempt > 1)
        return std::string();
      const json reply = json::parse(r.body.begin(), r.body.end(), nullptr, false);
      const auto id = reply.is_object() ? reply.find("fileId") : reply.end();
      return id != reply.end() && id->is_string() ? id->get<std::string>() : std::string();
    }
    if (next == Next::kFatal) {
      Errc code = r.status == 403 ? Errc::kAccessDenied : Errc::kIo;
      return fail(code, "B2 upload of " + name + ": " + last);
    }
    if (attempt < attempts) {
      api.count_retry();
      // The first retry with a new URL is immediate.
      if ((attempt > 1 || r.status == 429) && !api.backoff(attempt - (r.status == 429 ? 0 : 1), r))
        return fail(cancelled_error());
    }
  }
  api.http().retries_exhausted(r);
  return fail(Errc::kIo, "B2 upload of " + name + " failed after " + std::to_string(attempts) +
                             " attempts: " + last);
}

}  // namespace coffer::repo::b2
