#include "repo/repository.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <future>
#include <mutex>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include "repo/cache/lmdb_blob_index.h"
#include "repo/cache/object_cache.h"
#include "repo/chunker/polynomial.h"
#include "repo/compress/zstd.h"
#include "repo/core/log.h"
#include "repo/core/parallel.h"
#include "repo/crypto/key_file.h"
#include "repo/index/blob_index.h"
#include "repo/index/index_file.h"

namespace coffer::repo {
namespace {

constexpr int kMaxKeysTried = 20;

Result<Config> parse_config(std::string_view text) {
  auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return fail(Errc::kCorrupt, "config is not valid JSON");
  Config c;
  auto v = j.find("version");
  if (v == j.end() || !v->is_number_unsigned())
    return fail(Errc::kCorrupt, "config has no version");
  c.version = v->get<unsigned>();
  if (c.version != 1 && c.version != 2) {
    return fail(Errc::kUnsupported,
                fmt::format("repository version {} is not supported", c.version));
  }
  auto id = j.find("id");
  if (id == j.end() || !id->is_string())
    return fail(Errc::kCorrupt, "config has no id");
  COFFER_ASSIGN_OR_RETURN(c.id, Id::parse(id->get<std::string>()));
  auto poly = j.find("chunker_polynomial");
  if (poly == j.end() || !poly->is_string())
    return fail(Errc::kCorrupt, "config has no polynomial");
  const std::string& ps = poly->get_ref<const std::string&>();
  char* end = nullptr;
  c.chunker_polynomial = std::strtoull(ps.c_str(), &end, 16);
  if (ps.empty() || *end != '\0' || polynomial_degree(c.chunker_polynomial) < 8 ||
      polynomial_degree(c.chunker_polynomial) > 53 ||
      !polynomial_irreducible(c.chunker_polynomial)) {  // restic refuses these too
    return fail(Errc::kCorrupt, "config has an invalid chunker polynomial");
  }
  return c;
}

Result<void> make_dirs(const std::string& path) {
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    std::string part = path.substr(0, pos);
    if (!part.empty() && ::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
      return fail(Errc::kIo, "cannot create cache directory " + part);
    }
  }
  return {};
}

void write_cachedir_tag(const std::string& base) {
  std::string tag = base + "/CACHEDIR.TAG";
  if (::access(tag.c_str(), F_OK) == 0)
    return;
  std::ofstream f(tag);
  f << "Signature: 8a477f597d28d172789f06886806bc55\n"
       "# This file is a cache directory tag created by coffer.\n";
}

}  // namespace

Repository::~Repository() = default;

Result<void> Repository::ensure_cache_dir(const std::string& base, const std::string& dir) const {
  COFFER_TRY(make_dirs(dir));
  write_cachedir_tag(base);
  return {};
}

Result<std::unique_ptr<Repository>> Repository::open(std::unique_ptr<ReadBackend> backend,
                                                     std::string_view password,
                                                     const OpenOptions& options) {
  std::unique_ptr<Repository> repo(new Repository());
  repo->backend_ = std::move(backend);
  repo->writable_ = dynamic_cast<WriteBackend*>(repo->backend_.get());
  repo->options_ = options;
  // The config (one load) and the key (a listing, a load, then scrypt) are fetched at once:
  // over a remote backend that saves two round trips of every command.
  // A writing command's backend also gets ready for writes meanwhile.
  ReadBackend* backend_ptr = repo->backend_.get();
  WriteBackend* preparing = options.prepare_writes ? repo->writable_ : nullptr;
  auto config_load = std::async(std::launch::async, [backend_ptr, preparing] {
    auto config = backend_ptr->load(Handle{FileKind::kConfig, "config"}, 0, 0);
    if (config && preparing != nullptr)
      preparing->prepare_writes();
    return config;
  });
  auto keyed = repo->open_key(password);
  Result<Bytes> sealed = config_load.get();
  if (!sealed) {
    if (sealed.error().code == Errc::kNotFound) {
      return fail(Errc::kNoRepository,
                  "there is no repository at " + repo->backend_->location() + " (no config file)");
    }
    return fail(sealed.error().with_context("opening repository"));
  }
  COFFER_TRY(keyed);
  auto plain = open_sealed(repo->key_, *sealed);
  if (!plain)
    return fail(Errc::kCorrupt, "config file or key damaged: " + plain.error().message);
  auto config = parse_config(as_chars(*plain));
  if (!config)
    return fail(config.error().with_context("reading config"));
  repo->config_ = *config;
  repo->open_object_cache();
  return repo;
}

Result<void> Repository::open_key(std::string_view password) {
  std::vector<std::string> names;
  COFFER_TRY(backend_->list(FileKind::kKey, [&](const FileInfo& f) -> Result<void> {
    names.push_back(f.name);
    return {};
  }));
  if (names.empty())
    return fail(Errc::kNoRepository, "repository has no key files");
  std::sort(names.begin(), names.end());
  std::string damaged;
  int tried = 0;
  for (const auto& name : names) {
    if (++tried > kMaxKeysTried)
      break;
    auto data = backend_->load(Handle{FileKind::kKey, name}, 0, 0);
    if (!data)
      return fail(data.error().with_context("loading key " + name.substr(0, 8)));
    auto parsed = parse_key_file(as_chars(*data));
    if (!parsed) {
      damaged = name.substr(0, 8) + ": " + parsed.error().message;
      log::info("skipping damaged key file " + damaged);
      continue;
    }
    auto key = open_key_file(*parsed, password);
    if (key) {
      key_ = *key;
      COFFER_ASSIGN_OR_RETURN(key_id_, Id::parse(name));
      return {};
    }
    if (key.error().code != Errc::kAuth)
      return fail(key.error().with_context("key " + name.substr(0, 8)));
  }
  if (!damaged.empty()) {
    return fail(Errc::kCorrupt, "no key opened with the password; damaged key file " + damaged);
  }
  return fail(Errc::kAuth, "wrong password or no key found");
}

Result<Bytes> Repository::load_unpacked(FileKind kind, const Id& id) const {
  Handle h{kind, id.hex()};
  bool cached = objects_ && kind == FileKind::kSnapshot;
  std::optional<Bytes> hit;
  if (cached && (hit = objects_->get(CachedKind::kSnapshot, id)) && Id::hash(*hit) != id) {
    objects_->remove(CachedKind::kSnapshot, id);
    hit.reset();
  }
  Bytes sealed;
  if (hit) {
    sealed = std::move(*hit);
  } else {
    COFFER_ASSIGN_OR_RETURN(sealed, backend_->load(h, 0, 0));
  }
  if (Id::hash(sealed) != id) {
    return fail(Errc::kCorrupt, h.path() + ": content does not match its name (hash mismatch)");
  }
  if (cached && !hit)
    objects_->put(CachedKind::kSnapshot, id, sealed);
  auto plain = open_sealed(key_, sealed);
  if (!plain)
    return fail(plain.error().with_context(h.path()));
  auto decoded = decode_unpacked(config_.version, std::move(*plain));
  if (!decoded)
    return fail(decoded.error().with_context(h.path()));
  return decoded;
}

Result<std::vector<Id>> Repository::list_ids(FileKind kind) const {
  std::vector<Id> ids;
  COFFER_TRY(backend_->list(kind, [&](const FileInfo& f) -> Result<void> {
    auto id = Id::parse(f.name);
    if (id)
      ids.push_back(*id);
    return {};
  }));
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace coffer::repo
