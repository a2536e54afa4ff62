// cordond's event loop. Process model (docs/DAEMON.md):
//   * one thread, one boost::asio::io_context; nothing blocks it but small
//     file writes (job records, audit entries: fsync'd, a few ms);
//   * each job is a child `cordon run` started with posix_spawn (new session,
//     stdout a pipe, stderr a file in the job's state dir) and awaited through
//     a pidfd registered with the reactor: no SIGCHLD handler, no pid reuse
//     race when cancelling (pidfd_send_signal);
//   * the spool is an inotify fd and the control socket an Asio acceptor.
#include "cordon/orchestrator/daemon.h"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <cstring>
#include <sstream>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <spdlog/spdlog.h>

#include "cordon/file_io.h"
#include "cordon/unique_fd.h"
#include "cordon/orchestrator/audit.h"
#include "cordon/orchestrator/audit_config.h"
#include "cordon/orchestrator/job_store.h"
#include "cordon/orchestrator/policy.h"
#include "cordon/orchestrator/sealed.h"
#include "cordon/specs/spec.h"

extern char** environ;

namespace cordon::daemon {
namespace {

namespace asio = boost::asio;
using nlohmann::json;
using Local = asio::local::stream_protocol;

constexpr std::size_t kMaxRequestBytes = 1 << 20;
constexpr std::size_t kMaxConnections = 256;
constexpr std::size_t kMaxRunnerOutput = 4 << 20;

int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
int PidfdSignal(int fd, int sig) { return static_cast<int>(::syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0)); }

// Field 22 of /proc/PID/stat (start time in clock ticks); 0 if gone.
std::uint64_t ProcessStart(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return 0;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i) {
    if (i == 22) return std::strtoull(field.c_str(), nullptr, 10);
  }
  return 0;
}

audit::Actor ActorFor(uid_t uid, pid_t pid, std::string process) {
  audit::Actor a;
  a.uid = uid;
  if (const passwd* pw = ::getpwuid(uid)) a.user = pw->pw_name;
  a.pid = pid;
  a.process = std::move(process);
  return a;
}

std::string FirstLines(const std::vector<yaml::Diagnostic>& diags) {
  std::string out;
  for (std::size_t i = 0; i < diags.size() && i < 5; ++i) out += (i ? "; " : "") + yaml::FormatDiagnostic("spec", diags[i]);
  return out;
}

// Audit strings stay well under the log's 1 KiB guard.
std::string Clip(const std::string& s) { return s.size() <= 480 ? s : s.substr(0, 480) + "..."; }

json PublicJob(const JobRecord& r) {
  json j = r.ToJson();
  j.erase("pid");
  j.erase("pid_start");
  j.erase("seq");
  return j;
}

// posix_spawn with stdin /dev/null, stdout `stdout_fd`, stderr `stderr_path`
// (O_APPEND-less, 0600, or /dev/null), default signal dispositions and an
// empty mask; `setsid` puts the child in its own session (so a survivor can
// be killed with its whole process group after a crash).
struct SpawnSpec {
  std::vector<std::string> argv;
  int stdout_fd = -1;
  std::string stderr_path = "/dev/null";
  bool setsid = false;
};

