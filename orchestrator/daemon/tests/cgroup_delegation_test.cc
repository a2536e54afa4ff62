// cgroup v2 delegation (orchestrator/daemon/src/cgroup_delegation.h) on the real kernel: in a child
// process, inside its own cgroup and mount namespaces with a private cgroup2 mount, the child
// plays systemd's Delegate=yes service cgroup. Uses memory/pids/cpu where the cgroup2 hierarchy
// has them (a pure v2 host), else the controllers it has (hugetlb on a hybrid host); skips
// without root or without any v2 controller.
#include "cgroup_delegation.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "cordon/testing/slurp.h"

namespace cordon::daemon {
namespace {

namespace fs = std::filesystem;

using cordon::testing::Slurp;

bool Put(const std::string& path, const std::string& value) {
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
  close(fd);
  return ok;
}

std::string HostV2Mount() {
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    const auto dash = line.find(" - cgroup2 ");
    if (dash == std::string::npos) continue;
    std::istringstream pre(line.substr(0, dash));
    std::string a, b, c, d, point;
    pre >> a >> b >> c >> d >> point;
    return point;
  }
  return {};
}

std::string OwnV2() {
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return {};
}

class CgroupDelegationTest : public ::testing::Test {
 protected:
  // Writes nothing above the test's own cgroup: the controllers used are those our parent
  // already hands down (memory/pids/cpu on a pure v2 host set up so; none on a hybrid host,
  // where only the move and the returned parent are checked).
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "creating cgroups needs root";
    host_mount_ = HostV2Mount();
    if (host_mount_.empty()) GTEST_SKIP() << "no cgroup2 mount on this host";
    const std::string own = OwnV2();
    const std::string parent = host_mount_ + (own == "/" ? "" : own);
    base_ = parent + "/cordon-delegation-test-" + std::to_string(getpid());
    std::istringstream words(Slurp(parent + "/cgroup.subtree_control"));
    std::vector<std::string> have;
    for (std::string w; words >> w;) have.push_back(w);
    auto has = [&](const std::string& c) { return std::find(have.begin(), have.end(), c) != have.end(); };
    if (has("memory") && has("pids") && has("cpu")) {
      controllers_ = {"memory", "pids", "cpu"};
    } else if (!have.empty()) {
      controllers_ = {have.front()};
    }
    ASSERT_EQ(mkdir(base_.c_str(), 0755), 0) << std::strerror(errno);
    std::cerr << "cgroup2 controllers used: " << (controllers_.empty() ? "none (hybrid host)" : "") ;
    for (const auto& c : controllers_) std::cerr << c << " ";
    std::cerr << "\n";
  }
  void TearDown() override {
    if (base_.empty()) return;
    // Children first (job, supervisor, svc), then the base.
    // The child is reaped; its cgroups may take a moment to read as unpopulated.
    for (int i = 0; i < 50; ++i) {
      for (const char* sub : {"/svc/job", "/svc/supervisor", "/svc", ""}) rmdir((base_ + sub).c_str());
      if (access(base_.c_str(), F_OK) != 0) return;
      usleep(20000);
    }
  }

