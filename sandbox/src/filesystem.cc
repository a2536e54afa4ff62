#include "filesystem.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string_view>
#include <tuple>
#include <vector>

#include "cordon/unique_fd.h"

namespace cordon::sandbox {
namespace {

// The staging mount point in the init's private mount namespace (the host's /tmp is hidden there
// only; the image is bound from its fd, so an image under /tmp still works).
constexpr const char* kNewRoot = "/tmp";
constexpr const char* kScratchStage = "/tmp/.scratch";
constexpr unsigned long kRoBind = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV;

std::string R(std::string_view path) { return std::string(kNewRoot) + std::string(path); }

Status Mount(const char* src, const std::string& target, const char* type, unsigned long flags,
             const char* data) {
  if (mount(src, target.c_str(), type, flags, data) != 0) {
    return FailErrno(std::string("mount ") + (type ? type : (src ? src : "")) + " on " + target);
  }
  return {};
}

// The init runs with umask 0, so a new directory gets exactly `mode`.
Status MkDir(const std::string& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) == 0) return {};
  if (errno != EEXIST) return FailErrno("mkdir " + path);
  if (chmod(path.c_str(), mode) != 0) return FailErrno("chmod " + path);
  return {};
}

Status WriteText(const std::string& path, std::string_view text, mode_t mode) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) return FailErrno("create " + path);
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return FailErrno("write " + path);
  }
  return {};
}

// Binds `source` read-only, nosuid, nodev at `target` (a directory or a file, created here).
Status BindReadOnly(const std::string& source, const std::string& target, bool is_dir) {
  if (is_dir) {
    if (auto st = MkDir(target, 0755); !st) return st;
  } else if (auto st = WriteText(target, "", 0644); !st) {
    return st;
  }
  if (auto st = Mount(source.c_str(), target, nullptr, MS_BIND, nullptr); !st) return st;
  return Mount(nullptr, target, nullptr, kRoBind, nullptr);
}

Status MountRoot() {
  return Mount("tmpfs", kNewRoot, "tmpfs", MS_NOSUID | MS_NODEV,
               "size=4m,nr_inodes=4096,mode=0755,huge=never");
}

