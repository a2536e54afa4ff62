// The library interface the job runner builds on: stage_in / stage_out callbacks in the init,
// init-only fds, the output directory fd, stdout capture, external stop, policy validation.
// Real namespaces, real processes; needs root (skips otherwise).
#include "cordon/sandbox/sandbox.h"
#include "cordon/testing/temp_dir.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <gtest/gtest.h>

#include "cordon/testing/slurp.h"

namespace cordon::sandbox {
namespace {

namespace fs = std::filesystem;

using cordon::testing::Slurp;

std::string Drain(int fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

Status WriteAll(int fd, std::string_view data) {
  if (write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) return FailErrno("write");
  return {};
}

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the sandbox needs root";
    temp_.emplace("sandbox-test");
    work_ = temp_->path();
    fs::create_directories(work_ / "image");
    fs::create_directories(work_ / "output");
    const char* hostile = std::getenv("CORDON_HOSTILE_BIN");
    fs::copy_file(hostile != nullptr ? hostile : CORDON_HOSTILE_BIN, work_ / "image" / "hostile");
    chmod((work_ / "image").c_str(), 0755);
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    out_read_ = p[0];
    out_write_ = p[1];
  }
  void TearDown() override {
    if (out_read_ >= 0) close(out_read_);
    if (out_write_ >= 0) close(out_write_);
  }

  Policy BasePolicy(std::vector<std::string> argv) {
    Policy p;
    p.image_dir = (work_ / "image").string();
    p.argv = std::move(argv);
    p.memory_bytes = 256ULL << 20;
    p.scratch_bytes = 16ULL << 20;
    p.timeout = std::chrono::seconds(20);
    p.stdout_fd = out_write_;
    p.stderr_fd = out_write_;
    return p;
  }

  // Runs and returns the trainer's stdout+stderr (pipe drained after the run: keep output small).
  std::string RunCapture(const Policy& p, RunResult& result) {
    auto r = sandbox::Run(p);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
    if (r) result = *r;
    close(out_write_);
    out_write_ = -1;
    return Drain(out_read_);
  }

