#include "daemon/cli.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "daemon/config/config.h"
#include "daemon/util/rules_files.h"
#include "daemon/util/tz.h"
#include "plugins/codec/json_decoder.h"
#include "plugins/codec/output_codec.h"
#include "rules/loader.h"
#include "rules/replay.h"
#include "rules/ruleset_api.h"
#include "rules/timefmt.h"

namespace vigie::daemon {

bool ParseTimeArg(const std::string& text, int64_t* ms) {
  if (text.empty()) return false;
  bool digits = true;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (!(c >= '0' && c <= '9') && !(i == 0 && c == '-')) digits = false;
  }
  if (digits) {
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(text.c_str(), &end, 10);
    if (errno || *end) return false;
    *ms = v;
    return true;
  }
  return rules::ParseRfc3339(text, ms);
}

namespace {

std::shared_ptr<const rules::RuleSet> LoadRules(const std::vector<std::string>& paths,
                                                std::vector<rules::LoadError>* errors,
                                                size_t* files) {
  std::vector<rules::RuleSource> sources;
  ReadRuleSources(paths, &sources, errors);
  if (files) *files = sources.size();
  if (!errors->empty()) return nullptr;
  return rules::CompileRules(sources, errors);
}

class PrintSink : public rules::OutputSink {
 public:
  void Emit(rules::Output&& o) override {
    line_.clear();
    codec::EncodeOutputJson(o, &line_);
    line_.push_back('\n');
    std::fwrite(line_.data(), 1, line_.size(), stdout);
  }

 private:
  std::string line_;
};

}  // namespace

int RunCheck(const std::vector<std::string>& paths) {
  std::vector<rules::LoadError> errors;
  size_t files = 0;
  auto rs = LoadRules(paths, &errors, &files);
  if (!rs) {
    for (const auto& e : errors) std::printf("%s\n", e.ToString().c_str());
    return 1;
  }
  size_t n = rules::RuleCount(*rs);
  // Exactly the contract's form, also for 1 (scripts match "ok: N rules in M files").
  std::printf("ok: %zu rules in %zu files\n", n, files);
  return 0;
}

int RunReplay(const ReplayArgs& a) {
  Config cfg;
  if (!a.config.empty()) {
    std::vector<ConfigError> cerrs;
    if (!LoadConfigFile(a.config, &cfg, &cerrs)) {
      for (const auto& e : cerrs) std::fprintf(stderr, "%s\n", e.ToString().c_str());
      return 1;
    }
  }
  std::optional<int64_t> until;
  if (a.until) {
    int64_t t;
    if (!ParseTimeArg(*a.until, &t)) {
      std::fprintf(stderr, "vigie replay: --until '%s' is neither ms since the epoch nor an RFC 3339 time\n",
                   a.until->c_str());
      return 2;
    }
    until = t;
  }
  std::string tz_error;
  auto tz = LoadTimeZone(cfg.timezone, &tz_error);
  if (!tz) {
    std::fprintf(stderr, "vigie replay: %s\n", tz_error.c_str());
    return 1;
  }
  std::vector<rules::LoadError> errors;
  auto rs = LoadRules({a.rules}, &errors, nullptr);
  if (!rs) {
    for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.ToString().c_str());
    return 1;
  }
  std::istream* in = &std::cin;
  std::ifstream file;
  std::string name = "<stdin>";
  if (a.events != "-") {
    file.open(a.events, std::ios::binary);
    if (!file) {
      std::fprintf(stderr, "vigie replay: cannot read %s: %s\n", a.events.c_str(), std::strerror(errno));
      return 1;
    }
    in = &file;
    name = a.events;
  }
  PrintSink sink;
  rules::ReplayDriver driver(rs, tz.get(), cfg.location, &sink);
  codec::JsonDecoder decoder(cfg.max_message_bytes);
  std::string line, error;
  rules::Event ev;
  size_t lineno = 0;
  while (std::getline(*in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank line
    // The ingest time of an event without ts is the previous event's time (replay is virtual).
    if (!decoder.DecodeEvent(line, driver.last_time(), &ev, &error)) {
      std::fprintf(stderr, "%s:%zu: %s\n", name.c_str(), lineno, error.c_str());
      continue;
    }
    if (!driver.Feed(ev, &error)) {
      std::fprintf(stderr, "%s:%zu: %s\n", name.c_str(), lineno, error.c_str());
      continue;
    }
  }
  driver.Finish(until);
  std::fflush(stdout);
  return 0;
}

}  // namespace vigie::daemon
