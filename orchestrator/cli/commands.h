// The `cordon` CLI: one function pair per subcommand. Register adds the
// subcommand and its flags to the app; Run executes it after parsing and
// returns the process exit status (see kExit* below and docs/CLI.md).
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

namespace cordon::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the operation was attempted and failed
inline constexpr int kExitInvalid = 2;  // bad usage or invalid input (spec, config, flags)

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
// Keys and sealed files (sealed_cli.h has their exit statuses).
std::unique_ptr<Command> MakeKeysCommand(CLI::App& app);
std::unique_ptr<Command> MakeSealCommand(CLI::App& app);
std::unique_ptr<Command> MakeUnsealCommand(CLI::App& app);
std::unique_ptr<Command> MakeRewrapCommand(CLI::App& app);
std::unique_ptr<Command> MakeInspectCommand(CLI::App& app);
std::unique_ptr<Command> MakeAuditCommand(CLI::App& app);
std::unique_ptr<Command> MakeRunCommand(CLI::App& app);
std::unique_ptr<Command> MakeOutputsCommand(CLI::App& app);  // outputs extract
// cordond's clients: op is submit, status, list, cancel, wait or logs.
std::unique_ptr<Command> MakeDaemonClientCommand(CLI::App& app, const std::string& op);

}  // namespace cordon::cli
