// Watches /out for the live outputs (Policy::live_dirs) while the trainer runs: inotify on /out
// and on every directory on the way to, or under, a live prefix. A file closed after a write
// (IN_CLOSE_WRITE) or renamed in (IN_MOVED_TO) under a prefix becomes pending; it is handed out
// once no event came for it for kQuiet (a checkpoint written in several opens is sealed once).
// Watches are added with the trainer's file-system identity through an fd opened O_NOFOLLOW
// component by component, never through a path the trainer could redirect.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "cordon/unique_fd.h"

namespace cordon::sandbox {

class LiveWatch final {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kQuiet{250};

  LiveWatch() = default;
  // Starts watching /out; false (and nothing watched) when inotify is unavailable.
  bool Start(std::vector<std::string> prefixes, uid_t uid, gid_t gid);
  [[nodiscard]] int fd() const { return inotify_.get(); }
  // Reads the queued events (the fd is non-blocking).
  void OnReadable();
  // Pending paths quiet for kQuiet, oldest first; they are forgotten here.
  [[nodiscard]] std::vector<std::string> TakeQuiet(Clock::time_point now);
  [[nodiscard]] bool has_pending() const { return !pending_.empty(); }

 private:
  bool Relevant(const std::string& dir) const;   // dir: "" or "a/b/"
  bool Inside(const std::string& path) const;    // under a prefix
  void AddDir(const std::string& rel, int depth);
  void OnEvent(int wd, std::uint32_t mask, const std::string& name);

  UniqueFd inotify_;
  std::vector<std::string> prefixes_;
  uid_t uid_ = 65534;
  gid_t gid_ = 65534;
  std::map<int, std::string> dirs_;               // watch descriptor -> "" or "a/b/"
  std::map<std::string, Clock::time_point> pending_;  // path -> last event
};

}  // namespace cordon::sandbox
