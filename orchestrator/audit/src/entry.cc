// Entries: validation and the details guard, the canonical form, sealing
// (hash + MAC) and the strict line parser.
#include <dirent.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>

#include "cordon/file_io.h"
#include "internal.h"

namespace cordon::audit::internal {
namespace {

using nlohmann::json;
constexpr std::int64_t kMaxSafeInt = (std::int64_t{1} << 53) - 1;

bool IsLowerWord(std::string_view s) {
  if (s.empty() || s[0] < 'a' || s[0] > 'z') return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

bool IsDottedAction(std::string_view s) {
  if (s.size() > 128 || s.find('.') == std::string_view::npos) return false;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = s.find('.', start);
    if (!IsLowerWord(s.substr(start, dot - start))) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

std::vector<std::string> NameTokens(const std::string& name) {
  std::vector<std::string> tokens(1);
  for (char c : name) {
    if (c == '_' || c == '-' || c == '.' || c == ' ') {
      tokens.emplace_back();
    } else {
      tokens.back() += static_cast<char>((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
    }
  }
  return tokens;
}

// A member name that announces a secret, unless a qualifier says it names a
// reference to one ("kek_ref", "key_version", "pin_file", "token_label") or a
// size ("plaintext_bytes").
bool SecretLookingName(const std::string& name) {
  static const std::vector<std::string> kSecret = {"key", "secret", "password", "passwd", "passphrase",
                                                   "pin", "token", "plaintext", "dek", "kek",
                                                   "seed", "private", "credential", "credentials"};
  static const std::vector<std::string> kQualifier = {"ref", "id", "version", "name", "uri", "label",
                                                      "count", "fingerprint", "sha256", "file", "path",
                                                      "type", "algorithm", "bytes", "size", "length"};
  const auto tokens = NameTokens(name);
  auto any_of = [&](const std::vector<std::string>& set) {
    return std::any_of(tokens.begin(), tokens.end(),
                       [&](const std::string& t) { return std::find(set.begin(), set.end(), t) != set.end(); });
  };
  return any_of(kSecret) && !any_of(kQualifier);
}

Status GuardValue(const json& v, const std::string& where, int depth) {
  if (depth > kMaxDepth - 2) return Fail(Errc::kInvalidArgument, where + ": nested too deeply");
  if (v.is_number_float()) return Fail(Errc::kInvalidArgument, where + ": floats are not allowed (integers only)");
  if (v.is_number_integer()) {
    const bool neg = v.is_number_unsigned() ? false : v.get<std::int64_t>() < 0;
    const bool fits = v.is_number_unsigned() ? v.get<std::uint64_t>() <= std::uint64_t(kMaxSafeInt)
                                              : (neg ? v.get<std::int64_t>() >= -kMaxSafeInt : true);
    if (!fits) return Fail(Errc::kInvalidArgument, where + ": integer beyond +-(2^53-1)");
  }
  if (v.is_string() && v.get_ref<const std::string&>().size() > kMaxStringBytes) {
    return Fail(Errc::kInvalidArgument, where + ": string longer than 1024 bytes (log a reference, not data)");
  }
  if (v.is_array()) {
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (auto ok = GuardValue(v[i], where + "[" + std::to_string(i) + "]", depth + 1); !ok) return ok;
    }
  }
  if (v.is_object()) {
    for (const auto& [name, member] : v.items()) {
      if (SecretLookingName(name)) {
        return Fail(Errc::kPermissionDenied,
                    where + "." + name + ": looks like key material or a secret; audit details must hold "
                                         "references (name a *_ref, *_id, *_fingerprint), never values");
      }
      if (auto ok = GuardValue(member, where + "." + name, depth + 1); !ok) return ok;
    }
  }
  return {};
}

bool PrintableAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

bool IsHex64(const json& v) { return v.is_string() && Unhex32(v.get_ref<const std::string&>()).has_value(); }

int NestingDepth(std::string_view s) {
  int depth = 0;
  int max = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max = std::max(max, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return max;
}

// Integers only, within +-(2^53-1): floats have several spellings of one value.
bool NumbersOk(const json& v) {
  if (v.is_number_float()) return false;
  if (v.is_number_unsigned()) return v.get<std::uint64_t>() <= std::uint64_t(kMaxSafeInt);
  if (v.is_number_integer()) return v.get<std::int64_t>() >= -kMaxSafeInt;
  if (v.is_structured()) {
    for (const auto& item : v) {
      if (!NumbersOk(item)) return false;
    }
  }
  return true;
}

Status CheckShape(const json& j) {
  static const std::vector<std::string> kRequired = {"action", "actor", "details", "hash", "mac",
                                                     "outcome", "prev", "seq", "time"};
  if (!j.is_object()) return Fail(Errc::kInvalidData, "not a JSON object");
  for (const auto& name : kRequired) {
    if (!j.contains(name)) return Fail(Errc::kInvalidData, "member \"" + name + "\" is missing");
  }
  if (j.size() != kRequired.size() + (j.contains("job") ? 1 : 0)) {
    return Fail(Errc::kInvalidData, "unknown member");
  }
  const json& a = j["actor"];
  const bool actor_ok = a.is_object() && a.size() == 4 && a.contains("uid") && a["uid"].is_number_unsigned() &&
                        a.contains("user") && a["user"].is_string() && a.contains("pid") &&
                        a["pid"].is_number_integer() && a.contains("process") && a["process"].is_string();
  if (!actor_ok) return Fail(Errc::kInvalidData, "actor must be {pid, process, uid, user}");
  if (!j["action"].is_string() || !IsDottedAction(j["action"].get_ref<const std::string&>())) {
    return Fail(Errc::kInvalidData, "action is not a dotted name");
  }
  if (!j["outcome"].is_string() || !IsLowerWord(j["outcome"].get_ref<const std::string&>())) {
    return Fail(Errc::kInvalidData, "outcome is not a lower-case word");
  }
  if (j.contains("job") && (!j["job"].is_string() || j["job"].get_ref<const std::string&>().empty())) {
    return Fail(Errc::kInvalidData, "job must be a non-empty string");
  }
  if (!j["details"].is_object()) return Fail(Errc::kInvalidData, "details must be an object");
  if (!NumbersOk(j)) return Fail(Errc::kInvalidData, "numbers must be integers within +-(2^53-1)");
  if (!j["seq"].is_number_unsigned()) return Fail(Errc::kInvalidData, "seq must be an unsigned integer");
  if (!j["time"].is_string() || !ParseTime(j["time"].get_ref<const std::string&>())) {
    return Fail(Errc::kInvalidData, "time must be RFC 3339 UTC");
  }
  if (!IsHex64(j["hash"]) || !IsHex64(j["mac"]) || !IsHex64(j["prev"])) {
    return Fail(Errc::kInvalidData, "hash, mac and prev must be 64 lower-case hex digits");
  }
  return {};
}

// The hashed form is the line without its "hash" and "mac" members. Both are
// followed only by strings and integers (members sort as action, actor,
// details, hash, job, mac, outcome, prev, seq, time), so the last occurrence
// of each member's text in a canonical line is the top-level member.
std::string HashedForm(std::string_view line) {
  std::string out(line);
  for (const std::string_view member : {std::string_view(",\"mac\":\""), std::string_view(",\"hash\":\"")}) {
    const std::size_t at = out.rfind(member);
    out.erase(at, member.size() + 64 + 1);
  }
  return out;
}

}  // namespace

std::string SegmentName(std::uint64_t first_seq) {
  char name[64];
  std::snprintf(name, sizeof name, "audit-%020llu.jsonl", static_cast<unsigned long long>(first_seq));
  return name;
}

Result<std::vector<Segment>> ListSegments(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return FailErrno("audit directory " + dir);
  std::vector<Segment> out;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (name.size() != 32 || !name.starts_with("audit-") || !name.ends_with(".jsonl")) continue;
    const std::string digits(name.substr(6, 20));
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    out.push_back({std::stoull(digits), dir + "/" + std::string(name)});
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(), [](const Segment& a, const Segment& b) { return a.first_seq < b.first_seq; });
  return out;
}

Result<std::string> Canonical(const json& value) {
  try {
    return value.dump(-1, ' ', false, json::error_handler_t::strict);
  } catch (const json::exception& e) {
    return Fail(Errc::kInvalidArgument, std::string("not serialisable: ") + e.what());
  }
}

Status ValidateEvent(const Event& event) {
  if (!IsDottedAction(event.action)) {
    return Fail(Errc::kInvalidArgument, "audit action \"" + event.action + "\": must be dotted lower-case words");
  }
  if (!IsLowerWord(event.outcome) || event.outcome.size() > 32) {
    return Fail(Errc::kInvalidArgument, "audit outcome \"" + event.outcome + "\": must be a lower-case word");
  }
  if (event.job.size() > 128 || !PrintableAscii(event.job)) {
    return Fail(Errc::kInvalidArgument, "audit job id: must be 0-128 printable ASCII bytes");
  }
  if (!event.details.is_object()) return Fail(Errc::kInvalidArgument, "audit details: must be an object");
  if (auto ok = GuardValue(event.details, "details", 0); !ok) {
    return std::unexpected(WithContext(ok.error(), "audit " + event.action));
  }
  return {};
}

Actor CurrentActor() {
  Actor a;
  a.uid = ::getuid();
  a.pid = ::getpid();
  passwd pw{};
  passwd* found = nullptr;
  char buf[4096];
  if (::getpwuid_r(a.uid, &pw, buf, sizeof buf, &found) == 0 && found != nullptr) a.user = found->pw_name;
  else a.user = std::to_string(a.uid);
  std::ifstream comm("/proc/self/comm");
  std::getline(comm, a.process);
  if (a.process.empty()) a.process = "unknown";
  return a;
}

std::int64_t NowNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::string FormatTime(std::int64_t unix_ns) {
  const time_t secs = static_cast<time_t>(unix_ns / 1'000'000'000);
  const long ns = static_cast<long>(unix_ns % 1'000'000'000);
  tm t{};
  ::gmtime_r(&secs, &t);
  char out[64];
  std::snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", t.tm_year + 1900, t.tm_mon + 1,
                t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, ns);
  return out;
}

namespace {
// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t DaysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3u : 9u)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}
}  // namespace

unsigned DaysInMonth(unsigned year, unsigned month) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12) return 0;
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return kDays[month - 1] + (month == 2 && leap ? 1 : 0);
}

std::optional<std::int64_t> ParseTime(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.fraction]Z
  if (s.size() < 20 || s.size() > 30 || s.back() != 'Z') return std::nullopt;
  const std::string_view pattern = "dddd-dd-ddTdd:dd:dd";
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pattern[i]) return std::nullopt;
  }
  auto num = [&](std::size_t at, std::size_t n) {
    unsigned v = 0;
    for (std::size_t k = at; k < at + n; ++k) v = v * 10 + static_cast<unsigned>(s[k] - '0');
    return v;
  };
  const unsigned year = num(0, 4), mon = num(5, 2), day = num(8, 2);
  const unsigned hour = num(11, 2), min = num(14, 2), sec = num(17, 2);
  if (year < 1970 || year > 2261) return std::nullopt;  // ns since 1970 fit in int64
  if (day < 1 || day > DaysInMonth(year, mon) || hour > 23 || min > 59 || sec > 60) return std::nullopt;
  std::int64_t ns = 0;
  const std::string_view frac = s.substr(19, s.size() - 20);
  if (!frac.empty()) {
    if (frac[0] != '.' || frac.size() < 2 || frac.size() > 10) return std::nullopt;
    std::int64_t scale = 100'000'000;
    for (std::size_t k = 1; k < frac.size(); ++k, scale /= 10) {
      if (frac[k] < '0' || frac[k] > '9') return std::nullopt;
      ns += (frac[k] - '0') * scale;
    }
  }
  const std::int64_t days = DaysFromCivil(year, mon, day);
  return ((days * 24 + hour) * 60 + min) * 60'000'000'000 + std::int64_t{sec} * 1'000'000'000 + ns;
}

