#include "daemon/pipeline/pipeline.h"

#include <algorithm>
#include <cassert>
#include <map>

#include "daemon/pipeline/rules_adapter.h"
#include "plugins/codec/json_text.h"
#include "rules/ruleset_api.h"

namespace vigie::daemon {
namespace {

uint64_t Load(const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); }

// Per-rule counters summed over shards (scrape thread).
struct RuleSums {
  uint64_t evaluations = 0, activations = 0, deactivations = 0;
  uint64_t errors[rules::RuleStats::kErrorCount_] = {};
  int64_t groups = 0, active_groups = 0, state_bytes = 0;
  uint64_t error_total() const {
    uint64_t t = 0;
    for (uint64_t e : errors) t += e;
    return t;
  }
};

std::map<std::string, RuleSums, std::less<>> SumRules(
    const std::vector<std::unique_ptr<ShardWorker>>& shards) {
  std::map<std::string, RuleSums, std::less<>> sums;
  for (const auto& s : shards) {
    s->VisitRules([&](const std::string& name, const rules::RuleStats& st) {
      RuleSums& r = sums[name];
      r.evaluations += Load(st.evaluations);
      r.activations += Load(st.activations);
      r.deactivations += Load(st.deactivations);
      for (int e = 0; e < rules::RuleStats::kErrorCount_; ++e) r.errors[e] += Load(st.errors[e]);
      r.groups += st.groups.load(std::memory_order_relaxed);
      r.active_groups += st.active_groups.load(std::memory_order_relaxed);
      r.state_bytes += st.state_bytes.load(std::memory_order_relaxed);
    });
  }
  return sums;
}

}  // namespace

Pipeline::Pipeline(const PipelineOptions& opts, PipelineDeps deps,
                   std::shared_ptr<const rules::RuleSet> rules)
    : opts_(opts), deps_(std::move(deps)), rules_(rules) {
  assert(deps_.clock != nullptr);
  const int n = std::clamp(opts_.shards, 1, kMaxShards);
  if (!deps_.engine_factory) {
    rules::EngineOptions eo;
    eo.tz = opts_.tz;
    eo.location = opts_.location;
    eo.idle_evict_ms = opts_.idle_evict_ms;
    deps_.engine_factory = MakeRulesEngineFactory(eo);
  }
  if (!deps_.routing) deps_.routing = MakeRuleSetRouting;

  const size_t batches =
      opts_.queue_batches ? opts_.queue_batches : std::max<size_t>(16, opts_.queue_capacity / 64);
  dispatcher_ = std::make_unique<OutputDispatcher>(
      DispatchOptions{opts_.output_queue_capacity, opts_.max_idle_ms}, n, deps_.commands,
      deps_.alerts, deps_.next_seq, deps_.clock);
  std::vector<ShardQueue*> qptrs;
  for (int i = 0; i < n; ++i) {
    queues_.push_back(
        std::make_unique<ShardQueue>(opts_.queue_capacity, batches, opts_.max_producers));
    qptrs.push_back(queues_.back().get());
    ShardOptions so;
    so.index = i;
    so.lateness_ms = opts_.lateness_ms;
    so.checkpoint_interval_ms = opts_.checkpoint_interval_ms;
    so.max_idle_ms = opts_.max_idle_ms;
    shards_.push_back(std::make_unique<ShardWorker>(
        so, deps_.engine_factory(i, n, rules), queues_.back().get(), dispatcher_->queue(i),
        dispatcher_->waker(), &pool_, deps_.clock, deps_.checkpoint));
  }
  RouterOptions ro;
  ro.max_batch_events = opts_.max_batch_events;
  ro.max_producers = opts_.max_producers;
  router_ = std::make_unique<Router>(ro, std::move(qptrs), &pool_, deps_.clock);
  router_->SetRouting(deps_.routing(std::move(rules)));
}

Pipeline::~Pipeline() { Stop(); }

