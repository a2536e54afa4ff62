// cordond: the Cordon service (docs/DAEMON.md). One single-threaded Asio
// event loop takes submissions from the spool (inotify) and the control
// socket (line-delimited JSON, identity from SO_PEERCRED only), decides each
// against the access policy, persists every job's state crash-safely
// (job_store.h), and runs each job as a child process `cordon run --json
// --die-with-parent ...` (the runner forks with clone and must run in a
// single-threaded process; the child dies with the daemon, and start-up
// kills any survivor it recorded and marks the job `interrupted`).
#pragma once

#include <chrono>
#include <string>

#include "cordon/config/config.h"

namespace cordon::daemon {

struct DaemonOptions {
  orchestrator::Config config;
  std::string cordon_bin;                            // the `cordon` binary run for each job
  std::chrono::seconds grace{30};                    // SIGTERM: running jobs may finish this long
  std::chrono::milliseconds request_timeout{10000};  // a client must send its request line in time
  std::chrono::seconds log_reader_timeout{30};       // a `cordon logs` client that reads nothing this long is cut off
  std::string cgroup_parent;                         // cgroup v2 delegated: where job cgroups go ("" = sandbox picks)
};

// Runs the service until SIGTERM/SIGINT; returns the process exit status
// (0 clean stop, 1 could not start).
[[nodiscard]] int Run(const DaemonOptions& options);

}  // namespace cordon::daemon
