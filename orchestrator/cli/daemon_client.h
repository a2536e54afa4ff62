// The client side of cordond's control socket (docs/DAEMON.md), one for every command that
// talks to it (submit, status, wait, logs, the admin forwarding, halt): connect, send one
// request line, read one reply line. The daemon knows the caller from SO_PEERCRED; nothing
// here names an identity.
#pragma once

#include <string>

#include "cordon/daemon/protocol.h"
#include "cordon/error.h"
#include "cordon/unique_fd.h"

namespace cordon::cli {

// The most a reply line may hold (an admin command's stdout and stderr, 4 MiB each, escaped).
inline constexpr std::size_t kMaxReplyBytes = 16u << 20;

// A connected socket to cordond at `path` (the error says whether it is running).
[[nodiscard]] Result<UniqueFd> ConnectToDaemon(const std::string& path);

// Sends `request` over `fd` (connected to cordond) and reads its reply line. `rest`, when
// given, receives the bytes that followed the line (the start of a `logs` stream). A reply
// over kMaxReplyBytes, or a connection closed before the line ends, is an error.
[[nodiscard]] Result<protocol::Reply> AskDaemon(int fd, const protocol::Request& request, std::string* rest = nullptr);

}  // namespace cordon::cli
