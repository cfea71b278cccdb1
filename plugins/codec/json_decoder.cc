#include "plugins/codec/json_decoder.h"

#include <simdjson.h>

#include <cmath>
#include <cstring>

#include "plugins/codec/json_text.h"
#include "rules/timefmt.h"

namespace vigie::codec {

using plugins::RejectReason;
namespace dom = simdjson::dom;

namespace {

const char* JsonTypeName(dom::element_type t) {
  switch (t) {
    case dom::element_type::ARRAY: return "array";
    case dom::element_type::OBJECT: return "object";
    case dom::element_type::INT64:
    case dom::element_type::UINT64:
    case dom::element_type::DOUBLE: return "number";
    case dom::element_type::STRING: return "string";
    case dom::element_type::BOOL: return "boolean";
    case dom::element_type::NULL_VALUE: return "null";
  }
  return "value";
}

// Copies msg into *out with ".0" after every integer literal of 19 digits or more outside
// strings, so that a parser that stops at 64-bit integers reads them as doubles. Returns false
// if there was none (the parse error was something else). Invalid JSON stays invalid.
bool WidenBigIntegers(std::string_view msg, std::string* out) {
  out->clear();
  bool changed = false;
  bool in_string = false;
  size_t i = 0;
  while (i < msg.size()) {
    const char c = msg[i];
    if (in_string) {
      out->push_back(c);
      if (c == '\\' && i + 1 < msg.size()) {
        out->push_back(msg[++i]);
      } else if (c == '"') {
        in_string = false;
      }
      ++i;
      continue;
    }
    if (c == '"') {
      in_string = true;
      out->push_back(c);
      ++i;
      continue;
    }
    const bool starts_number = (c >= '0' && c <= '9') || c == '-';
    if (!starts_number) {
      out->push_back(c);
      ++i;
      continue;
    }
    // A token of number characters (a letter run like "true" never starts with one of these).
    size_t end = i + (c == '-' ? 1 : 0);
    const size_t digits_from = end;
    while (end < msg.size() && msg[end] >= '0' && msg[end] <= '9') ++end;
    const size_t digits = end - digits_from;
    out->append(msg.substr(i, end - i));
    const bool integer = end >= msg.size() ||
                         (msg[end] != '.' && msg[end] != 'e' && msg[end] != 'E');
    if (integer) {
      if (digits >= 19) {
        out->append(".0");
        changed = true;
      }
    } else {  // the rest of a decimal: fraction and exponent digits are not integers
      const size_t rest = end;
      while (end < msg.size() && std::strchr("0123456789.eE+-", msg[end]) != nullptr &&
             msg[end] != '\0') {
        ++end;
      }
      out->append(msg.substr(rest, end - rest));
    }
    i = end;
  }
  return changed;
}

}  // namespace

// Why the DOM parser and not On Demand: Debian's simdjson is header-only for On Demand, which
// then compiles to the portable "fallback" kernel unless the whole build uses -march=haswell;
// the DOM parser lives in the shared library and picks the AVX2 kernel at run time. It also
// validates the whole message before we read it, so "a malformed message is rejected entirely"
// needs no undo. The parser's buffers are reused from message to message.
struct JsonDecoder::Impl {
  dom::parser parser;
  std::unique_ptr<char[]> buf;  // message copy + SIMDJSON_PADDING
  size_t cap = 0;
  std::string name;  // dotted name being built while flattening

  // Room for WidenBigIntegers' ".0"s: at most 2 bytes per 20 bytes of message.
  explicit Impl(size_t max_bytes) : parser(max_bytes + max_bytes / 8 + 64) {}

