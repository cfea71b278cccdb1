#pragma once
// SlotList<T>: a list for recycled objects (an event's fields, an output's parameters and
// labels). A std::vector<T> holds the live elements [0, size()) and also keeps the elements
// removed by clear(), pop_back(), erase() or a shrinking resize() as spent slots, so that
// refilling reuses their strings' buffers (a string longer than the 15 bytes std::string holds
// inline would otherwise be reallocated for every event or output). A slot handed out again by
// emplace_back() / resize() is emptied by SlotReset<T> (which keeps its buffers). Copying copies
// the live elements only (assignment reuses the target's slots); moving moves everything.
// Iterators are pointers. Not thread-safe.
#include <algorithm>
#include <cassert>
#include <cstddef>
#include <initializer_list>
#include <utility>
#include <vector>

namespace vigie::rules {

// Empties a spent slot for reuse, keeping its buffers: specialized next to each element type.
template <class T>
struct SlotReset;

template <class T>
class SlotList {
 public:
  using value_type = T;
  using size_type = size_t;
  using reference = T&;
  using const_reference = const T&;
  using iterator = T*;
  using const_iterator = const T*;

  SlotList() = default;
  SlotList(std::initializer_list<T> init) : slots_(init), n_(slots_.size()) {}
  template <class It>
  SlotList(It first, It last) : slots_(first, last), n_(slots_.size()) {}
  SlotList(const SlotList& o) : slots_(o.begin(), o.end()), n_(o.n_) {}
  SlotList(SlotList&& o) noexcept : slots_(std::move(o.slots_)), n_(std::exchange(o.n_, 0)) {
    o.slots_.clear();
  }
  SlotList& operator=(const SlotList& o) {
    if (this != &o) assign(o.begin(), o.end());
    return *this;
  }
  SlotList& operator=(SlotList&& o) noexcept {
    if (this != &o) {
      slots_ = std::move(o.slots_);
      o.slots_.clear();
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  SlotList& operator=(std::initializer_list<T> init) {
    assign(init.begin(), init.end());
    return *this;
  }
  // Copies [first, last) over the slots (copy-assignment into spent ones reuses their buffers).
  template <class It>
  void assign(It first, It last) {
    size_t i = 0;
    for (; first != last; ++first, ++i) {
      if (i < slots_.size()) {
        slots_[i] = *first;
      } else {
        slots_.push_back(*first);
      }
    }
    n_ = i;
  }

  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  size_t capacity() const { return slots_.capacity(); }
  // Grows geometrically (decoders reserve the exact count of each event they fill; a recycled
  // event then reallocates O(log n) times, not once per larger event).
  void reserve(size_t n) {
    if (n > slots_.capacity()) slots_.reserve(std::max(n, 2 * slots_.capacity()));
  }

  T* data() { return slots_.data(); }
  const T* data() const { return slots_.data(); }
  iterator begin() { return slots_.data(); }
  iterator end() { return slots_.data() + n_; }
  const_iterator begin() const { return slots_.data(); }
  const_iterator end() const { return slots_.data() + n_; }
  const_iterator cbegin() const { return begin(); }
  const_iterator cend() const { return end(); }
  T& operator[](size_t i) { return slots_[i]; }
  const T& operator[](size_t i) const { return slots_[i]; }
  T& front() { return slots_[0]; }
  const T& front() const { return slots_[0]; }
  T& back() { return slots_[n_ - 1]; }
  const T& back() const { return slots_[n_ - 1]; }

  // Appends an element: a reset spent slot when there is one (no allocation), else a new one.
  template <class... Args>
  T& emplace_back(Args&&... args) {
    if constexpr (sizeof...(Args) == 0) {
      return Next();
    } else {
      return Next() = T{std::forward<Args>(args)...};
    }
  }
  void push_back(const T& v) { Next() = v; }
  void push_back(T&& v) { Next() = std::move(v); }
  void pop_back() {
    assert(n_ > 0);
    --n_;
  }
  // Removes one element, keeping the order of the others (its slot becomes spent).
  iterator erase(const_iterator pos) {
    T* p = begin() + (pos - cbegin());
    std::rotate(p, p + 1, end());
    --n_;
    return p;
  }
  void clear() { n_ = 0; }
  // Grows with reset elements, shrinks keeping the removed ones spent.
  void resize(size_t n) {
    while (n_ < n) Next();
    n_ = n;
  }

 private:
  T& Next() {
    if (n_ < slots_.size()) {
      T& v = slots_[n_++];
      SlotReset<T>{}(v);
      return v;
    }
    slots_.emplace_back();
    ++n_;
    return slots_.back();
  }

  std::vector<T> slots_;  // [0, n_) live, the rest spent
  size_t n_ = 0;
};

}  // namespace vigie::rules
