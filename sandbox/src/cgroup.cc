#include "cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>

#include "cordon/process.h"
#include "cordon/sandbox/cgroupfs.h"
#include "cordon/unique_fd.h"

namespace cordon::sandbox {
namespace {

std::atomic<unsigned> g_counter{0};

using cgroupfs::HasWord;
using cgroupfs::OwnPath;
using cgroupfs::Read;
using cgroupfs::Write;

// "key N" in a flat-keyed file (memory.events, pids.events, memory.oom_control).
std::uint64_t KeyValue(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string k;
  std::uint64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

std::uint64_t Number(const std::string& text) {
  return text.empty() ? 0 : std::strtoull(text.c_str(), nullptr, 10);
}

bool HasOption(const std::string& options, const std::string& name) {
  return HasWord([&] {
    std::string s = options;
    for (char& c : s) c = c == ',' ? ' ' : c;
    return s;
  }(), name);
}

std::vector<std::string> Needed(const CgroupLimits& limits) {
  std::vector<std::string> need;
  if (limits.memory_bytes != 0) need.emplace_back("memory");
  if (limits.pids != 0) need.emplace_back("pids");
  if (limits.cpus > 0) need.emplace_back("cpu");
  return need;
}

// cordon-sandbox-<pid>-<start time>-<n>: the owner is that pid *with* that
// start time, so a reused pid never keeps a dead owner's cgroup alive.
std::string JobName() {
  return "cordon-sandbox-" + std::to_string(getpid()) + "-" + std::to_string(ProcessStartTime(getpid())) + "-" +
         std::to_string(g_counter++);
}

// A helper killed with SIGKILL leaves its (by then empty) job cgroup behind: remove those of
// dead helpers. A non-empty one stays (rmdir fails) and is not ours to kill.
void RemoveStale(const std::string& parent) {
  DIR* dir = opendir(parent.c_str());
  if (dir == nullptr) return;
  const std::string prefix = "cordon-sandbox-";
  while (dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name.rfind(prefix, 0) != 0) continue;
    char* rest = nullptr;
    const auto pid = static_cast<pid_t>(std::strtol(name.c_str() + prefix.size(), &rest, 10));
    const std::uint64_t start = rest && *rest == '-' ? std::strtoull(rest + 1, nullptr, 10) : 0;
    if (pid > 0 && ProcessStartTime(pid) != start) rmdir((parent + "/" + name).c_str());
  }
  closedir(dir);
}

// ceil(cpus) of the caller's usable CPUs, consecutive from an offset given by the caller's pid
// (concurrent jobs of one host spread over its CPUs); empty when that is all of them.
std::vector<int> PickCpus(double cpus) {
  const std::vector<int> usable = cpus > 0 ? AffinityCpus() : std::vector<int>{};
  if (usable.empty()) return {};
  const auto want = static_cast<std::size_t>(std::ceil(cpus));
  if (want >= usable.size()) return {};
  std::vector<int> picked;
  const std::size_t start = static_cast<std::size_t>(getpid()) % usable.size();
  for (std::size_t i = 0; i < want; ++i) picked.push_back(usable[(start + i) % usable.size()]);
  std::sort(picked.begin(), picked.end());
  return picked;
}

std::string CpuQuota(double cpus) {
  const auto quota = static_cast<long long>(std::llround(cpus * 100000.0));
  return std::to_string(quota < 1000 ? 1000 : quota);
}

}  // namespace

std::vector<int> AffinityCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (std::size_t cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(static_cast<int>(cpu));
  }
  return cpus;
}

bool PinTo(const std::vector<int>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int cpu : cpus) {
    if (cpu >= 0 && cpu < CPU_SETSIZE) CPU_SET(static_cast<std::size_t>(cpu), &set);
  }
  return sched_setaffinity(0, sizeof(set), &set) == 0;
}

std::string CpuList(const std::vector<int>& cpus) {
  std::string out;
  for (std::size_t i = 0; i < cpus.size();) {
    std::size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(cpus[i]) + (j > i ? "-" + std::to_string(cpus[j]) : "");
    i = j + 1;
  }
  return out;
}

CgroupSupport DetectCgroups() {
  CgroupSupport s;
  for (const auto& m : cgroupfs::Mounts()) {
    if (m.fstype == "cgroup2") {
      s.v2_mount = m.point;
      s.v2_own_path = OwnPath("");
      s.v2_controllers = Read(m.point + s.v2_own_path + "/cgroup.controllers");
      while (!s.v2_controllers.empty() && s.v2_controllers.back() == '\n') s.v2_controllers.pop_back();
      continue;
    }
    for (const char* c : {"memory", "pids", "cpu", "cpuacct", "cpuset", "freezer"}) {
      if (HasOption(m.super_options, c)) s.v1_controllers.emplace_back(c);
    }
  }
  return s;
}

JobCgroup::JobCgroup(JobCgroup&& other) noexcept
    : v2_(other.v2_), dirs_(std::move(other.dirs_)) {
  other.dirs_.clear();
}

