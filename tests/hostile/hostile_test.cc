// Hostile trainers in the real cordon-sandbox: each test runs cordon-hostile doing one forbidden
// thing and asserts the specific way it was held (errno, seccomp violation by syscall, the limit
// that hit, the outcome). Needs root, namespaces and seccomp; skips with a reason otherwise.
// Nothing here touches the host: mounts happen only in the sandbox's own namespaces and the
// hostile program refuses to run outside the sandbox.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cctype>
#include <csignal>
#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "cordon/testing/slurp.h"

namespace {

namespace fs = std::filesystem;

// Built-in paths, overridable (CORDON_SANDBOX_BIN, CORDON_HOSTILE_BIN) to run the suite elsewhere.
std::string SandboxBin() {
  const char* env = std::getenv("CORDON_SANDBOX_BIN");
  return env != nullptr ? env : CORDON_SANDBOX_BIN;
}
std::string HostileBin() {
  const char* env = std::getenv("CORDON_HOSTILE_BIN");
  return env != nullptr ? env : CORDON_HOSTILE_BIN;
}

struct SandboxRun {
  int status = -1;  // exit status of cordon-sandbox
  std::string out, err;
  nlohmann::json result;
};

using cordon::testing::Slurp;

class HostileTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/cordon-hostile-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    work_ = tmpl;
    fs::create_directory(work_ / "image");
    fs::copy_file(HostileBin(), work_ / "image" / "hostile");
    fs::copy_file(HostileBin(), work_ / "image" / "hostile-suid");
    chmod((work_ / "image").c_str(), 0755);
    chmod((work_ / "image" / "hostile").c_str(), 0755);
    chmod((work_ / "image" / "hostile-suid").c_str(), 04755);  // setuid root, owned by root
    fs::copy_file(HostileBin(), work_ / "image" / "root-only");
    chmod((work_ / "image" / "root-only").c_str(), 0700);  // the trainer may not execute it
  }
  static void TearDownTestSuite() { fs::remove_all(work_); }

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the sandbox needs root (namespaces, mounts, cgroups)";
  }

  // Runs cordon-sandbox FLAGS -- /job/hostile ARGS; extra_fd (if >= 0) is left inheritable.
  static SandboxRun Run(std::vector<std::string> flags, std::vector<std::string> args,
                        const std::string& program = "/job/hostile", int extra_fd = -1) {
    const fs::path out = work_ / "stdout", err = work_ / "stderr", result = work_ / "result.json";
    fs::remove(result);
    std::vector<std::string> argv = {SandboxBin(), "--result", result.string()};
    if (std::find(flags.begin(), flags.end(), "--image") == flags.end()) {
      argv.insert(argv.end(), {"--image", (work_ / "image").string()});
    }
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back("--");
    argv.push_back(program);
    argv.insert(argv.end(), args.begin(), args.end());
    const pid_t pid = fork();
    if (pid == 0) {
      const int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      const int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(o, 1);
      dup2(e, 2);
      if (extra_fd >= 0) fcntl(extra_fd, F_SETFD, 0);
      std::vector<char*> cargv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      execv(cargv[0], cargv.data());
      _exit(99);
    }
    SandboxRun r;
    int status = 0;
    waitpid(pid, &status, 0);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 200 + WTERMSIG(status);
    r.out = Slurp(out);
    r.err = Slurp(err);
    const std::string json = Slurp(result);
    if (!json.empty()) r.result = nlohmann::json::parse(json);
    return r;
  }

  static fs::path work_;
};
fs::path HostileTest::work_;

#define EXPECT_HELD(run, text)                                                  \
  do {                                                                          \
    EXPECT_NE((run).out.find(text), std::string::npos)                          \
        << "stdout: " << (run).out << "\nstderr: " << (run).err;                \
    EXPECT_EQ((run).out.find("ESCAPED"), std::string::npos) << (run).out;       \
  } while (0)

// A listener on the host's loopback that the sandbox must not reach.
class Listener {
 public:
  explicit Listener(int type) : fd_(socket(AF_INET, type, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (type == SOCK_STREAM) listen(fd_, 4);
  }
  ~Listener() { close(fd_); }
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] bool ReceivedAnything() const {
    char buf[16];
    const int flags = fcntl(fd_, F_GETFL);
    fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
    sockaddr_in peer{};
    socklen_t len = sizeof(peer);
    const int c = accept(fd_, reinterpret_cast<sockaddr*>(&peer), &len);
    if (c >= 0) {
      close(c);
      return true;
    }
    return recv(fd_, buf, sizeof(buf), 0) > 0;
  }

