// libFuzzer: the durable state's decoder (Engine::Restore, the window's Deserialize), which reads
// whatever RocksDB holds: a state directory written by another version, or damaged. The input is
// a sequence of records, each a 2-byte little-endian key length, the key, a 2-byte value
// length, the value; keys may be any format (rules/README.md "Durable state"). The rules are
// tests/rules/testdata/state-format1.yaml, so that seeds made from state-format1.txt (and their
// format 2, 3 and 4 forms, journals included) reach the real groups. It must never crash, and
// whatever it accepts must behave: restored groups take events and timers, and write packs that
// restore again, to the same bytes (but for the packs' checkpoint numbers).
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "rules/engine.h"
#include "rules/loader.h"
#include "rules/timezone.h"

namespace vr = vigie::rules;

namespace {

struct Null : vr::OutputSink {
  void Emit(vr::Output&&) override {}
};

std::shared_ptr<const vr::RuleSet> Rules() {
  static std::shared_ptr<const vr::RuleSet> rs = [] {
    std::ifstream in(VIGIE_RULES_TESTDATA_DIR "/state-format1.yaml");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    std::vector<vr::LoadError> errors;
    auto r = vr::CompileRules({vr::RuleSource{"rules.yaml", text}}, &errors);
    if (!r) std::abort();  // the fixture must load
    return r;
  }();
  return rs;
}

// The puts, each pack without its checkpoint number (format 4: u8 4, varint number, the rest),
// which a restore carries on: the second TakeAll numbers its packs one higher than the first.
std::map<std::string, std::string> Apply(const vr::StateDelta& d) {
  std::map<std::string, std::string> kv;
  for (const auto& [k, v] : d.puts) {
    std::string_view rest = v;
    if (!rest.empty() && rest[0] == '\x04') {
      size_t i = 1;
      while (i < rest.size() && (static_cast<uint8_t>(rest[i]) & 0x80)) ++i;
      rest = rest.substr(std::min(i + 1, rest.size()));
    }
    kv[std::string(k)] = std::string(rest);
  }
  return kv;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static vr::FixedOffsetZone tz(3600);
  vr::EngineOptions o;
  o.tz = &tz;
  vr::Engine e(Rules(), o);
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto take = [&in](std::string_view* out) {
    if (in.size() < 2) return false;
    size_t n = static_cast<uint8_t>(in[0]) | static_cast<size_t>(static_cast<uint8_t>(in[1])) << 8;
    in.remove_prefix(2);
    if (n > in.size()) return false;
    *out = in.substr(0, n);
    in.remove_prefix(n);
    return true;
  };
  std::string_view k, v;
  while (take(&k) && take(&v)) e.Restore(k, v);
  Null out;
  const int64_t t0 = 1795726831000;  // the fixture's last event
  e.FinishRestore(t0, out);
  vr::StateDelta first;
  e.TakeAll(&first);

  // What was accepted restores again from the packs it wrote, to the same bytes.
  vr::Engine again(Rules(), o);
  for (const auto& [pk, pv] : first.puts) {
    if (!again.Restore(pk, pv)) std::abort();
  }
  again.FinishRestore(t0, out);
  vr::StateDelta second;
  again.TakeAll(&second);
  if (Apply(first) != Apply(second)) std::abort();

  // Restored groups take events and fire their timers.
  vr::Event ev;
  ev.kind = "pedestrian";
  ev.has_ts = true;
  ev.ts_ms = t0 + 1000;
  ev.Set("crossing", vr::Value::String("x1"));
  ev.Set("device", vr::Value::String("p9"));
  ev.Set("w", vr::Value::Number(3));
  e.Process(ev, ev.ts_ms, out);
  e.AdvanceTo(t0 + 2 * 3600 * 1000, out);
  return 0;
}