void Pipeline::SetObserver(OutputDispatcher::Observer fn) {
  std::lock_guard<std::mutex> lk(control_mu_);
  dispatcher_->SetObserver(std::move(fn));
}

bool Pipeline::Restore(StateStore& store, std::string* error) {
  std::lock_guard<std::mutex> lk(control_mu_);
  if (started_ || stopped_) {
    if (error) *error = "Restore() must come before Start()";
    return false;
  }
  dispatcher_->Start();  // timers due at restore produce outputs
  std::string err;
  const bool ok = store.Scan(
      rules::Engine::StatePrefix(),
      [&](std::string_view key, std::string_view value) {
        // Every shard sees every key: a pack of groups written with another shard count holds
        // groups of several shards now.
        bool taken = false;
        for (auto& s : shards_) taken |= s->Restore(key, value);
        ++(taken ? restored_ : ignored_);
        return true;
      },
      &err);
  if (!ok) {
    if (error) *error = "reading state: " + err;
    return false;
  }
  for (auto& s : shards_) s->FinishRestore();
  restored_groups_ = 0;
  for (auto& s : shards_) restored_groups_ += s->group_count();
  // Packs written with another shard count: no shard's own checkpoints would replace them, so
  // every shard's state is written now, with their deletion, in one batch (atomic: a crash
  // leaves either the old packs or the new ones).
  std::vector<std::string> foreign;
  for (auto& s : shards_) s->TakeForeignKeys(&foreign);
  if (!foreign.empty()) {
    std::vector<rules::StateDelta> all(shards_.size() + 1);
    for (size_t i = 0; i < shards_.size(); ++i) shards_[i]->TakeAll(&all[i]);
    const size_t n = foreign.size();
    all.back().deletes = std::move(foreign);
    if (!store.WriteAll(all.data(), all.size(), &err)) {
      if (error) *error = "rewriting state for " + std::to_string(shards_.size()) + " shards: " + err;
      return false;
    }
    relaid_packs_ = n;
  }
  return true;
}

void Pipeline::Start() {
  std::lock_guard<std::mutex> lk(control_mu_);
  if (started_ || stopped_) return;
  started_ = true;
  dispatcher_->Start();
  for (auto& s : shards_) s->Start();
}

void Pipeline::Stop() {
  std::lock_guard<std::mutex> lk(control_mu_);
  if (stopped_) return;
  stopped_ = true;
  router_->Close();
  for (auto& s : shards_) s->Stop();  // each drains its queue, then checkpoints
  dispatcher_->Stop();                // sends what the shards left
}

bool Pipeline::Reload(std::shared_ptr<const rules::RuleSet> rules) {
  std::lock_guard<std::mutex> lk(control_mu_);
  rules_.store(rules, std::memory_order_release);
  router_->SetRouting(deps_.routing(rules));
  std::vector<uint64_t> tickets;
  for (auto& s : shards_) tickets.push_back(s->RequestSwap(rules));
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(opts_.reload_timeout_ms);
  bool ok = true;
  for (size_t i = 0; i < shards_.size(); ++i) {
    ok = shards_[i]->WaitSwapped(tickets[i], deadline) && ok;
  }
  return ok;
}

std::shared_ptr<const rules::RuleSet> Pipeline::rules() const {
  return rules_.load(std::memory_order_acquire);
}

void Pipeline::Wake() {
  for (auto& s : shards_) s->Wake();
}

