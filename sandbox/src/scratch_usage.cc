#include "scratch_usage.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "fs_identity.h"

namespace cordon::sandbox {

void ScratchMeter::Sample() {
  struct statfs st {};
  if (!dir_ || fstatfs(dir_.get(), &st) != 0) return;
  const auto block = static_cast<std::uint64_t>(st.f_bsize);
  size_ = static_cast<std::uint64_t>(st.f_blocks) * block;
  const std::uint64_t free_bytes = static_cast<std::uint64_t>(st.f_bfree) * block;
  last_ = size_ - std::min(size_, free_bytes);
  peak_ = std::max(peak_, last_);
  min_free_ = std::min(min_free_, free_bytes);
}

bool ScratchMeter::full() const {
  if (size_ == 0) return false;
  return min_free_ < std::min<std::uint64_t>(1 << 20, size_ / 100);
}

namespace {

struct Walk {
  std::size_t entries = 0;
  std::size_t max_entries = 0;
  std::uint64_t bytes = 0;
};

void Sum(Walk& w, int dir_fd, int depth) {
  DIR* dir = fdopendir(dir_fd);
  if (dir == nullptr) {
    close(dir_fd);
    return;
  }
  while (const dirent* e = readdir(dir)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    if (++w.entries > w.max_entries) break;
    struct stat st {};
    if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    w.bytes += static_cast<std::uint64_t>(st.st_blocks) * 512;
    if (!S_ISDIR(st.st_mode) || depth >= 64) continue;
    const int sub = openat(dirfd(dir), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub >= 0) Sum(w, sub, depth + 1);
  }
  closedir(dir);
}

}  // namespace

std::uint64_t AllocatedBytes(const char* path, uid_t uid, gid_t gid, std::size_t max_entries) {
  return AsFsUser(uid, gid, [&] {
    Walk w;
    w.max_entries = max_entries;
    const int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) Sum(w, fd, 0);
    return w.bytes;
  });
}

}  // namespace cordon::sandbox
