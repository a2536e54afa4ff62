#include "seccomp_policy.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cordon/unique_fd.h"

namespace cordon::sandbox {
namespace {

// Escape calls: they would change the kernel, a namespace, another process or the machine.
// Denied with EPERM, counted as violations: the job's outcome becomes VIOLATION.
constexpr const char* kEscapes[] = {
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
    "bpf", "keyctl", "add_key", "request_key", "userfaultfd",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "open_by_handle_at", "fanotify_init", "acct",
    "swapon", "swapoff", "reboot", "settimeofday", "clock_settime",
    "sethostname", "setdomainname", "quotactl", "iopl", "ioperm", "vhangup", "uselib",
    "lookup_dcookie", "nfsservctl", "_sysctl",
};

// Harmless probes: libraries try them and carry on when refused (io_uring falls back to
// threads, a profiler to timers, ntp_gettime to nothing). Answered with the errno a
// library expects, counted as probes, never a job's failure.
struct Probe {
  const char* name;
  int err;
};
constexpr Probe kProbes[] = {
    {"io_uring_setup", ENOSYS}, {"io_uring_enter", ENOSYS}, {"io_uring_register", ENOSYS},
    {"perf_event_open", EACCES}, {"syslog", EPERM}, {"kcmp", EPERM},
    {"name_to_handle_at", EOPNOTSUPP}, {"adjtimex", EPERM}, {"clock_adjtime", EPERM},
    {"personality", EPERM},
};

constexpr std::uint64_t kNamespaceFlags[] = {CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,
                                             CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
                                             CLONE_NEWCGROUP};

// Socket families the trainer may open: AF_UNIX, and inside the job's own (empty) network
// namespace AF_INET/AF_INET6 (TCP/UDP) and AF_NETLINK/NETLINK_ROUTE (address and route reads).
bool AllowedFamily(int family) {
  return family == AF_UNIX || family == AF_INET || family == AF_INET6 || family == AF_NETLINK;
}

// Families a refused socket() of which stays inside the job's network namespace: a probe.
// Every other family (AF_VSOCK reaches the hypervisor, AF_ALG/AF_BLUETOOTH/... are kernel
// surface no trainer needs) is an escape attempt.
bool ProbeFamily(int family) {
  return family == AF_INET || family == AF_INET6 || family == AF_NETLINK || family == AF_PACKET;
}

constexpr int kMaxFamily = 64;  // above AF_MAX (46 today); larger values are denied wholesale

struct NamedFamily {
  int family;
  const char* name;
};
constexpr NamedFamily kFamilyNames[] = {
    {AF_UNIX, "AF_UNIX"}, {AF_INET, "AF_INET"}, {AF_INET6, "AF_INET6"}, {AF_NETLINK, "AF_NETLINK"},
    {AF_PACKET, "AF_PACKET"}, {AF_VSOCK, "AF_VSOCK"}, {AF_ALG, "AF_ALG"}, {AF_BLUETOOTH, "AF_BLUETOOTH"},
    {AF_XDP, "AF_XDP"}, {AF_CAN, "AF_CAN"}, {AF_TIPC, "AF_TIPC"}, {AF_KCM, "AF_KCM"}, {AF_RDS, "AF_RDS"},
    {AF_KEY, "AF_KEY"}, {AF_APPLETALK, "AF_APPLETALK"}, {AF_X25, "AF_X25"}, {AF_AX25, "AF_AX25"},
    {AF_QIPCRTR, "AF_QIPCRTR"}, {AF_SMC, "AF_SMC"}, {AF_MCTP, "AF_MCTP"},
};

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
  for (const char* name : kEscapes) Deny(name);
  for (const Probe& probe : kProbes) {
    if (std::strcmp(probe.name, "personality") != 0) Deny(probe.name);
  }
  for (std::uint64_t flag : kNamespaceFlags) {
    DenyIf("clone", {SCMP_A0_64(SCMP_CMP_MASKED_EQ, flag, flag)});
  }
  if (sticky_) {
    Check(seccomp_rule_add(ctx_, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0), "clone3");
  }
  // Sockets (compared on the low 32 bits: int arguments). libseccomp cannot AND two
  // comparisons of one argument, so the refused families are listed one by one, then
  // everything above kMaxFamily (negative values too: the comparison is unsigned).
  for (int family = 0; family < kMaxFamily; ++family) {
    if (!AllowedFamily(family)) DenyIf("socket", {SCMP_A0_32(SCMP_CMP_EQ, static_cast<scmp_datum_t>(family))});
  }
  DenyIf("socket", {SCMP_A0_32(SCMP_CMP_GE, kMaxFamily)});
  for (int family : {AF_INET, AF_INET6}) {
    const auto fam = SCMP_A0_32(SCMP_CMP_EQ, static_cast<scmp_datum_t>(family));
    // SOCK_STREAM and SOCK_DGRAM only: no raw IP, no SOCK_PACKET, no SEQPACKET/RDM/DCCP (the
    // type is the low 4 bits; SOCK_NONBLOCK/SOCK_CLOEXEC sit above them).
    for (int type = 0; type < 16; ++type) {
      if (type == SOCK_STREAM || type == SOCK_DGRAM) continue;
      DenyIf("socket", {fam, SCMP_A1_32(SCMP_CMP_MASKED_EQ, 0xf, static_cast<scmp_datum_t>(type))});
    }
    // TCP and UDP only (protocol 0 picks one of them): no SCTP, DCCP, MPTCP... module autoload.
    DenyIf("socket", {fam, SCMP_A2_32(SCMP_CMP_GT, IPPROTO_UDP)});
    for (int proto = 1; proto < IPPROTO_UDP; ++proto) {
      if (proto != IPPROTO_TCP) DenyIf("socket", {fam, SCMP_A2_32(SCMP_CMP_EQ, static_cast<scmp_datum_t>(proto))});
    }
  }
  DenyIf("socket", {SCMP_A0_32(SCMP_CMP_EQ, AF_NETLINK), SCMP_A2_32(SCMP_CMP_NE, NETLINK_ROUTE)});
  DenyIf("socketpair", {SCMP_A0_32(SCMP_CMP_NE, AF_UNIX)});
  // ioctl request numbers are compared masked to 32 bits: the kernel truncates them to
  // unsigned int, so 0x1_0000_5412 is TIOCSTI too.
  DenyIf("ioctl", {SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu, TIOCSTI)});
  DenyIf("ioctl", {SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu, TIOCLINUX)});
  // personality: PER_LINUX (0) and PER_LINUX32 (8) only; everything else, even the query
  // 0xffffffff, is refused (libseccomp cannot AND two comparisons of one argument).
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