std::string Pipeline::RulesJson() const {
  const std::shared_ptr<const rules::RuleSet> rs = rules();
  std::string out = "[";
  if (rs) {
    const auto sums = SumRules(shards_);
    const size_t n = rules::RuleCount(*rs);
    for (size_t i = 0; i < n; ++i) {
      const rules::RuleInfo& info = rules::GetRuleInfo(*rs, i);
      RuleSums r;
      if (auto it = sums.find(info.name); it != sums.end()) r = it->second;
      if (i) out += ",";
      out += "{\"name\":";
      codec::AppendJsonString(&out, info.name);
      out += ",\"file\":";
      codec::AppendJsonString(&out, info.file);
      out += ",\"line\":" + std::to_string(info.line);
      out += ",\"kind\":";
      codec::AppendJsonString(&out, info.kind);
      out += ",\"description\":";
      codec::AppendJsonString(&out, info.description);
      out += ",\"active_groups\":" + std::to_string(r.active_groups);
      out += ",\"groups\":" + std::to_string(r.groups);
      out += ",\"evaluations\":" + std::to_string(r.evaluations);
      out += ",\"activations\":" + std::to_string(r.activations);
      out += ",\"errors\":" + std::to_string(r.error_total());
      out += "}";
    }
  }
  out += "]";
  return out;
}

