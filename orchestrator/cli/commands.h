// The `cordon` CLI: one function pair per subcommand. Register adds the
// subcommand and its flags to the app; Run executes it after parsing and
// returns the process exit status (cordon/exit_codes.h, docs/CLI.md).
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cordon/exit_codes.h"

namespace cordon::cli {

struct GlobalOptions {
  std::optional<std::string> config;  // --config FILE (else $CORDON_CONFIG, else default)
};

class Command {
 public:
  virtual ~Command() = default;
  [[nodiscard]] virtual CLI::App* sub() const = 0;
  [[nodiscard]] virtual int Run(const GlobalOptions& global) = 0;
};

std::unique_ptr<Command> MakeValidateCommand(CLI::App& app);
std::unique_ptr<Command> MakeInitCommand(CLI::App& app);
// Keys and sealed files (sealed_cli.h: shared set-up; exit_codes.h: their statuses).
std::unique_ptr<Command> MakeKeysCommand(CLI::App& app);
std::unique_ptr<Command> MakeSealCommand(CLI::App& app);
std::unique_ptr<Command> MakeUnsealCommand(CLI::App& app);
std::unique_ptr<Command> MakeRewrapCommand(CLI::App& app);
std::unique_ptr<Command> MakeInspectCommand(CLI::App& app);
std::unique_ptr<Command> MakeAuditCommand(CLI::App& app);
std::unique_ptr<Command> MakeRunCommand(CLI::App& app);
std::unique_ptr<Command> MakeOutputsCommand(CLI::App& app);  // outputs extract
std::unique_ptr<Command> MakeImagesCommand(CLI::App& app);   // images prune
// The dataset registry and incident response (incident_cli.h): datasets; quarantine,
// release, restore, halt, incident report.
std::unique_ptr<Command> MakeDatasetsCommand(CLI::App& app);
std::vector<std::unique_ptr<Command>> MakeIncidentCommands(CLI::App& app);
// cordond's clients: op is submit, status, list, cancel, wait or logs.
std::unique_ptr<Command> MakeDaemonClientCommand(CLI::App& app, const std::string& op);

}  // namespace cordon::cli
