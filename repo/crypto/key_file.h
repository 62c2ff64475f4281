// Key files (keys/<id>): plain JSON that wraps the master key with a password (§2).
//
//   {"created":..,"username":..,"hostname":..,"kdf":"scrypt","N":32768,"r":8,"p":6,
//    "salt":"<base64 64 bytes>","data":"<base64 IV‖ct‖MAC of the master key JSON>"}
//   master key JSON: {"mac":{"k":"<b64 16>","r":"<b64 16>"},"encrypt":"<b64 32>"}
//
// Thread contract: pure functions (make_key_file also reads the system RNG).
#pragma once

#include <string>
#include <string_view>

#include "repo/core/error.h"
#include "repo/crypto/crypto.h"

namespace coffer::repo {

// scrypt cost of new key files. restic calibrates these per machine (≈0.5 s, ≈60 MiB); we use
// fixed values that restic accepts and that cost ≈32 MiB and a fraction of a second.
struct KdfParams {
  std::uint64_t n = 32768;
  std::uint32_t r = 8, p = 1;
};

struct KeyFile {
  std::string created, username, hostname, kdf;
  std::uint64_t n = 0;
  std::uint32_t r = 0, p = 0;
  Bytes salt;
  Bytes data;  // sealed master key JSON
};

// Parses a key file. Errors: kCorrupt (bad JSON, unknown kdf, salt not 64 bytes, bad params).
Result<KeyFile> parse_key_file(std::string_view json);

// Derives the user key from `password` and opens the master key.
// Errors: kAuth when the password does not fit this key, kCorrupt for a bad master key JSON.
Result<MasterKey> open_key_file(const KeyFile& key, std::string_view password);

// Parses the decrypted master-key JSON. Errors: kCorrupt.
Result<MasterKey> parse_master_key(std::string_view json);

// Serializes a master key as restic writes it.
std::string serialize_master_key(const MasterKey& key);

// Wraps `master` with `password`: a random 64-byte salt, scrypt with `kdf`, and the master-key
// JSON sealed with the derived user key. created, username and hostname are left empty for the
// caller. Errors: kInvalidArgument (bad scrypt parameters), kIo (the RNG failed).
Result<KeyFile> make_key_file(const MasterKey& master, std::string_view password,
                              const KdfParams& kdf);

// Serializes `key` exactly as restic writes a key file: Go struct field order, Go JSON string
// escaping, no trailing newline. The file's name is the SHA-256 of these bytes.
std::string serialize_key_file(const KeyFile& key);

}  // namespace coffer::repo
