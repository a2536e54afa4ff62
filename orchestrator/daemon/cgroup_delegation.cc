#include "daemon/cgroup_delegation.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "cordon/unique_fd.h"

namespace cordon::daemon {
namespace {

std::string ReadSmall(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool HasWord(const std::string& text, const std::string& word) {
  std::istringstream in(text);
  for (std::string w; in >> w;) {
    if (w == word) return true;
  }
  return false;
}

Status WriteFile(const std::string& path, const std::string& value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return FailErrno("cgroup: open " + path);
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return FailErrno("cgroup: write '" + value + "' to " + path);
  }
  return {};
}

std::string FirstCgroup2Mount() {
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    const auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream pre(line.substr(0, dash)), post(line.substr(dash + 3));
    std::string id, parent, devno, root, point, fstype;
    pre >> id >> parent >> devno >> root >> point;
    post >> fstype;
    if (fstype == "cgroup2") return point;
  }
  return {};
}

std::string OwnV2Path() {
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return {};
}

CgroupDelegation NotDelegated(std::string reason) {
  CgroupDelegation d;
  d.reason = std::move(reason);
  return d;
}

// Every process of `from` into `to` (ours among them): the service cgroup must be empty before
// it may enable controllers for its children.
Status MoveAll(const std::string& from, const std::string& to) {
  if (auto st = WriteFile(to + "/cgroup.procs", "0"); !st) return st;
  for (int round = 0; round < 8; ++round) {
    std::istringstream pids(ReadSmall(from + "/cgroup.procs"));
    bool any = false;
    for (std::string pid; pids >> pid;) {
      any = true;
      if (auto st = WriteFile(to + "/cgroup.procs", pid); !st && st.error().code != Errc::kNotFound) {
        // ESRCH (it exited meanwhile) reads as an I/O error: tolerated, the next round re-reads.
        if (::access(("/proc/" + pid).c_str(), F_OK) == 0) return st;
      }
    }
    if (!any) return {};
  }
  return Fail(Errc::kInternal, "cgroup: processes keep appearing in " + from);
}

}  // namespace

Result<CgroupDelegation> SetUpCgroupDelegation(const CgroupDelegationOptions& options) {
  const std::string mount = options.mount.empty() ? FirstCgroup2Mount() : options.mount;
  if (mount.empty()) return NotDelegated("no cgroup2 mount (cgroup v1 only)");
  std::string own = options.own_path.empty() ? OwnV2Path() : options.own_path;
  if (own.empty() || own == "/") return NotDelegated("in the root cgroup of the cgroup2 hierarchy");
  const std::string suffix = "/" + options.leaf;
  if (own.size() > suffix.size() && own.compare(own.size() - suffix.size(), suffix.size(), suffix) == 0) {
    own.resize(own.size() - suffix.size());  // already moved (a second call)
  }
  const std::string dir = mount + own;
  const std::string available = ReadSmall(dir + "/cgroup.controllers");
  for (const auto& c : options.controllers) {
    if (!HasWord(available, c)) {
      return NotDelegated("cgroup2 " + own + " lacks the " + c + " controller (bound to v1, or not delegated)");
    }
  }
  const std::string leaf = dir + suffix;
  if (::mkdir(leaf.c_str(), 0755) != 0 && errno != EEXIST) return FailErrno("cgroup: mkdir " + leaf);
  if (auto st = MoveAll(dir, leaf); !st) return std::unexpected(st.error());
  const std::string enabled = ReadSmall(dir + "/cgroup.subtree_control");
  for (const auto& c : options.controllers) {
    if (HasWord(enabled, c)) continue;
    if (auto st = WriteFile(dir + "/cgroup.subtree_control", "+" + c); !st) return std::unexpected(st.error());
  }
  CgroupDelegation d;
  d.mode = CgroupDelegation::Mode::kV2Delegated;
  d.job_parent = own;
  d.supervisor = own + suffix;
  return d;
}

}  // namespace cordon::daemon
