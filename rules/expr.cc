// The expression language (RULES.md, "Expressions"): a lexer, a recursive-descent parser that
// builds the node tree with every name resolved, and the evaluator (a switch over node kinds).
//
// Language decisions beyond the spec (documented in docs/rules.md):
// - Numbers: `3`, `2.5`, `.5`, `1e3`, `1.5E-3`; `5.` is an error. `-` is the unary operator (a
//   negated literal is folded into a constant).
// - Strings: double quotes only, on one line; escapes \" \\ \/ \n \t \r \uXXXX (UTF-16 pairs
//   combine).
// - Comparisons do not chain: `a < b < c`, `a == b == c` and `x in [..] in [..]` are compile
//   errors (write `a < b and b < c`).
// - `x not in [a, b]` is accepted as `not (x in [a, b])`. An empty list is a compile error.
// - `count(x)` counts the window's events where x has a value (compiled as sum of 0/1).
// - Evaluation never fails: a missing operand or mismatched types give "no value" for arithmetic
//   and functions, and false for comparisons, `in`, starts_with/ends_with/contains, `and`/`or`.
//   `not` of something that is not a boolean has no value (so `not flag` with flag missing is
//   false as a condition, like `flag` itself). Each case sets an EvalError bit.
// - exists(f) takes a name (identifier or field("...")), resolved like any reference, and is true
//   if it has a value; it never sets kErrMissingField.
// - Columns in Diag count UTF-8 code points.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <charconv>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rules/expr.h"
#include "rules/prefetch.h"