Result<pid_t> Spawn(SpawnSpec spec) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, spec.stdout_fd, 1);
  posix_spawn_file_actions_addopen(&fa, 2, spec.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  const short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (spec.setsid ? POSIX_SPAWN_SETSID : 0);
  posix_spawnattr_setflags(&attr, flags);
  std::vector<char*> argv;
  for (auto& a : spec.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return FailErrno("cannot start " + spec.argv[0], rc);
  return pid;
}

struct Caller {
  policy::Caller id;
  pid_t pid = 0;
  std::string via;  // "socket" or "spool"
};

struct Submission {
  JobRecord* record = nullptr;
  std::string code;  // "" accepted; invalid_spec, denied, error
  std::string error;
};

class Connection;

struct RunningJob {
  std::string job_id;
  pid_t pid = 0;
  std::unique_ptr<asio::posix::stream_descriptor> pidfd;
  std::unique_ptr<asio::posix::stream_descriptor> out;
  std::string output;
  std::array<char, 8192> buf{};
  bool exited = false, out_done = false, cancel_requested = false;
  int wait_status = 0;
};

class Daemon final {
 public:
  explicit Daemon(DaemonOptions options) : options_(std::move(options)), config_(options_.config) {}
  int Main();

  // For connections.
  void Handle(const std::shared_ptr<Connection>& conn, const json& request);
  void Refuse(const Caller& caller, const std::string& what, const std::string& why);
  asio::io_context& io() { return io_; }
  const DaemonOptions& options() const { return options_; }
  std::size_t connections = 0;

 private:
  Status Start();
  Status Recover();
  void Accept();
  void WatchSpool();
  void ScanSpool(const std::string& dir, bool taking);
  void TakeSpool(const std::string& name);
  void TakeSpoolFile(const std::string& token);
  void WaitSignals();
  void Reload();
  void BeginStop();
  void FinishStop();
  void Schedule();
  void Launch(JobRecord& record);
  void ReadOutput(const std::shared_ptr<RunningJob>& job);
  void Reaped(const std::shared_ptr<RunningJob>& job);
  void Finalize(RunningJob& job);
  void Notify();
  void Watchdog(std::uint64_t usec);
  void SetFinal(JobRecord& r, JobState state, std::string outcome, std::string reason);
  Submission Submit(const std::string& text, const Caller& caller, const std::string& source);
  Status Authorize(const specs::TrainingJob& job, const Caller& caller);
  void AuditEvent(const std::string& action, const std::string& job, const std::string& outcome, json details,
                  const std::optional<Caller>& caller = std::nullopt);
  bool MayView(const Caller& c, const JobRecord& r) const {
    return c.id.uid == r.submitter || policy::IsAdmin(policy_, c.id);
  }
  void Reply(const std::shared_ptr<Connection>& conn, json reply);
  bool CheckMembers(const std::shared_ptr<Connection>& conn, const json& request);
  void OnSubmit(const std::shared_ptr<Connection>& conn, const json& request);
  void OnWait(const std::shared_ptr<Connection>& conn, const JobRecord& r);
  void OnCancel(const std::shared_ptr<Connection>& conn, JobRecord& r);
  void Logs(const std::shared_ptr<Connection>& conn, const JobRecord& r);

  DaemonOptions options_;
  orchestrator::Config config_;
  policy::Policy policy_;
  UniqueFd lock_;
  std::unique_ptr<audit::AuditLog> audit_;
  std::optional<JobStore> store_;
  asio::io_context io_;
  std::optional<Local::acceptor> acceptor_;
  std::optional<asio::posix::stream_descriptor> inotify_;
  std::array<char, 64 * 1024> inotify_buf_{};
  asio::signal_set signals_{io_, SIGTERM, SIGINT, SIGHUP};
  asio::steady_timer grace_timer_{io_};
  asio::steady_timer watchdog_timer_{io_};
  std::map<std::string, std::shared_ptr<RunningJob>> running_;
  std::map<std::string, std::vector<std::shared_ptr<Connection>>> waiters_;
  std::map<uid_t, std::uint64_t> last_served_;
  std::uint64_t serve_counter_ = 0;
  std::uint64_t spool_counter_ = 0;
  bool stopping_ = false;
  bool stopped_ = false;
};

// One client: SO_PEERCRED identity, one request line (<= 1 MiB, within the
// request timeout), one reply line (or a stream for `logs`), then close.
class Connection final : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Daemon& d, Local::socket socket)
      : daemon_(d), socket_(std::move(socket)), buf_(kMaxRequestBytes), timer_(d.io()) {}
  ~Connection() { --daemon_.connections; }

  void Start() {
    ++daemon_.connections;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return;
    caller_ = Caller{{cred.uid, cred.gid}, cred.pid, "socket"};
    auto self = shared_from_this();
    timer_.expires_after(daemon_.options().request_timeout);
    timer_.async_wait([self](boost::system::error_code ec) {
      if (ec) return;
      self->daemon_.Refuse(self->caller_, "request", "no request line within the request timeout");
      self->Send(json{{"ok", false}, {"code", "timeout"}, {"error", "no request within the timeout"}});
    });
    asio::async_read_until(socket_, buf_, '\n', [self](boost::system::error_code ec, std::size_t n) {
      self->OnLine(ec, n);
    });
  }

  void Send(const json& reply) {
    timer_.cancel();
    if (sending_) return;
    sending_ = true;
    auto text = std::make_shared<std::string>(reply.dump() + "\n");
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(*text), [self, text](boost::system::error_code, std::size_t) {
      boost::system::error_code ignored;
      self->socket_.shutdown(Local::socket::shutdown_both, ignored);
      self->socket_.close(ignored);
    });
  }
  void StopTimer() { timer_.cancel(); }
  bool open() const { return socket_.is_open() && !sending_; }
  Local::socket& socket() { return socket_; }
  const Caller& caller() const { return caller_; }

 private:
  void OnLine(boost::system::error_code ec, std::size_t n) {
    if (ec == asio::error::not_found) {
      daemon_.Refuse(caller_, "request", "request line over 1 MiB");
      Send(json{{"ok", false}, {"code", "invalid"}, {"error", "request line over 1 MiB"}});
      return;
    }
    if (ec) {  // EOF, reset, or closed by the timeout
      timer_.cancel();
      return;
    }
    std::string line(asio::buffers_begin(buf_.data()), asio::buffers_begin(buf_.data()) + static_cast<std::ptrdiff_t>(n));
    json request = json::parse(line, nullptr, false);
    if (request.is_discarded() || !request.is_object()) {
      daemon_.Refuse(caller_, "request", "request is not a JSON object");
      Send(json{{"ok", false}, {"code", "invalid"}, {"error", "the request is not one JSON object"}});
      return;
    }
    daemon_.Handle(shared_from_this(), request);
  }

  Daemon& daemon_;
  Local::socket socket_;
  asio::streambuf buf_;
  asio::steady_timer timer_;
  Caller caller_;
  bool sending_ = false;
};

