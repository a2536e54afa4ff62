// The caller's side: validate, build the seccomp program, create the job cgroup, clone the init,
// place it in the cgroup, wait for its report and turn everything into a RunResult.
#include "cordon/sandbox/sandbox.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "cgroup.h"
#include "cordon/file_io.h"
#include "cordon/unique_fd.h"
#include "init.h"
#include "report.h"
#include "seccomp_policy.h"

namespace cordon::sandbox {
namespace {

std::atomic<pid_t> g_init{0};
std::atomic<bool> g_stop_requested{false};

using Clock = std::chrono::steady_clock;

RunResult SetupError(std::string step, std::string message) {
  RunResult r;
  r.outcome = Outcome::kSetupError;
  r.failed_step = std::move(step);
  r.reason = r.failed_step + ": " + message;
  return r;
}

Status Validate(const Policy& p) {
  if (p.argv.empty()) return Fail(Errc::kInvalidArgument, "no command to run");
  struct stat st {};
  if (p.rootfs_fd >= 0) {
    if (fstat(p.rootfs_fd, &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Fail(Errc::kInvalidArgument, "rootfs_fd is not a directory");
    }
  } else if (!p.rootfs_dir.empty()) {
    if (p.rootfs_dir.front() != '/' || stat(p.rootfs_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Fail(Errc::kInvalidArgument, "rootfs is not an absolute path of a directory: '" + p.rootfs_dir + "'");
    }
  } else if (p.image_fd >= 0) {
    if (fstat(p.image_fd, &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Fail(Errc::kInvalidArgument, "image_fd is not a directory");
    }
  } else if (p.image_dir.empty() || p.image_dir.front() != '/') {
    return Fail(Errc::kInvalidArgument, "image dir must be an absolute path: '" + p.image_dir + "'");
  } else if (stat(p.image_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Fail(Errc::kNotFound, "image dir is not a directory: " + p.image_dir);
  }
  if (p.output_dir_fd >= 0 && (fstat(p.output_dir_fd, &st) != 0 || !S_ISDIR(st.st_mode))) {
    return Fail(Errc::kInvalidArgument, "output_dir_fd is not a directory");
  }
  if (p.uid == 0 || p.gid == 0) {
    return Fail(Errc::kPermissionDenied, "the trainer must not run as uid or gid 0");
  }
  if (p.scratch_bytes < 64 * 1024) return Fail(Errc::kInvalidArgument, "scratch size below 64Ki");
  if (p.timeout.count() <= 0) return Fail(Errc::kInvalidArgument, "timeout must be positive");
  if (p.cpus < 0) return Fail(Errc::kInvalidArgument, "cpus must not be negative");
  if (p.hostname.empty() || p.hostname.size() > 64) return Fail(Errc::kInvalidArgument, "bad hostname");
  if (p.stdout_fd < 0 || p.stderr_fd < 0) {
    return Fail(Errc::kInvalidArgument, "stdout_fd and stderr_fd must be open fds");
  }
  return {};
}

// tmpfs pages are charged to the memory cgroup of the process that writes them: the job's limit
// holds the trainer's memory and its scratch, so `memory` means the trainer's own.
std::uint64_t MemoryLimit(const Policy& p) { return p.memory_bytes == 0 ? 0 : p.memory_bytes + p.scratch_bytes; }

// Reads whole InitReport records; returns false on EOF without one.
bool ReadReport(int fd, InitReport& out) {
  char* p = reinterpret_cast<char*>(&out);
  std::size_t got = 0;
  while (got < sizeof(out)) {
    const ssize_t n = RetryEintr([&] { return read(fd, p + got, sizeof(out) - got); });
    if (n <= 0) return false;
    got += static_cast<std::size_t>(n);
  }
  return true;
}

struct InitWait {
  InitReport final_report;
  bool have_final = false;
  bool backstop_fired = false;
  int init_status = 0;
};

// Waits for the init's reports; kills it if it outlives the trainer timeout by 10 s.
InitWait WaitForInit(pid_t init, int report_fd, std::chrono::milliseconds timeout) {
  InitWait w;
  std::optional<Clock::time_point> deadline;
  for (;;) {
    int wait_ms = -1;
    if (deadline) {
      wait_ms = static_cast<int>(std::max<long long>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()).count()));
    }
    pollfd fd{report_fd, POLLIN, 0};
    const int n = poll(&fd, 1, wait_ms);
    if (n < 0 && errno == EINTR) continue;  // the wait is recomputed from the deadline
    if (n == 0) {
      w.backstop_fired = true;
      kill(init, SIGKILL);
      break;
    }
    InitReport r;
    if (!ReadReport(report_fd, r)) break;
    if (r.kind == ReportKind::kTrainerStarted) {
      deadline = Clock::now() + timeout + std::chrono::seconds(10);
      continue;
    }
    w.final_report = r;
    w.have_final = true;
  }
  (void)RetryEintr([&] { return waitpid(init, &w.init_status, __WALL); });
  return w;
}

}  // namespace

std::string DeniedSummary(const std::map<std::string, std::uint64_t>& counts) {
  std::vector<std::pair<std::string, std::uint64_t>> sorted(counts.begin(), counts.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string text = "denied:";
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    text += (i == 0 ? " " : ", ") + sorted[i].first + " \u00d7" + std::to_string(sorted[i].second);
  }
  return text;
}

namespace {

void ApplyTrainerStatus(RunResult& r, const InitReport& rep) {
  const int st = rep.wait_status;
  if (WIFEXITED(st)) {
    r.exit_code = WEXITSTATUS(st);
    r.outcome = Outcome::kOk;
  } else if (WIFSIGNALED(st)) {
    r.signal = WTERMSIG(st);
    r.outcome = Outcome::kSignaled;
    r.reason = std::string("trainer killed by signal ") + strsignal(r.signal);
  }
  if (r.signal == SIGSYS) {
    r.outcome = Outcome::kViolation;
    r.reason = "seccomp killed the trainer (a syscall from a non-native ABI)";
    ++r.seccomp_violations;
    ++r.violations_by_syscall["non-native-abi"];
  }
  if (rep.violations_total > 0) {
    r.outcome = Outcome::kViolation;
    r.reason = DeniedSummary(r.violations_by_syscall);
  }
  if (rep.timed_out) {
    r.outcome = Outcome::kTimeout;
    r.reason = "wall-clock timeout";
  }
}

RunResult Compose(const InitWait& w, const CgroupStats& stats, const char* cgroup_mode) {
  RunResult r;
  r.cgroup_mode = cgroup_mode;
  const InitReport& rep = w.final_report;
  r.peak_memory_bytes = stats.peak_memory_bytes;
  r.memory_limit_hit = stats.memory_limit_hit;
  r.pids_limit_hit = stats.pids_limit_hit;
  r.cpu_throttled = stats.cpu_throttled;
  if (!w.have_final) {
    r.outcome = w.backstop_fired ? Outcome::kTimeout : Outcome::kExternalKill;
    r.timeout_hit = w.backstop_fired;
    r.reason = w.backstop_fired ? "the init outlived the timeout and was killed"
                                : "the sandbox init was killed from outside";
    if (r.memory_limit_hit && !w.backstop_fired) {  // the OOM killer chose the init itself
      r.outcome = Outcome::kSignaled;
      r.signal = SIGKILL;
      r.reason = "memory limit hit (OOM kill of the sandbox init; whole job killed)";
    }
    return r;
  }
  r.seccomp_violations = rep.violations_total;
  r.probes = rep.probes_total;
  for (std::size_t i = 0; i < std::min<std::size_t>(rep.denial_kinds, std::size(rep.denials)); ++i) {
    const DenialCount& d = rep.denials[i];
    (d.probe ? r.probes_by_syscall : r.violations_by_syscall)[DenialName(d.nr, d.detail)] += d.count;
  }
  r.wall = std::chrono::milliseconds(rep.wall_ms);
  r.cpu_user = std::chrono::milliseconds(rep.cpu_user_ms);
  r.cpu_system = std::chrono::milliseconds(rep.cpu_system_ms);
  if (r.peak_memory_bytes == 0) r.peak_memory_bytes = static_cast<std::uint64_t>(rep.max_rss_kb) * 1024;
  r.timeout_hit = rep.timed_out != 0;
  r.max_rss_bytes = static_cast<std::uint64_t>(rep.max_rss_kb) * 1024;
  r.scratch_size_bytes = rep.scratch_size;
  r.scratch_peak_bytes = rep.scratch_peak;
  r.scratch_final_bytes = rep.scratch_final;
  r.scratch_data_bytes = rep.scratch_data;
  r.scratch_out_bytes = rep.scratch_out;
  r.scratch_tmp_bytes = rep.scratch_tmp;
  r.scratch_full = rep.scratch_full != 0;
  r.scratch_noswap = rep.scratch_noswap != 0;
  r.dev_nodes = rep.dev_nodes_bound != 0 ? "bind" : "mknod";
  r.hostname_set = rep.hostname_set != 0;
  r.loopback_up = rep.loopback_up != 0;
  r.cpus_allowed = std::string(rep.cpus, strnlen(rep.cpus, sizeof(rep.cpus)));
  if (rep.trainer_reaped) ApplyTrainerStatus(r, rep);
  if (rep.failed_step[0] != '\0') {
    r.outcome = Outcome::kSetupError;
    r.failed_step = rep.failed_step;
    r.reason = r.failed_step + ": " + rep.message;
    if (r.failed_step == "exec-trainer") {
      r.exit_code = (!rep.exec_failed || rep.exec_errno == ENOENT) ? 127 : 126;
    }
  }
  if (r.memory_limit_hit && r.outcome == Outcome::kSignaled) r.reason = "memory limit hit (OOM kill)";
  return r;
}

// fork(2)-like: returns 0 in the child. With a v2 cgroup fd, clone3(CLONE_INTO_CGROUP) starts
// the init inside the job cgroup (no migration, no RCU grace period); otherwise clone(2) and the
// caller attaches the init while it builds its filesystem.
long CloneInit(int cgroup_fd, bool& in_cgroup) {
  const unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
  if (cgroup_fd >= 0) {
    clone_args args{};
    args.flags = flags | CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = static_cast<__u64>(static_cast<unsigned>(cgroup_fd));
    const long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid >= 0) {
      in_cgroup = true;
      return pid;
    }
    if (errno != ENOSYS && errno != E2BIG && errno != EINVAL) return pid;
  }
  in_cgroup = false;
  return syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
}

}  // namespace

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk: return "OK";
    case Outcome::kSetupError: return "SETUP_ERROR";
    case Outcome::kViolation: return "VIOLATION";
    case Outcome::kSignaled: return "SIGNALED";
    case Outcome::kTimeout: return "TIMEOUT";
    case Outcome::kExternalKill: return "EXTERNAL_KILL";
  }
  return "UNKNOWN";
}