  // Runs `body` in a child that sits in base_/svc inside a new cgroup namespace rooted at base_,
  // with a private cgroup2 mount at a temp dir; returns the child's report lines.
  template <class F>
  std::map<std::string, std::string> InServiceCgroup(F&& body) {
    int p[2];
    EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
    const pid_t pid = fork();
    if (pid == 0) {
      close(p[0]);
      std::ostringstream out;
      auto fail = [&](const char* what) {
        out << "error=" << what << ": " << std::strerror(errno) << "\n";
        const std::string s = out.str();
        (void)!write(p[1], s.data(), s.size());
        _exit(1);
      };
      if (!Put(base_ + "/cgroup.procs", "0")) fail("join base");
      if (unshare(CLONE_NEWCGROUP | CLONE_NEWNS) != 0) fail("unshare");
      if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) fail("make-rprivate");
      char tmpl[] = "/tmp/cordon-cg2-XXXXXX";
      if (mkdtemp(tmpl) == nullptr) fail("mkdtemp");
      if (mount("cgroup2", tmpl, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) fail("mount cgroup2");
      const std::string mnt = tmpl;
      if (mkdir((mnt + "/svc").c_str(), 0755) != 0) fail("mkdir svc");
      if (!Put(mnt + "/svc/cgroup.procs", "0")) fail("join svc");
      for (const auto& c : controllers_) {  // the namespace root is empty now: it may delegate
        if (!Put(mnt + "/cgroup.subtree_control", "+" + c)) fail("delegate to svc");
      }
      body(mnt, out);
      out << "cgroup=" << OwnV2() << "\n";
      umount2(tmpl, MNT_DETACH);
      rmdir(tmpl);
      const std::string s = out.str();
      (void)!write(p[1], s.data(), s.size());
      _exit(0);
    }
    close(p[1]);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = read(p[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
    close(p[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << text;
    std::map<std::string, std::string> kv;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      const auto eq = line.find('=');
      if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return kv;
  }

  std::string host_mount_, base_;
  std::vector<std::string> controllers_;
};

// The bug in the issue: with the service's own process in its cgroup, enabling a controller for
// children is refused (EBUSY). After SetUpCgroupDelegation it runs in svc/supervisor, svc hands
// exactly the needed controllers down, and a job cgroup beside supervisor gets them.
TEST_F(CgroupDelegationTest, MovesIntoSupervisorLeafAndEnablesOnlyTheNeededControllers) {
  const auto kv = InServiceCgroup([&](const std::string& mnt, std::ostringstream& out) {
    if (!controllers_.empty()) {
      errno = 0;
      const bool before = Put(mnt + "/svc/cgroup.subtree_control", "+" + controllers_.front());
      out << "before=" << (before ? "ok" : strerrorname_np(errno)) << "\n";
    }
    CgroupDelegationOptions o;
    o.mount = mnt;
    o.controllers = controllers_;
    auto d = SetUpCgroupDelegation(o);
    if (!d) {
      out << "error=" << d.error().message << "\n";
      return;
    }
    out << "mode=" << (d->mode == CgroupDelegation::Mode::kV2Delegated ? "v2" : "none") << "\n"
        << "job_parent=" << d->job_parent << "\nsupervisor=" << d->supervisor << "\n";
    std::string sc = Slurp(mnt + "/svc/cgroup.subtree_control");
    while (!sc.empty() && sc.back() == '\n') sc.pop_back();
    out << "subtree_control=" << sc << "\n";
    mkdir((mnt + "/svc/job").c_str(), 0755);
    std::string jc = Slurp(mnt + "/svc/job/cgroup.controllers");
    while (!jc.empty() && jc.back() == '\n') jc.pop_back();
    out << "job_controllers=" << jc << "\n";
    auto again = SetUpCgroupDelegation(o);  // idempotent: a second call keeps the same parent
    out << "again=" << (again ? again->job_parent : again.error().message) << "\n";
  });
  ASSERT_EQ(kv.count("error"), 0u) << kv.at("error");
  if (!controllers_.empty()) {
    EXPECT_EQ(kv.at("before"), "EBUSY");
  }
  EXPECT_EQ(kv.at("cgroup"), "/svc/supervisor");
  EXPECT_EQ(kv.at("mode"), "v2");
  EXPECT_EQ(kv.at("job_parent"), "/svc");
  EXPECT_EQ(kv.at("supervisor"), "/svc/supervisor");
  std::string want;
  for (const auto& c : controllers_) want += (want.empty() ? "" : " ") + c;
  // subtree_control lists in the kernel's order; compare as sets of words.
  auto words = [](const std::string& s) {
    std::istringstream in(s);
    std::set<std::string> w;
    for (std::string x; in >> x;) w.insert(x);
    return w;
  };
  EXPECT_EQ(words(kv.at("subtree_control")), words(want));
  EXPECT_EQ(words(kv.at("job_controllers")), words(want));
  EXPECT_EQ(kv.at("again"), "/svc");
}

// A controller the hierarchy does not offer (bound to v1 here, or not delegated): nothing is
// moved and the daemon is told why (the sandbox keeps using v1).
TEST_F(CgroupDelegationTest, MissingControllerLeavesEverythingAsItWas) {
  const auto kv = InServiceCgroup([&](const std::string& mnt, std::ostringstream& out) {
    CgroupDelegationOptions o;
    o.mount = mnt;
    o.controllers = {"no-such-controller"};
    auto d = SetUpCgroupDelegation(o);
    out << "mode=" << (d && d->mode == CgroupDelegation::Mode::kNotDelegated ? "none" : "other") << "\n"
        << "reason=" << (d ? d->reason : d.error().message) << "\n"
        << "leaf=" << (access((mnt + "/svc/supervisor").c_str(), F_OK) == 0 ? "yes" : "no") << "\n";
    out << "cgroup_after=" << OwnV2() << "\n";
  });
  EXPECT_EQ(kv.at("mode"), "none");
  EXPECT_NE(kv.at("reason").find("no-such-controller"), std::string::npos) << kv.at("reason");
  EXPECT_EQ(kv.at("leaf"), "no");
  EXPECT_EQ(kv.at("cgroup_after"), "/svc");
}

TEST(CgroupDelegation, RootCgroupIsNotDelegated) {
  CgroupDelegationOptions o;
  o.mount = "/nonexistent";
  o.own_path = "/";
  auto d = SetUpCgroupDelegation(o);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->mode, CgroupDelegation::Mode::kNotDelegated);
}

}  // namespace
}  // namespace cordon::daemon
