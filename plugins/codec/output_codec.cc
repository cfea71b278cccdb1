#include "plugins/codec/output_codec.h"

#include <simdjson.h>

#include <cstring>
#include <vector>

#include "plugins/codec/json_text.h"
#include "rules/timefmt.h"
#include "schema/vigie_generated.h"

namespace vigie::codec {
namespace {

void Member(std::string* out, const char* name) {
  out->append(", \"");
  out->append(name);
  out->append("\": ");
}

void StringMember(std::string* out, const char* name, std::string_view v) {
  Member(out, name);
  AppendJsonString(out, v);
}

void AppendParamValue(std::string* out, const rules::ParamValue& v) {
  switch (v.kind) {
    case rules::ParamValue::Kind::kNull: out->append("null"); break;
    case rules::ParamValue::Kind::kNumber: AppendJsonNumber(out, v.num); break;
    case rules::ParamValue::Kind::kString: AppendJsonString(out, v.str); break;
    case rules::ParamValue::Kind::kBool: out->append(v.b ? "true" : "false"); break;
    case rules::ParamValue::Kind::kJson:
      out->append(v.str.empty() ? std::string_view("null") : std::string_view(v.str));
      break;
  }
}

fb::ParamKind ToFb(rules::ParamValue::Kind k) {
  switch (k) {
    case rules::ParamValue::Kind::kNull: return fb::ParamKind::Null;
    case rules::ParamValue::Kind::kNumber: return fb::ParamKind::Number;
    case rules::ParamValue::Kind::kString: return fb::ParamKind::String;
    case rules::ParamValue::Kind::kBool: return fb::ParamKind::Bool;
    case rules::ParamValue::Kind::kJson: return fb::ParamKind::Json;
  }
  return fb::ParamKind::Null;
}

// Offsets of params/labels are collected here before their vector is written; small outputs
// stay on the stack.
template <typename T>
class OffsetScratch {
 public:
  explicit OffsetScratch(size_t n) {
    if (n > kInline) heap_.resize(n);
    data_ = n > kInline ? heap_.data() : inline_;
  }
  flatbuffers::Offset<T>* data() { return data_; }

