#include "run_registry.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cordon/daemon/protocol.h"
#include "cordon/file_io.h"
#include "cordon/process.h"

namespace cordon::cli {
namespace {

using nlohmann::json;

constexpr off_t kMaxRecordBytes = 4096;

std::string RunsDir(const std::string& state_dir) { return state_dir + "/runs"; }

Error Broken(const std::string& path, const std::string& why) {
  return Error{Errc::kIntegrity, path + ": " + why + " (not trusted)"};
}

// The runs directory, root's and 0700, opened without following a symbolic link.
Result<UniqueFd> OpenRunsDir(const std::string& state_dir, bool create) {
  const std::string dir = RunsDir(state_dir);
  if (create) {
    if (auto made = MakeDir(dir, 0700); !made) return std::unexpected(made.error());
  }
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return Fail(Errc::kNotFound, dir + " does not exist");
    return FailErrno("open " + dir);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return FailErrno("stat " + dir);
  if (st.st_uid != 0 || (st.st_mode & 077) != 0) return std::unexpected(Broken(dir, "not a directory of root's with mode 0700"));
  return fd;
}

Result<RunRecord> ParseRecord(const std::string& path, const std::string& text, const std::string& job_id) {
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object() || j.size() != 4) return std::unexpected(Broken(path, "not an object of exactly job_id, pid, pid_start, uid"));
  const auto id = j.find("job_id"), pid = j.find("pid"), start = j.find("pid_start"), uid = j.find("uid");
  if (id == j.end() || pid == j.end() || start == j.end() || uid == j.end() || !id->is_string() ||
      !pid->is_number_unsigned() || !start->is_number_unsigned() || !uid->is_number_unsigned()) {
    return std::unexpected(Broken(path, "needs job_id (string), pid, pid_start, uid (unsigned numbers)"));
  }
  RunRecord r;
  r.job_id = id->get<std::string>();
  if (r.job_id != job_id) return std::unexpected(Broken(path, "it names job '" + r.job_id.substr(0, 128) + "'"));
  const auto p = pid->get<std::uint64_t>(), u = uid->get<std::uint64_t>();
  if (p < 2 || p > INT_MAX) return std::unexpected(Broken(path, "pid out of range"));
  if (u > UINT32_MAX - 1) return std::unexpected(Broken(path, "uid out of range"));
  r.pid = static_cast<pid_t>(p);
  r.pid_start = start->get<std::uint64_t>();
  if (r.pid_start == 0) return std::unexpected(Broken(path, "pid_start is 0"));
  r.uid = static_cast<uid_t>(u);
  return r;
}

Result<RunRecord> ReadRecord(int dir, const std::string& state_dir, const std::string& job_id) {
  const std::string name = job_id + ".json", path = RunsDir(state_dir) + "/" + name;
  UniqueFd fd(::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return Fail(Errc::kNotFound, "no " + path);
    if (errno == ELOOP) return std::unexpected(Broken(path, "a symbolic link"));
    return FailErrno("open " + path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return FailErrno("stat " + path);
  if (!S_ISREG(st.st_mode)) return std::unexpected(Broken(path, "not a regular file"));
  if (st.st_uid != 0 || (st.st_mode & 077) != 0) return std::unexpected(Broken(path, "not root's with mode 0600"));
  if (st.st_nlink != 1) return std::unexpected(Broken(path, "it has other hard links"));
  if (st.st_size > kMaxRecordBytes) return std::unexpected(Broken(path, "over 4 KiB"));
  std::string text(static_cast<std::size_t>(st.st_size), '\0');
  const ssize_t n = RetryEintr([&] { return ::pread(fd.get(), text.data(), text.size(), 0); });
  if (n != static_cast<ssize_t>(text.size())) return FailErrno("read " + path);
  return ParseRecord(path, text, job_id);
}

bool Alive(const RunRecord& r) { return ProcessStartTime(r.pid) == r.pid_start; }

// Removes the record if its process has ended and the file is still that record (read again:
// a run of the same id may have replaced it since).
bool RemoveStaleIn(int dir, const std::string& state_dir, const RunRecord& record) {
  if (Alive(record)) return false;
  auto again = ReadRecord(dir, state_dir, record.job_id);
  if (!again || again->pid != record.pid || again->pid_start != record.pid_start) return false;
  return ::unlinkat(dir, (record.job_id + ".json").c_str(), 0) == 0;
}

// The names in the directory open at `dir` (read through a descriptor of its own).
Result<std::vector<std::string>> Names(int dir, const std::string& path) {
  UniqueFd own(::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!own) return FailErrno("open " + path);
  DIR* d = ::fdopendir(own.get());
  if (d == nullptr) return FailErrno("list " + path);
  (void)own.release();  // closedir closes it
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  const int err = errno;
  ::closedir(d);
  if (err != 0) return Fail(Errc::kIo, "list " + path + ": " + std::strerror(err));
  return names;
}

}  // namespace

RunRegistration::~RunRegistration() {
  if (!dir_) return;
  struct stat st {};
  if (::fstatat(dir_.get(), name_.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == dev_ && st.st_ino == ino_) {
    ::unlinkat(dir_.get(), name_.c_str(), 0);
  }
}

Result<RunRegistration> RegisterRun(const std::string& state_dir, const std::string& job_id, uid_t uid) {
  if (!protocol::IsJobId(job_id)) return Fail(Errc::kInvalidArgument, "'" + job_id + "' is not a job id");
  auto dir = OpenRunsDir(state_dir, true);
  if (!dir) return std::unexpected(dir.error());
  const pid_t self = ::getpid();
  const json record = {{"job_id", job_id}, {"pid", self}, {"pid_start", ProcessStartTime(self)}, {"uid", uid}};
  const std::string name = job_id + ".json", temp = "." + job_id + "." + std::to_string(self) + ".tmp";
  UniqueFd fd(::openat(dir->get(), temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return FailErrno("create " + RunsDir(state_dir) + "/" + temp);
  struct stat st {};
  Status ok = WriteAll(fd.get(), record.dump() + "\n");
  if (ok && ::fstat(fd.get(), &st) != 0) ok = FailErrno("stat " + temp);
  for (int attempt = 0; ok && attempt < 2; ++attempt) {
    if (::renameat2(dir->get(), temp.c_str(), dir->get(), name.c_str(), RENAME_NOREPLACE) == 0) {
      return RunRegistration(std::move(*dir), name, st.st_dev, st.st_ino);
    }
    if (errno != EEXIST) {
      ok = FailErrno("rename into " + RunsDir(state_dir) + "/" + name);
      break;
    }
    auto existing = ReadRecord(dir->get(), state_dir, job_id);
    if (existing && Alive(*existing)) {
      ok = Fail(Errc::kAlreadyExists, "job " + job_id + " is already running (pid " + std::to_string(existing->pid) + ")");
    } else if (!existing || ::unlinkat(dir->get(), name.c_str(), 0) != 0) {
      ok = Fail(Errc::kAlreadyExists, RunsDir(state_dir) + "/" + name + " exists and is not a stale record" +
                                          (existing ? "" : ": " + existing.error().message));
    }
  }
  ::unlinkat(dir->get(), temp.c_str(), 0);
  return std::unexpected(ok ? Error{Errc::kAlreadyExists, "job " + job_id + ": cannot register"} : ok.error());
}

Result<RunRecord> FindRun(const std::string& state_dir, const std::string& job_id) {
  if (!protocol::IsJobId(job_id)) return Fail(Errc::kInvalidArgument, "'" + job_id + "' is not a job id");
  auto dir = OpenRunsDir(state_dir, false);
  if (!dir) return std::unexpected(dir.error());
  return ReadRecord(dir->get(), state_dir, job_id);
}

UniqueFd OpenRunProcess(const RunRecord& record) {
  // Opened first, then checked: a pidfd names one process for good, so if the start time
  // matches after the open, it is the registered process (a pid reused in between does not).
  UniqueFd pidfd(PidfdOpen(record.pid));
  if (pidfd && !Alive(record)) pidfd.reset();
  return pidfd;
}

bool RemoveStaleRun(const std::string& state_dir, const RunRecord& record) {
  auto dir = OpenRunsDir(state_dir, false);
  return dir && RemoveStaleIn(dir->get(), state_dir, record);
}

Result<RunSweep> SweepStaleRuns(const std::string& state_dir, const std::string& skip) {
  auto dir = OpenRunsDir(state_dir, false);
  if (!dir) return dir.error().code == Errc::kNotFound ? Result<RunSweep>(RunSweep{}) : std::unexpected(dir.error());
  auto names = Names(dir->get(), RunsDir(state_dir));
  if (!names) return std::unexpected(names.error());
  RunSweep sweep;
  for (const std::string& name : *names) {
    if (name.front() == '.') continue;  // a registration in flight
    const std::string id = name.size() > 5 && name.ends_with(".json") ? name.substr(0, name.size() - 5) : "";
    if (!protocol::IsJobId(id)) {
      sweep.untrusted.push_back(Broken(RunsDir(state_dir) + "/" + name, "not a run record's name (<job id>.json)"));
      continue;
    }
    if (id == skip) continue;
    auto record = ReadRecord(dir->get(), state_dir, id);
    if (!record) {
      if (record.error().code != Errc::kNotFound) sweep.untrusted.push_back(record.error());  // else: gone meanwhile
      continue;
    }
    if (RemoveStaleIn(dir->get(), state_dir, *record)) sweep.removed.push_back(*record);
  }
  return sweep;
}

void PrintSweep(const std::string& command, const Result<RunSweep>& sweep) {
  if (!sweep) {
    std::cerr << "cordon " << command << ": warning: stale run records not swept: " << sweep.error().message << "\n";
    return;
  }
  for (const RunRecord& r : sweep->removed) {
    std::cerr << "cordon " << command << ": removed the stale record of job " << r.job_id << " (its `cordon run`, pid "
              << r.pid << ", has ended)\n";
  }
  for (const Error& e : sweep->untrusted) {
    std::cerr << "cordon " << command << ": warning: " << e.message << "; left in place\n";
  }
}

}  // namespace cordon::cli
