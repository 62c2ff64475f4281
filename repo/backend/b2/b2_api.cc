#include "repo/backend/b2/b2_api.h"

#include <algorithm>
#include <random>
#include <thread>

#include <openssl/evp.h>

#include "repo/core/cancel.h"
#include "repo/core/log.h"

namespace coffer::repo::b2 {
namespace {

using nlohmann::json;

constexpr std::chrono::milliseconds kBackoffCap{64000};
constexpr int kMaxReauthsPerRequest = 2;

json parse_json(const Bytes& body) {
  const auto* p = reinterpret_cast<const char*>(body.data());
  return json::parse(p, p + body.size(), nullptr, false);
}

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool token_trouble(const HttpResponse& r, const B2Status& s) {
  if (r.status != 401)
    return false;
  return s.code == "expired_auth_token" || s.code == "bad_auth_token" ||
         s.code == "missing_auth_token" || (s.code.empty() && r.body.empty());
}

bool transient(const HttpResponse& r) {
  if (r.permanent)
    return false;
  return r.status == 0 || !r.error.empty() || r.status == 408 || r.status == 429 || r.status >= 500;
}

HttpConfig http_config(const B2Options& o) {
  HttpConfig c;
  c.connections = o.connections;
  c.ca_file = o.ca_file;
  c.allow_http = o.endpoint_overridden;
  c.timeout_s = o.timeout_s;
  return c;
}

}  // namespace

Error cancelled_error() { return Error{Errc::kCancelled, "interrupted", false}; }

B2Status parse_status(const HttpResponse& r) {
  json j = parse_json(r.body);
  if (j.is_discarded() || !j.is_object())
    return {};
  return {str(j, "code"), str(j, "message")};
}

std::string describe(const HttpResponse& r, std::string_view token) {
  if (r.status == 0)
    return r.error;
  B2Status s = parse_status(r);
  for (auto at = s.message.find(token); !token.empty() && at != std::string::npos;
       at = s.message.find(token))
    s.message.replace(at, token.size(), "<token>");
  std::string out = "HTTP " + std::to_string(r.status);
  if (!s.code.empty())
    out += " " + s.code;
  if (!s.message.empty())
    out += ": " + s.message;
  if (!r.error.empty())
    out += " (" + r.error + ")";
  return out;
}

std::string encode_name(std::string_view name) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

std::string sha1_hex(ByteSpan data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha1(), nullptr) != 1)
    std::abort();  // only on allocation failure
  return hex_encode(ByteSpan(reinterpret_cast<const std::byte*>(md), len));
}

B2Api::B2Api(const B2Options& options) : options_(options), http_(http_config(options)) {}

Result<AuthInfo> B2Api::auth() {
  std::scoped_lock lock(auth_mutex_);
  if (auth_failed_)
    return fail(*auth_failed_);
  if (auth_)
    return *auth_;
  return authorize_locked();
}

Result<void> B2Api::reauthorize(std::uint64_t seen_generation) {
  std::scoped_lock lock(auth_mutex_);
  if (auth_failed_)
    return fail(*auth_failed_);
  if (auth_ && auth_->generation > seen_generation)
    return {};  // another thread renewed it meanwhile
  ++reauths_;
  log::debug("b2: authorization token expired or rejected; re-authorizing");
  COFFER_TRY(authorize_locked());
  return {};
}

HttpResponse B2Api::send_authorize() {
  std::string pair = options_.key_id + ":" + options_.key;
  HttpRequest req = make_request("GET", options_.endpoint + "/b2api/v3/b2_authorize_account",
                                 {"Authorization: Basic " + base64_encode(as_bytes(pair))});
  std::fill(pair.begin(), pair.end(), '\0');
  HttpResponse r;
  for (unsigned attempt = 1;; ++attempt) {
    r = http_.perform(req);
    count(TxClass::kC, r);
    if (!transient(r))
      break;
    if (attempt >= options_.attempts) {
      http_.retries_exhausted(r);
      break;
    }
    ++retries_;
    if (!backoff(attempt, r)) {
      r.cancelled = r.permanent = true;
      break;
    }
  }
  std::fill(req.headers[0].begin(), req.headers[0].end(), '\0');
  return r;
}

