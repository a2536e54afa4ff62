// ScanEntryLine: a single-pass, allocation-light validator of the canonical
// form (docs/AUDIT-FORMAT.md) that extracts the members the verifier needs.
// It accepts exactly the lines ParseEntryLine (nlohmann-json + re-serialise)
// accepts; fuzz_audit_entry checks that the two agree.
#include <algorithm>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "internal.h"

namespace cordon::audit::internal {
namespace {

constexpr std::uint64_t kMaxSafe = (std::uint64_t{1} << 53) - 1;

class Scanner final {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}

  bool AtEnd() const { return i_ == s_.size(); }
  bool Eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  char Peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  std::size_t pos() const { return i_; }

  // A canonical string; `out` gets the raw bytes between the quotes (which
  // equal the decoded value when it has no escapes).
  bool String(std::string_view* out, bool* escaped) {
    if (!Eat('"')) return false;
    const std::size_t start = i_;
    *escaped = false;
    while (i_ < s_.size()) {
      if (SkipPlain()) {  // stopped at the closing quote
        *out = s_.substr(start, i_ - start);
        ++i_;
        return true;
      }
      if (i_ >= s_.size()) break;
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        *out = s_.substr(start, i_ - start);
        ++i_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        *escaped = true;
        if (!Escape()) return false;
      } else if (c < 0x80) {
        ++i_;
      } else if (!Utf8()) {
        return false;
      }
    }
    return false;
  }

  bool Integer(bool* negative, std::uint64_t* magnitude) {
    *negative = Eat('-');
    const std::size_t start = i_;
    std::uint64_t v = 0;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
      v = v * 10 + static_cast<std::uint64_t>(s_[i_] - '0');
      if (v > kMaxSafe) return false;
      ++i_;
    }
    const std::size_t n = i_ - start;
    if (n == 0 || (n > 1 && s_[start] == '0')) return false;
    if (*negative && v == 0) return false;  // "-0" is not canonical
    const char next = Peek();
    if (next == '.' || next == 'e' || next == 'E') return false;  // integers only
    *magnitude = v;
    return true;
  }

  bool Literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  bool Value(int depth) {
    if (depth > kMaxDepth) return false;
    bool escaped = false;
    std::string_view str;
    bool neg = false;
    std::uint64_t mag = 0;
    switch (Peek()) {
      case '"': return String(&str, &escaped);
      case '{': return Object(depth + 1);
      case '[': return Array(depth + 1);
      case 't': return Literal("true");
      case 'f': return Literal("false");
      case 'n': return Literal("null");
      default: return Integer(&neg, &mag);
    }
  }

  struct Member {
    std::string_view name;
    std::size_t value_start;
    std::size_t value_end;
  };

  // An object whose names strictly increase (byte order). With `out`, up to
  // `cap` top-level members are recorded (more is an error: no entry object
  // has more than 10).
  bool Object(int depth, Member* out = nullptr, std::size_t cap = 0, std::size_t* count = nullptr) {
    if (depth > kMaxDepth || !Eat('{')) return false;
    if (count != nullptr) *count = 0;
    if (Eat('}')) return true;
    std::string_view last;
    std::string last_decoded;  // only when a name has escapes
    bool last_escaped = false;
    bool first = true;
    do {
      std::string_view name;
      bool escaped = false;
      if (!String(&name, &escaped) || !Eat(':')) return false;
      if (escaped || last_escaped) {
        const std::string decoded = escaped ? Unescape(name) : std::string(name);
        const std::string previous = last_escaped ? last_decoded : std::string(last);
        if (!first && !(previous < decoded)) return false;
        last_decoded = decoded;
      } else if (!first && !Less(last, name)) {
        return false;  // unsorted or duplicate
      }
      first = false;
      last = name;
      last_escaped = escaped;
      const std::size_t start = i_;
      if (!Value(depth)) return false;
      if (out != nullptr) {
        if (*count == cap) return false;
        out[(*count)++] = {name, start, i_};
      }
    } while (Eat(','));
    return Eat('}');
  }

  bool Array(int depth) {
    if (depth > kMaxDepth || !Eat('[')) return false;
    if (Eat(']')) return true;
    do {
      if (!Value(depth)) return false;
    } while (Eat(','));
    return Eat(']');
  }

 private:
  // a < b in byte order, inline: member names are short, a memcmp call costs more.
  static bool Less(std::string_view a, std::string_view b) {
    const std::size_t n = std::min(a.size(), b.size());
    for (std::size_t k = 0; k < n; ++k) {
      if (a[k] != b[k]) return static_cast<unsigned char>(a[k]) < static_cast<unsigned char>(b[k]);
    }
    return a.size() < b.size();
  }

  // Skips bytes while none is a quote, a backslash, a control character or
  // non-ASCII: 16 at a time with SSE2 (the signed compare below 0x20 also
  // catches bytes >= 0x80), stopping on the first special byte; then 8 at a
  // time (SWAR: the usual has-zero-byte tests on one word). Returns true when
  // the byte it stopped at is known to be a quote (from the SSE2 masks);
  // otherwise the caller looks.
  bool SkipPlain() {
    std::size_t i = i_;
    const std::size_t n = s_.size();
#if defined(__SSE2__)
    const __m128i quotes = _mm_set1_epi8('"');
    const __m128i backslashes = _mm_set1_epi8('\\');
    const __m128i spaces = _mm_set1_epi8(0x20);
    while (i + 16 <= n) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s_.data() + i));
      const __m128i quote = _mm_cmpeq_epi8(x, quotes);
      const __m128i special = _mm_or_si128(_mm_or_si128(quote, _mm_cmpeq_epi8(x, backslashes)), _mm_cmplt_epi8(x, spaces));
      const auto mask = static_cast<unsigned>(_mm_movemask_epi8(special));
      if (mask != 0) {
        const unsigned at = static_cast<unsigned>(__builtin_ctz(mask));
        i_ = i + at;
        return ((static_cast<unsigned>(_mm_movemask_epi8(quote)) >> at) & 1u) != 0;
      }
      i += 16;
    }