 private:
  int fd_;
  int port_ = 0;
};

TEST_F(HostileTest, RefusesToRunOutsideTheSandbox) {
  const int rc = system((HostileBin() + " whoami 2>/dev/null").c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 3);
}

// 127.0.0.1 inside the job is the job's own loopback: the host's listener on the same port is
// in another network namespace and never sees a byte.
TEST_F(HostileTest, TcpToHostLoopbackListener) {
  Listener l(SOCK_STREAM);
  auto r = Run({}, {"tcp", std::to_string(l.port())});
  EXPECT_HELD(r, "held connect errno=ECONNREFUSED");
  EXPECT_EQ(r.result["outcome"], "OK");
  EXPECT_EQ(r.result["loopback_up"], true);
  EXPECT_FALSE(l.ReceivedAnything());
}

TEST_F(HostileTest, UdpToHostLoopbackListener) {
  Listener l(SOCK_DGRAM);
  auto r = Run({}, {"udp", std::to_string(l.port())});
  EXPECT_HELD(r, "held recv errno=ECONNREFUSED");
  EXPECT_FALSE(l.ReceivedAnything());
}

TEST_F(HostileTest, NoRouteToAnyNonLoopbackAddress) {
  auto r = Run({}, {"egress"});
  for (const char* what : {"tcp4", "udp4", "tcp6", "udp6"}) {
    EXPECT_HELD(r, std::string("held ") + what + " errno=ENETUNREACH");
  }
  EXPECT_EQ(r.result["outcome"], "OK");
}

TEST_F(HostileTest, NetNamespaceHasOnlyLoopbackAndNoHostSockets) {
  Listener l(SOCK_STREAM);
  auto dev = Run({}, {"cat", "/proc/net/dev"});
  EXPECT_NE(dev.out.find("lo:"), std::string::npos) << dev.out;
  EXPECT_EQ(std::count(dev.out.begin(), dev.out.end(), ':'), 1) << "only lo expected:\n" << dev.out;
  auto tcp = Run({}, {"cat", "/proc/net/tcp"});
  char port_hex[8];
  std::snprintf(port_hex, sizeof(port_hex), ":%04X", l.port());
  EXPECT_EQ(tcp.out.find(port_hex), std::string::npos) << "host listener visible:\n" << tcp.out;
}

// Raw and packet sockets, other IP protocols and other netlink families stay refused: harmless
// probes inside the job's own network namespace (counted, named, the job goes on).
TEST_F(HostileTest, RawPacketAndOtherNetlinkSocketsAreRefusedProbes) {
  for (const auto& [kind, err, name] :
       {std::tuple{"raw", "EPERM", "socket(AF_INET)"}, std::tuple{"raw6", "EPERM", "socket(AF_INET6)"},
        std::tuple{"packet", "EPERM", "socket(AF_PACKET)"}, std::tuple{"sctp", "EPROTONOSUPPORT", "socket(AF_INET)"},
        std::tuple{"seqpacket", "EPROTONOSUPPORT", "socket(AF_INET)"},
        std::tuple{"netlink", "EPROTONOSUPPORT", "socket(AF_NETLINK)"}}) {
    auto r = Run({}, {kind});
    EXPECT_NE(r.out.find(std::string("held socket errno=") + err), std::string::npos) << kind << ": " << r.out;
    EXPECT_EQ(r.result["probes_by_syscall"][name], 1) << kind << r.result.dump();
    EXPECT_EQ(r.result["seccomp_violations"], 0) << kind;
    EXPECT_EQ(r.result["outcome"], "OK") << kind;
  }
  for (const char* kind : {"unix", "tcp6", "netlink-route"}) {
    auto ok = Run({}, {kind});
    EXPECT_NE(ok.out.find(std::string(kind) + " socket ok"), std::string::npos) << ok.out;
    EXPECT_EQ(ok.result["outcome"], "OK");
    EXPECT_EQ(ok.result["probes"], 0);
  }
}

// A family that reaches past the network namespace (vsock: the hypervisor) is an escape attempt.
TEST_F(HostileTest, VsockIsAnEscapeAttempt) {
  auto r = Run({}, {"vsock"});
  EXPECT_HELD(r, "held socket errno=EAFNOSUPPORT");
  EXPECT_EQ(r.result["violations_by_syscall"]["socket(AF_VSOCK)"], 1) << r.result.dump();
  EXPECT_EQ(r.result["outcome"], "VIOLATION");
  EXPECT_EQ(r.result["reason"], "denied: socket(AF_VSOCK) \u00d71");
}

