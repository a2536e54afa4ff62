#include "init.h"

#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <set>

#include "cordon/file_io.h"
#include "cordon/unique_fd.h"
#include "cgroup.h"
#include "filesystem.h"
#include "live_watch.h"
#include "scratch_usage.h"
#include "seccomp_policy.h"
#include "report.h"
#include "trainer_exec.h"

namespace cordon::sandbox {
namespace {

using Clock = std::chrono::steady_clock;

void Copy(char* dst, std::size_t size, const std::string& src) {
  std::snprintf(dst, size, "%s", src.c_str());
}

void SendReport(int fd, const InitReport& r) { (void)!write(fd, &r, sizeof(r)); }

[[noreturn]] void FailSetup(int fd, const std::string& step, const std::string& message) {
  InitReport r;
  Copy(r.failed_step, sizeof(r.failed_step), step);
  Copy(r.message, sizeof(r.message), message);
  SendReport(fd, r);
  _exit(125);
}

// Closes every fd the caller's process had open except the ones the init needs.
Status CloseUnneededFds(std::set<int> keep) {
  keep.insert({0, 1, 2});
  int next = 0;
  for (int fd : keep) {
    if (fd < 0) continue;
    if (fd > next) syscall(SYS_close_range, static_cast<unsigned>(next), static_cast<unsigned>(fd - 1), 0U);
    next = fd + 1;
  }
  if (syscall(SYS_close_range, static_cast<unsigned>(next), ~0U, 0U) != 0) return FailErrno("close_range");
  return {};
}

// Without CAP_NET_ADMIN (a service that drops it): a network namespace owned by a user
// namespace of its own. A child makes both (unshare(CLONE_NEWUSER | CLONE_NEWNET): it holds
// every capability in them, no id mapping needed), brings lo up there and hands the namespace
// back; the init joins it (setns needs CAP_SYS_ADMIN over its owner, which the init has: it is
// euid 0 in the parent user namespace, the owner's). The trainer, uid 65534 in the initial user
// namespace, gets no capability in it. Refused where user namespaces are (systemd's
// RestrictNamespaces= without `user`): lo stays down, recorded.
Status LoopbackInOwnedNamespace(bool& up) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return FailErrno("socketpair for lo");
  UniqueFd parent_end(sv[0]), child_end(sv[1]);
  const pid_t child = fork();
  if (child < 0) return FailErrno("fork for lo");
  if (child == 0) {
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) _exit(2);
    if (SetLoopbackUp() != 0) _exit(3);
    const int ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    _exit(ns >= 0 && SendFd(child_end.get(), ns) ? 0 : 4);
  }
  child_end.reset();
  UniqueFd ns(ReceiveFd(parent_end.get()));
  int status = 0;
  (void)RetryEintr([&] { return waitpid(child, &status, 0); });
  if (!ns) return Status{};  // user namespaces refused: lo stays down
  if (setns(ns.get(), CLONE_NEWNET) != 0) return FailErrno("setns into the job's network namespace");
  up = true;
  return Status{};
}

Status LoopbackUp(bool& up) {
  const int err = SetLoopbackUp();
  if (err == 0) {
    up = true;
    return Status{};
  }
  if (err != EPERM) return FailErrno("SIOCSIFFLAGS lo", err);
  return LoopbackInOwnedNamespace(up);
}

