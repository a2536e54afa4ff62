#include "cordon/runner/image_scan.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "cordon/unique_fd.h"

namespace cordon::runner::internal {
namespace {

struct Walk {
  dev_t dev = 0;
  std::size_t entries = 0;
  const ImageSubmitter* submitter = nullptr;
};

bool SubmitterMayChange(const Walk& walk, const struct stat& st) {
  if (!walk.submitter || walk.submitter->uid == 0) return false;
  if (st.st_uid == walk.submitter->uid) return true;
  const auto& g = walk.submitter->groups;
  return (st.st_mode & S_IWGRP) != 0 && std::find(g.begin(), g.end(), st.st_gid) != g.end();
}

const char* Forbidden(mode_t mode) {
  if (S_ISSOCK(mode)) return "a unix socket";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device node";
  return nullptr;
}

Status Refuse(const std::string& rel, const std::string& why) {
  return Fail(Errc::kPermissionDenied, "the image holds " + why + " at '" + (rel.empty() ? "." : rel) +
                                           "': refused (the trainer must reach nothing outside the sandbox)");
}

Status CheckDir(Walk& walk, int dir_fd, const std::string& rel, int depth) {
  struct stat self {};
  if (::fstat(dir_fd, &self) != 0) return FailErrno("stat image '" + rel + "'");
  if ((self.st_mode & S_IWOTH) != 0) return Refuse(rel, "a directory writable by every user");
  if (SubmitterMayChange(walk, self)) {
    return Refuse(rel, "a directory the submitter owns or may write (publish images as a tree the submitter "
                       "cannot change, e.g. root-owned)");
  }
  if (depth > kMaxImageDepth) {
    return Fail(Errc::kPermissionDenied, "the image is nested deeper than " + std::to_string(kMaxImageDepth) + " levels");
  }
  UniqueFd list(::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  DIR* dir = list ? ::fdopendir(list.get()) : nullptr;
  if (dir == nullptr) return FailErrno("read image directory '" + rel + "'");
  (void)list.release();
  std::vector<std::string> subdirs;
  Status result;
  while (dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string child = rel.empty() ? name : rel + "/" + name;
    if (++walk.entries > kMaxImageEntries) {
      result = Fail(Errc::kPermissionDenied, "the image holds more than " + std::to_string(kMaxImageEntries) + " entries");
      break;
    }
    struct stat st {};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      result = FailErrno("stat image entry '" + child + "'");
      break;
    }
    if (const char* what = Forbidden(st.st_mode)) {
      result = Refuse(child, what);
      break;
    }
    if (S_ISDIR(st.st_mode)) subdirs.push_back(name);
  }
  ::closedir(dir);
  if (!result) return result;
  for (const std::string& name : subdirs) {
    const std::string child = rel.empty() ? name : rel + "/" + name;
    UniqueFd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) return FailErrno("open image directory '" + child + "'");
    struct stat st {};
    if (::fstat(sub.get(), &st) != 0) return FailErrno("stat image directory '" + child + "'");
    if (st.st_dev != walk.dev) return Refuse(child, "a mount point");
    if (auto ok = CheckDir(walk, sub.get(), child, depth + 1); !ok) return ok;
  }
  return {};
}

}  // namespace

bool HardlinksProtected() {
  UniqueFd fd(::open("/proc/sys/fs/protected_hardlinks", O_RDONLY | O_CLOEXEC));
  char value = 0;
  return fd && ::read(fd.get(), &value, 1) == 1 && value == '1';
}

Status CheckImage(int image_fd, const std::string& socket_path, bool links_protected,
                  const ImageSubmitter* submitter) {
  struct stat root {};
  if (::fstat(image_fd, &root) != 0 || !S_ISDIR(root.st_mode)) {
    return Fail(Errc::kInvalidArgument, "the image is not a directory");
  }
  struct stat socket {};
  if (!links_protected && !socket_path.empty() && ::stat(socket_path.c_str(), &socket) == 0 &&
      socket.st_dev == root.st_dev) {
    return Fail(Errc::kPermissionDenied,
                "the image is on the same filesystem as cordond's socket and fs.protected_hardlinks is off: the "
                "socket could be hard-linked into it after the check; refused (keep images on another "
                "filesystem than the runtime directory)");
  }
  Walk walk{root.st_dev, 0, submitter};
  return CheckDir(walk, image_fd, "", 0);
}

}  // namespace cordon::runner::internal
