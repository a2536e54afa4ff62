// cordond's spool: users drop specs into <spool>/incoming (1733), written
// under a name starting with '.' and renamed into place. Each file is first
// renamed into the root-only <spool>/taking/ (so its owner can no longer swap
// it), then read through one fd: a regular file with one link, at most 1 MiB,
// whose owner is the submitter. Refused files go to <spool>/rejected/ with a
// .error file beside them. After a crash, taking/ is scanned first.
#pragma once

#include <array>
#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it
#include <boost/asio.hpp>
#include <functional>
#include <optional>
#include <string>

#include "caller.h"
#include "cordon/error.h"

namespace cordon::daemon {

struct SpoolVerdict {
  bool accepted = false;
  std::string job_id;  // "" when no job was recorded
  std::string code;    // refusal code when not accepted
  std::string error;
};

class SpoolIntake final {
 public:
  using Submit = std::function<SpoolVerdict(const std::string& text, const Caller& caller, const std::string& token)>;
  using Refuse = std::function<void(const Caller& caller, const std::string& what, const std::string& why)>;
  using Known = std::function<bool(const std::string& token)>;  // a job was already recorded from it

  SpoolIntake(boost::asio::io_context& io, std::string spool_dir, Submit submit, Refuse refuse, Known known)
      : io_(io), dir_(std::move(spool_dir)), submit_(std::move(submit)), refuse_(std::move(refuse)),
        known_(std::move(known)) {}

  // Creates taking/ and rejected/, watches incoming/ and takes what is already there.
  [[nodiscard]] Status Start();
  void Close();

 private:
  void Watch();
  void Scan(const std::string& dir, bool taking);
  void Take(const std::string& name);
  void TakeFile(const std::string& token);

  boost::asio::io_context& io_;
  std::string dir_;
  Submit submit_;
  Refuse refuse_;
  Known known_;
  std::optional<boost::asio::posix::stream_descriptor> inotify_;
  std::array<char, 64 * 1024> buf_{};
  std::uint64_t counter_ = 0;
  bool closed_ = false;
};

}  // namespace cordon::daemon