// Thread pools sized to the CPU limit: OpenMP, the BLAS libraries, numexpr, Rust's rayon
// (polars and others). A value the policy's env sets wins.
constexpr const char* kThreadVars[] = {
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMEXPR_MAX_THREADS", "RAYON_NUM_THREADS"};

std::vector<std::string> BuildEnv(const Policy& policy) {
  std::map<std::string, std::string> env = {
      {"PATH", "/usr/local/bin:/usr/bin:/bin"}, {"HOME", "/tmp"}, {"LANG", "C.UTF-8"}};
  if (policy.cpus > 0) {
    auto threads = static_cast<unsigned>(std::ceil(policy.cpus));
    // The trainer's affinity (a cpuset cgroup or PinTo made it): never more threads than CPUs.
    if (const auto usable = static_cast<unsigned>(AffinityCpus().size()); usable > 0) threads = std::min(threads, usable);
    for (const char* var : kThreadVars) env[var] = std::to_string(std::max(threads, 1U));
  }
  for (const auto& [k, v] : policy.env) env[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

// The event loop's state: the trainer, the seccomp listener and the counts.
struct Supervisor {
  pid_t trainer = -1;
  uid_t trainer_uid = 65534;
  gid_t trainer_gid = 65534;
  std::string exec_path;
  int trainer_status = 0;
  bool trainer_reaped = false;
  bool timed_out = false;
  bool killing = false;
  UniqueFd listener_socket, listener, error_pipe, signals, timer;
  // (nr, detail) -> count, per class (seccomp_policy.h: ClassifyDenied).
  std::map<std::pair<int, std::int32_t>, std::uint32_t> violations, probes;
  std::uint64_t violations_total = 0, probes_total = 0;
  ChildFailure child_failure{-1, 0};
  seccomp_notif* req = nullptr;
  seccomp_notif_resp* resp = nullptr;
  ScratchMeter scratch;
  LiveWatch live;
  std::function<void(const std::string&)> on_live;  // empty: no live outputs
};

// kill(-1) reaches every process of this pid namespace the init may signal but the init itself.
// Without CAP_KILL (a service may run without it) root may signal only processes whose real or
// saved uid is its real or effective uid: for the kill, and only for it, the init takes the
// trainer's uid as its REAL uid (effective and saved stay 0, so it keeps its capabilities).
// Only during that window could a trainer process signal the init, and the init of a pid
// namespace receives only the signals it handles (SIGTERM/INT/HUP: kill everything, which is
// under way; SIGCHLD: a reap). A fork is never needed, so a full pids cgroup cannot stop it.
void KillEveryTrainerProcess(uid_t trainer_uid) {
  const bool as_trainer = setresuid(trainer_uid, static_cast<uid_t>(-1), static_cast<uid_t>(-1)) == 0;
  kill(-1, SIGKILL);
  if (as_trainer && setresuid(0, static_cast<uid_t>(-1), static_cast<uid_t>(-1)) != 0) _exit(125);
}

void KillAll(Supervisor& s) {
  s.killing = true;
  KillEveryTrainerProcess(s.trainer_uid);
}

void ReceiveListener(Supervisor& s) {
  s.listener.reset(ReceiveFd(s.listener_socket.get()));
  s.listener_socket.reset();
}

void HandleNotification(Supervisor& s) {
  std::memset(s.req, 0, sizeof(*s.req));
  if (seccomp_notify_receive(s.listener.get(), s.req) != 0) return;  // target died meanwhile
  const Denial d = ClassifyDenied(s.req->data.nr, s.req->data.args[0], s.req->data.args[1]);
  const bool probe = d.kind == DenialKind::kProbe;
  ++(probe ? s.probes_total : s.violations_total);
  ++(probe ? s.probes : s.violations)[{s.req->data.nr, d.detail}];
  std::memset(s.resp, 0, sizeof(*s.resp));
  s.resp->id = s.req->id;
  s.resp->error = -d.err;
  (void)seccomp_notify_respond(s.listener.get(), s.resp);
}

void ReadChildFailure(Supervisor& s) {
  ChildFailure f{};
  if (read(s.error_pipe.get(), &f, sizeof(f)) == sizeof(f)) s.child_failure = f;
  s.error_pipe.reset();
}

// Returns true when no child is left.
bool Reap(Supervisor& s) {
  for (;;) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG | __WALL);
    if (pid < 0) return errno == ECHILD;
    if (pid == 0) return false;
    if (pid == s.trainer) {
      s.trainer_status = status;
      s.trainer_reaped = true;
      KillAll(s);  // nothing the trainer started outlives it
    }
  }
}

void HandleSignals(Supervisor& s) {
  signalfd_siginfo info{};
  while (read(s.signals.get(), &info, sizeof(info)) == sizeof(info)) {
    if (info.ssi_signo != SIGCHLD) KillAll(s);  // SIGTERM/SIGINT/SIGHUP from the host side
  }
}

// Live outputs quiet for LiveWatch::kQuiet go out while the trainer runs; once it is dead the
// final stage-out takes whatever is still pending.
void FlushLive(Supervisor& s) {
  if (!s.on_live || s.killing || s.trainer_reaped || !s.live.has_pending()) return;
  for (const std::string& path : s.live.TakeQuiet(LiveWatch::Clock::now())) s.on_live(path);
}

void EventLoop(Supervisor& s) {
  for (;;) {
    if (s.killing) KillEveryTrainerProcess(s.trainer_uid);
    if (Reap(s) && s.trainer_reaped) return;
    s.scratch.Sample();  // at least every 100 ms: the scratch's peak
    FlushLive(s);
    pollfd fds[6] = {{s.signals.get(), POLLIN, 0}, {s.timer.get(), POLLIN, 0},
                     {s.listener_socket.get(), POLLIN, 0}, {s.listener.get(), POLLIN, 0},
                     {s.error_pipe.get(), POLLIN, 0}, {s.live.fd(), POLLIN, 0}};
    if (poll(fds, 6, s.killing ? 10 : 100) < 0 && errno != EINTR) return;
    if (fds[5].revents & POLLIN) s.live.OnReadable();
    if (fds[0].revents & POLLIN) HandleSignals(s);
    if (fds[1].revents & POLLIN) {
      s.timed_out = true;
      KillAll(s);
      s.timer.reset();
    }
    if (fds[2].revents & (POLLIN | POLLHUP)) ReceiveListener(s);
    if (fds[3].revents & POLLIN) HandleNotification(s);
    if (fds[3].revents & (POLLHUP | POLLERR)) s.listener.reset();
    if (fds[4].revents & (POLLIN | POLLHUP)) ReadChildFailure(s);
  }
}

Status PrepareSupervisor(Supervisor& s, const Policy& policy) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, sig);
  if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return FailErrno("sigprocmask");
  s.signals.reset(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!s.signals) return FailErrno("signalfd");
  s.timer.reset(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!s.timer) return FailErrno("timerfd_create");
  itimerspec when{};
  const auto ms = policy.timeout.count();
  when.it_value.tv_sec = ms / 1000;
  when.it_value.tv_nsec = (ms % 1000) * 1000000;
  if (timerfd_settime(s.timer.get(), 0, &when, nullptr) != 0) return FailErrno("timerfd_settime");
  if (seccomp_notify_alloc(&s.req, &s.resp) != 0) return Fail(Errc::kInternal, "seccomp_notify_alloc");
  return {};
}

