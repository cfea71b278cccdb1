// RuleIndex: buckets by kind, then by the leading `field == constant` test of `where`.
//
// Every list is built in rule order, so each is ascending; Match appends the lists an event
// selects and sorts only when it appended more than one (the lists are short: the rules of one
// kind and one place).
#include "rules/index.h"

#include <algorithm>
#include <cstring>

#include "rules/rule.h"

namespace vigie::rules {

namespace {

void PushOnce(std::vector<uint32_t>* v, uint32_t rule) {
  if (v->empty() || v->back() != rule) v->push_back(rule);
}

}  // namespace

void RuleIndex::Add(Bucket* b, uint32_t rule, const Key& key) {
  if (b->last == rule) return;  // `on: [camera.status, camera.*]`: once
  b->last = rule;
  if (key.field.empty()) {
    b->always.push_back(rule);
    return;
  }
  auto f = std::find_if(b->fields.begin(), b->fields.end(),
                        [&](const FieldIndex& x) { return x.name == key.field; });
  if (f == b->fields.end()) {
    b->fields.emplace_back();
    f = b->fields.end() - 1;
    f->name = key.field;
  }
  f->all.push_back(rule);
  bool has[4] = {false, false, false, false};
  for (const OwnedValue& c : key.constants) {
    has[static_cast<int>(c.type)] = true;
    switch (c.type) {
      case Type::kString:
        f->strings.Add(c.str, rule);
        break;
      case Type::kNumber: {
        char buf[8];
        f->numbers.Add(ConstTable::NumberKey(c.num, buf), rule);
        break;
      }
      case Type::kBool:
        PushOnce(&f->bools[c.b ? 1 : 0], rule);
        break;
      case Type::kMissing:
        break;
    }
  }
  for (int t = 1; t < 4; ++t)
    if (!has[t]) f->not_of_type[t].push_back(rule);
}

void RuleIndex::Build(const std::vector<Rule>& rules, FieldNames* names) {
  keys_.assign(rules.size(), Key{});
  exact_.clear();
  prefix_.clear();
  for (const Rule& r : rules) {
    for (const auto& k : r.on_exact) exact_.try_emplace(k);
    for (const auto& p : r.on_prefix) {
      auto it =
          std::find_if(prefix_.begin(), prefix_.end(), [&](const auto& x) { return x.first == p; });
      if (it == prefix_.end()) prefix_.emplace_back(p, Bucket{});
    }
  }
  for (uint32_t i = 0; i < rules.size(); ++i) {
    const Rule& r = rules[i];
    Key& key = keys_[i];
    LeadingTest t;
    if (r.where && FindLeadingTest(*r.where, &t)) {
      key.field = t.field;
      for (const Value& c : t.constants) key.constants.emplace_back(c);
    }
    for (const auto& k : r.on_exact) Add(&exact_.find(k)->second, i, key);
    for (const auto& p : r.on_prefix) {
      for (auto& [kind, bucket] : exact_)
        if (kind.starts_with(p)) Add(&bucket, i, key);
      for (auto& [prefix, bucket] : prefix_)
        if (prefix == p) Add(&bucket, i, key);
    }
  }
  auto freeze = [names](Bucket& b) {
    for (FieldIndex& f : b.fields) {
      f.id = names ? names->Intern(f.name) : kNoField;
      f.strings.Freeze();
      f.numbers.Freeze();
    }
  };
  for (auto& [kind, bucket] : exact_) freeze(bucket);
  for (auto& [prefix, bucket] : prefix_) freeze(bucket);
  kind_tags_.clear();
  if (exact_.size() <= kMaxScannedKinds) {
    for (const auto& [kind, bucket] : exact_) kind_tags_.push_back({Head(kind), kind.size(), &kind, &bucket});
  }
}

void RuleIndex::Collect(const Bucket& b, const EventFields& ev, std::vector<uint32_t>* out,
                        int* lists) {
  // Entries are rule << 1 | 1 when the rule's leading test is known to hold (found under one of
  // its constants), rule << 1 otherwise.
  auto append = [&](const auto& v, uint32_t hit) {
    if (v.empty()) return;
    for (uint32_t r : v) out->push_back(r << 1 | hit);
    ++*lists;
  };
  append(b.always, 0);
  for (const FieldIndex& f : b.fields) {
    const Value v = ev.Get(f.id, f.name);
    if (v.missing()) {  // the test records missing_field: evaluate
      append(f.all, 0);
      continue;
    }
    append(f.not_of_type[static_cast<int>(v.type)], 0);  // the test records type_mismatch
    switch (v.type) {
      case Type::kString:
        append(f.strings.Find(v.str), 1);
        break;
      case Type::kNumber: {
        char buf[8];  // NaN finds nothing: NaN == c is false, no error
        append(f.numbers.Find(ConstTable::NumberKey(v.num, buf)), 1);
        break;
      }
      case Type::kBool:
        append(f.bools[v.b ? 1 : 0], 1);
        break;
      case Type::kMissing:
        break;
    }
  }
}

uint64_t RuleIndex::Head(std::string_view s) {
  uint64_t h = 0;
  std::memcpy(&h, s.data(), std::min<size_t>(s.size(), 8));
  return h;
}

const RuleIndex::Bucket* RuleIndex::FindExact(std::string_view kind) const {
  if (kind_tags_.empty()) {
    auto it = exact_.find(kind);
    return it == exact_.end() ? nullptr : &it->second;
  }
  const uint64_t head = Head(kind);
  for (const KindTag& t : kind_tags_) {
    if (t.head == head && t.size == kind.size() &&
        (kind.size() <= 8 || std::memcmp(t.kind->data() + 8, kind.data() + 8, kind.size() - 8) == 0))
      return t.bucket;
  }
  return nullptr;
}

void RuleIndex::MatchTagged(const Event& ev, std::vector<uint32_t>* out) const {
  EventFields by_name;  // unbound: reads by name; allocates nothing
  by_name.Load(ev);
  MatchTagged(by_name, out);
}

void RuleIndex::MatchTagged(const EventFields& fields, std::vector<uint32_t>* out) const {
  const Event& ev = fields.event();
  out->clear();
  int lists = 0;
  if (const Bucket* b = FindExact(ev.kind)) {
    Collect(*b, fields, out, &lists);
  } else {
    for (const auto& [prefix, bucket] : prefix_)
      if (ev.kind.starts_with(prefix)) Collect(bucket, fields, out, &lists);
  }
  // A rule comes at most once per bucket; in several prefix buckets it has the same test and
  // so the same tag, and unique() keeps one.
  if (lists > 1) {
    std::sort(out->begin(), out->end());
    out->erase(std::unique(out->begin(), out->end()), out->end());
  }
}

void RuleIndex::Match(const Event& ev, std::vector<uint32_t>* out) const {
  MatchTagged(ev, out);
  for (uint32_t& r : *out) r >>= 1;
}

}  // namespace vigie::rules