// ---------------------------------------------------------------- start-up

int Daemon::Main() {
  if (auto started = Start(); !started) {
    spdlog::error("cannot start: {}", started.error().message);
    sd_notifyf(0, "STATUS=cannot start: %s", started.error().message.c_str());
    return 1;
  }
  try {
    io_.run();
  } catch (const std::exception& e) {
    spdlog::critical("event loop: {}", e.what());
    return 1;
  }
  return 0;
}

Status Daemon::Start() {
  ::signal(SIGPIPE, SIG_IGN);
  auto policy = policy::LoadPolicy(policy::PolicyPathFor(config_.path));
  if (!policy) return std::unexpected(policy.error());
  policy_ = std::move(*policy);
  // One daemon per state directory: a second would run every queued job twice.
  lock_.reset(::open((config_.state_dir + "/cordond.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!lock_ || ::flock(lock_.get(), LOCK_EX | LOCK_NB) != 0) {
    return Fail(Errc::kAlreadyExists, "another cordond holds " + config_.state_dir + "/cordond.lock");
  }
  auto log = audit::AuditLog::Open(orchestrator::AuditOptionsFor(config_));
  if (!log) return std::unexpected(WithContext(log.error(), "audit log"));
  audit_ = std::move(*log);
  auto store = JobStore::Open(config_.state_dir);
  if (!store) return std::unexpected(WithContext(store.error(), "job store"));
  store_ = std::move(*store);
  for (const char* sub : {"/taking", "/rejected"}) {
    if (auto made = MakeDir(config_.spool_dir + sub, 0700); !made) return std::unexpected(made.error());
  }
  if (auto r = Recover(); !r) return r;
  AuditEvent("daemon.started", "", "ok", {{"config_path", config_.path}, {"policy_path", policy_.path}});
  // The socket: anyone may connect (0666); the policy decides what each may do.
  ::unlink(config_.daemon.socket.c_str());
  try {
    acceptor_.emplace(io_, Local::endpoint(config_.daemon.socket));
  } catch (const boost::system::system_error& e) {
    return Fail(Errc::kIo, config_.daemon.socket + ": " + e.what());
  }
  ::chmod(config_.daemon.socket.c_str(), 0666);
  Accept();
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  const std::string incoming = config_.spool_dir + "/incoming";
  if (fd < 0 || ::inotify_add_watch(fd, incoming.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    return FailErrno("inotify on " + incoming);
  }
  inotify_.emplace(io_, fd);
  WatchSpool();
  ScanSpool(config_.spool_dir + "/taking", true);
  ScanSpool(incoming, false);
  WaitSignals();
  Schedule();
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) Watchdog(usec);
  sd_notify(0, "READY=1");
  Notify();
  spdlog::info("ready: socket {}, spool {}, {} job(s) known", config_.daemon.socket, incoming, store_->All().size());
  return {};
}

// Jobs recorded as running when the daemon died: their `cordon run` had
// PR_SET_PDEATHSIG(SIGKILL); any survivor with the recorded pid and start time
// is killed with its whole session, then the job is marked interrupted.
Status Daemon::Recover() {
  for (JobRecord* r : store_->All()) {
    if (r->state != JobState::kRunning) continue;
    bool killed = false;
    if (r->pid > 0 && r->pid_start != 0 && ProcessStart(r->pid) == r->pid_start) {
      ::kill(-r->pid, SIGKILL);
      ::kill(r->pid, SIGKILL);
      killed = true;
    }
    SetFinal(*r, JobState::kInterrupted, "interrupted", "cordond stopped while the job ran");
    AuditEvent("job.interrupted", r->job_id, "interrupted",
               {{"runner_pid", r->pid}, {"survivor_killed", killed}});
    spdlog::warn("job {} was running when cordond stopped: interrupted", r->job_id);
  }
  return {};
}

void Daemon::WaitSignals() {
  signals_.async_wait([this](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      Reload();
    } else {
      BeginStop();
    }
    if (!stopped_) WaitSignals();
  });
}

void Daemon::Reload() {
  sd_notify(0, "RELOADING=1");
  auto policy = policy::LoadPolicy(policy::PolicyPathFor(config_.path));
  if (!policy) {
    spdlog::error("SIGHUP: policy not reloaded, the old one stays: {}", policy.error().message);
    AuditEvent("policy.reloaded", "", "failed", {{"policy_path", policy::PolicyPathFor(config_.path)}});
  } else {
    policy_ = std::move(*policy);
    AuditEvent("policy.reloaded", "", "ok", {{"policy_path", policy_.path}, {"grants", policy_.grants.size()}});
    spdlog::info("policy reloaded from {}", policy_.path);
  }
  if (auto config = orchestrator::LoadConfig(config_.path)) {
    config_.daemon.max_concurrent_jobs = config->daemon.max_concurrent_jobs;  // the rest needs a restart
  } else {
    spdlog::error("SIGHUP: config not reloaded: {}", config.error().message);
  }
  sd_notify(0, "READY=1");
  Schedule();
}

// ---------------------------------------------------------------- stop

void Daemon::BeginStop() {
  if (stopping_) return;
  stopping_ = true;
  sd_notify(0, "STOPPING=1");
  spdlog::info("stopping: {} running job(s) get {}s to finish", running_.size(), options_.grace.count());
  boost::system::error_code ignored;
  if (acceptor_) acceptor_->close(ignored);
  ::unlink(config_.daemon.socket.c_str());
  if (inotify_) inotify_->close(ignored);
  if (running_.empty()) return FinishStop();
  grace_timer_.expires_after(options_.grace);
  grace_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    for (auto& [id, job] : running_) {
      job->cancel_requested = true;
      PidfdSignal(job->pidfd->native_handle(), SIGTERM);
    }
    spdlog::warn("grace period over: cancelling {} job(s)", running_.size());
    grace_timer_.expires_after(std::chrono::seconds(20));
    grace_timer_.async_wait([this](boost::system::error_code ec2) {
      if (ec2) return;
      for (auto& [id, job] : running_) PidfdSignal(job->pidfd->native_handle(), SIGKILL);
    });
  });
}

