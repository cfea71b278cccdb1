#pragma once
// ConstTable: the rules filed under each constant of one field (RuleIndex), frozen into flat
// arrays for the lookup every event makes.
//
// RuleIndex first kept these in std::unordered_map<std::string, std::vector<uint32_t>>: a lookup
// was a bucket load, a chain of nodes (each a cache miss) and the vector's heap block, and with
// 10 000 rules (thousands of constants per field) Collect took 8 % of the engine's time, almost
// all of it on those loads. Here a lookup is one probe of an open-addressing array of 24-byte
// slots holding the full 64-bit hash, so that a constant no rule names (most events: a city has
// 100 000 devices and a few thousand are named in rules) is rejected without leaving the array;
// on a hit, the key's bytes and its rule list sit next to each other in one arena, so that the
// comparison and the list are usually one more line.
//
// Keys are bytes: a string's text, or the 8 bytes of a number (NumberKey: -0 as 0, so that
// `x == 0` finds -0 as the expression does; NaN's bytes match no constant, as NaN == c is false).
// Built with Add, then Freeze; read-only and safe to share between threads afterwards.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace vigie::rules {

class ConstTable {
 public:
  // The rules found under one key: rules[0..size), ascending.
  struct List {
    const uint32_t* rules = nullptr;
    uint32_t size = 0;
    bool empty() const { return size == 0; }
    const uint32_t* begin() const { return rules; }
    const uint32_t* end() const { return rules + size; }
  };

  static uint64_t Hash(std::string_view key);
  // The key of a number: its bytes, -0 as 0.
  static std::string_view NumberKey(double d, char (&buf)[8]) {
    if (d == 0) d = 0.0;
    std::memcpy(buf, &d, 8);
    return {buf, 8};
  }

  // Building: files `rule` under `key`. Rules come in ascending order; a rule added twice under
  // one key is kept once.
  void Add(std::string_view key, uint32_t rule);
  // Builds the lookup arrays and frees the building map. Add after Freeze is an error.
  void Freeze();

  size_t size() const { return count_; }

  List Find(std::string_view key) const {
    if (slots_.empty()) return {};
    const uint64_t h = Hash(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.count == 0) return {};
      // An empty key may have a null data(), which memcmp must not get even for 0 bytes.
      if (s.hash == h && s.key_len == key.size() &&
          (key.empty() || std::memcmp(bytes() + s.offset, key.data(), key.size()) == 0)) {
        return {arena_.data() + (s.offset + Padded(s.key_len)) / 4, s.count};
      }
    }
  }

 private:
  struct Slot {
    uint64_t hash;
    uint32_t offset;   // of the key's bytes in arena_; the rule list follows, 4-byte aligned
    uint32_t key_len;
    uint32_t count;    // rules in the list; 0: an empty slot
    uint32_t unused;
  };
  static_assert(sizeof(Slot) == 24);
  static size_t Padded(size_t n) { return (n + 3) & ~size_t{3}; }

  std::vector<Slot> slots_;  // a power of two, at most half full
  size_t mask_ = 0;
  size_t count_ = 0;
  // Each key's bytes, padded to 4, then its rules. In words, so that the lists are aligned.
  std::vector<uint32_t> arena_;
  const char* bytes() const { return reinterpret_cast<const char*>(arena_.data()); }
  std::unordered_map<std::string, std::vector<uint32_t>> building_;
};

}  // namespace vigie::rules