Denial ClassifyDenied(int nr, std::uint64_t arg0, std::uint64_t arg1) {
  const std::string name = SyscallName(nr);
  if (name == "socket" || name == "socketpair") {
    const auto family = static_cast<std::int32_t>(arg0);
    const auto type = static_cast<std::int32_t>(arg1) & 0xf;
    Denial d{ProbeFamily(family) ? DenialKind::kProbe : DenialKind::kEscape, EAFNOSUPPORT, family};
    if (d.kind == DenialKind::kProbe) {
      if (name == "socketpair") d.err = EOPNOTSUPP;
      else if (family == AF_PACKET || (family != AF_NETLINK && (type == SOCK_RAW || type == SOCK_PACKET))) {
        d.err = EPERM;  // what the kernel says without CAP_NET_RAW
      }
      else d.err = EPROTONOSUPPORT;  // another IP protocol, another netlink family
    }
    return d;
  }
  for (const Probe& probe : kProbes) {
    if (name == probe.name) return {DenialKind::kProbe, probe.err, -1};
  }
  return {DenialKind::kEscape, EPERM, -1};  // kEscapes, clone with namespace flags, TIOCSTI/TIOCLINUX
}

std::string DenialName(int nr, std::int32_t detail) {
  std::string name = SyscallName(nr);
  if (detail < 0) return name;
  for (const NamedFamily& f : kFamilyNames) {
    if (f.family == detail) return name + "(" + f.name + ")";
  }
  return name + "(family " + std::to_string(detail) + ")";
}

std::string SyscallName(int nr) {
  char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
  if (name == nullptr) return "nr-" + std::to_string(nr);
  std::string result(name);
  std::free(name);
  return result;
}

}  // namespace cordon::sandbox
