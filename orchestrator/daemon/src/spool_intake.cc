#include "spool_intake.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "cordon/file_io.h"
#include "cordon/daemon/protocol.h"
#include "cordon/unique_fd.h"
#include "cordon/daemon/job_store.h"

namespace cordon::daemon {

namespace asio = boost::asio;

Status SpoolIntake::Start() {
  for (const char* sub : {"/taking", "/rejected"}) {
    if (auto made = MakeDir(dir_ + sub, 0700); !made) return std::unexpected(made.error());
  }
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  const std::string incoming = dir_ + "/incoming";
  if (fd < 0 || ::inotify_add_watch(fd, incoming.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    if (fd >= 0) ::close(fd);
    return FailErrno("inotify on " + incoming);
  }
  inotify_.emplace(io_, fd);
  Watch();
  Scan(dir_ + "/taking", true);
  Scan(incoming, false);
  return {};
}

void SpoolIntake::Close() {
  closed_ = true;
  boost::system::error_code ignored;
  if (inotify_) inotify_->close(ignored);
}

void SpoolIntake::Watch() {
  inotify_->async_read_some(asio::buffer(buf_), [this](boost::system::error_code ec, std::size_t n) {
    if (ec) return;
    std::vector<std::string> names;
    bool overflow = false;
    for (std::size_t off = 0; off + sizeof(inotify_event) <= n;) {
      inotify_event ev{};
      std::memcpy(&ev, buf_.data() + off, sizeof ev);
      overflow = overflow || (ev.mask & IN_Q_OVERFLOW);
      if (ev.len > 0) names.emplace_back(buf_.data() + off + sizeof(inotify_event));
      off += sizeof(inotify_event) + ev.len;
    }
    if (overflow) Scan(dir_ + "/incoming", false);
    for (const auto& name : names) Take(name);
    if (!closed_) Watch();
  });
}

void SpoolIntake::Scan(const std::string& dir, bool taking) {
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    if (!taking) Take(name);
    else if (known_(name)) ::unlink((dir + "/" + name).c_str());  // recorded before the crash, file not yet removed
    else TakeFile(name);
  }
}

// Writers must write a temporary name starting with '.' and rename(2) it into
// incoming/: names starting with '.' are never taken.
void SpoolIntake::Take(const std::string& name) {
  if (name.empty() || name[0] == '.' || name.find('/') != std::string::npos) return;
  char token[64];
  std::snprintf(token, sizeof token, "t%lld-%llu", static_cast<long long>(NowSeconds() * 1000),
                static_cast<unsigned long long>(++counter_));
  const std::string from = dir_ + "/incoming/" + name;
  const std::string to = dir_ + "/taking/" + token;
  // Moved first into a directory only root can touch: from here on the owner
  // cannot swap the file under us.
  if (::rename(from.c_str(), to.c_str()) != 0) return;  // already taken, or gone
  (void)FsyncDir(dir_ + "/taking");
  TakeFile(token);
}

void SpoolIntake::TakeFile(const std::string& token) {
  const std::string path = dir_ + "/taking/" + token;
  // The submitter is the owner of the file taken (taking/ is root's: nobody can
  // swap it any more). It becomes root's before it is read, so cordond needs no
  // CAP_DAC_READ_SEARCH for a spec written 0600 (only CAP_CHOWN, and only for a
  // regular file with one link: nothing else is ever chown'd).
  struct stat lst {};
  Caller caller{{0, 0}, 0, "spool"};
  if (::lstat(path.c_str(), &lst) == 0) caller.id = {lst.st_uid, lst.st_gid};
  if (S_ISREG(lst.st_mode) && lst.st_nlink == 1 && lst.st_uid != 0) {
    if (::lchown(path.c_str(), 0, 0) != 0) spdlog::warn("spool file {}: chown: {}", token, std::strerror(errno));
  }
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  struct stat st {};
  std::string problem;
  if (!fd || ::fstat(fd.get(), &st) != 0) {
    problem = "not a regular file (symbolic link?)";
  } else if (st.st_ino != lst.st_ino) {
    problem = "replaced while it was taken";
  } else {
    if (!S_ISREG(st.st_mode)) problem = "not a regular file";
    else if (st.st_nlink != 1) problem = "has more than one hard link";
    else if (st.st_size > static_cast<off_t>(protocol::kMaxRequestBytes)) problem = "larger than 1 MiB";
  }
  std::string text;
  if (problem.empty()) {
    text.resize(static_cast<std::size_t>(st.st_size));
    if (::pread(fd.get(), text.data(), text.size(), 0) != st.st_size) problem = "could not be read";
  }
  const std::string rejected = dir_ + "/rejected/" + token;
  if (!problem.empty()) {
    refuse_(caller, "spool file " + token, problem);
    ::rename(path.c_str(), rejected.c_str());
    (void)WriteFileAtomic(rejected + ".error", problem + "\n", 0600);
    return;
  }
  const SpoolVerdict v = submit_(text, caller, token);
  if (v.accepted) {
    ::unlink(path.c_str());
    return;
  }
  const std::string target = dir_ + "/rejected/" + (v.job_id.empty() ? token : v.job_id);
  ::rename(path.c_str(), (target + ".yaml").c_str());
  (void)WriteFileAtomic(target + ".error", v.code + ": " + v.error + "\n", 0600);
}

}  // namespace cordon::daemon
