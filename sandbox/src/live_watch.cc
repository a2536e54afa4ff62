#include "live_watch.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "cordon/sandbox/sandbox.h"
#include "fs_identity.h"

namespace cordon::sandbox {
namespace {

// No IN_DONT_FOLLOW: the path is /proc/self/fd/N, a magic link to a directory opened O_NOFOLLOW.
constexpr std::uint32_t kDirMask = IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR | IN_EXCL_UNLINK;

// /out/<rel> opened component by component, no link followed; -1 when any step fails.
int OpenDir(const std::string& rel) {
  UniqueFd dir(open("/out", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  for (std::size_t at = 0; dir && at < rel.size();) {
    const std::size_t slash = rel.find('/', at);
    const std::string part = rel.substr(at, slash - at);
    dir.reset(openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    at = slash == std::string::npos ? rel.size() : slash + 1;
  }
  return dir.release();
}

}  // namespace

bool LiveWatch::Start(std::vector<std::string> prefixes, uid_t uid, gid_t gid) {
  prefixes_ = std::move(prefixes);
  uid_ = uid;
  gid_ = gid;
  inotify_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_) return false;
  AddDir("", 0);
  return !dirs_.empty();
}

bool LiveWatch::Relevant(const std::string& dir) const {
  return std::any_of(prefixes_.begin(), prefixes_.end(), [&](const std::string& p) {
    return p.starts_with(dir) || dir.starts_with(p);
  });
}

bool LiveWatch::Inside(const std::string& path) const {
  return std::any_of(prefixes_.begin(), prefixes_.end(), [&](const std::string& p) { return path.starts_with(p); });
}

// Watches /out/<rel> and, for what was already there, its directories (recursively) and its
// files (pending: written before the watch existed, they would send no event).
void LiveWatch::AddDir(const std::string& rel, int depth) {
  if (depth > kMaxLiveDepth || dirs_.size() >= kMaxLiveWatches || !Relevant(rel)) return;
  AsFsUser(uid_, gid_, [&] {
    UniqueFd dir(OpenDir(rel));
    if (!dir) return 0;
    const std::string proc = "/proc/self/fd/" + std::to_string(dir.get());
    const int wd = inotify_add_watch(inotify_.get(), proc.c_str(), kDirMask);
    if (wd < 0) return 0;
    dirs_[wd] = rel;
    DIR* listing = fdopendir(dir.release());
    if (listing == nullptr) return 0;
    std::vector<std::pair<std::string, bool>> entries;
    while (const dirent* e = readdir(listing)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      if (entries.size() >= kMaxLiveWatches) break;
      struct stat st {};
      if (fstatat(dirfd(listing), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) entries.emplace_back(e->d_name, S_ISDIR(st.st_mode));
    }
    closedir(listing);
    for (const auto& [name, is_dir] : entries) {
      if (is_dir) AddDir(rel + name + "/", depth + 1);
      else if (Inside(rel + name)) pending_[rel + name] = Clock::now();
    }
    return 0;
  });
}

void LiveWatch::OnEvent(int wd, std::uint32_t mask, const std::string& name) {
  const auto it = dirs_.find(wd);
  if (it == dirs_.end() || name.empty()) return;
  const std::string path = it->second + name;
  if (mask & IN_ISDIR) {
    if (mask & (IN_CREATE | IN_MOVED_TO)) AddDir(path + "/", static_cast<int>(std::count(path.begin(), path.end(), '/')) + 1);
    return;
  }
  if ((mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) && Inside(path)) pending_[path] = Clock::now();
}

void LiveWatch::OnReadable() {
  alignas(inotify_event) char buffer[16384];
  for (;;) {
    const ssize_t n = read(inotify_.get(), buffer, sizeof buffer);
    if (n <= 0) return;
    for (ssize_t at = 0; at + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      const auto* e = reinterpret_cast<const inotify_event*>(buffer + at);
      const std::string name = e->len > 0 ? std::string(e->name, strnlen(e->name, e->len)) : std::string();
      if (e->mask & IN_IGNORED) dirs_.erase(e->wd);
      else OnEvent(e->wd, e->mask, name);
      at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
    }
  }
}

std::vector<std::string> LiveWatch::TakeQuiet(Clock::time_point now) {
  std::vector<std::pair<Clock::time_point, std::string>> ready;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (now - it->second < kQuiet) {
      ++it;
      continue;
    }
    ready.emplace_back(it->second, it->first);
    it = pending_.erase(it);
  }
  std::sort(ready.begin(), ready.end());
  std::vector<std::string> out;
  for (auto& [when, path] : ready) out.push_back(std::move(path));
  return out;
}

}  // namespace cordon::sandbox
