#pragma once
// Loading rules: YAML text -> validated, compiled RuleSet (RULES.md). Pure: the caller reads the
// files (daemon/rules_files.h lists a directory in name order and reads each file).
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace vigie::rules {

class RuleSet;

struct LoadError {
  std::string file;
  int line = 0;  // 1-based; 0 when the problem has no place (e.g. an unreadable file)
  int col = 0;
  std::string message;
  std::string ToString() const;  // "FILE:LINE:COLUMN: message"
};

struct RuleSource {
  std::string file;  // as it should appear in messages
  std::string text;
};

// Compiles every rule of every source (in order: rule order is file order, then position in the
// file). Returns null if anything is wrong, with one LoadError per problem (all of them, not just
// the first); a RuleSet otherwise. Never throws.
std::shared_ptr<const RuleSet> CompileRules(const std::vector<RuleSource>& sources,
                                            std::vector<LoadError>* errors);

}  // namespace vigie::rules
