#include "seccomp_policy.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cordon/unique_fd.h"

namespace cordon::sandbox {
namespace {

// Unconditionally denied (counted, EPERM).
constexpr const char* kDenied[] = {
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "open_by_handle_at", "name_to_handle_at", "fanotify_init", "syslog", "acct",
    "swapon", "swapoff", "reboot", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "sethostname", "setdomainname", "quotactl", "iopl", "ioperm", "vhangup", "uselib",
    "lookup_dcookie", "nfsservctl", "_sysctl",
};

constexpr std::uint64_t kNamespaceFlags[] = {CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,
                                             CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
                                             CLONE_NEWCGROUP};

}  // namespace

SeccompPolicyBuilder::SeccompPolicyBuilder() : ctx_(seccomp_init(SCMP_ACT_ALLOW)) {
  if (ctx_ == nullptr) {
    sticky_ = Fail(Errc::kInternal, "seccomp_init failed");
    return;
  }
  // Any other ABI (i386 int 0x80, x32 numbers on x86_64) kills the whole process.
  Check(seccomp_attr_set(ctx_, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "bad-arch action");
  // The caller sets no_new_privs itself, before the raw load.
  Check(seccomp_attr_set(ctx_, SCMP_FLTATR_CTL_NNP, 0), "nnp attribute");
}

SeccompPolicyBuilder::~SeccompPolicyBuilder() {
  if (ctx_ != nullptr) seccomp_release(ctx_);
}

SeccompPolicyBuilder& SeccompPolicyBuilder::Check(int rc, const char* what) {
  if (sticky_ && rc < 0) {
    sticky_ = Fail(Errc::kInternal, std::string("seccomp rule ") + what + ": " + std::strerror(-rc));
  }
  return *this;
}

SeccompPolicyBuilder& SeccompPolicyBuilder::Deny(const char* name) { return DenyIf(name, {}); }

SeccompPolicyBuilder& SeccompPolicyBuilder::DenyIf(const char* name,
                                                   std::initializer_list<scmp_arg_cmp> all_of) {
  if (!sticky_) return *this;
  const int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return *this;  // not on this architecture: nothing to deny
  return Check(seccomp_rule_add_array(ctx_, SCMP_ACT_NOTIFY, nr,
                                      static_cast<unsigned>(all_of.size()), all_of.begin()),
               name);
}

SeccompPolicyBuilder& SeccompPolicyBuilder::DenyTrainerDefaults() {
  for (const char* name : kDenied) Deny(name);
  for (std::uint64_t flag : kNamespaceFlags) {
    DenyIf("clone", {SCMP_A0_64(SCMP_CMP_MASKED_EQ, flag, flag)});
  }
  if (sticky_) {
    Check(seccomp_rule_add(ctx_, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0), "clone3");
  }
  // Sockets: AF_UNIX only. Compared on the low 32 bits (int argument).
  DenyIf("socket", {SCMP_A0_32(SCMP_CMP_NE, AF_UNIX)});
  DenyIf("socketpair", {SCMP_A0_32(SCMP_CMP_NE, AF_UNIX)});
  // ioctl request numbers are compared masked to 32 bits: the kernel truncates them to
  // unsigned int, so 0x1_0000_5412 is TIOCSTI too.
  DenyIf("ioctl", {SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu, TIOCSTI)});
  DenyIf("ioctl", {SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu, TIOCLINUX)});
  // personality: PER_LINUX (0) and PER_LINUX32 (8) only; everything else, even the query
  // 0xffffffff, is denied (libseccomp cannot AND two comparisons of one argument).
  DenyIf("personality", {SCMP_A0_32(SCMP_CMP_GT, 0x8)});
  for (std::uint32_t low = 1; low < 8; ++low) {
    DenyIf("personality", {SCMP_A0_32(SCMP_CMP_MASKED_EQ, 0x7, low)});
  }
  return *this;
}

Status SeccompPolicyBuilder::TryBuild(SeccompProgram& out) {
  if (built_) return Fail(Errc::kInternal, "seccomp policy already built");
  built_ = true;
  if (!sticky_) return sticky_;
  const int fd = memfd_create("cordon-seccomp", MFD_CLOEXEC);
  if (fd < 0) return FailErrno("memfd_create for seccomp program");
  UniqueFd mem(fd);
  if (int rc = seccomp_export_bpf(ctx_, mem.get()); rc < 0) {
    return Fail(Errc::kInternal, std::string("seccomp_export_bpf: ") + std::strerror(-rc));
  }
  const off_t size = lseek(mem.get(), 0, SEEK_END);
  if (size <= 0 || size % static_cast<off_t>(sizeof(sock_filter)) != 0) {
    return Fail(Errc::kInternal, "seccomp program has a bad size");
  }
  out.instructions.resize(static_cast<std::size_t>(size) / sizeof(sock_filter));
  if (pread(mem.get(), out.instructions.data(), static_cast<std::size_t>(size), 0) != size) {
    return FailErrno("reading seccomp program");
  }
  out.prog.len = static_cast<unsigned short>(out.instructions.size());
  out.prog.filter = out.instructions.data();
  return {};
}

std::string SyscallName(int nr) {
  char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
  if (name == nullptr) return "nr-" + std::to_string(nr);
  std::string result(name);
  std::free(name);
  return result;
}

}  // namespace cordon::sandbox
