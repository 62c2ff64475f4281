#include "repo/crypto/key_file.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include "repo/tree/node.h"  // go_json_string: restic's key files are Go-escaped JSON

namespace coffer::repo {
namespace {

using nlohmann::json;

std::string get_string(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::uint64_t get_uint(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

template <std::size_t N>
bool decode_fixed(const json& j, const char* key, std::array<std::byte, N>& out) {
  auto it = j.find(key);
  Bytes raw;
  if (it == j.end() || !it->is_string() || !base64_decode(it->get<std::string>(), raw) ||
      raw.size() != N) {
    return false;
  }
  std::copy(raw.begin(), raw.end(), out.begin());
  return true;
}

}  // namespace

Result<KeyFile> parse_key_file(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return fail(Errc::kCorrupt, "key file is not valid JSON");
  KeyFile k;
  k.created = get_string(j, "created");
  k.username = get_string(j, "username");
  k.hostname = get_string(j, "hostname");
  k.kdf = get_string(j, "kdf");
  k.n = get_uint(j, "N");
  k.r = static_cast<std::uint32_t>(get_uint(j, "r"));
  k.p = static_cast<std::uint32_t>(get_uint(j, "p"));
  if (k.kdf != "scrypt")
    return fail(Errc::kCorrupt, "key file: unsupported kdf \"" + k.kdf + "\"");
  if (!base64_decode(get_string(j, "salt"), k.salt) || k.salt.size() != 64) {
    return fail(Errc::kCorrupt, "key file: salt is not 64 bytes of base64");
  }
  if (!base64_decode(get_string(j, "data"), k.data) || k.data.size() < kCryptoOverhead) {
    return fail(Errc::kCorrupt, "key file: invalid data field");
  }
  if (k.n < 2 || k.r < 1 || k.p < 1)
    return fail(Errc::kCorrupt, "key file: invalid scrypt parameters");
  return k;
}

Result<MasterKey> open_key_file(const KeyFile& key, std::string_view password) {
  auto dk = scrypt_derive(password, key.salt, key.n, key.r, key.p);
  if (!dk)
    return fail(dk.error().with_context("key file"));
  MasterKey user = key_from_derived(*dk);
  auto plain = open_sealed(user, key.data);
  if (!plain)
    return fail(Errc::kAuth, "wrong password or no key found");
  return parse_master_key(as_chars(*plain));
}

Result<MasterKey> parse_master_key(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  MasterKey k;
  if (j.is_discarded() || !j.is_object() || !j.contains("mac") || !j["mac"].is_object() ||
      !decode_fixed(j["mac"], "k", k.mac_k) || !decode_fixed(j["mac"], "r", k.mac_r) ||
      !decode_fixed(j, "encrypt", k.encrypt) || !k.valid()) {
    return fail(Errc::kCorrupt, "master key is malformed");
  }
  return k;
}

std::string serialize_master_key(const MasterKey& key) {
  return "{\"mac\":{\"k\":\"" + base64_encode(key.mac_k) + "\",\"r\":\"" +
         base64_encode(key.mac_r) + "\"},\"encrypt\":\"" + base64_encode(key.encrypt) + "\"}";
}

Result<KeyFile> make_key_file(const MasterKey& master, std::string_view password,
                              const KdfParams& kdf) {
  KeyFile k;
  k.kdf = "scrypt";
  k.n = kdf.n;
  k.r = kdf.r;
  k.p = kdf.p;
  k.salt.resize(64);
  COFFER_TRY(random_bytes(k.salt));
  auto dk = scrypt_derive(password, k.salt, k.n, k.r, k.p);
  if (!dk)
    return fail(dk.error().with_context("new key file"));
  MasterKey user = key_from_derived(*dk);
  OPENSSL_cleanse(dk->data(), dk->size());
  std::string plain = serialize_master_key(master);
  auto sealed = seal(user, as_bytes(plain));
  OPENSSL_cleanse(plain.data(), plain.size());
  if (!sealed)
    return fail(sealed.error());
  k.data = std::move(*sealed);
  return k;
}

std::string serialize_key_file(const KeyFile& key) {
  return fmt::format(
      R"({{"created":{},"username":{},"hostname":{},"kdf":{},"N":{},"r":{},"p":{},"salt":"{}","data":"{}"}})",
      go_json_string(key.created), go_json_string(key.username), go_json_string(key.hostname),
      go_json_string(key.kdf), key.n, key.r, key.p, base64_encode(key.salt),
      base64_encode(key.data));
}

}  // namespace coffer::repo
