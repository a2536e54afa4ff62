// cordon init DIR
#include <iostream>

#include "commands.h"
#include "cordon/config/install.h"

namespace cordon::cli {
namespace {

class InitCommand final : public Command {
 public:
  explicit InitCommand(CLI::App& app) {
    sub_ = app.add_subcommand("init", "create a self-contained Cordon installation under DIR");
    sub_->add_option("dir", dir_, "installation root (created if missing)")->required();
    sub_->footer(
        "Creates DIR/cordon.yaml and the keyring, state, spool, audit and runtime directories\n"
        "with tight modes. Existing files and directories are never overwritten: a second run\n"
        "says what it left as is. The last line on stdout is the config path; use it with\n"
        "--config or CORDON_CONFIG.");
  }

  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions&) override {
    auto report = orchestrator::InitInstallation(dir_);
    if (!report) {
      std::cerr << "cordon: " << report.error().message << "\n";
      return report.error().code == Errc::kInvalidArgument ? kExitInvalid : kExitFailure;
    }
    bool created_any = false;
    for (const auto& item : report->items) {
      created_any = created_any || item.created;
      std::cerr << (item.created ? "created  " : "exists   ") << item.path << "  (" << item.description
                << (item.created ? ")" : ", left as is)") << "\n";
    }
    if (!created_any) std::cerr << "cordon init: everything was already in place; nothing changed\n";
    std::cout << report->config.path << "\n";
    return kExitOk;
  }

 private:
  CLI::App* sub_ = nullptr;
  std::string dir_;
};

}  // namespace

std::unique_ptr<Command> MakeInitCommand(CLI::App& app) { return std::make_unique<InitCommand>(app); }

}  // namespace cordon::cli
