#include "cordon/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <random>

#include "cordon/unique_fd.h"

namespace cordon {
namespace {

std::string DirName(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string TempNameBeside(const std::string& path) {
  std::random_device rd;
  char suffix[17];
  std::snprintf(suffix, sizeof suffix, "%08x%08x", rd(), rd());
  const std::string dir = DirName(path);
  const std::size_t slash = path.rfind('/');
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  return (dir == "/" ? "" : dir) + "/." + base + ".tmp." + suffix;
}

}  // namespace

namespace {

// Opens a regular file for reading and returns its size, refusing anything
// larger than max_bytes and anything not regular (FIFOs, devices).
Result<std::pair<UniqueFd, std::size_t>> OpenRegular(const std::string& path, std::uint64_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) return FailErrno(path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return FailErrno(path);
  if (S_ISDIR(st.st_mode)) return Fail(Errc::kInvalidArgument, path + ": is a directory");
  if (!S_ISREG(st.st_mode)) return Fail(Errc::kInvalidArgument, path + ": not a regular file");
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    return Fail(Errc::kInvalidArgument, path + ": file is " + std::to_string(st.st_size) +
                                            " bytes; the limit is " + std::to_string(max_bytes));
  }
  return std::pair{std::move(fd), static_cast<std::size_t>(st.st_size)};
}

// Reads into buf (sized file size + 1, allocated once: no reallocation ever
// copies the content); returns the bytes read, refusing a file that grew.
Result<std::size_t> ReadInto(int fd, const std::string& path, std::uint8_t* buf, std::size_t capacity) {
  std::size_t got = 0;
  while (got < capacity) {
    const ssize_t n = RetryEintr([&] { return ::read(fd, buf + got, capacity - got); });
    if (n < 0) return FailErrno("read " + path);
    if (n == 0) return got;
    got += static_cast<std::size_t>(n);
  }
  return Fail(Errc::kInvalidArgument, path + ": the file grew while it was read");
}

}  // namespace

Result<std::string> ReadFileLimited(const std::string& path, std::uint64_t max_bytes) {
  auto file = OpenRegular(path, max_bytes);
  if (!file) return std::unexpected(file.error());
  std::string data(file->second + 1, '\0');
  auto got = ReadInto(file->first.get(), path, reinterpret_cast<std::uint8_t*>(data.data()), data.size());
  if (!got) return std::unexpected(got.error());
  data.resize(*got);
  return data;
}

Result<SecretBytes> ReadSecretFile(const std::string& path, std::uint64_t max_bytes) {
  auto file = OpenRegular(path, max_bytes);
  if (!file) return std::unexpected(file.error());
  SecretBytes buf(file->second + 1);
  auto got = ReadInto(file->first.get(), path, buf.data(), buf.size());
  if (!got) return std::unexpected(got.error());
  SecretBytes out = SecretBytes::From(std::span<const std::uint8_t>(buf.data(), *got));
  return out;  // buf is cleansed on destruction
}

Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = RetryEintr([&] { return ::write(fd, data.data(), data.size()); });
    if (n < 0) return FailErrno("write");
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

Status WriteAll(int fd, std::span<const std::uint8_t> data) {
  return WriteAll(fd, std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
}

Status PwriteAll(int fd, std::string_view data, off_t offset) {
  while (!data.empty()) {
    const ssize_t n = RetryEintr([&] { return ::pwrite(fd, data.data(), data.size(), offset); });
    if (n <= 0) return FailErrno("write", n < 0 ? errno : ENOSPC);
    data.remove_prefix(static_cast<std::size_t>(n));
    offset += n;
  }
  return {};
}

Status PwriteAll(int fd, std::span<const std::uint8_t> data, off_t offset) {
  return PwriteAll(fd, std::string_view(reinterpret_cast<const char*>(data.data()), data.size()), offset);
}

Result<std::size_t> PreadFull(int fd, std::span<std::uint8_t> out, off_t offset) {
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        RetryEintr([&] { return ::pread(fd, out.data() + done, out.size() - done, offset + static_cast<off_t>(done)); });
    if (n < 0) return FailErrno("read");
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

Status FsyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return FailErrno("open directory " + dir);
  if (::fsync(fd.get()) != 0) return FailErrno("fsync directory " + dir);
  return {};
}

Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode,
                       Overwrite overwrite) {
  const std::string temp = TempNameBeside(path);
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) return FailErrno("create " + temp);
  const auto cleanup_fail = [&](Error error) -> Status {
    ::unlink(temp.c_str());
    return std::unexpected(std::move(error));
  };
  if (::fchmod(fd.get(), mode) != 0) return cleanup_fail(FailErrno("chmod " + temp).error());
  if (auto ok = WriteAll(fd.get(), data); !ok) return cleanup_fail(WithContext(ok.error(), temp));
  if (::fsync(fd.get()) != 0) return cleanup_fail(FailErrno("fsync " + temp).error());
  fd.reset();
  if (overwrite == Overwrite::kRefuse) {
    // link(2) fails with EEXIST instead of replacing: no window where path is clobbered.
    if (::link(temp.c_str(), path.c_str()) != 0) return cleanup_fail(FailErrno(path).error());
    ::unlink(temp.c_str());
  } else if (::rename(temp.c_str(), path.c_str()) != 0) {
    return cleanup_fail(FailErrno("rename " + temp + " to " + path).error());
  }
  return FsyncDir(DirName(path));
}

Result<DirState> MakeDir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) == 0) {
    if (::chmod(path.c_str(), mode) != 0) return FailErrno("chmod " + path);
    return DirState::kCreated;
  }
  if (errno != EEXIST) return FailErrno("mkdir " + path);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return FailErrno(path);
  if (!S_ISDIR(st.st_mode)) {
    return Fail(Errc::kAlreadyExists, path + ": exists and is not a directory");
  }
  return DirState::kExisted;
}

}  // namespace cordon