TEST_F(HostileTest, HostSecretsAndStateAreNotVisible) {
  for (const char* path : {"/etc/shadow", "/etc/cordon/keys", "/etc/cordon/cordon.yaml",
                           "/var/lib/cordon", "/var/log/cordon", "/root/.ssh", "/run/cordon",
                           "/etc/resolv.conf", "/sys/kernel", "/home"}) {
    auto r = Run({}, {"read", path});
    EXPECT_HELD(r, std::string("held ") + path + " errno=ENOENT");
  }
}

TEST_F(HostileTest, InitEnvironIsInvisible) {
  auto r = Run({}, {"read", "/proc/1/environ"});
  EXPECT_HELD(r, "held /proc/1/environ errno=ENOENT");
  auto ls = Run({}, {"ls", "/proc"});
  EXPECT_EQ(ls.out.find("\n1\n"), std::string::npos) << "init visible:\n" << ls.out;
}

TEST_F(HostileTest, CannotSignalTheInit) {
  auto r = Run({}, {"kill-init"});
  EXPECT_HELD(r, "held kill 1 errno=EPERM");  // root-owned init, trainer uid 65534
  EXPECT_EQ(r.result["outcome"], "OK");
}

TEST_F(HostileTest, WritesToHostPathsFail) {
  const std::string victim = (work_ / "victim").string();  // a real host path, outside the image
  auto r = Run({}, {"create", victim});
  EXPECT_HELD(r, "errno=ENOENT");
  EXPECT_FALSE(fs::exists(victim));
  for (const char* path : {"/usr/cordon-escape", "/job/escape", "/etc/escape", "/data/escape",
                           "/dev/escape", "/escape"}) {
    auto w = Run({}, {"create", path});
    EXPECT_HELD(w, std::string("held ") + path + " errno=EROFS");
  }
  EXPECT_FALSE(fs::exists(work_ / "image" / "escape"));
}

TEST_F(HostileTest, CorePatternIsNotWritable) {
  const std::string before = Slurp("/proc/sys/kernel/core_pattern");
  auto r = Run({}, {"write", "/proc/sys/kernel/core_pattern"});
  // Root-owned 0644 and on a read-only bind: the uid check answers first.
  EXPECT_HELD(r, "held /proc/sys/kernel/core_pattern errno=EACCES");
  EXPECT_EQ(Slurp("/proc/sys/kernel/core_pattern"), before);
}

TEST_F(HostileTest, SysrqTrigger) {
  auto r = Run({}, {"write", "/proc/sysrq-trigger"});
  if (fs::exists("/proc/sysrq-trigger")) {
    EXPECT_HELD(r, "held /proc/sysrq-trigger errno=EACCES");
  } else {  // this kernel has no CONFIG_MAGIC_SYSRQ
    EXPECT_HELD(r, "held /proc/sysrq-trigger errno=ENOENT");
  }
}

TEST_F(HostileTest, RawDevicesAreAbsentAndCannotBeMade) {
  for (const char* dev : {"/dev/sda", "/dev/vda", "/dev/mem", "/dev/kmsg", "/dev/tty", "/dev/ptmx"}) {
    auto r = Run({}, {"read", dev});
    EXPECT_HELD(r, std::string("held ") + dev + " errno=ENOENT");
  }
  auto m = Run({}, {"mknod"});
  EXPECT_HELD(m, "held mknod errno=EPERM");  // no CAP_MKNOD (not seccomp: no violation)
  EXPECT_EQ(m.result["seccomp_violations"], 0);
}

TEST_F(HostileTest, InheritedFdsAreClosed) {
  const int secret = open("/etc/hostname", O_RDONLY);  // inheritable into cordon-sandbox
  ASSERT_GE(secret, 3);
  auto r = Run({}, {"fds"}, "/job/hostile", secret);
  close(secret);
  EXPECT_HELD(r, "held fds errno=EBADF");
}

TEST_F(HostileTest, SetuidBinaryGivesNothing) {
  auto r = Run({}, {"whoami"}, "/job/hostile-suid");
  EXPECT_NE(r.out.find("uid=65534 euid=65534 gid=65534 egid=65534"), std::string::npos) << r.out;
}