void Daemon::FinishStop() {
  stopped_ = true;
  for (auto& [id, conns] : waiters_) {
    for (auto& c : conns) c->Send(json{{"ok", false}, {"code", "stopping"}, {"error", "cordond is stopping"}});
  }
  waiters_.clear();
  AuditEvent("daemon.stopped", "", "ok", json::object());
  if (auto cp = audit_->Checkpoint(); !cp) spdlog::error("final checkpoint: {}", cp.error().message);
  spdlog::info("stopped; final audit checkpoint written");
  grace_timer_.cancel();
  watchdog_timer_.cancel();
  signals_.cancel();
  io_.stop();
}

// ---------------------------------------------------------------- audit, notify

void Daemon::AuditEvent(const std::string& action, const std::string& job, const std::string& outcome, json details,
                        const std::optional<Caller>& caller) {
  audit::Event e;
  e.action = action;
  e.job = job;
  e.outcome = outcome;
  e.details = std::move(details);
  if (caller) {
    e.actor = ActorFor(caller->id.uid, caller->pid, caller->via == "spool" ? "spool" : "cordon-client");
    e.details["via"] = caller->via;
  }
  if (auto r = audit_->Append(e); !r) spdlog::error("audit append {}: {}", action, r.error().message);
}

void Daemon::Refuse(const Caller& caller, const std::string& what, const std::string& why) {
  spdlog::warn("refused {} from uid {}: {}", what, caller.id.uid, why);
  AuditEvent("request.refused", "", "denied", {{"request", Clip(what)}, {"reason", Clip(why)}}, caller);
}

void Daemon::Notify() {
  std::size_t queued = 0;
  for (JobRecord* r : store_->All()) queued += r->state == JobState::kQueued;
  sd_notifyf(0, "STATUS=%zu running, %zu queued%s", running_.size(), queued, stopping_ ? ", stopping" : "");
}

void Daemon::Watchdog(std::uint64_t usec) {
  sd_notify(0, "WATCHDOG=1");
  watchdog_timer_.expires_after(std::chrono::microseconds(usec / 2));
  watchdog_timer_.async_wait([this, usec](boost::system::error_code ec) {
    if (!ec) Watchdog(usec);
  });
}

void Daemon::SetFinal(JobRecord& r, JobState state, std::string outcome, std::string reason) {
  r.state = state;
  r.outcome = std::move(outcome);
  r.reason = std::move(reason);
  r.finished_at = NowSeconds();
  r.pid = 0;
  r.pid_start = 0;
  if (auto s = store_->Save(r); !s) spdlog::error("job {}: cannot save its state: {}", r.job_id, s.error().message);
  auto it = waiters_.find(r.job_id);
  if (it == waiters_.end()) return;
  for (auto& c : it->second) c->Send(json{{"ok", true}, {"job", PublicJob(r)}});
  waiters_.erase(it);
}

