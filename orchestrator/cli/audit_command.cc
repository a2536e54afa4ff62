// cordon audit verify|show|checkpoint
//
// Exit status: 0 ok; 1 verification found tampering (or the operation
// failed); 2 usage / invalid input (bad flags, unreadable config or key).
#include <unistd.h>

#include <iostream>
#include <set>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "node_checkpoints.h"
#include "cordon/orchestrator/audit_ocsf.h"
#include "cordon/orchestrator/audit_verify.h"
#include "cordon/orchestrator/config.h"

namespace cordon::cli {
namespace {

int Complain(const Error& e) {
  std::cerr << "cordon audit: " << e.message << "\n";
  return e.code == Errc::kInvalidArgument || e.code == Errc::kInvalidData ? kExitInvalid : kExitFailure;
}

class AuditCommand final : public Command {
 public:
  explicit AuditCommand(CLI::App& app) {
    sub_ = app.add_subcommand("audit", "verify and read the tamper-evident audit log");
    sub_->require_subcommand(1);
    sub_->add_option("--dir", dir_, "audit directory (default: the config's audit_dir)");
    verify_ = sub_->add_subcommand("verify", "check the hash chain, MACs and checkpoint signatures");
    verify_->add_option("--verifier-key", verifier_key_, "the verifier key kept off the host (checks every MAC)");
    verify_->add_option("--checkpoint", checkpoint_, "a checkpoint kept off the host: the log must still contain it");
    verify_->add_flag("--json", json_, "print the result as one JSON object");
    verify_->add_option("--node-checkpoints", node_dirs_,
                        "also check a Slurm node's audit log (its audit_dir; repeatable) against every "
                        "node.checkpoint this log recorded for it (docs/SCALE-OUT.md)");
    verify_->add_option("--node-verifier-key", node_verifier_key_, "the node log's verifier key (checks its MACs too)");
    verify_->footer("Exit 0: ok: N entries, head HASH. Exit 1: the first problem, as FILE:LINE: seq N: CLASS: detail,\n"
                    "CLASS one of modified, deleted, reordered, inserted, MAC mismatch, bad signature,\n"
                    "truncated before checkpoint. Exit 2: bad usage or an unreadable key.");
    show_ = sub_->add_subcommand("show", "print the log as a timeline (one line per entry)");
    show_->add_option("--job", filter_.job, "only entries of this job");
    show_->add_option("--since", filter_.since, "only entries at or after TIME (RFC 3339, ...Z) or a duration ago (30m)");
    show_->add_option("--action", filter_.action_glob, "only actions matching GLOB (job.*)");
    show_->add_flag("--json", show_json_, "JSON Lines, one entry per line, as stored (= --format json)");
    show_->add_option("--format", format_,
                      "text (a timeline), json (entries as stored) or ocsf (OCSF 1.1 API/Process Activity "
                      "events, one per line, for a SIEM; docs/AUDIT-FORMAT.md)")
        ->check(CLI::IsMember({"text", "json", "ocsf"}));
    checkpoint_cmd_ = sub_->add_subcommand("checkpoint", "print the latest signed checkpoint (a signed note)");
  }

  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions& global) override {
    if (dir_.empty()) {
      auto config = orchestrator::LoadConfig(orchestrator::ResolveConfigPath(global.config));
      if (!config) return Complain(config.error());
      dir_ = config->audit_dir;
    }
    if (verify_->parsed()) {
      int status = RunVerify();
      for (const auto& node : node_dirs_) status = std::max(status, VerifyNodeCheckpoints(dir_, node, node_verifier_key_, json_));
      return status;
    }
    if (show_->parsed()) return RunShow();
    return RunCheckpoint();
  }