TEST_F(HostileTest, PrivilegesAreDropped) {
  auto r = Run({}, {"status"});
  for (const char* line : {"Uid:\t65534\t65534\t65534\t65534", "Gid:\t65534\t65534\t65534\t65534",
                           "CapInh:\t0000000000000000", "CapPrm:\t0000000000000000",
                           "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000",
                           "CapAmb:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2",
                           "core=0 umask=077 cwd=/tmp"}) {
    EXPECT_NE(r.out.find(line), std::string::npos) << line << " missing in\n" << r.out;
  }
  EXPECT_NE(r.out.find("Groups:\t \n"), std::string::npos) << r.out;
}

TEST_F(HostileTest, EnvironmentIsCleared) {
  setenv("CORDON_TEST_SECRET", "leak", 1);
  auto r = Run({"--env", "SPEC_VAR=1"}, {"env"});
  unsetenv("CORDON_TEST_SECRET");
  EXPECT_EQ(r.out, "HOME=/tmp\nLANG=C.UTF-8\nPATH=/usr/local/bin:/usr/bin:/bin\nSPEC_VAR=1\n");
}

TEST_F(HostileTest, RefusesUidZero) {
  auto r = Run({"--uid", "0"}, {"whoami"});
  EXPECT_EQ(r.status, 125);
  EXPECT_NE(r.err.find("must not run as uid or gid 0"), std::string::npos) << r.err;
}

class DeniedSyscallTest : public HostileTest, public ::testing::WithParamInterface<const char*> {};

std::string ParamName(const std::string& param) {
  std::string n = param;
  for (char& c : n) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return n;
}

TEST_P(DeniedSyscallTest, EscapeAnsweredEpermCountedAndNamed) {
  const std::string name = GetParam();
  auto r = Run({}, {"syscall", name});
  EXPECT_HELD(r, "held " + name + " errno=EPERM");
  std::string counted = name.rfind("TIOC", 0) == 0 ? "ioctl" : name;
  EXPECT_EQ(r.result["violations_by_syscall"][counted], 1) << r.result.dump();
  EXPECT_EQ(r.result["seccomp_violations"], 1);
  EXPECT_EQ(r.result["outcome"], "VIOLATION");
  EXPECT_EQ(r.result["reason"], "denied: " + counted + " \u00d71");
}

INSTANTIATE_TEST_SUITE_P(
    EveryEscapeCall, DeniedSyscallTest,
    ::testing::Values("mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "clone",
                      "ptrace", "process_vm_readv", "process_vm_writev", "bpf",
                      "keyctl", "add_key", "request_key", "userfaultfd", "kexec_load", "kexec_file_load",
                      "init_module", "finit_module", "delete_module", "open_by_handle_at",
                      "fanotify_init", "acct", "swapon", "swapoff",
                      "reboot", "settimeofday", "TIOCSTI", "TIOCSTI-high-bits",
                      "TIOCLINUX", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
                      "open_tree", "mount_setattr", "pidfd_getfd", "clock_settime",
                      "sethostname", "setdomainname", "quotactl",
                      "iopl", "ioperm", "vhangup", "uselib", "lookup_dcookie"),
    [](const ::testing::TestParamInfo<const char*>& param) { return ParamName(param.param); });

// Harmless probes: answered with the errno a library expects, counted and named, the job's
// outcome untouched.
class ProbeTest : public HostileTest, public ::testing::WithParamInterface<std::pair<const char*, const char*>> {};

TEST_P(ProbeTest, AnsweredCountedNeverAViolation) {
  const auto [name, err] = GetParam();
  auto r = Run({}, {"syscall", name});
  EXPECT_HELD(r, std::string("held ") + name + " errno=" + err);
  EXPECT_EQ(r.result["probes_by_syscall"][name], 1) << r.result.dump();
  EXPECT_EQ(r.result["probes"], 1);
  EXPECT_EQ(r.result["seccomp_violations"], 0);
  EXPECT_EQ(r.result["outcome"], "OK");
}

INSTANTIATE_TEST_SUITE_P(
    EveryProbe, ProbeTest,
    ::testing::Values(std::pair{"io_uring_setup", "ENOSYS"}, std::pair{"io_uring_enter", "ENOSYS"},
                      std::pair{"io_uring_register", "ENOSYS"}, std::pair{"perf_event_open", "EACCES"},
                      std::pair{"syslog", "EPERM"}, std::pair{"kcmp", "EPERM"},
                      std::pair{"name_to_handle_at", "EOPNOTSUPP"}, std::pair{"adjtimex", "EPERM"},
                      std::pair{"clock_adjtime", "EPERM"}, std::pair{"personality", "EPERM"}),
    [](const ::testing::TestParamInfo<std::pair<const char*, const char*>>& param) {
      return ParamName(param.param.first);
    });