int RunResult::ShellStatus() const {
  if (outcome == Outcome::kSetupError) return failed_step == "exec-trainer" ? exit_code : 125;
  if (signal != 0) return 128 + signal;
  if (exit_code >= 0) return exit_code;
  return (outcome == Outcome::kTimeout || outcome == Outcome::kExternalKill) ? 128 + SIGKILL : 125;
}

std::string RunResult::ToJson() const {
  nlohmann::json j;
  j["outcome"] = OutcomeName(outcome);
  j["reason"] = reason;
  if (!failed_step.empty()) j["failed_step"] = failed_step;
  j["exit_code"] = exit_code;
  j["signal"] = signal;
  j["wall_ms"] = wall.count();
  j["cpu_user_ms"] = cpu_user.count();
  j["cpu_system_ms"] = cpu_system.count();
  j["peak_memory_bytes"] = peak_memory_bytes;
  j["memory_limit_bytes"] = memory_limit_bytes;
  j["max_rss_bytes"] = max_rss_bytes;
  j["scratch"] = {{"size_bytes", scratch_size_bytes}, {"peak_bytes", scratch_peak_bytes},
                  {"final_bytes", scratch_final_bytes}, {"full", scratch_full},
                  {"final_by_dir", {{"/data", scratch_data_bytes}, {"/out", scratch_out_bytes}, {"/tmp", scratch_tmp_bytes}}}};
  j["memory_limit_hit"] = memory_limit_hit;
  j["pids_limit_hit"] = pids_limit_hit;
  j["cpu_throttled"] = cpu_throttled;
  j["timeout_hit"] = timeout_hit;
  j["seccomp_violations"] = seccomp_violations;
  j["violations_by_syscall"] = violations_by_syscall;
  j["probes"] = probes;
  j["probes_by_syscall"] = probes_by_syscall;
  j["cgroup"] = cgroup_mode;
  j["scratch_noswap"] = scratch_noswap;
  j["dev_nodes"] = dev_nodes;
  j["hostname_set"] = hostname_set;
  j["loopback_up"] = loopback_up;
  j["cpus_allowed"] = cpus_allowed;
  return j.dump(2) + "\n";
}