 private:
  int RunVerify() {
    auto report = audit::Verify({dir_, verifier_key_, checkpoint_});
    if (!report) return Complain(report.error());
    if (json_) {
      nlohmann::json out = {{"ok", !report->failure}, {"entries", report->entries}, {"head", report->head},
                            {"bytes", report->bytes}, {"checkpoints", report->checkpoints},
                            {"macs_checked", report->macs_checked}};
      if (report->failure) {
        const auto& f = *report->failure;
        out["failure"] = {{"class", audit::TamperName(f.tamper)}, {"file", f.file}, {"line", f.line}, {"detail", f.detail}};
        if (f.seq) out["failure"]["seq"] = *f.seq;
      }
      std::cout << out.dump() << "\n";
      return report->failure ? kExitFailure : kExitOk;
    }
    if (report->failure) {
      const auto& f = *report->failure;
      std::cout << "FAIL: " << f.file << ":" << f.line << ": "
                << (f.seq ? "seq " + std::to_string(*f.seq) + ": " : std::string()) << audit::TamperName(f.tamper)
                << ": " << f.detail << "\n";
      return kExitFailure;
    }
    std::cout << "ok: " << report->entries << " entries, head " << (report->head.empty() ? "(empty)" : report->head)
              << "\n";
    std::cerr << "  " << report->checkpoints << " checkpoint signature(s) verified; "
              << (report->macs_checked ? "every MAC verified with the verifier key"
                                       : "MACs NOT checked (no --verifier-key): root on this host could have "
                                         "rewritten the chain consistently")
              << "\n";
    return kExitOk;
  }

  int RunShow() {
    auto entries = audit::ReadEntries(dir_, filter_);
    if (!entries) return Complain(entries.error());
    if (show_json_ || format_ == "json") {
      for (const auto& e : *entries) std::cout << e.dump() << "\n";
      return kExitOk;
    }
    if (format_ == "ocsf") {
      char host[256] = {};
      if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
      const audit::OcsfContext context{CORDON_VERSION, host};
      for (const auto& e : *entries) std::cout << audit::ToOcsf(e, context).dump() << "\n";
      return kExitOk;
    }
    // Write-ahead intents whose outcome is not (yet) in the log.
    std::set<std::uint64_t> finished;
    for (const auto& e : *entries) {
      if (e.contains("details") && e["details"].is_object() && e["details"].contains("intent_seq") &&
          e["details"]["intent_seq"].is_number_unsigned()) {
        finished.insert(e["details"]["intent_seq"].get<std::uint64_t>());
      }
    }
    std::string path;
    std::string last_action;
    for (const auto& e : *entries) {
      std::cout << audit::FormatTimelineLine(e);
      const bool intent = e.contains("outcome") && e["outcome"] == "intent" && e.contains("seq") &&
                          e["seq"].is_number_unsigned();
      if (intent && !finished.contains(e["seq"].get<std::uint64_t>())) std::cout << "  (no outcome recorded)";
      std::cout << "\n";
      if (filter_.job && e.contains("action") && e["action"].is_string() && !intent &&
          e["action"] != last_action) {  // the job's stages, repeats folded
        last_action = e["action"].get<std::string>();
        path += (path.empty() ? "" : " -> ") + last_action;
      }
    }
    if (filter_.job && !path.empty()) std::cout << "job " << *filter_.job << ": " << path << "\n";
    std::cerr << "(" << entries->size() << " entries; not verified here: run `cordon audit verify`)\n";
    return kExitOk;
  }

  int RunCheckpoint() {
    auto note = audit::LatestCheckpoint(dir_);
    if (!note) return Complain(note.error());
    std::cout << *note;
    return kExitOk;
  }

  CLI::App* sub_ = nullptr;
  CLI::App* verify_ = nullptr;
  CLI::App* show_ = nullptr;
  CLI::App* checkpoint_cmd_ = nullptr;
  std::string dir_;
  std::optional<std::string> verifier_key_;
  std::optional<std::string> checkpoint_;
  std::vector<std::string> node_dirs_;
  std::optional<std::string> node_verifier_key_;
  bool json_ = false;
  bool show_json_ = false;
  std::string format_ = "text";
  audit::ShowFilter filter_;
};

}  // namespace

std::unique_ptr<Command> MakeAuditCommand(CLI::App& app) { return std::make_unique<AuditCommand>(app); }

}  // namespace cordon::cli