TEST_F(HostileTest, DescendantsAreFilteredAndCountedToo) {
  auto r = Run({}, {"child-syscall", "bpf"});
  EXPECT_HELD(r, "held bpf errno=EPERM");
  EXPECT_EQ(r.result["violations_by_syscall"]["bpf"], 1);
  EXPECT_EQ(r.result["outcome"], "VIOLATION");
}

TEST_F(HostileTest, Clone3IsEnosysSoLibcFallsBackToCheckedClone) {
  auto r = Run({}, {"syscall", "clone3"});
  EXPECT_HELD(r, "held clone3 errno=ENOSYS");
  EXPECT_EQ(r.result["seccomp_violations"], 0);
}

TEST_F(HostileTest, OtherAbisAreKilled) {
  for (const char* abi : {"x32", "int80"}) {
    auto r = Run({}, {abi});
    EXPECT_EQ(r.result["signal"], SIGSYS) << abi;
    EXPECT_EQ(r.result["outcome"], "VIOLATION") << abi;
    EXPECT_EQ(r.result["violations_by_syscall"]["non-native-abi"], 1) << abi;
    EXPECT_EQ(r.status, 128 + SIGSYS);
  }
}

TEST_F(HostileTest, ForkBombHitsPidsLimit) {
  auto r = Run({"--pids", "32"}, {"forkbomb"});
  EXPECT_HELD(r, "held fork errno=EAGAIN");
  EXPECT_EQ(r.result["pids_limit_hit"], true) << r.result.dump();
}

TEST_F(HostileTest, MemoryHogIsOomKilled) {
  auto r = Run({"--memory", "48Mi", "--scratch", "16Mi"}, {"memhog"});
  EXPECT_EQ(r.result["memory_limit_hit"], true) << r.result.dump();
  EXPECT_EQ(r.result["memory_limit_bytes"], 64ULL << 20) << "the trainer's memory plus the scratch";
  EXPECT_EQ(r.result["signal"], SIGKILL);
  EXPECT_EQ(r.result["outcome"], "SIGNALED");
  EXPECT_EQ(r.status, 128 + SIGKILL);
  EXPECT_LE(r.result["peak_memory_bytes"].get<std::uint64_t>(), 64ULL << 20);
}

TEST_F(HostileTest, SleepPastTimeoutIsKilled) {
  auto r = Run({"--timeout", "1s"}, {"sleep"});
  EXPECT_EQ(r.result["outcome"], "TIMEOUT");
  EXPECT_EQ(r.result["timeout_hit"], true);
  EXPECT_EQ(r.status, 128 + SIGKILL);
  EXPECT_LT(r.result["wall_ms"].get<int>(), 3000);
}

bool ProcessWithArgExists(const std::string& marker) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string cmdline = Slurp(entry.path() / "cmdline");
    // The helper's own argv carries the marker too; only the trainer's counts.
    if (cmdline.rfind(SandboxBin(), 0) == 0) continue;
    if (cmdline.find(marker) != std::string::npos) return true;
  }
  return false;
}