  // Copies msg into the padded buffer and parses it. simdjson 3.0 refuses integer literals
  // beyond 64 bits (NUMBER_ERROR); JSON allows them and vigie reads every number as a double,
  // so on that error the message is parsed again with those literals turned into decimals.
  simdjson::error_code Load(std::string_view msg, dom::element* root) {
    Reserve(msg.size() + simdjson::SIMDJSON_PADDING);
    if (!msg.empty()) std::memcpy(buf.get(), msg.data(), msg.size());
    std::memset(buf.get() + msg.size(), 0, simdjson::SIMDJSON_PADDING);
    simdjson::error_code err = parser.parse(buf.get(), msg.size(), false).get(*root);
    if (err == simdjson::NUMBER_ERROR && WidenBigIntegers(msg, &widened)) {
      Reserve(widened.size() + simdjson::SIMDJSON_PADDING);
      std::memcpy(buf.get(), widened.data(), widened.size());
      std::memset(buf.get() + widened.size(), 0, simdjson::SIMDJSON_PADDING);
      err = parser.parse(buf.get(), widened.size(), false).get(*root);
    }
    return err;
  }

  void Reserve(size_t need) {
    if (need <= cap) return;
    size_t n = cap == 0 ? 4096 : cap;
    while (n < need) n *= 2;
    buf.reset(new char[n]);
    cap = n;
  }

  std::string widened;  // rare path only: the message with its big integers made decimals

  // Flattens the members of obj into ev->fields, with `name` holding the prefix ("" at the top
  // level, "gps." below). At the top level, ts and kind are taken out.
  void Members(dom::object obj, bool top, int64_t ingest_ms, rules::Event* ev, bool* have_kind,
               RejectReason* reason, std::string* error) {
    const size_t prefix_len = name.size();
    for (dom::key_value_pair kv : obj) {
      const std::string_view key = kv.key;
      const dom::element v = kv.value;
      const dom::element_type t = v.type();
      if (top && key == "kind") {
        if (t == dom::element_type::STRING) {
          const std::string_view s = v.get_string().value_unsafe();
          ev->kind.assign(s.data(), s.size());
          *have_kind = !s.empty();
        } else {
          *have_kind = false;  // wrong type: an event without a string kind
          ev->kind.clear();
        }
        continue;
      }
      if (top && key == "ts") {
        bool bad = false;
        if (t == dom::element_type::STRING) {
          int64_t ms;
          if (rules::ParseRfc3339(v.get_string().value_unsafe(), &ms) && ValidEventTs(ms)) {
            ev->ts_ms = ms;
            ev->has_ts = true;
          } else {
            bad = true;
          }
        } else if (t == dom::element_type::NULL_VALUE) {
          ev->ts_ms = ingest_ms;  // null is "no value": as if absent
          ev->has_ts = false;
        } else if (t == dom::element_type::INT64 || t == dom::element_type::UINT64 ||
                   t == dom::element_type::DOUBLE) {
          const double d = v.get_double().value_unsafe();
          if (std::isfinite(d) && d >= 0 && d <= static_cast<double>(kMaxEventTsMs)) {
            ev->ts_ms = static_cast<int64_t>(d);
            ev->has_ts = true;
          } else {
            bad = true;
          }
        } else {
          bad = true;
        }
        if (bad) {
          *reason = RejectReason::kBadTimestamp;
          if (error != nullptr) *error = "ts is neither ms nor RFC 3339";
        }
        continue;
      }

      name.resize(prefix_len);
      name.append(key.data(), key.size());
      switch (t) {
        case dom::element_type::INT64:
        case dom::element_type::UINT64:
        case dom::element_type::DOUBLE:
          AddField(ev, rules::Value::Number(v.get_double().value_unsafe()));
          break;
        case dom::element_type::STRING:
          AddField(ev, rules::Value::String(v.get_string().value_unsafe()));
          break;
        case dom::element_type::BOOL:
          AddField(ev, rules::Value::Bool(v.get_bool().value_unsafe()));
          break;
        case dom::element_type::OBJECT:
          name.push_back('.');
          Members(v.get_object().value_unsafe(), false, ingest_ms, ev, have_kind, reason, error);
          break;
        case dom::element_type::ARRAY:
        case dom::element_type::NULL_VALUE:
          break;  // skipped
      }
    }
    name.resize(prefix_len);
  }

