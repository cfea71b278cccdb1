// Codec tests: JSON / FlatBuffers events in, JSON / FlatBuffers outputs out.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "plugins/codec/event_encoder.h"
#include "plugins/codec/fb_decoder.h"
#include "plugins/codec/json_decoder.h"
#include "plugins/codec/json_text.h"
#include "plugins/codec/message_decoder.h"
#include "plugins/codec/output_codec.h"
#include "rules/timefmt.h"

using vigie::codec::EncodeEventJson;
using vigie::codec::JsonDecoder;
using vigie::plugins::RejectReason;
using vigie::rules::Event;
using vigie::rules::EventBuffer;

namespace {

constexpr int64_t kIngestMs = 1795726800000;  // 2026-11-26T21:00:00Z
constexpr int kReasons = static_cast<int>(RejectReason::kCount_);

struct Counts {
  uint64_t r[kReasons] = {};
  uint64_t operator[](RejectReason x) const { return r[static_cast<int>(x)]; }
  std::string str() const {
    std::string s;
    for (int i = 0; i < kReasons; ++i) {
      if (r[i] == 0) continue;
      if (!s.empty()) s += " ";
      s += std::string(vigie::plugins::RejectReasonName(static_cast<RejectReason>(i))) + "=" +
           std::to_string(r[i]);
    }
    return s;
  }
};

// Renders an event as text for comparison: kind@ts(+/-) name=value ...
std::string Render(const Event& e) {
  std::string s = e.kind + "@" + std::to_string(e.ts_ms) + (e.has_ts ? "" : "(ingest)");
  for (const auto& f : e.fields) {
    s += " " + f.name + "=";
    switch (f.value.type) {
      case vigie::rules::Type::kNumber: vigie::rules::AppendNumber(&s, f.value.num); break;
      case vigie::rules::Type::kString: s += "'" + f.value.str + "'"; break;
      case vigie::rules::Type::kBool: s += f.value.b ? "true" : "false"; break;
      case vigie::rules::Type::kMissing: s += "?"; break;
    }
  }
  return s;
}

std::string RenderAll(const EventBuffer& evs) {
  std::string s;
  for (const auto& e : evs) s += Render(e) + "\n";
  return s;
}

std::string DecodeJson(std::string_view msg, Counts* c, size_t max = 1 << 20) {
  JsonDecoder d(max);
  EventBuffer out;
  d.DecodeMessage(msg, kIngestMs, 42, &out, c->r);
  return RenderAll(out);
}

vigie::rules::Output Command() {
  vigie::rules::Output o;
  o.type = vigie::rules::OutputType::kCommand;
  o.seq = 1;
  o.ts_ms = 1795727700000;  // 2026-11-26T21:15:00Z
  o.rule = "bin-full";
  o.key = "bin-1";
  o.target = "waste/centre";
  o.action = "pickup";
  o.params.push_back({"bin", {vigie::rules::ParamValue::Kind::kString, 0, false, "bin-1"}});
  o.params.push_back({"fill", {vigie::rules::ParamValue::Kind::kString, 0, false, "90"}});
  return o;
}

vigie::rules::Output Alert() {
  vigie::rules::Output o;
  o.type = vigie::rules::OutputType::kAlert;
  o.seq = 2;
  o.ts_ms = 1795727700000;
  o.rule = "bin-full";
  o.key = "bin-1";
  o.state = "firing";
  o.severity = "info";
  o.summary = "Bin bin-1 at 90 %";
  return o;
}

}  // namespace

TEST_CASE("json: one event object", "[codec]") {
  Counts c;
  CHECK(DecodeJson(R"({"ts": 1764194400000, "device": "cam-17", "kind": "camera.status",)"
                   R"( "status": "fault", "code": 12, "ok": false})",
                   &c) ==
        "camera.status@1764194400000 device='cam-17' status='fault' code=12 ok=false\n");
  CHECK(c.str() == "");
}

