// ConstTable against std::map as a reference: every key added is found with its rules in order,
// keys not added are not found (including ones that differ only in their last byte or length),
// and number keys treat -0 as 0 and find nothing for NaN.
#include "rules/const_table.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace vigie::rules {
namespace {

std::vector<uint32_t> ToVector(ConstTable::List l) { return {l.begin(), l.end()}; }

std::string RandomKey(std::mt19937& rng) {
  // Short keys over a small alphabet, so that many share prefixes and lengths, and some bytes
  // are NUL.
  static const char kAlphabet[] = {'a', 'b', '-', '0', '1', '\0', 'z'};
  std::string k(rng() % 20, ' ');
  for (char& c : k) c = kAlphabet[rng() % sizeof(kAlphabet)];
  return k;
}

}  // namespace

TEST_CASE("const table: finds every key's rules and nothing else, against std::map", "[index]") {
  for (uint32_t seed : {1u, 2u, 3u}) {
    std::mt19937 rng(seed);
    ConstTable table;
    std::map<std::string, std::vector<uint32_t>> ref;
    const int keys = seed == 1 ? 3 : 2000;  // a nearly empty table and a large one
    for (uint32_t rule = 0; rule < static_cast<uint32_t>(keys * 2); ++rule) {
      const std::string k = RandomKey(rng);
      table.Add(k, rule);
      if (rng() % 3 == 0) table.Add(k, rule);  // the same rule twice under a key: kept once
      auto& v = ref[k];
      if (v.empty() || v.back() != rule) v.push_back(rule);
      if (ref.size() >= static_cast<size_t>(keys)) break;
    }
    table.Freeze();
    REQUIRE(table.size() == ref.size());
    for (const auto& [k, rules] : ref) {
      INFO("key of " << k.size() << " bytes");
      REQUIRE(ToVector(table.Find(k)) == rules);
    }
    for (int i = 0; i < 20000; ++i) {
      const std::string k = RandomKey(rng);
      auto it = ref.find(k);
      REQUIRE(ToVector(table.Find(k)) == (it == ref.end() ? std::vector<uint32_t>{} : it->second));
    }
    // Near misses of present keys: one byte changed, one byte more or less.
    for (const auto& [k, rules] : ref) {
      if (k.empty()) continue;
      std::string changed = k;
      changed.back() = static_cast<char>(changed.back() ^ 0x40);
      if (!ref.count(changed)) REQUIRE(table.Find(changed).empty());
      std::string shorter = k.substr(0, k.size() - 1);
      if (!ref.count(shorter)) REQUIRE(table.Find(shorter).empty());
      std::string longer = k + 'a';
      if (!ref.count(longer)) REQUIRE(table.Find(longer).empty());
    }
  }
}

TEST_CASE("const table: empty tables and the empty key", "[index]") {
  ConstTable unfrozen;
  CHECK(unfrozen.Find("x").empty());
  ConstTable none;
  none.Freeze();
  CHECK(none.size() == 0);
  CHECK(none.Find("").empty());
  ConstTable t;
  t.Add("", 4);
  t.Add("a", 5);
  t.Freeze();
  CHECK(ToVector(t.Find("")) == std::vector<uint32_t>{4});
  CHECK(ToVector(t.Find("a")) == std::vector<uint32_t>{5});
  CHECK(t.Find("b").empty());
}

TEST_CASE("const table: number keys, -0 as 0, NaN finds nothing", "[index]") {
  ConstTable t;
  char buf[8];
  t.Add(ConstTable::NumberKey(0.0, buf), 1);
  t.Add(ConstTable::NumberKey(-0.0, buf), 2);  // the same key as 0
  t.Add(ConstTable::NumberKey(2.5, buf), 3);
  t.Add(ConstTable::NumberKey(1e300, buf), 4);
  t.Freeze();
  CHECK(t.size() == 3);
  CHECK(ToVector(t.Find(ConstTable::NumberKey(-0.0, buf))) == std::vector<uint32_t>{1, 2});
  CHECK(ToVector(t.Find(ConstTable::NumberKey(0.0, buf))) == std::vector<uint32_t>{1, 2});
  CHECK(ToVector(t.Find(ConstTable::NumberKey(2.5, buf))) == std::vector<uint32_t>{3});
  CHECK(ToVector(t.Find(ConstTable::NumberKey(1e300, buf))) == std::vector<uint32_t>{4});
  CHECK(t.Find(ConstTable::NumberKey(2.5000000001, buf)).empty());
  CHECK(t.Find(ConstTable::NumberKey(std::numeric_limits<double>::quiet_NaN(), buf)).empty());
  CHECK(t.Find(ConstTable::NumberKey(std::numeric_limits<double>::infinity(), buf)).empty());
}

}  // namespace vigie::rules
