#include "daemon/util/rules_files.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <sys/stat.h>

namespace vigie::daemon {
namespace {

bool ReadWholeFile(const std::string& path, std::string* text, std::string* error) {
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) {
    *error = std::string("cannot read: ") + strerror(errno);
    return false;
  }
  text->clear();
  char buf[65536];
  for (;;) {
    size_t n = fread(buf, 1, sizeof buf, f);
    text->append(buf, n);
    if (n < sizeof buf) break;
  }
  bool failed = ferror(f) != 0;
  int err = errno;
  fclose(f);
  if (failed) {
    *error = std::string("cannot read: ") + strerror(err);
    return false;
  }
  return true;
}

bool HasRulesExtension(const std::string& name) {
  auto ends = [&](const char* suf) {
    size_t n = strlen(suf);
    return name.size() > n && name.compare(name.size() - n, n, suf) == 0;
  };
  return ends(".yaml") || ends(".yml");
}

void AddError(std::vector<rules::LoadError>* errors, const std::string& file, std::string message) {
  if (errors == nullptr) return;
  rules::LoadError e;
  e.file = file;
  e.message = std::move(message);
  errors->push_back(std::move(e));
}

}  // namespace

bool ReadRuleSources(const std::vector<std::string>& paths, std::vector<rules::RuleSource>* out,
                     std::vector<rules::LoadError>* errors) {
  bool ok = true;
  for (const std::string& path : paths) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
      AddError(errors, path, std::string("cannot read: ") + strerror(errno));
      ok = false;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      rules::RuleSource src;
      src.file = path;
      std::string err;
      if (!ReadWholeFile(path, &src.text, &err)) {
        AddError(errors, path, err);
        ok = false;
        continue;
      }
      out->push_back(std::move(src));
      continue;
    }
    DIR* dir = opendir(path.c_str());
    if (dir == nullptr) {
      AddError(errors, path, std::string("cannot read: ") + strerror(errno));
      ok = false;
      continue;
    }
    std::vector<std::string> names;
    while (struct dirent* ent = readdir(dir)) {
      std::string name = ent->d_name;
      if (name.empty() || name[0] == '.' || !HasRulesExtension(name)) continue;
      names.push_back(std::move(name));
    }
    closedir(dir);
    std::sort(names.begin(), names.end());
    std::string base = path;
    if (!base.empty() && base.back() != '/') base += '/';
    for (const std::string& name : names) {
      std::string full = base + name;
      struct stat est;
      if (stat(full.c_str(), &est) != 0) {
        AddError(errors, full, std::string("cannot read: ") + strerror(errno));
        ok = false;
        continue;
      }
      if (!S_ISREG(est.st_mode)) continue;  // a directory named x.yaml, a fifo...
      rules::RuleSource src;
      src.file = full;
      std::string err;
      if (!ReadWholeFile(full, &src.text, &err)) {
        AddError(errors, full, err);
        ok = false;
        continue;
      }
      out->push_back(std::move(src));
    }
  }
  return ok;
}

}  // namespace vigie::daemon
