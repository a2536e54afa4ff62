#include "trainer_image.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <set>
#include <sstream>

#include "cordon/file_io.h"
#include "cordon/images/oci_image.h"
#include "cordon/process.h"

namespace cordon::runner::internal {
namespace {

std::optional<images::Reader> ReaderFor(std::optional<uid_t> submitter) {
  if (!submitter || *submitter == 0) return std::nullopt;
  images::Reader r;
  r.uid = *submitter;
  const passwd* pw = ::getpwuid(r.uid);
  const gid_t primary = pw ? pw->pw_gid : r.uid;
  int n = 64;
  std::vector<gid_t> groups(static_cast<std::size_t>(n));
  if (pw && ::getgrouplist(pw->pw_name, primary, groups.data(), &n) < 0) {
    groups.resize(static_cast<std::size_t>(n));
    (void)::getgrouplist(pw->pw_name, primary, groups.data(), &n);
  }
  groups.resize(pw ? static_cast<std::size_t>(n) : 0);
  groups.push_back(primary);
  r.groups = std::move(groups);
  return r;
}

// `ldconfig -p`, run with an empty environment; "" when it cannot run.
std::string LdconfigCache() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return "";
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  SpawnOptions ldconfig;
  ldconfig.argv = {::access("/sbin/ldconfig", X_OK) == 0 ? "/sbin/ldconfig" : "/usr/sbin/ldconfig", "-p"};
  ldconfig.env = std::vector<std::string>{};
  ldconfig.stdout_fd = write_end.get();
  auto child = Spawn(ldconfig);
  write_end.reset();
  std::string out;
  if (!child) return out;
  char buf[65536];
  ssize_t n;
  while ((n = RetryEintr([&] { return ::read(read_end.get(), buf, sizeof buf); })) > 0) {
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > (16u << 20)) break;
  }
  read_end.reset();
  (void)WaitChild(child->pid);
  return out;
}

bool IsCharDevice(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

}  // namespace

Result<PreparedOci> PrepareOci(const specs::Trainer& trainer, int layout_fd, const std::string& state_dir,
                               std::optional<uid_t> submitter) {
  const images::Limits limits;
  const auto reader = ReaderFor(submitter);
  auto image = images::Resolve(layout_fd, trainer.image_ref, limits, reader);
  if (!image) return std::unexpected(image.error());
  if (trainer.image_digest && *trainer.image_digest != image->manifest_digest) {
    return Fail(Errc::kIntegrity, "the manifest digest is " + image->manifest_digest + ", the spec pins " +
                                      *trainer.image_digest + " (image_digest)");
  }
  auto unpacked = images::Unpack(layout_fd, *image, state_dir + "/images", limits, reader);
  if (!unpacked) return std::unexpected(unpacked.error());
  PreparedOci out;
  out.manifest_digest = image->manifest_digest;
  out.rootfs = unpacked->rootfs;
  out.cached = unpacked->cached;
  out.cache_hold = std::move(unpacked->hold);
  out.entries = unpacked->entries;
  out.bytes = unpacked->bytes;
  out.env = image->image_config.env;
  out.working_dir = image->image_config.working_dir;
  out.rootfs_fd.reset(::open(out.rootfs.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!out.rootfs_fd) return FailErrno("open the unpacked image " + out.rootfs);
  return out;
}

std::vector<std::pair<std::string, std::string>> ParseLdconfig(const std::string& text) {
  utsname u{};
  ::uname(&u);
  const std::string machine = u.machine;
  const std::string native = machine == "x86_64" ? "x86-64" : machine == "aarch64" ? "AArch64" : machine;
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto start = line.find_first_not_of(" \t");
    const auto arrow = line.find(" => ");
    if (start == std::string::npos || arrow == std::string::npos) continue;
    const std::string name = line.substr(start, line.find(' ', start) - start);
    const std::string path = line.substr(arrow + 4);
    if (!name.starts_with("libcuda.so") && !name.starts_with("libnvidia-")) continue;
    if (line.find("," + native + ")") == std::string::npos || path.empty() || path.front() != '/') continue;
    out.emplace_back(name, path);
  }
  return out;
}

Result<sandbox::GpuAccess> FindGpus(std::uint32_t gpus, const std::string& dev) {
  sandbox::GpuAccess access;
  if (gpus == 0) return access;
  for (std::uint32_t i = 0; i < gpus; ++i) {
    const std::string node = dev + "/nvidia" + std::to_string(i);
    if (!IsCharDevice(node)) {
      return Fail(Errc::kUnsupported, "resources.gpus: " + std::to_string(gpus) + " asked for, but " + node +
                                          " does not exist (no such NVIDIA GPU or no driver on this host)");
    }
    access.devices.push_back(node);
  }
  if (!IsCharDevice(dev + "/nvidiactl")) {
    return Fail(Errc::kUnsupported, "resources.gpus: " + dev + "/nvidiactl does not exist (the NVIDIA driver is not loaded)");
  }
  access.devices.push_back(dev + "/nvidiactl");
  for (const char* optional : {"/nvidia-uvm", "/nvidia-uvm-tools"}) {
    if (IsCharDevice(dev + optional)) access.devices.push_back(dev + optional);
  }
  std::set<std::string> names;  // one file per name (ldconfig may list a name twice)
  for (const auto& [name, path] : ParseLdconfig(LdconfigCache())) {
    if (names.insert(path.substr(path.rfind('/') + 1)).second) access.libraries.push_back(path);
  }
  for (const char* tool : {"/usr/bin/nvidia-smi", "/usr/sbin/nvidia-smi"}) {
    if (::access(tool, X_OK) == 0) {
      access.tools.emplace_back(tool);
      break;
    }
  }
  return access;
}

}  // namespace cordon::runner::internal
