// cordon seal --key kms://ADAPTER/NAME --name DATASET [--chunk-size SIZE] IN OUT
#include <iostream>

#include "cordon/units.h"
#include "incident_cli.h"
#include "sealed_cli.h"

namespace cordon::cli {
namespace {

class SealCommand final : public Command {
 public:
  explicit SealCommand(CLI::App& app) {
    sub_ = app.add_subcommand("seal", "encrypt a file into a sealed file (envelope encryption)");
    sub_->add_option("--key", key_, "KMS key that wraps the data key: kms://ADAPTER/NAME")->required();
    sub_->add_option("--name", dataset_, "dataset name bound into the file")->required();
    sub_->add_option("--chunk-size", chunk_, "plaintext bytes per chunk (default 1Mi; 16 to 64Mi)");
    sub_->add_option("in", in_, "plaintext file, or - for stdin")->required();
    sub_->add_option("out", out_, "sealed file to create (must not exist)")->required();
    sub_->add_flag("--no-register", no_register_, "do not record the version in the dataset registry");
    sub_->footer(
        "OUT appears only when complete. The last line on stdout is sha256:<hex> of OUT,\n"
        "the pin a job spec uses. Progress is shown when stderr is a terminal.\n"
        "As root the new version is recorded in the dataset registry (`cordon datasets`): who,\n"
        "when, row count, column summaries and a keyed content digest, from one pass over OUT.\n"
        "If the registry cannot record it, OUT is removed again and the exit status is 1.\n" +
        SealedExitFooter());
  }

  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions& global) override {
    auto key = ParseKeyRef(key_);
    if (!key) return ReportError("seal", key.error());
    sealed::SealOptions options{*key, dataset_, "", sealed::kDefaultChunkBytes, {}};
    if (!chunk_.empty()) {
      auto size = ParseSize(chunk_);
      if (!size || *size < sealed::kMinChunkBytes || *size > sealed::kMaxChunkBytes) {
        std::cerr << "cordon seal: --chunk-size must be a size from 16 to 64Mi\n";
        return kExitInvalid;
      }
      options.chunk_bytes = static_cast<std::uint32_t>(*size);
    }
    if (auto ok = sealed::CheckDatasetName(dataset_); !ok) return ReportError("seal", ok.error());
    auto kms = KeyManagersFromConfig(global, "seal");
    if (!kms) return kExitInvalid;
    auto audited = AuditedOperation::Begin(global, "seal", "dataset.sealed",
                                           {{"key", key_}, {"dataset", dataset_}, {"in", in_}, {"out", out_}});
    if (!audited) return kExitFailure;
    ProgressLine progress("sealing");
    options.progress = progress.callback();
    auto report = sealed::SealFile(in_, out_, *kms, options);
    progress.Finish();
    if (!report) {
      audited->Done({{"key", key_}, {"dataset", dataset_}, {"out", out_}}, &report.error());
      return ReportError("seal", report.error());
    }
    audited->Done(ReportJson("seal", *report), nullptr);
    std::cerr << "sealed " << report->plaintext_bytes << " bytes of '" << report->dataset << "' under "
              << report->key.ToString() << " v" << report->kek_version << " into " << out_ << "\n";
    // All or nothing: a version the registry cannot record is removed again (RegisterSealed).
    if (!no_register_ && !RegisterSealed(global, out_, *report)) return kExitFailure;
    std::cout << report->sha256 << "\n";
    return kExitOk;
  }

 private:
  CLI::App* sub_ = nullptr;
  std::string key_, dataset_, chunk_, in_, out_;
  bool no_register_ = false;
};

}  // namespace

std::unique_ptr<Command> MakeSealCommand(CLI::App& app) { return std::make_unique<SealCommand>(app); }

}  // namespace cordon::cli
