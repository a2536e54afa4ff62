// The audit log's key files and checkpoints: the MAC state record, the log
// identity (origin + checkpoint public key), the verifier key, signed notes,
// and CreateAuditKeys for `cordon init`.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <sstream>
#include <limits>
#include <type_traits>

#include "cordon/file_io.h"
#include "internal.h"

namespace cordon::audit::internal {
namespace {

constexpr std::string_view kStateMagic = "cordon-audit-mac-state-v1\n";
constexpr std::string_view kIdentityMagic = "cordon-audit-identity-v1";
constexpr std::string_view kVerifierMagic = "cordon-audit-verifier-key-v1";
constexpr std::string_view kSignatureDash = "\xe2\x80\x94 ";  // U+2014 EM DASH, then a space

// "name value" lines after a magic first line; '#' lines are comments.
Result<std::map<std::string, std::string>> ReadFields(std::string_view text, std::string_view magic,
                                                      const std::string& what) {
  std::map<std::string, std::string> fields;
  std::istringstream in{std::string(text)};
  std::string line;
  bool seen_magic = false;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (!seen_magic) {
      if (line != magic) return Fail(Errc::kInvalidData, what + ": not a " + std::string(magic) + " file");
      seen_magic = true;
      continue;
    }
    const std::size_t space = line.find(' ');
    if (space == std::string::npos) return Fail(Errc::kInvalidData, what + ": malformed line \"" + line + "\"");
    fields[line.substr(0, space)] = line.substr(space + 1);
  }
  if (!seen_magic) return Fail(Errc::kInvalidData, what + ": empty");
  return fields;
}

Result<std::string> Field(const std::map<std::string, std::string>& f, const std::string& name,
                          const std::string& what) {
  auto it = f.find(name);
  if (it == f.end()) return Fail(Errc::kInvalidData, what + ": field \"" + name + "\" is missing");
  return it->second;
}

std::string CleanHostname() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::string out;
  for (const char* p = host; *p != '\0'; ++p) {
    const char c = *p;
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    out += ok ? c : '_';
  }
  return out.empty() ? "localhost" : out;
}

}  // namespace

std::string EncodeState(const MacState& s) {
  std::string text(kStateMagic);
  text.reserve(kStateRecordBytes);  // one buffer: the key is never copied by a reallocation
  text += "seq " + std::to_string(s.seq) + "\n";
  text += "key ";
  static constexpr char kDigits[] = "0123456789abcdef";
  for (const std::uint8_t b : s.key) {  // in place: no temporary hex string of the key
    text += kDigits[b >> 4];
    text += kDigits[b & 15];
  }
  text += "\ncheckpoint_size " + std::to_string(s.checkpoint_size) + "\n";
  text += "checkpoint_time_ns " + std::to_string(s.checkpoint_time_ns) + "\n";
  text += "tree_synced " + std::to_string(s.tree_synced) + "\n";
  text += "journal_seq " + std::to_string(s.journal_seq) + "\n";
  text += "journal_bytes " + std::to_string(s.journal_bytes) + "\n";
  const std::string check = Hex(Sha256(text));
  text += "check " + check + "\n";
  text.resize(kStateRecordBytes, '\0');
  return text;
}