std::optional<RunResult> RunResult::FromJson(std::string_view text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("outcome")) return std::nullopt;
  RunResult r;
  bool known = false;
  for (const Outcome o : {Outcome::kOk, Outcome::kSetupError, Outcome::kViolation, Outcome::kSignaled,
                          Outcome::kTimeout, Outcome::kExternalKill}) {
    if (j.value("outcome", std::string()) == OutcomeName(o)) {
      r.outcome = o;
      known = true;
    }
  }
  if (!known) return std::nullopt;
  try {
    r.reason = j.value("reason", std::string());
    r.failed_step = j.value("failed_step", std::string());
    r.exit_code = j.value("exit_code", -1);
    r.signal = j.value("signal", 0);
    r.wall = std::chrono::milliseconds(j.value("wall_ms", std::int64_t{0}));
    r.cpu_user = std::chrono::milliseconds(j.value("cpu_user_ms", std::int64_t{0}));
    r.cpu_system = std::chrono::milliseconds(j.value("cpu_system_ms", std::int64_t{0}));
    r.peak_memory_bytes = j.value("peak_memory_bytes", std::uint64_t{0});
    r.memory_limit_bytes = j.value("memory_limit_bytes", std::uint64_t{0});
    r.max_rss_bytes = j.value("max_rss_bytes", std::uint64_t{0});
    if (const auto s = j.find("scratch"); s != j.end() && s->is_object()) {
      r.scratch_size_bytes = s->value("size_bytes", std::uint64_t{0});
      r.scratch_peak_bytes = s->value("peak_bytes", std::uint64_t{0});
      r.scratch_final_bytes = s->value("final_bytes", std::uint64_t{0});
      r.scratch_full = s->value("full", false);
      if (const auto d = s->find("final_by_dir"); d != s->end() && d->is_object()) {
        r.scratch_data_bytes = d->value("/data", std::uint64_t{0});
        r.scratch_out_bytes = d->value("/out", std::uint64_t{0});
        r.scratch_tmp_bytes = d->value("/tmp", std::uint64_t{0});
      }
    }
    r.memory_limit_hit = j.value("memory_limit_hit", false);
    r.pids_limit_hit = j.value("pids_limit_hit", false);
    r.cpu_throttled = j.value("cpu_throttled", false);
    r.timeout_hit = j.value("timeout_hit", false);
    r.seccomp_violations = j.value("seccomp_violations", std::uint64_t{0});
    r.violations_by_syscall = j.value("violations_by_syscall", std::map<std::string, std::uint64_t>{});
    r.probes = j.value("probes", std::uint64_t{0});
    r.probes_by_syscall = j.value("probes_by_syscall", std::map<std::string, std::uint64_t>{});
    r.cgroup_mode = j.value("cgroup", std::string());
    r.scratch_noswap = j.value("scratch_noswap", false);
    r.dev_nodes = j.value("dev_nodes", std::string("mknod"));
    r.hostname_set = j.value("hostname_set", true);
    r.loopback_up = j.value("loopback_up", true);
    r.cpus_allowed = j.value("cpus_allowed", std::string());
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;  // a member of the wrong type
  }
  return r;
}

