// cordon::sandbox — run one untrusted trainer in a sealed sandbox.
//
// Process model (see sandbox/README.md for every layer):
//   caller (root, single-threaded at the call) --clone(NEWNS|NEWPID|NEWNET|NEWIPC|NEWUTS)-->
//   sandbox init = PID 1 of the new pid namespace, still root, joins the job cgroup,
//   unshares the cgroup namespace, builds a fresh tmpfs root and pivot_roots into it
//     -> Policy::stage_in (privileged, /data writable)
//     -> fork + drop everything + seccomp + exec the trainer (uid/gid from the policy)
//     -> reap; when the trainer exits or the timeout hits, SIGKILL everything in the pid ns
//     -> Policy::stage_out (privileged, trainer and all its descendants gone)
//   The caller waits, reads cgroup accounting and returns a RunResult.
//
// Security contract:
// - The trainer never runs as uid 0 and no user namespace is used: policy.uid/gid are real,
//   unprivileged host ids (default 65534). Run() refuses uid 0 / gid 0.
// - The trainer sees only: /usr, /lib*, /bin, /sbin (read-only, nosuid, nodev), /job (the image,
//   read-only) — or, with a rootfs, that tree's top-level entries instead (read-only, nosuid,
//   nodev) —, /data (read-only after stage_in), /out and /tmp (writable, one noswap tmpfs),
//   a new /proc, a minimal /dev and a synthesized /etc (+ the host's ld.so.cache and
//   alternatives/, or the rootfs's own /etc entries, read-only). No network but an unused
//   loopback. GPU device nodes and driver files only when Policy::gpu names them.
// - Callbacks run as root inside the sandbox's namespaces, after pivot_root: they cannot see host
//   paths except through fds the caller passed (init_fds) or the output_dir fd.
// - Run() forks with a raw clone(2)/clone3(2): call it only while the calling process is
//   single-threaded. It blocks: pipes given as stdout_fd/stderr_fd must be drained elsewhere.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cordon/error.h"

