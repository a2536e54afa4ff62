// cordon unseal [--force] IN OUT
#include <iostream>

#include "sealed_cli.h"

namespace cordon::cli {
namespace {

class UnsealCommand final : public Command {
 public:
  explicit UnsealCommand(CLI::App& app) {
    sub_ = app.add_subcommand("unseal", "verify and decrypt a sealed file");
    sub_->add_option("in", in_, "sealed file")->required();
    sub_->add_option("out", out_, "plaintext file to create, or - for stdout")->required();
    sub_->add_flag("--force", force_, "replace OUT if it exists");
    sub_->footer(
        "OUT appears (atomically, mode 0600) only after every chunk verified; on any failure\n"
        "nothing is left behind. With OUT = - the whole file is verified first and nothing is\n"
        "written; then each chunk is decrypted again and verified before it is written, so a\n"
        "corrupt file writes nothing (only a file changed during the run can stop the output\n"
        "after a verified prefix, with a non-zero exit).\n" +
        SealedExitFooter());
  }

  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions& global) override {
    auto kms = KeyManagersFromConfig(global, "unseal");
    if (!kms) return kExitInvalid;
    auto audited = AuditedOperation::Begin(global, "unseal", "dataset.unsealed", {{"in", in_}, {"out", out_}});
    if (!audited) return kExitFailure;
    ProgressLine progress(out_ == "-" ? "verifying" : "unsealing");
    auto report = sealed::UnsealFile(in_, out_, *kms, force_ ? sealed::Replace::kReplace : sealed::Replace::kRefuse,
                                     progress.callback());
    progress.Finish();
    if (!report) {
      audited->Done({{"in", in_}, {"out", out_}}, &report.error());
      return ReportError("unseal", report.error());
    }
    audited->Done(ReportJson("unseal", *report), nullptr);
    if (out_ != "-") {
      std::cerr << "unsealed " << report->plaintext_bytes << " bytes of '" << report->dataset << "' into "
                << out_ << "\n";
    }
    return kExitOk;
  }

 private:
  CLI::App* sub_ = nullptr;
  std::string in_, out_;
  bool force_ = false;
};

}  // namespace

std::unique_ptr<Command> MakeUnsealCommand(CLI::App& app) { return std::make_unique<UnsealCommand>(app); }

}  // namespace cordon::cli