TrainerLaunch MakeLaunch(const Policy& policy, const SeccompProgram& seccomp, bool memory_cgroup,
                         int stdin_fd) {
  TrainerLaunch l;
  l.argv = policy.argv;
  l.envp = BuildEnv(policy);
  l.uid = policy.uid;
  l.gid = policy.gid;
  l.stdin_fd = stdin_fd;
  l.stdout_fd = policy.stdout_fd;
  l.stderr_fd = policy.stderr_fd;
  // Second lines only. RLIMIT_NPROC counts every process of the uid host-wide (other jobs with
  // the same uid too), so it is a generous backstop; the pids cgroup is the real limit.
  l.nproc_limit = policy.pids != 0 ? std::max<std::uint64_t>(policy.pids * 4, 4096) : 0;
  l.as_limit = memory_cgroup ? 0 : policy.memory_bytes;
  // RLIMIT_CPU is per process and sums all its threads: allow timeout x usable CPUs.
  cpu_set_t affinity;
  CPU_ZERO(&affinity);
  std::uint64_t cpus = sched_getaffinity(0, sizeof(affinity), &affinity) == 0
                           ? static_cast<std::uint64_t>(CPU_COUNT(&affinity)) : 1024;
  if (policy.cpus > 0) cpus = std::min(cpus, static_cast<std::uint64_t>(std::ceil(policy.cpus)));
  l.cpu_seconds = static_cast<std::uint64_t>(policy.timeout.count() / 1000 + 2) * std::max<std::uint64_t>(cpus, 1);
  l.seccomp = &seccomp;
  return l;
}

