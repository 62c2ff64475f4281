#include "repo/chunker/chunker.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/temp_dir.h"

using namespace coffer::repo;

namespace {

constexpr Polynomial kResticTestPol = 0x3DA3358B4DC173;  // restic chunker_test.go's
constexpr Polynomial kInitPol = 0x2f8ec5605e8415;        // drawn by `restic init` 0.14
constexpr std::uint64_t kMask = (1u << 20) - 1;

Bytes pseudo_random(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  Bytes b(n);
  for (std::size_t i = 0; i < n; i += 8) {
    const std::uint64_t v = rng();
    for (std::size_t j = 0; j < 8 && i + j < n; ++j)
      b[i + j] = static_cast<std::byte>(v >> (8 * j));
  }
  return b;
}

const std::uint8_t* u8(ByteSpan b) { return reinterpret_cast<const std::uint8_t*>(b.data()); }

// The closed-form definition of restic-format.md §10, with bit-serial polynomial arithmetic
// only (no tables): H(i) = data[i-64, i) as a 512-bit big-endian integer, mod P.
class Reference {
 public:
  explicit Reference(Polynomial p) : p_(p), deg_(polynomial_degree(p)) {
    x512_ = 1;
    for (int i = 0; i < 512; ++i) x512_ = times_x(x512_);
  }

  // H(i) for i = end - data, straight from the definition.
  [[nodiscard]] std::uint64_t window_hash(const std::uint8_t* end) const {
    std::uint64_t h = 0;
    for (const std::uint8_t* q = end - 64; q < end; ++q) {
      for (int bit = 7; bit >= 0; --bit) h = times_x(h) ^ ((*q >> bit) & 1u);
    }
    return h;
  }

  // H(i+1) from H(i): (H·x^8 + in - out·x^512) mod P.
  [[nodiscard]] std::uint64_t slide(std::uint64_t h, std::uint8_t out, std::uint8_t in) const {
    for (int k = 0; k < 8; ++k) h = times_x(h);
    std::uint64_t drop = 0;
    for (int bit = 7; bit >= 0; --bit) drop = times_x(drop) ^ (((out >> bit) & 1u) ? x512_ : 0);
    return h ^ in ^ drop;
  }

  // Chunk ends (exclusive offsets) of `data`, the last one at its end.
  [[nodiscard]] std::vector<std::size_t> cuts(ByteSpan data) const {
    const std::uint8_t* d = u8(data);
    std::vector<std::size_t> out;
    for (std::size_t start = 0; start < data.size(); start = out.back()) {
      std::size_t i = start + kChunkMinSize;
      if (i >= data.size()) {
        out.push_back(data.size());
        break;
      }
      std::uint64_t h = window_hash(d + i);
      while ((h & kMask) != 0 && i - start < kChunkMaxSize && i < data.size()) {
        h = slide(h, d[i - 64], d[i]);
        ++i;
        if (i % 4099 == 0)
          REQUIRE(h == window_hash(d + i));  // the sliding stays exact
      }
      REQUIRE(h == window_hash(d + i));
      out.push_back(i);
    }
    return out;
  }

 private:
  [[nodiscard]] std::uint64_t times_x(std::uint64_t h) const {
    h <<= 1;
    return ((h >> deg_) & 1) ? h ^ p_ : h;
  }