namespace {
// Appends `s` as a canonical JSON string (nlohmann-json's strict dump).
Status AppendString(std::string& out, std::string_view s) {
  auto dumped = Canonical(json(s));
  if (!dumped) return std::unexpected(dumped.error());
  out += *dumped;
  return {};
}
}  // namespace

// The canonical form written member by member, in sorted order, instead of
// building a json object (a copy of the details, a node per member) and
// dumping it: the append path's largest cost after the disk. The hashed form
// is `head` + `job` + `tail`; the line puts the hash between head and job and
// the mac between job and tail (action, actor, details, hash, job, mac,
// outcome, prev, seq, time). audit_test checks it byte for byte against the
// json dump on tricky events.
Result<Sealed> SealEntry(const Event& event, const Actor& actor, std::uint64_t seq, const std::string& time,
                         const Bytes32& prev, const Bytes32& key) {
  std::string head = "{\"action\":";
  Status ok = AppendString(head, event.action);
  if (ok) {
    head += ",\"actor\":{\"pid\":" + std::to_string(actor.pid) + ",\"process\":";
    ok = AppendString(head, actor.process);
  }
  if (ok) {
    head += ",\"uid\":" + std::to_string(actor.uid) + ",\"user\":";
    ok = AppendString(head, actor.user);
  }
  if (ok) {
    auto details = Canonical(event.details);
    if (!details) return std::unexpected(details.error());
    head += "},\"details\":";
    head += *details;
  }
  std::string job;
  if (ok && !event.job.empty()) {
    job = ",\"job\":";
    ok = AppendString(job, event.job);
  }
  std::string tail = ",\"outcome\":";
  if (ok) ok = AppendString(tail, event.outcome);
  if (ok) {
    tail += ",\"prev\":\"" + Hex(prev) + "\",\"seq\":" + std::to_string(seq) + ",\"time\":";
    ok = AppendString(tail, time);
  }
  if (!ok) return std::unexpected(ok.error());
  tail += '}';
  Sealed sealed;
  sealed.hash = Sha256PublicParts({head, job, tail});
  std::string& line = sealed.line;
  line.reserve(head.size() + job.size() + tail.size() + 160);
  line += head;
  line += ",\"hash\":\"" + Hex(sealed.hash) + "\"";
  line += job;
  line += ",\"mac\":\"" + Hex(HmacSha256(key, sealed.hash)) + "\"";
  line += tail;
  if (line.size() + 1 > kMaxLineBytes) {
    return Fail(Errc::kInvalidArgument, "audit " + event.action + ": entry larger than 16 KiB");
  }
  line += '\n';
  return sealed;
}

