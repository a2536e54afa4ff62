// cordon rewrap FILE [--key kms://ADAPTER/NAME]
#include <iostream>

#include "incident_cli.h"
#include "sealed_cli.h"

namespace cordon::cli {
namespace {

class RewrapCommand final : public Command {
 public:
  explicit RewrapCommand(CLI::App& app) {
    sub_ = app.add_subcommand("rewrap", "re-wrap a sealed file's data key (key rotation)");
    sub_->add_option("file", file_, "sealed file, replaced atomically");
    sub_->add_option("--key", key_, "wrap under this key instead (default: the file's key); with --all: the key rotated");
    sub_->add_flag("--all", all_, "every sealed file under an older version of --key: the registry's and --dir's "
                                  "(resumable; progress on stderr)");
    sub_->add_option("--dir", dirs_, "with --all: also every sealed file under DIR (repeatable)");
    sub_->add_flag("--json", json_, "with --all: print the summary as JSON");
    sub_->add_option("--batch", batch_, "with --all: files made durable together (default 256; 1 to 65536)")
        ->check(CLI::Range(1, 65536));
    AddCallerOption(sub_, caller_uid_);
    sub_->footer(
        "Wraps the file's data key under the newest version of its key (or of --key). Only the\n"
        "header changes; chunks are copied byte for byte, never decrypted. The file is replaced\n"
        "atomically (temp + fsync + rename + fsync dir). The last line on stdout is the new\n"
        "sha256:<hex> of FILE.\n"
        "--all works in batches of --batch files: each file's rewrapped copy is written beside it,\n"
        "then one syncfs, the renames and one fsync per directory make the batch durable; a crash\n"
        "leaves every file as it was or rewrapped, and a rerun resumes.\n" +
        SealedExitFooter());
  }

  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions& global) override {
    if (all_ != file_.empty() || (all_ && key_.empty())) {
      std::cerr << "cordon rewrap: give FILE, or --all --key kms://ADAPTER/NAME\n";
      return kExitInvalid;
    }
    if (all_) return RewrapAll(global, key_, dirs_, json_, caller_uid_, batch_);
    std::optional<KeyRef> target;
    if (!key_.empty()) {
      auto key = ParseKeyRef(key_);
      if (!key) return ReportError("rewrap", key.error());
      target = *key;
    }
    auto kms = KeyManagersFromConfig(global, "rewrap");
    if (!kms) return kExitInvalid;
    auto audited = AuditedOperation::Begin(global, "rewrap", "dataset.rewrapped",
                                           {{"file", file_}, {"key", target ? target->ToString() : "(same key)"}});
    if (!audited) return kExitFailure;
    auto report = sealed::RewrapFile(file_, *kms, target);
    if (!report) {
      audited->Done({{"file", file_}}, &report.error());
      return ReportError("rewrap", report.error());
    }
    audited->Done(ReportJson("rewrap", *report), nullptr);
    std::cerr << "rewrapped " << file_ << ": " << report->previous_key->ToString() << " v"
              << report->previous_kek_version << " -> " << report->key.ToString() << " v" << report->kek_version
              << "\n";
    std::cout << report->sha256 << "\n";
    return kExitOk;
  }

 private:
  CLI::App* sub_ = nullptr;
  std::string file_, key_;
  bool all_ = false, json_ = false;
  std::vector<std::string> dirs_;
  std::size_t batch_ = 256;
  std::optional<uid_t> caller_uid_;
};

}  // namespace

std::unique_ptr<Command> MakeRewrapCommand(CLI::App& app) { return std::make_unique<RewrapCommand>(app); }

}  // namespace cordon::cli
