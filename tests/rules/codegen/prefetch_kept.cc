// Compiled with the project's flags and disassembled by prefetch_kept.sh: each function below
// must still hold a prefetch instruction. GCC 12 deleted GroupTable's prefetches from the
// engine's binary (their functions were found pure; rules/prefetch.h): the engine's group
// lookups had run without them, and nothing noticed. This guards the codegen itself.
#include <cstdint>
#include <string>

#include "rules/event.h"
#include "rules/group_table.h"

namespace {
struct Element {
  std::string key;
};
}  // namespace

extern "C" {
__attribute__((noinline, used)) void vigie_codegen_prefetch_slot(
    const vigie::rules::GroupTable<Element>& t, uint64_t hash) {
  t.PrefetchSlot(hash);
}
__attribute__((noinline, used)) void vigie_codegen_prefetch_element(
    const vigie::rules::GroupTable<Element>& t, uint64_t hash) {
  t.PrefetchElement(hash);
}
__attribute__((noinline, used)) void vigie_codegen_prefetch_event(const vigie::rules::Event& ev) {
  vigie::rules::PrefetchEvent(ev);
  vigie::rules::PrefetchEventData(ev);
}
}

int main() {
  vigie::rules::GroupTable<Element> t;
  Element e{"d1"};
  t.Insert(1, &e);
  vigie::rules::Event ev;
  vigie_codegen_prefetch_slot(t, 1);
  vigie_codegen_prefetch_element(t, 1);
  vigie_codegen_prefetch_event(ev);
  return 0;
}
