#include "repo/init.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>

#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include "repo/core/log.h"
#include "repo/core/system.h"
#include "repo/tree/node.h"

namespace coffer::repo {
namespace {

constexpr int kPolynomialDegree = 53;

// time.Now() as restic stores it: in the local zone, so the offset round-trips.
GoTime now_local() {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  std::time_t secs = static_cast<std::time_t>(ns / 1000000000);
  std::tm tm{};
  std::int32_t offset = 0;
  if (::localtime_r(&secs, &tm) != nullptr)
    offset = static_cast<std::int32_t>(tm.tm_gmtoff);
  return GoTime{ns / 1000000000, static_cast<std::uint32_t>(ns % 1000000000), offset};
}

// A fresh master key as restic's crypto.NewRandomKey makes one: random bytes, with the
// Poly1305 clamping mask already applied to r.
Result<MasterKey> random_master_key() {
  static constexpr std::array<std::uint8_t, 16> kPoly1305Mask = {0xff, 0xff, 0xff, 0x0f, 0xfc, 0xff,
                                                                 0xff, 0x0f, 0xfc, 0xff, 0xff, 0x0f,
                                                                 0xfc, 0xff, 0xff, 0x0f};
  MasterKey k;
  while (!k.valid()) {
    COFFER_TRY(random_bytes(k.encrypt));
    COFFER_TRY(random_bytes(k.mac_k));
    COFFER_TRY(random_bytes(k.mac_r));
    for (std::size_t i = 0; i < k.mac_r.size(); ++i) k.mac_r[i] &= std::byte{kPoly1305Mask[i]};
  }
  return k;
}

// Reads key file `id` back and checks that `password` opens it to `master`.
Result<void> verify_key_file(WriteBackend& backend, const Id& id, const MasterKey& master,
                             std::string_view password) {
  COFFER_ASSIGN_OR_RETURN(Bytes data, backend.load(Handle{FileKind::kKey, id.hex()}, 0, 0));
  if (Id::hash(data) != id)
    return fail(Errc::kCorrupt, "key file content does not match its name");
  COFFER_ASSIGN_OR_RETURN(KeyFile parsed, parse_key_file(as_chars(data)));
  COFFER_ASSIGN_OR_RETURN(MasterKey opened, open_key_file(parsed, password));
  if (opened.encrypt != master.encrypt || opened.mac_k != master.mac_k ||
      opened.mac_r != master.mac_r) {
    return fail(Errc::kCorrupt, "key file opens to a different master key");
  }
  return {};
}

// Writes a new key file wrapping `master` with `password`; returns its id.
Result<Id> write_key_file(WriteBackend& backend, const MasterKey& master, std::string_view password,
                          const KeyOptions& options) {
  if (password.empty())
    return fail(Errc::kInvalidArgument, "an empty password is not a password");
  COFFER_ASSIGN_OR_RETURN(KeyFile key, make_key_file(master, password, options.kdf));
  key.created = format_go_time(now_local());
  key.username = options.username.empty() ? current_user_name() : options.username;
  key.hostname = options.hostname.empty() ? host_name() : options.hostname;
  std::string json = serialize_key_file(key);
  Id id = Id::hash(as_bytes(json));
  COFFER_TRY_CTX(backend.save(Handle{FileKind::kKey, id.hex()}, as_bytes(json)),
                 "saving key " + id.short_hex());
  return id;
}

Result<void> check_init_options(std::string_view password, const InitOptions& options) {
  if (options.version != 1 && options.version != 2) {
    return fail(Errc::kInvalidArgument,
                fmt::format("repository version {} is not supported (1 or 2)", options.version));
  }
  if (options.polynomial && (polynomial_degree(*options.polynomial) > kPolynomialDegree ||
                             !polynomial_irreducible(*options.polynomial))) {
    return fail(Errc::kInvalidArgument,
                fmt::format("chunker polynomial {:x} is not irreducible of degree at most {}",
                            *options.polynomial, kPolynomialDegree));
  }
  if (password.empty())
    return fail(Errc::kInvalidArgument, "an empty password is not a password");
  return {};
}

Result<void> refuse_existing(WriteBackend& backend) {
  auto config = backend.stat(Handle{FileKind::kConfig, "config"});
  if (config) {
    return fail(Errc::kInvalidArgument,
                "a repository already exists at " + backend.location() + " (config file exists)");
  }
  if (config.error().code != Errc::kNotFound)
    return fail(config.error().with_context("checking for an existing repository"));
  return {};
}

WriteBackend& writable(const Repository& repo) { return *repo.write_backend(); }

Result<void> require_writable(const Repository& repo) {
  if (repo.write_backend() == nullptr)
    return fail(Errc::kInvalidArgument, "the repository backend is read-only");
  return {};
}

}  // namespace

std::string serialize_config(const Config& config) {
  return fmt::format(R"({{"version":{},"id":"{}","chunker_polynomial":"{:x}"}})", config.version,
                     config.id.hex(), config.chunker_polynomial);
}

Result<Config> init_repository(WriteBackend& backend, std::string_view password,
                               const InitOptions& options) {
  COFFER_TRY(check_init_options(password, options));
  COFFER_TRY(refuse_existing(backend));
  Config config;
  config.version = options.version;
  if (options.polynomial) {
    config.chunker_polynomial = *options.polynomial;
  } else {
    COFFER_ASSIGN_OR_RETURN(config.chunker_polynomial, random_polynomial());
  }
  std::array<std::byte, Id::kSize> id_bytes{};
  COFFER_TRY(random_bytes(id_bytes));
  config.id = Id(id_bytes);
  COFFER_ASSIGN_OR_RETURN(MasterKey master, random_master_key());
  COFFER_TRY_CTX(backend.create(), "creating repository at " + backend.location());
  COFFER_TRY(write_key_file(backend, master, password, options.key));
  COFFER_ASSIGN_OR_RETURN(Bytes sealed, seal(master, as_bytes(serialize_config(config))));
  COFFER_TRY_CTX(backend.save(Handle{FileKind::kConfig, "config"}, sealed), "saving config");
  return config;
}

Result<std::vector<KeyInfo>> list_keys(const Repository& repo) {
  COFFER_ASSIGN_OR_RETURN(std::vector<Id> ids, repo.list_ids(FileKind::kKey));
  std::vector<std::pair<GoTime, KeyInfo>> keys;
  for (const Id& id : ids) {
    COFFER_ASSIGN_OR_RETURN(Bytes data,
                            repo.backend().load(Handle{FileKind::kKey, id.hex()}, 0, 0));
    auto parsed = parse_key_file(as_chars(data));
    if (!parsed) {
      log::warn("skipping key " + id.short_hex() + ": " + parsed.error().message);
      continue;
    }
    KeyInfo info{id, parsed->username, parsed->hostname, parsed->created, id == repo.key_id()};
    keys.emplace_back(parse_go_time(parsed->created).value_or(GoTime{}), std::move(info));
  }
  std::stable_sort(keys.begin(), keys.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<KeyInfo> out;
  out.reserve(keys.size());
  for (auto& k : keys) out.push_back(std::move(k.second));
  return out;
}

Result<Id> add_key(const Repository& repo, std::string_view password, const KeyOptions& options) {
  COFFER_TRY(require_writable(repo));
  COFFER_ASSIGN_OR_RETURN(Id id, write_key_file(writable(repo), repo.key(), password, options));
  auto verified = verify_key_file(writable(repo), id, repo.key(), password);
  if (!verified) {
    (void)writable(repo).remove(Handle{FileKind::kKey, id.hex()});
    return fail(verified.error().with_context("the new key does not open the repository"));
  }
  return id;
}

Result<void> remove_key(const Repository& repo, const Id& id) {
  COFFER_TRY(require_writable(repo));
  if (id == repo.key_id()) {
    return fail(Errc::kInvalidArgument,
                "refusing to remove key currently used to access repository");
  }
  Handle h{FileKind::kKey, id.hex()};
  COFFER_TRY(writable(repo).stat(h));
  return writable(repo).remove(h);
}

Result<Id> change_password(const Repository& repo, std::string_view new_password,
                           const KeyOptions& options) {
  COFFER_ASSIGN_OR_RETURN(Id id, add_key(repo, new_password, options));
  COFFER_TRY_CTX(writable(repo).remove(Handle{FileKind::kKey, repo.key_id().hex()}),
                 "new key " + id.short_hex() + " saved, but removing the old key failed");
  return id;
}

}  // namespace coffer::repo