  Polynomial p_;
  int deg_;
  std::uint64_t x512_;
};

// Chunk ends of `data` fed to one Chunker in buffers of `piece` bytes.
std::vector<std::size_t> chunker_cuts(ByteSpan data, Polynomial p, std::size_t piece) {
  Chunker c(p);
  std::vector<std::size_t> cuts;
  std::size_t pos = 0;
  bool sizes_ok = true;
  while (pos < data.size()) {
    auto buf = data.subspan(pos, std::min(piece, data.size() - pos));
    auto cut = c.find_boundary(buf);
    pos += cut ? *cut : buf.size();
    if (cut)
      cuts.push_back(pos);
    sizes_ok = sizes_ok && c.chunk_size() == pos - (cuts.empty() ? 0 : cuts.back());
  }
  REQUIRE(sizes_ok);
  if (c.chunk_size() > 0)
    cuts.push_back(pos);
  return cuts;
}

// A file as runs: data bytes, or a hole of `zeros` bytes when `data` is empty.
struct Run {
  Bytes data;
  std::uint64_t zeros = 0;
};

Bytes materialize(const std::vector<Run>& runs) {
  Bytes out;
  for (const auto& r : runs) {
    out.insert(out.end(), r.data.begin(), r.data.end());
    out.resize(out.size() + r.zeros);
  }
  return out;
}

// Chunk ends of `runs` fed as 64 KiB data buffers and find_boundary_in_zeros for holes.
std::vector<std::size_t> chunker_cuts(const std::vector<Run>& runs, Polynomial p) {
  Chunker c(p);
  std::vector<std::size_t> cuts;
  std::uint64_t pos = 0;
  for (const auto& r : runs) {
    ByteSpan rest(r.data);
    while (!rest.empty()) {
      auto buf = rest.first(std::min<std::size_t>(rest.size(), 64 << 10));
      auto cut = c.find_boundary(buf);
      const std::size_t used = cut ? *cut : buf.size();
      rest = rest.subspan(used);
      pos += used;
      if (cut)
        cuts.push_back(pos);
    }
    for (std::uint64_t left = r.zeros; left > 0;) {
      auto cut = c.find_boundary_in_zeros(left);
      const std::uint64_t used = cut ? *cut : left;
      left -= used;
      pos += used;
      if (cut)
        cuts.push_back(pos);
    }
  }
  if (c.chunk_size() > 0)
    cuts.push_back(pos);
  return cuts;
}

// Random data with short zero runs (64..99 bytes, each a split point) every few KiB, so
// that one 16 KiB block of the chunker often holds several splits.
Bytes dense_split_data(std::size_t n, std::uint64_t seed) {
  Bytes b = pseudo_random(n, seed);
  std::mt19937_64 rng(seed + 1);
  for (std::size_t at = 1000; at + 100 < n; at += 2000 + rng() % 6000)
    std::fill_n(b.begin() + static_cast<std::ptrdiff_t>(at), 64 + rng() % 36, std::byte{0});
  return b;
}

}  // namespace

TEST_CASE("chunker cuts where the closed-form definition does", "[chunker]") {
  const auto pol = GENERATE(kResticTestPol, kInitPol);
  const auto seed = GENERATE(1u, 2u);
  const Bytes data = seed == 1 ? pseudo_random(6 << 20, 42) : dense_split_data(3 << 20, 43);
  const auto expected = Reference(pol).cuts(data);
  REQUIRE(expected.size() >= 3);
  for (std::size_t piece :
       {std::size_t{1}, std::size_t{63}, std::size_t{64}, std::size_t{65}, std::size_t{4097},
        std::size_t{(16 << 10) + 7}, std::size_t{(1 << 20) + 3}, data.size()}) {
    INFO("polynomial " << std::hex << pol << std::dec << ", buffers of " << piece);
    REQUIRE(chunker_cuts(data, pol, piece) == expected);
  }
}

TEST_CASE("chunker cuts all-zero data every 512 KiB", "[chunker]") {
  const Bytes zeros((3 << 20) + 1000);
  std::vector<std::size_t> expected;
  for (std::size_t at = kChunkMinSize; at < zeros.size(); at += kChunkMinSize)
    expected.push_back(at);
  expected.push_back(zeros.size());
  REQUIRE(Reference(kInitPol).cuts(zeros) == expected);
  for (std::size_t piece : {std::size_t{1000}, std::size_t{1} << 20, zeros.size()})
    REQUIRE(chunker_cuts(zeros, kInitPol, piece) == expected);
  REQUIRE(chunker_cuts({Run{{}, zeros.size()}}, kInitPol) == expected);
}

TEST_CASE("chunker cuts at the maximum size when the digest never splits", "[chunker]") {
  // A constant byte whose window never splits: every window of the data is the same.
  const Reference ref(kResticTestPol);
  int fill = 1;
  for (; fill < 256; ++fill) {
    const std::vector<std::uint8_t> window(64, static_cast<std::uint8_t>(fill));
    if ((ref.window_hash(window.data() + 64) & kMask) != 0)
      break;
  }
  REQUIRE(fill < 256);
  const Bytes data((17 << 20), static_cast<std::byte>(fill));
  const std::vector<std::size_t> expected = {8 << 20, 16 << 20, 17 << 20};
  REQUIRE(chunker_cuts(data, kResticTestPol, (1 << 20) + 1) == expected);
  REQUIRE(chunker_cuts(data, kResticTestPol, data.size()) == expected);
}