TEST_CASE("json: ingest time and ingest_ns when ts is absent or null", "[codec]") {
  JsonDecoder d;
  EventBuffer out;
  Counts c;
  REQUIRE(d.DecodeMessage(R"([{"kind": "a"}, {"kind": "b", "ts": null}])", kIngestMs, 77, &out,
                          c.r) == 2);
  CHECK(RenderAll(out) == "a@1795726800000(ingest)\nb@1795726800000(ingest)\n");
  CHECK(out[0].ingest_ns == 77);
  CHECK(c.str() == "");
}

TEST_CASE("json: ts forms", "[codec]") {
  Counts c;
  CHECK(DecodeJson(R"([{"kind": "k", "ts": "2026-11-26T22:00:00Z"},)"
                   R"( {"kind": "k", "ts": "2026-11-26T22:00:00.123456Z"},)"
                   R"( {"kind": "k", "ts": "2026-11-26T23:00:00+01:00"},)"
                   R"( {"kind": "k", "ts": "2026-11-26T20:30:00.5-01:30"},)"
                   R"( {"kind": "k", "ts": 1764194400000.9}])",
                   &c) ==
        "k@1795730400000\nk@1795730400123\nk@1795730400000\nk@1795730400500\nk@1764194400000\n");
  CHECK(c.str() == "");
}

TEST_CASE("json: bad ts rejects only that event", "[codec]") {
  Counts c;
  CHECK(DecodeJson(R"([{"kind": "a", "ts": "yesterday"}, {"kind": "b", "ts": true},)"
                   R"( {"kind": "c", "ts": -5}, {"kind": "d", "ts": 1e300},)"
                   R"( {"kind": "e", "ts": {"ms": 1}}, {"kind": "ok", "ts": 5}])",
                   &c) == "ok@5\n");
  CHECK(c.str() == "bad_ts=5");
}

TEST_CASE("json: batch keeps valid events and counts the bad ones by reason", "[codec]") {
  Counts c;
  CHECK(DecodeJson(R"([{"kind": "a", "device": "d1"}, {"device": "no-kind"}, 42, "x",)"
                   R"( {"kind": ""}, {"kind": 7}, {"kind": "b", "ts": "bad"}, {"kind": "c"}, []])",
                   &c) == "a@1795726800000(ingest) device='d1'\nc@1795726800000(ingest)\n");
  CHECK(c.str() == "malformed=3 missing_kind=3 bad_ts=1");
}

TEST_CASE("json: nested objects are flattened, arrays and nulls skipped", "[codec]") {
  Counts c;
  CHECK(DecodeJson(R"({"kind": "gps", "gps": {"lat": 47.3, "lon": 5.04, "fix": {"ok": true,)"
                   R"( "ts": 3}}, "tags": [1, 2], "none": null, "empty": {}, "after": "x"})",
                   &c) ==
        "gps@1795726800000(ingest) gps.lat=47.3 gps.lon=5.04 gps.fix.ok=true gps.fix.ts=3 "
        "after='x'\n");
  CHECK(c.str() == "");
}

TEST_CASE("json: escaped strings are unescaped", "[codec]") {
  Counts c;
  CHECK(DecodeJson(R"({"kind": "k\u00e9", "n\"ame": "a\nb\u20ac"})", &c) ==
        "k\xC3\xA9@1795726800000(ingest) n\"ame='a\nb\xE2\x82\xAC'\n");
}

TEST_CASE("json: malformed messages are rejected whole", "[codec]") {
  for (const char* msg : {"", "   ", "{", R"([{"kind": "a"}, {"kind": )", R"({"kind": "a"} x)",
                          R"({"kind": "a"}{"kind": "b"})", "nul", "{\"kind\": \"\xff\"}",
                          R"({"kind": "a", "n": 123456789012345678901234567890)",
                          R"({"kind": "a", "n": 012345678901234567890})",
                          R"({"kind": "a", "n": 12345678901234567890123x})"}) {
    INFO(msg);
    Counts c;
    CHECK(DecodeJson(msg, &c) == "");
    CHECK(c.str() == "malformed=1");
  }
}