  std::optional<cordon::testing::TempDir> temp_;  // made once the test knows it can run
  fs::path work_;
  int out_read_ = -1, out_write_ = -1;
};

TEST_F(SandboxTest, StageInTrainerStageOutRoundTrip) {
  int key_pipe[2];
  ASSERT_EQ(pipe2(key_pipe, O_CLOEXEC), 0);
  ASSERT_EQ(write(key_pipe[1], "k3y", 3), 3);
  close(key_pipe[1]);
  Policy p = BasePolicy({"/bin/sh", "-c",
                         "cat /data/input.csv > /out/model.txt && echo trained && "
                         "echo '{\"loss\":0.5}' > \"$CORDON_METRICS\""});
  p.env["CORDON_METRICS"] = "/out/metrics.jsonl";
  p.init_fds = {key_pipe[0]};
  p.output_dir = (work_ / "output").string();
  p.stage_in = [](const StageInContext& ctx) -> Status {
    char key[8] = {};
    if (read(ctx.init_fds.at(0), key, sizeof(key)) != 3) return FailErrno("read key");
    const int fd = open("/data/input.csv", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return FailErrno("create /data/input.csv");
    Status st = WriteAll(fd, std::string("name,key\nalice,") + key + "\n");
    close(fd);
    return st;
  };
  p.stage_out = [](const StageOutContext& ctx) -> Status {
    if (ctx.trainer_wait_status != 0 || ctx.timed_out || ctx.seccomp_violations != 0) {
      return Fail(Errc::kInternal, "trainer did not succeed cleanly");
    }
    for (const char* name : {"model.txt", "metrics.jsonl"}) {
      const int in = open((std::string("/out/") + name).c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      if (in < 0) return FailErrno(std::string("open /out/") + name);
      const std::string data = Drain(in);
      close(in);
      const int out = openat(ctx.output_dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (out < 0) return FailErrno(std::string("create output ") + name);
      Status st = WriteAll(out, data);
      close(out);
      if (!st) return st;
    }
    return {};
  };
  RunResult result;
  const std::string output = RunCapture(p, result);
  close(key_pipe[0]);
  EXPECT_EQ(result.outcome, Outcome::kOk) << result.reason;
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(output, "trained\n");
  EXPECT_EQ(Slurp(work_ / "output" / "model.txt"), "name,key\nalice,k3y\n");
  EXPECT_EQ(Slurp(work_ / "output" / "metrics.jsonl"), "{\"loss\":0.5}\n");
}

TEST_F(SandboxTest, TrainerSeesNeitherInitFdsNorOutputDir) {
  const int secret = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(secret, 0);
  Policy p = BasePolicy({"/job/hostile", "fds"});
  p.init_fds = {secret};
  p.output_dir = (work_ / "output").string();
  RunResult result;
  const std::string output = RunCapture(p, result);
  close(secret);
  EXPECT_EQ(output, "held fds errno=EBADF\n");
  EXPECT_EQ(result.outcome, Outcome::kOk) << result.reason;
}

// image_fd / output_dir_fd: the caller's fds are what /job binds and what stage_out writes
// into; the paths are never looked up (here they do not exist), and the trainer holds neither.
TEST_F(SandboxTest, ImageAndOutputDirFromFds) {
  const int image = open((work_ / "image").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  const int output = open((work_ / "output").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(image, 0);
  ASSERT_GE(output, 0);
  Policy p = BasePolicy({"/job/hostile", "fds"});
  p.image_dir = "/no/such/image";
  p.image_fd = image;
  p.output_dir_fd = output;
  p.stage_out = [](const StageOutContext& ctx) -> Status {
    const int out = openat(ctx.output_dir_fd, "done", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) return FailErrno("create done");
    close(out);
    return {};
  };
  RunResult result;
  const std::string output_text = RunCapture(p, result);
  close(image);
  close(output);
  EXPECT_EQ(result.outcome, Outcome::kOk) << result.reason;
  EXPECT_EQ(output_text, "held fds errno=EBADF\n");
  EXPECT_TRUE(fs::exists(work_ / "output" / "done"));
}

// Policy::rootfs: the tree's top-level entries make up "/", nothing of the host's /usr, /lib or
// /job; /etc is Cordon's files plus the tree's own entries; rootfs_fd wins over the path.
TEST_F(SandboxTest, RootfsIsTheTrainersRoot) {
  if (!fs::exists("/bin/busybox")) GTEST_SKIP() << "no /bin/busybox (busybox-static)";
  const fs::path root = work_ / "rootfs";
  fs::create_directories(root / "bin");
  fs::create_directories(root / "etc" / "ssl");
  fs::copy_file("/bin/busybox", root / "bin" / "busybox");
  for (const char* applet : {"sh", "ls", "cat", "test"}) fs::create_symlink("busybox", root / "bin" / applet);
  fs::create_symlink("bin", root / "sbin");
  std::ofstream(root / "etc" / "release") << "from-the-image\n";
  std::ofstream(root / "etc" / "passwd") << "evil:x:0:0::/:/bin/sh\n";
  for (const bool by_fd : {false, true}) {
    if (out_write_ < 0) {
      int pp[2];
      ASSERT_EQ(pipe2(pp, O_CLOEXEC), 0);
      close(out_read_);
      out_read_ = pp[0];
      out_write_ = pp[1];
    }
    Policy p = BasePolicy({"/bin/sh", "-c", "ls /; cat /etc/release; cat /etc/passwd; ls -d /etc/ssl"});
    p.image_dir = "/no/such/image";
    const int fd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (by_fd) p.rootfs_fd = fd;
    else p.rootfs_dir = root.string();
    RunResult result;
    const std::string out = RunCapture(p, result);
    close(fd);
    EXPECT_EQ(result.outcome, Outcome::kOk) << result.reason;
    EXPECT_NE(out.find("bin\n"), std::string::npos) << out;
    EXPECT_EQ(out.find("usr\n"), std::string::npos) << out;
    EXPECT_EQ(out.find("job\n"), std::string::npos) << out;
    EXPECT_NE(out.find("from-the-image"), std::string::npos) << out;
    EXPECT_EQ(out.find("evil:"), std::string::npos) << out;  // Cordon's passwd, not the image's
    EXPECT_NE(out.find("trainer:x:65534"), std::string::npos) << out;
    EXPECT_NE(out.find("/etc/ssl"), std::string::npos) << out;
  }
}

// Policy::gpu: character devices bound into /dev by name, driver files read-only under /nvidia.
// A stand-in device (1:3, /dev/null's numbers) takes the place of /dev/nvidia0 here.
TEST_F(SandboxTest, GpuDevicesAndDriverFilesAreBound) {
  const fs::path nv0 = work_ / "nvidia0", ctl = work_ / "nvidiactl";
  ASSERT_EQ(mknod(nv0.c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_EQ(mknod(ctl.c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_EQ(chmod(nv0.c_str(), 0666), 0);  // not the umask's 0644: the trainer opens it for writing
  std::ofstream(work_ / "libcuda.so.1") << "driver-library\n";
  std::ofstream(work_ / "nvidia-smi") << "#!/bin/sh\necho smi-ran\n";
  chmod((work_ / "nvidia-smi").c_str(), 0755);
  chmod((work_ / "libcuda.so.1").c_str(), 0644);
  chmod(work_.c_str(), 0755);
  Policy p = BasePolicy({"/bin/sh", "-c",
                         "ls /dev | tr '\\n' ' '; echo; echo x > /dev/nvidia0 && echo wrote; "
                         "cat /nvidia/lib64/libcuda.so.1; /nvidia/bin/nvidia-smi; "
                         "echo y > /nvidia/lib64/libcuda.so.1 || echo read-only"});
  p.gpu.devices = {nv0.string(), ctl.string()};
  p.gpu.libraries = {(work_ / "libcuda.so.1").string()};
  p.gpu.tools = {(work_ / "nvidia-smi").string()};
  RunResult result;
  const std::string out = RunCapture(p, result);
  EXPECT_EQ(result.outcome, Outcome::kOk) << result.reason;
  EXPECT_NE(out.find("nvidia0 nvidiactl"), std::string::npos) << out;
  EXPECT_NE(out.find("wrote"), std::string::npos) << out;
  EXPECT_NE(out.find("driver-library"), std::string::npos) << out;
  EXPECT_NE(out.find("smi-ran"), std::string::npos) << out;
  EXPECT_NE(out.find("read-only"), std::string::npos) << out;
}

TEST_F(SandboxTest, AMissingGpuDeviceIsASetupError) {
  Policy p = BasePolicy({"/bin/true"});
  p.gpu.devices = {(work_ / "nvidia7").string()};
  RunResult result;
  (void)RunCapture(p, result);
  EXPECT_EQ(result.outcome, Outcome::kSetupError);
  EXPECT_EQ(result.failed_step, "open-gpu");
  EXPECT_NE(result.reason.find("nvidia7"), std::string::npos) << result.reason;
}

// The privileged init (no seccomp) is in an empty net namespace too: the host's loopback
// listener refuses (another loopback), and nothing beyond loopback is routable.
TEST_F(SandboxTest, StageInRunsInAnEmptyNetworkNamespace) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  socklen_t len = sizeof(a);
  getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
  ASSERT_EQ(listen(listener, 1), 0);
  Policy p = BasePolicy({"/bin/true"});
  p.stage_in = [a](const StageInContext&) -> Status {
    auto attempt = [](sockaddr_in to, int expected) -> Status {
      const int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const int rc = connect(s, reinterpret_cast<sockaddr*>(&to), sizeof(to));
      const int err = errno;
      close(s);
      if (rc == 0 || err != expected) {
        return Fail(Errc::kInternal, std::string("connect gave ") + (rc == 0 ? "success" : strerrorname_np(err)));
      }
      return {};
    };
    if (auto st = attempt(a, ECONNREFUSED); !st) return st;
    sockaddr_in outside = a;
    outside.sin_addr.s_addr = htonl(0x08080808);  // 8.8.8.8
    return attempt(outside, ENETUNREACH);
  };
  RunResult result;
  RunCapture(p, result);
  close(listener);
  EXPECT_EQ(result.outcome, Outcome::kOk) << result.reason;
}

TEST_F(SandboxTest, StageInFailureIsASetupErrorNamingTheStep) {
  Policy p = BasePolicy({"/bin/true"});
  p.stage_in = [](const StageInContext&) -> Status {
    return Fail(Errc::kIntegrity, "chunk 3 failed authentication");
  };
  RunResult result;
  RunCapture(p, result);
  EXPECT_EQ(result.outcome, Outcome::kSetupError);
  EXPECT_EQ(result.failed_step, "stage-in");
  EXPECT_EQ(result.reason, "stage-in: chunk 3 failed authentication");
  EXPECT_EQ(result.ShellStatus(), 125);
}

TEST_F(SandboxTest, StageOutRunsAfterEveryProcessIsGone) {
  Policy p = BasePolicy({"/bin/sh", "-c", "(sleep 30 &) ; echo started"});
  p.stage_out = [](const StageOutContext&) -> Status {
    // Only the init itself may be left in the pid namespace.
    int others = 0;
    for (const auto& e : fs::directory_iterator("/proc")) {
      const std::string name = e.path().filename();
      if (std::isdigit(static_cast<unsigned char>(name[0])) && name != "1") ++others;
    }
    if (others != 0) return Fail(Errc::kInternal, std::to_string(others) + " processes left");
    return {};
  };
  RunResult result;
  EXPECT_EQ(RunCapture(p, result), "started\n");
  EXPECT_EQ(result.outcome, Outcome::kOk) << result.reason;
  EXPECT_LT(result.wall.count(), 5000);
}

void StopSoon(int) { RequestStop(); }

TEST_F(SandboxTest, RequestStopIsAnExternalKill) {
  Policy p = BasePolicy({"/job/hostile", "sleep"});
  signal(SIGALRM, StopSoon);
  alarm(1);
  RunResult result;
  RunCapture(p, result);
  signal(SIGALRM, SIG_DFL);
  EXPECT_EQ(result.outcome, Outcome::kExternalKill) << result.reason;
}

TEST_F(SandboxTest, StageOutLearnsTheTrainersFate) {
  Policy p = BasePolicy({"/job/hostile", "sleep"});
  p.timeout = std::chrono::milliseconds(300);
  p.stage_out = [](const StageOutContext& ctx) -> Status {
    if (!ctx.timed_out || !WIFSIGNALED(ctx.trainer_wait_status)) {
      return Fail(Errc::kInternal, "stage_out was not told about the timeout");
    }
    return {};
  };
  RunResult result;
  RunCapture(p, result);
  EXPECT_EQ(result.outcome, Outcome::kTimeout) << result.reason;
}

TEST_F(SandboxTest, PolicyValidation) {
  Policy p = BasePolicy({"/bin/true"});
  p.uid = 0;
  EXPECT_FALSE(sandbox::Run(p).has_value());
  p = BasePolicy({"/bin/true"});
  p.image_dir = "relative/dir";
  EXPECT_FALSE(sandbox::Run(p).has_value());
  p = BasePolicy({});
  EXPECT_FALSE(sandbox::Run(p).has_value());
}

TEST_F(SandboxTest, ResultJsonNamesEveryField) {
  RunResult r;
  r.outcome = Outcome::kViolation;
  r.violations_by_syscall["mount"] = 2;
  const std::string json = r.ToJson();
  for (const char* key : {"\"outcome\": \"VIOLATION\"", "exit_code", "signal", "wall_ms", "cpu_user_ms",
                          "peak_memory_bytes", "memory_limit_hit", "pids_limit_hit", "timeout_hit",
                          "seccomp_violations", "\"mount\": 2", "scratch_noswap"}) {
    EXPECT_NE(json.find(key), std::string::npos) << key;
  }
}

// A trainer's loopback: a TCP pair over 127.0.0.1 (what torch.distributed's TCPStore, ZMQ or Dask
// do on one node) and no route anywhere else. Prints "PING ENETUNREACH" when all is right.
constexpr const char* kLoopbackPy = R"(
import errno, socket, threading
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
def echo():
    c, _ = srv.accept(); c.sendall(c.recv(8).upper()); c.close()
t = threading.Thread(target=echo); t.start()
cli = socket.create_connection(srv.getsockname(), timeout=5); cli.sendall(b"ping")
reply = cli.recv(8).decode(); t.join()
out = socket.socket(); out.settimeout(5)
try:
    out.connect(("192.0.2.1", 80)); far = "CONNECTED"
except OSError as e:
    far = errno.errorcode[e.errno]
print(reply, far)
)";

TEST_F(SandboxTest, LoopbackTcpPairWorksAndNothingElseIsReachable) {
  Policy p = BasePolicy({"/usr/bin/python3", "-c", kLoopbackPy});
  RunResult result;
  const std::string out = RunCapture(p, result);
  EXPECT_EQ(result.outcome, Outcome::kOk) << result.reason << "\n" << out;
  EXPECT_EQ(out, "PING ENETUNREACH\n");
  EXPECT_TRUE(result.loopback_up);
  EXPECT_EQ(result.seccomp_violations, 0U);
  EXPECT_EQ(result.probes, 0U);
}

// cpus: 1 -> one CPU in the affinity (a cpuset cgroup or the init's affinity), the thread
// pools sized 1; a value the policy's env sets is kept.
TEST_F(SandboxTest, OneCpuShowsOneCpuAndSizesTheThreadPools) {
  Policy p = BasePolicy({"/bin/sh", "-c",
                         "nproc; echo $OMP_NUM_THREADS $MKL_NUM_THREADS $OPENBLAS_NUM_THREADS; "
                         "/usr/bin/python3 -c 'import os; print(len(os.sched_getaffinity(0)))'"});
  p.cpus = 1;
  p.env["OPENBLAS_NUM_THREADS"] = "7";
  RunResult result;
  const std::string out = RunCapture(p, result);
  EXPECT_EQ(result.outcome, Outcome::kOk) << result.reason;
  EXPECT_EQ(out, "1\n1 1 7\n1\n");
  EXPECT_EQ(result.cpus_allowed.find_first_of(",-"), std::string::npos) << result.cpus_allowed;
  EXPECT_FALSE(result.cpus_allowed.empty());
}

// An exec failure names what is missing: the "#!" interpreter of a console script, the ELF
// loader of a dynamically linked program (the file itself exists in both cases).
TEST_F(SandboxTest, ExecFailuresNameTheMissingInterpreter) {
  const fs::path script = work_ / "image" / "train";
  std::ofstream(script) << "#!/opt/venv/bin/python3\nprint('never')\n";
  chmod(script.c_str(), 0755);
  RunResult result;
  RunCapture(BasePolicy({"/job/train"}), result);
  EXPECT_EQ(result.outcome, Outcome::kSetupError);
  EXPECT_EQ(result.failed_step, "exec-trainer");
  EXPECT_EQ(result.reason, "exec-trainer: /job/train: interpreter /opt/venv/bin/python3 not found");
  EXPECT_EQ(result.ShellStatus(), 127);

  // /bin/true with its PT_INTERP renamed to a loader that does not exist (same length).
  std::string elf = Slurp("/bin/true");
  const std::string loader = "/lib64/ld-linux-x86-64.so.2";
  const std::size_t at = elf.find(loader + '\0');
  if (at == std::string::npos) GTEST_SKIP() << "not an x86-64 glibc /bin/true";
  elf.replace(at, loader.size(), "/lib64/ld-absent-x86-64.so2");
  const fs::path program = work_ / "image" / "prog";
  std::ofstream(program, std::ios::binary) << elf;
  chmod(program.c_str(), 0755);
  int p2[2];
  ASSERT_EQ(pipe2(p2, O_CLOEXEC), 0);
  close(out_read_);  // a fresh pipe for the second run (RunCapture closed the write end)
  out_read_ = p2[0];
  out_write_ = p2[1];
  RunCapture(BasePolicy({"/job/prog"}), result);
  EXPECT_EQ(result.reason,
            "exec-trainer: /job/prog: ELF interpreter (dynamic loader) /lib64/ld-absent-x86-64.so2 not found");
}

TEST(RunResultJson, RoundTripsAndRejectsGarbage) {
  RunResult r;
  r.outcome = Outcome::kViolation;
  r.reason = "the trainer tried 2 denied syscall(s)";
  r.exit_code = 3;
  r.wall = std::chrono::milliseconds(1234);
  r.peak_memory_bytes = 1 << 20;
  r.memory_limit_hit = true;
  r.seccomp_violations = 2;
  r.violations_by_syscall = {{"mount", 1}, {"ptrace", 1}};
  r.probes = 3;
  r.probes_by_syscall = {{"io_uring_setup", 2}, {"socket(AF_PACKET)", 1}};
  r.cpus_allowed = "0-1";
  r.cgroup_mode = "v1";
  r.scratch_noswap = true;
  const auto back = RunResult::FromJson(r.ToJson());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->ToJson(), r.ToJson());
  EXPECT_FALSE(RunResult::FromJson("not json").has_value());
  EXPECT_FALSE(RunResult::FromJson(R"({"outcome":"MAYBE"})").has_value());
  EXPECT_FALSE(RunResult::FromJson(R"({"outcome":"OK","exit_code":"three"})").has_value());
}

// What systemd's PrivateDevices=yes, ProtectHostname=yes and RestrictAddressFamilies=AF_UNIX do
// to the service, done for real in a child process: a seccomp filter of the same effect
// (mknod/mknodat -> EPERM, sethostname -> EPERM, socket(AF_INET/AF_INET6) -> EAFNOSUPPORT) and,
// for the unit, its CapabilityBoundingSet (no CAP_MKNOD, CAP_NET_ADMIN, CAP_KILL,
// CAP_SYS_RESOURCE). The sandbox must still run the job.
// kShippedUnit: scripts/systemd/cordond.service: `user` in RestrictNamespaces=,
// AF_INET/AF_INET6/AF_NETLINK allowed, no CAP_NET_ADMIN: lo comes up in a network namespace the
// init owns. kNoLoopbackUnit: with the opt-in drop-in scripts/systemd/no-loopback.conf
// (AF_UNIX only, no user namespaces).
enum class Caller { kPlain, kFiltered, kNoLoopbackUnit, kShippedUnit };

class HardenedCallerTest : public SandboxTest {
 protected:
  static bool FilterLikeSystemd(bool refuse_user_namespaces, bool refuse_inet) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == nullptr) return false;
    bool ok = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) == 0;
    if (refuse_user_namespaces) {  // RestrictNamespaces= without `user`
      for (int nr : {SCMP_SYS(unshare), SCMP_SYS(clone)}) {
        ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1,
                                    SCMP_A0_64(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER)) == 0;
      }
    }
    for (int nr : {SCMP_SYS(mknod), SCMP_SYS(mknodat), SCMP_SYS(sethostname)}) {
      ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0) == 0;
    }
    for (int family : {AF_INET, AF_INET6}) {
      if (!refuse_inet) break;
      ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                                  SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(family))) == 0;
    }
    ok = ok && seccomp_load(ctx) == 0;
    seccomp_release(ctx);
    return ok;
  }