void Pipeline::Collect(MetricsWriter& w) const {
  const RouterStats& rs = router_->stats();
  uint64_t processed = 0, late = 0, future = 0, checkpoints = 0, swaps = 0;
  int64_t groups = 0;
  HistogramSnapshot latency;
  for (const auto& s : shards_) {
    const ShardStats& st = s->stats();
    processed += Load(st.processed);
    late += Load(st.late);
    future += Load(st.future);
    checkpoints += Load(st.checkpoints);
    swaps += Load(st.swaps);
    groups += st.groups.load(std::memory_order_relaxed);
    latency.Merge(st.latency.Snapshot());
    const std::string shard = std::to_string(s->index());
    w.Gauge("vigie_queue_depth", "Events queued for a shard (admitted, not yet processed).",
            {{"shard", shard}}, static_cast<double>(s->queue_depth()));
    w.Gauge("vigie_output_queue_depth", "Outputs queued from a shard to the dispatcher.",
            {{"shard", shard}}, static_cast<double>(s->output_depth()));
    w.Counter("vigie_shard_events_processed_total", "Events processed by a shard.",
              {{"shard", shard}}, static_cast<double>(Load(st.processed)));
  }
  w.Counter("vigie_events_processed_total",
            "Events processed (each once, however many shards needed it), plus events no rule can match.",
            {}, static_cast<double>(processed + Load(rs.unmatched)));
  w.Counter("vigie_events_unmatched_total",
            "Events no rule can match (counted as processed, dropped by the router).", {},
            static_cast<double>(Load(rs.unmatched)));
  w.Counter("vigie_events_routed_total", "Event copies enqueued to shards.", {},
            static_cast<double>(Load(rs.routed)));
  w.Counter("vigie_events_dropped_total", "Events not processed, by reason.",
            {{"reason", "shutdown"}}, static_cast<double>(Load(rs.dropped_closed)));
  w.Counter("vigie_events_late_total",
            "Events older than the engine time, processed at the engine time.", {},
            static_cast<double>(late));
  w.Counter("vigie_events_future_total",
            "Events stamped after the wall clock, processed at the wall clock.", {},
            static_cast<double>(future));
  w.Counter("vigie_backpressure_waits_total",
            "Source messages that waited for room in a full shard queue.", {},
            static_cast<double>(Load(rs.backpressure_waits)));
  w.Counter("vigie_backpressure_blocked_seconds_total",
            "Time sources spent waiting for room in full shard queues.", {},
            static_cast<double>(Load(rs.blocked_ns)) * 1e-9);
  w.Histogram("vigie_event_latency_seconds", "From ingest (decode) to processed by a shard.", {},
              latency);
  w.Gauge("vigie_state_groups", "Groups held in memory, all rules and shards.", {},
          static_cast<double>(groups));
  w.Counter("vigie_shard_checkpoints_total", "State deltas handed to the checkpointer.", {},
            static_cast<double>(checkpoints));
  w.Counter("vigie_rule_swaps_total", "Rule set swaps applied by shards.", {},
            static_cast<double>(swaps));
  w.Gauge("vigie_event_batches_allocated", "Event batch buffers made (recycled, never freed).",
          {}, static_cast<double>(pool_.allocated()));

  // Per rule, summed over shards, in rule order when the rule set is known.
  const auto sums = SumRules(shards_);
  std::vector<const std::pair<const std::string, RuleSums>*> order;
  const std::shared_ptr<const rules::RuleSet> rset = rules();
  if (rset) {
    const size_t n = rules::RuleCount(*rset);
    for (size_t i = 0; i < n; ++i) {
      auto it = sums.find(rules::GetRuleInfo(*rset, i).name);
      if (it != sums.end()) order.push_back(&*it);
    }
  } else {
    for (const auto& kv : sums) order.push_back(&kv);
  }
  for (const auto* kv : order) {
    const std::string& rule = kv->first;
    const RuleSums& r = kv->second;
    w.Counter("vigie_rule_evaluations_total", "Rule evaluations.", {{"rule", rule}},
              static_cast<double>(r.evaluations));
    w.Counter("vigie_rule_activations_total", "Groups that went inactive -> active.",
              {{"rule", rule}}, static_cast<double>(r.activations));
    w.Counter("vigie_rule_deactivations_total", "Groups that went active -> inactive.",
              {{"rule", rule}}, static_cast<double>(r.deactivations));
    for (int e = 0; e < rules::RuleStats::kErrorCount_; ++e) {
      w.Counter("vigie_rule_errors_total", "Evaluation problems (missing field, type...).",
                {{"rule", rule}, {"reason", rules::RuleStats::ErrorName(e)}},
                static_cast<double>(r.errors[e]));
    }
    w.Gauge("vigie_rule_active_groups", "Groups currently active.", {{"rule", rule}},
            static_cast<double>(r.active_groups));
    w.Gauge("vigie_rule_groups", "Groups held in memory.", {{"rule", rule}},
            static_cast<double>(r.groups));
    w.Gauge("vigie_rule_state_bytes", "Approximate memory held by the rule's groups.",
            {{"rule", rule}}, static_cast<double>(r.state_bytes));
  }

  // Dispatcher.
  const DispatchStats& ds = dispatcher_->stats();
  w.Counter("vigie_commands_sent_total", "Commands dispatched to the commands sink.", {},
            static_cast<double>(Load(ds.commands)));
  for (int sev = 0; sev < 4; ++sev) {
    for (int st = 0; st < 3; ++st) {
      const uint64_t v = Load(ds.alerts[sev][st]);
      if (v == 0 && (sev == 3 || st == 2)) continue;  // odd values only once seen
      w.Counter("vigie_alerts_sent_total", "Alerts dispatched to the alerts sink.",
                {{"severity", DispatchStats::SeverityName(sev)},
                 {"state", DispatchStats::StateName(st)}},
                static_cast<double>(v));
    }
  }
  w.Counter("vigie_outputs_unsent_total", "Outputs with no sink configured for their type.", {},
            static_cast<double>(Load(ds.unsent)));
  w.Counter("vigie_seq_failures_total",
            "Times no durable seq could be allocated (the output waited and was retried).", {},
            static_cast<double>(Load(ds.seq_failures)));
  w.Counter("vigie_outputs_dropped_total",
            "Outputs not sent: no seq could be allocated before shutdown ended.", {},
            static_cast<double>(Load(ds.dropped)));
  w.Histogram("vigie_output_latency_seconds",
              "From ingest of the triggering event to hand-off to the sink.", {},
              ds.latency.Snapshot());
  uint64_t waits = 0;
  for (int i = 0; i < shard_count(); ++i) waits += dispatcher_->queue(i)->waits();
  w.Counter("vigie_output_queue_waits_total",
            "Times a shard waited for room in its full output queue.", {},
            static_cast<double>(waits));
}

}  // namespace vigie::daemon