  void AddField(rules::Event* ev, const rules::Value& v) {
    rules::Field& f = ev->fields.emplace_back();  // a spent slot of a recycled event: no malloc
    f.name.assign(name);
    f.value.Assign(v);
  }

  // Decodes one event object into *ev (cleared first). Returns false (with *reason) if the
  // event is to be rejected.
  bool Object(dom::object obj, int64_t ingest_ms, int64_t ingest_ns, rules::Event* ev,
              RejectReason* reason, std::string* error) {
    ev->Clear();
    ev->ts_ms = ingest_ms;
    ev->ingest_ns = ingest_ns;
    name.clear();
    bool have_kind = false;
    *reason = RejectReason::kCount_;  // none yet
    ev->fields.reserve(obj.size());   // one allocation for the usual flat event
    Members(obj, true, ingest_ms, ev, &have_kind, reason, error);
    if (!have_kind) {
      *reason = RejectReason::kMissingKind;
      if (error != nullptr) *error = "missing kind";
      return false;
    }
    return *reason == RejectReason::kCount_;
  }
};

JsonDecoder::JsonDecoder(size_t max_message_bytes)
    : impl_(std::make_unique<Impl>(max_message_bytes)), max_bytes_(max_message_bytes) {}

JsonDecoder::~JsonDecoder() = default;

size_t JsonDecoder::DecodeMessage(std::string_view msg, int64_t ingest_ms, int64_t ingest_ns,
                                  rules::EventBuffer* out, uint64_t* rejected) {
  const auto count = [&](RejectReason r) { ++rejected[static_cast<int>(r)]; };
  if (msg.size() > max_bytes_) {
    count(RejectReason::kOversize);
    return 0;
  }
  dom::element root;
  if (impl_->Load(msg, &root) != simdjson::SUCCESS) {
    count(RejectReason::kMalformed);
    return 0;
  }
  const size_t start = out->size();
  RejectReason reason;
  // Decodes one object into a new slot of *out; removes the slot if the event is bad.
  const auto one = [&](dom::object obj) {
    if (!impl_->Object(obj, ingest_ms, ingest_ns, &out->Append(), &reason, nullptr)) {
      out->PopBack();
      count(reason);
    }
  };
  switch (root.type()) {
    case dom::element_type::OBJECT:
      one(root.get_object().value_unsafe());
      break;
    case dom::element_type::ARRAY: {
      dom::array arr;
      if (root.get_array().get(arr) != simdjson::SUCCESS) break;
      for (dom::element elem : arr) {
        if (elem.type() == dom::element_type::OBJECT) {
          one(elem.get_object().value_unsafe());
        } else {
          count(RejectReason::kMalformed);
        }
      }
      break;
    }
    default:
      count(RejectReason::kMalformed);  // well-formed JSON, but not an event
  }
  return out->size() - start;
}

bool JsonDecoder::DecodeEvent(std::string_view one_object, int64_t ingest_ms, rules::Event* ev,
                              std::string* error) {
  ev->Clear();
  error->clear();
  if (one_object.size() > max_bytes_) {
    *error = "message too large (" + std::to_string(one_object.size()) + " bytes)";
    return false;
  }
  dom::element root;
  if (simdjson::error_code err = impl_->Load(one_object, &root); err != simdjson::SUCCESS) {
    *error = std::string("not a JSON object: ") + simdjson::error_message(err);
    return false;
  }
  if (root.type() != dom::element_type::OBJECT) {
    *error = std::string("not a JSON object: ") + JsonTypeName(root.type());
    return false;
  }
  RejectReason reason;
  if (!impl_->Object(root.get_object().value_unsafe(), ingest_ms, 0, ev, &reason, error)) {
    ev->Clear();
    return false;
  }
  return true;
}

}  // namespace vigie::codec