Result<ParsedEntry> ParseEntryLine(std::string_view line) {
  auto e = ScanEntryLine(line);
  if (!e) return e;
  e->json = json::parse(line, nullptr, false);
  if (e->json.is_discarded()) return Fail(Errc::kInternal, "scanner accepted a line nlohmann-json rejects");
  return e;
}

Result<ParsedEntry> ParseEntryLineReference(std::string_view line) {
  if (line.size() + 1 > kMaxLineBytes) return Fail(Errc::kInvalidData, "line longer than 16 KiB");
  if (NestingDepth(line) > kMaxDepth) return Fail(Errc::kInvalidData, "nested too deeply");
  ParsedEntry e;
  e.json = json::parse(line, nullptr, false);
  if (e.json.is_discarded()) return Fail(Errc::kInvalidData, "not valid JSON");
  if (auto ok = CheckShape(e.json); !ok) return std::unexpected(ok.error());
  auto canonical = Canonical(e.json);
  if (!canonical || *canonical != line) return Fail(Errc::kInvalidData, "not in canonical form");
  e.seq = e.json["seq"].get<std::uint64_t>();
  e.hash = *Unhex32(e.json["hash"].get_ref<const std::string&>());
  e.mac = *Unhex32(e.json["mac"].get_ref<const std::string&>());
  e.prev = *Unhex32(e.json["prev"].get_ref<const std::string&>());
  e.computed = Sha256(HashedForm(line));
  return e;
}

}  // namespace cordon::audit::internal