TEST_CASE("chunker zero runs: find_boundary_in_zeros equals feeding the zeros", "[chunker]") {
  std::mt19937_64 rng(7);
  const std::uint64_t hole_sizes[] = {1,    10,    63,     64,     65,      200,
                                      4096, 99999, 524287, 600000, 1300000, 3 << 20};
  std::vector<Run> runs;
  for (int i = 0; i < 24; ++i) {
    if (i % 2 == 0) {
      // data runs from a few bytes to past the minimum chunk size
      runs.push_back({pseudo_random(rng() % 4 == 0 ? rng() % 100 : rng() % 700000, rng()), 0});
    } else {
      runs.push_back({{}, hole_sizes[rng() % std::size(hole_sizes)]});
    }
  }
  const Bytes flat = materialize(runs);
  const auto expected = Reference(kInitPol).cuts(flat);
  REQUIRE(expected.size() > 5);
  REQUIRE(chunker_cuts(flat, kInitPol, (1 << 20) + 5) == expected);
  REQUIRE(chunker_cuts(flat, kInitPol, 333) == expected);
  REQUIRE(chunker_cuts(runs, kInitPol) == expected);
}

TEST_CASE("chunker hole of any length costs one call per chunk", "[chunker]") {
  Chunker c(kInitPol);
  REQUIRE(c.find_boundary_in_zeros(std::uint64_t{1} << 50) == kChunkMinSize);
  REQUIRE(c.chunk_size() == 0);
  const Bytes head = pseudo_random(kChunkMinSize + 1000, 3);
  if (!c.find_boundary(head)) {  // no split in `head`: the hole's first 64 zeros make one
    const auto cut = c.find_boundary_in_zeros(std::uint64_t{1} << 50);
    REQUIRE(cut);
    REQUIRE(*cut <= 64);
  }
  REQUIRE(c.chunk_size() == 0);
  REQUIRE(c.find_boundary_in_zeros(10) == std::nullopt);
  REQUIRE(c.chunk_size() == 10);
}

TEST_CASE("zero_chunk_id is the id of 512 KiB of zeros", "[chunker]") {
  REQUIRE(zero_chunk_id() == Id::hash(Bytes(kChunkMinSize)));
  REQUIRE(&zero_chunk_id() == &zero_chunk_id());
}

namespace {

Polynomial poly_mod(Polynomial a, Polynomial d) {
  while (polynomial_degree(a) >= polynomial_degree(d))
    a ^= d << (polynomial_degree(a) - polynomial_degree(d));
  return a;
}

Polynomial carryless_mul(Polynomial a, Polynomial b) {
  Polynomial r = 0;
  for (int i = 0; i < 64; ++i) {
    if ((b >> i) & 1)
      r ^= a << i;
  }
  return r;
}

// True when no polynomial of degree 1 .. deg/2 divides p.
bool irreducible_by_trial_division(Polynomial p) {
  const int n = polynomial_degree(p);
  if (n < 1)
    return false;
  for (Polynomial d = 2; polynomial_degree(d) <= n / 2; ++d) {
    if (poly_mod(p, d) == 0)
      return false;
  }
  return true;
}

}  // namespace

TEST_CASE("polynomial degree", "[chunker]") {
  REQUIRE(polynomial_degree(0) == -1);
  REQUIRE(polynomial_degree(1) == 0);
  REQUIRE(polynomial_degree(kResticTestPol) == 53);
  REQUIRE(polynomial_degree(Polynomial{1} << 63) == 63);
}

TEST_CASE("polynomial irreducibility", "[chunker]") {
  REQUIRE(polynomial_irreducible(kResticTestPol));
  REQUIRE(polynomial_irreducible(kInitPol));
  REQUIRE_FALSE(polynomial_irreducible(kResticTestPol << 1));                   // x divides it
  REQUIRE_FALSE(polynomial_irreducible((Polynomial{1} << 53) | 1));             // x+1 divides it
  REQUIRE_FALSE(polynomial_irreducible(carryless_mul(0x3DA3358B, 0xB4DC173)));  // degree 56
  REQUIRE_FALSE(polynomial_irreducible(carryless_mul(kResticTestPol, 7)));
  REQUIRE_FALSE(polynomial_irreducible(0));
  REQUIRE_FALSE(polynomial_irreducible(1));
  int agreed = 0;
  for (Polynomial p = 0; p < (1u << 13); ++p)
    agreed += polynomial_irreducible(p) == irreducible_by_trial_division(p) ? 1 : 0;
  REQUIRE(agreed == (1 << 13));
}

TEST_CASE("random_polynomial draws irreducible polynomials of degree 53", "[chunker]") {
  const auto a = random_polynomial();
  const auto b = random_polynomial();
  REQUIRE(a);
  REQUIRE(b);
  for (Polynomial p : {*a, *b}) {
    REQUIRE(polynomial_degree(p) == 53);
    REQUIRE(polynomial_irreducible(p));
  }
  REQUIRE(*a != *b);
}