void RequestStop() {
  g_stop_requested.store(true);
  const pid_t pid = g_init.load();
  if (pid > 0) kill(pid, SIGKILL);
}

cordon::Result<RunResult> Run(const Policy& policy) {
  if (auto st = Validate(policy); !st) return std::unexpected(st.error());
  g_stop_requested.store(false);
  int sync[2], report[2];
  if (pipe2(sync, O_CLOEXEC) != 0) return SetupError("pipes", std::strerror(errno));
  UniqueFd sync_read(sync[0]), sync_write(sync[1]);
  if (pipe2(report, O_CLOEXEC) != 0) return SetupError("pipes", std::strerror(errno));
  UniqueFd report_read(report[0]), report_write(report[1]);

  auto cgroup = JobCgroup::Create({MemoryLimit(policy), policy.pids, policy.cpus, policy.cgroup_parent});
  if (!cgroup) return SetupError("cgroup", cgroup.error().message);
  UniqueFd cgroup_dir(cgroup->OpenV2Dir());
  UniqueFd image_tree;  // the caller's image fd, as a detached tree the init moves to /job
  const int tree_source = policy.rootfs_fd >= 0 ? policy.rootfs_fd : policy.rootfs_dir.empty() ? policy.image_fd : -1;
  if (tree_source >= 0) {
    image_tree.reset(open_tree(tree_source, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
    if (!image_tree) return SetupError("open-image", std::string("open_tree: ") + std::strerror(errno));
  }
  bool in_cgroup = false;
  const long pid = CloneInit(cgroup_dir.get(), in_cgroup);
  if (pid < 0) return SetupError("clone-namespaces", std::strerror(errno));
  if (pid == 0) {
    InitMain(policy, InitChannels{sync_read.get(), &*cgroup, in_cgroup, report_write.get(),
                                  policy.memory_bytes != 0, image_tree.get()});
  }
  const auto init = static_cast<pid_t>(pid);
  g_init.store(init);
  sync_read.reset();
  report_write.reset();
  image_tree.reset();
  // The init joins the job cgroup itself (v1: a cheap single-thread migration), first thing.
  if (g_stop_requested.load()) kill(init, SIGKILL);
  (void)!write(sync_write.get(), "g", 1);
  InitWait w = WaitForInit(init, report_read.get(), policy.timeout);
  g_init.store(0);
  RunResult r = Compose(w, cgroup->ReadStats(), cgroup->mode());
  if (cgroup->mode() != std::string_view("none")) r.memory_limit_bytes = MemoryLimit(policy);
  if (g_stop_requested.load() && r.outcome != Outcome::kSetupError) {
    r.outcome = Outcome::kExternalKill;
    r.reason = "stop requested";
  }
  return r;
}

}  // namespace cordon::sandbox