TEST_CASE("json: integer literals beyond 64 bits are numbers, like any other", "[codec]") {
  Counts c;
  CHECK(DecodeJson(R"([{"kind": "a", "n": 123456789012345678901234567890, )"
                   R"("m": -99999999999999999999, "s": "12345678901234567890123", )"
                   R"("f": 1.2345678901234567890123, "e": 12345678901234567890e2, )"
                   R"("big\"q": 1000000000000000000000}, {"kind": "b", "i": 7}])",
                   &c) ==
        "a@1795726800000(ingest) n=1.2345678901234568e+29 m=-1e+20 s='12345678901234567890123' "
        "f=1.2345678901234567 e=1.2345678901234568e+21 big\"q=1e+21\n"
        "b@1795726800000(ingest) i=7\n");
  CHECK(c.str() == "");
  // The same decoder goes on with ordinary messages.
  JsonDecoder d;
  EventBuffer out;
  CHECK(d.DecodeMessage(R"({"kind": "a", "ts": 99999999999999999999999})", kIngestMs, 0, &out,
                        c.r) == 0);
  CHECK(c.str() == "bad_ts=1");
  CHECK(d.DecodeMessage(R"({"kind": "a", "x": 1})", kIngestMs, 0, &out, c.r) == 1);
  CHECK(out.back().Get("x").num == 1);
}

TEST_CASE("json: oversize message", "[codec]") {
  Counts c;
  CHECK(DecodeJson(R"({"kind": "a", "pad": "0123456789"})", &c, 16) == "");
  CHECK(c.str() == "oversize=1");
}

TEST_CASE("json: DecodeEvent gives human messages", "[codec]") {
  JsonDecoder d;
  Event ev;
  std::string err;
  CHECK(d.DecodeEvent(R"({"kind": "a", "ts": 5, "x": 1})", kIngestMs, &ev, &err));
  CHECK(err == "");
  CHECK(Render(ev) == "a@5 x=1");
  CHECK_FALSE(d.DecodeEvent(R"({"x": 1})", kIngestMs, &ev, &err));
  CHECK(err == "missing kind");
  CHECK_FALSE(d.DecodeEvent(R"({"kind": "a", "ts": "noon"})", kIngestMs, &ev, &err));
  CHECK(err == "ts is neither ms nor RFC 3339");
  CHECK_FALSE(d.DecodeEvent(R"([{"kind": "a"}])", kIngestMs, &ev, &err));
  CHECK(err == "not a JSON object: array");
  CHECK_FALSE(d.DecodeEvent(R"({"kind": )", kIngestMs, &ev, &err));
  CHECK(err.rfind("not a JSON object: ", 0) == 0);
  CHECK(ev.kind.empty());
  CHECK(ev.fields.empty());
}

TEST_CASE("json: decoder reuse across messages of growing size", "[codec]") {
  JsonDecoder d;
  EventBuffer out;
  Counts c;
  for (int n : {1, 500, 3, 2000}) {
    std::string msg = "[";
    for (int i = 0; i < n; ++i) msg += std::string(i ? ", " : "") + R"({"kind": "k", "i": )" +
                                       std::to_string(i) + "}";
    msg += "]";
    out.Clear();
    REQUIRE(d.DecodeMessage(msg, kIngestMs, 0, &out, c.r) == static_cast<size_t>(n));
    CHECK(out.back().Get("i").num == n - 1);
  }
  CHECK(c.str() == "");
}