// ---------------------------------------------------------------- submission

Status Daemon::Authorize(const specs::TrainingJob& job, const Caller& caller) {
  const policy::Grant* grant = policy::GrantFor(policy_, caller.id);
  if (!grant) return Fail(Errc::kPermissionDenied, "uid " + std::to_string(caller.id.uid) + " is not in the policy");
  std::size_t active = 0;
  for (JobRecord* r : store_->All()) active += r->submitter == caller.id.uid && !IsFinal(r->state);
  if (active >= grant->max_queued) {
    return Fail(Errc::kPermissionDenied, "uid " + std::to_string(caller.id.uid) + " already has " +
                                             std::to_string(active) + " jobs queued or running");
  }
  std::vector<policy::InputFacts> facts;
  for (const auto& in : job.inputs) {
    UniqueFd fd(::open(in.path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat st {};
    auto info = fd && ::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode)
                    ? sealed::OpenSealed(fd.get())
                    : Fail(Errc::kNotFound, "");
    if (!info) return Fail(Errc::kPermissionDenied, "input " + in.name + ": not a readable sealed file");
    facts.push_back({in.path, info->header.dataset, info->header.key.ToString()});
  }
  return policy::CheckJob(*grant, job, facts);
}

Submission Daemon::Submit(const std::string& text, const Caller& caller, const std::string& source) {
  Submission out;
  JobRecord record;
  record.submitter = caller.id.uid;
  record.via = caller.via;
  record.submitted_at = NowSeconds();
  record.source = source;
  specs::ParseResult parsed = specs::ParseSpec(text);
  Status decision;
  if (!parsed.job) {
    out.code = "invalid_spec";
    out.error = FirstLines(parsed.diagnostics);
  } else {
    record.name = parsed.job->name;
    if (stopping_) decision = Fail(Errc::kUnsupported, "cordond is stopping");
    else decision = Authorize(*parsed.job, caller);
    if (!decision) {
      out.code = decision.error().code == Errc::kPermissionDenied ? "denied" : "error";
      out.error = decision.error().message;
    }
  }
  if (!out.code.empty()) {
    record.state = JobState::kRejected;
    record.outcome = out.code;
    record.reason = out.error;
    record.finished_at = record.submitted_at;
  }
  auto created = store_->Create(std::move(record), text);
  if (!created) {
    out.code = "error";
    out.error = "cannot record the job: " + created.error().message;
    AuditEvent("job.submitted", "", "error", {{"reason", out.error}}, caller);
    return out;
  }
  out.record = *created;
  if (auto sha = sealed::Sha256File(store_->SpecPath(out.record->job_id))) out.record->spec_sha256 = *sha;
  (void)store_->Save(*out.record);
  json details = {{"spec_sha256", out.record->spec_sha256}, {"name", out.record->name}};
  if (!out.code.empty()) details["reason"] = Clip(out.error);
  AuditEvent("job.submitted", out.record->job_id, out.code.empty() ? "accepted" : out.code, details, caller);
  spdlog::info("job {} from uid {} via {}: {}", out.record->job_id, caller.id.uid, caller.via,
               out.code.empty() ? "queued" : out.code);
  if (out.code.empty()) Schedule();
  return out;
}

// ---------------------------------------------------------------- spool

void Daemon::WatchSpool() {
  inotify_->async_read_some(asio::buffer(inotify_buf_), [this](boost::system::error_code ec, std::size_t n) {
    if (ec) return;
    std::vector<std::string> names;
    bool overflow = false;
    for (std::size_t off = 0; off + sizeof(inotify_event) <= n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(inotify_buf_.data() + off);
      overflow = overflow || (ev->mask & IN_Q_OVERFLOW);
      if (ev->len > 0) names.emplace_back(ev->name);
      off += sizeof(inotify_event) + ev->len;
    }
    if (overflow) ScanSpool(config_.spool_dir + "/incoming", false);
    for (const auto& name : names) TakeSpool(name);
    if (!stopping_) WatchSpool();
  });
}

void Daemon::ScanSpool(const std::string& dir, bool taking) {
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    if (!taking) {
      TakeSpool(name);
      continue;
    }
    bool known = false;  // a crash after the job was recorded, before the file was removed
    for (JobRecord* r : store_->All()) known = known || r->source == name;
    if (known) ::unlink((dir + "/" + name).c_str());
    else TakeSpoolFile(name);
  }
}

