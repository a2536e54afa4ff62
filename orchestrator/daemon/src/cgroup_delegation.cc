#include "cgroup_delegation.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>

#include "cordon/sandbox/cgroupfs.h"

namespace cordon::daemon {
namespace {

using sandbox::cgroupfs::HasWord;
using sandbox::cgroupfs::Read;
using sandbox::cgroupfs::Write;

CgroupDelegation NotDelegated(std::string reason) {
  CgroupDelegation d;
  d.reason = std::move(reason);
  return d;
}

// Every process of `from` into `to` (ours among them): the service cgroup must be empty before
// it may enable controllers for its children.
Status MoveAll(const std::string& from, const std::string& to) {
  if (auto st = Write(to + "/cgroup.procs", "0"); !st) return st;
  for (int round = 0; round < 8; ++round) {
    std::istringstream pids(Read(from + "/cgroup.procs"));
    bool any = false;
    for (std::string pid; pids >> pid;) {
      any = true;
      if (auto st = Write(to + "/cgroup.procs", pid); !st && st.error().code != Errc::kNotFound) {
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
  const std::string mount = options.mount.empty() ? sandbox::cgroupfs::Cgroup2Mount() : options.mount;
  if (mount.empty()) return NotDelegated("no cgroup2 mount (cgroup v1 only)");
  std::string own = options.own_path.empty() ? sandbox::cgroupfs::OwnPath("") : options.own_path;
  if (own.empty() || own == "/") return NotDelegated("in the root cgroup of the cgroup2 hierarchy");
  const std::string suffix = "/" + options.leaf;
  if (own.size() > suffix.size() && own.compare(own.size() - suffix.size(), suffix.size(), suffix) == 0) {
    own.resize(own.size() - suffix.size());  // already moved (a second call)
  }
  const std::string dir = mount + own;
  const std::string available = Read(dir + "/cgroup.controllers");
  for (const auto& c : options.controllers) {
    if (!HasWord(available, c)) {
      return NotDelegated("cgroup2 " + own + " lacks the " + c + " controller (bound to v1, or not delegated)");
    }
  }
  const std::string leaf = dir + suffix;
  if (::mkdir(leaf.c_str(), 0755) != 0 && errno != EEXIST) return FailErrno("cgroup: mkdir " + leaf);
  if (auto st = MoveAll(dir, leaf); !st) return std::unexpected(st.error());
  const std::string enabled = Read(dir + "/cgroup.subtree_control");
  for (const auto& c : options.controllers) {
    if (HasWord(enabled, c)) continue;
    if (auto st = Write(dir + "/cgroup.subtree_control", "+" + c); !st) return std::unexpected(st.error());
  }
  CgroupDelegation d;
  d.mode = CgroupDelegation::Mode::kV2Delegated;
  d.job_parent = own;
  d.supervisor = own + suffix;
  return d;
}

}  // namespace cordon::daemon
