// ConstTable: building and freezing (see const_table.h).
#include "rules/const_table.h"

#include <algorithm>
#include <bit>
#include <cassert>

namespace vigie::rules {

uint64_t ConstTable::Hash(std::string_view key) {
  // std::hash<string_view> (murmur on 64-bit libstdc++) mixes well enough for linear probing;
  // one more multiply spreads the low bits the mask keeps.
  const uint64_t h = std::hash<std::string_view>{}(key);
  return h * 0x9E3779B97F4A7C15ull ^ (h >> 29);
}

void ConstTable::Add(std::string_view key, uint32_t rule) {
  assert(slots_.empty() && "ConstTable::Add after Freeze");
  std::vector<uint32_t>& rules = building_[std::string(key)];
  if (rules.empty() || rules.back() != rule) rules.push_back(rule);
}

void ConstTable::Freeze() {
  count_ = building_.size();
  slots_.clear();
  arena_.clear();
  if (count_ == 0) {
    mask_ = 0;
    return;
  }
  const size_t capacity = std::bit_ceil(std::max<size_t>(count_ * 2, 8));
  slots_.assign(capacity, Slot{0, 0, 0, 0, 0});
  mask_ = capacity - 1;
  // In key order, so that the arena (and a test's view of it) does not depend on the map's.
  std::vector<const std::pair<const std::string, std::vector<uint32_t>>*> entries;
  entries.reserve(count_);
  for (const auto& e : building_) entries.push_back(&e);
  std::sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
  for (const auto* e : entries) {
    const std::string& key = e->first;
    const std::vector<uint32_t>& rules = e->second;
    const size_t offset = arena_.size() * 4;
    arena_.resize(arena_.size() + Padded(key.size()) / 4, 0);
    if (!key.empty())  // memcpy's pointers must not be null, even for 0 bytes (UBSan)
      std::memcpy(reinterpret_cast<char*>(arena_.data()) + offset, key.data(), key.size());
    arena_.insert(arena_.end(), rules.begin(), rules.end());
    const uint64_t h = Hash(key);
    size_t i = h & mask_;
    while (slots_[i].count != 0) i = (i + 1) & mask_;
    slots_[i] = Slot{h, static_cast<uint32_t>(offset), static_cast<uint32_t>(key.size()),
                     static_cast<uint32_t>(rules.size()), 0};
  }
  building_.clear();
  building_.rehash(0);
}

}  // namespace vigie::rules
