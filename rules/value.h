#pragma once
// Value: the scalar the rule language computes with — a number, a string, a boolean, or "no value"
// (a missing field, an aggregate over an empty window, an operation on mismatched types).
// A Value is a non-owning view: a string Value points into storage owned by someone else (an
// Event, a window, a compiled constant, an evaluation scratch buffer) and is valid only as long as
// that storage is. Cheap to copy; no allocation.
#include <cstdint>
#include <string>
#include <string_view>

namespace vigie::rules {

enum class Type : uint8_t { kMissing = 0, kNumber = 1, kString = 2, kBool = 3 };

struct Value {
  Type type = Type::kMissing;
  bool b = false;
  double num = 0;
  std::string_view str;

  static Value Missing() { return {}; }
  static Value Number(double v) {
    Value x;
    x.type = Type::kNumber;
    x.num = v;
    return x;
  }
  static Value String(std::string_view s) {
    Value x;
    x.type = Type::kString;
    x.str = s;
    return x;
  }
  static Value Bool(bool v) {
    Value x;
    x.type = Type::kBool;
    x.b = v;
    return x;
  }
  bool missing() const { return type == Type::kMissing; }
  bool is_number() const { return type == Type::kNumber; }
  bool is_string() const { return type == Type::kString; }
  bool is_bool() const { return type == Type::kBool; }
};

// Same type and same content. Missing equals nothing, not even Missing.
bool SameValue(const Value& a, const Value& b);

// Appends a number in its shortest exact form: 30, 2.5, -1000, 1e+21. NaN -> "NaN".
void AppendNumber(std::string* out, double v);
// Appends the text form used by templates and group keys: numbers as above, strings raw,
// booleans true/false, missing -> nothing.
void AppendText(std::string* out, const Value& v);

// An owned Value (for state that outlives the event: windows, the last event of a group).
struct OwnedValue {
  Type type = Type::kMissing;
  bool b = false;
  double num = 0;
  std::string str;

  OwnedValue() = default;
  explicit OwnedValue(const Value& v) { Assign(v); }
  void Assign(const Value& v) {
    type = v.type;
    b = v.b;
    num = v.num;
    if (v.type == Type::kString) str.assign(v.str.data(), v.str.size()); else str.clear();
  }
  Value view() const {
    Value v;
    v.type = type;
    v.b = b;
    v.num = num;
    if (type == Type::kString) v.str = str;
    return v;
  }
};

}  // namespace vigie::rules
