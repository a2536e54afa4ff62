// cordon-sandbox --probe: asks the kernel, in throwaway child processes, what the sandbox needs.
#include <fcntl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "cgroup.h"
#include "cordon/sandbox/sandbox.h"
#include "filesystem.h"
#include "init.h"

namespace cordon::sandbox {
namespace {

// Runs fn in a forked child (own namespaces are created there); returns its errno or 0.
template <class F>
int InChild(F&& fn) {
  const pid_t pid = fork();
  if (pid == 0) _exit(fn());
  if (pid < 0) return errno;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

std::string Verdict(int err) { return err == 0 ? "yes" : std::string("NO (") + std::strerror(err) + ")"; }

int TryUnshare(int flag) { return InChild([flag] { return unshare(flag) == 0 ? 0 : errno; }); }

int TryNoswap() {
  return InChild([] {
    if (unshare(CLONE_NEWNS) != 0) return errno;
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return errno;
    return mount("tmpfs", "/tmp", "tmpfs", 0, "size=1m,noswap") == 0 ? 0 : errno;
  });
}

int TryUserNsAsNobody() {
  return InChild([] {
    if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) return errno;
    return unshare(CLONE_NEWUSER) == 0 ? 0 : errno;
  });
}

bool SeccompAction(unsigned action) {
  return syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
}

void Namespaces(std::ostringstream& out) {
  out << "namespaces (the sandbox needs all; set-up fails at clone-namespaces without one):\n";
  const std::pair<const char*, int> kinds[] = {
      {"mount", CLONE_NEWNS}, {"pid", CLONE_NEWPID}, {"net", CLONE_NEWNET}, {"ipc", CLONE_NEWIPC},
      {"uts", CLONE_NEWUTS}, {"cgroup", CLONE_NEWCGROUP}, {"user", CLONE_NEWUSER}};
  for (auto [name, flag] : kinds) out << "  " << name << ": " << Verdict(TryUnshare(flag)) << "\n";
  out << "  unprivileged user ns (as uid 65534): " << Verdict(TryUserNsAsNobody())
      << " -- not used: the trainer runs as a real unprivileged host uid, and seccomp denies it "
         "creating user namespaces\n";
}

void Seccomp(std::ostringstream& out) {
  const bool filter = prctl(PR_GET_SECCOMP) >= 0;
  out << "seccomp: filter " << (filter ? "yes" : "NO") << "\n";
  const std::pair<const char*, unsigned> actions[] = {
      {"kill_process", SECCOMP_RET_KILL_PROCESS}, {"trap", SECCOMP_RET_TRAP},
      {"errno", SECCOMP_RET_ERRNO}, {"user_notif", SECCOMP_RET_USER_NOTIF},
      {"log", SECCOMP_RET_LOG}};
  for (auto [name, action] : actions) {
    out << "  action " << name << ": " << (SeccompAction(action) ? "yes" : "NO") << "\n";
  }
  out << "  used: user_notif (denied syscalls counted by the init, answered EPERM), "
         "errno (clone3 -> ENOSYS), kill_process (other ABIs); without user_notif set-up fails "
         "at trainer-seccomp-load\n";
}

void Cgroups(std::ostringstream& out) {
  const CgroupSupport s = DetectCgroups();
  out << "cgroups:\n  v2 mount: " << (s.v2_mount.empty() ? "none" : s.v2_mount)
      << ", own cgroup " << s.v2_own_path << ", controllers: [" << s.v2_controllers << "]\n";
  out << "  v1 controllers:";
  for (const auto& c : s.v1_controllers) out << " " << c;
  if (s.v1_controllers.empty()) out << " none";
  out << "\n";
  auto v2_parent = PickV2Parent(s, CgroupLimits{1, 1, 1, ""}, false);
  if (v2_parent) {
    out << "  will use: v2 under " << *v2_parent
        << " (memory.max + memory.swap.max=0, pids.max, cpu.max; "
           "clone3 CLONE_INTO_CGROUP)\n";
  } else if (!s.v1_controllers.empty()) {
    out << "  v2 unusable:" << v2_parent.error().message.substr(v2_parent.error().message.find(':') + 1) << "\n";
    out << "  will use: v1 (memory.limit_in_bytes + memsw, pids.max, cpu.cfs_quota_us); "
           "v2 lacks memory/pids/cpu here (they are bound to v1); the init joins by writing 0 to "
           "each tasks file (no threadgroup lock, no RCU grace period)\n";
  } else {
    out << "  will use: nothing -- " << (v2_parent ? "" : v2_parent.error().message)
        << "; runs with limits fail at the cgroup step (rlimits NPROC, CPU, AS stay a second "
           "line)\n";
  }
}

void Memory(std::ostringstream& out) {
  const int noswap = TryNoswap();
  const bool swap = SwapActive();
  utsname u{};
  uname(&u);
  out << "kernel: " << u.release << "\n";
  out << "tmpfs noswap: " << Verdict(noswap) << "\n  swap active: " << (swap ? "yes" : "no") << "\n";
  if (noswap == 0) {
    out << "  will do: scratch tmpfs mounted noswap\n";
  } else if (swap) {
    out << "  will do: refuse to run (mount-scratch-tmpfs) unless allow_swap is set\n";
  } else {
    out << "  will do: mount scratch without noswap (no swap is active); recorded in the result\n";
  }
  const int hidepid = InChild([] {
    if (unshare(CLONE_NEWNS) != 0) return errno;
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return errno;
    return mount("proc", "/tmp", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible") == 0 ? 0 : errno;
  });
  out << "proc hidepid=invisible: " << Verdict(hidepid)
      << (hidepid == 0 ? "\n" : " -- will use hidepid=2 (init's /proc/1 then EACCES, not ENOENT)\n");
  const bool memsw = access("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", F_OK) == 0;
  out << "v1 swap accounting (memory.memsw): " << (memsw ? "yes" : "no (v1 limits RAM only)") << "\n";
}

// What a hardened service (systemd's PrivateDevices=, ProtectHostname=, RestrictAddressFamilies=)
// refuses, each tried as the sandbox init does it, and the path the sandbox takes.
void HardenedService(std::ostringstream& out) {
  const int mknod_err = InChild([] {
    if (unshare(CLONE_NEWNS) != 0) return errno;
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return errno;
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k") != 0) return errno;
    return mknod("/tmp/null", S_IFCHR | 0666, makedev(1, 3)) == 0 ? 0 : errno;
  });
  struct stat st {};
  const bool host_null = stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3);
  out << "mknod of /dev nodes: " << Verdict(mknod_err) << "\n  will do: "
      << (mknod_err == 0 ? "mknod null zero full random urandom (dev_nodes: mknod)"
          : mknod_err == EPERM
              ? (host_null ? "bind this process's /dev/null, zero, full, random, urandom instead (dev_nodes: bind)"
                           : "fail at mount-dev: mknod refused and /dev/null is not the 1:3 device to bind")
              : "fail at mount-dev")
      << "\n";
  const int uts_err = InChild([] {
    if (unshare(CLONE_NEWUTS) != 0) return errno;
    return sethostname("cordon", 6) == 0 ? 0 : errno;
  });
  out << "sethostname in a new uts ns: " << Verdict(uts_err) << "\n  will do: "
      << (uts_err == 0 ? "set the hostname" : uts_err == EPERM
              ? "carry on without it (hostname_set: false; /etc/hostname still says cordon)"
              : "fail at set-hostname")
      << "\n";
  const int lo_err = InChild([] { return unshare(CLONE_NEWNET) != 0 ? errno : SetLoopbackUp(); });
  const int owned_err = InChild([] {
    return unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0 ? errno : SetLoopbackUp();
  });
  const int inet_err = InChild([] {
    const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    return s >= 0 ? 0 : errno;
  });
  out << "loopback up through an AF_UNIX socket's ioctl: " << Verdict(lo_err)
      << "\n  in a network namespace owned by a user namespace of the init's: " << Verdict(owned_err)
      << "\n  will do: "
      << (lo_err == 0 ? "bring lo up"
          : lo_err != EPERM ? "fail at loopback-up"
          : owned_err == 0 ? "bring lo up in a network namespace the init owns (no CAP_NET_ADMIN needed)"
                           : "leave lo down (no CAP_NET_ADMIN, user namespaces refused; loopback_up: false)")
      << "\n  AF_INET sockets: " << Verdict(inet_err)
      << (inet_err == 0 ? "" : " -- refused to this process and so to every trainer it starts: no loopback TCP/UDP")
      << "\n";
}

}  // namespace

std::string ProbeHost() {
  std::ostringstream out;
  Namespaces(out);
  Seccomp(out);
  Cgroups(out);
  Memory(out);
  HardenedService(out);
  out << "running as uid " << getuid() << (getuid() == 0 ? "" : " -- the sandbox needs root") << "\n";
  return out.str();
}

}  // namespace cordon::sandbox
