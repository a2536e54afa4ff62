// The clients of cordond's control socket (docs/DAEMON.md):
//   cordon submit SPEC | status [JOB] [--json] | list [--json] | cancel JOB | wait JOB [--json] | logs JOB
// One request line of JSON per connection, one reply line (a stream for
// logs). The daemon learns who we are from SO_PEERCRED; we send no identity.
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "daemon_client.h"
#include "sealed_cli.h"
#include "cordon/file_io.h"
#include "cordon/config/config.h"
#include "cordon/daemon/protocol.h"
#include "cordon/unique_fd.h"

namespace cordon::cli {
namespace {

using nlohmann::json;

int ExitFor(protocol::ReplyCode code) {
  switch (code) {
    case protocol::ReplyCode::kInvalid:
    case protocol::ReplyCode::kInvalidSpec: return kExitInvalid;
    case protocol::ReplyCode::kDenied: return kExitDenied;
    case protocol::ReplyCode::kNotFound: return kExitNotFound;
    case protocol::ReplyCode::kBusy:
    case protocol::ReplyCode::kAuditUnavailable: return kExitUnavailable;
    case protocol::ReplyCode::kInputRejected: return kExitInputRejected;  // as `cordon run` for the same job
    default: return kExitFailure;
  }
}

void PrintTable(const json& jobs) {
  std::printf("%-40s %-11s %-18s %-9s %s\n", "JOB", "STATE", "OUTCOME", "SUBMITTER", "NAME");
  for (const auto& j : jobs) {
    std::printf("%-40s %-11s %-18s %-9s %s\n", j.value("job_id", "").c_str(), j.value("state", "").c_str(),
                j.value("outcome", "").c_str(), std::to_string(j.value("submitter", 0u)).c_str(),
                j.value("name", "").c_str());
  }
}

std::string Mi(const json& bytes) {
  return bytes.is_number_unsigned() ? std::to_string(bytes.get<std::uint64_t>() >> 20) + " MiB" : std::string("?");
}

// "memory: peak 300 MiB (largest process 280 MiB), limit 2048 MiB; scratch: peak 700 MiB of 1024 MiB"
void PrintResources(const json& r) {
  const json scratch = r.value("scratch", json::object());
  std::cout << "memory: peak " << Mi(r.value("peak_memory_bytes", json())) << " (largest process "
            << Mi(r.value("max_rss_bytes", json())) << "), limit " << Mi(r.value("memory_limit_bytes", json()))
            << "; scratch: peak " << Mi(scratch.value("peak_bytes", json())) << " of " << Mi(scratch.value("size_bytes", json()))
            << (scratch.value("full", false) ? " (full)" : "") << "\n";
}

class ClientCommand final : public Command {
 public:
  ClientCommand(CLI::App& app, std::string op, const std::string& help) : op_(std::move(op)) {
    sub_ = app.add_subcommand(op_, help);
    if (op_ == "submit") {
      sub_->add_option("spec", arg_, "job spec (YAML); read by this command, as you")->required();
    } else if (op_ == "status") {
      sub_->add_option("job", arg_, "job id (default: every job you may see)");
    } else if (op_ != "list") {
      sub_->add_option("job", arg_, "job id")->required();
    }
    if (op_ == "status" || op_ == "list" || op_ == "wait") sub_->add_flag("--json", json_, "print JSON");
    sub_->footer(
        "Talks to cordond over daemon.socket; the daemon knows the caller from the socket.\n" +
        ExitStatusLine({{kExitOk, "ok"}, {kExitFailure, "failed (daemon unreachable)"},
                        {kExitInvalid, "invalid spec or request"}, {kExitDenied, "refused by the access policy"},
                        {kExitNotFound, "no such job of yours"},
                        {kExitUnavailable, "cordond is busy for you or cannot audit right now (try again later)"},
                        {kExitInputRejected, "submit: an input is quarantined (input_rejected, as `cordon run`)"}})
        + std::string(op_ == "wait" ? "\nwait: the job's own status: " + std::to_string(kExitOk) + " succeeded, " +
                                          std::to_string(kExitTrainerFailed) + "-" + std::to_string(kExitSetupError) +
                                          " as `cordon run` (failed), " + std::to_string(kExitCancelled) + " cancelled, " +
                                          std::to_string(kExitInterrupted) + " interrupted, " +
                                          std::to_string(kExitHalted) + " halted, " + std::to_string(kExitInvalid) +
                                          " rejected (" + std::to_string(kExitInputRejected) +
                                          " when refused for a quarantined input)."
                                    : "")
        + std::string(op_ == "submit" ? "\nThe job id is the last line on stdout." : ""));
  }

  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions& global) override {
    auto socket_path = SocketPath(global);
    if (!socket_path) {
      std::cerr << "cordon: " << socket_path.error().message << "\n";
      return kExitInvalid;
    }
    protocol::Request request;
    request.op = *protocol::ParseOp(op_ == "list" ? "status" : op_);
    if (op_ == "submit") {
      auto text = ReadFileLimited(arg_, protocol::kMaxRequestBytes);
      if (!text) {
        std::cerr << "cordon: " << text.error().message << "\n";
        return kExitInvalid;
      }
      std::error_code ec;
      request.spec = *text;
      request.spec_path = std::filesystem::absolute(arg_, ec).string();
    } else if (!arg_.empty()) {
      if (!protocol::IsJobId(arg_)) {
        std::cerr << "cordon " << op_ << ": '" << arg_ << "' is not a job id\n";
        return kExitInvalid;
      }
      request.job = arg_;
    }
    auto fd = ConnectToDaemon(*socket_path);
    if (!fd) {
      std::cerr << "cordon: " << fd.error().message << "\n";
      return kExitFailure;
    }
    std::string rest;
    auto reply = AskDaemon(fd->get(), request, &rest);
    if (!reply) {
      std::cerr << "cordon: " << reply.error().message << "\n";
      return kExitFailure;
    }
    if (!reply->ok) {
      std::cerr << "cordon " << op_ << ": " << reply->error << " (" << protocol::ReplyCodeName(reply->code) << ")\n";
      if (const auto id = reply->body.find("job_id"); id != reply->body.end() && id->is_string()) {
        std::cerr << "cordon: job " << id->get<std::string>() << " rejected\n";
      }
      return ExitFor(reply->code);
    }
    return Print(reply->body, fd->get(), rest);
  }