JobCgroup::~JobCgroup() { KillAndRemove(); }

namespace {

bool HasProcesses(const std::string& dir) {
  const std::string procs = Read(dir + "/cgroup.procs");
  return procs.find_first_not_of(" \n") != std::string::npos;
}

// Can `dir` parent the job cgroup with the needed controllers? With enable, turns the missing
// ones on in its subtree_control (only possible where it has no processes of its own).
Status UsableV2Parent(const std::string& dir, const std::vector<std::string>& need, bool enable) {
  const std::string available = Read(dir + "/cgroup.controllers");
  const std::string enabled = Read(dir + "/cgroup.subtree_control");
  for (const auto& c : need) {
    if (!HasWord(available, c)) return Fail(Errc::kUnsupported, "no " + c + " controller");
  }
  for (const auto& c : need) {
    if (HasWord(enabled, c)) continue;
    if (!enable) {
      if (HasProcesses(dir)) return Fail(Errc::kUnsupported, "has processes, cannot enable " + c);
      continue;
    }
    if (auto st = Write(dir + "/cgroup.subtree_control", "+" + c); !st) return st;
  }
  return {};
}

}  // namespace

// The caller's v2 cgroup if it can delegate the controllers, else the nearest ancestor that can
// (a v2 cgroup with processes cannot enable controllers for children: the no-internal-process
// rule). An explicit parent (Policy::cgroup_parent) is used as is.
Result<std::string> PickV2Parent(const CgroupSupport& s, const CgroupLimits& limits, bool enable) {
  if (s.v2_mount.empty()) return Fail(Errc::kUnsupported, "no cgroup2 mount");
  const auto need = Needed(limits);
  std::string path = limits.parent.empty() ? s.v2_own_path : limits.parent;
  std::string reasons;
  for (;;) {
    const std::string dir = s.v2_mount + (path == "/" ? "" : path);
    auto st = UsableV2Parent(dir, need, enable);
    if (st) return dir;
    reasons += " " + path + ": " + st.error().message + ";";
    if (!limits.parent.empty() || path == "/" || path.empty()) break;
    path = path.substr(0, path.find_last_of('/'));
    if (path.empty()) path = "/";
  }
  return Fail(Errc::kUnsupported, "no cgroup2 parent can delegate the controllers:" + reasons);
}

namespace {

Result<std::string> TryV2(const CgroupSupport& s, const CgroupLimits& limits, bool cpuset) {
  auto parent = PickV2Parent(s, limits, true);
  if (!parent) return parent;
  // The cpuset controller is optional: where the parent offers it, it is enabled for the job.
  if (cpuset && HasWord(Read(*parent + "/cgroup.controllers"), "cpuset") &&
      !HasWord(Read(*parent + "/cgroup.subtree_control"), "cpuset")) {
    (void)Write(*parent + "/cgroup.subtree_control", "+cpuset");
  }
  RemoveStale(*parent);
  const std::string dir = *parent + "/" + JobName();
  if (mkdir(dir.c_str(), 0700) != 0) return FailErrno("cgroup: mkdir " + dir);
  return dir;
}

Status ApplyV2(const std::string& dir, const CgroupLimits& limits) {
  if (limits.memory_bytes != 0) {
    if (auto st = Write(dir + "/memory.max", std::to_string(limits.memory_bytes)); !st) return st;
    (void)Write(dir + "/memory.swap.max", "0");  // absent without swap accounting
    // memory.oom.group stays 0: the OOM killer takes the trainer (oom_score_adj 1000) and the
    // init, still alive, kills the rest and reports — as on v1.
  }
  if (limits.pids != 0) {
    if (auto st = Write(dir + "/pids.max", std::to_string(limits.pids)); !st) return st;
  }
  if (limits.cpus > 0) {
    if (auto st = Write(dir + "/cpu.max", CpuQuota(limits.cpus) + " 100000"); !st) return st;
  }
  return {};
}

// v1: a cpuset hierarchy's job directory needs its memory nodes before any task may join.
Status ApplyV1Cpuset(const std::string& dir, const std::vector<int>& cpus) {
  std::string mems = Read(dir.substr(0, dir.find_last_of('/')) + "/cpuset.mems");
  while (!mems.empty() && mems.back() == '\n') mems.pop_back();
  if (auto st = Write(dir + "/cpuset.mems", mems); !st) return st;
  return Write(dir + "/cpuset.cpus", CpuList(cpus));
}

Result<std::string> MakeV1(const std::string& controller, const std::string& name) {
  for (const auto& m : cgroupfs::Mounts()) {
    if (m.fstype != "cgroup" || !HasOption(m.super_options, controller)) continue;
    std::string own = OwnPath(controller);
    const std::string parent = m.point + (own == "/" ? "" : own);
    RemoveStale(parent);
    const std::string dir = parent + "/" + name;
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return FailErrno("cgroup: mkdir " + dir);
    return dir;
  }
  return Fail(Errc::kUnsupported, "no cgroup v1 mount for " + controller);
}

Status ApplyV1(const std::string& controller, const std::string& dir, const CgroupLimits& limits) {
  if (controller == "memory") {
    const std::string bytes = std::to_string(limits.memory_bytes);
    if (auto st = Write(dir + "/memory.limit_in_bytes", bytes); !st) return st;
    // memsw (memory+swap) equal to the memory limit: no swap. Absent without swap accounting.
    (void)Write(dir + "/memory.memsw.limit_in_bytes", bytes);
    (void)Write(dir + "/memory.swappiness", "0");
    return {};
  }
  if (controller == "pids") return Write(dir + "/pids.max", std::to_string(limits.pids));
  if (auto st = Write(dir + "/cpu.cfs_period_us", "100000"); !st) return st;
  return Write(dir + "/cpu.cfs_quota_us", CpuQuota(limits.cpus));
}

}  // namespace

