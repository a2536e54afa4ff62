// cordon-sandbox: runs a command in exactly the sandbox a Cordon job gets.
//   cordon-sandbox --image DIR | --rootfs DIR [--scratch SIZE] [--memory SIZE] [--pids N] [--cpus F]
//                  [--timeout DUR] [--result FILE] [--uid N --gid N] [--env K=V]...
//                  [--cgroup-parent PATH] [--allow-swap] -- CMD ARGS...
//   cordon-sandbox --probe
// Exit status: the command's own, 128+signal, 125 on a sandbox set-up failure (the message names
// the step), 126/127 when CMD cannot be executed / is not found (like env(1)).
#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "cordon/file_io.h"
#include "cordon/sandbox/sandbox.h"
#include "cordon/units.h"

namespace {

struct Flags {
  std::string cgroup_parent;
  std::string image, rootfs, scratch = "1Gi", memory = "2Gi", timeout = "1h", result;
  std::uint64_t pids = 256;
  double cpus = 0;
  uid_t uid = 65534;
  gid_t gid = 65534;
  bool probe = false, allow_swap = false;
  std::vector<std::string> env, command;
};

void OnSignal(int) { cordon::sandbox::RequestStop(); }

cordon::Result<cordon::sandbox::Policy> ToPolicy(const Flags& f) {
  cordon::sandbox::Policy p;
  p.image_dir = f.image;
  p.rootfs_dir = f.rootfs;
  p.argv = f.command;
  p.uid = f.uid;
  p.gid = f.gid;
  p.pids = f.pids;
  p.cpus = f.cpus;
  p.allow_swap = f.allow_swap;
  p.cgroup_parent = f.cgroup_parent;
  auto scratch = cordon::ParseSize(f.scratch);
  if (!scratch) return std::unexpected(cordon::WithContext(scratch.error(), "--scratch"));
  p.scratch_bytes = *scratch;
  auto memory = cordon::ParseSize(f.memory);
  if (!memory) return std::unexpected(cordon::WithContext(memory.error(), "--memory"));
  p.memory_bytes = *memory;
  auto timeout = cordon::ParseDuration(f.timeout);
  if (!timeout) return std::unexpected(cordon::WithContext(timeout.error(), "--timeout"));
  p.timeout = *timeout;
  for (const auto& kv : f.env) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return cordon::Fail(cordon::Errc::kInvalidArgument, "--env expects K=V: '" + kv + "'");
    }
    p.env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return p;
}

int RunSandbox(const Flags& f) {
  auto policy = ToPolicy(f);
  if (!policy) {
    std::cerr << "cordon-sandbox: " << policy.error().message << "\n";
    return 125;
  }
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) signal(sig, OnSignal);
  auto result = cordon::sandbox::Run(*policy);
  if (!result) {
    std::cerr << "cordon-sandbox: policy: " << result.error().message << "\n";
    return 125;
  }
  if (result->outcome == cordon::sandbox::Outcome::kSetupError) {
    std::cerr << "cordon-sandbox: set-up failed at " << result->reason << "\n";
  }
  if (!f.result.empty()) {
    if (auto st = cordon::WriteFileAtomic(f.result, result->ToJson(), 0600); !st) {
      std::cerr << "cordon-sandbox: --result: " << st.error().message << "\n";
      return 125;
    }
  }
  return result->ShellStatus();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cordon-sandbox — run a command in the Cordon job sandbox", "cordon-sandbox"};
  app.set_version_flag("--version", "cordon-sandbox " CORDON_VERSION);
  Flags f;
  app.add_flag("--probe", f.probe, "print what this host supports and what the sandbox does about gaps");
  app.add_option("--image", f.image, "directory bound read-only at /job");
  app.add_option("--rootfs", f.rootfs, "directory whose entries make up / instead of the host's /usr, /lib*, /bin");
  app.add_option("--scratch", f.scratch, "size of the noswap tmpfs for /data, /out, /tmp (1Gi)");
  app.add_option("--memory", f.memory, "the trainer's memory; the cgroup limit is this plus the scratch (2Gi)");
  app.add_option("--pids", f.pids, "pids limit, cgroup (256)");
  app.add_option("--cpus", f.cpus, "CPU quota in CPUs (0 = none)");
  app.add_option("--timeout", f.timeout, "wall-clock timeout (1h)");
  app.add_option("--result", f.result, "write the result as JSON to FILE");
  app.add_option("--uid", f.uid, "trainer uid, never 0 (65534)");
  app.add_option("--gid", f.gid, "trainer gid, never 0 (65534)");
  app.add_option("--env", f.env, "K=V added to the trainer's environment (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--cgroup-parent", f.cgroup_parent, "cgroup v2 path to create the job cgroup under");
  app.add_flag("--allow-swap", f.allow_swap, "run on a kernel without tmpfs noswap while swap is active");
  app.add_option("command", f.command, "CMD ARGS... after --");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 125;
  }
  if (f.probe) {
    std::cout << cordon::sandbox::ProbeHost();
    return 0;
  }
  if ((f.image.empty() && f.rootfs.empty()) || f.command.empty()) {
    std::cerr << "cordon-sandbox: --image DIR (or --rootfs DIR) and -- CMD are required (or --probe)\n";
    return 125;
  }
  return RunSandbox(f);
}