// Writers must write a temporary name starting with '.' and rename(2) it into
// incoming/: names starting with '.' are never taken.
void Daemon::TakeSpool(const std::string& name) {
  if (name.empty() || name[0] == '.' || name.find('/') != std::string::npos) return;
  char token[64];
  std::snprintf(token, sizeof token, "t%lld-%llu", static_cast<long long>(NowSeconds() * 1000),
                static_cast<unsigned long long>(++spool_counter_));
  const std::string from = config_.spool_dir + "/incoming/" + name;
  const std::string to = config_.spool_dir + "/taking/" + token;
  // Moved first into a directory only root can touch: from here on the owner
  // cannot swap the file under us.
  if (::rename(from.c_str(), to.c_str()) != 0) return;  // already taken, or gone
  (void)FsyncDir(config_.spool_dir + "/taking");
  TakeSpoolFile(token);
}

void Daemon::TakeSpoolFile(const std::string& token) {
  const std::string path = config_.spool_dir + "/taking/" + token;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  struct stat st {};
  std::string problem;
  Caller caller{{0, 0}, 0, "spool"};
  if (!fd || ::fstat(fd.get(), &st) != 0) {
    problem = "not a regular file (symbolic link?)";
    struct stat lst {};
    if (::lstat(path.c_str(), &lst) == 0) caller.id = {lst.st_uid, lst.st_gid};
  } else {
    caller.id = {st.st_uid, st.st_gid};
    if (!S_ISREG(st.st_mode)) problem = "not a regular file";
    else if (st.st_nlink != 1) problem = "has more than one hard link";
    else if (st.st_size > static_cast<off_t>(kMaxRequestBytes)) problem = "larger than 1 MiB";
  }
  std::string text;
  if (problem.empty()) {
    text.resize(static_cast<std::size_t>(st.st_size));
    if (::pread(fd.get(), text.data(), text.size(), 0) != st.st_size) problem = "could not be read";
  }
  const std::string rejected = config_.spool_dir + "/rejected/" + token;
  if (!problem.empty()) {
    Refuse(caller, "spool file " + token, problem);
    ::rename(path.c_str(), rejected.c_str());
    (void)WriteFileAtomic(rejected + ".error", problem + "\n", 0600);
    return;
  }
  Submission s = Submit(text, caller, token);
  if (s.record && s.code.empty()) {
    ::unlink(path.c_str());
    return;
  }
  const std::string target = config_.spool_dir + "/rejected/" + (s.record ? s.record->job_id : token);
  ::rename(path.c_str(), (target + ".yaml").c_str());
  (void)WriteFileAtomic(target + ".error", s.code + ": " + s.error + "\n", 0600);
}

// ---------------------------------------------------------------- socket

void Daemon::Accept() {
  acceptor_->async_accept([this](boost::system::error_code ec, Local::socket socket) {
    if (ec) return;  // closed on stop
    if (connections < kMaxConnections) std::make_shared<Connection>(*this, std::move(socket))->Start();
    else spdlog::warn("connection refused: {} connections open", connections);
    if (!stopping_) Accept();
  });
}

void Daemon::Reply(const std::shared_ptr<Connection>& conn, json reply) { conn->Send(reply); }

// Identity comes from SO_PEERCRED only: a request naming one is refused.
bool Daemon::CheckMembers(const std::shared_ptr<Connection>& conn, const json& request) {
  static const std::set<std::string> kIdentity = {"uid", "gid", "pid", "user", "submitter", "caller",
                                                  "identity", "actor", "as", "admin"};
  static const std::set<std::string> kAllowed = {"op", "spec", "spec_path", "job"};
  for (const auto& [key, value] : request.items()) {
    if (kIdentity.count(key)) {
      Refuse(conn->caller(), "request", "forged identity field \"" + key + "\"");
      Reply(conn, {{"ok", false}, {"code", "denied"},
                   {"error", "the request names \"" + key + "\": identity comes from the socket (SO_PEERCRED), never from a request"}});
      return false;
    }
    if (!kAllowed.count(key)) {
      Refuse(conn->caller(), "request", "unknown member");
      Reply(conn, {{"ok", false}, {"code", "invalid"}, {"error", "unknown request member \"" + key + "\""}});
      return false;
    }
  }
  return true;
}

void Daemon::Handle(const std::shared_ptr<Connection>& conn, const json& request) {
  if (!CheckMembers(conn, request)) return;
  const Caller& caller = conn->caller();
  const std::string op = request.value("op", "");
  if (op == "ping") return Reply(conn, {{"ok", true}, {"running", running_.size()}});
  if (op == "submit") return OnSubmit(conn, request);
  const std::string job_id = request.contains("job") && request["job"].is_string() ? request["job"].get<std::string>() : "";
  if (op == "status" && job_id.empty()) {
    json jobs = json::array();
    for (JobRecord* r : store_->All()) {
      if (MayView(caller, *r)) jobs.push_back(PublicJob(*r));
    }
    return Reply(conn, {{"ok", true}, {"jobs", jobs}});
  }
  JobRecord* r = store_->Find(job_id);
  if (!r || !MayView(caller, *r)) {  // another's job reads as absent
    if (r) Refuse(caller, op + " " + job_id, "not the submitter nor an admin");
    return Reply(conn, {{"ok", false}, {"code", "not_found"}, {"error", "no job " + job_id + " of yours"}});
  }
  if (op == "status") return Reply(conn, {{"ok", true}, {"job", PublicJob(*r)}});
  if (op == "wait") return OnWait(conn, *r);
  if (op == "cancel") return OnCancel(conn, *r);
  if (op == "logs") return Logs(conn, *r);
  Reply(conn, {{"ok", false}, {"code", "invalid"}, {"error", "unknown op \"" + op + "\""}});
}

