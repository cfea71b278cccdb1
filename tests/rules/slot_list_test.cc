// SlotList (rules/slot_list.h): removed elements stay as spent slots whose buffers the next
// elements reuse; a reused slot is reset; copies copy the live elements only.
#include <catch2/catch.hpp>

#include <string>
#include <utility>

#include "rules/event.h"
#include "rules/output.h"
#include "rules/slot_list.h"

using namespace vigie::rules;

namespace {
const std::string kLong(40, 'x');  // past std::string's inline buffer: on the heap
}

TEST_CASE("slot list: a reused slot is reset and keeps its buffers", "[slot_list]") {
  SlotList<Label> l;
  l.emplace_back(kLong, kLong);
  l.emplace_back("b", "2");
  const char* first = l[0].first.data();
  const char* second = l[0].second.data();
  l.clear();
  CHECK(l.empty());
  Label& again = l.emplace_back();
  CHECK(again.first.empty());  // reset
  CHECK(again.second.empty());
  again.first.assign("zone");
  again.second.assign(kLong, 0, 30);  // a copy (assigning an rvalue would take its buffer)
  CHECK(l[0].first.data() == first);  // the same heap buffers
  CHECK(l[0].second.data() == second);
  CHECK(l.size() == 1);
}

TEST_CASE("slot list: assign reuses the slots and copies count only the live elements",
          "[slot_list]") {
  SlotList<Param> p;
  for (int i = 0; i < 3; ++i) {
    Param& x = p.emplace_back();
    x.name = kLong + std::to_string(i);
    x.value.kind = ParamValue::Kind::kString;
    x.value.str = kLong;
  }
  const char* name0 = p[0].name.data();
  p.resize(1);  // two spent
  CHECK(p.size() == 1);
  SlotList<Param> copy = p;  // the live element only
  CHECK(copy.size() == 1);
  CHECK(copy[0].name == kLong + "0");

  Param src;
  src.name = "n";
  src.value.kind = ParamValue::Kind::kNumber;
  src.value.num = 3;
  std::vector<Param> two(2, src);
  p.assign(two.begin(), two.end());
  CHECK(p.size() == 2);
  CHECK(p[0].name == "n");
  CHECK(p[1].value.num == 3);
  CHECK(p[0].name.data() == name0);  // copy-assigned into the spent slot's buffer

  p.resize(3);  // the third comes back reset, not with its old text
  CHECK(p[2].name.empty());
  CHECK(p[2].value.kind == ParamValue::Kind::kNull);
  CHECK(p[2].value.str.empty());
}

TEST_CASE("slot list: initializer lists, erase in order, move", "[slot_list]") {
  SlotList<Label> l = {{"a", "1"}, {"b", "2"}, {"c", "3"}};
  l.erase(l.begin() + 1);
  REQUIRE(l.size() == 2);
  CHECK(l[0] == Label{"a", "1"});
  CHECK(l[1] == Label{"c", "3"});
  l = {{"z", "9"}};
  CHECK(l.size() == 1);
  CHECK(l.back() == Label{"z", "9"});
  SlotList<Label> m = std::move(l);
  CHECK(m.size() == 1);
  CHECK(l.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
}

TEST_CASE("slot list: an event's fields are one (reset name, missing value)", "[slot_list]") {
  FieldList f;
  f.emplace_back().name = "speed";
  f.back().value.Assign(Value::Number(3));
  f.clear();
  Field& g = f.emplace_back();
  CHECK(g.name.empty());
  CHECK(g.value.view().missing());
}