// /usr, /bin, /sbin, /lib* as the host has them: symlinks stay symlinks, directories are bound.
Status BindSystemDirs() {
  for (const char* dir : {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    struct stat st {};
    if (lstat(dir, &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      const ssize_t n = readlink(dir, target, sizeof(target) - 1);
      if (n < 0) return FailErrno(std::string("readlink ") + dir);
      target[n] = '\0';
      if (symlink(target, R(dir).c_str()) != 0) return FailErrno(std::string("symlink ") + dir);
    } else if (S_ISDIR(st.st_mode)) {
      if (auto s = BindReadOnly(dir, R(dir), true); !s) return s;
    }
  }
  return {};
}

Status BindImage(int image_fd, bool is_tree, const std::string& target = R("/job")) {
  if (is_tree) {
    if (auto st = MkDir(target, 0755); !st) return st;
    if (move_mount(image_fd, "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
      return FailErrno("move_mount the image tree to " + target);
    }
    return Mount(nullptr, target, nullptr, kRoBind, nullptr);
  }
  const std::string source = "/proc/self/fd/" + std::to_string(image_fd);
  return BindReadOnly(source, target, true);
}

// ---- a rootfs (Policy::rootfs) as "/": staged inside the new root, its entries bound ----
const std::string kRootfsStage = R("/.rootfs");
constexpr std::size_t kMaxRootfsEntries = 1024;

// Binds (directories, files) or re-creates (symlinks) each entry of `from` at `to`, but `skip`.
Status BindEntries(const std::string& from, const std::string& to, std::initializer_list<std::string_view> skip) {
  UniqueFd dir(open(from.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) return errno == ENOENT || errno == ELOOP || errno == ENOTDIR ? Status{} : FailErrno("open " + from);
  DIR* d = fdopendir(dir.get());
  if (d == nullptr) return FailErrno("list " + from);
  (void)dir.release();
  std::vector<std::string> names;
  while (const dirent* e = readdir(d)) {
    const std::string_view name = e->d_name;
    if (name == "." || name == ".." || std::find(skip.begin(), skip.end(), name) != skip.end()) continue;
    names.emplace_back(name);
  }
  const int fd = dirfd(d);
  Status st;
  if (names.size() > kMaxRootfsEntries) st = Fail(Errc::kInvalidArgument, from + ": too many entries");
  for (std::size_t i = 0; st && i < names.size(); ++i) {
    const std::string& name = names[i];
    struct stat sb {};
    if (fstatat(fd, name.c_str(), &sb, AT_SYMLINK_NOFOLLOW) != 0) {
      st = FailErrno("stat " + from + "/" + name);
    } else if (S_ISDIR(sb.st_mode) || S_ISREG(sb.st_mode)) {
      st = BindReadOnly(from + "/" + name, to + "/" + name, S_ISDIR(sb.st_mode));
    } else if (S_ISLNK(sb.st_mode)) {
      char target[4096];
      const ssize_t n = readlinkat(fd, name.c_str(), target, sizeof(target) - 1);
      if (n < 0) st = FailErrno("readlink " + name);
      else if (target[n] = '\0'; symlink(target, (to + "/" + name).c_str()) != 0) st = FailErrno("symlink " + name);
    }
  }
  closedir(d);
  return st;
}

Status BindRootfs(const FsPlan& plan) {
  if (auto st = BindImage(plan.image_fd, plan.image_is_tree, kRootfsStage); !st) return st;
  const bool gpu = plan.gpu != nullptr && !plan.gpu->devices.empty();
  if (gpu) return BindEntries(kRootfsStage, kNewRoot, {"dev", "proc", "sys", "tmp", "data", "out", "etc", "nvidia", ".rootfs"});
  return BindEntries(kRootfsStage, kNewRoot, {"dev", "proc", "sys", "tmp", "data", "out", "etc", ".rootfs"});
}

Status DropRootfsStage() {
  if (umount2(kRootfsStage.c_str(), MNT_DETACH) != 0) return FailErrno("umount the rootfs staging");
  if (rmdir(kRootfsStage.c_str()) != 0) return FailErrno("rmdir the rootfs staging");
  return {};
}

// ---- GPUs: device nodes into /dev, driver files into /nvidia ----
// Opened (O_PATH) before the new root hides the host's /tmp, bound from the fds afterwards.
struct GpuFds {
  std::vector<std::pair<UniqueFd, std::string>> devices, libraries, tools;  // fd, basename
};

std::string Basename(const std::string& path) { return path.substr(path.rfind('/') + 1); }
std::string FdPath(const UniqueFd& fd) { return "/proc/self/fd/" + std::to_string(fd.get()); }

Status OpenGpu(const GpuAccess& gpu, GpuFds& out) {
  for (const auto& [list, into, device] : {std::tuple{&gpu.devices, &out.devices, true},
                                           {&gpu.libraries, &out.libraries, false}, {&gpu.tools, &out.tools, false}}) {
    for (const std::string& path : *list) {
      UniqueFd fd(open(path.c_str(), O_PATH | O_CLOEXEC));
      struct stat st {};
      if (!fd || fstat(fd.get(), &st) != 0) return FailErrno(std::string(device ? "GPU device " : "GPU driver file ") + path);
      if (device ? !S_ISCHR(st.st_mode) : !S_ISREG(st.st_mode)) {
        return Fail(Errc::kInvalidArgument, path + (device ? " is not a character device" : " is not a regular file"));
      }
      into->emplace_back(std::move(fd), Basename(path));
    }
  }
  return {};
}

Status BindGpuDevices(const GpuFds& gpu) {
  for (const auto& [fd, name] : gpu.devices) {
    const std::string target = R("/dev/") + name;
    if (auto s = WriteText(target, "", 0666); !s) return s;
    if (auto s = Mount(FdPath(fd).c_str(), target, nullptr, MS_BIND, nullptr); !s) return s;
    if (auto s = Mount(nullptr, target, nullptr, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC, nullptr); !s) return s;
  }
  return {};
}

Status BindGpuDriver(const GpuFds& gpu) {
  if (gpu.libraries.empty() && gpu.tools.empty()) return {};
  for (const char* d : {"/nvidia", "/nvidia/lib64", "/nvidia/bin"}) {
    if (auto st = MkDir(R(d), 0755); !st) return st;
  }
  for (const auto& [list, dir] : {std::pair{&gpu.libraries, "/nvidia/lib64/"}, {&gpu.tools, "/nvidia/bin/"}}) {
    for (const auto& [fd, name] : *list) {
      if (auto s = BindReadOnly(FdPath(fd), R(dir) + name, false); !s) return s;
    }
  }
  return {};
}

Result<bool> MountScratch(const FsPlan& plan) {
  if (auto st = MkDir(kScratchStage, 0755); !st) return std::unexpected(st.error());
  const std::string opts = "size=" + std::to_string(plan.scratch_bytes) + ",mode=0755,huge=never";
  bool noswap = true;
  if (mount("tmpfs", kScratchStage, "tmpfs", MS_NOSUID | MS_NODEV, (opts + ",noswap").c_str()) != 0) {
    if (errno != EINVAL) return FailErrno("mount scratch tmpfs");
    if (SwapActive() && !plan.allow_swap) {
      return Fail(Errc::kUnsupported,
                  "tmpfs noswap is not supported by this kernel (< 6.4) and swap is active; "
                  "PII could reach swap. Disable swap or set sandbox.allow_swap: true");
    }
    noswap = false;
    if (auto st = Mount("tmpfs", kScratchStage, "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()); !st) {
      return std::unexpected(st.error());
    }
  }
  return noswap;
}

Status BindScratchDirs(const FsPlan& plan) {
  struct Dir {
    const char* name;
    uid_t uid;
    gid_t gid;
    mode_t mode;
  };
  const Dir dirs[] = {{"/data", 0, plan.gid, 0750},
                      {"/out", plan.uid, plan.gid, 0700},
                      {"/tmp", plan.uid, plan.gid, 0700}};
  for (const Dir& d : dirs) {
    const std::string staged = std::string(kScratchStage) + d.name;
    if (auto st = MkDir(staged, d.mode); !st) return st;
    if (chown(staged.c_str(), d.uid, d.gid) != 0) return FailErrno("chown " + staged);
    if (auto st = MkDir(R(d.name), 0755); !st) return st;
    if (auto st = Mount(staged.c_str(), R(d.name), nullptr, MS_BIND, nullptr); !st) return st;
  }
  // The staging mount goes; the binds keep the one tmpfs alive.
  if (umount2(kScratchStage, MNT_DETACH) != 0) return FailErrno("umount scratch staging");
  if (rmdir(kScratchStage) != 0) return FailErrno("rmdir scratch staging");
  return {};
}

Status MountProc() {
  if (auto st = MkDir(R("/proc"), 0555); !st) return st;
  const unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  if (mount("proc", R("/proc").c_str(), "proc", flags, "hidepid=invisible") != 0 &&
      mount("proc", R("/proc").c_str(), "proc", flags, "hidepid=2") != 0) {
    return FailErrno("mount proc");
  }
  // Global knobs read-only (as in container runtimes); kernel internals masked.
  for (const char* p : {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"}) {
    if (access(R(p).c_str(), F_OK) != 0) continue;
    if (auto st = Mount(R(p).c_str(), R(p), nullptr, MS_BIND | MS_REC, nullptr); !st) return st;
    if (auto st = Mount(nullptr, R(p), nullptr, kRoBind | MS_NOEXEC, nullptr); !st) return st;
  }
  for (const char* p : {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/kallsyms",
                        "/proc/sched_debug", "/proc/kmsg"}) {
    if (access(R(p).c_str(), F_OK) != 0) continue;
    if (auto st = Mount(R("/dev/null").c_str(), R(p), nullptr, MS_BIND, nullptr); !st) return st;
  }
  return {};
}

// A hardened service may not create device nodes (systemd's PrivateDevices=yes drops
// CAP_MKNOD): then the same five nodes are bound from the caller's /dev, which such a service
// has (its private /dev holds exactly null, zero, full, random, urandom, tty). The trainer sees
// the same /dev either way. Returns whether the nodes were bound.
Result<bool> MakeDevNodes() {
  struct Node {
    const char* name;
    unsigned minor;
  };
  constexpr Node kNodes[] = {{"null", 3}, {"zero", 5}, {"full", 7}, {"random", 8}, {"urandom", 9}};
  bool bind = false;
  for (const Node& n : kNodes) {
    const std::string path = R("/dev/") + n.name;
    if (!bind && mknod(path.c_str(), S_IFCHR | 0666, makedev(1, n.minor)) == 0) continue;
    if (!bind && errno != EPERM) return FailErrno("mknod " + path);
    bind = true;
    const std::string host = std::string("/dev/") + n.name;
    struct stat st {};
    if (stat(host.c_str(), &st) != 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, n.minor)) {
      return Fail(Errc::kUnsupported, "mknod refused (EPERM) and " + host + " is not the character device 1:" +
                                          std::to_string(n.minor) + " to bind instead");
    }
    if (auto s = WriteText(path, "", 0666); !s) return std::unexpected(s.error());
    if (auto s = Mount(host.c_str(), path, nullptr, MS_BIND, nullptr); !s) return std::unexpected(s.error());
    if (auto s = Mount(nullptr, path, nullptr, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC, nullptr); !s) {
      return std::unexpected(s.error());
    }
  }
  return bind;
}

Result<bool> MountDev(const GpuFds& gpu) {
  if (auto st = MkDir(R("/dev"), 0755); !st) return std::unexpected(st.error());
  if (auto st = Mount("tmpfs", R("/dev"), "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755");
      !st) {
    return std::unexpected(st.error());
  }
  auto bound = MakeDevNodes();
  if (!bound) return bound;
  for (auto [name, target] : {std::pair{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"},
                              {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
                              {"shm", "/tmp"}}) {
    if (symlink(target, (R("/dev/") + name).c_str()) != 0) return FailErrno(std::string("symlink /dev/") + name);
  }
  if (auto st = BindGpuDevices(gpu); !st) return std::unexpected(st.error());
  if (auto st = Mount(nullptr, R("/dev"), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC, nullptr);
      !st) {
    return std::unexpected(st.error());
  }
  return *bound;
}

Status WriteEtc(const FsPlan& plan) {
  if (auto st = MkDir(R("/etc"), 0755); !st) return st;
  const std::string uid = std::to_string(plan.uid), gid = std::to_string(plan.gid);
  const std::string passwd = "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
                             "trainer:x:" + uid + ":" + gid + ":trainer:/tmp:/bin/sh\n";
  const std::string group = "root:x:0:\ntrainer:x:" + gid + ":\n";
  if (auto st = WriteText(R("/etc/passwd"), passwd, 0644); !st) return st;
  if (auto st = WriteText(R("/etc/group"), group, 0644); !st) return st;
  if (auto st = WriteText(R("/etc/hosts"), "127.0.0.1 localhost\n::1 localhost\n", 0644); !st) return st;
  if (auto st = WriteText(R("/etc/hostname"), "cordon\n", 0644); !st) return st;
  if (auto st = WriteText(R("/etc/nsswitch.conf"), "passwd: files\ngroup: files\nhosts: files\n", 0644); !st) {
    return st;
  }
  // A rootfs brings its own /etc (ld.so.cache, alternatives, ssl, python's config): bound
  // entry by entry beside the files written here.
  if (plan.image_is_rootfs) {
    return BindEntries(kRootfsStage + "/etc", R("/etc"),
                       {"passwd", "group", "hosts", "hostname", "nsswitch.conf", "resolv.conf"});
  }
  // The dynamic linker's cache and the alternatives links (libblas.so.3 for numpy): no secrets.
  struct stat st {};
  if (stat("/etc/ld.so.cache", &st) == 0 && S_ISREG(st.st_mode)) {
    if (auto s = BindReadOnly("/etc/ld.so.cache", R("/etc/ld.so.cache"), false); !s) return s;
  }
  if (stat("/etc/alternatives", &st) == 0 && S_ISDIR(st.st_mode)) {
    if (auto s = BindReadOnly("/etc/alternatives", R("/etc/alternatives"), true); !s) return s;
  }
  return {};
}

Status PivotRoot() {
  if (chdir(kNewRoot) != 0) return FailErrno("chdir new root");
  if (syscall(SYS_pivot_root, ".", ".") != 0) return FailErrno("pivot_root");
  if (umount2(".", MNT_DETACH) != 0) return FailErrno("detach old root");
  if (chdir("/") != 0) return FailErrno("chdir /");
  return Mount(nullptr, "/", nullptr, kRoBind, nullptr);
}

// Runs one named set-up step (a Status or a Result); on failure, failed_step names it.
template <class F>
auto Step(const char* name, std::string& failed_step, F&& f) -> decltype(f()) {
  auto result = f();
  if (!result) failed_step = name;
  return result;
}

gid_t g_seal_gid = 0;

int SealEntry(const char* path, const struct stat* st, int type, FTW*) {
  if (type == FTW_SL || type == FTW_SLN) return lchown(path, 0, g_seal_gid) == 0 ? 0 : -1;
  if (lchown(path, 0, g_seal_gid) != 0) return -1;
  const mode_t extra = S_ISDIR(st->st_mode) ? (S_IRGRP | S_IXGRP) : S_IRGRP;
  return chmod(path, (st->st_mode & 07750) | extra) == 0 ? 0 : -1;
}

}  // namespace

// Unreadable /proc/swaps (systemd's ProcSubset=pid hides it) counts as active: unknown must
// never let plaintext reach a swappable tmpfs.
bool SwapActive() {
  std::ifstream in("/proc/swaps");
  if (!in) return true;
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) ++lines;
  return lines > 1;
}

Result<FsOutcome> BuildRootAndPivot(const FsPlan& plan, std::string& failed_step) {
  FsOutcome out;
  GpuFds gpu;
  if (plan.gpu != nullptr) {
    if (auto st = Step("open-gpu", failed_step, [&]() -> Status { return OpenGpu(*plan.gpu, gpu); }); !st) {
      return std::unexpected(st.error());
    }
  }
  if (auto st = Step("mount-root-tmpfs", failed_step, MountRoot); !st) return std::unexpected(st.error());
  if (plan.image_is_rootfs) {
    if (auto st = Step("bind-rootfs", failed_step, [&]() -> Status { return BindRootfs(plan); }); !st) {
      return std::unexpected(st.error());
    }
  } else {
    if (auto st = Step("bind-system-dirs", failed_step, BindSystemDirs); !st) return std::unexpected(st.error());
    if (auto st = Step("bind-image", failed_step, [&]() -> Status { return BindImage(plan.image_fd, plan.image_is_tree); }); !st) {
      return std::unexpected(st.error());
    }
  }
  if (auto st = Step("bind-gpu", failed_step, [&]() -> Status { return BindGpuDriver(gpu); }); !st) {
    return std::unexpected(st.error());
  }
  auto noswap = Step("mount-scratch-tmpfs", failed_step, [&] { return MountScratch(plan); });
  if (!noswap) return std::unexpected(noswap.error());
  out.scratch_noswap = *noswap;
  if (auto st = Step("bind-scratch-dirs", failed_step, [&]() -> Status { return BindScratchDirs(plan); }); !st) {
    return std::unexpected(st.error());
  }
  auto dev_bound = Step("mount-dev", failed_step, [&] { return MountDev(gpu); });
  if (!dev_bound) return std::unexpected(dev_bound.error());
  out.dev_nodes_bound = *dev_bound;
  if (auto st = Step("mount-proc", failed_step, MountProc); !st) return std::unexpected(st.error());
  if (auto st = Step("write-etc", failed_step, [&]() -> Status { return WriteEtc(plan); }); !st) {
    return std::unexpected(st.error());
  }
  if (plan.image_is_rootfs) {
    if (auto st = Step("drop-rootfs-stage", failed_step, DropRootfsStage); !st) return std::unexpected(st.error());
  }
  if (auto st = Step("pivot-root", failed_step, PivotRoot); !st) return std::unexpected(st.error());
  return out;
}

Status SealData(gid_t gid) {
  g_seal_gid = gid;
  if (nftw("/data", SealEntry, 16, FTW_PHYS) != 0) return FailErrno("sealing /data permissions");
  if (chown("/data", 0, gid) != 0 || chmod("/data", 0750) != 0) return FailErrno("chown /data");
  return Mount(nullptr, "/data", nullptr, kRoBind | MS_NOEXEC, nullptr);
}

void DropScratch() {
  for (const char* dir : {"/data", "/out", "/tmp"}) umount2(dir, MNT_DETACH);
}

}  // namespace cordon::sandbox
