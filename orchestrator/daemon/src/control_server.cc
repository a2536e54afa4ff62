#include "control_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

namespace cordon::daemon {
namespace {

namespace asio = boost::asio;
using nlohmann::json;
using protocol::ErrorReply;
using protocol::ReplyCode;

}  // namespace

Connection::Connection(ControlServer& server, Local::socket socket, Caller caller)
    : server_(server), socket_(std::move(socket)), buf_(protocol::kMaxRequestBytes), timer_(server.io_),
      caller_(std::move(caller)) {
  ++server_.connections_;
  ++server_.by_uid_[caller_.id.uid];
}

Connection::~Connection() {
  --server_.connections_;
  if (--server_.by_uid_[caller_.id.uid] == 0) server_.by_uid_.erase(caller_.id.uid);
  if (waiting_) {
    --server_.waits_;
    if (--server_.waits_by_uid_[caller_.id.uid] == 0) server_.waits_by_uid_.erase(caller_.id.uid);
  }
}

void Connection::Start() {
  auto self = shared_from_this();
  timer_.expires_after(server_.limits_.request_timeout);
  timer_.async_wait([self](boost::system::error_code ec) {
    if (ec) return;
    self->server_.on_refused_(self->caller_, "request", "no request line within the request timeout");
    self->Send(ErrorReply(ReplyCode::kTimeout, "no request within the timeout"));
  });
  asio::async_read_until(socket_, buf_, '\n', [self](boost::system::error_code ec, std::size_t n) {
    self->OnLine(ec, n);
  });
}

void Connection::OnLine(boost::system::error_code ec, std::size_t n) {
  if (ec == asio::error::not_found) {
    server_.on_refused_(caller_, "request", "request line over 1 MiB");
    return Send(ErrorReply(ReplyCode::kInvalid, "request line over 1 MiB"));
  }
  if (ec) {  // EOF, reset, or closed by the timeout
    timer_.cancel();
    return;
  }
  const auto begin = asio::buffers_begin(buf_.data());
  const std::string line(begin, begin + static_cast<std::ptrdiff_t>(n));
  auto request = protocol::ParseRequest(line);
  if (!request) {
    server_.on_refused_(caller_, "request", request.error().message);
    const bool forged = request.error().code == Errc::kPermissionDenied;
    return Send(ErrorReply(forged ? ReplyCode::kDenied : ReplyCode::kInvalid, request.error().message));
  }
  try {
    server_.on_request_(shared_from_this(), *request);
  } catch (const std::exception& e) {  // a bug; never let it reach the event loop
    spdlog::error("request {} from uid {}: {}", protocol::OpName(request->op), caller_.id.uid, e.what());
    Send(ErrorReply(ReplyCode::kError, "internal error"));
  }
}

void Connection::Send(const json& reply) {
  timer_.cancel();
  if (sending_) return;
  sending_ = true;
  auto text = std::make_shared<std::string>(protocol::EncodeReply(reply));
  auto self = shared_from_this();
  asio::async_write(socket_, asio::buffer(*text), [self, text](boost::system::error_code, std::size_t) {
    self->Close();
  });
}

bool Connection::EnterWaitPool() {
  if (waiting_) return true;
  const uid_t uid = caller_.id.uid;
  if (server_.waits_ >= server_.limits_.max_waits || server_.waits_by_uid_[uid] >= server_.limits_.waits_per_uid) {
    return false;
  }
  waiting_ = true;
  ++server_.waits_;
  ++server_.waits_by_uid_[uid];
  timer_.cancel();
  return true;
}

void Connection::StopTimer() { timer_.cancel(); }

void Connection::Close() {
  timer_.cancel();
  boost::system::error_code ignored;
  socket_.shutdown(Local::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

Status ControlServer::Listen(const std::string& path) {
  ::unlink(path.c_str());
  try {
    acceptor_.emplace(io_, Connection::Local::endpoint(path));
  } catch (const boost::system::system_error& e) {
    return Fail(Errc::kIo, path + ": " + e.what());
  }
  if (::chmod(path.c_str(), 0666) != 0) return FailErrno("chmod " + path);
  Accept();
  return {};
}

void ControlServer::Close() {
  closed_ = true;
  boost::system::error_code ignored;
  if (acceptor_) acceptor_->close(ignored);
}

void ControlServer::Accept() {
  acceptor_->async_accept([this](boost::system::error_code ec, Connection::Local::socket socket) {
    if (ec) return;  // closed on stop
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      // no identity, no service
    } else if (connections_ >= limits_.max_connections) {
      spdlog::warn("connection from uid {} refused: {} connections open", cred.uid, connections_);
    } else {
      auto conn = std::make_shared<Connection>(*this, std::move(socket), Caller{{cred.uid, cred.gid}, cred.pid, "socket"});
      if (by_uid_[cred.uid] > limits_.connections_per_uid) {
        spdlog::warn("connection from uid {} refused: {} of its connections open", cred.uid, by_uid_[cred.uid] - 1);
        conn->Send(ErrorReply(ReplyCode::kBusy, "too many connections of yours are open (limit " +
                                                    std::to_string(limits_.connections_per_uid) + ")"));
      } else {
        conn->Start();
      }
    }
    if (!closed_) Accept();
  });
}

}  // namespace cordon::daemon