void Daemon::OnSubmit(const std::shared_ptr<Connection>& conn, const json& request) {
  if (!request.contains("spec") || !request["spec"].is_string()) {
    return Reply(conn, {{"ok", false}, {"code", "invalid"}, {"error", "submit needs \"spec\" (the YAML text)"}});
  }
  Submission s = Submit(request["spec"].get<std::string>(), conn->caller(), "");
  json reply = {{"ok", s.code.empty()}};
  if (s.record) reply["job_id"] = s.record->job_id;
  if (!s.code.empty()) reply.update({{"code", s.code}, {"error", s.error}});
  Reply(conn, reply);
}

void Daemon::OnWait(const std::shared_ptr<Connection>& conn, const JobRecord& r) {
  if (IsFinal(r.state)) return Reply(conn, {{"ok", true}, {"job", PublicJob(r)}});
  conn->StopTimer();
  waiters_[r.job_id].push_back(conn);
}

void Daemon::OnCancel(const std::shared_ptr<Connection>& conn, JobRecord& r) {
  const Caller& caller = conn->caller();
  AuditEvent("job.cancel", r.job_id, IsFinal(r.state) ? "noop" : "requested", json::object(), caller);
  if (r.state == JobState::kQueued) {
    SetFinal(r, JobState::kCancelled, "cancelled", "cancelled while queued by uid " + std::to_string(caller.id.uid));
    Notify();
  } else if (auto it = running_.find(r.job_id); it != running_.end()) {
    it->second->cancel_requested = true;
    PidfdSignal(it->second->pidfd->native_handle(), SIGTERM);
  }
  Reply(conn, {{"ok", true}, {"job", PublicJob(r)}});
}

// `cordon logs`: a child `cordon unseal LOG -` writes the plaintext straight
// into the client's socket after a one-line header; the daemon never holds it.
void Daemon::Logs(const std::shared_ptr<Connection>& conn, const JobRecord& r) {
  const std::string log = r.output_dir + "/trainer.log.sealed";
  struct stat st {};
  if (r.output_dir.empty() || ::stat(log.c_str(), &st) != 0) {
    return Reply(conn, {{"ok", false}, {"code", "not_found"}, {"error", "job " + r.job_id + " has no trainer log"}});
  }
  AuditEvent("job.logs", r.job_id, "ok", {{"log_path", log}}, conn->caller());
  conn->StopTimer();
  const std::string header = json{{"ok", true}, {"stream", true}}.dump() + "\n";
  int sock = conn->socket().native_handle();
  // Asio made the socket non-blocking; the unsealer shares it as stdout and
  // must block on a slow reader instead of failing with EAGAIN.
  ::fcntl(sock, F_SETFL, ::fcntl(sock, F_GETFL) & ~O_NONBLOCK);
  (void)::send(sock, header.data(), header.size(), MSG_NOSIGNAL);
  auto pid = Spawn({{options_.cordon_bin, "--config", config_.path, "unseal", log, "-"}, sock});
  if (!pid) return Reply(conn, {{"ok", false}, {"code", "error"}, {"error", "cannot start the unsealer"}});
  auto pidfd = std::make_shared<asio::posix::stream_descriptor>(io_, PidfdOpen(*pid));
  pidfd->async_wait(asio::posix::stream_descriptor::wait_read, [conn, pidfd, pid = *pid](boost::system::error_code) {
    ::waitpid(pid, nullptr, 0);
    boost::system::error_code ignored;
    conn->socket().shutdown(Local::socket::shutdown_both, ignored);
    conn->socket().close(ignored);
  });
}

// ---------------------------------------------------------------- queue and jobs

// Per-user fairness: among users with queued jobs, the one with the fewest
// running jobs goes first, ties broken by who was served longest ago; within a
// user, FIFO.
void Daemon::Schedule() {
  while (!stopping_ && running_.size() < config_.daemon.max_concurrent_jobs) {
    std::map<uid_t, std::size_t> running_by;
    for (auto& [id, job] : running_) running_by[store_->Find(id)->submitter]++;
    JobRecord* best = nullptr;
    auto key = [&](const JobRecord* r) { return std::make_pair(running_by[r->submitter], last_served_[r->submitter]); };
    for (JobRecord* r : store_->All()) {
      if (r->state != JobState::kQueued) continue;
      if (!best || key(r) < key(best)) best = r;
    }
    if (!best) break;
    last_served_[best->submitter] = ++serve_counter_;
    Launch(*best);
  }
  Notify();
}

