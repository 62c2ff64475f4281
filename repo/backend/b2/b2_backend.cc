#include "repo/backend/b2/b2_backend.h"

#include <optional>

#include <fmt/format.h>

#include "repo/backend/b2/b2_api.h"
#include "repo/backend/b2/b2_upload.h"
#include "repo/core/cancel.h"
#include "repo/core/log.h"

namespace coffer::repo {
namespace {

using b2::AuthInfo;
using b2::HttpRequest;
using b2::HttpResponse;
using b2::TxClass;
using nlohmann::json;

constexpr int kMaxListPage = 10000;  // B2's maximum; billing is per 1000 names anyway

bool valid_id(std::string_view name) {
  Bytes raw;
  return name.size() == 64 && hex_decode(name, raw);
}

// The id in `rest` (the part of a name after "<prefix>/<dir>/"), or "" if it is not one of
// kind's names ("<id>", or "<xx>/<id>" for packs).
std::string id_of(FileKind kind, std::string_view rest) {
  if (kind == FileKind::kPack) {
    if (rest.size() != 67 || rest[2] != '/' || rest.substr(0, 2) != rest.substr(3, 2))
      return "";
    rest.remove_prefix(3);
  }
  return valid_id(rest) ? std::string(rest) : "";
}

// Total size of the file from a download answer (Content-Range "bytes a-b/total", else the
// length of a 200 answer's body); 0 if unknown.
std::uint64_t total_size(const HttpResponse& r, std::uint64_t body_size) {
  std::string range = r.header("content-range");
  auto slash = range.find('/');
  if (slash != std::string::npos)
    return std::strtoull(range.c_str() + slash + 1, nullptr, 10);
  return r.status == 200 ? body_size : 0;
}

// True if `expected` is a plain 40-digit SHA-1 (not "none" or "unverified:...") other than
// that of `data`.
bool sha1_mismatch(const std::string& expected, const Bytes& data) {
  if (expected.size() != 40)
    return false;
  return b2::sha1_hex(data) != expected;
}

}  // namespace

B2Backend::B2Backend(B2Options options)
    : options_(std::move(options)),
      api_(std::make_unique<b2::B2Api>(options_)),
      uploads_(std::make_unique<b2::UploadUrls>()) {}

B2Backend::~B2Backend() {
  B2Counters c = counters();
  if (c.requests == 0)
    return;
  record_backend_usage(location(), *usage());
  log::info(fmt::format(
      "b2: {} requests ({} retried, {} re-authorizations); class A {}, class B {}, class C {}; "
      "{} bytes up, {} bytes down",
      c.requests, c.retries, c.reauthorizations, c.class_a, c.class_b, c.class_c, c.bytes_up,
      c.bytes_down));
}

std::string B2Backend::location() const {
  return "b2:" + options_.bucket + (options_.prefix.empty() ? "" : ":" + options_.prefix);
}

BackendProperties B2Backend::properties() const {
  return BackendProperties{std::max(1U, options_.connections), false};
}

B2Counters B2Backend::counters() const { return api_->counters(); }

std::optional<BackendUsage> B2Backend::usage() const {
  B2Counters c = counters();
  BackendUsage u;
  u.service = "B2";
  u.requests = c.requests;
  u.retries = c.retries;
  u.bytes_up = c.bytes_up;
  u.bytes_down = c.bytes_down;
  u.class_a = c.class_a;
  u.class_b = c.class_b;
  u.class_c = c.class_c;
  return u;
}

std::string B2Backend::object_name(const Handle& h) const {
  return options_.prefix.empty() ? h.path() : options_.prefix + "/" + h.path();
}

Result<Bytes> B2Backend::load(const Handle& h, std::uint64_t offset, std::uint64_t length) {
  for (int pass = 1;; ++pass) {  // a second pass after a body that failed its SHA-1
    auto data = load_once(h, offset, length);
    if (data || !data.error().retryable || pass >= 2) {
      if (!data)
        data.error().retryable = false;
      return data;
    }
    log::debug("b2: " + data.error().message + "; downloading again");
  }
}

Result<Bytes> B2Backend::load_once(const Handle& h, std::uint64_t offset, std::uint64_t length) {
  COFFER_TRY(api_->bucket_id());  // a missing bucket is reported as such, not as 404s
  const std::string path =
      "/file/" + b2::encode_name(options_.bucket) + "/" + b2::encode_name(object_name(h));
  Bytes data;  // survives attempts: a broken-off body is resumed where it stopped
  std::uint64_t start = offset;
  auto build = [&](const AuthInfo& a) {
    start = offset + data.size();
    HttpRequest req = b2::make_request("GET", a.download_url + path, {"Authorization: " + a.token});
    req.expected_bytes = length > data.size() ? length - data.size() : 0;
    req.sink = &data;
    if (length > 0)
      req.headers.push_back(fmt::format("Range: bytes={}-{}", start, offset + length - 1));
    else if (start > 0)
      req.headers.push_back(fmt::format("Range: bytes={}-", start));
    return req;
  };
  COFFER_ASSIGN_OR_RETURN(HttpResponse r,
                          api_->execute("download " + h.path(), TxClass::kB, build));
  if (r.status == 404)
    return fail(Errc::kNotFound, location() + ": " + h.path() + " does not exist");
  if (r.status == 416 && length == 0 && total_size(r, 0) == start)
    return data;  // the body had arrived whole before the connection broke
  if (r.status == 416)
    return fail(Errc::kCorrupt, location() + ": " + h.path() + " is shorter than expected");
  if (!r.ok())
    return fail(Errc::kIo, "B2 download of " + h.path() + ": " + b2::describe(r));
  if (r.status == 200 && start > offset)
    return fail(Errc::kIo, "B2 download of " + h.path() + ": the resumed range was ignored");
  if (length > 0 && data.size() > length && r.status == 200)
    data.resize(length);  // B2 sent the whole file for a range starting at 0
  if (length > 0 && data.size() != length)
    return fail(Errc::kCorrupt, location() + ": " + h.path() + " is shorter than expected");
  std::uint64_t total = total_size(r, data.size());
  if (offset == 0 && total == data.size() && sha1_mismatch(r.header("x-bz-content-sha1"), data))
    return fail(Errc::kCorrupt, "B2 download of " + h.path() + ": SHA-1 mismatch", true);
  return data;
}

Result<std::uint64_t> B2Backend::stat(const Handle& h) {
  COFFER_TRY(api_->bucket_id());
  const std::string path =
      "/file/" + b2::encode_name(options_.bucket) + "/" + b2::encode_name(object_name(h));
  COFFER_ASSIGN_OR_RETURN(
      HttpResponse r, api_->execute("HEAD " + h.path(), TxClass::kB, [&](const AuthInfo& a) {
        return b2::make_request("HEAD", a.download_url + path, {"Authorization: " + a.token});
      }));
  if (r.status == 404)
    return fail(Errc::kNotFound, location() + ": " + h.path() + " does not exist");
  if (!r.ok() || r.header("content-length").empty())
    return fail(Errc::kIo, "B2 HEAD of " + h.path() + ": " + b2::describe(r));
  return std::strtoull(r.header("content-length").c_str(), nullptr, 10);
}

Result<void> B2Backend::list(FileKind kind,
                             const std::function<Result<void>(const FileInfo&)>& fn) {
  if (kind == FileKind::kConfig)
    return list_config(*this, fn);
  std::string base = options_.prefix.empty() ? "" : options_.prefix + "/";
  return list_prefix(kind, base + file_kind_dir(kind) + "/", fn);
}

Result<void> B2Backend::list_prefix(FileKind kind, const std::string& prefix,
                                    const std::function<Result<void>(const FileInfo&)>& fn) {
  COFFER_ASSIGN_OR_RETURN(std::string bucket, api_->bucket_id());
  json next = nullptr;
  do {
    json body = {{"bucketId", bucket}, {"prefix", prefix}, {"maxFileCount", kMaxListPage}};
    if (!next.is_null())
      body["startFileName"] = next;
    json reply;
    COFFER_ASSIGN_OR_RETURN(HttpResponse r,
                            api_->call("b2_list_file_names", TxClass::kC, body, &reply));
    if (!r.ok())
      return fail(Errc::kIo, "B2 b2_list_file_names: " + b2::describe(r));
    const json files = reply.value("files", json::array());
    if (files.size() > 1000)
      api_->add_units(TxClass::kC, (files.size() + 999) / 1000 - 1);
    for (const auto& f : files) {
      std::string name = f.value("fileName", "");
      std::string id = name.starts_with(prefix) ? id_of(kind, name.substr(prefix.size())) : "";
      if (id.empty() || f.value("action", "upload") != "upload")
        continue;
      COFFER_TRY(fn(FileInfo{id, f.value("contentLength", std::uint64_t{0})}));
    }
    next = reply.value("nextFileName", json(nullptr));
  } while (next.is_string());
  return {};
}

Result<void> B2Backend::save(const Handle& h, ByteSpan data) {
  const std::string name = object_name(h);
  COFFER_ASSIGN_OR_RETURN(std::string file_id, b2::upload_file(*api_, *uploads_, name, data));
  if (h.kind == FileKind::kLock && !file_id.empty()) {
    std::scoped_lock guard(own_locks_mutex_);
    own_locks_[name] = file_id;
  }
  return {};
}

void B2Backend::prepare_writes() { b2::prepare_upload_url(*api_, *uploads_); }

Result<void> B2Backend::remove(const Handle& h) {
  std::optional<CancelShield> shield;  // an interrupted command still deletes its lock
  if (h.kind == FileKind::kLock)
    shield.emplace();
  const std::string name = object_name(h);
  std::string own_id;
  if (h.kind == FileKind::kLock) {
    std::scoped_lock guard(own_locks_mutex_);
    if (auto it = own_locks_.find(name); it != own_locks_.end()) {
      own_id = it->second;
      own_locks_.erase(it);
    }
  }
  if (!own_id.empty()) {
    auto deleted = delete_version(name, own_id);
    if (deleted && *deleted)
      return {};
    // Anything else (no permission to delete, a version gone meanwhile, a failed call) takes
    // the general path below, which also reports it.
  }
  auto found = delete_versions(name);
  if (!found && found.error().code == Errc::kAccessDenied) {
    if (!warned_hide_.exchange(true))
      log::warn(
          "b2: the key may not delete files; hiding them instead (their versions stay "
          "stored and billed)");
    return hide(name);
  }
  COFFER_TRY(found);
  if (!*found)
    return fail(Errc::kNotFound, location() + ": " + h.path() + " does not exist");
  return {};
}

// Deletes every version of `name` (hide markers included); false if there was none.
Result<bool> B2Backend::delete_versions(const std::string& name) {
  COFFER_ASSIGN_OR_RETURN(std::string bucket, api_->bucket_id());
  bool found = false;
  json body = {
      {"bucketId", bucket}, {"prefix", name}, {"startFileName", name}, {"maxFileCount", 1000}};
  for (;;) {
    json reply;
    COFFER_ASSIGN_OR_RETURN(HttpResponse r,
                            api_->call("b2_list_file_versions", TxClass::kC, body, &reply));
    if (!r.ok())
      return fail(Errc::kIo, "B2 b2_list_file_versions: " + b2::describe(r));
    for (const auto& f : reply.value("files", json::array())) {
      if (f.value("fileName", "") != name)
        continue;
      found = true;
      COFFER_TRY(delete_version(name, f.value("fileId", "")));
    }
    if (reply.value("nextFileName", json(nullptr)) != json(name))
      return found;
    body["startFileId"] = reply.value("nextFileId", json(nullptr));
  }
}

Result<bool> B2Backend::delete_version(const std::string& name, const std::string& file_id) {
  json body = {{"fileName", name}, {"fileId", file_id}};
  COFFER_ASSIGN_OR_RETURN(HttpResponse r,
                          api_->call("b2_delete_file_version", TxClass::kA, body, nullptr));
  if (r.ok())
    return true;
  if (b2::parse_status(r).code == "file_not_present")
    return false;
  return fail(Errc::kIo, "B2 b2_delete_file_version " + name + ": " + b2::describe(r));
}

Result<void> B2Backend::hide(const std::string& name) {
  COFFER_ASSIGN_OR_RETURN(std::string bucket, api_->bucket_id());
  json body = {{"bucketId", bucket}, {"fileName", name}};
  COFFER_ASSIGN_OR_RETURN(HttpResponse r, api_->call("b2_hide_file", TxClass::kA, body, nullptr));
  std::string code = b2::parse_status(r).code;
  if (r.ok() || code == "already_hidden")
    return {};
  if (code == "no_such_file")
    return fail(Errc::kNotFound, location() + ": " + name + " does not exist");
  return fail(Errc::kIo, "B2 b2_hide_file " + name + ": " + b2::describe(r));
}

Result<void> B2Backend::create() {
  COFFER_TRY(api_->bucket_id());
  auto config = stat(Handle{FileKind::kConfig, "config"});
  if (config)
    return fail(Errc::kInvalidArgument, "a repository already exists at " + location());
  if (config.error().code != Errc::kNotFound)
    return fail(config.error());
  return {};
}

}  // namespace coffer::repo