TEST_CASE("json text: escaping of control characters and invalid UTF-8", "[codec]") {
  std::string s;
  vigie::codec::AppendJsonString(&s, "a\"b\\c\n\t\r\b\f\x01\x1f\x7f/");
  CHECK(s == R"("a\"b\\c\n\t\r\b\f\u0001\u001f)" "\x7f" R"(/")");
  s.clear();
  // valid 2/3/4-byte sequences kept; stray continuation, overlong, surrogate, truncated replaced
  vigie::codec::AppendJsonString(&s, "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80|\x80|\xC0\xAF|"
                                     "\xED\xA0\x80|\xE2\x82");
  CHECK(s == "\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80|\xEF\xBF\xBD|\xEF\xBF\xBD\xEF\xBF\xBD|"
             "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD|\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

TEST_CASE("json text: FormatRfc3339Ms matches rules::AppendRfc3339Ms", "[codec]") {
  for (int64_t ms : {int64_t{0}, int64_t{1}, int64_t{-1}, int64_t{1795727700000},
                     int64_t{951782400123}, int64_t{-86400001}, int64_t{253402300799999}}) {
    char buf[48];
    size_t n = vigie::codec::FormatRfc3339Ms(ms, buf);
    CHECK(std::string(buf, n) == vigie::rules::FormatRfc3339Ms(ms));
  }
}

TEST_CASE("output json: exact text of a command and an alert", "[codec]") {
  std::string s;
  vigie::codec::EncodeOutputJson(Command(), &s);
  CHECK(s ==
        R"({"type": "command", "seq": 1, "ts": "2026-11-26T21:15:00.000Z", "rule": "bin-full",)"
        R"( "key": "bin-1", "target": "waste/centre", "action": "pickup", "params": {"bin":)"
        R"( "bin-1", "fill": "90"}})");
  vigie::codec::EncodeOutputJson(Alert(), &s);
  CHECK(s ==
        R"({"type": "alert", "seq": 2, "ts": "2026-11-26T21:15:00.000Z", "rule": "bin-full",)"
        R"( "key": "bin-1", "state": "firing", "severity": "info", "summary": "Bin bin-1 at 90 %",)"
        R"( "labels": {}})");
  auto a = Alert();
  a.labels = {{"zone", "z\"1"}, {"team", "ops"}};
  vigie::codec::EncodeOutputJson(a, &s);
  CHECK(s.ends_with(R"("labels": {"zone": "z\"1", "team": "ops"}})"));
}

TEST_CASE("output json: param kinds, NaN, escaping, raw JSON", "[codec]") {
  using K = vigie::rules::ParamValue::Kind;
  auto o = Command();
  o.params.clear();
  o.params.push_back({"n", {K::kNumber, 30, false, ""}});
  o.params.push_back({"f", {K::kNumber, 2.5, false, ""}});
  o.params.push_back({"nan", {K::kNumber, std::nan(""), false, ""}});
  o.params.push_back({"inf", {K::kNumber, std::numeric_limits<double>::infinity(), false, ""}});
  o.params.push_back({"b", {K::kBool, 0, true, ""}});
  o.params.push_back({"z", {K::kNull, 0, false, ""}});
  o.params.push_back({"j", {K::kJson, 0, false, R"({"a":[1,2]})"}});
  o.params.push_back({"s", {K::kString, 0, false, "l\xffne\n"}});
  o.target = "lights/z\t1";
  std::string s;
  vigie::codec::EncodeOutputJson(o, &s);
  CHECK(s == R"({"type": "command", "seq": 1, "ts": "2026-11-26T21:15:00.000Z", "rule":)"
             R"( "bin-full", "key": "bin-1", "target": "lights/z\t1", "action": "pickup",)"
             R"( "params": {"n": 30, "f": 2.5, "nan": null, "inf": null, "b": true, "z": null,)"
             R"( "j": {"a":[1,2]}, "s": "l)" "\xEF\xBF\xBD" R"(ne\n"}})");
  // What we wrote reads back.
  vigie::rules::Output back;
  REQUIRE(vigie::codec::DecodeOutputJson(s, &back));
  CHECK(back.target == "lights/z\t1");
  REQUIRE(back.params.size() == 8);
  CHECK(back.params[0].value.kind == K::kNumber);
  CHECK(back.params[0].value.num == 30);
  CHECK(back.params[2].value.kind == K::kNull);
  CHECK(back.params[4].value.b);
  CHECK(back.params[6].value.kind == K::kJson);
  CHECK(back.params[6].value.str == R"({"a":[1,2]})");
}

TEST_CASE("output json: decode round trip and bad input", "[codec]") {
  std::string s;
  for (const auto& o : {Command(), Alert()}) {
    vigie::codec::EncodeOutputJson(o, &s);
    vigie::rules::Output back;
    REQUIRE(vigie::codec::DecodeOutputJson(s, &back));
    std::string again;
    vigie::codec::EncodeOutputJson(back, &again);
    CHECK(again == s);
  }
  vigie::rules::Output back;
  CHECK_FALSE(vigie::codec::DecodeOutputJson("{", &back));
  CHECK_FALSE(vigie::codec::DecodeOutputJson(R"({"type": "other"})", &back));
  CHECK_FALSE(vigie::codec::DecodeOutputJson(R"({"type": "alert", "ts": "x"})", &back));
}

TEST_CASE("output topics", "[codec]") {
  std::string t;
  vigie::codec::OutputTopic(Command(), &t);
  CHECK(t == "waste/centre");
  vigie::codec::OutputTopic(Alert(), &t);
  CHECK(t == "alert/info/bin-full");
}

TEST_CASE("output flatbuffers: round trip of a command and an alert", "[codec]") {
  flatbuffers::FlatBufferBuilder b;
  using K = vigie::rules::ParamValue::Kind;
  auto cmd = Command();
  cmd.params.push_back({"level", {K::kNumber, 30, false, ""}});
  cmd.params.push_back({"on", {K::kBool, 0, true, ""}});
  cmd.params.push_back({"nothing", {K::kNull, 0, false, ""}});
  cmd.params.push_back({"nested", {K::kJson, 0, false, "[1,2]"}});
  auto alert = Alert();
  alert.labels = {{"a", "1"}, {"b", "2"}};
  for (const auto& o : {cmd, alert}) {
    vigie::codec::EncodeOutputFlatbuffers(o, &b);
    std::string_view buf(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
    CHECK(buf.substr(4, 4) == "VGOU");
    vigie::rules::Output back;
    REQUIRE(vigie::codec::DecodeOutputFlatbuffers(buf, &back));
    std::string want, got;
    vigie::codec::EncodeOutputJson(o, &want);
    vigie::codec::EncodeOutputJson(back, &got);
    CHECK(got == want);
    // Truncated: every prefix is refused (the last bytes may be alignment padding: cut >= 8).
    for (size_t n = 0; n + 8 <= buf.size(); ++n) {
      CHECK_FALSE(vigie::codec::DecodeOutputFlatbuffers(buf.substr(0, n), &back));
    }
  }
}

TEST_CASE("events: JSON encoder -> decoder round trip", "[codec]") {
  Event e;
  e.kind = "bin.level";
  e.ts_ms = 1795726800000;
  e.has_ts = true;
  e.Set("device", vigie::rules::Value::String("bin-1"));
  e.Set("fill", vigie::rules::Value::Number(50.5));
  e.Set("gps.lat", vigie::rules::Value::Number(47.3));
  e.Set("ok", vigie::rules::Value::Bool(true));
  e.Set("note", vigie::rules::Value::String("a \"b\"\n"));
  std::string s;
  EncodeEventJson(e, &s);
  CHECK(s == R"({"ts": 1795726800000, "kind": "bin.level", "device": "bin-1", "fill": 50.5,)"
             R"( "gps.lat": 47.3, "ok": true, "note": "a \"b\"\n"})");
  Counts c;
  CHECK(DecodeJson(s, &c) == Render(e) + "\n");
  Event no_ts;
  no_ts.kind = "k";
  std::vector<Event> two{e, no_ts};
  vigie::codec::EncodeEventBatchJson(two, &s);
  CHECK(DecodeJson(s, &c) == Render(e) + "\nk@1795726800000(ingest)\n");
  CHECK(c.str() == "");
}

TEST_CASE("events: FlatBuffers encoder -> decoder round trip", "[codec]") {
  Event e;
  e.kind = "bin.level";
  e.ts_ms = 1795726800000;
  e.has_ts = true;
  e.Set("device", vigie::rules::Value::String("bin-1"));
  e.Set("fill", vigie::rules::Value::Number(50.5));
  e.Set("ok", vigie::rules::Value::Bool(false));
  e.Set("s", vigie::rules::Value::String(""));
  Event no_ts;
  no_ts.kind = "k";
  no_ts.Set("n", vigie::rules::Value::Number(-1));
  Event no_kind;
  no_kind.Set("x", vigie::rules::Value::Number(1));
  Event bad_ts = e;
  bad_ts.ts_ms = -4;
  std::vector<Event> in{e, no_ts, no_kind, bad_ts};
  flatbuffers::FlatBufferBuilder b;
  vigie::codec::EncodeEventBatchFlatbuffers(in, &b);
  std::string_view buf(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
  REQUIRE(vigie::codec::IsFlatBufferEvents(buf));

  vigie::codec::MessageDecoder d;
  EventBuffer out;
  Counts c;
  REQUIRE(d.DecodeMessage(buf, kIngestMs, 9, &out, c.r) == 2);
  CHECK(RenderAll(out) ==
        "bin.level@1795726800000 device='bin-1' fill=50.5 ok=false s=''\n"
        "k@1795726800000(ingest) n=-1\n");
  CHECK(out[1].ingest_ns == 9);
  CHECK(c.str() == "missing_kind=1 bad_ts=1");

  // JSON and FlatBuffers carry the same information.
  std::vector<Event> valid{e, no_ts};
  std::string json;
  vigie::codec::EncodeEventBatchJson(valid, &json);
  EventBuffer from_json;
  d.DecodeMessage(json, kIngestMs, 9, &from_json, c.r);
  CHECK(RenderAll(from_json) == RenderAll(out));
}

TEST_CASE("events: truncated or garbage FlatBuffers are rejected whole", "[codec]") {
  Event e;
  e.kind = "k";
  e.Set("device", vigie::rules::Value::String("d"));
  std::vector<Event> in(3, e);
  flatbuffers::FlatBufferBuilder b;
  vigie::codec::EncodeEventBatchFlatbuffers(in, &b);
  std::string buf(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
  vigie::codec::FbDecoder d;
  // Every prefix that cuts more than the alignment padding at the end.
  for (size_t n = 8; n + 8 <= buf.size(); ++n) {
    EventBuffer out;
    Counts c;
    CHECK(d.DecodeMessage(std::string_view(buf).substr(0, n), kIngestMs, 0, &out, c.r) == 0);
    CHECK(c.str() == "malformed=1");
  }
  // Root offset pointing past the end.
  std::string bad = buf;
  bad[0] = '\x7f';
  EventBuffer out;
  Counts c;
  CHECK(d.DecodeMessage(bad, kIngestMs, 0, &out, c.r) == 0);
  CHECK(c.str() == "malformed=1");
  // Misaligned copy of a valid buffer still decodes (zmq small messages are not aligned).
  std::string shifted = " " + buf;
  CHECK(d.DecodeMessage(std::string_view(shifted).substr(1), kIngestMs, 0, &out, c.r) == 3);
}

TEST_CASE("events: JSON can never look like a FlatBuffer", "[codec]") {
  CHECK_FALSE(vigie::codec::IsFlatBufferEvents(R"(["abVGEV"])"));
  CHECK_FALSE(vigie::codec::IsFlatBufferEvents("{}"));
  CHECK(vigie::codec::IsFlatBufferEvents(std::string("\x0c\0\0\0VGEV", 8)));
  Counts c;
  CHECK(DecodeJson(R"(["abVGEV"])", &c) == "");
  CHECK(c.str() == "malformed=1");
}