Result<AuthInfo> B2Api::authorize_locked() {
  HttpResponse r = send_authorize();
  if (r.cancelled)
    return fail(cancelled_error());
  if (r.short_circuited)  // not remembered: the network may come back
    return fail(Errc::kIo, "B2 authorization failed: " + options_.endpoint + ": " + r.error);
  if (r.permanent) {  // TLS trust or a bad URL: remembered, like a wrong key
    auth_failed_ =
        Error{Errc::kIo, "B2 authorization failed: " + options_.endpoint + ": " + r.error};
    return fail(*auth_failed_);
  }
  if (transient(r)) {
    return fail(Errc::kIo, "B2 authorization failed: no answer from " + options_.endpoint +
                               " after " + std::to_string(options_.attempts) + " attempts (" +
                               describe(r) + ")");
  }
  json j = parse_json(r.body);
  if (!r.ok() || j.is_discarded()) {
    Error e{Errc::kAccessDenied,
            "B2 authorization failed: " + describe(r) +
                (r.status == 401 ? " (check B2_ACCOUNT_ID and B2_ACCOUNT_KEY)" : "")};
    auth_failed_ = e;
    return fail(e);
  }
  const json& storage = j["apiInfo"]["storageApi"];
  if (auto restricted = check_restrictions(storage); !restricted) {
    auth_failed_ = restricted.error();
    return fail(restricted.error());
  }
  AuthInfo a{str(j, "authorizationToken"), str(storage, "apiUrl"), str(storage, "downloadUrl"),
             str(j, "accountId"), auth_ ? auth_->generation + 1 : 1};
  auth_ = a;
  return a;
}

Result<void> B2Api::check_restrictions(const json& storage) {
  std::string name = str(storage, "bucketName");
  std::string id = str(storage, "bucketId");
  if (!id.empty() && name != options_.bucket) {
    return fail(Errc::kAccessDenied, "B2 authorization failed: the key is restricted to bucket \"" +
                                         name + "\", not \"" + options_.bucket + "\"");
  }
  allowed_bucket_id_ = id;
  std::string allowed = str(storage, "namePrefix");
  std::string base = options_.prefix.empty() ? "" : options_.prefix + "/";
  if (!allowed.empty() && !base.starts_with(allowed)) {
    return fail(Errc::kAccessDenied,
                "B2 authorization failed: the key only allows names starting with \"" + allowed +
                    "\", but the repository is at \"" + base + "\" in bucket " + options_.bucket);
  }
  return {};
}

Result<std::string> B2Api::bucket_id() {
  std::scoped_lock lock(bucket_mutex_);
  if (bucket_id_.empty()) {
    COFFER_ASSIGN_OR_RETURN(bucket_id_, lookup_bucket());
  }
  return bucket_id_;
}

Result<std::string> B2Api::lookup_bucket() {
  COFFER_ASSIGN_OR_RETURN(AuthInfo a, auth());
  {
    std::scoped_lock lock(auth_mutex_);
    if (!allowed_bucket_id_.empty())
      return allowed_bucket_id_;  // the key names it: no b2_list_buckets call
  }
  json reply;
  json body = {{"accountId", a.account_id}, {"bucketName", options_.bucket}};
  COFFER_ASSIGN_OR_RETURN(HttpResponse r, call("b2_list_buckets", TxClass::kC, body, &reply));
  if (!r.ok())
    return fail(Errc::kIo, "B2 b2_list_buckets: " + describe(r));
  for (const auto& b : reply.value("buckets", json::array())) {
    if (str(b, "bucketName") == options_.bucket)
      return str(b, "bucketId");
  }
  return fail(Errc::kNoRepository, "B2 bucket \"" + options_.bucket +
                                       "\" does not exist (or the account cannot see it)");
}

