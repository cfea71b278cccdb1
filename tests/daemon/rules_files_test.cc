#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "daemon/util/rules_files.h"
#include "tests/daemon/test_util.h"

using namespace vigie::daemon;
using vigie::daemon::testing::TempDir;

namespace {
void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}
}  // namespace

TEST_CASE("rules_files: a directory gives its yaml files in name order, not recursive") {
  TempDir dir;
  WriteFile(dir / "b.yaml", "b");
  WriteFile(dir / "a.yml", "a");
  WriteFile(dir / "c.txt", "c");
  WriteFile(dir / ".hidden.yaml", "h");
  WriteFile(dir / "B.yaml", "B");
  std::filesystem::create_directory(dir / "sub.yaml");
  WriteFile(dir / "sub.yaml/x.yaml", "x");

  std::vector<vigie::rules::RuleSource> out;
  std::vector<vigie::rules::LoadError> errors;
  REQUIRE(ReadRuleSources({dir.path()}, &out, &errors));
  CHECK(errors.empty());
  REQUIRE(out.size() == 3);
  CHECK(out[0].file == dir / "B.yaml");
  CHECK(out[1].file == dir / "a.yml");
  CHECK(out[1].text == "a");
  CHECK(out[2].file == dir / "b.yaml");
}

TEST_CASE("rules_files: files as given, missing paths are errors with line 0") {
  TempDir dir;
  WriteFile(dir / "one.rules", "one: 1\n");
  std::vector<vigie::rules::RuleSource> out;
  std::vector<vigie::rules::LoadError> errors;
  CHECK_FALSE(ReadRuleSources({dir / "one.rules", dir / "missing.yaml", dir.path()}, &out, &errors));
  REQUIRE(out.size() == 1);  // the directory has no *.yaml
  CHECK(out[0].file == dir / "one.rules");
  CHECK(out[0].text == "one: 1\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].file == dir / "missing.yaml");
  CHECK(errors[0].line == 0);
  CHECK(errors[0].message == "cannot read: No such file or directory");
}

TEST_CASE("rules_files: an empty directory is zero files, not an error") {
  TempDir dir;
  std::vector<vigie::rules::RuleSource> out;
  std::vector<vigie::rules::LoadError> errors;
  CHECK(ReadRuleSources({dir.path() + "/"}, &out, &errors));
  CHECK(out.empty());
  CHECK(errors.empty());
}
