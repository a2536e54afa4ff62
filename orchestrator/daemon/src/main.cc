// cordond: the Cordon service (docs/DAEMON.md).
#include <limits.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <optional>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "cordon/config/config.h"
#include "cgroup_delegation.h"
#include "cordon/daemon/daemon.h"
#include "cordon/policy/policy.h"
#include "cordon/units.h"

namespace {

// The `cordon` binary beside ours (installed together), unless --cordon says otherwise.
std::string DefaultCordonBin() {
  char self[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "/usr/local/bin/cordon";
  self[n] = '\0';
  return (std::filesystem::path(self).parent_path() / "cordon").string();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cordond — the Cordon job service", "cordond"};
  app.set_version_flag("--version", "cordond " CORDON_VERSION);
  std::optional<std::string> config_flag;
  std::string cordon_bin = DefaultCordonBin(), grace = "30s", request_timeout = "10s", log_reader_timeout = "30s";
  app.add_option("--config", config_flag,
                 "config file (default: $CORDON_CONFIG, else /etc/cordon/cordon.yaml)");
  app.add_option("--cordon", cordon_bin, "the cordon binary that runs each job (default: beside cordond)");
  app.add_option("--grace", grace, "on SIGTERM, how long running jobs may finish before they are cancelled (30s)");
  app.add_option("--request-timeout", request_timeout, "a client must send its request within this (10s)");
  app.add_option("--log-reader-timeout", log_reader_timeout,
                 "a `cordon logs` client that reads nothing for this long is cut off (30s)");
  bool delegated = false;
  app.add_flag("--delegated-cgroup", delegated,
               "cgroup v2 under systemd's Delegate=yes: move into a `supervisor` leaf of our cgroup and create "
               "every job's cgroup inside it (the shipped unit passes this)");
  bool check_only = false;
  app.add_flag("--check-config", check_only, "validate the config and the policy, then exit (0 valid, 2 not)");
  app.footer("Exit status: 0 stopped cleanly, 1 could not start, 2 invalid config or flags.\n"
             "Access policy: policy.yaml beside the config. Signals: SIGTERM stops, SIGHUP reloads.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  spdlog::set_default_logger(spdlog::stderr_logger_st("cordond"));
  // journald adds its own timestamps; keep the level so it can map priorities.
  spdlog::set_pattern(::isatty(2) ? "%H:%M:%S.%e cordond %l: %v" : "%l: %v");
  ::prctl(PR_SET_DUMPABLE, 0);
  const rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);

  const std::string path = cordon::orchestrator::ResolveConfigPath(config_flag);
  auto config = cordon::orchestrator::LoadConfig(path);
  if (!config) {
    std::cerr << "cordond: " << config.error().message << "\n";
    return 2;
  }
  if (check_only) {
    const std::string policy_path = cordon::policy::PolicyPathFor(config->path);
    auto policy = cordon::policy::LoadPolicy(policy_path);
    if (!policy) {
      std::cerr << "cordond: " << policy.error().message << "\n";
      return 2;
    }
    std::cerr << "cordond: configuration " << config->path << " is valid; policy " << policy_path << " is valid\n";
    return 0;
  }
  cordon::daemon::DaemonOptions options;
  options.config = *config;
  options.cordon_bin = cordon_bin;
  auto g = cordon::ParseDuration(grace);
  auto t = cordon::ParseDuration(request_timeout);
  auto l = cordon::ParseDuration(log_reader_timeout);
  if (!g || !t || !l) {
    std::cerr << "cordond: --grace/--request-timeout/--log-reader-timeout: "
              << (!g ? g.error().message : !t ? t.error().message : l.error().message) << "\n";
    return 2;
  }
  options.log_reader_timeout = std::max(std::chrono::seconds(1), std::chrono::duration_cast<std::chrono::seconds>(*l));
  options.grace = std::chrono::duration_cast<std::chrono::seconds>(*g);
  options.request_timeout = *t;
  if (delegated) {  // before any thread or child exists
    auto cg = cordon::daemon::SetUpCgroupDelegation();
    if (!cg) {
      spdlog::error("cannot start: cgroup delegation: {}", cg.error().message);
      return 1;
    }
    if (cg->mode == cordon::daemon::CgroupDelegation::Mode::kV2Delegated) {
      spdlog::info("cgroup v2: cordond runs in {}, jobs are created in {}", cg->supervisor, cg->job_parent);
      options.cgroup_parent = cg->job_parent;
    } else {
      spdlog::info("cgroup: not delegated ({}); the sandbox picks each job's cgroup", cg->reason);
    }
  }
  return cordon::daemon::Run(options);
}