  // The capabilities the shipped unit leaves out, gone from the bounding, permitted,
  // effective and inheritable sets (as systemd's CapabilityBoundingSet= does).
  static bool DropLikeTheUnit() {
    const int caps[] = {CAP_MKNOD, CAP_NET_ADMIN, CAP_KILL, CAP_SYS_RESOURCE, CAP_IPC_LOCK};
    __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct d[2] = {};
    if (syscall(SYS_capget, &h, d) != 0) return false;
    for (int cap : caps) {
      if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return false;
      const auto bit = ~(1U << (cap % 32));
      d[cap / 32].effective &= bit;
      d[cap / 32].permitted &= bit;
      d[cap / 32].inheritable &= bit;
    }
    return syscall(SYS_capset, &h, d) == 0;
  }

  static bool Refused(bool inet) {
    return mknod("/tmp/cordon-never", S_IFCHR | 0600, makedev(1, 3)) != 0 && errno == EPERM &&
           (!inet || (socket(AF_INET, SOCK_DGRAM, 0) < 0 && errno == EAFNOSUPPORT));
  }

  // Runs the policy in a child process set up as `caller` and returns the RunResult it reports
  // back as JSON.
  std::optional<RunResult> RunInChild(const Policy& p, Caller caller, std::string& output) {
    int res[2];
    if (pipe2(res, O_CLOEXEC) != 0) return std::nullopt;
    const pid_t pid = fork();
    if (pid == 0) {
      close(res[0]);
      const bool loopback = caller == Caller::kShippedUnit;
      if (caller != Caller::kPlain && !FilterLikeSystemd(caller == Caller::kNoLoopbackUnit, !loopback)) _exit(3);
      if ((caller == Caller::kNoLoopbackUnit || caller == Caller::kShippedUnit) && !DropLikeTheUnit()) {
        _exit(4);
      }
      if (caller != Caller::kPlain && !Refused(!loopback)) _exit(5);  // the test would prove nothing
      auto r = sandbox::Run(p);
      const std::string json = r ? r->ToJson() : std::string();
      _exit(write(res[1], json.data(), json.size()) == static_cast<ssize_t>(json.size()) ? 0 : 6);
    }
    close(res[1]);
    close(out_write_);
    out_write_ = -1;
    output = Drain(out_read_);
    const std::string json = Drain(res[0]);
    close(res[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
    return RunResult::FromJson(json);
  }

  // The trainer uses each node as a trainer would and leaves a background process behind (the
  // init must kill it); stage_out (the init, root, in the job's network namespace, under the
  // caller's restrictions) checks lo is as the result will say.
  Policy CheckingPolicy(bool lo_up) {
    Policy p = BasePolicy({"/bin/sh", "-c",
                           "for n in null zero full random urandom; do test -c /dev/$n || echo no $n; done; "
                           "echo discarded > /dev/null && head -c 16 /dev/urandom | wc -c && "
                           "head -c 3 /dev/zero | wc -c && { echo x > /dev/full; } 2>/dev/null || echo full; "
                           "cat /etc/hostname; sleep 60 >/dev/null 2>&1 &"});
    p.stage_out = [lo_up](const StageOutContext& ctx) -> Status {
      if (ctx.trainer_wait_status != 0) return Fail(Errc::kInternal, "trainer failed");
      const int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      ifreq ifr{};
      std::snprintf(ifr.ifr_name, IFNAMSIZ, "lo");
      const int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
      close(s);
      if (rc != 0 || ((ifr.ifr_flags & IFF_UP) != 0) != lo_up) {
        return Fail(Errc::kInternal, std::string("lo is ") + (lo_up ? "down" : "up"));
      }
      return Status{};
    };
    return p;
  }

  // CheckingPolicy(lo_up) run as `caller`: the job succeeds and the device nodes work as a
  // trainer needs them, whichever way the sandbox made them.
  auto RunChecking(bool lo_up, Caller caller) {
    std::string output;
    auto result = RunInChild(CheckingPolicy(lo_up), caller, output);
    if (result) {
      EXPECT_EQ(result->outcome, Outcome::kOk) << result->reason;
      EXPECT_EQ(output, "16\n3\nfull\ncordon\n");
    }
    return result;
  }
};

TEST_F(HardenedCallerTest, MknodSethostnameAndInetRefusedStillRunsTheJob) {
  auto result = RunChecking(true, Caller::kFiltered);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->dev_nodes, "bind");
  EXPECT_FALSE(result->hostname_set);
  EXPECT_TRUE(result->loopback_up);  // through the AF_UNIX socket: AF_INET was refused
}

// The unit's capability set with no-loopback.conf: no CAP_NET_ADMIN and no user namespaces (lo
// stays down, recorded), no CAP_KILL
// (the init still kills the trainer's background process at once: no wait for the timeout).
TEST_F(HardenedCallerTest, NoLoopbackUnitsCapabilitiesStillRunTheJob) {
  auto result = RunChecking(false, Caller::kNoLoopbackUnit);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->dev_nodes, "bind");
  EXPECT_FALSE(result->hostname_set);
  EXPECT_FALSE(result->loopback_up);
  EXPECT_LT(result->wall.count(), 10000) << "the background process was not killed";
}

// No CAP_NET_ADMIN, user namespaces allowed: lo is up in a network namespace owned by a user
// namespace of the init's; the trainer's loopback TCP works, there is still no route out.
TEST_F(HardenedCallerTest, WithoutNetAdminLoopbackComesUpInANamespaceTheInitOwns) {
  std::string output;
  Policy p = BasePolicy({"/usr/bin/python3", "-c", kLoopbackPy});
  auto result = RunInChild(p, Caller::kShippedUnit, output);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->outcome, Outcome::kOk) << result->reason << "\n" << output;
  EXPECT_TRUE(result->loopback_up);
  EXPECT_EQ(output, "PING ENETUNREACH\n");
}

TEST_F(HardenedCallerTest, UnrestrictedCallerMknodsAndSetsTheHostname) {
  auto result = RunChecking(true, Caller::kPlain);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->dev_nodes, "mknod");
  EXPECT_TRUE(result->hostname_set);
  EXPECT_TRUE(result->loopback_up);
}

}  // namespace
}  // namespace cordon::sandbox
