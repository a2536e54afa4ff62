// cordon validate [--json] FILE...
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "cordon/specs/spec.h"

namespace cordon::cli {
namespace {

class ValidateCommand final : public Command {
 public:
  explicit ValidateCommand(CLI::App& app) {
    sub_ = app.add_subcommand("validate", "check job-spec files against the cordon/v1 schema");
    sub_->add_option("files", files_, "spec files")->required();
    sub_->add_flag("--json", json_, "print each normalised spec (defaults filled in) as JSON");
    sub_->footer(
        "Prints `FILE: ok` per valid file. Errors go to stderr as FILE:LINE:COL: error: ...;\n"
        "every error in a file is reported. Exit status 0 when all files are valid, 2 otherwise.\n"
        "With --json one file prints one object; several print an array, in argument order.");
  }

  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions&) override {
    bool all_valid = true;
    nlohmann::json specs = nlohmann::json::array();
    for (const std::string& file : files_) {
      specs::ParseResult result = specs::LoadSpecFile(file);
      if (!result.job) {
        all_valid = false;
        for (const auto& diagnostic : result.diagnostics) {
          std::cerr << yaml::FormatDiagnostic(file, diagnostic) << "\n";
        }
        continue;
      }
      if (json_) specs.push_back(specs::ToJson(*result.job));
      else std::cout << file << ": ok\n";
    }
    if (json_ && !specs.empty()) {
      std::cout << (files_.size() == 1 ? specs.front() : specs).dump(2) << "\n";
    }
    return all_valid ? kExitOk : kExitInvalid;
  }

 private:
  CLI::App* sub_ = nullptr;
  std::vector<std::string> files_;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Command> MakeValidateCommand(CLI::App& app) {
  return std::make_unique<ValidateCommand>(app);
}

}  // namespace cordon::cli
