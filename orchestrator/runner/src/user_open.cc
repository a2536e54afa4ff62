#include "cordon/runner/user_open.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cordon/file_io.h"
#include "cordon/process.h"

namespace cordon::useropen {
namespace {

constexpr int kNotRegular = -1;  // "errno" for a path that is not a regular file

// One message per request from the child: its index and errno (0: the fd rides along).
struct Answer {
  std::int32_t index;
  std::int32_t error;
};

int SendAnswer(int sock, Answer answer, int fd) {
  iovec iov{&answer, sizeof answer};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  return ::sendmsg(sock, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof answer) ? 0 : -1;
}

// mkdir -p as the caller, one component at a time, never through a symlink.
// No allocation: runs in the forked child.
int OpenOrCreateDirectory(const char* path) {
  int fd = OpenNoSymlinks(AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0 || errno != ENOENT) return fd;
  char buf[4097];
  const std::size_t len = std::strlen(path);
  if (len >= sizeof buf || path[0] != '/') return errno = ENAMETOOLONG, -1;
  std::memcpy(buf, path, len + 1);
  int cur = ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  for (char* comp = buf + 1; cur >= 0 && *comp;) {
    char* end = std::strchr(comp, '/');
    if (end) *end = '\0';
    int next = OpenNoSymlinks(cur, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (next < 0 && errno == ENOENT && (::mkdirat(cur, comp, 0750) == 0 || errno == EEXIST)) {
      next = OpenNoSymlinks(cur, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    const int saved = errno;
    ::close(cur);
    errno = saved;
    cur = next;
    if (!end) break;
    comp = end + 1;
  }
  return cur;
}

int OpenOne(const OpenRequest& r, int& error) {
  int fd = -1;
  switch (r.kind) {
    case OpenKind::kFile:
      fd = OpenNoSymlinks(AT_FDCWD, r.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
      break;
    case OpenKind::kDirectory:
      fd = OpenNoSymlinks(AT_FDCWD, r.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      break;
    case OpenKind::kDirectoryCreate:
      fd = OpenOrCreateDirectory(r.path.c_str());
      // Root will create the job's directory in it: the user must be able to.
      if (fd >= 0 && ::faccessat(fd, ".", W_OK | X_OK, AT_EACCESS) != 0) {
        const int saved = errno;
        ::close(fd);
        fd = -1;
        errno = saved;
      }
      break;
  }
  error = fd < 0 ? errno : 0;
  struct stat st {};
  if (fd >= 0 && r.kind == OpenKind::kFile && (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
    ::close(fd);
    fd = -1;
    error = kNotRegular;
  }
  return fd;
}

[[noreturn]] void ChildMain(const Identity& who, const std::vector<OpenRequest>& requests, int sock) {
  ::signal(SIGPIPE, SIG_IGN);
  if (::setgroups(who.groups.size(), who.groups.data()) != 0 || ::setresgid(who.gid, who.gid, who.gid) != 0 ||
      ::setresuid(who.uid, who.uid, who.uid) != 0 || ::geteuid() != who.uid) {
    (void)SendAnswer(sock, Answer{-1, errno ? errno : EPERM}, -1);
    ::_exit(1);
  }
  for (std::size_t i = 0; i < requests.size(); ++i) {
    int error = 0;
    const int fd = OpenOne(requests[i], error);
    if (SendAnswer(sock, Answer{static_cast<std::int32_t>(i), error}, fd) != 0 || fd < 0) ::_exit(1);
    ::close(fd);
  }
  ::_exit(0);
}

std::string Describe(const OpenRequest& r, int error) {
  if (error == kNotRegular) return r.path + ": not a regular file";
  if (error == ELOOP) return r.path + ": a symbolic link in the path (Cordon follows none for a submitter)";
  if (error == EACCES || error == EPERM) return r.path + ": permission denied to the submitter";
  return r.path + ": " + std::strerror(error);
}

// Receives one answer (and its fd) within the deadline.
Result<std::pair<Answer, UniqueFd>> Receive(int sock, std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  pollfd p{sock, POLLIN, 0};
  const int ready = RetryEintr([&] { return ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0))); });
  if (ready == 0) return Fail(Errc::kIo, "opening as the submitter took too long (a hung file system?)");
  Answer answer{};
  iovec iov{&answer, sizeof answer};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = RetryEintr([&] { return ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); });
  if (n != static_cast<ssize_t>(sizeof answer)) return Fail(Errc::kIo, "the opener process ended early");
  UniqueFd fd;
  if (cmsghdr* c = CMSG_FIRSTHDR(&msg); c && c->cmsg_type == SCM_RIGHTS) {
    int raw = -1;
    std::memcpy(&raw, CMSG_DATA(c), sizeof raw);
    fd.reset(raw);
  }
  return std::pair{answer, std::move(fd)};
}

Result<std::vector<UniqueFd>> OpenAsRoot(const std::vector<OpenRequest>& requests) {
  std::vector<UniqueFd> fds;
  for (const auto& r : requests) {
    int error = 0;
    UniqueFd fd(OpenOne(r, error));
    if (!fd) return Fail(error == ENOENT ? Errc::kNotFound : Errc::kPermissionDenied, Describe(r, error));
    fds.push_back(std::move(fd));
  }
  return fds;
}

}  // namespace

// The same walk without openat2 (a seccomp filter that predates it answers
// ENOSYS, e.g. systemd-nspawn 252's): one component at a time, O_NOFOLLOW on
// each, ".." refused. No allocation: it runs in the forked child.
int WalkNoSymlinks(int dirfd, const char* path, int flags) {
  char buf[4097];
  const std::size_t len = std::strlen(path);
  if (len == 0 || len >= sizeof buf) return errno = ENAMETOOLONG, -1;
  std::memcpy(buf, path, len + 1);
  char* comp = buf;
  int cur = -1;
  if (buf[0] == '/') {
    if (dirfd != AT_FDCWD) return errno = EXDEV, -1;  // RESOLVE_BENEATH
    cur = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    while (*comp == '/') ++comp;
  } else {
    cur = dirfd == AT_FDCWD ? ::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC) : ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  }
  while (cur >= 0) {
    char* end = std::strchr(comp, '/');
    if (end) *end = '\0';
    if (std::strcmp(comp, "..") == 0) {
      ::close(cur);
      return errno = EXDEV, -1;
    }
    const bool last = end == nullptr || end[1] == '\0';
    int next = last ? ::openat(cur, comp, flags | O_NOFOLLOW) : ::openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && (errno == ENOTDIR || errno == ELOOP)) {
      struct stat st {};
      if (::fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) errno = ELOOP;
    }
    const int saved = errno;
    ::close(cur);
    errno = saved;
    if (last) return next;
    cur = next;
    comp = end + 1;
  }
  return -1;
}

int OpenNoSymlinks(int dirfd, const char* path, int flags) {
  open_how how{};
  how.flags = static_cast<__u64>(static_cast<unsigned int>(flags));
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  if (dirfd != AT_FDCWD) how.resolve |= RESOLVE_BENEATH;
  const long fd = RetryEintr([&] { return ::syscall(SYS_openat2, dirfd, path, &how, sizeof how); });
  if (fd < 0 && errno == ENOSYS) return WalkNoSymlinks(dirfd, path, flags);
  return static_cast<int>(fd);
}

Identity IdentityOf(uid_t uid, gid_t gid) {
  Identity who{uid, gid, {gid}};
  if (const passwd* pw = ::getpwuid(uid)) {
    who.gid = pw->pw_gid;
    int count = 256;
    std::vector<gid_t> list(static_cast<std::size_t>(count));
    if (::getgrouplist(pw->pw_name, pw->pw_gid, list.data(), &count) >= 0) {
      list.resize(static_cast<std::size_t>(count));
      who.groups = std::move(list);
    } else {
      who.groups = {pw->pw_gid};
    }
  }
  return who;
}

Result<std::vector<UniqueFd>> OpenAsUser(const Identity& who, const std::vector<OpenRequest>& requests,
                                         std::chrono::milliseconds timeout) {
  if (who.uid == 0) return OpenAsRoot(requests);  // root has every right already; no symlinks all the same
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) return FailErrno("socketpair");
  UniqueFd ours(pair[0]), theirs(pair[1]);
  // fork(), not Spawn: the child changes its credentials to the submitter's and
  // opens the files as them (ChildMain), our own code with nothing to exec.
  const pid_t pid = ::fork();
  if (pid < 0) return FailErrno("fork");
  if (pid == 0) {
    ours.reset();
    ChildMain(who, requests, theirs.get());
  }
  theirs.reset();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<UniqueFd> fds;
  Status ok;
  while (ok && fds.size() < requests.size()) {
    auto got = Receive(ours.get(), deadline);
    if (!got) {
      ok = std::unexpected(got.error());
    } else if (got->first.index < 0) {
      ok = Fail(Errc::kPermissionDenied, "cannot become uid " + std::to_string(who.uid) + ": " +
                                                 std::strerror(got->first.error));
    } else if (got->first.error != 0 || !got->second) {
      const OpenRequest& r = requests[fds.size()];
      ok = Fail(got->first.error == ENOENT ? Errc::kNotFound : Errc::kPermissionDenied,
                    Describe(r, got->first.error ? got->first.error : EIO));
    } else {
      fds.push_back(std::move(got->second));
    }
  }
  if (!ok) ::kill(pid, SIGKILL);
  (void)WaitChild(pid);
  if (!ok) return std::unexpected(ok.error());
  return fds;
}

}  // namespace cordon::useropen