 private:
  static constexpr size_t kInline = 32;
  flatbuffers::Offset<T> inline_[kInline];
  std::vector<flatbuffers::Offset<T>> heap_;
  flatbuffers::Offset<T>* data_;
};

std::string_view View(const flatbuffers::String* s) {
  return s ? s->string_view() : std::string_view();
}

}  // namespace

void EncodeOutputJson(const rules::Output& o, std::string* out) {
  out->clear();
  const bool command = o.type == rules::OutputType::kCommand;
  out->append(command ? "{\"type\": \"command\"" : "{\"type\": \"alert\"");
  Member(out, "seq");
  AppendUint(out, o.seq);
  Member(out, "ts");
  out->push_back('"');
  rules::AppendRfc3339Ms(out, o.ts_ms);
  out->push_back('"');
  StringMember(out, "rule", o.rule);
  StringMember(out, "key", o.key);
  if (command) {
    StringMember(out, "target", o.target);
    StringMember(out, "action", o.action);
    Member(out, "params");
    out->push_back('{');
    for (size_t i = 0; i < o.params.size(); ++i) {
      if (i > 0) out->append(", ");
      AppendJsonString(out, o.params[i].name);
      out->append(": ");
      AppendParamValue(out, o.params[i].value);
    }
    out->push_back('}');
  } else {
    StringMember(out, "state", o.state);
    StringMember(out, "severity", o.severity);
    StringMember(out, "summary", o.summary);
    Member(out, "labels");
    out->push_back('{');
    for (size_t i = 0; i < o.labels.size(); ++i) {
      if (i > 0) out->append(", ");
      AppendJsonString(out, o.labels[i].first);
      out->append(": ");
      AppendJsonString(out, o.labels[i].second);
    }
    out->push_back('}');
  }
  out->push_back('}');
}

void EncodeOutputFlatbuffers(const rules::Output& o, flatbuffers::FlatBufferBuilder* b) {
  b->Clear();
  const bool command = o.type == rules::OutputType::kCommand;
  char ts_text[48];
  const size_t ts_len = FormatRfc3339Ms(o.ts_ms, ts_text);
  auto ts_off = b->CreateString(ts_text, ts_len);
  auto rule = b->CreateString(o.rule);
  auto key = b->CreateString(o.key);
  flatbuffers::Offset<flatbuffers::String> target, action, state, severity, summary;
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Param>>> params;
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Label>>> labels;
  if (command) {
    target = b->CreateString(o.target);
    action = b->CreateString(o.action);
    OffsetScratch<fb::Param> offs(o.params.size());
    for (size_t i = 0; i < o.params.size(); ++i) {
      const rules::Param& p = o.params[i];
      auto name = b->CreateString(p.name);
      flatbuffers::Offset<flatbuffers::String> str;
      if (p.value.kind == rules::ParamValue::Kind::kString ||
          p.value.kind == rules::ParamValue::Kind::kJson) {
        str = b->CreateString(p.value.str);
      }
      offs.data()[i] = fb::CreateParam(*b, name, ToFb(p.value.kind), p.value.num, str, p.value.b);
    }
    params = b->CreateVector(offs.data(), o.params.size());
  } else {
    state = b->CreateString(o.state);
    severity = b->CreateString(o.severity);
    summary = b->CreateString(o.summary);
    OffsetScratch<fb::Label> offs(o.labels.size());
    for (size_t i = 0; i < o.labels.size(); ++i) {
      auto k = b->CreateString(o.labels[i].first);
      auto v = b->CreateString(o.labels[i].second);
      offs.data()[i] = fb::CreateLabel(*b, k, v);
    }
    labels = b->CreateVector(offs.data(), o.labels.size());
  }
  auto msg = fb::CreateOutputMessage(*b, command ? fb::OutputType::Command : fb::OutputType::Alert,
                                     o.seq, o.ts_ms, ts_off, rule, key, target, action, params,
                                     state, severity, summary, labels);
  fb::FinishOutputMessageBuffer(*b, msg);
}

bool DecodeOutputFlatbuffers(std::string_view buf, rules::Output* o) {
  std::vector<uint64_t> aligned;
  const uint8_t* data = reinterpret_cast<const uint8_t*>(buf.data());
  if (reinterpret_cast<uintptr_t>(data) % alignof(uint64_t) != 0) {
    aligned.resize((buf.size() + 7) / 8);
    std::memcpy(aligned.data(), buf.data(), buf.size());
    data = reinterpret_cast<const uint8_t*>(aligned.data());
  }
  flatbuffers::Verifier::Options opts;
  opts.max_depth = 16;
  opts.max_tables = static_cast<flatbuffers::uoffset_t>(buf.size() / 8 + 16);
  flatbuffers::Verifier verifier(data, buf.size(), opts);
  if (buf.size() < 8 || !fb::VerifyOutputMessageBuffer(verifier)) return false;
  const fb::OutputMessage* m = fb::GetOutputMessage(data);
  *o = rules::Output();
  switch (m->type()) {
    case fb::OutputType::Command: o->type = rules::OutputType::kCommand; break;
    case fb::OutputType::Alert: o->type = rules::OutputType::kAlert; break;
    default: return false;
  }
  o->seq = m->seq();
  o->ts_ms = m->ts();
  o->rule = View(m->rule());
  o->key = View(m->key());
  o->target = View(m->target());
  o->action = View(m->action());
  o->state = View(m->state());
  o->severity = View(m->severity());
  o->summary = View(m->summary());
  if (const auto* ps = m->params()) {
    for (const fb::Param* p : *ps) {
      rules::Param q;
      q.name = View(p->name());
      switch (p->kind()) {
        case fb::ParamKind::Null: q.value.kind = rules::ParamValue::Kind::kNull; break;
        case fb::ParamKind::Number: q.value.kind = rules::ParamValue::Kind::kNumber; break;
        case fb::ParamKind::String: q.value.kind = rules::ParamValue::Kind::kString; break;
        case fb::ParamKind::Bool: q.value.kind = rules::ParamValue::Kind::kBool; break;
        case fb::ParamKind::Json: q.value.kind = rules::ParamValue::Kind::kJson; break;
        default: return false;
      }
      q.value.num = p->num();
      q.value.b = p->b();
      q.value.str = View(p->str());
      o->params.push_back(std::move(q));
    }
  }
  if (const auto* ls = m->labels()) {
    for (const fb::Label* l : *ls) o->labels.emplace_back(View(l->key()), View(l->value()));
  }
  return true;
}

bool DecodeOutputJson(std::string_view text, rules::Output* o) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(text.data(), text.size(), true).get(root) != simdjson::SUCCESS) return false;
  simdjson::dom::object obj;
  if (root.get_object().get(obj) != simdjson::SUCCESS) return false;
  *o = rules::Output();
  bool have_type = false;
  for (auto [k, v] : obj) {
    std::string_view s;
    const bool is_str = v.get_string().get(s) == simdjson::SUCCESS;
    if (k == "type") {
      if (!is_str) return false;
      if (s == "command") {
        o->type = rules::OutputType::kCommand;
      } else if (s == "alert") {
        o->type = rules::OutputType::kAlert;
      } else {
        return false;
      }
      have_type = true;
    } else if (k == "seq") {
      uint64_t seq;
      if (v.get_uint64().get(seq) != simdjson::SUCCESS) return false;
      o->seq = seq;
    } else if (k == "ts") {
      if (!is_str || !rules::ParseRfc3339(s, &o->ts_ms)) return false;
    } else if (k == "params" || k == "labels") {
      simdjson::dom::object m;
      if (v.get_object().get(m) != simdjson::SUCCESS) return false;
      for (auto [pk, pv] : m) {
        if (k == "labels") {
          std::string_view lv;
          if (pv.get_string().get(lv) != simdjson::SUCCESS) return false;
          o->labels.emplace_back(std::string(pk), std::string(lv));
          continue;
        }
        rules::Param p;
        p.name = std::string(pk);
        switch (pv.type()) {
          case simdjson::dom::element_type::NULL_VALUE:
            p.value.kind = rules::ParamValue::Kind::kNull;
            break;
          case simdjson::dom::element_type::BOOL:
            p.value.kind = rules::ParamValue::Kind::kBool;
            p.value.b = pv.get_bool().value_unsafe();
            break;
          case simdjson::dom::element_type::STRING:
            p.value.kind = rules::ParamValue::Kind::kString;
            p.value.str = std::string(pv.get_string().value_unsafe());
            break;
          case simdjson::dom::element_type::INT64:
          case simdjson::dom::element_type::UINT64:
          case simdjson::dom::element_type::DOUBLE:
            p.value.kind = rules::ParamValue::Kind::kNumber;
            p.value.num = pv.get_double().value_unsafe();
            break;
          default:
            p.value.kind = rules::ParamValue::Kind::kJson;
            p.value.str = simdjson::minify(pv);
            break;
        }
        o->params.push_back(std::move(p));
      }
    } else if (is_str) {
      std::string* dst = nullptr;
      if (k == "rule") dst = &o->rule;
      else if (k == "key") dst = &o->key;
      else if (k == "target") dst = &o->target;
      else if (k == "action") dst = &o->action;
      else if (k == "state") dst = &o->state;
      else if (k == "severity") dst = &o->severity;
      else if (k == "summary") dst = &o->summary;
      if (dst != nullptr) dst->assign(s.data(), s.size());
    }
  }
  return have_type;
}

void OutputTopic(const rules::Output& o, std::string* out) {
  out->clear();
  if (o.type == rules::OutputType::kCommand) {
    out->append(o.target);
  } else {
    out->append("alert/");
    out->append(o.severity);
    out->push_back('/');
    out->append(o.rule);
  }
}

}  // namespace vigie::codec
