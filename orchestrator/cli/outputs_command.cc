// cordon outputs extract JOB_DIR DEST_DIR [--json] (runner::ExtractOutputs, audited).
// Neither the audit log nor this command's output carries a restored path: only
// counts, the job id and hashes.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cordon/runner/outputs.h"
#include "sealed_cli.h"

namespace cordon::cli {
namespace {

using nlohmann::json;

class OutputsCommand final : public Command {
 public:
  explicit OutputsCommand(CLI::App& app) {
    sub_ = app.add_subcommand("outputs", "work with a finished job's sealed outputs");
    sub_->require_subcommand(1);
    extract_ = sub_->add_subcommand("extract", "unseal a job's outputs into a fresh directory tree");
    extract_->add_option("job_dir", job_dir_, "the job directory (<output.path>/<job id>)")->required();
    extract_->add_option("dest_dir", dest_, "directory to create and fill (must not exist)")->required();
    extract_->add_flag("--json", json_, "print one JSON object: job, files, bytes, refused, dest");
    extract_->footer(
        "Restores each output at DEST_DIR/<the relative path the trainer gave it>, from the\n"
        "sealed index. Outputs the job refused are counted, not restored. Audited as\n"
        "outputs.extracted (write-ahead; only counts and the job id are recorded).\n" +
        SealedExitFooter());
  }

  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions& global) override {
    auto kms = KeyManagersFromConfig(global, "outputs extract");
    if (!kms) return kExitInvalid;
    auto audited = AuditedOperation::Begin(global, "outputs extract", "outputs.extracted",
                                           {{"job_dir", job_dir_}, {"dest", dest_}});
    if (!audited) return kExitFailure;
    auto done = runner::ExtractOutputs(job_dir_, dest_, *kms);
    if (!done) {
      audited->Done({{"job_dir", job_dir_}, {"dest", dest_}}, &done.error());
      return ReportError("outputs extract", done.error());
    }
    const json summary = {{"job", done->job}, {"files", done->files}, {"bytes", done->bytes},
                          {"refused", done->refused}, {"superseded", done->superseded},
                          {"live_index", done->live_index}, {"dest", dest_}};
    audited->Done(summary, nullptr);
    if (json_) std::cout << summary.dump(2) << "\n";
    else std::cerr << "extracted " << done->files << " file(s), " << done->bytes << " bytes, of job " << done->job
                   << " into " << dest_ << (done->refused ? " (" + std::to_string(done->refused) + " refused by the job)" : "")
                   << (done->live_index ? " from the live index (the job has not finished)" : "") << "\n";
    return kExitOk;
  }

 private:
  CLI::App* sub_ = nullptr;
  CLI::App* extract_ = nullptr;
  std::string job_dir_, dest_;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Command> MakeOutputsCommand(CLI::App& app) { return std::make_unique<OutputsCommand>(app); }

}  // namespace cordon::cli
