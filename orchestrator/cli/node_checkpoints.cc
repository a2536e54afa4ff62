#include "node_checkpoints.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "cordon/hex.h"
#include "cordon/file_io.h"
#include "cordon/audit/verify.h"

namespace cordon::cli {
namespace {

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

audit::VerifyOptions NodeVerifyOptions(const std::string& dir, const std::optional<std::string>& verifier_key,
                                       std::optional<std::string> checkpoint) {
  audit::VerifyOptions o;
  o.dir = dir;
  o.verifier_key_file = verifier_key;
  o.checkpoint_file = std::move(checkpoint);
  return o;
}


// A recorded note in a private temp file, for Verify's --checkpoint.
struct TempNote {
  std::string path;
  explicit TempNote(const std::string& note) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp == '/' ? tmp : "/tmp") + "/cordon-node-checkpoint-XXXXXX";
    const int fd = ::mkstemp(pattern.data());
    if (fd < 0) return;
    const bool ok = WriteAll(fd, note).has_value();
    ::close(fd);
    if (ok) path = pattern;
    else ::unlink(pattern.c_str());
  }
  ~TempNote() {
    if (!path.empty()) ::unlink(path.c_str());
  }
};

}  // namespace

int VerifyNodeCheckpoints(const std::string& central_dir, const std::string& node_dir,
                          const std::optional<std::string>& node_verifier_key, bool json) {
  auto latest = audit::LatestCheckpoint(node_dir);
  if (!latest) {
    std::cerr << "cordon audit: node log " << node_dir << ": " << latest.error().message << "\n";
    return kExitInvalid;
  }
  const std::string origin = FirstLine(*latest);
  audit::ShowFilter filter;
  filter.action_glob = "node.checkpoint";
  auto entries = audit::ReadEntries(central_dir, filter);
  if (!entries) {
    std::cerr << "cordon audit: " << entries.error().message << "\n";
    return kExitFailure;
  }
  std::uint64_t checked = 0, last_size = 0;
  std::string failure;
  // The node log on its own first: chain, signatures (and MACs with its verifier key).
  if (auto own = audit::Verify(NodeVerifyOptions(node_dir, node_verifier_key, std::nullopt)); !own || own->failure) {
    failure = !own ? own.error().message
                   : std::string("the node log does not verify: ") + audit::TamperName(own->failure->tamper) + ": " +
                         own->failure->detail;
    entries->clear();
  }
  for (const auto& e : *entries) {
    const auto d = e.value("details", nlohmann::json::object());
    if (!d.is_object() || d.value("origin", "") != origin || !d.contains("note_hex") || !d["note_hex"].is_string()) continue;
    const std::string job = e.value("job", "");
    const TempNote note(HexDecode(d["note_hex"].get<std::string>()).value_or(""));
    if (note.path.empty()) {
      failure = "cannot write a temp file for the checkpoint of job " + job;
      break;
    }
    auto report = audit::Verify(NodeVerifyOptions(node_dir, node_verifier_key, note.path));
    if (!report) {
      failure = report.error().message;
      break;
    }
    if (report->failure) {
      failure = "job " + job + ": the node log does not hold the checkpoint the centre recorded (size " +
                std::to_string(d.value("size", 0ull)) + "): " + audit::TamperName(report->failure->tamper) + ": " +
                report->failure->detail;
      break;
    }
    // Jobs end concurrently: the centre records their checkpoints in any order.
    last_size = std::max<std::uint64_t>(last_size, d.value("size", 0ull));
    ++checked;
  }
  if (json) {
    std::cout << nlohmann::json{{"ok", failure.empty() && checked > 0}, {"origin", origin}, {"checked", checked},
                                {"failure", failure}}
                     .dump()
              << "\n";
  } else if (!failure.empty()) {
    std::cout << "FAIL: node log " << origin << ": " << failure << "\n";
  } else if (checked == 0) {
    std::cout << "FAIL: node log " << origin << ": the central log recorded no checkpoint of it\n";
  } else {
    std::cout << "ok: node log " << origin << ": " << checked
              << " checkpoint(s) recorded centrally, each signed and held by the node log (up to size " << last_size
              << ")\n";
  }
  return failure.empty() && checked > 0 ? kExitOk : kExitFailure;
}

}  // namespace cordon::cli
