// The trainer's seccomp filter: a deny list over a default-allow policy, built with libseccomp
// before fork and loaded with a raw seccomp(2) call between fork and exec (no allocation there).
//
// Actions:
// - denied syscalls -> SECCOMP_RET_USER_NOTIF: the sandbox init receives each attempt on the
//   listener fd, classifies it (ClassifyDenied: an escape attempt or a harmless probe), counts
//   it by name and answers with the class's errno. The counts cannot be forged or hidden by the
//   trainer (they happen outside it).
// - clone3 -> ENOSYS, uncounted (its flags live in memory a filter cannot read; libc falls back
//   to clone(2), whose flags are checked).
// - any other architecture/ABI (i386 via int 0x80, x32) -> SECCOMP_RET_KILL_PROCESS.
#pragma once

#include <linux/filter.h>
#include <seccomp.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "cordon/error.h"

namespace cordon::sandbox {

// A compiled filter, ready for seccomp(SECCOMP_SET_MODE_FILTER) without allocation.
struct SeccompProgram {
  std::vector<sock_filter> instructions;
  sock_fprog prog{};  // points into instructions; valid while this object lives unmoved
};

// A builder with a sticky error: the first failing rule is remembered, later calls do nothing,
// TryBuild() reports it. TryBuild() may be called once.
class SeccompPolicyBuilder final {
 public:
  SeccompPolicyBuilder();
  ~SeccompPolicyBuilder();
  SeccompPolicyBuilder(const SeccompPolicyBuilder&) = delete;
  SeccompPolicyBuilder& operator=(const SeccompPolicyBuilder&) = delete;

  SeccompPolicyBuilder& DenyTrainerDefaults();  // the full list in sandbox/README.md
  [[nodiscard]] Status TryBuild(SeccompProgram& out);

 private:
  SeccompPolicyBuilder& Deny(const char* name);
  SeccompPolicyBuilder& DenyIf(const char* name, std::initializer_list<scmp_arg_cmp> all_of);
  SeccompPolicyBuilder& Check(int rc, const char* what);

  scmp_filter_ctx ctx_ = nullptr;
  bool built_ = false;
  Status sticky_{};
};

// A denied call, as the init answers it: escapes (mount, ptrace, bpf, ...) fail the job
// (VIOLATION); probes (io_uring_setup, a netlink family other than NETLINK_ROUTE, a raw
// socket, ...) are only counted. detail: the socket family for socket/socketpair, else -1.
enum class DenialKind : std::uint8_t { kEscape, kProbe };
struct Denial {
  DenialKind kind;
  int err;               // the errno the caller gets
  std::int32_t detail;
};
// Classifies a call the filter handed to the init (nr and its first two arguments).
[[nodiscard]] Denial ClassifyDenied(int nr, std::uint64_t arg0, std::uint64_t arg1);
// "mount", "socket(AF_VSOCK)": the name counts are kept under.
[[nodiscard]] std::string DenialName(int nr, std::int32_t detail);

// The name of a syscall number on the native architecture ("nr-N" when unknown).
[[nodiscard]] std::string SyscallName(int nr);

}  // namespace cordon::sandbox
