// cordond: the Cordon service. The daemon itself (spool, socket, queue, crash
// recovery) is the subject of its own issue; until it lands this binary
// checks its configuration and refuses to start, saying so.
#include <CLI/CLI.hpp>
#include <iostream>
#include <optional>

#include "cordon/orchestrator/config.h"

int main(int argc, char** argv) {
  CLI::App app{"cordond — the Cordon job service", "cordond"};
  app.set_version_flag("--version", "cordond " CORDON_VERSION);
  std::optional<std::string> config_flag;
  app.add_option("--config", config_flag,
                 "config file (default: $CORDON_CONFIG, else /etc/cordon/cordon.yaml)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  const std::string path = cordon::orchestrator::ResolveConfigPath(config_flag);
  auto config = cordon::orchestrator::LoadConfig(path);
  if (!config) {
    std::cerr << "cordond: " << config.error().message << "\n";
    return 2;
  }
  std::cerr << "cordond: configuration " << config->path << " is valid, but the daemon is not "
            << "implemented in this build; run jobs in the foreground with `cordon run`.\n";
  return 1;
}
