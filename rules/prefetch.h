#pragma once
// Prefetch(p): a cache hint for the line holding p, which the compiler cannot drop.
//
// GCC treats __builtin_prefetch as free of side effects. A small function that holds nothing
// else (GroupTable::PrefetchSlot: `if (!slots_.empty()) __builtin_prefetch(&slots_[...])`) is
// then found pure by its interprocedural passes, and its calls, whose result nobody uses, are
// deleted, prefetch and all (GCC 12 at -O1 and above; seen in the disassembly: the engine's
// group prefetches had never been in the binary). The empty volatile asm gives the function a
// side effect; it emits no instruction. tests/rules/codegen/ checks that a binary keeps them.
namespace vigie::rules {

inline void Prefetch(const void* p) {
  __builtin_prefetch(p);
  asm volatile("" : : "r"(p));
}

}  // namespace vigie::rules
