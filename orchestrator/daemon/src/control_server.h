// cordond's control socket: a unix stream socket anyone may connect to
// (0666; the policy decides what each may do). Each connection: identity from
// SO_PEERCRED, one request line within the request timeout, decoded by
// protocol::ParseRequest (never throws), one reply line (or a stream for
// logs), then close.
//
// Limits, so that no user can starve another: a global cap on connections, a
// per-uid cap, and a separate bounded pool for `wait` requests (which hold
// their connection until the job ends), global and per uid. A caller past a
// limit is answered `busy` at once.
#pragma once

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it
#include <boost/asio.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "caller.h"
#include "cordon/error.h"
#include "cordon/daemon/protocol.h"

namespace cordon::daemon {

struct ControlLimits {
  std::size_t max_connections = 256;
  std::size_t connections_per_uid = 16;
  std::size_t max_waits = 128;
  std::size_t waits_per_uid = 8;
  std::chrono::milliseconds request_timeout{10000};
};

class ControlServer;

class Connection final : public std::enable_shared_from_this<Connection> {
 public:
  using Local = boost::asio::local::stream_protocol;
  Connection(ControlServer& server, Local::socket socket, Caller caller);
  ~Connection();

  // The one reply; the connection closes once it is written.
  void Send(const nlohmann::json& reply);
  // Moves this connection into the wait pool (no request timeout from now on);
  // false when the pool is full for this caller (the caller answers busy).
  [[nodiscard]] bool EnterWaitPool();
  void StopTimer();
  void Close();
  [[nodiscard]] const Caller& caller() const { return caller_; }
  [[nodiscard]] Local::socket& socket() { return socket_; }

 private:
  friend class ControlServer;
  void Start();
  void OnLine(boost::system::error_code ec, std::size_t n);

  ControlServer& server_;
  Local::socket socket_;
  boost::asio::streambuf buf_;
  boost::asio::steady_timer timer_;
  Caller caller_;
  bool sending_ = false;
  bool waiting_ = false;
};

class ControlServer final {
 public:
  using OnRequest = std::function<void(const std::shared_ptr<Connection>&, const protocol::Request&)>;
  // A refused request: what was asked, why it was refused (audited by the daemon).
  using OnRefused = std::function<void(const Caller&, const std::string& what, const std::string& why)>;

  ControlServer(boost::asio::io_context& io, ControlLimits limits, OnRequest on_request, OnRefused on_refused)
      : io_(io), limits_(limits), on_request_(std::move(on_request)), on_refused_(std::move(on_refused)) {}

  // Binds `path` (replacing a stale socket), makes it 0666 and starts accepting.
  [[nodiscard]] Status Listen(const std::string& path);
  void Close();
  [[nodiscard]] std::size_t connections() const { return connections_; }

 private:
  friend class Connection;
  void Accept();

  boost::asio::io_context& io_;
  ControlLimits limits_;
  OnRequest on_request_;
  OnRefused on_refused_;
  std::optional<Connection::Local::acceptor> acceptor_;
  std::size_t connections_ = 0, waits_ = 0;
  std::map<uid_t, std::size_t> by_uid_, waits_by_uid_;
  bool closed_ = false;
};

}  // namespace cordon::daemon
