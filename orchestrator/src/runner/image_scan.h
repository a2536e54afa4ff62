// The image check: what the trainer will see at /job must hold nothing that
// reaches out of the sandbox. Private to the runner.
//
// A unix socket file reachable in the sandbox is a channel to whoever listens
// on it (path-based sockets ignore the network namespace), and connect() works
// on a socket inside a read-only bind. So the image tree is walked through its
// fd (openat/fstatat, no symlink followed, bounded depth and entries) and
// refused when it holds a socket, a FIFO, a device node, a mount point (the
// sandbox's non-recursive bind would show what lies under it, unscanned) or a
// directory writable by every user (anyone could plant a socket after the
// check). And an image on the same filesystem as an existing `forbidden` file
// (cordond's socket) is refused: a socket could be hard-linked in after the scan.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "cordon/error.h"

namespace cordon::runner::internal {

inline constexpr int kMaxImageDepth = 64;
inline constexpr std::size_t kMaxImageEntries = 1'000'000;

// `image_fd`: an O_PATH or O_RDONLY directory fd. `forbidden_path`: a file whose
// filesystem the image must not share (skipped when it does not exist). The
// error names the relative path inside the image (the submitter's tree).
[[nodiscard]] Status CheckImage(int image_fd, const std::string& forbidden_path);

}  // namespace cordon::runner::internal
