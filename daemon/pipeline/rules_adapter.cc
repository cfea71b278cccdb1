#include "daemon/pipeline/rules_adapter.h"

#include "rules/ruleset_api.h"

namespace vigie::daemon {
namespace {

class RulesShardEngine final : public ShardEngine {
 public:
  RulesShardEngine(std::shared_ptr<const rules::RuleSet> rs, const rules::EngineOptions& o)
      : engine_(std::move(rs), o) {}
  void AdvanceTo(int64_t now_ms, rules::OutputSink& out) override { engine_.AdvanceTo(now_ms, out); }
  void Process(const rules::Event& ev, int64_t t, rules::OutputSink& out) override {
    engine_.Process(ev, t, out);
  }
  void Prepare(const rules::Event& ev) override { engine_.Prepare(ev); }
  void DropPrepared() override { engine_.DropPrepared(); }
  int64_t now() const override { return engine_.now(); }
  int64_t NextTimer() const override { return engine_.NextTimer(); }
  void SwapRules(std::shared_ptr<const rules::RuleSet> rs) override { engine_.SwapRules(std::move(rs)); }
  void TakeDirty(rules::StateDelta* d) override { engine_.TakeDirty(d); }
  bool TakeDirtySlice(rules::StateDelta* d, size_t max_groups) override {
    return engine_.TakeDirtySlice(d, max_groups);
  }
  void TakeAll(rules::StateDelta* d) override { engine_.TakeAll(d); }
  void TakeChanged(rules::StateDelta* d) override { engine_.TakeChanged(d); }
  bool Restore(std::string_view k, std::string_view v) override { return engine_.Restore(k, v); }
  void TakeForeignKeys(std::vector<std::string>* keys) override { engine_.TakeForeignKeys(keys); }
  void FinishRestore(int64_t now_ms, rules::OutputSink& out) override {
    engine_.FinishRestore(now_ms, out);
  }
  size_t group_count() const override { return engine_.group_count(); }
  size_t rule_count() const override { return rules::RuleCount(engine_.rules()); }
  const std::string& rule_name(size_t i) const override {
    return rules::GetRuleInfo(engine_.rules(), i).name;
  }
  const rules::RuleStats& stats(size_t i) const override { return engine_.stats(i); }

 private:
  rules::Engine engine_;
};

class RuleSetRouting final : public Routing {
 public:
  explicit RuleSetRouting(std::shared_ptr<const rules::RuleSet> rs) : rules_(std::move(rs)) {}
  uint64_t Mask(const rules::Event& ev, int shard_count) const override {
    return rules::RouteMask(*rules_, ev, shard_count);
  }

 private:
  std::shared_ptr<const rules::RuleSet> rules_;
};

}  // namespace

ShardEngineFactory MakeRulesEngineFactory(const rules::EngineOptions& base) {
  return [base](int shard_index, int shard_count, std::shared_ptr<const rules::RuleSet> rs) {
    rules::EngineOptions o = base;
    o.shard_index = shard_index;
    o.shard_count = shard_count;
    return std::unique_ptr<ShardEngine>(new RulesShardEngine(std::move(rs), o));
  };
}

std::shared_ptr<const Routing> MakeRuleSetRouting(std::shared_ptr<const rules::RuleSet> rules) {
  if (!rules) return nullptr;
  return std::make_shared<RuleSetRouting>(std::move(rules));
}

}  // namespace vigie::daemon