namespace {

// One "name value" line of the state record, parsed in place (the record
// holds the key: no stream, map or string copies of it are made).
bool NextField(std::string_view& rest, std::string_view& name, std::string_view& value) {
  const std::size_t nl = rest.find('\n');
  if (nl == std::string_view::npos) return false;
  const std::string_view line = rest.substr(0, nl);
  rest.remove_prefix(nl + 1);
  const std::size_t space = line.find(' ');
  if (space == std::string_view::npos) return false;
  name = line.substr(0, space);
  value = line.substr(space + 1);
  return true;
}

template <class T>
bool Number(std::string_view v, T& out) {
  if (v.empty() || v.size() > 19) return false;
  bool negative = false;
  if (std::is_signed_v<T> && v.front() == '-') {
    negative = true;
    v.remove_prefix(1);
    if (v.empty()) return false;
  }
  std::uint64_t n = 0;
  for (const char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (std::is_signed_v<T> && n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
  out = negative ? static_cast<T>(-static_cast<std::int64_t>(n)) : static_cast<T>(n);
  return true;
}

}  // namespace

Result<MacState> DecodeState(std::string_view record) {
  const std::size_t end = record.find('\0');
  const std::string_view text = record.substr(0, end);
  const std::size_t check_at = text.rfind("check ");
  if (check_at == std::string_view::npos || text.size() != check_at + 6 + 64 + 1) {
    return Fail(Errc::kInvalidData, "MAC state: truncated record");
  }
  auto check = Unhex32(text.substr(check_at + 6, 64));
  if (!check || !Equal32(*check, Sha256(text.substr(0, check_at)))) {
    return Fail(Errc::kInvalidData, "MAC state: check digest mismatch (corrupt record)");
  }
  std::string_view rest = text.substr(0, check_at);
  if (!rest.starts_with(kStateMagic)) return Fail(Errc::kInvalidData, "MAC state: not a cordon-audit-mac-state-v1 record");
  rest.remove_prefix(kStateMagic.size());
  MacState s;
  bool seq = false, key = false, size = false, time = false;
  bool journal_seq = false, journal_bytes = false;  // absent before the journal
  std::string_view name, value;
  while (NextField(rest, name, value)) {
    if (name == "seq") seq = Number(value, s.seq);
    else if (name == "checkpoint_size") size = Number(value, s.checkpoint_size);
    else if (name == "checkpoint_time_ns") time = Number(value, s.checkpoint_time_ns);
    else if (name == "tree_synced") (void)Number(value, s.tree_synced);  // absent before the Merkle tree: 0
    else if (name == "journal_seq") journal_seq = Number(value, s.journal_seq);
    else if (name == "journal_bytes") journal_bytes = Number(value, s.journal_bytes);
    else if (name == "key") {
      auto k = Unhex32(value);
      key = k.has_value();
      if (k) s.key = *k;
      if (k) Cleanse(k->data(), k->size());
    }
  }
  if (!rest.empty() || !seq || !key || !size || !time) {
    Cleanse(s.key.data(), s.key.size());
    return Fail(Errc::kInvalidData, "MAC state: missing or malformed field");
  }
  if (journal_seq != journal_bytes || (journal_seq && s.journal_seq > s.seq)) {
    Cleanse(s.key.data(), s.key.size());
    return Fail(Errc::kInvalidData, "MAC state: inconsistent journal fields");
  }
  if (!journal_seq) s.journal_seq = s.seq;
  return s;
}

namespace {

// Signed-note key IDs and verifier keys (vkeys), for a signature type:
// 0x01 a log's Ed25519 key, 0x04 a witness's Ed25519 cosignature/v1 key.
constexpr char kTypeEd25519 = '\x01';
constexpr char kTypeCosignature = '\x04';

std::array<std::uint8_t, 4> KeyId(const std::string& name, char type, const Bytes32& pub) {
  std::string input = name + "\n";
  input += type;
  input.append(reinterpret_cast<const char*>(pub.data()), pub.size());
  const Bytes32 h = Sha256(input);
  return {h[0], h[1], h[2], h[3]};
}

std::string VkeyString(const std::string& name, char type, const Bytes32& pub) {
  std::string raw(1, type);
  raw.append(reinterpret_cast<const char*>(pub.data()), 32);
  const auto id = KeyId(name, type, pub);
  return name + "+" + Hex(id.data(), 4) + "+" + Base64(reinterpret_cast<const std::uint8_t*>(raw.data()), raw.size());
}

// <name>+<key id hex>+<base64(type || 32-byte Ed25519 key)>, its key id checked.
Result<std::pair<std::string, Bytes32>> ParseVkey(std::string_view vkey, char type, const std::string& what) {
  const std::size_t a = vkey.find('+');
  const std::size_t b = a == std::string_view::npos ? a : vkey.find('+', a + 1);
  if (b == std::string_view::npos || a == 0) return Fail(Errc::kInvalidData, what + ": not name+id+key");
  auto raw = Unbase64(vkey.substr(b + 1));
  if (!raw || raw->size() != 33 || (*raw)[0] != type) {
    return Fail(Errc::kInvalidData, what + ": not an Ed25519 key of type 0x0" + std::to_string(int{type}));
  }
  std::pair<std::string, Bytes32> out{std::string(vkey.substr(0, a)), Bytes32{}};
  std::copy(raw->begin() + 1, raw->end(), out.second.begin());
  const auto id = KeyId(out.first, type, out.second);
  if (vkey.substr(a + 1, b - a - 1) != Hex(id.data(), id.size())) {
    return Fail(Errc::kInvalidData, what + ": key hash does not match the key");
  }
  return out;
}

}  // namespace

std::array<std::uint8_t, 4> NoteKeyHash(const Identity& id) { return KeyId(id.origin, kTypeEd25519, id.public_key); }

std::string NoteVerifierKey(const Identity& id) { return VkeyString(id.origin, kTypeEd25519, id.public_key); }

Result<Identity> ParseVerifierKeyString(const std::string& vkey, const std::string& origin) {
  auto parsed = ParseVkey(vkey, kTypeEd25519, "checkpoint-key");
  if (!parsed) return std::unexpected(parsed.error());
  if (parsed->first != origin) return Fail(Errc::kInvalidData, "checkpoint-key: name is not the origin");
  return Identity{parsed->first, parsed->second};
}

std::string EncodeIdentity(const Identity& id) {
  return std::string(kIdentityMagic) + "\norigin " + id.origin + "\ncheckpoint-key " + NoteVerifierKey(id) + "\n";
}

Result<Identity> DecodeIdentity(std::string_view text) {
  auto f = ReadFields(text, kIdentityMagic, kIdentityFile);
  if (!f) return std::unexpected(f.error());
  auto origin = Field(*f, "origin", kIdentityFile);
  auto vkey = Field(*f, "checkpoint-key", kIdentityFile);
  if (!origin || !vkey) return std::unexpected(origin ? vkey.error() : origin.error());
  return ParseVerifierKeyString(*vkey, *origin);
}

std::string EncodeVerifierKey(const VerifierKey& key) {
  std::string text =
      "# Cordon audit verifier key. It lets an auditor check every MAC and checkpoint of the log\n"
      "# whose origin is below. Move it OFF this host (and delete it here): anyone holding it can\n"
      "# forge MACs for any entry. Use: cordon audit verify --verifier-key FILE\n";
  text += std::string(kVerifierMagic) + "\n";
  text += "origin " + key.identity.origin + "\n";
  text += "checkpoint-key " + NoteVerifierKey(key.identity) + "\n";
  text += "mac-seed " + Hex(key.k0) + "\n";
  return text;
}

Result<VerifierKey> DecodeVerifierKey(std::string_view text) {
  // The mac-seed line is parsed in place; only the public lines are copied
  // into the field parser (no stream or map ever holds k0).
  constexpr std::string_view kSeed = "\nmac-seed ";
  const std::size_t at = text.find(kSeed);
  if (at == std::string_view::npos) return Fail(Errc::kInvalidData, "verifier key: a field is missing");
  const std::size_t value = at + kSeed.size();
  const std::size_t end = std::min(text.find('\n', value), text.size());
  std::string public_part(text.substr(0, at + 1));
  if (end < text.size()) public_part += text.substr(end + 1);
  auto f = ReadFields(public_part, kVerifierMagic, "verifier key");
  if (!f) return std::unexpected(f.error());
  auto origin = Field(*f, "origin", "verifier key");
  auto vkey = Field(*f, "checkpoint-key", "verifier key");
  if (!origin || !vkey || f->contains("mac-seed")) return Fail(Errc::kInvalidData, "verifier key: a field is missing or repeated");
  auto id = ParseVerifierKeyString(*vkey, *origin);
  if (!id) return std::unexpected(WithContext(id.error(), "verifier key"));
  auto k0 = Unhex32(text.substr(value, end - value));
  if (!k0) return Fail(Errc::kInvalidData, "verifier key: mac-seed is not 64 hex digits");
  VerifierKey out{*id, *k0};
  Cleanse(&*k0, sizeof(Bytes32));
  return out;
}

Result<std::string> SignCheckpoint(const CheckpointBody& body, const Identity& id, const Bytes32& seed) {
  const std::string text = body.origin + "\n" + std::to_string(body.size) + "\n" + Base64(body.head.data(), 32) +
                           "\ntime " + body.time + "\n";
  auto sig = Ed25519Sign(seed, text);
  if (!sig) return std::unexpected(sig.error());
  const auto hash = NoteKeyHash(id);
  std::string blob(reinterpret_cast<const char*>(hash.data()), 4);
  blob += *sig;
  return text + "\n" + std::string(kSignatureDash) + id.origin + " " +
         Base64(reinterpret_cast<const std::uint8_t*>(blob.data()), blob.size()) + "\n";
}

namespace {

void CheckNote(ParsedCheckpoint& cp, const std::string& body, const std::vector<std::string>& sigs,
               const Identity& id) {
  std::istringstream in(body);
  std::string origin, size, head, time;
  std::getline(in, origin);
  std::getline(in, size);
  std::getline(in, head);
  std::getline(in, time);
  cp.body.origin = origin;
  auto head_raw = Unbase64(head);
  const bool digits = !size.empty() && size.size() < 20 && std::all_of(size.begin(), size.end(), ::isdigit);
  if (!digits || !head_raw || head_raw->size() != 32 || !time.starts_with("time ")) {
    cp.problem = "malformed checkpoint body";
    return;
  }
  cp.body.size = std::stoull(size);
  std::copy(head_raw->begin(), head_raw->end(), cp.body.head.begin());
  cp.body.time = time.substr(5);
  if (origin != id.origin) {
    cp.problem = "origin \"" + origin + "\" is not this log's (" + id.origin + ")";
    return;
  }
  const auto hash = NoteKeyHash(id);
  for (const std::string& line : sigs) {
    const std::string prefix = std::string(kSignatureDash) + id.origin + " ";
    if (!line.starts_with(prefix)) continue;
    auto blob = Unbase64(line.substr(prefix.size()));
    if (!blob || blob->size() != 68 || std::memcmp(blob->data(), hash.data(), 4) != 0) continue;
    if (Ed25519Verify(id.public_key, body, blob->substr(4))) {
      cp.signature_ok = true;
      return;
    }
  }
  cp.problem = "no valid Ed25519 signature by " + id.origin;
}

}  // namespace

std::vector<ParsedCheckpoint> ParseCheckpoints(std::string_view text, const Identity& id) {
  std::vector<ParsedCheckpoint> out;
  std::istringstream in{std::string(text)};
  std::string line;
  std::uint64_t line_no = 0;
  while (true) {
    ParsedCheckpoint cp;
    std::string body;
    std::vector<std::string> sigs;
    while (std::getline(in, line) && (++line_no, true) && line.empty()) {}
    if (!in) break;
    cp.line = line_no;
    do { body += line + "\n"; } while (std::getline(in, line) && (++line_no, true) && !line.empty());
    cp.text = body + "\n";
    cp.body_text = body;
    while (std::getline(in, line) && (++line_no, true) && !line.empty()) {
      sigs.push_back(line);
      cp.text += line + "\n";
    }
    cp.signatures = sigs;
    if (sigs.empty()) cp.problem = "checkpoint has no signature lines";
    else CheckNote(cp, body, sigs, id);
    out.push_back(std::move(cp));
    if (!in) break;
  }
  return out;
}

Result<Identity> ParseLogVerifierKey(std::string_view vkey) {
  const std::size_t plus = vkey.find('+');
  if (plus == std::string_view::npos || plus == 0) return Fail(Errc::kInvalidData, "log key: not name+hash+key");
  return ParseVerifierKeyString(std::string(vkey), std::string(vkey.substr(0, plus)));
}

std::array<std::uint8_t, 4> CosignatureKeyId(const WitnessIdentity& id) {
  return KeyId(id.name, kTypeCosignature, id.public_key);
}

std::string WitnessVerifierKeyString(const WitnessIdentity& id) {
  return VkeyString(id.name, kTypeCosignature, id.public_key);
}

Result<WitnessIdentity> ParseWitnessVerifierKey(std::string_view vkey) {
  auto parsed = ParseVkey(vkey, kTypeCosignature, "witness key");
  if (!parsed) return std::unexpected(parsed.error());
  return WitnessIdentity{parsed->first, parsed->second};
}

namespace {
std::string CosignedMessage(std::string_view body, std::uint64_t timestamp) {
  return "cosignature/v1\ntime " + std::to_string(timestamp) + "\n" + std::string(body);
}
}  // namespace

Result<std::string> Cosign(std::string_view body, const WitnessIdentity& id, const Bytes32& seed,
                           std::uint64_t timestamp) {
  auto sig = Ed25519Sign(seed, CosignedMessage(body, timestamp));
  if (!sig) return std::unexpected(sig.error());
  const auto kid = CosignatureKeyId(id);
  std::string blob(reinterpret_cast<const char*>(kid.data()), 4);
  for (int shift = 56; shift >= 0; shift -= 8) blob += static_cast<char>((timestamp >> shift) & 0xff);
  blob += *sig;
  return std::string(kSignatureDash) + id.name + " " +
         Base64(reinterpret_cast<const std::uint8_t*>(blob.data()), blob.size()) + "\n";
}

bool HasCosignature(std::string_view body, const std::vector<std::string>& signatures, const WitnessIdentity& id) {
  const std::string prefix = std::string(kSignatureDash) + id.name + " ";
  const auto kid = CosignatureKeyId(id);
  for (const std::string& line : signatures) {
    if (!line.starts_with(prefix)) continue;
    auto blob = Unbase64(std::string_view(line).substr(prefix.size()));
    if (!blob || blob->size() != 4 + 8 + 64 || std::memcmp(blob->data(), kid.data(), 4) != 0) continue;
    std::uint64_t timestamp = 0;
    for (int i = 0; i < 8; ++i) timestamp = timestamp << 8 | static_cast<std::uint8_t>((*blob)[4 + static_cast<std::size_t>(i)]);
    if (timestamp > (std::uint64_t{1} << 63) - 1) continue;
    if (Ed25519Verify(id.public_key, CosignedMessage(body, timestamp), std::string_view(*blob).substr(12))) return true;
  }
  return false;
}

}  // namespace cordon::audit::internal

namespace cordon::audit {

using namespace internal;

Result<KeysReport> CreateAuditKeys(const std::string& dir, const std::string& verifier_key_path) {
  KeysReport report{false, verifier_key_path};
  if (::access((dir + "/" + kStateFile).c_str(), F_OK) == 0) return report;
  VerifierKey vk;
  Bytes32 seed{};
  std::array<std::uint8_t, 8> id_bytes{};
  if (auto ok = RandomBytes(vk.k0.data(), 32); !ok) return std::unexpected(ok.error());
  if (auto ok = RandomBytes(seed.data(), 32); !ok) return std::unexpected(ok.error());
  if (auto ok = RandomBytes(id_bytes.data(), id_bytes.size()); !ok) return std::unexpected(ok.error());
  vk.identity.origin = "cordon.audit/" + CleanHostname() + "/" + Hex(id_bytes.data(), id_bytes.size());
  auto pub = Ed25519PublicFromSeed(seed);
  if (!pub) return std::unexpected(pub.error());
  vk.identity.public_key = *pub;
  std::string seed_text = "cordon-audit-checkpoint-key-v1\nseed " + Hex(seed) + "\n";
  std::string verifier_text = EncodeVerifierKey(vk);
  MacState state{0, vk.k0, 0, NowNs()};  // the checkpoint below is the first
  std::string state_text = EncodeState(state);
  Status ok = WriteFileAtomic(verifier_key_path, verifier_text, 0400, Overwrite::kRefuse);
  if (ok) ok = WriteFileAtomic(dir + "/" + kSigningKeyFile, seed_text, 0600, Overwrite::kRefuse);
  if (ok) ok = WriteFileAtomic(dir + "/" + kIdentityFile, EncodeIdentity(vk.identity), 0644, Overwrite::kRefuse);
  if (ok) ok = WriteFileAtomic(dir + "/" + kLockFile, "", 0600, Overwrite::kRefuse);
  if (ok) ok = WriteFileAtomic(dir + "/" + kCheckpointsFile, "", 0600, Overwrite::kRefuse);
  // The state file last: its presence marks a complete set of keys.
  if (ok) ok = WriteFileAtomic(dir + "/" + kStateFile, state_text, 0600, Overwrite::kRefuse);
  Cleanse(seed.data(), 32);
  Cleanse(seed_text.data(), seed_text.size());
  Cleanse(verifier_text.data(), verifier_text.size());
  Cleanse(state_text.data(), state_text.size());
  Cleanse(vk.k0.data(), 32);
  Cleanse(state.key.data(), 32);
  if (!ok) return std::unexpected(WithContext(ok.error(), "creating the audit keys"));

  auto log = AuditLog::Open(Options{.dir = dir});
  if (!log) return std::unexpected(log.error());
  Event created{.action = "log.created", .job = "", .outcome = "ok",
                .details = {{"origin", vk.identity.origin}, {"verifier_key_file", verifier_key_path}},
                .actor = std::nullopt};
  if (auto seq = (*log)->Append(created); !seq) return std::unexpected(seq.error());
  if (auto cp = (*log)->Checkpoint(); !cp) return std::unexpected(cp.error());
  report.created = true;
  return report;
}

}  // namespace cordon::audit
