#pragma once
// Reading rules files for the loader (rules/loader.h), as `vigie run`, `vigie check` and
// `vigie replay` do. Plain functions, no state; safe from any thread.
#include <string>
#include <vector>

#include "rules/loader.h"

namespace vigie::daemon {

// Each path is a file or a directory. A file is read as given (whatever its extension); a
// directory contributes its regular `*.yaml` / `*.yml` files (not recursive, hidden files
// skipped) in byte order of their names. RuleSource::file is the path as given, joined with the
// entry name for directory entries ("config/rules/lights.yaml").
// An empty directory is fine (zero files). An unreadable or nonexistent path (or directory
// entry) appends a LoadError with line 0, e.g. {file: "x.yaml", message: "cannot read: No such
// file or directory"}; the other paths are still read and appended.
// Returns true if there was no error. The number of files read is out->size().
bool ReadRuleSources(const std::vector<std::string>& paths, std::vector<rules::RuleSource>* out,
                     std::vector<rules::LoadError>* errors);

}  // namespace vigie::daemon
