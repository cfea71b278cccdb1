#pragma once
// Tiny binary writer/reader for durable state (little-endian, varints). The reader never reads
// past its input: every getter returns false on truncation.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "rules/value.h"

namespace vigie::rules {

class ByteWriter {
 public:
  explicit ByteWriter(std::string* out) : out_(out) {}
  void U8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void Var(uint64_t v) {
    while (v >= 0x80) {
      out_->push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_->push_back(static_cast<char>(v));
  }
  void I64(int64_t v) { Var((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }
  void F64(double d) {
    char b[8];
    std::memcpy(b, &d, 8);
    out_->append(b, 8);
  }
  void Fixed64(uint64_t v) {
    char b[8];
    std::memcpy(b, &v, 8);
    out_->append(b, 8);
  }
  void Str(std::string_view s) {
    Var(s.size());
    out_->append(s.data(), s.size());
  }
  void Val(const Value& v) {
    U8(static_cast<uint8_t>(v.type));
    switch (v.type) {
      case Type::kMissing: break;
      case Type::kNumber: F64(v.num); break;
      case Type::kString: Str(v.str); break;
      case Type::kBool: U8(v.b ? 1 : 0); break;
    }
  }

 private:
  std::string* out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}
  bool U8(uint8_t* v) {
    if (pos_ >= in_.size()) return false;
    *v = static_cast<uint8_t>(in_[pos_++]);
    return true;
  }
  bool Var(uint64_t* v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b;
      if (!U8(&b)) return false;
      r |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *v = r;
        return true;
      }
    }
    return false;
  }
  bool I64(int64_t* v) {
    uint64_t u;
    if (!Var(&u)) return false;
    *v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
    return true;
  }
  bool F64(double* d) {
    if (in_.size() - pos_ < 8) return false;
    std::memcpy(d, in_.data() + pos_, 8);
    pos_ += 8;
    return true;
  }
  bool Fixed64(uint64_t* v) {
    if (in_.size() - pos_ < 8) return false;
    std::memcpy(v, in_.data() + pos_, 8);
    pos_ += 8;
    return true;
  }
  bool Str(std::string_view* s) {
    uint64_t n;
    if (!Var(&n) || n > in_.size() - pos_) return false;
    *s = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool Str(std::string* s) {
    std::string_view v;
    if (!Str(&v)) return false;
    s->assign(v.data(), v.size());
    return true;
  }
  bool Val(OwnedValue* v) {
    uint8_t t;
    if (!U8(&t) || t > 3) return false;
    v->type = static_cast<Type>(t);
    switch (v->type) {
      case Type::kMissing: return true;
      case Type::kNumber: return F64(&v->num);
      case Type::kString: return Str(&v->str);
      case Type::kBool: {
        uint8_t b;
        if (!U8(&b)) return false;
        v->b = b != 0;
        return true;
      }
    }
    return false;
  }
  bool done() const { return pos_ == in_.size(); }
  size_t remaining() const { return in_.size() - pos_; }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace vigie::rules
