#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>

#include "daemon/state/memtable.h"
#include "tests/daemon/test_util.h"

using namespace vigie::daemon;
using vigie::daemon::testing::TempDir;

namespace {

// Memtable entries as RocksDB lays them out: varint32 length, user key, 8-byte trailer
// (sequence << 8 | type, little-endian).
std::string Entry(const std::string& user_key, uint64_t seq) {
  std::string e;
  uint32_t n = static_cast<uint32_t>(user_key.size() + 8);
  while (n >= 0x80) {
    e.push_back(static_cast<char>((n & 0x7f) | 0x80));
    n >>= 7;
  }
  e.push_back(static_cast<char>(n));
  e += user_key;
  const uint64_t trailer = (seq << 8) | 1;
  char b[8];
  std::memcpy(b, &trailer, 8);  // the test machines are little-endian, as RocksDB's fixed64 is
  e.append(b, 8);
  return e;
}

// The internal key order: user key bytewise ascending, then sequence descending.
struct InternalOrder : rocksdb::MemTableRep::KeyComparator {
  static std::pair<std::string_view, uint64_t> Split(rocksdb::Slice ik) {
    uint64_t trailer;
    std::memcpy(&trailer, ik.data() + ik.size() - 8, 8);
    return {std::string_view(ik.data(), ik.size() - 8), trailer >> 8};
  }
  static int Cmp(rocksdb::Slice a, rocksdb::Slice b) {
    auto [ka, sa] = Split(a);
    auto [kb, sb] = Split(b);
    if (int c = ka.compare(kb)) return c;
    return sa > sb ? -1 : sa < sb ? 1 : 0;
  }
  int operator()(const char* a, const char* b) const override {
    return Cmp(rocksdb::GetLengthPrefixedSlice(a), rocksdb::GetLengthPrefixedSlice(b));
  }
  int operator()(const char* a, const rocksdb::Slice& b) const override {
    return Cmp(rocksdb::GetLengthPrefixedSlice(a), b);
  }
};

// Keys like the state store's: shared prefixes, a zero byte, group keys of varied length, with
// zero bytes and 0xFF inside, prefixes of one another, some past every window of the sort.
std::string RandomKey(std::mt19937& rng) {
  static const char* kRules[] = {"g/a", "g/loop-speeding", "g/loop-speeding-x",
                                 "g/bench-w17-traffic-sliding-zone"};
  std::string k = kRules[rng() % 4];
  k.push_back('\0');
  k += "0123456789abcdef";
  k.push_back('\0');
  const size_t n = rng() % 7 == 0 ? 200 + rng() % 100 : rng() % 12;
  for (size_t i = 0; i < n; ++i) {
    const unsigned r = rng() % 10;
    k.push_back(r == 0 ? '\0' : r == 1 ? '\xff' : static_cast<char>('0' + rng() % 3));
  }
  return k;
}

}  // namespace

TEST_CASE("memtable: the sort orders entries as the memtable's comparator does") {
  InternalOrder cmp;
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    std::vector<std::string> store;
    const size_t n = 1 + rng() % 3000;
    std::vector<std::string> keys;
    for (size_t i = 0; i < n; ++i) {
      // A key again (a later sequence number) a third of the time, as a checkpoint rewrites.
      if (!keys.empty() && rng() % 3 == 0) {
        keys.push_back(keys[rng() % keys.size()]);
      } else {
        keys.push_back(RandomKey(rng));
      }
      store.push_back(Entry(keys.back(), i + 1));
    }
    std::vector<const char*> entries;
    for (const auto& e : store) entries.push_back(e.data());
    std::vector<const char*> want = entries;
    std::stable_sort(want.begin(), want.end(), [&](const char* a, const char* b) { return cmp(a, b) < 0; });
    SortMemTableEntries(&entries, cmp);
    REQUIRE(entries == want);
  }
}

TEST_CASE("memtable: a prefix sorts before its extensions, zero bytes included") {
  InternalOrder cmp;
  std::vector<std::string> keys = {std::string("ab\0", 3), "ab", std::string("ab\0\0", 4),
                                   std::string(40, 'x') + std::string("\0", 1),
                                   std::string(40, 'x'), std::string(40, 'x') + "a", "a"};
  std::vector<std::string> store;
  for (size_t i = 0; i < keys.size(); ++i) store.push_back(Entry(keys[i], i + 1));
  std::vector<const char*> entries;
  for (const auto& e : store) entries.push_back(e.data());
  SortMemTableEntries(&entries, cmp);
  std::vector<std::string> got;
  for (const char* e : entries) {
    got.emplace_back(InternalOrder::Split(rocksdb::GetLengthPrefixedSlice(e)).first);
  }
  std::vector<std::string> want = {"a", "ab", std::string("ab\0", 3), std::string("ab\0\0", 4),
                                   std::string(40, 'x'), std::string(40, 'x') + std::string("\0", 1),
                                   std::string(40, 'x') + "a"};
  CHECK(got == want);
}

