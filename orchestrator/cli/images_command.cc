// cordon images prune: the OCI image cache (<state_dir>/images, docs/TRAINERS.md) grows with
// every new manifest digest a job runs; this removes the entries no job has used for a while.
#include <iostream>

#include "cordon/images/oci_image.h"
#include "cordon/units.h"
#include "incident_cli.h"
#include "sealed_cli.h"

namespace cordon::cli {
namespace {

class ImagesCommand final : public Command {
 public:
  explicit ImagesCommand(CLI::App& app) {
    sub_ = app.add_subcommand("images", "the unpacked OCI image cache");
    sub_->require_subcommand(1);
    prune_ = sub_->add_subcommand("prune", "remove cache entries no running job holds and none used recently");
    prune_->add_option("--older-than", older_than_, "last used longer ago than this (default 7d; 0 = any not in use)");
    prune_->add_flag("--dry-run", dry_run_, "list what would be removed, remove nothing");
    prune_->add_flag("--json", json_, "print one JSON object");
    prune_->footer(
        "An entry a job is using (it holds the entry's lock for the job's lifetime) is never removed.\n"
        "Needs root (the cache is root's). Audited as images.pruned.\n"
        "Exit status: 0 done, 1 the cache could not be read or an entry removed, 2 usage error.");
  }

  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions& global) override {
    auto age = older_than_ == "0" ? Result<std::chrono::milliseconds>(0) : ParseDuration(older_than_);
    if (!age) return ReportError("images prune", WithContext(age.error(), "--older-than"));
    Opened opened = OpenIncidentContext(global, "images prune", std::nullopt, /*needs_registry=*/false);
    if (!opened.context) {
      if (opened.forward) std::cerr << "cordon images prune: needs root (the image cache is root's)\n";
      return opened.forward ? kExitDenied : opened.exit_status;
    }
    IncidentContext& ctx = *opened.context;
    const std::int64_t seconds = std::chrono::duration_cast<std::chrono::seconds>(*age).count();
    nlohmann::json details = {{"older_than_s", seconds}, {"dry_run", dry_run_}};
    auto intent = ctx.Begin("images.pruned", details);
    if (!intent) return kExitFailure;
    auto report = images::PruneCache(ctx.config.state_dir + "/images", seconds, dry_run_);
    if (!report) {
      details["error"] = report.error().message;
      ctx.Done(intent, false, details);
      return ReportError("images prune", report.error());
    }
    std::uint64_t bytes = 0;
    nlohmann::json removed = nlohmann::json::array();
    for (const auto& e : report->removed) {
      bytes += e.bytes;
      removed.push_back({{"digest", e.digest}, {"bytes", e.bytes}, {"last_used", Iso8601Utc(e.last_used)}});
    }
    details.update({{"removed", removed.size()}, {"bytes", bytes}, {"in_use", report->in_use},
                    {"recent", report->recent}});
    ctx.Done(intent, true, details);
    if (json_) {
      std::cout << nlohmann::json{{"removed", removed}, {"bytes", bytes}, {"in_use", report->in_use},
                                  {"recent", report->recent}, {"dry_run", dry_run_}}
                       .dump(2)
                << "\n";
      return kExitOk;
    }
    for (const auto& e : report->removed) {
      std::cout << (dry_run_ ? "would remove " : "removed ") << e.digest << "  " << e.bytes << " bytes, last used "
                << Iso8601Utc(e.last_used) << "\n";
    }
    std::cerr << "cordon images prune: " << (dry_run_ ? "would remove " : "removed ") << report->removed.size()
              << " entr" << (report->removed.size() == 1 ? "y" : "ies") << " (" << bytes << " bytes); kept "
              << report->in_use << " in use, " << report->recent << " used recently\n";
    return kExitOk;
  }

 private:
  CLI::App* sub_ = nullptr;
  CLI::App* prune_ = nullptr;
  std::string older_than_ = "7d";
  bool dry_run_ = false;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Command> MakeImagesCommand(CLI::App& app) { return std::make_unique<ImagesCommand>(app); }

}  // namespace cordon::cli
