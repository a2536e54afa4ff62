// cordon audit verify|show|checkpoint|prove|consistency|tiles|witness|witness-key
//
// Exit status: 0 ok; 1 verification found tampering, the witness refused (or
// the operation failed); 2 usage / invalid input (bad flags, unreadable
// config or key).
#include <unistd.h>

#include <iostream>
#include <set>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "cordon/file_io.h"
#include "cordon/audit/audit.h"
#include "node_checkpoints.h"
#include "cordon/audit/ocsf.h"
#include "cordon/audit/tlog.h"
#include "cordon/audit/verify.h"
#include "cordon/config/config.h"

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
    verify_->add_option("--witness-key", witness_keys_,
                        "a witness verifier key (name+id+key, or a file holding one) whose cosignature on the "
                        "--checkpoint notes counts; repeatable");
    verify_->add_option("--witnesses", witnesses_required_,
                        "how many of the --witness-key witnesses must have cosigned each --checkpoint note");
    verify_->add_option("--threads", threads_, "threads that hash and MAC entries, the one walking the chain "
                                               "included (default: one per core)");
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
    checkpoint_cmd_ = sub_->add_subcommand("checkpoint", "sign a checkpoint of the log as it is now and print it "
                                                         "(a C2SP tlog-checkpoint signed note)");
    checkpoint_cmd_->add_flag("--latest", latest_, "print the latest stored checkpoint instead of signing one");
    prove_ = sub_->add_subcommand("prove", "inclusion proof of entry SEQ in the Merkle tree (RFC 6962)");
    prove_->add_option("SEQ", seq_, "the entry")->required();
    prove_->add_option("--size", size_, "the tree size (default: the log now)");
    prove_->add_flag("--json", json_, "{\"index\", \"size\", \"root\", \"proof\": [...]} (base64, bottom to top)");
    consistency_ = sub_->add_subcommand("consistency", "consistency proof from tree size OLD to NEW (RFC 6962)");
    consistency_->add_option("OLD", old_size_, "the older tree size (>= 1)")->required();
    consistency_->add_option("NEW", size_, "the newer tree size (default: the log now)");
    consistency_->add_flag("--json", json_, "{\"old_size\", \"new_size\", \"old_root\", \"new_root\", \"proof\": [...]}");
    tiles_ = sub_->add_subcommand("tiles", "export the tree at the latest checkpoint as C2SP tlog-tiles into DIR");
    tiles_->add_option("DIR", out_dir_, "output directory (tile/<L>/<N>, tile/entries/<N>, checkpoint)")->required();
    witness_ = sub_->add_subcommand("witness", "the off-host witness: check that the log only grew, then cosign "
                                               "(C2SP tlog-cosignature)");
    witness_->add_option("--log-key", witness_opts_.log_key, "the log's verifier key (name+hash+key, or log.identity)")->required();
    witness_->add_option("--state", witness_opts_.state_dir, "the witness's state directory (last checkpoint per log)")->required();
    witness_->add_option("--key", witness_opts_.witness_key, "the witness key file (`cordon audit witness-key create`)")->required();
    witness_->add_option("--proof", proof_file_, "consistency proof from the last checkpoint seen (`cordon audit "
                                                 "consistency OLD NEW --json`)");
    witness_->add_option("CHECKPOINT", checkpoint_in_, "the new checkpoint (a signed note file)")->required();
    witness_->footer("Prints the cosignature line; append it to the note's signature lines. Exit 1: refused\n"
                     "(rollback, fork, bad signature, bad proof, proof needed), nothing stored.");
    witness_key_ = sub_->add_subcommand("witness-key", "witness keys (Ed25519, for tlog-cosignature)");
    witness_key_->require_subcommand(1);
    witness_key_create_ = witness_key_->add_subcommand("create", "create a witness key and print its verifier key");
    witness_key_create_->add_option("FILE", key_file_, "the new key file (0600; never overwritten)")->required();
    witness_key_create_->add_option("--name", witness_name_, "the witness name (witness.example.com/w1)")->required();
    witness_key_show_ = witness_key_->add_subcommand("show", "print the verifier key of a witness key");
    witness_key_show_->add_option("FILE", key_file_, "the key file")->required();
  }

  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions& global) override {
    if (witness_->parsed()) return RunWitness();
    if (witness_key_->parsed()) return RunWitnessKey();
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
    if (prove_->parsed()) return RunProve();
    if (consistency_->parsed()) return RunConsistency();
    if (tiles_->parsed()) return RunTiles();
    return RunCheckpoint();
  }

 private:
  int RunVerify() {
    auto report = audit::Verify({dir_, verifier_key_, checkpoint_, witness_keys_, witnesses_required_, threads_});
    if (!report) return Complain(report.error());
    if (json_) {
      nlohmann::json out = {{"ok", !report->failure}, {"entries", report->entries}, {"head", report->head},
                            {"root", report->root}, {"bytes", report->bytes}, {"checkpoints", report->checkpoints},
                            {"witnesses", report->witnesses},
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
    std::cerr << "  Merkle root " << report->root << "\n";
    if (!witness_keys_.empty()) std::cerr << "  " << report->witnesses << " witness cosignature(s) verified\n";
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
    if (latest_) {
      auto note = audit::LatestCheckpoint(dir_);
      if (!note) return Complain(note.error());
      std::cout << *note;
      return kExitOk;
    }
    auto log = audit::AuditLog::Open(audit::Options{.dir = dir_});
    if (!log) return Complain(log.error());
    auto note = (*log)->Checkpoint();
    if (!note) return Complain(note.error());
    std::cout << *note;
    return kExitOk;
  }

  int RunProve() {
    auto p = audit::ProveInclusion(dir_, seq_, size_);
    if (!p) return Complain(p.error());
    if (json_) {
      std::cout << nlohmann::json{{"index", p->index}, {"size", p->size}, {"root", p->root}, {"proof", p->proof}}.dump()
                << "\n";
      return kExitOk;
    }
    std::cout << "entry " << p->index << " in the tree of size " << p->size << "\nroot " << p->root << "\nleaf "
              << p->leaf << "\n";
    for (const auto& h : p->proof) std::cout << "proof " << h << "\n";
    return kExitOk;
  }

  int RunConsistency() {
    auto p = audit::ProveConsistency(dir_, old_size_, size_);
    if (!p) return Complain(p.error());
    if (json_) {
      std::cout << nlohmann::json{{"old_size", p->old_size}, {"new_size", p->new_size}, {"old_root", p->old_root},
                                  {"new_root", p->new_root}, {"proof", p->proof}}.dump()
                << "\n";
      return kExitOk;
    }
    std::cout << "size " << p->old_size << " root " << p->old_root << "\nsize " << p->new_size << " root "
              << p->new_root << "\n";
    for (const auto& h : p->proof) std::cout << "proof " << h << "\n";
    return kExitOk;
  }

  int RunTiles() {
    auto r = audit::ExportTiles(dir_, out_dir_);
    if (!r) return Complain(r.error());
    std::cout << "tree size " << r->size << ": " << r->tiles << " hash tile(s), " << r->bundles
              << " entry bundle(s) and the checkpoint written to " << out_dir_ << "\n";
    return kExitOk;
  }

  int RunWitness() {
    auto note = ReadFileLimited(checkpoint_in_, 64 * 1024);
    if (!note) return Complain(note.error());
    witness_opts_.checkpoint = *note;
    if (proof_file_) {
      auto proof = ReadFileLimited(*proof_file_, 1 << 20);
      if (!proof) return Complain(proof.error());
      witness_opts_.proof = *proof;
    }
    auto r = audit::Witness(witness_opts_);
    if (!r) return Complain(r.error());
    if (r->refused) {
      std::cerr << "REFUSED (" << audit::WitnessRefusalName(*r->refused) << "): " << r->message << "\n";
      return kExitFailure;
    }
    std::cout << r->cosignature;
    std::cerr << "witness: " << r->message << "\n";
    return kExitOk;
  }

  int RunWitnessKey() {
    auto vkey = witness_key_create_->parsed() ? audit::CreateWitnessKey(key_file_, witness_name_)
                                              : audit::WitnessVerifierKey(key_file_);
    if (!vkey) return Complain(vkey.error());
    std::cout << *vkey << "\n";
    return kExitOk;
  }

  CLI::App* sub_ = nullptr;
  CLI::App* verify_ = nullptr;
  CLI::App* show_ = nullptr;
  CLI::App* checkpoint_cmd_ = nullptr;
  CLI::App* prove_ = nullptr;
  CLI::App* consistency_ = nullptr;
  CLI::App* tiles_ = nullptr;
  CLI::App* witness_ = nullptr;
  CLI::App* witness_key_ = nullptr;
  CLI::App* witness_key_create_ = nullptr;
  CLI::App* witness_key_show_ = nullptr;
  bool latest_ = false;
  std::uint64_t seq_ = 0;
  std::uint64_t old_size_ = 0;
  std::optional<std::uint64_t> size_;
  std::string out_dir_;
  audit::WitnessOptions witness_opts_;
  std::optional<std::string> proof_file_;
  std::string checkpoint_in_;
  std::string key_file_;
  std::string witness_name_;
  std::vector<std::string> witness_keys_;
  std::uint64_t witnesses_required_ = 0;
  unsigned threads_ = 0;
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