TEST_CASE("memtable: RocksDB reads, flushes and reopens through the sort-once memtable") {
  TempDir dir;
  rocksdb::Options opts;
  opts.create_if_missing = true;
  opts.memtable_factory = NewSortOnceMemTableFactory();
  opts.allow_concurrent_memtable_write = false;
  opts.write_buffer_size = 256 << 10;  // small: several flushes during the test
  std::map<std::string, std::string> model;
  std::mt19937 rng(11);

  auto check_all = [&](rocksdb::DB* db) {
    // Forward and backward iteration, Get and Seek, against the model.
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    auto m = model.begin();
    for (it->SeekToFirst(); it->Valid(); it->Next(), ++m) {
      REQUIRE(m != model.end());
      REQUIRE(it->key().ToString() == m->first);
      REQUIRE(it->value().ToString() == m->second);
    }
    REQUIRE(it->status().ok());
    CHECK(m == model.end());
    auto r = model.rbegin();
    for (it->SeekToLast(); it->Valid(); it->Prev(), ++r) {
      REQUIRE(r != model.rend());
      REQUIRE(it->key().ToString() == r->first);
    }
    CHECK(r == model.rend());
    for (int i = 0; i < 200; ++i) {
      // Half of the probes are stored keys (Get finds them), half random (mostly absent).
      const std::string probe = i % 2 == 0 && !model.empty()
                                    ? std::next(model.begin(), rng() % model.size())->first
                                    : RandomKey(rng);
      std::string v;
      rocksdb::Status s = db->Get(rocksdb::ReadOptions(), probe, &v);
      auto f = model.find(probe);
      if (f == model.end()) {
        CHECK(s.IsNotFound());
      } else {
        REQUIRE(s.ok());
        CHECK(v == f->second);
      }
      it->Seek(probe);
      auto lb = model.lower_bound(probe);
      REQUIRE(it->Valid() == (lb != model.end()));
      if (it->Valid()) CHECK(it->key().ToString() == lb->first);
      it->SeekForPrev(probe);
      auto ub = model.upper_bound(probe);
      REQUIRE(it->Valid() == (ub != model.begin()));
      if (it->Valid()) CHECK(it->key().ToString() == std::prev(ub)->first);
    }
  };

  {
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(opts, dir / "db", &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    for (int i = 0; i < 20000; ++i) {
      std::string k = RandomKey(rng);
      if (!model.empty() && rng() % 4 == 0) k = std::next(model.begin(), rng() % model.size())->first;
      if (rng() % 10 == 0) {
        REQUIRE(db->Delete(rocksdb::WriteOptions(), k).ok());
        model.erase(k);
      } else {
        std::string v = "v" + std::to_string(i) + std::string(rng() % 64, 'p');
        REQUIRE(db->Put(rocksdb::WriteOptions(), k, v).ok());
        model[k] = v;
      }
      // Reads of the memtable still being written, now and then (a sorted copy).
      if (i % 5000 == 4999) check_all(db.get());
    }
    // The memtable filled and was flushed (sorted) several times on the way.
    std::vector<rocksdb::LiveFileMetaData> files;
    db->GetLiveFilesMetaData(&files);
    CHECK(!files.empty());
    CHECK(db->Flush(rocksdb::FlushOptions()).ok());
    check_all(db.get());
  }
  // Reopened: what the flushes wrote, plus the WAL replayed into a fresh memtable.
  rocksdb::DB* raw = nullptr;
  REQUIRE(rocksdb::DB::Open(opts, dir / "db", &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  check_all(db.get());
}

TEST_CASE("memtable: with a prefix extractor the factory hands out RocksDB's vector memtable") {
  // That memtable frees the prefix iterators RocksDB then asks for without an arena: writes,
  // reads and a flush work (and, under ASan, free everything exactly once).
  TempDir dir;
  rocksdb::Options opts;
  opts.create_if_missing = true;
  opts.memtable_factory = NewSortOnceMemTableFactory();
  opts.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(2));
  opts.allow_concurrent_memtable_write = false;
  rocksdb::DB* raw = nullptr;
  REQUIRE(rocksdb::DB::Open(opts, dir / "db", &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  for (int i = 0; i < 100; ++i) {
    REQUIRE(db->Put(rocksdb::WriteOptions(), "g/" + std::to_string(i), std::to_string(i)).ok());
  }
  std::string v;
  REQUIRE(db->Get(rocksdb::ReadOptions(), "g/42", &v).ok());
  CHECK(v == "42");
  rocksdb::ReadOptions prefix_read;
  prefix_read.prefix_same_as_start = true;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(prefix_read));
  int n = 0;
  for (it->Seek("g/"); it->Valid(); it->Next()) ++n;
  CHECK(n == 100);
  it.reset();
  CHECK(db->Flush(rocksdb::FlushOptions()).ok());
  REQUIRE(db->Get(rocksdb::ReadOptions(), "g/7", &v).ok());
  CHECK(v == "7");
}
