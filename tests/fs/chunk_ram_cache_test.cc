// RamCache (fs/chunk_ram_cache.h): budget, segments and scan resistance.
#include "fs/chunk_ram_cache.h"

#include <catch2/catch.hpp>

using coffer::fs::ChunkRef;
using coffer::fs::RamCache;
using coffer::fs::Touch;
namespace repo = coffer::repo;

namespace {

repo::Id id_of(int i) { return repo::Id::hash(repo::as_bytes("chunk " + std::to_string(i))); }

ChunkRef chunk(std::size_t size) { return std::make_shared<const coffer::fs::ChunkBytes>(size); }

}  // namespace

TEST_CASE("RamCache keeps at most its budget, oldest probation entries go first", "[ram_cache]") {
  RamCache cache(10 * 100);
  for (int i = 0; i < 12; ++i) cache.insert(id_of(i), chunk(100));
  CHECK(cache.bytes() == 1000);
  CHECK_FALSE(cache.contains(id_of(0)));
  CHECK_FALSE(cache.contains(id_of(1)));
  CHECK(cache.contains(id_of(2)));
  CHECK(cache.contains(id_of(11)));
  cache.insert(id_of(99), chunk(1001));  // larger than the budget: not cached
  CHECK_FALSE(cache.contains(id_of(99)));
}

TEST_CASE("RamCache: chunks fetched ahead use at most half the budget", "[ram_cache]") {
  RamCache cache(1000);
  for (int i = 0; i < 4; ++i) cache.insert(id_of(i), chunk(100));  // random reads
  for (int i = 10; i < 30; ++i) cache.insert(id_of(i), chunk(100), /*scan=*/true);
  CHECK(cache.bytes() <= 1000);
  for (int i = 0; i < 4; ++i) CHECK(cache.contains(id_of(i)));  // the scan did not push them out
  int scanned = 0;
  for (int i = 10; i < 30; ++i) scanned += cache.contains(id_of(i)) ? 1 : 0;
  CHECK(scanned == 5);               // 500 bytes: half the budget
  CHECK(cache.contains(id_of(29)));  // the newest ones
}

TEST_CASE("RamCache: a slow reader's chunks fetched ahead outlive the ones it has read",
          "[ram_cache]") {
  // Scan segment of 500 bytes. The reader is in chunk 0 and has read 1 and 2 is next: 0..4
  // arrived, 0 and 1 were read (0 re-read last, as a reader slicing its chunk does).
  RamCache cache(1000);
  for (int i = 0; i < 5; ++i) cache.insert(id_of(i), chunk(100), /*scan=*/true);
  CHECK(cache.find(id_of(1), Touch::kScan));
  CHECK(cache.find(id_of(0), Touch::kScan));
  CHECK(cache.find(id_of(0), Touch::kScan));
  // Two more arrive: the two chunks read go, the least recently read (1) first; every chunk
  // not yet read stays, although the reads made 0 and 1 more recent than them.
  cache.insert(id_of(5), chunk(100), /*scan=*/true);
  CHECK_FALSE(cache.contains(id_of(1)));
  CHECK(cache.contains(id_of(0)));
  cache.insert(id_of(6), chunk(100), /*scan=*/true);
  CHECK_FALSE(cache.contains(id_of(0)));
  for (int i = 2; i < 7; ++i) CHECK(cache.contains(id_of(i)));
  // With nothing read left, the oldest chunk not yet read goes.
  cache.insert(id_of(7), chunk(100), /*scan=*/true);
  CHECK_FALSE(cache.contains(id_of(2)));
  for (int i = 3; i < 8; ++i) CHECK(cache.contains(id_of(i)));
  CHECK(cache.bytes() == 500);
}

TEST_CASE("RamCache promotes re-used chunks and protects them from scans", "[ram_cache]") {
  RamCache cache(1000);
  cache.insert(id_of(1), chunk(100));
  CHECK(cache.find(id_of(1), Touch::kReuse));  // first access after arrival
  CHECK(cache.find(id_of(1), Touch::kReuse));  // a re-use: protected now
  cache.insert(id_of(2), chunk(100), /*scan=*/true);
  CHECK(cache.find(id_of(2), Touch::kScan));
  CHECK(cache.find(id_of(2), Touch::kReuse));  // a scanned chunk read again at random
  for (int i = 10; i < 40; ++i) cache.insert(id_of(i), chunk(100), i % 2 == 0);
  CHECK(cache.contains(id_of(1)));
  CHECK(cache.contains(id_of(2)));
  CHECK(cache.bytes() <= 1000);
}