namespace cordon::sandbox {

// What stage_in sees: it runs as root in the init after pivot_root. /data is writable; files it
// creates there are made group-readable for policy.gid and /data is then remounted read-only.
struct StageInContext {
  const std::vector<int>& init_fds;  // the caller's fds, same numbers as in the caller
};

// What stage_out sees: the trainer and every process it started are dead. /out is readable.
// output_dir_fd is a duplicate of Policy::output_dir_fd, else Policy::output_dir opened
// (O_DIRECTORY) before pivot_root, or -1. The trainer
// controlled /out: open its entries with O_NOFOLLOW | O_NONBLOCK (a FIFO must not block the
// init) and check with fstat that they are regular files. The trainer's fate is given so the
// caller can decide what to seal (stage_out runs whenever set-up succeeded).
struct StageOutContext {
  const std::vector<int>& init_fds;
  int output_dir_fd;
  int trainer_wait_status;           // as from waitpid(2)
  bool timed_out;
  std::uint64_t seccomp_violations;  // denied syscalls attempted by the job
};

// GPUs. DANGEROUS: the trainer reaches a kernel driver (the NVIDIA driver's ioctl surface) and
// the device's memory; give it only to jobs that need it. `devices` are host character devices
// (e.g. /dev/nvidia0, /dev/nvidiactl, /dev/nvidia-uvm) bound into the sandbox's /dev under
// their own names; `libraries` are bound read-only at /nvidia/lib64/<basename>, `tools` at
// /nvidia/bin/<basename> (the caller points LD_LIBRARY_PATH/PATH there). Nothing else of the
// host's /dev or /sys is shown. Each is opened before any mount; a missing one fails step open-gpu.
struct GpuAccess {
  std::vector<std::string> devices;
  std::vector<std::string> libraries;
  std::vector<std::string> tools;
};

// What live_output sees: the trainer is STILL RUNNING. `path` is /out-relative and lies under one
// of Policy::live_dirs; the file there was closed after a write or renamed in, and no further
// event for it came for a quarter of a second. The trainer controls the path and may change the
// file at any moment: open each component with O_NOFOLLOW and check what was opened. It runs in
// the init's event loop: while it runs, seccomp notifications and the timeout wait.
struct LiveOutputContext {
  const std::vector<int>& init_fds;
  int output_dir_fd;
  std::string_view path;
};

struct Policy {
  std::string image_dir;                  // bound read-only at /job (required unless image_fd >= 0)
  // An fd (O_PATH or O_RDONLY, O_DIRECTORY) of the image, opened by the caller: when >= 0 it is
  // what is bound at /job and image_dir is only a label; no path is looked up for the image.
  int image_fd = -1;
  // The trainer's "/" from a directory tree (an OCI image's unpacked rootfs) instead of the
  // host's system directories: each top-level entry but dev, proc, sys, tmp, data, out and etc
  // is bound read-only, nosuid, nodev (a symlink is re-created as one); /etc is synthesized as
  // always with the tree's own /etc entries bound beside it (passwd, group, hosts, hostname,
  // nsswitch.conf, resolv.conf excepted). The tree must not change while jobs use it (Cordon's
  // image cache is root-owned and written once). With a rootfs, image_dir / image_fd are unused.
  // rootfs_fd (O_PATH or O_RDONLY, O_DIRECTORY) wins over rootfs_dir, which is then a label.
  std::string rootfs_dir;
  int rootfs_fd = -1;
  GpuAccess gpu;
  std::vector<std::string> argv;          // argv[0] is resolved through PATH inside the sandbox
  std::map<std::string, std::string> env; // the trainer's env, plus PATH/HOME/LANG defaults
  uid_t uid = 65534;
  gid_t gid = 65534;
  // The trainer's own memory. The scratch tmpfs's pages are charged to the job's memory cgroup, so
  // its limit is memory_bytes + scratch_bytes (swap: none); 0 = no memory cgroup. Without a
  // memory cgroup RLIMIT_AS is memory_bytes (tmpfs pages are not address space).
  std::uint64_t memory_bytes = 2ULL << 30;
  std::uint64_t pids = 256;                  // cgroup pids limit (threads count); 0 = none
  double cpus = 0;                           // cgroup CPU quota in CPUs; 0 = none
  std::chrono::milliseconds timeout{3600 * 1000};  // wall clock for the trainer
  std::uint64_t scratch_bytes = 1ULL << 30;  // one tmpfs for /data, /out, /tmp
  // Kernels before 6.4 cannot mount tmpfs noswap. Then the sandbox refuses to run while swap is
  // active unless allow_swap is true (PII may reach swap; the result records it).
  bool allow_swap = false;
  // cgroup v2: the cgroup (path below the cgroup2 mount, e.g. "/cordon.slice") the job cgroup is
  // created in. Empty: the caller's own cgroup, or the nearest ancestor able to delegate memory,
  // pids and cpu (the sandbox enables them in its subtree_control). Ignored on cgroup v1.
  std::string cgroup_parent;
  std::string hostname = "cordon";
  std::string output_dir;                  // host directory handed to stage_out as an fd
  // An O_DIRECTORY fd of that directory, opened by the caller: when >= 0 it is handed to
  // stage_out (a duplicate) and output_dir is never opened.
  int output_dir_fd = -1;
  std::vector<int> init_fds;               // kept open in the init only, never in the trainer
  int stdin_fd = -1;                       // -1: /dev/null inside the sandbox
  int stdout_fd = 1;                       // the trainer's stdout/stderr (e.g. pipe write ends)
  int stderr_fd = 2;
  std::function<Status(const StageInContext&)> stage_in;
  std::function<Status(const StageOutContext&)> stage_out;
  // /out-relative directory prefixes ("checkpoints/"): files under them are handed to
  // live_output while the trainer runs (inotify, /out watched as the trainer's uid, at most
  // kMaxLiveWatches directories, kMaxLiveDepth deep). Empty or no live_output: nothing is watched.
  std::vector<std::string> live_dirs;
  std::function<void(const LiveOutputContext&)> live_output;
};
inline constexpr std::size_t kMaxLiveWatches = 4096;
inline constexpr int kMaxLiveDepth = 16;

enum class Outcome {
  kOk,            // the trainer exited by itself (exit_code says how)
  kSetupError,    // the sandbox could not be built; reason names the step
  kViolation,     // the trainer tried a denied syscall (counted) or was killed by seccomp
  kSignaled,      // the trainer died of a signal (memory limit: memory_limit_hit)
  kTimeout,       // the wall-clock timeout hit; everything was killed
  kExternalKill,  // the sandbox was killed from outside (RequestStop, SIGKILL of the init)
};
[[nodiscard]] const char* OutcomeName(Outcome outcome);

struct RunResult {
  Outcome outcome = Outcome::kSetupError;
  std::string reason;          // human-readable; for kSetupError "step: error"
  std::string failed_step;     // kSetupError only
  int exit_code = -1;          // the trainer's exit code, or -1 if it was signaled
  int signal = 0;              // the signal that killed the trainer, or 0
  std::chrono::milliseconds wall{0};   // trainer start to the last process reaped
  std::chrono::milliseconds cpu_user{0}, cpu_system{0};  // every process of the job
  std::uint64_t peak_memory_bytes = 0;  // the job's cgroup: the trainer's memory and the scratch
  std::uint64_t memory_limit_bytes = 0; // the cgroup limit applied: memory + scratch (0: none)
  std::uint64_t max_rss_bytes = 0;      // the largest resident set of any one process of the job
  // The scratch tmpfs: its size, the most and the last bytes in use (sampled every 100 ms while
  // the trainer runs; the last after every process died), and where the last were (allocated
  // bytes of /data, /out and /tmp; a tree past 100,000 entries is counted that far). scratch_full:
  // free space fell under min(1 MiB, 1% of the scratch) at some sample.
  std::uint64_t scratch_size_bytes = 0, scratch_peak_bytes = 0, scratch_final_bytes = 0;
  std::uint64_t scratch_data_bytes = 0, scratch_out_bytes = 0, scratch_tmp_bytes = 0;
  bool scratch_full = false;
  bool memory_limit_hit = false, pids_limit_hit = false, timeout_hit = false;
  bool cpu_throttled = false;  // the CPU quota held the job back (a quota slows, never kills)
  // Denied calls, by name ("mount", "socket(AF_VSOCK)"): escape attempts (they make the
  // outcome kViolation) and harmless probes (answered with an errno, only counted).
  std::uint64_t seccomp_violations = 0;
  std::map<std::string, std::uint64_t> violations_by_syscall;
  std::uint64_t probes = 0;
  std::map<std::string, std::uint64_t> probes_by_syscall;
  std::string cgroup_mode;     // "v2", "v1" or "none"
  bool scratch_noswap = false; // false only when allow_swap let a swappable tmpfs through
  // How the sandbox adapted to a hardened caller (systemd's PrivateDevices=, ProtectHostname=):
  // "mknod" or "bind" (mknod refused: the caller's /dev/null, zero, full, random, urandom bound,
  // the same nodes for the trainer); hostname_set false when sethostname was refused (the
  // trainer's uname then shows the caller's hostname; /etc/hostname still says Policy::hostname).
  // loopback_up false when the caller lacks CAP_NET_ADMIN (the trainer may use AF_UNIX only).
  std::string dev_nodes = "mknod";
  bool hostname_set = true;
  bool loopback_up = true;
  // The CPUs the job ran on ("0-3,8"): with a CPU limit, ceil(cpus) of the caller's, held by a
  // cpuset cgroup where the host offers one, else by the init's affinity.
  std::string cpus_allowed;
  // The shell convention: exit_code, 128+signal, 125 for a set-up failure.
  [[nodiscard]] int ShellStatus() const;
  [[nodiscard]] std::string ToJson() const;
  // The inverse of ToJson (a caller that ran the sandbox in a child process reads
  // its result back); nullopt when `text` is not such an object.
  [[nodiscard]] static std::optional<RunResult> FromJson(std::string_view text);
};

// "denied: mount ×3, bpf ×1" (most frequent first): the reason of a kViolation.
[[nodiscard]] std::string DeniedSummary(const std::map<std::string, std::uint64_t>& counts);

// Builds the sandbox, runs the trainer and tears everything down. Errors inside the sandbox are
// reported in the RunResult (kSetupError); the returned error is only for a bad policy.
[[nodiscard]] cordon::Result<RunResult> Run(const Policy& policy);

// Async-signal-safe: kills the running sandbox (if any); its result becomes kExternalKill.
void RequestStop();

// `cordon-sandbox --probe`: what this host supports and what the sandbox does about each gap.
[[nodiscard]] std::string ProbeHost();

}  // namespace cordon::sandbox