namespace vigie::rules {

enum class Op : uint8_t {
  kConst,
  kEventField,  // text = field name
  kLetRef,      // index
  kGroupRef,    // index
  kAggRef,      // index; text = slot canonical
  kNeg,
  kMul, kDiv, kMod, kAdd, kSub,
  kLt, kLe, kGt, kGe, kEq, kNe,
  kIn,          // kids[0] in kids[1..]
  kNot, kAnd, kOr,
  kAbs, kRound, kFloor, kCeil,
  kExists,      // kids[0] is a reference node
  kStartsWith, kEndsWith, kContains, kLower, kUpper,
  kHour, kMinute, kWeekday, kSunAltitude,
  kHasValue,    // internal: 1 if kids[0] has a value, else 0 (count(x))
};

// The evaluation form of a compiled expression (made once by CompileExpr): its nodes in one
// block, the kids of each node consecutive, so that evaluating a rule's `where` touches a few
// adjacent cache lines instead of one heap block per node and per kid list. With 10 000 rules
// the expressions an event reaches are not in cache, and the tree's pointer chase cost ≈ 250 ns
// per `where` (vigie-engine-bench --only where_index).
class ExprCode {
 public:
  Op op = Op::kConst;
  uint32_t nkids = 0;
  uint32_t kid = 0;    // the kids are this[kid], this[kid + 1], ... (kid > 0: after this node)
  uint32_t index = 0;  // kLetRef, kGroupRef, kAggRef
  Value constant;      // kConst: the value; references: constant.str is the name (a view)
  const ExprCode& Kid(size_t i) const { return this[kid + i]; }
};

class Expr {
 public:
  Op op = Op::kConst;
  bool reads_event = false;
  bool reads_clock = false;
  uint16_t depth = 1;
  uint32_t index = 0;
  std::string text;  // field / reference name, string constant storage, aggregate canonical
  Value constant;    // kConst; a string constant views `text`
  std::vector<ExprPtr> kids;
  std::vector<ExprCode> code;  // roots only (CompileExpr, aggregate arguments): code[0] is this
};

void ExprDeleter::operator()(const Expr* e) const { delete e; }

namespace {
void BuildCode(Expr* root);  // the evaluation form of a root, below CompileExpr
}  // namespace

const char* AggFuncName(AggFunc f) {
  switch (f) {
    case AggFunc::kCount: return "count";
    case AggFunc::kSum: return "sum";
    case AggFunc::kAvg: return "avg";
    case AggFunc::kMin: return "min";
    case AggFunc::kMax: return "max";
    case AggFunc::kFirst: return "first";
    case AggFunc::kLast: return "last";
    case AggFunc::kStddev: return "stddev";
    case AggFunc::kCountDistinct: return "count_distinct";
  }
  return "?";
}

const char* EvalErrorName(EvalError e) {
  switch (e) {
    case kErrMissingField: return "missing_field";
    case kErrTypeMismatch: return "type_mismatch";
    case kErrDivByZero: return "division_by_zero";
    case kErrNotBoolean: return "not_boolean";
  }
  return "unknown";
}

std::string* EvalScratch::Next() {
  if (used_ == bufs_.size()) bufs_.push_back(std::make_unique<std::string>());
  std::string* s = bufs_[used_++].get();
  s->clear();
  return s;
}

bool ReadsEventFields(const Expr& e) { return e.reads_event; }
bool ReadsClock(const Expr& e) { return e.reads_clock; }

namespace {

// True if evaluating `e` as an operand of `and`/`or` (or as a whole condition) can record no
// EvalError whatever the event: it yields a boolean without reading a value that may be missing.
bool NeverErrsAsCondition(const Expr& e) {
  switch (e.op) {
    case Op::kConst: return e.constant.is_bool();
    case Op::kExists: return true;
    case Op::kNot: return NeverErrsAsCondition(*e.kids[0]);
    case Op::kAnd:
    case Op::kOr: return NeverErrsAsCondition(*e.kids[0]) && NeverErrsAsCondition(*e.kids[1]);
    default: return false;
  }
}

bool IsUsableConstant(const Expr& e) { return e.op == Op::kConst && !e.constant.missing(); }

// `field == c`, `c == field`, `field in [c, ...]`: fills *out.
bool AsTest(const Expr& e, LeadingTest* out) {
  const Expr* field = nullptr;
  if (e.op == Op::kEq) {
    const Expr& a = *e.kids[0];
    const Expr& b = *e.kids[1];
    if (a.op == Op::kEventField && IsUsableConstant(b)) {
      field = &a;
    } else if (b.op == Op::kEventField && IsUsableConstant(a)) {
      field = &b;
    } else {
      return false;
    }
    out->constants.assign(1, field == &a ? b.constant : a.constant);
  } else if (e.op == Op::kIn) {
    if (e.kids[0]->op != Op::kEventField) return false;
    field = e.kids[0].get();
    out->constants.clear();
    for (size_t i = 1; i < e.kids.size(); ++i) {
      if (!IsUsableConstant(*e.kids[i])) return false;
      out->constants.push_back(e.kids[i]->constant);
    }
  } else {
    return false;
  }
  out->field = field->text;
  out->types = 0;
  for (const Value& c : out->constants)
    out->types |= static_cast<uint8_t>(1u << static_cast<int>(c.type));
  return true;
}

// Walks the conjuncts of `e` in evaluation order. Returns 1 when the test was found, -1 when a
// conjunct that may record an error was met first, 0 when every conjunct is error-free.
int WalkConjuncts(const Expr& e, LeadingTest* out) {
  if (e.op == Op::kAnd) {
    const int left = WalkConjuncts(*e.kids[0], out);
    return left != 0 ? left : WalkConjuncts(*e.kids[1], out);
  }
  if (AsTest(e, out)) return 1;
  return NeverErrsAsCondition(e) ? 0 : -1;
}

}  // namespace

bool FindLeadingTest(const Expr& where, LeadingTest* out) {
  return WalkConjuncts(where, out) == 1;
}

namespace {

ExprPtr Clone(const Expr& e) {
  auto* c = new Expr;
  c->op = e.op;
  c->reads_event = e.reads_event;
  c->reads_clock = e.reads_clock;
  c->depth = e.depth;
  c->index = e.index;
  c->text = e.text;
  c->constant = e.constant;
  if (e.constant.is_string() && e.constant.str.data() == e.text.data())
    c->constant = Value::String(c->text);  // a string constant views its own node's text
  c->kids.reserve(e.kids.size());
  for (const ExprPtr& k : e.kids) c->kids.push_back(Clone(*k));
  return ExprPtr(c);
}

// `e` with its leftmost leaf (the leading test) taken as true: null when nothing is left.
ExprPtr WithoutLeftmost(const Expr& e) {
  if (e.op != Op::kAnd) return nullptr;  // the leftmost leaf itself
  ExprPtr left = WithoutLeftmost(*e.kids[0]);
  if (!left) return Clone(*e.kids[1]);
  auto* a = new Expr;
  a->op = Op::kAnd;
  a->reads_event = e.reads_event;
  a->reads_clock = e.reads_clock;
  a->depth = e.depth;
  a->kids.push_back(std::move(left));
  a->kids.push_back(Clone(*e.kids[1]));
  return ExprPtr(a);
}

}  // namespace

bool ResidualAfterLeadingTest(const Expr& where, ExprPtr* rest) {
  LeadingTest t;
  if (!FindLeadingTest(where, &t)) return false;
  const Expr* leftmost = &where;
  while (leftmost->op == Op::kAnd) leftmost = leftmost->kids[0].get();
  LeadingTest first;
  if (!AsTest(*leftmost, &first)) return false;  // an error-free conjunct comes first
  ExprPtr r = WithoutLeftmost(where);
  if (r) BuildCode(const_cast<Expr*>(r.get()));  // ours until returned
  *rest = std::move(r);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Canonical text

namespace {

// Binding strength, loosest first.
enum Prec : int {
  kPrecOr = 1, kPrecAnd, kPrecNot, kPrecIn, kPrecEq, kPrecRel, kPrecAdd, kPrecMul, kPrecUnary,
  kPrecPrimary
};

bool IsIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }

bool IsKeyword(std::string_view s) {
  return s == "and" || s == "or" || s == "not" || s == "in" || s == "true" || s == "false";
}

// True if `name` lexes back as this one identifier (dotted segments, not a keyword).
bool IsPlainIdent(std::string_view name) {
  if (name.empty() || IsKeyword(name)) return false;
  size_t i = 0;
  while (true) {
    if (i >= name.size() || !IsIdentStart(name[i])) return false;
    while (i < name.size() && IsIdentChar(name[i])) ++i;
    if (i == name.size()) return true;
    if (name[i] != '.') return false;
    ++i;
  }
}

void AppendQuoted(std::string* out, std::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\t': out->append("\\t"); break;
      case '\r': out->append("\\r"); break;
      default:
        if (c < 0x20 || c == 0x7f) {
          static const char kHex[] = "0123456789abcdef";
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void AppendName(std::string* out, std::string_view name) {
  if (IsPlainIdent(name)) {
    out->append(name);
  } else {
    out->append("field(");
    AppendQuoted(out, name);
    out->push_back(')');
  }
}

const char* BinaryOpText(Op op) {
  switch (op) {
    case Op::kMul: return "*";
    case Op::kDiv: return "/";
    case Op::kMod: return "%";
    case Op::kAdd: return "+";
    case Op::kSub: return "-";
    case Op::kLt: return "<";
    case Op::kLe: return "<=";
    case Op::kGt: return ">";
    case Op::kGe: return ">=";
    case Op::kEq: return "==";
    case Op::kNe: return "!=";
    case Op::kAnd: return "and";
    case Op::kOr: return "or";
    default: return nullptr;
  }
}

int BinaryPrec(Op op) {
  switch (op) {
    case Op::kMul: case Op::kDiv: case Op::kMod: return kPrecMul;
    case Op::kAdd: case Op::kSub: return kPrecAdd;
    case Op::kLt: case Op::kLe: case Op::kGt: case Op::kGe: return kPrecRel;
    case Op::kEq: case Op::kNe: return kPrecEq;
    case Op::kAnd: return kPrecAnd;
    case Op::kOr: return kPrecOr;
    default: return kPrecPrimary;
  }
}

const char* FuncText(Op op) {
  switch (op) {
    case Op::kAbs: return "abs";
    case Op::kRound: return "round";
    case Op::kFloor: return "floor";
    case Op::kCeil: return "ceil";
    case Op::kExists: return "exists";
    case Op::kStartsWith: return "starts_with";
    case Op::kEndsWith: return "ends_with";
    case Op::kContains: return "contains";
    case Op::kLower: return "lower";
    case Op::kUpper: return "upper";
    case Op::kHour: return "hour";
    case Op::kMinute: return "minute";
    case Op::kWeekday: return "weekday";
    case Op::kSunAltitude: return "sun_altitude";
    case Op::kHasValue: return "has_value";
    default: return nullptr;
  }
}

int NodePrec(const Expr& e) {
  switch (e.op) {
    case Op::kConst: return e.constant.is_number() && std::signbit(e.constant.num) ? kPrecUnary
                                                                                    : kPrecPrimary;
    case Op::kNeg: return kPrecUnary;
    case Op::kNot: return kPrecNot;
    case Op::kIn: return kPrecIn;
    default: return BinaryPrec(e.op);
  }
}

void Print(const Expr& e, int min_prec, std::string* out) {
  const int prec = NodePrec(e);
  const bool paren = prec < min_prec;
  if (paren) out->push_back('(');
  switch (e.op) {
    case Op::kConst:
      switch (e.constant.type) {
        case Type::kMissing: out->append("field(\"\")"); break;  // only in failed compiles
        case Type::kNumber: AppendNumber(out, e.constant.num); break;
        case Type::kString: AppendQuoted(out, e.constant.str); break;
        case Type::kBool: out->append(e.constant.b ? "true" : "false"); break;
      }
      break;
    case Op::kEventField:
    case Op::kLetRef:
    case Op::kGroupRef:
      AppendName(out, e.text);
      break;
    case Op::kAggRef:
      out->append(e.text);
      break;
    case Op::kNeg:
      out->push_back('-');
      Print(*e.kids[0], kPrecUnary, out);
      break;
    case Op::kNot:
      out->append("not ");
      Print(*e.kids[0], kPrecNot, out);
      break;
    case Op::kIn:
      Print(*e.kids[0], kPrecIn + 1, out);
      out->append(" in [");
      for (size_t i = 1; i < e.kids.size(); ++i) {
        if (i > 1) out->append(", ");
        Print(*e.kids[i], kPrecOr, out);
      }
      out->push_back(']');
      break;
    default:
      if (const char* fn = FuncText(e.op)) {
        out->append(fn);
        out->push_back('(');
        for (size_t i = 0; i < e.kids.size(); ++i) {
          if (i > 0) out->append(", ");
          Print(*e.kids[i], kPrecOr, out);
        }
        out->push_back(')');
      } else {
        // Binary. Arithmetic and boolean operators associate to the left; comparisons do not
        // chain, so both their sides bind tighter.
        const bool left_assoc = prec == kPrecMul || prec == kPrecAdd || prec == kPrecAnd ||
                                prec == kPrecOr;
        Print(*e.kids[0], left_assoc ? prec : prec + 1, out);
        out->push_back(' ');
        out->append(BinaryOpText(e.op));
        out->push_back(' ');
        Print(*e.kids[1], prec + 1, out);
      }
  }
  if (paren) out->push_back(')');
}

}  // namespace

std::string ExprCanonical(const Expr& e) {
  std::string out;
  Print(e, kPrecOr, &out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Lexer

namespace {

enum class Tok : uint8_t {
  kEnd, kNumber, kString, kIdent,
  kAnd, kOr, kNot, kIn, kTrue, kFalse,
  kLParen, kRParen, kLBracket, kRBracket, kComma,
  kPlus, kMinus, kStar, kSlash, kPercent,
  kLt, kLe, kGt, kGe, kEq, kNe,
};

struct Token {
  Tok kind = Tok::kEnd;
  size_t pos = 0;  // byte offset in the text
  size_t len = 0;
  double num = 0;
  std::string str;  // decoded string literal, or identifier
};

// 1-based line and column (in code points) of byte offset `pos`.
Diag MakeDiag(std::string_view text, size_t pos, std::string message) {
  Diag d;
  d.line = 1;
  d.col = 1;
  for (size_t i = 0; i < pos && i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++d.line;
      d.col = 1;
    } else if ((c & 0xC0) != 0x80) {
      ++d.col;
    }
  }
  d.message = std::move(message);
  return d;
}

void AppendUtf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

class Lexer {
 public:
  Lexer(std::string_view text, std::vector<Diag>* diags) : text_(text), diags_(diags) {}

  // Tokenizes the whole text; the last token is kEnd. False (with a Diag) on a lexical error.
  bool Run(std::vector<Token>* out) {
    while (true) {
      SkipSpace();
      Token t;
      t.pos = i_;
      if (i_ >= text_.size()) {
        t.kind = Tok::kEnd;
        out->push_back(std::move(t));
        return true;
      }
      if (!Next(&t)) return false;
      t.len = i_ - t.pos;
      out->push_back(std::move(t));
    }
  }

 private:
  void SkipSpace() {
    while (i_ < text_.size() &&
           (text_[i_] == ' ' || text_[i_] == '\t' || text_[i_] == '\n' || text_[i_] == '\r'))
      ++i_;
  }

  bool Error(size_t pos, std::string msg) {
    diags_->push_back(MakeDiag(text_, pos, std::move(msg)));
    return false;
  }

  char Peek(size_t k = 0) const { return i_ + k < text_.size() ? text_[i_ + k] : '\0'; }

  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }

  bool Next(Token* t) {
    const char c = text_[i_];
    if (IsDigit(c) || (c == '.' && IsDigit(Peek(1)))) return Number(t);
    if (IsIdentStart(c)) return Ident(t);
    if (c == '"') return String(t);
    auto one = [&](Tok k) {
      t->kind = k;
      ++i_;
      return true;
    };
    auto two = [&](Tok k) {
      t->kind = k;
      i_ += 2;
      return true;
    };
    switch (c) {
      case '(': return one(Tok::kLParen);
      case ')': return one(Tok::kRParen);
      case '[': return one(Tok::kLBracket);
      case ']': return one(Tok::kRBracket);
      case ',': return one(Tok::kComma);
      case '+': return one(Tok::kPlus);
      case '-': return one(Tok::kMinus);
      case '*': return one(Tok::kStar);
      case '/': return one(Tok::kSlash);
      case '%': return one(Tok::kPercent);
      case '<': return Peek(1) == '=' ? two(Tok::kLe) : one(Tok::kLt);
      case '>': return Peek(1) == '=' ? two(Tok::kGe) : one(Tok::kGt);
      case '=':
        if (Peek(1) == '=') return two(Tok::kEq);
        return Error(i_, "unexpected '=': use '==' to compare");
      case '!':
        if (Peek(1) == '=') return two(Tok::kNe);
        return Error(i_, "unexpected '!': use 'not' to negate");
      case '&':
        return Error(i_, "unexpected '&': use 'and'");
      case '|':
        return Error(i_, "unexpected '|': use 'or'");
      case '\'':
        return Error(i_, "unexpected \"'\": strings are written in double quotes");
      default:
        break;
    }
    // Show the whole (possibly multi-byte) character.
    size_t n = 1;
    while (i_ + n < text_.size() && (static_cast<unsigned char>(text_[i_ + n]) & 0xC0) == 0x80) ++n;
    return Error(i_, "unexpected character '" + std::string(text_.substr(i_, n)) + "'");
  }

  bool Number(Token* t) {
    const size_t start = i_;
    while (IsDigit(Peek())) ++i_;
    if (Peek() == '.') {
      ++i_;
      if (!IsDigit(Peek())) return Error(start, "invalid number '" + Word(start) +
                                                    "': digits must follow '.'");
      while (IsDigit(Peek())) ++i_;
    }
    if (Peek() == 'e' || Peek() == 'E') {
      size_t k = 1;
      if (Peek(k) == '+' || Peek(k) == '-') ++k;
      if (!IsDigit(Peek(k))) return Error(start, "invalid number '" + Word(start) + "'");
      i_ += k;
      while (IsDigit(Peek())) ++i_;
    }
    if (IsIdentChar(Peek()) || Peek() == '.') {
      return Error(start, "invalid number '" + Word(start) + "'");
    }
    std::string_view s = text_.substr(start, i_ - start);
    // from_chars does not take a leading '.'.
    std::string buf;
    if (s[0] == '.') {
      buf = "0";
      buf.append(s);
      s = buf;
    }
    double v = 0;
    auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc() || !std::isfinite(v)) {
      return Error(start, "number '" + std::string(text_.substr(start, i_ - start)) +
                              "' is out of range");
    }
    t->kind = Tok::kNumber;
    t->num = v;
    return true;
  }

  // The run of identifier characters / dots from `start` (for messages).
  std::string Word(size_t start) const {
    size_t j = start;
    while (j < text_.size() && (IsIdentChar(text_[j]) || text_[j] == '.' ||
                                ((text_[j] == '+' || text_[j] == '-') && j > start &&
                                 (text_[j - 1] == 'e' || text_[j - 1] == 'E'))))
      ++j;
    return std::string(text_.substr(start, j - start));
  }

  bool Ident(Token* t) {
    const size_t start = i_;
    while (true) {
      while (IsIdentChar(Peek())) ++i_;
      if (Peek() == '.' && IsIdentStart(Peek(1))) {
        ++i_;
        continue;
      }
      break;
    }
    std::string_view s = text_.substr(start, i_ - start);
    t->kind = Tok::kIdent;
    if (s == "and") t->kind = Tok::kAnd;
    else if (s == "or") t->kind = Tok::kOr;
    else if (s == "not") t->kind = Tok::kNot;
    else if (s == "in") t->kind = Tok::kIn;
    else if (s == "true") t->kind = Tok::kTrue;
    else if (s == "false") t->kind = Tok::kFalse;
    t->str.assign(s.data(), s.size());
    return true;
  }

  static int HexVal(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  bool Hex4(size_t at, uint32_t* out) {
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) {
      if (at + k >= text_.size()) return false;
      int h = HexVal(text_[at + k]);
      if (h < 0) return false;
      v = v * 16 + static_cast<uint32_t>(h);
    }
    *out = v;
    return true;
  }

  bool String(Token* t) {
    const size_t start = i_;
    ++i_;  // opening quote
    std::string& s = t->str;
    while (true) {
      if (i_ >= text_.size() || text_[i_] == '\n' || text_[i_] == '\r')
        return Error(start, "unterminated string (a string ends with '\"' on the same line)");
      const char c = text_[i_];
      if (c == '"') {
        ++i_;
        break;
      }
      if (c != '\\') {
        s.push_back(c);
        ++i_;
        continue;
      }
      const size_t esc = i_;
      const char e = Peek(1);
      i_ += 2;
      switch (e) {
        case '"': s.push_back('"'); break;
        case '\\': s.push_back('\\'); break;
        case '/': s.push_back('/'); break;
        case 'n': s.push_back('\n'); break;
        case 't': s.push_back('\t'); break;
        case 'r': s.push_back('\r'); break;
        case 'u': {
          uint32_t cp = 0;
          if (!Hex4(i_, &cp)) return Error(esc, "invalid escape: \\u needs 4 hex digits");
          i_ += 4;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo = 0;
            if (Peek() != '\\' || Peek(1) != 'u' || !Hex4(i_ + 2, &lo) || lo < 0xDC00 ||
                lo > 0xDFFF)
              return Error(esc, "invalid escape: unpaired UTF-16 surrogate");
            i_ += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return Error(esc, "invalid escape: unpaired UTF-16 surrogate");
          }
          AppendUtf8(&s, cp);
          break;
        }
        case '\0':
          if (esc + 1 >= text_.size()) return Error(start, "unterminated string");
          [[fallthrough]];
        default:
          return Error(esc, "invalid escape '\\" + std::string(1, e) +
                                "' in string (use \\\" \\\\ \\n \\t \\r \\uXXXX)");
      }
    }
    t->kind = Tok::kString;
    return true;
  }

  std::string_view text_;
  std::vector<Diag>* diags_;
  size_t i_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Parser

constexpr int kMaxDepth = 200;  // nesting of the tree; bounds recursion when parsing/evaluating

struct Scope {
  const std::vector<std::string>* lets = nullptr;
  const std::vector<std::string>* groups = nullptr;
  bool event_fields = true;
  bool aggregates_allowed = false;
  const char* in_aggregate = nullptr;  // name of the enclosing aggregate, if any
};

struct ScalarFn {
  std::string_view name;
  Op op;
  int arity;
};
constexpr ScalarFn kScalarFns[] = {
    {"abs", Op::kAbs, 1},          {"round", Op::kRound, 1},
    {"floor", Op::kFloor, 1},      {"ceil", Op::kCeil, 1},
    {"exists", Op::kExists, 1},    {"starts_with", Op::kStartsWith, 2},
    {"ends_with", Op::kEndsWith, 2}, {"contains", Op::kContains, 2},
    {"lower", Op::kLower, 1},      {"upper", Op::kUpper, 1},
    {"hour", Op::kHour, 0},        {"minute", Op::kMinute, 0},
    {"weekday", Op::kWeekday, 0},  {"sun_altitude", Op::kSunAltitude, 0},
};

struct AggFn {
  std::string_view name;
  AggFunc func;
};
constexpr AggFn kAggFns[] = {
    {"count", AggFunc::kCount}, {"sum", AggFunc::kSum},       {"avg", AggFunc::kAvg},
    {"min", AggFunc::kMin},     {"max", AggFunc::kMax},       {"first", AggFunc::kFirst},
    {"last", AggFunc::kLast},   {"stddev", AggFunc::kStddev},
    {"count_distinct", AggFunc::kCountDistinct},
};

std::string ArityText(int n) {
  if (n == 0) return "takes no arguments";
  if (n == 1) return "takes 1 argument";
  return "takes " + std::to_string(n) + " arguments";
}

std::string JoinNames(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ", ";
    s += v[i];
  }
  return s;
}

std::string AsciiLower(std::string_view s) {
  std::string r(s);
  for (char& c : r)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return r;
}

class Parser {
 public:
  Parser(std::string_view text, std::vector<Token> toks, const CompileEnv& env,
         std::vector<Diag>* diags)
      : text_(text), toks_(std::move(toks)), env_(env), diags_(diags) {
    scope_.lets = &env.lets;
    scope_.groups = &env.group_fields;
    scope_.event_fields = env.event_fields;
    scope_.aggregates_allowed = env.aggregates_allowed && env.aggregates != nullptr;
    agg_base_ = env.aggregates ? env.aggregates->size() : 0;
  }

  ExprPtr Run() {
    if (Cur().kind == Tok::kEnd) {
      Error(Cur().pos, "empty expression");
      return nullptr;
    }
    ExprPtr e = ParseOr();
    if (!e) return nullptr;
    if (Cur().kind != Tok::kEnd) {
      const Token& t = Cur();
      std::string msg = "unexpected " + Describe(t);
      if (t.kind == Tok::kIdent || t.kind == Tok::kNumber || t.kind == Tok::kString ||
          t.kind == Tok::kLParen || t.kind == Tok::kTrue || t.kind == Tok::kFalse)
        msg += " (missing operator?)";
      Error(t.pos, msg);
      return nullptr;
    }
    if (semantic_errors_) return nullptr;
    if (env_.aggregates) {
      for (AggSlot& s : pending_) {
        if (s.arg) BuildCode(const_cast<Expr*>(s.arg.get()));  // made here, not shared yet
        env_.aggregates->push_back(std::move(s));
      }
    }
    return e;
  }

 private:
  const Token& Cur() const { return toks_[p_]; }
  const Token& Ahead(size_t k) const {
    return toks_[p_ + k < toks_.size() ? p_ + k : toks_.size() - 1];
  }
  void Advance() {
    if (p_ + 1 < toks_.size()) ++p_;
  }

  std::string Describe(const Token& t) const {
    if (t.kind == Tok::kEnd) return "end of expression";
    return "'" + std::string(text_.substr(t.pos, t.len)) + "'";
  }

  // A syntax error: parsing stops.
  ExprPtr Error(size_t pos, std::string msg) {
    diags_->push_back(MakeDiag(text_, pos, std::move(msg)));
    return nullptr;
  }
  // A name/function error: recorded, parsing goes on with a placeholder.
  // An empty message makes a placeholder for a problem already reported.
  ExprPtr SemanticError(size_t pos, std::string msg) {
    if (!msg.empty()) diags_->push_back(MakeDiag(text_, pos, std::move(msg)));
    semantic_errors_ = true;
    auto* e = new Expr;
    e->op = Op::kConst;
    return ExprPtr(e);
  }

  ExprPtr Node(Op op, size_t pos, std::vector<ExprPtr> kids) {
    auto* e = new Expr;
    e->op = op;
    int depth = 0;
    for (const ExprPtr& k : kids) {
      e->reads_event |= k->reads_event;
      e->reads_clock |= k->reads_clock;
      depth = std::max<int>(depth, k->depth);
    }
    e->depth = static_cast<uint16_t>(depth + 1);
    e->kids = std::move(kids);
    if (op == Op::kHour || op == Op::kMinute || op == Op::kWeekday || op == Op::kSunAltitude)
      e->reads_clock = true;
    if (e->depth > kMaxDepth) {
      delete e;
      too_deep_ = true;
      return Error(pos, "expression is too deeply nested (more than " +
                            std::to_string(kMaxDepth) + " levels)");
    }
    return ExprPtr(e);
  }
  ExprPtr Node(Op op, size_t pos, ExprPtr a) {
    std::vector<ExprPtr> k;
    k.push_back(std::move(a));
    return Node(op, pos, std::move(k));
  }
  ExprPtr Node(Op op, size_t pos, ExprPtr a, ExprPtr b) {
    std::vector<ExprPtr> k;
    k.push_back(std::move(a));
    k.push_back(std::move(b));
    return Node(op, pos, std::move(k));
  }

  static ExprPtr Const(const Value& v, std::string_view str = {}) {
    auto* e = new Expr;
    e->op = Op::kConst;
    if (v.is_string()) {
      e->text.assign(str.data(), str.size());
      e->constant = Value::String(e->text);  // the node never moves: it lives on the heap
    } else {
      e->constant = v;
    }
    return ExprPtr(e);
  }

  // Guards the parser's own recursion (parentheses, unary operators, `not`).
  struct DepthGuard {
    explicit DepthGuard(int* d) : d_(d) { ++*d_; }
    ~DepthGuard() { --*d_; }
    int* d_;
  };
  bool TooDeep() {
    if (nesting_ > kMaxDepth) {
      if (!too_deep_) {
        too_deep_ = true;
        Error(Cur().pos, "expression is too deeply nested (more than " +
                             std::to_string(kMaxDepth) + " levels)");
      }
      return true;
    }
    return false;
  }

  ExprPtr ParseOr() {
    DepthGuard g(&nesting_);
    if (TooDeep()) return nullptr;
    ExprPtr left = ParseAnd();
    while (left && Cur().kind == Tok::kOr) {
      size_t pos = Cur().pos;
      Advance();
      ExprPtr right = ParseAnd();
      if (!right) return nullptr;
      left = Node(Op::kOr, pos, std::move(left), std::move(right));
    }
    return left;
  }

  ExprPtr ParseAnd() {
    ExprPtr left = ParseNot();
    while (left && Cur().kind == Tok::kAnd) {
      size_t pos = Cur().pos;
      Advance();
      ExprPtr right = ParseNot();
      if (!right) return nullptr;
      left = Node(Op::kAnd, pos, std::move(left), std::move(right));
    }
    return left;
  }

  ExprPtr ParseNot() {
    if (Cur().kind == Tok::kNot) {
      DepthGuard g(&nesting_);
      if (TooDeep()) return nullptr;
      size_t pos = Cur().pos;
      Advance();
      ExprPtr x = ParseNot();
      if (!x) return nullptr;
      return Node(Op::kNot, pos, std::move(x));
    }
    return ParseIn();
  }

  bool AtIn() const {
    return Cur().kind == Tok::kIn || (Cur().kind == Tok::kNot && Ahead(1).kind == Tok::kIn);
  }

  ExprPtr ParseIn() {
    ExprPtr left = ParseEq();
    if (!left || !AtIn()) return left;
    const size_t pos = Cur().pos;
    const bool negated = Cur().kind == Tok::kNot;
    if (negated) Advance();
    Advance();  // in
    if (Cur().kind != Tok::kLBracket)
      return Error(Cur().pos, "expected '[' after 'in' (e.g. status in [\"a\", \"b\"])");
    const size_t open = Cur().pos;
    Advance();
    std::vector<ExprPtr> kids;
    kids.push_back(std::move(left));
    while (Cur().kind != Tok::kRBracket) {
      ExprPtr el = ParseOr();
      if (!el) return nullptr;
      kids.push_back(std::move(el));
      if (Cur().kind == Tok::kComma) {
        Advance();
        continue;
      }
      if (Cur().kind != Tok::kRBracket)
        return Error(Cur().pos, "expected ',' or ']' in list, found " + Describe(Cur()));
    }
    Advance();  // ]
    if (kids.size() == 1) return Error(open, "empty list after 'in'");
    ExprPtr e = Node(Op::kIn, pos, std::move(kids));
    if (!e) return nullptr;
    if (negated) e = Node(Op::kNot, pos, std::move(e));
    if (e && AtIn())
      return Error(Cur().pos, "'in' cannot be chained; combine tests with 'and' / 'or'");
    return e;
  }

  static bool IsEqTok(Tok k) { return k == Tok::kEq || k == Tok::kNe; }
  static bool IsRelTok(Tok k) {
    return k == Tok::kLt || k == Tok::kLe || k == Tok::kGt || k == Tok::kGe;
  }

  ExprPtr ParseEq() {
    ExprPtr left = ParseRel();
    if (!left || !IsEqTok(Cur().kind)) return left;
    const size_t pos = Cur().pos;
    const Op op = Cur().kind == Tok::kEq ? Op::kEq : Op::kNe;
    Advance();
    ExprPtr right = ParseRel();
    if (!right) return nullptr;
    if (IsEqTok(Cur().kind))
      return Error(Cur().pos, "comparisons cannot be chained: write 'a == b and b == c'");
    return Node(op, pos, std::move(left), std::move(right));
  }

  ExprPtr ParseRel() {
    ExprPtr left = ParseAdd();
    if (!left || !IsRelTok(Cur().kind)) return left;
    const size_t pos = Cur().pos;
    Op op = Op::kLt;
    switch (Cur().kind) {
      case Tok::kLe: op = Op::kLe; break;
      case Tok::kGt: op = Op::kGt; break;
      case Tok::kGe: op = Op::kGe; break;
      default: break;
    }
    Advance();
    ExprPtr right = ParseAdd();
    if (!right) return nullptr;
    if (IsRelTok(Cur().kind))
      return Error(Cur().pos, "comparisons cannot be chained: write 'a < b and b < c'");
    return Node(op, pos, std::move(left), std::move(right));
  }

  ExprPtr ParseAdd() {
    ExprPtr left = ParseMul();
    while (left && (Cur().kind == Tok::kPlus || Cur().kind == Tok::kMinus)) {
      const Op op = Cur().kind == Tok::kPlus ? Op::kAdd : Op::kSub;
      const size_t pos = Cur().pos;
      Advance();
      ExprPtr right = ParseMul();
      if (!right) return nullptr;
      left = Node(op, pos, std::move(left), std::move(right));
    }
    return left;
  }

  ExprPtr ParseMul() {
    ExprPtr left = ParseUnary();
    while (left && (Cur().kind == Tok::kStar || Cur().kind == Tok::kSlash ||
                    Cur().kind == Tok::kPercent)) {
      const Op op = Cur().kind == Tok::kStar ? Op::kMul
                    : Cur().kind == Tok::kSlash ? Op::kDiv
                                                : Op::kMod;
      const size_t pos = Cur().pos;
      Advance();
      ExprPtr right = ParseUnary();
      if (!right) return nullptr;
      left = Node(op, pos, std::move(left), std::move(right));
    }
    return left;
  }

  ExprPtr ParseUnary() {
    if (Cur().kind == Tok::kMinus) {
      DepthGuard g(&nesting_);
      if (TooDeep()) return nullptr;
      const size_t pos = Cur().pos;
      Advance();
      ExprPtr x = ParseUnary();
      if (!x) return nullptr;
      if (x->op == Op::kConst && x->constant.is_number())
        return Const(Value::Number(-x->constant.num));
      return Node(Op::kNeg, pos, std::move(x));
    }
    if (Cur().kind == Tok::kPlus) return Error(Cur().pos, "unexpected '+' (no unary plus)");
    if (Cur().kind == Tok::kNot)
      return Error(Cur().pos, "'not' must be parenthesized here, e.g. a == (not b)");
    return ParsePrimary();
  }

  ExprPtr ParsePrimary() {
    const Token& t = Cur();
    switch (t.kind) {
      case Tok::kNumber: {
        ExprPtr e = Const(Value::Number(t.num));
        Advance();
        return e;
      }
      case Tok::kString: {
        ExprPtr e = Const(Value::String({}), t.str);
        Advance();
        return e;
      }
      case Tok::kTrue:
      case Tok::kFalse: {
        ExprPtr e = Const(Value::Bool(t.kind == Tok::kTrue));
        Advance();
        return e;
      }
      case Tok::kLParen: {
        DepthGuard g(&nesting_);
        if (TooDeep()) return nullptr;
        const size_t open = t.pos;
        Advance();
        if (Cur().kind == Tok::kRParen) return Error(Cur().pos, "empty parentheses");
        ExprPtr e = ParseOr();
        if (!e) return nullptr;
        if (Cur().kind != Tok::kRParen) {
          if (Cur().kind == Tok::kEnd) return Error(open, "unclosed '('");
          return Error(Cur().pos, "expected ')', found " + Describe(Cur()));
        }
        Advance();
        return e;
      }
      case Tok::kIdent: {
        if (Ahead(1).kind == Tok::kLParen) return ParseCall();
        std::string name = t.str;
        const size_t pos = t.pos;
        Advance();
        return Resolve(name, pos);
      }
      case Tok::kEnd:
        return Error(t.pos, "unexpected end of expression (expected a value)");
      case Tok::kRParen:
      case Tok::kRBracket:
      case Tok::kComma:
        return Error(t.pos, "unexpected " + Describe(t) + " (expected a value)");
      default:
        if (t.kind == Tok::kIn || t.kind == Tok::kAnd || t.kind == Tok::kOr)
          return Error(t.pos, "unexpected " + Describe(t) +
                                  " (a keyword; write field(\"" + t.str + "\") for a field of "
                                  "that name)");
        return Error(t.pos, "unexpected " + Describe(t) + " (expected a value)");
    }
  }

  // A name at `pos`: let, then group field, then event field.
  ExprPtr Resolve(const std::string& name, size_t pos) {
    for (size_t i = 0; i < scope_.lets->size(); ++i) {
      if ((*scope_.lets)[i] == name) {
        auto* e = new Expr;
        e->op = Op::kLetRef;
        e->index = static_cast<uint32_t>(i);
        e->text = name;
        return ExprPtr(e);
      }
    }
    for (size_t i = 0; i < scope_.groups->size(); ++i) {
      if ((*scope_.groups)[i] == name) {
        auto* e = new Expr;
        e->op = Op::kGroupRef;
        e->index = static_cast<uint32_t>(i);
        e->text = name;
        return ExprPtr(e);
      }
    }
    if (scope_.event_fields) {
      auto* e = new Expr;
      e->op = Op::kEventField;
      e->index = kNoField;  // numbered by BindEventFields when its RuleSet is built
      e->text = name;
      e->reads_event = true;
      return ExprPtr(e);
    }
    std::string msg = "unknown name '" + name + "'";
    if (scope_.lets->empty() && scope_.groups->empty()) {
      msg += " (no event fields here: this expression may be evaluated without a triggering "
             "event; no let names or group_by fields are defined)";
    } else {
      msg += " (allowed here: ";
      if (!scope_.lets->empty()) msg += "let names " + JoinNames(*scope_.lets);
      if (!scope_.lets->empty() && !scope_.groups->empty()) msg += "; ";
      if (!scope_.groups->empty()) msg += "group_by fields " + JoinNames(*scope_.groups);
      msg += "; event fields are not available since this may be evaluated without a "
             "triggering event)";
    }
    return SemanticError(pos, msg);
  }

  // Parses "(args)" with the current token on '('. Null on a syntax error.
  bool ParseArgs(std::vector<ExprPtr>* args) {
    Advance();  // (
    if (Cur().kind == Tok::kRParen) {
      Advance();
      return true;
    }
    while (true) {
      ExprPtr a = ParseOr();
      if (!a) return false;
      args->push_back(std::move(a));
      if (Cur().kind == Tok::kComma) {
        Advance();
        continue;
      }
      if (Cur().kind == Tok::kRParen) {
        Advance();
        return true;
      }
      Error(Cur().pos, "expected ')' after arguments, found " + Describe(Cur()));
      return false;
    }
  }

  static bool IsRef(const Expr& e) {
    return e.op == Op::kEventField || e.op == Op::kLetRef || e.op == Op::kGroupRef;
  }

  ExprPtr ParseCall() {
    const std::string name = Cur().str;
    const size_t pos = Cur().pos;
    Advance();  // name; now on '('

    // field("name")
    if (name == "field") {
      const size_t arg_pos = Ahead(1).pos;
      std::vector<ExprPtr> args;
      if (!ParseArgs(&args)) return nullptr;
      if (args.size() != 1 || args[0]->op != Op::kConst || !args[0]->constant.is_string())
        return SemanticError(args.empty() ? pos : arg_pos,
                             "field() takes one string literal, e.g. field(\"odd-name\")");
      if (args[0]->text.empty()) return SemanticError(arg_pos, "field(\"\"): empty field name");
      return Resolve(args[0]->text, pos);
    }

    for (const AggFn& a : kAggFns) {
      if (a.name == name) return ParseAggregate(a, pos);
    }

    for (const ScalarFn& f : kScalarFns) {
      if (f.name != name) continue;
      const size_t arg_pos = Ahead(1).pos;
      std::vector<ExprPtr> args;
      if (!ParseArgs(&args)) return nullptr;
      if (static_cast<int>(args.size()) != f.arity)
        return SemanticError(pos, name + "() " + ArityText(f.arity) + ", got " +
                                      std::to_string(args.size()));
      if (f.op == Op::kExists && !IsRef(*args[0])) {
        if (args[0]->op == Op::kConst && args[0]->constant.missing())
          return SemanticError(arg_pos, "");  // already reported (unknown name)
        return SemanticError(arg_pos,
                             "exists() takes a field name, e.g. exists(speed) or "
                             "exists(field(\"odd-name\"))");
      }
      return Node(f.op, pos, std::move(args));
    }

    std::string msg = "unknown function '" + name + "'";
    const std::string lower = AsciiLower(name);
    if (lower != name) {
      for (const ScalarFn& f : kScalarFns)
        if (f.name == lower) msg += " (names are case-sensitive: did you mean '" + lower + "'?)";
      for (const AggFn& a : kAggFns)
        if (a.name == lower) msg += " (names are case-sensitive: did you mean '" + lower + "'?)";
    }
    // Parse the arguments anyway, to go on and report later problems.
    std::vector<ExprPtr> args;
    if (!ParseArgs(&args)) {
      diags_->insert(diags_->end() - 1, MakeDiag(text_, pos, msg));
      return nullptr;
    }
    return SemanticError(pos, msg);
  }

  ExprPtr ParseAggregate(const AggFn& a, size_t pos) {
    const std::string name(a.name);
    std::string problem;
    if (scope_.in_aggregate) {
      problem = "aggregate " + name + "() cannot be used inside " +
                std::string(scope_.in_aggregate) + "()";
    } else if (!scope_.aggregates_allowed) {
      problem = "aggregate " + name + "() is only allowed in windowed rules (in let and when)";
    }
    // The argument sees only the fields of the event entering the window.
    const Scope saved = scope_;
    static const std::vector<std::string> kNone;
    scope_.lets = &kNone;
    scope_.groups = &kNone;
    scope_.event_fields = true;
    scope_.in_aggregate = a.name.data();  // a.name views a NUL-terminated literal
    std::vector<ExprPtr> args;
    const bool ok = ParseArgs(&args);
    scope_ = saved;
    if (!ok) return nullptr;
    if (!problem.empty()) return SemanticError(pos, problem);

    AggFunc func = a.func;
    ExprPtr arg;
    std::string canonical = name + "(";
    if (a.func == AggFunc::kCount) {
      if (args.size() > 1)
        return SemanticError(pos, "count() takes no arguments (or one: count(x) counts the "
                                  "events where x has a value), got " +
                                      std::to_string(args.size()));
      if (args.size() == 1) {
        canonical += ExprCanonical(*args[0]);
        func = AggFunc::kSum;
        arg = Node(Op::kHasValue, pos, std::move(args[0]));
        if (!arg) return nullptr;
      }
    } else {
      if (args.size() != 1)
        return SemanticError(pos, name + "() " + ArityText(1) + ", got " +
                                      std::to_string(args.size()));
      canonical += ExprCanonical(*args[0]);
      arg = std::move(args[0]);
    }
    canonical += ")";
    if (semantic_errors_) return SemanticError(pos, "");  // placeholder; errors already listed

    size_t index = 0;
    bool found = false;
    if (env_.aggregates) {
      for (size_t i = 0; i < env_.aggregates->size() && !found; ++i) {
        if ((*env_.aggregates)[i].canonical == canonical) {
          index = i;
          found = true;
        }
      }
    }
    for (size_t i = 0; i < pending_.size() && !found; ++i) {
      if (pending_[i].canonical == canonical) {
        index = agg_base_ + i;
        found = true;
      }
    }
    if (!found) {
      index = agg_base_ + pending_.size();
      AggSlot slot;
      slot.func = func;
      slot.arg = std::move(arg);
      slot.canonical = canonical;
      pending_.push_back(std::move(slot));
    }
    auto* e = new Expr;
    e->op = Op::kAggRef;
    e->index = static_cast<uint32_t>(index);
    e->text = std::move(canonical);
    return ExprPtr(e);
  }

  std::string_view text_;
  std::vector<Token> toks_;
  const CompileEnv& env_;
  std::vector<Diag>* diags_;
  size_t p_ = 0;
  Scope scope_;
  int nesting_ = 0;
  bool too_deep_ = false;
  bool semantic_errors_ = false;
  size_t agg_base_ = 0;
  std::vector<AggSlot> pending_;  // new slots, appended to env.aggregates on success
};

}  // namespace

namespace {

size_t CountNodes(const Expr& e) {
  size_t n = 1;
  for (const ExprPtr& k : e.kids) n += CountNodes(*k);
  return n;
}

// Writes e at code[at], reserves its kids' places at *next, then writes each kid's subtree.
void Emit(const Expr& e, std::vector<ExprCode>* code, size_t at, size_t* next) {
  const size_t first = *next;
  *next += e.kids.size();
  ExprCode& c = (*code)[at];
  c.op = e.op;
  c.nkids = static_cast<uint32_t>(e.kids.size());
  c.kid = static_cast<uint32_t>(first - at);
  c.index = e.index;
  c.constant = e.op == Op::kConst ? e.constant : Value::String(e.text);
  for (size_t i = 0; i < e.kids.size(); ++i) Emit(*e.kids[i], code, first + i, next);
}

void BuildCode(Expr* root) {
  root->code.assign(CountNodes(*root), ExprCode{});
  size_t next = 1;
  Emit(*root, &root->code, 0, &next);
}

}  // namespace

void BindEventFields(const Expr& root, FieldNames* names) {
  // The code is the root's own and the RuleSet is still being built (RuleSet::Finish): no
  // reader sees it yet.
  for (ExprCode& c : const_cast<Expr&>(root).code)
    if (c.op == Op::kEventField) c.index = names->Intern(c.constant.str);
}

ExprPtr CompileExpr(std::string_view text, const CompileEnv& env, std::vector<Diag>* errors) {
  std::vector<Diag> local;
  std::vector<Diag>* diags = errors ? errors : &local;
  const size_t first = diags->size();
  std::vector<Token> toks;
  Lexer lexer(text, diags);
  if (!lexer.Run(&toks)) return nullptr;
  Parser parser(text, std::move(toks), env, diags);
  ExprPtr e = parser.Run();
  if (e) BuildCode(const_cast<Expr*>(e.get()));  // ours until returned
  if (!e && diags->size() == first) diags->push_back(MakeDiag(text, 0, "invalid expression"));
  return e;
}

// ---------------------------------------------------------------------------------------------
// Evaluation

namespace {

Value Lookup(const ExprCode& e, const EvalContext& ctx) {
  switch (e.op) {
    case Op::kEventField:
      if (ctx.fields) return ctx.fields->Get(e.index, e.constant.str);
      return ctx.event ? ctx.event->Get(e.constant.str) : Value::Missing();
    case Op::kLetRef: return ctx.lets ? ctx.lets[e.index] : Value::Missing();
    case Op::kGroupRef: return ctx.groups ? ctx.groups[e.index] : Value::Missing();
    case Op::kAggRef: return ctx.aggs ? ctx.aggs[e.index] : Value::Missing();
    default: return Value::Missing();
  }
}

// Both operands numbers? Sets kErrTypeMismatch for present non-numbers.
bool Numbers(const Value& a, const Value& b, EvalContext& ctx) {
  if (a.missing() || b.missing()) return false;
  if (!a.is_number() || !b.is_number()) {
    ctx.errors |= kErrTypeMismatch;
    return false;
  }
  return true;
}

LocalTime Local(const EvalContext& ctx) {
  if (ctx.tz) return ctx.tz->ToLocal(ctx.now_ms);
  return FixedOffsetZone(0).ToLocal(ctx.now_ms);
}

bool Truth(const Value& v, EvalContext& ctx) {
  if (v.is_bool()) return v.b;
  if (!v.missing()) ctx.errors |= kErrNotBoolean;
  return false;
}

Value CaseMap(const Value& v, bool upper, EvalContext& ctx) {
  if (v.missing()) return v;
  if (!v.is_string()) {
    ctx.errors |= kErrTypeMismatch;
    return Value::Missing();
  }
  const char lo = upper ? 'a' : 'A';
  const char hi = upper ? 'z' : 'Z';
  size_t i = 0;
  while (i < v.str.size() && !(v.str[i] >= lo && v.str[i] <= hi)) ++i;
  if (i == v.str.size()) return v;  // nothing to change: no copy
  if (!ctx.scratch) return Value::Missing();
  std::string* buf = ctx.scratch->Next();
  buf->assign(v.str.data(), v.str.size());
  for (char& c : *buf) {
    if (c >= lo && c <= hi) c = static_cast<char>(c + (upper ? 'A' - 'a' : 'a' - 'A'));
  }
  return Value::String(*buf);
}

Value EvalNode(const ExprCode& e, EvalContext& ctx) {
  switch (e.op) {
    case Op::kConst:
      return e.constant;
    case Op::kEventField:
    case Op::kLetRef:
    case Op::kGroupRef:
    case Op::kAggRef: {
      Value v = Lookup(e, ctx);
      if (v.missing()) ctx.errors |= kErrMissingField;
      return v;
    }
    case Op::kNeg: {
      Value a = EvalNode(e.Kid(0), ctx);
      if (a.is_number()) return Value::Number(-a.num);
      if (!a.missing()) ctx.errors |= kErrTypeMismatch;
      return Value::Missing();
    }
    case Op::kMul:
    case Op::kDiv:
    case Op::kMod:
    case Op::kAdd:
    case Op::kSub: {
      Value a = EvalNode(e.Kid(0), ctx);
      Value b = EvalNode(e.Kid(1), ctx);
      if (!Numbers(a, b, ctx)) return Value::Missing();
      switch (e.op) {
        case Op::kMul: return Value::Number(a.num * b.num);
        case Op::kAdd: return Value::Number(a.num + b.num);
        case Op::kSub: return Value::Number(a.num - b.num);
        default: break;
      }
      if (b.num == 0) {
        ctx.errors |= kErrDivByZero;
        return Value::Missing();
      }
      return Value::Number(e.op == Op::kDiv ? a.num / b.num : std::fmod(a.num, b.num));
    }
    case Op::kLt:
    case Op::kLe:
    case Op::kGt:
    case Op::kGe: {
      Value a = EvalNode(e.Kid(0), ctx);
      Value b = EvalNode(e.Kid(1), ctx);
      if (a.missing() || b.missing()) return Value::Bool(false);
      int cmp;  // <0, 0, >0; NaN compares false with everything
      if (a.is_number() && b.is_number()) {
        if (std::isnan(a.num) || std::isnan(b.num)) return Value::Bool(false);
        cmp = a.num < b.num ? -1 : a.num > b.num ? 1 : 0;
      } else if (a.is_string() && b.is_string()) {
        const int c = a.str.compare(b.str);
        cmp = c < 0 ? -1 : c > 0 ? 1 : 0;
      } else {
        ctx.errors |= kErrTypeMismatch;
        return Value::Bool(false);
      }
      switch (e.op) {
        case Op::kLt: return Value::Bool(cmp < 0);
        case Op::kLe: return Value::Bool(cmp <= 0);
        case Op::kGt: return Value::Bool(cmp > 0);
        default: return Value::Bool(cmp >= 0);
      }
    }
    case Op::kEq:
    case Op::kNe: {
      Value a = EvalNode(e.Kid(0), ctx);
      Value b = EvalNode(e.Kid(1), ctx);
      if (a.missing() || b.missing()) return Value::Bool(false);
      if (a.type != b.type) {
        ctx.errors |= kErrTypeMismatch;
        return Value::Bool(false);
      }
      const bool same = SameValue(a, b);
      return Value::Bool(e.op == Op::kEq ? same : !same);
    }
    case Op::kIn: {
      Value a = EvalNode(e.Kid(0), ctx);
      if (a.missing()) return Value::Bool(false);
      bool same_type = false;
      for (size_t i = 1; i < e.nkids; ++i) {
        Value b = EvalNode(e.Kid(i), ctx);
        if (b.type == a.type) {
          same_type = true;
          if (SameValue(a, b)) return Value::Bool(true);
        }
      }
      if (!same_type) ctx.errors |= kErrTypeMismatch;
      return Value::Bool(false);
    }
    case Op::kNot: {
      Value a = EvalNode(e.Kid(0), ctx);
      if (a.is_bool()) return Value::Bool(!a.b);
      if (!a.missing()) ctx.errors |= kErrNotBoolean;
      return Value::Missing();
    }
    case Op::kAnd:
      if (!Truth(EvalNode(e.Kid(0), ctx), ctx)) return Value::Bool(false);
      return Value::Bool(Truth(EvalNode(e.Kid(1), ctx), ctx));
    case Op::kOr:
      if (Truth(EvalNode(e.Kid(0), ctx), ctx)) return Value::Bool(true);
      return Value::Bool(Truth(EvalNode(e.Kid(1), ctx), ctx));
    case Op::kAbs:
    case Op::kRound:
    case Op::kFloor:
    case Op::kCeil: {
      Value a = EvalNode(e.Kid(0), ctx);
      if (!a.is_number()) {
        if (!a.missing()) ctx.errors |= kErrTypeMismatch;
        return Value::Missing();
      }
      switch (e.op) {
        case Op::kAbs: return Value::Number(std::fabs(a.num));
        case Op::kRound: return Value::Number(std::round(a.num));  // half away from zero
        case Op::kFloor: return Value::Number(std::floor(a.num));
        default: return Value::Number(std::ceil(a.num));
      }
    }
    case Op::kExists:
      return Value::Bool(!Lookup(e.Kid(0), ctx).missing());
    case Op::kStartsWith:
    case Op::kEndsWith:
    case Op::kContains: {
      Value s = EvalNode(e.Kid(0), ctx);
      Value p = EvalNode(e.Kid(1), ctx);
      if (s.missing() || p.missing()) return Value::Bool(false);
      if (!s.is_string() || !p.is_string()) {
        ctx.errors |= kErrTypeMismatch;
        return Value::Bool(false);
      }
      if (e.op == Op::kStartsWith) return Value::Bool(s.str.starts_with(p.str));
      if (e.op == Op::kEndsWith) return Value::Bool(s.str.ends_with(p.str));
      return Value::Bool(s.str.find(p.str) != std::string_view::npos);
    }
    case Op::kLower:
    case Op::kUpper:
      return CaseMap(EvalNode(e.Kid(0), ctx), e.op == Op::kUpper, ctx);
    case Op::kHour:
      return Value::Number(Local(ctx).hour);
    case Op::kMinute:
      return Value::Number(Local(ctx).minute);
    case Op::kWeekday:
      return Value::Number(Local(ctx).weekday);
    case Op::kSunAltitude:
      return Value::Number(SunAltitude(ctx.now_ms, ctx.location));
    case Op::kHasValue: {
      const uint32_t before = ctx.errors;
      Value a = EvalNode(e.Kid(0), ctx);
      // Testing presence is the point: a missing value is not an error here.
      ctx.errors = (ctx.errors & ~static_cast<uint32_t>(kErrMissingField)) |
                   (before & kErrMissingField);
      return Value::Number(a.missing() ? 0 : 1);
    }
  }
  return Value::Missing();
}

}  // namespace

const ExprCode* CodeOf(const Expr& e) { return e.code.data(); }

void PrefetchCode(const ExprCode* c) {
  const char* p = reinterpret_cast<const char*>(c);
  Prefetch(p);
  Prefetch(p + 64);
  Prefetch(p + 128);
}

namespace {
const ExprCode* LastNode(const ExprCode* c) {
  const ExprCode* last = c;
  for (uint32_t i = 0; i < c->nkids; ++i) last = std::max(last, LastNode(&c->Kid(i)));
  return last;
}
}  // namespace

size_t CodeBytes(const ExprCode* c) {
  if (c == nullptr) return 0;
  return static_cast<size_t>(LastNode(c) - c + 1) * sizeof(ExprCode);
}

Value Eval(const ExprCode& c, EvalContext& ctx) { return EvalNode(c, ctx); }
// Only roots have code (CompileExpr's results and aggregate arguments): what callers hold.
Value Eval(const Expr& e, EvalContext& ctx) {
  assert(!e.code.empty());
  return EvalNode(e.code[0], ctx);
}

bool EvalCondition(const Expr& e, EvalContext& ctx) {
  assert(!e.code.empty());
  return EvalCondition(e.code[0], ctx);
}

bool EvalCondition(const ExprCode& c, EvalContext& ctx) {
  Value v = EvalNode(c, ctx);
  if (v.is_bool()) return v.b;
  if (!v.missing()) ctx.errors |= kErrNotBoolean;
  return false;
}

}  // namespace vigie::rules