void Daemon::Launch(JobRecord& record) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) {
    SetFinal(record, JobState::kFailed, "setup_error", "pipe failed");
    return;
  }
  UniqueFd read_end(pipefd[0]), write_end(pipefd[1]);
  auto pid = Spawn({{options_.cordon_bin, "--config", config_.path, "run", "--json", "--die-with-parent", "--job-id",
                     record.job_id, "--submitter-uid", std::to_string(record.submitter), store_->SpecPath(record.job_id)},
                    write_end.get(), store_->JobDir(record.job_id) + "/runner.err", true});
  write_end.reset();
  if (!pid) {
    SetFinal(record, JobState::kFailed, "setup_error", pid.error().message);
    AuditEvent("job.completed", record.job_id, "failed", {{"runner_outcome", "setup_error"}});
    return;
  }
  auto job = std::make_shared<RunningJob>();
  job->job_id = record.job_id;
  job->pid = *pid;
  job->pidfd = std::make_unique<asio::posix::stream_descriptor>(io_, PidfdOpen(*pid));
  job->out = std::make_unique<asio::posix::stream_descriptor>(io_, read_end.release());
  record.state = JobState::kRunning;
  record.started_at = NowSeconds();
  record.pid = *pid;
  record.pid_start = ProcessStart(*pid);
  if (auto s = store_->Save(record); !s) spdlog::error("job {}: cannot save its state: {}", record.job_id, s.error().message);
  running_[record.job_id] = job;
  spdlog::info("job {} started (runner pid {})", record.job_id, *pid);
  ReadOutput(job);
  job->pidfd->async_wait(asio::posix::stream_descriptor::wait_read, [this, job](boost::system::error_code ec) {
    if (!ec) Reaped(job);
  });
}

void Daemon::ReadOutput(const std::shared_ptr<RunningJob>& job) {
  job->out->async_read_some(asio::buffer(job->buf), [this, job](boost::system::error_code ec, std::size_t n) {
    if (!ec && job->output.size() + n <= kMaxRunnerOutput) {
      job->output.append(job->buf.data(), n);
      return ReadOutput(job);
    }
    job->out_done = true;
    boost::system::error_code ignored;
    job->out->close(ignored);  // never leave the runner blocked on a full pipe
    if (job->exited) Finalize(*job);
  });
}

void Daemon::Reaped(const std::shared_ptr<RunningJob>& job) {
  int status = 0;
  pid_t got = 0;
  while ((got = ::waitpid(job->pid, &status, 0)) < 0 && errno == EINTR) {
  }
  if (got != job->pid) return;
  job->exited = true;
  job->wait_status = status;
  if (job->out_done) Finalize(*job);
}

void Daemon::Finalize(RunningJob& job) {
  auto keep = running_[job.job_id];  // keeps `job` alive until the end of this call
  running_.erase(job.job_id);
  JobRecord* r = store_->Find(job.job_id);
  json report = json::parse(job.output, nullptr, false);
  r->exit_status = WIFEXITED(job.wait_status) ? WEXITSTATUS(job.wait_status) : 128 + WTERMSIG(job.wait_status);
  std::string outcome = "setup_error", reason = "cordon run ended without a report (exit status " + std::to_string(r->exit_status) + ")";
  if (report.is_object() && report.contains("outcome")) {
    outcome = report.value("outcome", "setup_error");
    reason = report.value("reason", "");
    r->output_dir = report.value("output_dir", "");
    r->outputs = json::array();
    if (report.contains("outputs") && report["outputs"].is_array()) {
      for (const auto& o : report["outputs"]) r->outputs.push_back(o);
    }
  }
  // A SIGTERM that reached `cordon run` before its handler: killed, no report.
  if (job.cancel_requested && !report.is_object()) outcome = "cancelled", reason = "cancelled before the job started";
  JobState state = outcome == "succeeded" ? JobState::kSucceeded
                   : outcome == "cancelled" || job.cancel_requested ? JobState::kCancelled
                                                                    : JobState::kFailed;
  SetFinal(*r, state, outcome, reason);
  AuditEvent("job.completed", r->job_id, JobStateName(state), {{"runner_outcome", outcome}, {"exit_status", r->exit_status}});
  spdlog::info("job {} {}: {}", r->job_id, JobStateName(state), outcome);
  if (stopping_ && running_.empty()) return FinishStop();
  Schedule();
}

}  // namespace

int Run(const DaemonOptions& options) {
  Daemon daemon(options);
  return daemon.Main();
}

}  // namespace cordon::daemon