namespace {

// Runs `command` with /bin/sh and returns its stdout; REQUIREs exit status 0.
std::string run_capture(const std::string& command) {
  INFO(command);
  std::string out;
  FILE* f = ::popen(command.c_str(), "r");
  REQUIRE(f != nullptr);
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
  REQUIRE(::pclose(f) == 0);
  return out;
}

// `restic` with a repository and a password file, both given through the environment.
struct Restic {
  std::string prefix;  // "RESTIC_PASSWORD_FILE=… RESTIC_REPOSITORY=… restic --no-cache "

  [[nodiscard]] nlohmann::json json(const std::string& args) const {
    return nlohmann::json::parse(run_capture(prefix + args));
  }

  // The content (blob ids) of the file `name` somewhere below tree `tree`.
  [[nodiscard]] std::vector<std::string> file_content(const std::string& tree,
                                                      const std::string& name) const {
    const nlohmann::json listing = json("cat blob " + tree);
    for (const auto& node : listing.at("nodes")) {
      if (node.at("type") == "file" && node.at("name") == name)
        return node.at("content").get<std::vector<std::string>>();
      if (node.at("type") == "dir") {
        auto found = file_content(node.at("subtree").get<std::string>(), name);
        if (!found.empty())
          return found;
      }
    }
    return {};
  }
};

// Ids of the chunks coffer cuts from `runs` (holes through find_boundary_in_zeros).
std::vector<std::string> coffer_chunk_ids(const std::vector<Run>& runs, Polynomial p) {
  const Bytes flat = materialize(runs);
  const auto cuts = chunker_cuts(runs, p);
  REQUIRE(cuts == chunker_cuts(flat, p, (1 << 20) + 1));
  std::vector<std::string> ids;
  std::size_t prev = 0;
  for (std::size_t cut : cuts) {
    ids.push_back(Id::hash(ByteSpan(flat).subspan(prev, cut - prev)).hex());
    prev = cut;
  }
  return ids;
}

void write_file(const std::string& path, ByteSpan data) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  REQUIRE(f.good());
}

}  // namespace

TEST_CASE("chunker cuts a file into the blobs restic 0.14 makes", "[chunker]") {
  if (!std::filesystem::exists("/usr/bin/restic")) {
    WARN("/usr/bin/restic is absent; skipping the comparison with restic");
    return;
  }
  coffer::test::TempDir dir;
  const std::vector<Run> runs = {{pseudo_random(5 << 20, 11), 0},
                                 {{}, (2 << 20) + 12345},
                                 {pseudo_random((5 << 20) + 777, 12), 0}};
  write_file(dir.path() + "/data.bin", materialize(runs));
  write_file(dir.path() + "/password", as_bytes("coffer-chunker-test"));
  for (const char* version : {"2", "1"}) {  // each init draws its own polynomial
    const std::string repo = dir.path() + "/repo" + version;
    const Restic restic{"RESTIC_PASSWORD_FILE='" + dir.path() + "/password' RESTIC_REPOSITORY='" +
                        repo + "' restic --no-cache "};
    run_capture(restic.prefix + "-q init --repository-version " + version + " >/dev/null");
    const std::string hex = restic.json("cat config").at("chunker_polynomial");
    const Polynomial pol = std::stoull(hex, nullptr, 16);
    REQUIRE(polynomial_degree(pol) == 53);
    run_capture("cd '" + dir.path() + "' && " + restic.prefix +
                "-q backup --host chunker data.bin >/dev/null");
    const auto snapshots = restic.json("snapshots --json");
    REQUIRE(snapshots.size() == 1);
    const auto theirs = restic.file_content(snapshots[0].at("tree"), "data.bin");
    INFO("polynomial " << hex);
    REQUIRE(theirs.size() > 3);
    for (const auto& id : theirs) REQUIRE(id.size() == 64);
    REQUIRE(coffer_chunk_ids(runs, pol) == theirs);
    REQUIRE(std::count(theirs.begin(), theirs.end(), zero_chunk_id().hex()) >= 3);
  }
}

// Not run by default: `coffer_unit_tests "[bench]"`, meaningful in a Release build.
TEST_CASE("chunker throughput on random data", "[.bench]") {
  const Bytes data = pseudo_random(std::size_t{256} << 20, 5);
  for (int pass = 0; pass < 3; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto cuts = chunker_cuts(data, kInitPol, 1 << 20);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::size_t hashed = 0;
    for (std::size_t i = 0, prev = 0; i < cuts.size(); prev = cuts[i++])
      hashed += std::max(cuts[i] - prev, kChunkMinSize - 64) - (kChunkMinSize - 64);
    WARN(cuts.size() << " chunks; " << static_cast<int>(data.size() / s / 1e6) << " MB/s of input, "
                     << static_cast<int>(hashed / s / 1e6) << " MB/s of hashed bytes");
    REQUIRE(cuts.size() > 100);
  }
}
