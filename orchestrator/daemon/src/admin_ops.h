// cordond's `admin` requests (docs/DAEMON.md): a policy admin asks cordond to
// run one dataset or incident-response command (protocol::AdminCommandRefusal
// says which) as root on their behalf. The command runs as a child `cordon
// --config CONFIG ARGV... --caller-uid UID`, so every step it takes is audited
// with the admin's uid (from SO_PEERCRED), never root's; its stdout and stderr
// (each capped) and exit status go back in the reply.
#pragma once

#include <sys/types.h>

#include <utility>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace cordon::daemon {

struct AdminResult {
  int exit_status = 1;
  std::string out, err;  // at most kMaxAdminOutput each (then "[truncated]")
};

inline constexpr std::size_t kMaxAdminOutput = 4u << 20;
inline constexpr auto kAdminTimeout = std::chrono::minutes(30);  // then SIGKILL

// Starts the child; `done` runs on `io` once it has exited. False (and `done`
// is never called) when it could not start.
[[nodiscard]] bool RunAdminCommand(boost::asio::io_context& io, const std::string& cordon_bin, const std::string& config,
                                   const std::vector<std::string>& argv, uid_t caller,
                                   std::function<void(AdminResult)> done);

}  // namespace cordon::daemon
