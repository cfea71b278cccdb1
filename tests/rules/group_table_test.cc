// GroupTable against std::unordered_map as a reference, under random inserts, erases and
// lookups, including keys whose hashes collide (same home slot) so that backward-shift deletion
// is exercised across long probe runs and the wrap-around of the slot array.
#include "rules/group_table.h"

#include <catch2/catch.hpp>

#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "rules/rule.h"

namespace vigie::rules {
namespace {

struct Item {
  std::string key;
};

// `collide` maps every key onto few hashes: probe runs get long and wrap.
uint64_t HashOf(const std::string& k, bool collide) { return collide ? Fnv1a(k) % 7 : Fnv1a(k); }

void RandomOps(bool collide, uint32_t seed) {
  std::mt19937 rng(seed);
  GroupTable<Item> table;
  std::unordered_map<std::string, std::unique_ptr<Item>> ref;
  for (int step = 0; step < 20000; ++step) {
    const std::string key = "dev-" + std::to_string(rng() % 500);
    const uint64_t h = HashOf(key, collide);
    switch (rng() % 3) {
      case 0: {  // insert if absent
        if (ref.count(key)) break;
        auto item = std::make_unique<Item>(Item{key});
        table.Insert(h, item.get());
        ref.emplace(key, std::move(item));
        break;
      }
      case 1: {  // erase if present
        auto it = ref.find(key);
        if (it == ref.end()) {
          Item stranger{key};
          REQUIRE_FALSE(table.Erase(h, &stranger));
          break;
        }
        REQUIRE(table.Erase(h, it->second.get()));
        ref.erase(it);
        break;
      }
      default: {
        auto it = ref.find(key);
        Item* found = table.Find(h, key);
        if (it == ref.end()) {
          REQUIRE(found == nullptr);
        } else {
          REQUIRE(found == it->second.get());
        }
      }
    }
    REQUIRE(table.size() == ref.size());
  }
  // Every element is still reachable, and ForEach visits each once.
  size_t visited = 0;
  table.ForEach([&](Item* p) {
    ++visited;
    REQUIRE(ref.at(p->key).get() == p);
    REQUIRE(table.Find(HashOf(p->key, collide), p->key) == p);
  });
  REQUIRE(visited == ref.size());
  auto all = table.Release();
  REQUIRE(all.size() == ref.size());
  REQUIRE(table.empty());
  REQUIRE(table.Find(HashOf("dev-1", collide), "dev-1") == nullptr);
}

TEST_CASE("GroupTable matches a reference map under random inserts and erases", "[group_table]") {
  RandomOps(false, 1);
  RandomOps(false, 2);
}

TEST_CASE("GroupTable keeps every key reachable when all hashes collide", "[group_table]") {
  RandomOps(true, 3);
  RandomOps(true, 4);
}

TEST_CASE("GroupTable erases across the end of the slot array", "[group_table]") {
  // 16 slots (the first size) and hashes whose probes start in the last two slots: their runs
  // wrap to slot 0, where a backward shift must move elements from the front to the back.
  std::vector<uint64_t> last, before_last;
  for (uint64_t h = 1; last.size() < 4 || before_last.size() < 4; ++h) {
    const size_t home = GroupTable<Item>::HomeSlot(h, 15);
    if (home == 15 && last.size() < 4) last.push_back(h);
    if (home == 14 && before_last.size() < 4) before_last.push_back(h);
  }
  for (int order = 0; order < 8; ++order) {
    GroupTable<Item> t;
    std::vector<std::unique_ptr<Item>> items;
    std::vector<uint64_t> hashes;
    for (int i = 0; i < 4; ++i) {
      for (uint64_t h : {before_last[i], last[i]}) {
        items.push_back(std::make_unique<Item>(Item{"k" + std::to_string(h)}));
        hashes.push_back(h);
        t.Insert(h, items.back().get());
      }
    }
    REQUIRE(t.size() == 8);
    // Erase one (a different one each round), then every other must still be found.
    REQUIRE(t.Erase(hashes[order], items[order].get()));
    for (size_t i = 0; i < items.size(); ++i) {
      Item* want = static_cast<int>(i) == order ? nullptr : items[i].get();
      REQUIRE(t.Find(hashes[i], items[i]->key) == want);
    }
  }
}

TEST_CASE("GroupTable tells keys with equal hashes apart by key", "[group_table]") {
  GroupTable<Item> t;
  Item a{"a"}, b{"b"};
  t.Insert(42, &a);
  t.Insert(42, &b);
  REQUIRE(t.Find(42, "a") == &a);
  REQUIRE(t.Find(42, "b") == &b);
  REQUIRE(t.Find(42, "c") == nullptr);
  REQUIRE(t.Erase(42, &a));
  REQUIRE(t.Find(42, "a") == nullptr);
  REQUIRE(t.Find(42, "b") == &b);
}

TEST_CASE("A moved-from GroupTable is empty and usable", "[group_table]") {
  GroupTable<Item> t;
  Item a{"a"};
  t.Insert(Fnv1a("a"), &a);
  GroupTable<Item> u = std::move(t);
  REQUIRE(u.Find(Fnv1a("a"), "a") == &a);
  REQUIRE(t.empty());  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  REQUIRE(t.Find(Fnv1a("a"), "a") == nullptr);
  Item b{"b"};
  t.Insert(Fnv1a("b"), &b);
  REQUIRE(t.Find(Fnv1a("b"), "b") == &b);
}

}  // namespace
}  // namespace vigie::rules