void FillFinal(InitReport& r, const Supervisor& s, Clock::time_point started) {
  r.wait_status = s.trainer_status;
  r.trainer_reaped = s.trainer_reaped ? 1 : 0;
  r.timed_out = s.timed_out ? 1 : 0;
  r.wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  rusage ru{};
  getrusage(RUSAGE_CHILDREN, &ru);
  r.cpu_user_ms = ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000;
  r.cpu_system_ms = ru.ru_stime.tv_sec * 1000 + ru.ru_stime.tv_usec / 1000;
  r.max_rss_kb = ru.ru_maxrss;
  r.violations_total = s.violations_total;
  r.probes_total = s.probes_total;
  for (const auto* counts : {&s.violations, &s.probes}) {
    for (const auto& [key, count] : *counts) {
      if (r.denial_kinds == std::size(r.denials)) break;
      r.denials[r.denial_kinds++] = {key.first, key.second, count, counts == &s.probes ? std::uint8_t{1} : std::uint8_t{0}};
    }
  }
  if (s.child_failure.step >= 0) {
    r.exec_failed = s.child_failure.step == kChildStepExec ? 1 : 0;
    r.exec_errno = s.child_failure.err;
    Copy(r.failed_step, sizeof(r.failed_step),
         std::string(s.child_failure.step == kChildStepExec ? "exec-trainer" : "trainer-") +
             (s.child_failure.step == kChildStepExec ? "" : ChildStepName(s.child_failure.step)));
    Copy(r.message, sizeof(r.message),
         s.child_failure.step == kChildStepExec
             ? DescribeExecFailure(s.exec_path, s.child_failure.err, s.trainer_uid, s.trainer_gid)
             : std::string(ChildStepName(s.child_failure.step)) + ": " + std::strerror(s.child_failure.err));
  }
}

// Every process is dead: the scratch as the trainer left it.
void FillScratch(InitReport& r, const Policy& policy, Supervisor& s) {
  ScratchMeter& meter = s.scratch;
  meter.Sample();
  r.scratch_size = meter.size();
  r.scratch_peak = meter.peak();
  r.scratch_final = meter.last();
  r.scratch_full = meter.full() ? 1 : 0;
  if (r.scratch_size == 0) return;
  r.scratch_data = AllocatedBytes("/data", policy.uid, policy.gid);
  r.scratch_out = AllocatedBytes("/out", policy.uid, policy.gid);
  r.scratch_tmp = AllocatedBytes("/tmp", policy.uid, policy.gid);
}

template <class F>
void Step(int report_fd, const char* name, F&& f) {
  Status st;
  try {
    st = f();
  } catch (const std::exception& e) {
    st = Fail(Errc::kInternal, std::string("exception: ") + e.what());
  }
  if (!st) FailSetup(report_fd, name, st.error().message);
}

}  // namespace

namespace {

// What the set-up phase leaves for the later phases.
struct BuiltSandbox {
  UniqueFd output_dir;  // opened before pivot_root; only stage_out sees it
  FsOutcome fs;
  bool hostname_set = false;
  bool loopback_up = false;
  SeccompProgram seccomp;
};

// Phase 1: into the job cgroup first (everything the job allocates, the init's own set-up
// included, is charged to it; the cgroup namespace is rooted there), then the init's own hardening.
void JoinAndHarden(const Policy& policy, const InitChannels& ch) {
  const int rep = ch.report_write;
  Step(rep, "join-cgroup", [&]() -> Status {
    if (!ch.already_in_cgroup && ch.cgroup != nullptr) {
      if (auto st = ch.cgroup->JoinSelf(); !st) return st;
    }
    if (unshare(CLONE_NEWCGROUP) != 0) return FailErrno("unshare(CLONE_NEWCGROUP)");
    // No cpuset cgroup could hold the job to its CPUs: pin the init (and so the trainer) with
    // its affinity instead. Best effort: a caller's seccomp filter may refuse it (systemd's
    // @resources); the CPU quota still holds.
    if (ch.cgroup != nullptr && !ch.cgroup->cpuset_enforced() && !ch.cgroup->cpus().empty()) {
      (void)PinTo(ch.cgroup->cpus());
    }
    return Status{};
  });
  Step(rep, "init-harden", []() -> Status {
    if (prctl(PR_SET_DUMPABLE, 0) != 0) return FailErrno("PR_SET_DUMPABLE");
    if (clearenv() != 0) return Fail(Errc::kInternal, "clearenv");  // the caller's env stays out
    const rlimit zero{0, 0};
    if (setrlimit(RLIMIT_CORE, &zero) != 0) return FailErrno("RLIMIT_CORE");
    // Best effort (needs CAP_SYS_RESOURCE): the OOM killer should pick the trainer, not us.
    // If it picks the init anyway, the whole pid namespace dies, which is also contained.
    UniqueFd oom(open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC));
    if (oom) (void)!write(oom.get(), "-1000", 5);
    return Status{};
  });
  Step(rep, "close-inherited-fds", [&]() -> Status {
    std::set<int> keep(policy.init_fds.begin(), policy.init_fds.end());
    keep.insert({rep, policy.stdin_fd, policy.stdout_fd, policy.stderr_fd, policy.image_fd, policy.rootfs_fd,
                 policy.output_dir_fd, ch.image_tree});
    return CloseUnneededFds(keep);
  });
}