Error B2Api::fatal(const std::string& op, const HttpResponse& r, std::string_view token) const {
  if (r.status == 401) {
    return Error{Errc::kAccessDenied, "B2 refused " + op + ": " + describe(r, token) +
                                          " (the key lacks a capability or is restricted)"};
  }
  return Error{Errc::kIo, "B2 " + op + ": " + describe(r, token)};
}

Result<HttpResponse> B2Api::execute(const std::string& op, TxClass cls,
                                    const std::function<HttpRequest(const AuthInfo&)>& build) {
  int reauths = 0;
  HttpResponse r;
  std::string token;
  for (unsigned attempt = 1;;) {
    COFFER_ASSIGN_OR_RETURN(AuthInfo a, auth());
    HttpRequest req = build(a);
    r = http_.perform(req);
    if (r.cancelled)
      return fail(cancelled_error());
    count(cls, r);
    if (req.sink != nullptr && r.status >= 200 && r.status < 300)
      bytes_down_ += r.bytes_received;
    token = a.token;
    B2Status s = parse_status(r);
    if (token_trouble(r, s) && reauths < kMaxReauthsPerRequest) {
      ++reauths;
      COFFER_TRY(reauthorize(a.generation));
      continue;  // an immediate retry, not a backoff step
    }
    if (r.status == 401 || r.status == 403)
      return fail(fatal(op, r, token));
    if (r.permanent)
      return fail(Errc::kIo, "B2 " + op + ": " + r.error);
    if (!transient(r))
      return r;
    if (attempt >= options_.attempts)
      break;
    ++retries_;
    if (!backoff(attempt, r))
      return fail(cancelled_error());
    ++attempt;
  }
  http_.retries_exhausted(r);
  return fail(Errc::kIo, "B2 " + op + " failed after " + std::to_string(options_.attempts) +
                             " attempts: " + describe(r, token));
}

Result<HttpResponse> B2Api::call(const std::string& op, TxClass cls, const json& body, json* out) {
  std::string text = body.dump();
  COFFER_ASSIGN_OR_RETURN(HttpResponse r, execute(op, cls, [&](const AuthInfo& a) {
                            return make_request(
                                "POST", a.api_url + "/b2api/v3/" + op,
                                {"Authorization: " + a.token, "Content-Type: application/json"},
                                as_bytes(text));
                          }));
  if (out != nullptr) {
    *out = parse_json(r.body);
    if (r.ok() && !out->is_object())
      return fail(Errc::kIo, "B2 " + op + ": the answer is not a JSON object", false);
  }
  return r;
}

bool B2Api::backoff(unsigned attempt, const HttpResponse& r) const {
  std::string after = r.header("retry-after");
  if (r.status == 429 && !after.empty()) {
    long seconds = std::clamp(std::strtol(after.c_str(), nullptr, 10), 0L, 600L);
    return sleep_unless_cancelled(std::chrono::seconds(seconds));
  }
  return http::backoff_sleep(options_.backoff, attempt, kBackoffCap);
}

void B2Api::count(TxClass cls, const HttpResponse& r) {
  ++requests_;
  if (r.status > 0 && r.status < 400)
    add_units(cls, 1);
}

void B2Api::add_units(TxClass cls, std::uint64_t units) {
  (cls == TxClass::kA ? class_a_ : cls == TxClass::kB ? class_b_ : class_c_) += units;
}

void B2Api::count_bytes(std::uint64_t up, std::uint64_t down) {
  bytes_up_ += up;
  bytes_down_ += down;
}

B2Counters B2Api::counters() const {
  return B2Counters{class_a_,    class_b_,  class_c_, bytes_up_,
                    bytes_down_, requests_, retries_, reauths_};
}

}  // namespace coffer::repo::b2
