// cordon rewrap FILE [--key kms://ADAPTER/NAME]
#include <iostream>

#include "sealed_cli.h"

namespace cordon::cli {
namespace {

class RewrapCommand final : public Command {
 public:
  explicit RewrapCommand(CLI::App& app) {
    sub_ = app.add_subcommand("rewrap", "re-wrap a sealed file's data key (key rotation)");
    sub_->add_option("file", file_, "sealed file, replaced atomically")->required();
    sub_->add_option("--key", key_, "wrap under this key instead (default: the file's key)");
    sub_->footer(
        "Wraps the file's data key under the newest version of its key (or of --key). Only the\n"
        "header changes; chunks are copied byte for byte, never decrypted. The file is replaced\n"
        "atomically (temp + fsync + rename + fsync dir). The last line on stdout is the new\n"
        "sha256:<hex> of FILE.\n" +
        std::string(kSealedExitFooter));
  }

  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions& global) override {
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
};

}  // namespace

std::unique_ptr<Command> MakeRewrapCommand(CLI::App& app) { return std::make_unique<RewrapCommand>(app); }

}  // namespace cordon::cli