 private:
  // $CORDON_SOCKET, else the config's daemon.socket; a user who may not read
  // the config (0640) gets the default socket.
  static Result<std::string> SocketPath(const GlobalOptions& global) {
    if (const char* env = std::getenv("CORDON_SOCKET"); env && *env) return std::string(env);
    const std::string path = orchestrator::ResolveConfigPath(global.config);
    auto config = orchestrator::LoadConfig(path);
    if (config) return config->daemon.socket;
    if (::access(path.c_str(), R_OK) == 0 || errno != EACCES) return std::unexpected(config.error());
    return std::string("/run/cordon/cordon.sock");
  }

  int Print(const json& reply, int fd, const std::string& rest) {
    if (op_ == "submit") {
      std::cout << reply.value("job_id", "") << "\n";
      return kExitOk;
    }
    if (op_ == "logs") return Stream(fd, rest);
    if (reply.contains("jobs")) {
      if (json_) std::cout << reply["jobs"].dump(2) << "\n";
      else PrintTable(reply["jobs"]);
      return kExitOk;
    }
    const json& job = reply["job"];
    if (json_ || op_ == "status") {
      if (json_) std::cout << job.dump(2) << "\n";
      else PrintTable(json::array({job}));
      if (!json_ && job.contains("resources") && job["resources"].is_object()) PrintResources(job["resources"]);
      if (!json_ && job.contains("metrics") && job["metrics"].is_object()) {  // a running job's latest
        std::string line;
        for (const auto& [k, v] : job["metrics"].items()) line += " " + k + "=" + v.dump();
        std::cout << "metrics:" << line << "\n";
      }
    } else {
      std::cout << job.value("job_id", "") << " " << job.value("state", "") << " " << job.value("outcome", "") << "\n";
    }
    return op_ == "wait" ? WaitStatus(job) : kExitOk;
  }

  static int WaitStatus(const json& job) {
    const std::string state = job.value("state", "");
    if (state == "succeeded") return kExitOk;
    if (state == "cancelled") return job.value("outcome", "") == "halted" ? kExitHalted : kExitCancelled;
    if (state == "interrupted") return kExitInterrupted;
    if (state == "rejected") return job.value("outcome", "") == "input_rejected" ? kExitInputRejected : kExitInvalid;
    const int status = job.value("exit_status", -1);  // failed: `cordon run`'s 10..15
    return status >= kExitTrainerFailed && status <= kExitSetupError ? status : kExitFailure;
  }

  static int Stream(int fd, const std::string& rest) {
    std::cout << rest << std::flush;
    char chunk[65536];
    for (;;) {
      const ssize_t n = RetryEintr([&] { return ::recv(fd, chunk, sizeof chunk, 0); });
      if (n <= 0) break;
      std::cout.write(chunk, n);
    }
    std::cout.flush();
    return kExitOk;
  }

  CLI::App* sub_ = nullptr;
  std::string op_;
  std::string arg_;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Command> MakeDaemonClientCommand(CLI::App& app, const std::string& op) {
  static const std::map<std::string, std::string> kHelp = {
      {"submit", "submit a job spec to cordond; prints the job id"},
      {"status", "show jobs known to cordond (yours; every job for admins)"},
      {"list", "list jobs known to cordond"},
      {"cancel", "cancel a queued or running job"},
      {"wait", "wait until a job is final; exit status follows its outcome"},
      {"logs", "print a job's trainer log (unsealed; submitter or admin only)"}};
  return std::make_unique<ClientCommand>(app, op, kHelp.at(op));
}

}  // namespace cordon::cli
