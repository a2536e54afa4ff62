// Test helper: a real process appending to an audit log.
//   audit_append_helper DIR COUNT [THREADS] [JOB] [crash]
// COUNT 0 appends forever (the kill -9 test). With `crash`, the process
// kills itself with SIGKILL once its COUNT appends returned: no close, no
// checkpoint (what the log holds then is what a crash leaves). Each entry walks a job's
// timeline: accepted -> inputs verified -> keys unwrapped -> sandbox started
// -> trainer exited -> outputs sealed -> finished. Exit 0 when done.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "cordon/audit/audit.h"

namespace {
const char* kTimeline[] = {"job.accepted",   "job.inputs_verified", "key.unwrapped", "sandbox.started",
                           "trainer.exited", "outputs.sealed",      "job.finished"};
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s DIR COUNT [THREADS] [JOB]\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const unsigned long count = std::strtoul(argv[2], nullptr, 10);
  const unsigned threads = argc > 3 ? static_cast<unsigned>(std::strtoul(argv[3], nullptr, 10)) : 1;
  const std::string job = argc > 4 ? argv[4] : "job-" + std::to_string(::getpid());
  const bool crash = argc > 5 && std::string(argv[5]) == "crash";
  auto log = cordon::audit::AuditLog::Open({.dir = dir, .checkpoint_every = 100});
  if (!log) {
    std::fprintf(stderr, "open: %s\n", log.error().message.c_str());
    return 1;
  }
  std::vector<std::thread> workers;
  std::vector<int> failed(threads, 0);
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (unsigned long i = 0; count == 0 || i < count; ++i) {
        cordon::audit::Event e;
        e.action = kTimeline[i % 7];
        e.job = job;
        e.details = {{"thread", t}, {"i", i}, {"dataset_ref", "ds-" + std::to_string(i % 3)}};
        if (auto seq = (*log)->Append(e); !seq) {
          std::fprintf(stderr, "append: %s\n", seq.error().message.c_str());
          failed[t] = 1;
          return;
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  for (int f : failed) {
    if (f) return 1;
  }
  if (crash) std::raise(SIGKILL);
  return (*log)->Checkpoint() ? 0 : 1;
}