// Phase 2: the filesystem, pivot_root, uts/net set-up, the seccomp program, stage_in.
void BuildSandbox(const Policy& policy, int rep, int image_tree, BuiltSandbox& b) {
  Step(rep, "make-mounts-private", []() -> Status {
    return mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0
               ? Status{} : FailErrno("mount --make-rprivate /");
  });
  Step(rep, "open-output-dir", [&]() -> Status {
    if (policy.output_dir_fd >= 0) {  // the caller's fd: no path is looked up
      b.output_dir.reset(fcntl(policy.output_dir_fd, F_DUPFD_CLOEXEC, 3));
      return b.output_dir ? Status{} : FailErrno("dup output_dir_fd");
    }
    if (policy.output_dir.empty()) return Status{};
    b.output_dir.reset(open(policy.output_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    return b.output_dir ? Status{} : FailErrno("open " + policy.output_dir);
  });
  UniqueFd image;
  Step(rep, "open-image", [&]() -> Status {
    if (image_tree >= 0) {  // the caller's fd, as a detached tree: never a path
      image.reset(fcntl(image_tree, F_DUPFD_CLOEXEC, 3));
      return image ? Status{} : FailErrno("dup the image tree");
    }
    const std::string& dir = policy.rootfs_dir.empty() ? policy.image_dir : policy.rootfs_dir;
    image.reset(open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    return image ? Status{} : FailErrno("open " + dir);
  });
  std::string failed_step;
  FsPlan plan{image.get(), image_tree >= 0, policy.scratch_bytes, policy.allow_swap, policy.uid, policy.gid};
  plan.image_is_rootfs = policy.rootfs_fd >= 0 || !policy.rootfs_dir.empty();
  plan.gpu = &policy.gpu;
  auto fs = BuildRootAndPivot(plan, failed_step);
  if (!fs) FailSetup(rep, failed_step, fs.error().message);
  b.fs = *fs;
  Step(rep, "set-hostname", [&]() -> Status {
    // Refused by a seccomp filter (systemd's ProtectHostname=yes): not fatal, recorded.
    if (sethostname(policy.hostname.data(), policy.hostname.size()) == 0) {
      b.hostname_set = true;
      return Status{};
    }
    return errno == EPERM ? Status{} : FailErrno("sethostname");
  });
  Step(rep, "loopback-up", [&]() -> Status { return LoopbackUp(b.loopback_up); });
  Step(rep, "seccomp-policy", [&]() -> Status {
    return SeccompPolicyBuilder().DenyTrainerDefaults().TryBuild(b.seccomp);
  });
  Step(rep, "stage-in", [&]() -> Status {
    if (!policy.stage_in) return Status{};
    umask(077);
    Status st = policy.stage_in(StageInContext{policy.init_fds});
    umask(0);
    return st;
  });
  Step(rep, "seal-data", [&]() -> Status { return SealData(policy.gid); });
}

// Phase 3: resolve the command, arm the supervisor, fork the trainer.
void StartTrainer(const Policy& policy, const InitChannels& ch, const BuiltSandbox& b, Supervisor& s) {
  const int rep = ch.report_write;
  std::string exec_path;
  Step(rep, "exec-trainer", [&]() -> Status {  // not found: like env(1), exit status 127
    std::string path = "/usr/local/bin:/usr/bin:/bin";
    if (auto it = policy.env.find("PATH"); it != policy.env.end()) path = it->second;
    auto resolved = ResolveExecutable(policy.argv.at(0), path);
    if (!resolved) return std::unexpected(resolved.error());
    exec_path = *resolved;
    return Status{};
  });
  UniqueFd dev_null;
  Step(rep, "prepare-trainer", [&]() -> Status {
    if (policy.stdin_fd < 0) dev_null.reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
    return PrepareSupervisor(s, policy);
  });
  Step(rep, "watch-outputs", [&]() -> Status {
    s.scratch = ScratchMeter(UniqueFd(open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC)));
    s.scratch.Sample();
    if (policy.live_dirs.empty() || !policy.live_output) return Status{};
    if (!s.live.Start(policy.live_dirs, policy.uid, policy.gid)) return FailErrno("inotify on /out");
    const int out_fd = b.output_dir.get();
    s.on_live = [&policy, out_fd](const std::string& path) {
      try {
        policy.live_output(LiveOutputContext{policy.init_fds, out_fd, path});
      } catch (const std::exception&) {
        // a live seal that failed is retried by the final stage-out
      }
    };
    return Status{};
  });
  TrainerLaunch launch = MakeLaunch(policy, b.seccomp, ch.memory_cgroup,
                                    policy.stdin_fd >= 0 ? policy.stdin_fd : dev_null.get());
  launch.exec_path = exec_path;
  Step(rep, "fork-trainer", [&]() -> Status {
    s.trainer_uid = policy.uid;
    s.trainer_gid = policy.gid;
    s.exec_path = exec_path;
    auto t = ForkTrainer(launch);
    if (!t) return std::unexpected(t.error());
    s.trainer = t->pid;
    s.listener_socket.reset(t->listener_socket);
    s.error_pipe.reset(t->error_pipe);
    return {};
  });
  InitReport started;
  started.kind = ReportKind::kTrainerStarted;
  SendReport(rep, started);
}

// Phase 4: everything is dead; stage_out, drop the scratch, report.
[[noreturn]] void Finish(const Policy& policy, int rep, const BuiltSandbox& b, Supervisor& s,
                         Clock::time_point started) {
  InitReport report;
  FillFinal(report, s, started);
  report.scratch_noswap = b.fs.scratch_noswap ? 1 : 0;
  report.dev_nodes_bound = b.fs.dev_nodes_bound ? 1 : 0;
  report.hostname_set = b.hostname_set ? 1 : 0;
  report.loopback_up = b.loopback_up ? 1 : 0;
  Copy(report.cpus, sizeof(report.cpus), CpuList(AffinityCpus()));
  FillScratch(report, policy, s);
  if (report.failed_step[0] == '\0' && policy.stage_out) {
    Status st;
    try {
      st = policy.stage_out(StageOutContext{policy.init_fds, b.output_dir.get(), s.trainer_status,
                                            s.timed_out, s.violations_total});
    } catch (const std::exception& e) {
      st = Fail(Errc::kInternal, std::string("exception: ") + e.what());
    }
    if (!st) {
      Copy(report.failed_step, sizeof(report.failed_step), "stage-out");
      Copy(report.message, sizeof(report.message), st.error().message);
    }
  }
  DropScratch();
  SendReport(rep, report);
  _exit(0);
}

}  // namespace

// The interface ioctls are not tied to a protocol family: on an AF_UNIX socket they reach
// dev_ioctl() all the same, so a service restricted to AF_UNIX (RestrictAddressFamilies=) works.
int SetLoopbackUp() {
  UniqueFd s(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) return errno;
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "lo");
  if (ioctl(s.get(), SIOCGIFFLAGS, &ifr) != 0) return errno;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  return ioctl(s.get(), SIOCSIFFLAGS, &ifr) == 0 ? 0 : errno;
}

void InitMain(const Policy& policy, const InitChannels& ch) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  char go = 0;
  if (read(ch.sync_read, &go, 1) != 1) _exit(125);  // the caller died before PDEATHSIG was set
  close(ch.sync_read);
  umask(0);
  JoinAndHarden(policy, ch);
  BuiltSandbox built;
  BuildSandbox(policy, ch.report_write, ch.image_tree, built);
  Supervisor s;
  const auto started = Clock::now();
  StartTrainer(policy, ch, built, s);
  EventLoop(s);
  if (s.error_pipe) ReadChildFailure(s);  // the child is gone: never blocks
  Finish(policy, ch.report_write, built, s, started);
}

}  // namespace cordon::sandbox
