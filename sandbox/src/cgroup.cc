#include "cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "cordon/process.h"
#include "cordon/unique_fd.h"

namespace cordon::sandbox {
namespace {

std::atomic<unsigned> g_counter{0};

std::string ReadSmall(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status WriteFile(const std::string& path, const std::string& value) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return FailErrno("cgroup: open " + path);
  if (write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return FailErrno("cgroup: write '" + value + "' to " + path);
  }
  return {};
}

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

struct MountEntry {
  std::string point, fstype, super_options;
};

std::vector<MountEntry> CgroupMounts() {
  std::vector<MountEntry> out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    const auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream pre(line.substr(0, dash)), post(line.substr(dash + 3));
    std::string id, parent, devno, root, point, fstype, source, super_options;
    pre >> id >> parent >> devno >> root >> point;
    post >> fstype >> source >> super_options;
    if (fstype == "cgroup" || fstype == "cgroup2") out.push_back({point, fstype, super_options});
  }
  return out;
}

// The caller's cgroup path in the hierarchy whose /proc/self/cgroup controller list matches.
std::string OwnPath(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string list = "," + line.substr(a + 1, b - a - 1) + ",";
    if ((controller.empty() && list == ",,") ||
        (!controller.empty() && list.find("," + controller + ",") != std::string::npos)) {
      return line.substr(b + 1);
    }
  }
  return {};
}

bool HasWord(const std::string& text, const std::string& word) {
  std::istringstream in(text);
  for (std::string w; in >> w;) {
    if (w == word) return true;
  }
  return false;
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

std::string CpuQuota(double cpus) {
  const auto quota = static_cast<long long>(std::llround(cpus * 100000.0));
  return std::to_string(quota < 1000 ? 1000 : quota);
}

}  // namespace

CgroupSupport DetectCgroups() {
  CgroupSupport s;
  for (const auto& m : CgroupMounts()) {
    if (m.fstype == "cgroup2") {
      s.v2_mount = m.point;
      s.v2_own_path = OwnPath("");
      s.v2_controllers = ReadSmall(m.point + s.v2_own_path + "/cgroup.controllers");
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
  const std::string procs = ReadSmall(dir + "/cgroup.procs");
  return procs.find_first_not_of(" \n") != std::string::npos;
}

// Can `dir` parent the job cgroup with the needed controllers? With enable, turns the missing
// ones on in its subtree_control (only possible where it has no processes of its own).
Status UsableV2Parent(const std::string& dir, const std::vector<std::string>& need, bool enable) {
  const std::string available = ReadSmall(dir + "/cgroup.controllers");
  const std::string enabled = ReadSmall(dir + "/cgroup.subtree_control");
  for (const auto& c : need) {
    if (!HasWord(available, c)) return Fail(Errc::kUnsupported, "no " + c + " controller");
  }
  for (const auto& c : need) {
    if (HasWord(enabled, c)) continue;
    if (!enable) {
      if (HasProcesses(dir)) return Fail(Errc::kUnsupported, "has processes, cannot enable " + c);
      continue;
    }
    if (auto st = WriteFile(dir + "/cgroup.subtree_control", "+" + c); !st) return st;
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

Result<std::string> TryV2(const CgroupSupport& s, const CgroupLimits& limits) {
  auto parent = PickV2Parent(s, limits, true);
  if (!parent) return parent;
  RemoveStale(*parent);
  const std::string dir = *parent + "/" + JobName();
  if (mkdir(dir.c_str(), 0700) != 0) return FailErrno("cgroup: mkdir " + dir);
  return dir;
}

Status ApplyV2(const std::string& dir, const CgroupLimits& limits) {
  if (limits.memory_bytes != 0) {
    if (auto st = WriteFile(dir + "/memory.max", std::to_string(limits.memory_bytes)); !st) return st;
    (void)WriteFile(dir + "/memory.swap.max", "0");  // absent without swap accounting
    // memory.oom.group stays 0: the OOM killer takes the trainer (oom_score_adj 1000) and the
    // init, still alive, kills the rest and reports — as on v1.
  }
  if (limits.pids != 0) {
    if (auto st = WriteFile(dir + "/pids.max", std::to_string(limits.pids)); !st) return st;
  }
  if (limits.cpus > 0) {
    if (auto st = WriteFile(dir + "/cpu.max", CpuQuota(limits.cpus) + " 100000"); !st) return st;
  }
  return {};
}

Result<std::string> MakeV1(const std::string& controller, const std::string& name) {
  for (const auto& m : CgroupMounts()) {
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
    if (auto st = WriteFile(dir + "/memory.limit_in_bytes", bytes); !st) return st;
    // memsw (memory+swap) equal to the memory limit: no swap. Absent without swap accounting.
    (void)WriteFile(dir + "/memory.memsw.limit_in_bytes", bytes);
    (void)WriteFile(dir + "/memory.swappiness", "0");
    return {};
  }
  if (controller == "pids") return WriteFile(dir + "/pids.max", std::to_string(limits.pids));
  if (auto st = WriteFile(dir + "/cpu.cfs_period_us", "100000"); !st) return st;
  return WriteFile(dir + "/cpu.cfs_quota_us", CpuQuota(limits.cpus));
}

}  // namespace

Result<JobCgroup> JobCgroup::Create(const CgroupLimits& limits) {
  JobCgroup cg;
  if (Needed(limits).empty()) return cg;
  const CgroupSupport support = DetectCgroups();
  auto v2 = TryV2(support, limits);
  if (v2) {
    cg.v2_ = true;
    cg.dirs_.push_back(*v2);
    if (auto st = ApplyV2(*v2, limits); !st) return std::unexpected(st.error());
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
  return cg;
}

Status JobCgroup::JoinSelf() const {
  for (const auto& dir : dirs_) {
    if (auto st = WriteFile(dir + (v2_ ? "/cgroup.procs" : "/tasks"), "0"); !st) return st;
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
      s.peak_memory_bytes = Number(ReadSmall(dir + "/memory.peak"));
      s.memory_limit_hit = KeyValue(ReadSmall(dir + "/memory.events"), "oom_kill") > 0;
      s.pids_limit_hit = KeyValue(ReadSmall(dir + "/pids.events"), "max") > 0;
      s.cpu_throttled = KeyValue(ReadSmall(dir + "/cpu.stat"), "nr_throttled") > 0;
      continue;
    }
    if (access((dir + "/cpu.cfs_quota_us").c_str(), F_OK) == 0) {
      s.cpu_throttled = KeyValue(ReadSmall(dir + "/cpu.stat"), "nr_throttled") > 0;
    }
    if (access((dir + "/memory.max_usage_in_bytes").c_str(), F_OK) == 0) {
      s.peak_memory_bytes = Number(ReadSmall(dir + "/memory.max_usage_in_bytes"));
      s.memory_limit_hit = KeyValue(ReadSmall(dir + "/memory.oom_control"), "oom_kill") > 0;
    }
    if (access((dir + "/pids.events").c_str(), F_OK) == 0) {
      s.pids_limit_hit = KeyValue(ReadSmall(dir + "/pids.events"), "max") > 0;
    }
  }
  return s;
}

void JobCgroup::KillAndRemove() {
  for (const auto& dir : dirs_) {
    if (v2_) (void)WriteFile(dir + "/cgroup.kill", "1");
    for (int attempt = 0; attempt < 200; ++attempt) {
      std::istringstream procs(ReadSmall(dir + "/cgroup.procs"));
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
