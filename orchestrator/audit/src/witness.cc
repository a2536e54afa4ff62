// The witness: the off-host auditor's side of the checkpoints. It keeps the
// last checkpoint it cosigned per origin, checks the log's signature and a
// consistency proof from that one, refuses a rollback or a fork, and cosigns
// (C2SP tlog-cosignature, Ed25519, cosignature/v1).
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "cordon/file_io.h"
#include "cordon/audit/tlog.h"
#include "cordon/unique_fd.h"
#include "internal.h"
#include "merkle.h"

namespace cordon::audit {

using namespace internal;

namespace {

constexpr std::string_view kWitnessMagic = "cordon-audit-witness-key-v1\n";

struct WitnessKey {
  WitnessIdentity id;
  Bytes32 seed{};
  ~WitnessKey() { Cleanse(seed.data(), seed.size()); }
};

Result<std::unique_ptr<WitnessKey>> LoadWitnessKey(const std::string& path) {
  auto text = ReadSecretFile(path, 4096);
  if (!text) return std::unexpected(text.error());
  const std::string_view view(reinterpret_cast<const char*>(text->data()), text->size());
  const std::size_t name_at = view.find("\nname ");
  const std::size_t seed_at = view.find("\nseed ");
  if (!view.starts_with(kWitnessMagic) || name_at == std::string_view::npos || seed_at == std::string_view::npos) {
    return Fail(Errc::kInvalidData, path + ": not a cordon-audit-witness-key-v1 file");
  }
  const std::size_t name_end = view.find('\n', name_at + 6);
  auto key = std::make_unique<WitnessKey>();
  key->id.name = std::string(view.substr(name_at + 6, name_end - name_at - 6));
  auto seed = Unhex32(view.substr(seed_at + 6, 64));
  if (!seed || key->id.name.empty()) return Fail(Errc::kInvalidData, path + ": bad name or seed");
  key->seed = *seed;
  Cleanse(&*seed, sizeof(Bytes32));
  auto pub = Ed25519PublicFromSeed(key->seed);
  if (!pub) return std::unexpected(pub.error());
  key->id.public_key = *pub;
  return key;
}

bool ValidKeyName(const std::string& name) {
  if (name.empty() || name.size() > 255) return false;
  for (const char c : name) {
    if (c <= 0x20 || c >= 0x7f || c == '+') return false;
  }
  return true;
}

// The log key: a verifier key string, or a file holding one (alone on a
// line, or as the checkpoint-key field of log.identity / the verifier key).
Result<Identity> LoadLogKey(const std::string& arg) {
  if (arg.find('+') != std::string::npos && ::access(arg.c_str(), F_OK) != 0) return ParseLogVerifierKey(arg);
  auto text = ReadFileLimited(arg, 64 * 1024);
  if (!text) return std::unexpected(text.error());
  std::size_t at = 0;
  while (at < text->size()) {
    std::size_t end = text->find('\n', at);
    if (end == std::string::npos) end = text->size();
    std::string_view line = std::string_view(*text).substr(at, end - at);
    at = end + 1;
    if (line.starts_with("checkpoint-key ")) line.remove_prefix(15);
    if (line.empty() || line[0] == '#' || line.find(' ') != std::string_view::npos) continue;
    if (line.find('+') != std::string_view::npos) return ParseLogVerifierKey(line);
  }
  return Fail(Errc::kInvalidData, arg + ": no log verifier key (name+hash+key) in it");
}

WitnessResult Refuse(WitnessRefusal why, std::string message) {
  WitnessResult r;
  r.refused = why;
  r.message = std::move(message);
  return r;
}

// Checks the proof text (`cordon audit consistency --json`) from `old` to `now`.
std::optional<WitnessResult> CheckGrowth(const ParsedCheckpoint& old, const ParsedCheckpoint& now,
                                         const std::optional<std::string>& proof_text) {
  const std::string sizes = std::to_string(old.body.size) + " to " + std::to_string(now.body.size);
  if (!proof_text) {
    return Refuse(WitnessRefusal::kProofNeeded, "the log grew from size " + sizes +
                                                    ": a consistency proof is needed (--proof FILE, from `cordon "
                                                    "audit consistency " + std::to_string(old.body.size) + " " +
                                                    std::to_string(now.body.size) + " --json`)");
  }
  const auto j = nlohmann::json::parse(*proof_text, nullptr, false);
  if (!j.is_object() || !j.contains("old_size") || !j.contains("new_size") || !j.contains("proof") ||
      !j["old_size"].is_number_unsigned() || !j["new_size"].is_number_unsigned() || !j["proof"].is_array()) {
    return Refuse(WitnessRefusal::kBadProof, "the proof is not {\"old_size\", \"new_size\", \"proof\": [...]}");
  }
  if (j["old_size"].get<std::uint64_t>() != old.body.size || j["new_size"].get<std::uint64_t>() != now.body.size) {
    return Refuse(WitnessRefusal::kBadProof, "the proof is from size " + j["old_size"].dump() + " to " +
                                                 j["new_size"].dump() + ", not " + sizes);
  }
  std::vector<Bytes32> path;
  for (const auto& h : j["proof"]) {
    auto raw = h.is_string() ? Unbase64(h.get<std::string>()) : std::nullopt;
    if (!raw || raw->size() != 32) return Refuse(WitnessRefusal::kBadProof, "a proof hash is not base64 of 32 bytes");
    Bytes32 b{};
    std::copy(raw->begin(), raw->end(), b.begin());
    path.push_back(b);
  }
  if (old.body.size > 0 && !VerifyConsistency(old.body.size, now.body.size, old.body.head, now.body.head, path)) {
    return Refuse(WitnessRefusal::kFork, "the consistency proof from size " + sizes +
                                             " does not verify against the root this witness saw before: the log's "
                                             "history was rewritten (or the proof is not for these checkpoints)");
  }
  return std::nullopt;
}

Result<std::optional<ParsedCheckpoint>> ReadPrevious(const std::string& path, const Identity& log) {
  if (::access(path.c_str(), F_OK) != 0) return std::optional<ParsedCheckpoint>();
  auto text = ReadFileLimited(path, 64 * 1024);
  if (!text) return std::unexpected(text.error());
  auto notes = ParseCheckpoints(*text, log);
  if (notes.size() != 1 || !notes[0].signature_ok) {
    return Fail(Errc::kIntegrity, path + ": the stored checkpoint does not verify under this log key");
  }
  return std::optional<ParsedCheckpoint>(std::move(notes[0]));
}

}  // namespace

const char* WitnessRefusalName(WitnessRefusal r) {
  switch (r) {
    case WitnessRefusal::kBadSignature: return "bad signature";
    case WitnessRefusal::kRollback: return "rollback";
    case WitnessRefusal::kFork: return "fork";
    case WitnessRefusal::kBadProof: return "bad proof";
    case WitnessRefusal::kProofNeeded: return "proof needed";
  }
  return "refused";
}

Result<std::string> CreateWitnessKey(const std::string& path, const std::string& name) {
  if (!ValidKeyName(name)) {
    return Fail(Errc::kInvalidArgument, "witness name \"" + name + "\": printable ASCII without spaces or '+', "
                                        "at most 255 bytes (e.g. witness.example.com/w1)");
  }
  Bytes32 seed{};
  if (auto ok = RandomBytes(seed.data(), seed.size()); !ok) return std::unexpected(ok.error());
  auto pub = Ed25519PublicFromSeed(seed);
  if (!pub) return std::unexpected(pub.error());
  std::string text(kWitnessMagic);
  text.reserve(256);
  text += "name " + name + "\nseed ";
  static constexpr char kDigits[] = "0123456789abcdef";
  for (const std::uint8_t b : seed) {
    text += kDigits[b >> 4];
    text += kDigits[b & 15];
  }
  text += "\n";
  Status ok = WriteFileAtomic(path, text, 0600, Overwrite::kRefuse);
  Cleanse(text.data(), text.size());
  Cleanse(seed.data(), seed.size());
  if (!ok) return std::unexpected(ok.error());
  return WitnessVerifierKeyString(WitnessIdentity{name, *pub});
}

Result<std::string> WitnessVerifierKey(const std::string& path) {
  auto key = LoadWitnessKey(path);
  if (!key) return std::unexpected(key.error());
  return WitnessVerifierKeyString((*key)->id);
}

Result<WitnessResult> Witness(const WitnessOptions& o) {
  auto log = LoadLogKey(o.log_key);
  if (!log) return std::unexpected(WithContext(log.error(), "--log-key"));
  auto key = LoadWitnessKey(o.witness_key);
  if (!key) return std::unexpected(key.error());
  auto notes = ParseCheckpoints(o.checkpoint, *log);
  if (notes.size() != 1) return Fail(Errc::kInvalidData, "the checkpoint must be exactly one signed note");
  const ParsedCheckpoint& now = notes[0];
  if (!now.signature_ok) return Refuse(WitnessRefusal::kBadSignature, now.problem);

  if (auto made = MakeDir(o.state_dir, 0700); !made) return std::unexpected(made.error());
  UniqueFd lock(::open((o.state_dir + "/witness.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!lock) return FailErrno("open " + o.state_dir + "/witness.lock");
  if (RetryEintr([&] { return ::flock(lock.get(), LOCK_EX); }) != 0) return FailErrno("lock " + o.state_dir + "/witness.lock");
  const Bytes32 origin_hash = Sha256(log->origin);
  const std::string state_path = o.state_dir + "/" + Hex(origin_hash.data(), 16) + ".checkpoint";
  auto previous = ReadPrevious(state_path, *log);
  if (!previous) return std::unexpected(previous.error());

  WitnessResult result;
  result.size = now.body.size;
  if (*previous) {
    const ParsedCheckpoint& old = **previous;
    result.previous_size = old.body.size;
    if (now.body.size < old.body.size) {
      return Refuse(WitnessRefusal::kRollback, "size " + std::to_string(now.body.size) + " is below size " +
                                                   std::to_string(old.body.size) + " seen before (" +
                                                   old.body.time + "): the log was rolled back");
    }
    if (now.body.size == old.body.size && !Equal32(now.body.head, old.body.head)) {
      return Refuse(WitnessRefusal::kFork, "size " + std::to_string(now.body.size) +
                                               " with a different root than seen before: the log was rewritten");
    }
    if (now.body.size > old.body.size) {
      if (auto refused = CheckGrowth(old, now, o.proof)) return *refused;
    }
  }
  auto line = Cosign(now.body_text, (*key)->id, (*key)->seed, static_cast<std::uint64_t>(::time(nullptr)));
  if (!line) return std::unexpected(line.error());
  if (auto ok = WriteFileAtomic(state_path, now.text, 0600, Overwrite::kReplace); !ok) return std::unexpected(ok.error());
  result.cosignature = *line;
  result.message = *previous ? "consistent with size " + std::to_string(result.previous_size) + ": cosigned size " +
                                   std::to_string(result.size)
                             : "first checkpoint of " + log->origin + " seen: cosigned size " + std::to_string(result.size);
  return result;
}

}  // namespace cordon::audit
