// cordon: the command-line front end. Subcommands live in *_command.cc.
#include <cstdio>
#include <iostream>
#include <memory>
#include <vector>

#include "commands.h"

int main(int argc, char** argv) {
  using namespace cordon::cli;
  CLI::App app{"cordon — train models on sealed PII data inside a sandbox", "cordon"};
  app.set_version_flag("--version", "cordon " CORDON_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  GlobalOptions global;
  app.add_option("--config", global.config,
                 "config file (default: $CORDON_CONFIG, else /etc/cordon/cordon.yaml)");
  app.footer(
      "Exit status: 0 success, 1 the operation failed, 2 usage error or invalid input.\n"
      "Run `cordon COMMAND --help` for a command's options.");

  // In this order in `cordon --help`.
  std::vector<std::unique_ptr<Command>> commands;
  for (auto* make : {MakeValidateCommand, MakeInitCommand, MakeKeysCommand, MakeSealCommand, MakeUnsealCommand,
                     MakeRewrapCommand, MakeInspectCommand, MakeAuditCommand, MakeRunCommand, MakeOutputsCommand,
                     MakeImagesCommand, MakeDatasetsCommand}) {
    commands.push_back(make(app));
  }
  for (auto& command : MakeIncidentCommands(app)) commands.push_back(std::move(command));
  for (const char* op : {"submit", "status", "list", "cancel", "wait", "logs"}) {
    commands.push_back(MakeDaemonClientCommand(app, op));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? cordon::kExitOk : cordon::kExitInvalid;
  }
  for (const auto& command : commands) {
    if (command->sub()->parsed()) return command->Run(global);
  }
  return cordon::kExitInvalid;
}