Result<JobCgroup> JobCgroup::Create(const CgroupLimits& limits) {
  JobCgroup cg;
  if (Needed(limits).empty()) return cg;
  cg.cpus_ = PickCpus(limits.cpus);
  const CgroupSupport support = DetectCgroups();
  auto v2 = TryV2(support, limits, !cg.cpus_.empty());
  if (v2) {
    cg.v2_ = true;
    cg.dirs_.push_back(*v2);
    if (auto st = ApplyV2(*v2, limits); !st) return std::unexpected(st.error());
    cg.cpuset_enforced_ = !cg.cpus_.empty() && access((*v2 + "/cpuset.cpus").c_str(), F_OK) == 0 &&
                          Write(*v2 + "/cpuset.cpus", CpuList(cg.cpus_));
    return cg;
  }
  const std::string name = JobName();
  for (const auto& c : Needed(limits)) {
    auto dir = MakeV1(c, name);
    if (!dir) {
      return Fail(Errc::kUnsupported, "no usable cgroup: v2: " + v2.error().message + "; v1: " +
                                          dir.error().message);
    }
    cg.dirs_.push_back(*dir);
    if (auto st = ApplyV1(c, *dir, limits); !st) return std::unexpected(st.error());
  }
  if (!cg.cpus_.empty()) {  // optional: without a usable cpuset hierarchy the init pins itself
    if (auto dir = MakeV1("cpuset", name); dir) {
      if (ApplyV1Cpuset(*dir, cg.cpus_)) {
        cg.dirs_.push_back(*dir);
        cg.cpuset_enforced_ = true;
      } else {
        rmdir(dir->c_str());
      }
    }
  }
  return cg;
}

Status JobCgroup::JoinSelf() const {
  for (const auto& dir : dirs_) {
    if (auto st = Write(dir + (v2_ ? "/cgroup.procs" : "/tasks"), "0"); !st) return st;
  }
  return {};
}

int JobCgroup::OpenV2Dir() const {
  if (!v2_ || dirs_.empty()) return -1;
  return open(dirs_.front().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

CgroupStats JobCgroup::ReadStats() const {
  CgroupStats s;
  for (const auto& dir : dirs_) {
    if (v2_) {
      s.peak_memory_bytes = Number(Read(dir + "/memory.peak"));
      s.memory_limit_hit = KeyValue(Read(dir + "/memory.events"), "oom_kill") > 0;
      s.pids_limit_hit = KeyValue(Read(dir + "/pids.events"), "max") > 0;
      s.cpu_throttled = KeyValue(Read(dir + "/cpu.stat"), "nr_throttled") > 0;
      continue;
    }
    if (access((dir + "/cpu.cfs_quota_us").c_str(), F_OK) == 0) {
      s.cpu_throttled = KeyValue(Read(dir + "/cpu.stat"), "nr_throttled") > 0;
    }
    if (access((dir + "/memory.max_usage_in_bytes").c_str(), F_OK) == 0) {
      s.peak_memory_bytes = Number(Read(dir + "/memory.max_usage_in_bytes"));
      s.memory_limit_hit = KeyValue(Read(dir + "/memory.oom_control"), "oom_kill") > 0;
    }
    if (access((dir + "/pids.events").c_str(), F_OK) == 0) {
      s.pids_limit_hit = KeyValue(Read(dir + "/pids.events"), "max") > 0;
    }
  }
  return s;
}

void JobCgroup::KillAndRemove() {
  for (const auto& dir : dirs_) {
    if (v2_) (void)Write(dir + "/cgroup.kill", "1");
    for (int attempt = 0; attempt < 200; ++attempt) {
      std::istringstream procs(Read(dir + "/cgroup.procs"));
      bool any = false;
      for (pid_t pid; procs >> pid;) {
        any = true;
        kill(pid, SIGKILL);
      }
      if (rmdir(dir.c_str()) == 0 || errno == ENOENT) break;
      if (!any && errno != EBUSY) break;
      usleep(5000);
    }
  }
  dirs_.clear();
}

}  // namespace cordon::sandbox
