#include "daemon_client.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <string_view>

#include "cordon/file_io.h"

namespace cordon::cli {
namespace {

Status SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = RetryEintr([&] { return ::send(fd, data.data(), data.size(), MSG_NOSIGNAL); });
    if (n <= 0) return FailErrno("send to cordond");
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

Result<std::string> ReadLine(int fd, std::string* rest) {
  std::string buf;
  char chunk[65536];
  for (std::size_t nl; (nl = buf.find('\n')) == std::string::npos;) {
    if (buf.size() > kMaxReplyBytes) return Fail(Errc::kInvalidData, "cordond's reply is over 16 MiB");
    const ssize_t n = RetryEintr([&] { return ::recv(fd, chunk, sizeof chunk, 0); });
    if (n <= 0) return Fail(Errc::kIo, "cordond closed the connection without a reply");
    buf.append(chunk, static_cast<std::size_t>(n));
  }
  const std::size_t nl = buf.find('\n');
  if (rest) *rest = buf.substr(nl + 1);
  buf.resize(nl);
  return buf;
}

}  // namespace

Result<UniqueFd> ConnectToDaemon(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return FailErrno("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return Fail(Errc::kInvalidArgument, path + ": socket path too long");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return FailErrno("cannot reach cordond at " + path + " (is it running?)");
  }
  return fd;
}

Result<protocol::Reply> AskDaemon(int fd, const protocol::Request& request, std::string* rest) {
  if (auto sent = SendAll(fd, protocol::EncodeRequest(request)); !sent) return std::unexpected(sent.error());
  auto line = ReadLine(fd, rest);
  if (!line) return std::unexpected(line.error());
  return protocol::ParseReply(*line);
}

}  // namespace cordon::cli
