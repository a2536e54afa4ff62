// Small, crash-safe file helpers. Every write that must survive a crash goes
// through WriteFileAtomic: temp file in the same directory, fsync, rename,
// fsync of the directory — so a reader sees the old content or the new, never
// a torn mix.
#pragma once

#include <sys/types.h>

#include <cerrno>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "cordon/error.h"
#include "cordon/secret.h"

namespace cordon {

// Reads a whole regular file, refusing anything larger than max_bytes (the
// error names the file, its size and the limit) and anything not regular
// (FIFOs, devices: reading them could block or never end).
[[nodiscard]] Result<std::string> ReadFileLimited(const std::string& path, std::uint64_t max_bytes);
// The same for key material: read straight into locked memory that is
// cleansed when freed (no std::string, no reallocation leaving a copy).
[[nodiscard]] Result<SecretBytes> ReadSecretFile(const std::string& path, std::uint64_t max_bytes);

enum class Overwrite { kReplace, kRefuse };

// Writes `data` to `path` atomically with the given mode. With kRefuse an
// existing `path` is left untouched and the result is kAlreadyExists.
[[nodiscard]] Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode,
                                     Overwrite overwrite = Overwrite::kReplace);

// Calls `call` (a system call returning -1 and errno on failure: read, write,
// poll, waitpid, flock, ...) again for as long as it fails with EINTR, and
// returns what the last call returned.
template <class Call>
auto RetryEintr(Call&& call) -> decltype(call()) {
  decltype(call()) r;
  do r = call();
  while (r == -1 && errno == EINTR);
  return r;
}

// write(2) until every byte is written (retrying EINTR and short writes).
[[nodiscard]] Status WriteAll(int fd, std::string_view data);
[[nodiscard]] Status WriteAll(int fd, std::span<const std::uint8_t> data);

// pwrite(2) at `offset` until every byte is written (retrying EINTR and short
// writes); a write that makes no progress is ENOSPC.
[[nodiscard]] Status PwriteAll(int fd, std::string_view data, off_t offset);
[[nodiscard]] Status PwriteAll(int fd, std::span<const std::uint8_t> data, off_t offset);

// pread(2) at `offset` until `out` is full or the file ends (retrying EINTR
// and short reads); returns how many bytes were read.
[[nodiscard]] Result<std::size_t> PreadFull(int fd, std::span<std::uint8_t> out, off_t offset);

// fsync(2) of a directory, so a rename or create inside it is durable.
[[nodiscard]] Status FsyncDir(const std::string& dir);

enum class DirState { kCreated, kExisted };

// Creates a directory with exactly `mode` (umask does not apply). An existing
// directory is left as it is (kExisted); an existing non-directory is an error.
[[nodiscard]] Result<DirState> MakeDir(const std::string& path, mode_t mode);

}  // namespace cordon
