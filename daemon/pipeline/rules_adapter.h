#pragma once
// The production ShardEngine and Routing: thin wrappers over rules::Engine and
// rules::RouteMask. Kept in their own translation unit so the pipeline's threading tests (which
// use fakes) link without the rules engine.
#include <memory>

#include "daemon/pipeline/shard_engine.h"
#include "rules/engine.h"

namespace vigie::daemon {

// Options shared by every shard's engine (shard_index/shard_count are filled per shard).
ShardEngineFactory MakeRulesEngineFactory(const rules::EngineOptions& base);

// Routing over a RuleSet (kept alive by the returned object).
std::shared_ptr<const Routing> MakeRuleSetRouting(std::shared_ptr<const rules::RuleSet> rules);

}  // namespace vigie::daemon