#endif
    constexpr std::uint64_t kOnes = 0x0101010101010101ull;
    constexpr std::uint64_t kHighs = 0x8080808080808080ull;
    while (i + 8 <= n) {
      std::uint64_t x;
      std::memcpy(&x, s_.data() + i, 8);
      const std::uint64_t quote = x ^ (kOnes * '"');
      const std::uint64_t backslash = x ^ (kOnes * '\\');
      const std::uint64_t special = ((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash) |
                                    ((x - kOnes * 0x20) & ~x) | x;
      if ((special & kHighs) != 0) break;
      i += 8;
    }
    i_ = i;
    return false;
  }

  bool Escape() {
    if (i_ + 1 >= s_.size()) return false;
    const char e = s_[i_ + 1];
    if (e == '"' || e == '\\' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
      i_ += 2;
      return true;
    }
    // \u00xx only for the control characters without a short form, lower-case hex.
    if (e != 'u' || i_ + 6 > s_.size() || s_.substr(i_ + 2, 2) != "00") return false;
    const int hi = Hex(s_[i_ + 4]);
    const int lo = Hex(s_[i_ + 5]);
    if (hi < 0 || lo < 0 || hi > 1) return false;
    const int c = hi * 16 + lo;
    if (c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t') return false;
    i_ += 6;
    return true;
  }
  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }
  // One well-formed UTF-8 sequence of 2-4 bytes (no overlongs, surrogates, > U+10FFFF).
  bool Utf8() {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s_[i_ + k]); };
    const unsigned char c = b(0);
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 2;
    else if (c == 0xe0) { n = 3; lo = 0xa0; }
    else if (c >= 0xe1 && c <= 0xec) n = 3;
    else if (c == 0xed) { n = 3; hi = 0x9f; }
    else if (c >= 0xee && c <= 0xef) n = 3;
    else if (c == 0xf0) { n = 4; lo = 0x90; }
    else if (c >= 0xf1 && c <= 0xf3) n = 4;
    else if (c == 0xf4) { n = 4; hi = 0x8f; }
    else return false;
    if (i_ + n > s_.size()) return false;
    if (b(1) < lo || b(1) > hi) return false;
    for (std::size_t k = 2; k < n; ++k) {
      if (b(k) < 0x80 || b(k) > 0xbf) return false;
    }
    i_ += n;
    return true;
  }
  static std::string Unescape(std::string_view raw) {
    std::string out;
    for (std::size_t k = 0; k < raw.size(); ++k) {
      if (raw[k] != '\\') {
        out += raw[k];
        continue;
      }
      const char e = raw[++k];
      switch (e) {
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': out += static_cast<char>(Hex(raw[k + 3]) * 16 + Hex(raw[k + 4])); k += 4; break;
        default: out += e; break;
      }
    }
    return out;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

bool IsWord(std::string_view s, bool dotted) {
  if (s.empty()) return false;
  bool at_start = true;
  for (const char c : s) {
    if (at_start && !(c >= 'a' && c <= 'z')) return false;
    at_start = false;
    if (dotted && c == '.') {
      at_start = true;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return !at_start;
}

// Plain (escape-free) string member value.
std::optional<std::string_view> PlainString(std::string_view line, const Scanner::Member& m) {
  const std::string_view v = line.substr(m.value_start, m.value_end - m.value_start);
  if (v.size() < 2 || v.front() != '"' || v.find('\\') != std::string_view::npos) return std::nullopt;
  return v.substr(1, v.size() - 2);
}

std::optional<std::uint64_t> Unsigned(std::string_view line, const Scanner::Member& m) {
  const std::string_view v = line.substr(m.value_start, m.value_end - m.value_start);
  if (v.empty() || v[0] < '0' || v[0] > '9') return std::nullopt;
  std::uint64_t out = 0;
  for (const char c : v) out = out * 10 + static_cast<std::uint64_t>(c - '0');
  return out;
}

// The actor member's value (already scanned as canonical JSON) is exactly
// {"pid":INT,"process":STRING,"uid":UINT,"user":STRING}: checked in one pass
// over its four values instead of a second scan as an object.
bool ActorOk(std::string_view v) {
  Scanner s(v);
  std::string_view str;
  bool escaped = false;
  bool negative = false;
  std::uint64_t n = 0;
  return s.Literal("{\"pid\":") && s.Integer(&negative, &n) && s.Literal(",\"process\":") && s.String(&str, &escaped) &&
         s.Literal(",\"uid\":") && s.Integer(&negative, &n) && !negative && s.Literal(",\"user\":") &&
         s.String(&str, &escaped) && s.Literal("}") && s.AtEnd();
}

}  // namespace

Result<ParsedEntry> ScanEntryLine(std::string_view line) {
  if (line.size() + 1 > kMaxLineBytes) return Fail(Errc::kInvalidData, "line longer than 16 KiB");
  Scanner s(line);
  Scanner::Member m[10];
  std::size_t count = 0;
  if (!s.Object(1, m, 10, &count) || !s.AtEnd()) return Fail(Errc::kInvalidData, "not canonical JSON");
  const bool has_job = count == 10;
  static constexpr std::string_view kWith[] = {"action", "actor", "details", "hash", "job", "mac", "outcome", "prev", "seq", "time"};
  static constexpr std::string_view kWithout[] = {"action", "actor", "details", "hash", "mac", "outcome", "prev", "seq", "time"};
  if (count != 9 && count != 10) return Fail(Errc::kInvalidData, "wrong set of members");
  // Byte by byte, inline: the names are short, a memcmp call per member costs more.
  const auto same = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (a[i] != b[i]) return false;
    }
    return true;
  };
  for (std::size_t k = 0; k < count; ++k) {
    if (!same(m[k].name, has_job ? kWith[k] : kWithout[k])) return Fail(Errc::kInvalidData, "wrong set of members");
  }
  const std::size_t o = has_job ? 1 : 0;
  auto action = PlainString(line, m[0]);
  if (!action || action->size() > 128 || action->find('.') == std::string_view::npos || !IsWord(*action, true)) {
    return Fail(Errc::kInvalidData, "action is not a dotted name");
  }
  if (!ActorOk(line.substr(m[1].value_start, m[1].value_end - m[1].value_start))) {
    return Fail(Errc::kInvalidData, "actor must be {pid, process, uid, user}");
  }
  if (line[m[2].value_start] != '{') return Fail(Errc::kInvalidData, "details must be an object");
  if (has_job && line.substr(m[4].value_start, 2) == "\"\"") return Fail(Errc::kInvalidData, "job must be a non-empty string");
  if (has_job && line[m[4].value_start] != '"') return Fail(Errc::kInvalidData, "job must be a non-empty string");
  auto outcome = PlainString(line, m[5 + o]);
  if (!outcome || !IsWord(*outcome, false)) return Fail(Errc::kInvalidData, "outcome is not a lower-case word");
  auto seq = Unsigned(line, m[7 + o]);
  if (!seq) return Fail(Errc::kInvalidData, "seq must be an unsigned integer");
  auto time = PlainString(line, m[8 + o]);
  if (!time || !ParseTime(*time)) return Fail(Errc::kInvalidData, "time must be RFC 3339 UTC");
  auto hash = PlainString(line, m[3]);
  auto mac = PlainString(line, m[4 + o]);
  auto prev = PlainString(line, m[6 + o]);
  std::optional<Bytes32> h, mc, p;
  if (hash) h = Unhex32(*hash);
  if (mac) mc = Unhex32(*mac);
  if (prev) p = Unhex32(*prev);
  if (!h || !mc || !p) return Fail(Errc::kInvalidData, "hash, mac and prev must be 64 lower-case hex digits");
  ParsedEntry e;
  e.seq = *seq;
  e.hash = *h;
  e.mac = *mc;
  e.prev = *p;
  // The hashed form: the line without its ,"hash":"…" and ,"mac":"…" members.
  const std::size_t hash_from = m[3].value_start - 8;  // ,"hash":
  const std::size_t hash_to = m[3].value_end;
  const std::size_t mac_from = m[4 + o].value_start - 7;  // ,"mac":
  const std::size_t mac_to = m[4 + o].value_end;
  e.computed = Sha256PublicParts({line.substr(0, hash_from), line.substr(hash_to, mac_from - hash_to), line.substr(mac_to)});
  return e;
}

}  // namespace cordon::audit::internal
