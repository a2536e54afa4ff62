// The image check: what the trainer will see at /job must hold nothing that
// reaches out of the sandbox. Used by the runner and by cordond (at submission
// and again when the job starts, on the image fd opened as the submitter).
//
// A unix socket file reachable in the sandbox is a channel to whoever listens
// on it (path-based sockets ignore the network namespace), and connect() works
// on a socket inside a read-only bind. So the image tree is walked through its
// fd (openat/fstatat, no symlink followed, bounded depth and entries) and
// refused when it holds a socket, a FIFO, a device node, a mount point (the
// sandbox's non-recursive bind would show what lies under it, unscanned) or a
// directory writable by every user (anyone could plant a socket after the
// check). A socket hard-linked in after the scan: cordond's socket is root's,
// and with fs.protected_hardlinks = 1 (measured: `ln` of root's 0666 socket by
// another user fails with EPERM) no other user can link it anywhere; without
// that protection an image on the same filesystem as the socket is refused.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <vector>

#include "cordon/error.h"

namespace cordon::runner::internal {

inline constexpr int kMaxImageDepth = 64;
inline constexpr std::size_t kMaxImageEntries = 1'000'000;

// Who submitted the job, for cordond's check: a directory of the image that
// the submitter owns (and so may chmod) or may write through a group could
// receive a socket the submitter listens on after the walk — a channel from
// the job, holding plaintext, back to the submitter. Such an image is refused:
// images are published as trees their users cannot change.
struct ImageSubmitter {
  uid_t uid = 0;
  std::vector<gid_t> groups;
};

// `image_fd`: an O_PATH or O_RDONLY directory fd. `socket_path`: cordond's
// socket; when it exists and `links_protected` is false, the image must not be on
// its filesystem. The error names the relative path inside the image (the
// submitter's tree, never the trainer's).
// `submitter`: nullptr for root's own `cordon run` (nothing to hold back).
[[nodiscard]] Status CheckImage(int image_fd, const std::string& socket_path, bool links_protected,
                                const ImageSubmitter* submitter = nullptr);

// fs.protected_hardlinks is 1 (read, never written).
[[nodiscard]] bool HardlinksProtected();

}  // namespace cordon::runner::internal