TEST_F(HostileTest, DoubleForkedDaemonIsGoneAfterTheJob) {
  const std::string marker = "cordon-daemon-" + std::to_string(getpid());
  auto r = Run({"--timeout", "30s"}, {"daemon", marker});
  EXPECT_NE(r.out.find("daemon started"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(r.result["outcome"], "OK");
  EXPECT_LT(r.result["wall_ms"].get<int>(), 5000);  // the job did not wait for the daemon
  EXPECT_FALSE(ProcessWithArgExists(marker));
}

TEST_F(HostileTest, CpuQuotaHolds) {
  auto r = Run({"--cpus", "0.25"}, {"spin", "1000"});
  EXPECT_EQ(r.result["outcome"], "OK");
  const int cpu = r.result["cpu_user_ms"].get<int>() + r.result["cpu_system_ms"].get<int>();
  EXPECT_LT(cpu, 500) << "a quarter CPU for one second of wall clock: " << r.result.dump();
  EXPECT_GT(cpu, 10);
  EXPECT_EQ(r.result["cpu_throttled"], true);
}

bool WaitFor(const std::function<bool()>& cond) {
  for (int i = 0; i < 300; ++i) {
    if (cond()) return true;
    usleep(10000);
  }
  return false;
}

// The sandbox dies with its parent: SIGKILL of cordon-sandbox takes the whole job with it.
TEST_F(HostileTest, KillingTheHelperKillsTheJob) {
  const std::string marker = "cordon-orphan-" + std::to_string(getpid());
  const pid_t helper = fork();
  if (helper == 0) {
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execl(SandboxBin().c_str(), SandboxBin().c_str(), "--image", (work_ / "image").c_str(), "--",
          "/job/hostile", "sleep", marker.c_str(), static_cast<char*>(nullptr));
    _exit(99);
  }
  ASSERT_TRUE(WaitFor([&] { return ProcessWithArgExists(marker); })) << "trainer never started";
  kill(helper, SIGKILL);
  waitpid(helper, nullptr, 0);
  EXPECT_TRUE(WaitFor([&] { return !ProcessWithArgExists(marker); })) << "trainer outlived its helper";
}

// ... and vice versa: SIGTERM to the helper stops the job and reports EXTERNAL_KILL.
TEST_F(HostileTest, TerminatingTheHelperIsAnExternalKill) {
  const std::string marker = "cordon-term-" + std::to_string(getpid());
  const fs::path result = work_ / "term.json";
  const pid_t helper = fork();
  if (helper == 0) {
    execl(SandboxBin().c_str(), SandboxBin().c_str(), "--image", (work_ / "image").c_str(), "--result",
          result.c_str(), "--", "/job/hostile", "sleep", marker.c_str(), static_cast<char*>(nullptr));
    _exit(99);
  }
  ASSERT_TRUE(WaitFor([&] { return ProcessWithArgExists(marker); }));
  kill(helper, SIGTERM);
  int status = 0;
  waitpid(helper, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGKILL);
  EXPECT_EQ(nlohmann::json::parse(Slurp(result))["outcome"], "EXTERNAL_KILL");
  EXPECT_FALSE(ProcessWithArgExists(marker));
}

TEST_F(HostileTest, FillingTheTmpfsHitsEnospc) {
  auto r = Run({"--scratch", "8Mi", "--memory", "256Mi"}, {"filltmp"});
  EXPECT_HELD(r, "held write /tmp errno=ENOSPC");
  EXPECT_EQ(r.result["scratch_noswap"], true);
}

TEST_F(HostileTest, ExitStatusConventions) {
  EXPECT_EQ(Run({}, {"exit", "7"}).status, 7);
  EXPECT_EQ(Run({}, {"kill-self", "15"}).status, 128 + 15);
  auto missing = Run({}, {}, "no-such-command");
  EXPECT_EQ(missing.status, 127);
  EXPECT_EQ(missing.result["failed_step"], "exec-trainer");
  auto denied = Run({}, {}, "/job/root-only");
  EXPECT_EQ(denied.status, 126);
  EXPECT_EQ(denied.result["failed_step"], "exec-trainer");
  EXPECT_NE(denied.result["reason"].get<std::string>().find("Permission denied"), std::string::npos);
  auto bad_image = Run({"--image", "/nonexistent-image"}, {"whoami"});
  EXPECT_EQ(bad_image.status, 125);
}

// Not hostile: the sandbox must still run a real ML runtime (numpy needs the dynamic linker
// cache and /etc/alternatives for its BLAS).
TEST_F(HostileTest, NumpyRunsInside) {
  if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) GTEST_SKIP() << "no python3-numpy";
  auto r = Run({"--memory", "1Gi"}, {"-c", "import numpy; print(numpy.arange(4).dot(numpy.arange(4)))"},
               "/usr/bin/python3");
  EXPECT_EQ(r.out, "14\n") << r.err;
  EXPECT_EQ(r.result["outcome"], "OK") << r.result.dump();
}

TEST_F(HostileTest, HostnameAndFilesystemLayout) {
  auto ls = Run({}, {"ls", "/"});
  for (const char* entry : {"usr", "job", "data", "out", "tmp", "proc", "dev", "etc"}) {
    EXPECT_NE(ls.out.find(std::string("\n") + entry + "\n"), std::string::npos) << entry << ls.out;
  }
  for (const char* absent : {"work", "root", "home", "var", "sys", "run", "mnt", "srv", "opt"}) {
    EXPECT_EQ(ls.out.find(std::string("\n") + absent + "\n"), std::string::npos) << absent;
  }
  auto hosts = Run({}, {"cat", "/etc/hosts"});
  EXPECT_EQ(hosts.out, "127.0.0.1 localhost\n::1 localhost\n");
}

}  // namespace
