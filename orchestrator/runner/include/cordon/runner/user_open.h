// Opening what a submitter names, with the submitter's own rights: used by
// cordond (local jobs: the fds go to its `cordon run` child) and by `cordon run
// --as-submitter` on a Slurm node (docs/SCALE-OUT.md), where no fd can arrive.
//
// The confused-deputy rule (docs/THREAT-MODEL.md): cordond is root, but every
// path a user names in a spec (inputs, output.path, trainer.image) is opened
// by a short-lived child process that has become that user (groups, gid, uid;
// no capability survives), with openat2(RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS): a symbolic link in any component refuses the open.
// The fds come back over a socket (SCM_RIGHTS); from then on Cordon works
// through them and never looks the paths up again. A file the user cannot
// read, or a directory the user could not create, is refused like any other.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "cordon/error.h"
#include "cordon/unique_fd.h"

namespace cordon::useropen {

struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups (getgrouplist), primary gid included
};
// The account's groups; a uid with no account gets `gid` alone.
[[nodiscard]] Identity IdentityOf(uid_t uid, gid_t gid);

enum class OpenKind {
  kFile,             // a regular file, read-only (O_NONBLOCK: a FIFO cannot stall us)
  kDirectory,        // an existing directory, read-only
  kDirectoryCreate,  // a directory the user may write, created component by component as the user if missing
};

struct OpenRequest {
  std::string path;  // absolute, normalised (the spec validator guarantees it)
  OpenKind kind = OpenKind::kFile;
};

// Opens every request in order as `who`, or fails naming the first path that
// could not be opened and why. Refuses uid 0 (root needs no deputy). A child
// that takes longer than `timeout` (a hung file system) is killed.
[[nodiscard]] Result<std::vector<UniqueFd>> OpenAsUser(const Identity& who, const std::vector<OpenRequest>& requests,
                                                       std::chrono::milliseconds timeout = std::chrono::seconds(10));

// openat2(dirfd, path, flags, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS):
// the caller's own rights, no symbolic link followed anywhere in `path`.
// Where openat2 is refused with ENOSYS (a seccomp filter older than it, such as
// systemd-nspawn 252's), the same by WalkNoSymlinks: one component at a time
// with O_NOFOLLOW, ".." refused.
[[nodiscard]] int OpenNoSymlinks(int dirfd, const char* path, int flags);
[[nodiscard]] int WalkNoSymlinks(int dirfd, const char* path, int flags);

}  // namespace cordon::useropen
