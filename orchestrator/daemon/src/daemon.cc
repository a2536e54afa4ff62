// cordond: composes the service from its parts (docs/DAEMON.md):
//   spool_intake  — specs dropped into the spool directory
//   control_server — the unix socket, its limits, the typed protocol
//   user_open     — every path a submitter names, opened as the submitter
//   scheduler     — which queued job starts next (a pure function)
//   supervisor    — the `cordon run` children, through pidfds
//   slurm_executor — daemon.executor: slurm: each job a Slurm batch job (docs/SCALE-OUT.md)
//   job_store     — crash-safe job records
// One thread, one boost::asio::io_context; nothing blocks it but small file
// writes (job records, audit entries: fsync'd, a few ms) and the short-lived
// opener child. Every decision (accept, start, cancel, finish) is appended to
// the audit log before it takes effect; a decision the log cannot record is
// not taken (`audit_unavailable`), and the service reports itself degraded.
#include "cordon/daemon/daemon.h"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <cstring>
#include <memory>
#include <sstream>
#include <spdlog/spdlog.h>

#include "admin_ops.h"
#include "control_server.h"
#include "journal.h"
#include "metrics_file.h"
#include "cordon/exit_codes.h"
#include "cordon/file_io.h"
#include "cordon/audit/audit.h"
#include "cordon/config/audit_options.h"
#include "cordon/datasets/quarantine.h"
#include "cordon/runner/image_scan.h"
#include "cordon/images/oci_image.h"
#include "cordon/daemon/job_store.h"
#include "cordon/policy/policy.h"
#include "cordon/daemon/protocol.h"
#include "cordon/sealed/sealed.h"
#include "cordon/specs/spec.h"
#include "cordon/process.h"
#include "cordon/unique_fd.h"
#include "cleanup.h"
#include "scheduler.h"
#include "slurm_executor.h"
#include "spool_intake.h"
#include "supervisor.h"
#include "user_open.h"

namespace cordon::daemon {
namespace {

namespace asio = boost::asio;
using nlohmann::json;
using protocol::ErrorReply;
using protocol::Op;
using protocol::ReplyCode;

constexpr auto kLogStreamLimit = std::chrono::minutes(10);        // a whole `cordon logs`
constexpr auto kAuditRetry = std::chrono::seconds(5);             // degraded: try to start jobs again

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
  for (const char* key : {"pid", "pid_start", "seq", "output_dir_id"}) j.erase(key);
  return j;
}

// The runner's live status (`cordon run --status-file`): the latest accepted metrics, written
// by the runner (root) in the job's state directory. Small and already sanitised (declared
// names, numbers and booleans); anything else there is ignored.
constexpr const char* kLiveStatusFile = "live.json";
constexpr std::uint64_t kMaxLiveStatusBytes = 16 * 1024;

ReplyCode CodeFor(const Error& e) {
  return e.code == Errc::kPermissionDenied ? ReplyCode::kDenied : ReplyCode::kError;
}

ControlLimits LimitsFor(const DaemonOptions& options) {
  ControlLimits limits;
  limits.request_timeout = options.request_timeout;
  return limits;
}

// The fds of everything a job's spec names, opened as its submitter.
struct OpenedJob {
  std::vector<UniqueFd> inputs;  // in spec order
  UniqueFd output;               // output.path (created as the submitter if missing)
  UniqueFd image;                // trainer.image
  // What the policy decided on, per input name: the sealed header's dataset and key.
  std::vector<std::pair<std::string, std::string>> datasets, keys;
  std::vector<std::uint64_t> plaintext_bytes;  // per input, derived from the file's length
};

// An input of a job that is quarantined in cordond's registry (datasets/quarantine.h).
struct QuarantinedInput {
  std::string message;  // "input 'NAME' (PATH): dataset 'D' version sha256:… is quarantined (…); release it …"
  json details;         // for `input.quarantined`: input, dataset, sha256, version, reason
};

struct Submission {
  JobRecord* record = nullptr;
  ReplyCode code = ReplyCode::kOk;
  std::string error;
};

class Daemon final {
 public:
  explicit Daemon(DaemonOptions options)
      : options_(std::move(options)),
        config_(options_.config),
        control_(io_, LimitsFor(options_),
                 [this](const std::shared_ptr<Connection>& c, const protocol::Request& r) { Handle(c, r); },
                 [this](const Caller& c, const std::string& what, const std::string& why) { Refuse(c, what, why); }),
        spool_(io_, config_.spool_dir,
               [this](const std::string& text, const Caller& c, const std::string& token) { return SpoolSubmit(text, c, token); },
               [this](const Caller& c, const std::string& what, const std::string& why) { Refuse(c, what, why); },
               [this](const std::string& token) { return KnownSource(token); }),
        supervisor_(io_, [this](RunnerExit exit) { OnRunnerExit(std::move(exit)); }) {}
  int Main();

 private:
  Status Start();
  Status Recover();
  void WaitSignals();
  void Reload();
  void BeginStop();
  void FinishStop();

  // Requests.
  void Handle(const std::shared_ptr<Connection>& conn, const protocol::Request& request);
  void OnSubmit(const std::shared_ptr<Connection>& conn, const protocol::Request& request);
  json WithLiveMetrics(json job) const;
  void OnWait(const std::shared_ptr<Connection>& conn, const JobRecord& r);
  void OnCancel(const std::shared_ptr<Connection>& conn, JobRecord& r);
  void OnHalt(const std::shared_ptr<Connection>& conn, const protocol::Request& request);
  void OnLogs(const std::shared_ptr<Connection>& conn, const JobRecord& r);
  void OnAdmin(const std::shared_ptr<Connection>& conn, const protocol::Request& request);
  Result<UniqueFd> OpenTrainerLog(const JobRecord& r);
  bool MayView(const Caller& c, const JobRecord& r) const {
    return c.id.uid == r.submitter || policy::IsAdmin(policy_, c.id);
  }

  // Submission and authorisation.
  Submission Submit(const std::string& text, const Caller& caller, const std::string& source);
  SpoolVerdict SpoolSubmit(const std::string& text, const Caller& caller, const std::string& token);
  bool KnownSource(const std::string& token);
  Status CheckQuota(const policy::Grant& grant, const Caller& caller);
  Result<OpenedJob> OpenAndAuthorize(const specs::TrainingJob& job, const Caller& caller);
  Result<std::optional<QuarantinedInput>> FindQuarantined(const specs::TrainingJob& job, const OpenedJob& opened);
  bool RefuseQuarantined(JobRecord& record, const Result<std::optional<QuarantinedInput>>& found);
  Status CheckTrainerImage(const specs::Trainer& trainer, int image_fd, const Identity& who);

  // Jobs.
  void Schedule();
  void Launch(JobRecord& record);
  Result<std::vector<std::string>> RunnerArgs(const JobRecord& record, const specs::TrainingJob& job,
                                              const OpenedJob& opened, std::vector<int>& pass_fds);
  void OnRunnerExit(RunnerExit exit);
  void CleanUpAbandoned(const JobRecord& r);
  // daemon.executor: slurm (slurm_executor.h).
  void StartSlurm();
  void LaunchSlurm(JobRecord& record, const specs::TrainingJob& job, const OpenedJob& opened);
  void OnSlurmSubmitted(const std::string& job_id, Result<std::string> slurm_job_id);
  void OnSlurmPlaced(const std::string& job_id, const std::string& node);
  void OnSlurmEnded(SlurmEnd end);
  void RecordNodeCheckpoint(const JobRecord& r, const json& report);
  void QuarantineFromNode(const JobRecord& r, const json& report);
  [[nodiscard]] std::size_t Running() const { return supervisor_.size() + (slurm_ ? slurm_->size() : 0); }
  [[nodiscard]] std::vector<std::string> RunningIds() const;
  [[nodiscard]] bool SlurmExecutes() const { return config_.daemon.executor == orchestrator::Config::Daemon::Executor::kSlurm; }
  specs::ParseResult StoredSpec(const JobRecord& r);
  void SetFinal(JobRecord& r, JobState state, std::string outcome, std::string reason);

  // Audit and service state.
  bool AuditEvent(const std::string& action, const std::string& job, const std::string& outcome, json details,
                  const std::optional<Caller>& caller = std::nullopt);
  void Refuse(const Caller& caller, const std::string& what, const std::string& why);
  void Notify();
  void WriteMetrics();
  void Watchdog(std::uint64_t usec);
  void RetryLater();
  void CheckpointTick();

  DaemonOptions options_;
  orchestrator::Config config_;
  policy::Policy policy_;
  UniqueFd lock_;
  std::unique_ptr<audit::AuditLog> audit_;
  std::optional<JobStore> store_;
  asio::io_context io_;
  ControlServer control_;
  SpoolIntake spool_;
  Supervisor supervisor_;
  std::unique_ptr<SlurmExecutor> slurm_;  // set with daemon.executor: slurm, or while Slurm jobs are tracked
  asio::signal_set signals_{io_, SIGTERM, SIGINT, SIGHUP};
  asio::steady_timer grace_timer_{io_};
  asio::steady_timer watchdog_timer_{io_};
  asio::steady_timer retry_timer_{io_};
  asio::steady_timer metrics_timer_{io_};
  asio::steady_timer checkpoint_timer_{io_};  // audit.checkpoint_interval, idle or not
  Metrics metrics_;
  bool metrics_dirty_ = true;
  int metrics_ticks_ = 0;  // seconds since the file was last written
  std::map<std::string, std::vector<std::shared_ptr<Connection>>> waiters_;
  SchedulerState schedule_;
  std::uint64_t serve_counter_ = 0;
  bool stopping_ = false;
  bool stopped_ = false;
  bool degraded_ = false;  // the last audit append failed
  bool retry_armed_ = false;
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
  if (SlurmExecutes()) StartSlurm();
  if (auto r = Recover(); !r) return r;
  std::map<std::string, std::uint64_t> finished;
  for (JobRecord* r : store_->All()) {
    if (IsFinal(r->state) && !r->outcome.empty()) finished[r->outcome]++;
  }
  metrics_.SetFinishedCounts(std::move(finished));
  if (!AuditEvent("daemon.started", "", "ok", {{"config_path", config_.path}, {"policy_path", policy_.path}})) {
    return Fail(Errc::kIo, "the audit log cannot record; refusing to start");
  }
  if (auto listening = control_.Listen(config_.daemon.socket); !listening) return listening;
  if (auto spooling = spool_.Start(); !spooling) return spooling;
  WaitSignals();
  Schedule();
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) Watchdog(usec);
  sd_notify(0, "READY=1");
  Notify();
  WriteMetrics();
  CheckpointTick();
  spdlog::info("ready: socket {}, spool {}/incoming, {} job(s) known", config_.daemon.socket, config_.spool_dir,
               store_->All().size());
  return {};
}

// Jobs recorded as running when the daemon died: their `cordon run` had
// PR_SET_PDEATHSIG(SIGKILL); any survivor with the recorded pid and start time
// is killed with its whole session, then the job is marked interrupted.
Status Daemon::Recover() {
  for (JobRecord* r : store_->All()) {
    if (r->state != JobState::kRunning) continue;
    if (r->executor == "slurm") {  // it runs on in Slurm: tracked again (its end decides)
      StartSlurm();
      slurm_->Adopt(r->job_id, r->slurm_job_id);
      AuditEvent("job.reconciled", r->job_id, "ok", {{"slurm_job_id", r->slurm_job_id}});
      continue;
    }
    const pid_t runner = r->pid;
    bool killed = false;
    if (runner > 0 && r->pid_start != 0 && ProcessStartTime(runner) == r->pid_start) {
      ::kill(-runner, SIGKILL);
      ::kill(runner, SIGKILL);
      killed = true;
    }
    AuditEvent("job.interrupted", r->job_id, "interrupted", {{"runner_pid", runner}, {"survivor_killed", killed}});
    SetFinal(*r, JobState::kInterrupted, "interrupted", "cordond stopped while the job ran");
    CleanUpAbandoned(*r);
    journal::JobEvent({r->job_id, "interrupted", "interrupted"}, "was running when cordond stopped",
                      journal::Level::kWarning);
  }
  return {};
}

void Daemon::WaitSignals() {
  signals_.async_wait([this](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) Reload();
    else BeginStop();
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
  spdlog::info("stopping: {} running job(s) get {}s to finish", supervisor_.size(), options_.grace.count());
  if (slurm_) spdlog::info("{} Slurm job(s) run on; a restarted cordond tracks them again", slurm_->size());
  control_.Close();
  ::unlink(config_.daemon.socket.c_str());
  spool_.Close();
  if (supervisor_.size() == 0) return FinishStop();
  grace_timer_.expires_after(options_.grace);
  grace_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    spdlog::warn("grace period over: cancelling {} job(s)", supervisor_.size());
    supervisor_.SignalAll(SIGTERM, true);
    grace_timer_.expires_after(std::chrono::seconds(20));
    grace_timer_.async_wait([this](boost::system::error_code ec2) {
      if (!ec2) supervisor_.SignalAll(SIGKILL, true);
    });
  });
}

void Daemon::FinishStop() {
  stopped_ = true;
  for (auto& [id, conns] : waiters_) {
    for (auto& c : conns) c->Send(ErrorReply(ReplyCode::kStopping, "cordond is stopping"));
  }
  waiters_.clear();
  AuditEvent("daemon.stopped", "", "ok", json::object());
  if (auto cp = audit_->Checkpoint(); !cp) spdlog::error("final checkpoint: {}", cp.error().message);
  spdlog::info("stopped; final audit checkpoint written");
  metrics_dirty_ = true;
  for (auto* timer : {&grace_timer_, &watchdog_timer_, &retry_timer_, &metrics_timer_, &checkpoint_timer_}) {
    timer->cancel();
  }
  if (slurm_) slurm_->Stop();
  if (!config_.daemon.metrics_file.empty()) (void)metrics_.WriteFile(config_.daemon.metrics_file, NowSeconds());
  signals_.cancel();
  io_.stop();
}

// ---------------------------------------------------------------- audit, notify

bool Daemon::AuditEvent(const std::string& action, const std::string& job, const std::string& outcome, json details,
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
  const auto appended = audit_->Append(e);
  if (!appended) spdlog::error("audit append {}: {}", action, appended.error().message);
  else metrics_.SetAuditEntries(*appended + 1);
  if (degraded_ != !appended) {
    degraded_ = !appended;
    metrics_.SetDegraded(degraded_);
    spdlog::warn(degraded_ ? "degraded: the audit log cannot record; no decision is taken until it can"
                           : "the audit log records again");
    Notify();
  }
  return appended.has_value();
}

void Daemon::Refuse(const Caller& caller, const std::string& what, const std::string& why) {
  spdlog::warn("refused {} from uid {}: {}", what, caller.id.uid, why);
  AuditEvent("request.refused", "", "denied", {{"request", Clip(what)}, {"reason", Clip(why)}}, caller);
}

void Daemon::Notify() {
  std::size_t queued = 0;
  for (JobRecord* r : store_->All()) queued += r->state == JobState::kQueued;
  metrics_dirty_ = true;
  sd_notifyf(0, "STATUS=%zu running, %zu queued%s%s", Running(), queued, stopping_ ? ", stopping" : "",
             degraded_ ? ", degraded: audit log cannot record" : "");
}

// The Prometheus textfile (daemon.metrics_file): rewritten at most once a
// second after a change, and every 15 s regardless (the checkpoint age moves).
void Daemon::WriteMetrics() {
  if (config_.daemon.metrics_file.empty() || stopped_) return;
  if (metrics_dirty_ || ++metrics_ticks_ >= 15) {
    std::map<std::string, std::uint64_t> states;
    std::map<uid_t, std::uint64_t> queued;
    for (JobRecord* r : store_->All()) {
      states[JobStateName(r->state)]++;
      if (r->state == JobState::kQueued) queued[r->submitter]++;
    }
    metrics_.SetJobStates(std::move(states));
    metrics_.SetQueueLengths(std::move(queued));
    if (auto w = metrics_.WriteFile(config_.daemon.metrics_file, NowSeconds()); !w) {
      spdlog::warn("metrics file: {}", w.error().message);
    }
    metrics_dirty_ = false;
    metrics_ticks_ = 0;
  }
  metrics_timer_.expires_after(std::chrono::seconds(1));
  metrics_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) WriteMetrics();
  });
}

void Daemon::Watchdog(std::uint64_t usec) {
  sd_notify(0, "WATCHDOG=1");
  watchdog_timer_.expires_after(std::chrono::microseconds(usec / 2));
  watchdog_timer_.async_wait([this, usec](boost::system::error_code ec) {
    if (!ec) Watchdog(usec);
  });
}

// A signed checkpoint of the audit log's current head every
// audit.checkpoint_interval, idle or not: a witness is never more than one
// interval behind, and a cut tail is caught against the last one.
void Daemon::CheckpointTick() {
  if (stopped_) return;
  if (auto cp = audit_->Checkpoint(); !cp) {
    spdlog::error("audit checkpoint: {}", cp.error().message);
  } else {
    metrics_.SetLastCheckpoint(NowSeconds());
  }
  checkpoint_timer_.expires_after(std::chrono::seconds(config_.audit.checkpoint_interval_s));
  checkpoint_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) CheckpointTick();
  });
}

// Degraded: queued jobs wait; try again shortly (an append that succeeds ends it).
void Daemon::RetryLater() {
  if (retry_armed_ || stopping_) return;
  retry_armed_ = true;
  retry_timer_.expires_after(kAuditRetry);
  retry_timer_.async_wait([this](boost::system::error_code ec) {
    retry_armed_ = false;
    if (!ec) Schedule();
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

// ---------------------------------------------------------------- requests

void Daemon::Handle(const std::shared_ptr<Connection>& conn, const protocol::Request& request) {
  const Caller& caller = conn->caller();
  if (request.op == Op::kPing) return conn->Send({{"ok", true}, {"running", Running()}, {"degraded", degraded_}});
  if (request.op == Op::kSubmit) return OnSubmit(conn, request);
  if (request.op == Op::kAdmin) return OnAdmin(conn, request);
  if (request.op == Op::kHalt) return OnHalt(conn, request);
  if (request.op == Op::kStatus && request.job.empty()) {
    json jobs = json::array();
    for (JobRecord* r : store_->All()) {
      if (MayView(caller, *r)) jobs.push_back(PublicJob(*r));
    }
    return conn->Send({{"ok", true}, {"jobs", jobs}});
  }
  JobRecord* r = store_->Find(request.job);
  if (!r || !MayView(caller, *r)) {  // another's job reads as absent
    if (r) Refuse(caller, std::string(protocol::OpName(request.op)) + " " + request.job, "not the submitter nor an admin");
    return conn->Send(ErrorReply(ReplyCode::kNotFound, "no job " + request.job + " of yours"));
  }
  switch (request.op) {
    case Op::kStatus: return conn->Send({{"ok", true}, {"job", WithLiveMetrics(PublicJob(*r))}});
    case Op::kWait: return OnWait(conn, *r);
    case Op::kCancel: return OnCancel(conn, *r);
    case Op::kLogs: return OnLogs(conn, *r);
    case Op::kPing:
    case Op::kSubmit:
    case Op::kAdmin:
    case Op::kHalt: break;
  }
}

namespace {

// What a finished job used, for `cordon status`: numbers from the runner's manifest only.
json ResourcesOf(const json& report) {
  const json::json_pointer at("/manifest/resources");
  if (!report.contains(at) || !report[at].is_object()) return nullptr;
  const json& res = report[at];
  json out = json::object();
  for (const char* key : {"peak_memory_bytes", "memory_limit_bytes", "max_rss_bytes"}) {
    if (res.contains(key) && res[key].is_number_unsigned()) out[key] = res[key];
  }
  if (const auto s = res.find("scratch"); s != res.end() && s->is_object()) {
    json scratch = json::object();
    for (const char* key : {"size_bytes", "peak_bytes", "final_bytes"}) {
      if (s->contains(key) && (*s)[key].is_number_unsigned()) scratch[key] = (*s)[key];
    }
    if (s->contains("full") && (*s)["full"].is_boolean()) scratch["full"] = (*s)["full"];
    out["scratch"] = scratch;
  }
  return out;
}

// What the job read, from the runner's manifest (name, dataset, sha256 or null), else `before`
// (what the policy approved at start). Strings only, bounded: the record keeps references.
json InputsOf(const json& report, const json& before) {
  const json::json_pointer at("/manifest/inputs");
  if (!report.contains(at) || !report[at].is_array()) return before;
  json out = json::array();
  for (const json& in : report[at]) {
    if (!in.is_object() || out.size() >= 64) continue;
    json entry = json::object();
    for (const char* key : {"name", "dataset", "sha256"}) {
      const auto v = in.find(key);
      entry[key] = v != in.end() && v->is_string() && v->get_ref<const std::string&>().size() <= 256 ? *v : json(nullptr);
    }
    if (entry["dataset"].is_string()) out.push_back(std::move(entry));
  }
  return out;
}

// The datasets the policy approved for a job at start: its inputs until the runner reports.
json ApprovedInputs(const std::vector<std::pair<std::string, std::string>>& datasets) {
  json out = json::array();
  for (const auto& [name, dataset] : datasets) out.push_back({{"name", name}, {"dataset", dataset}, {"sha256", nullptr}});
  return out;
}

}  // namespace

json Daemon::WithLiveMetrics(json job) const {
  if (job.value("state", "") != "running") return job;
  auto text = ReadFileLimited(store_->JobDir(job.value("job_id", "")) + "/" + kLiveStatusFile, kMaxLiveStatusBytes);
  if (!text) return job;
  const json live = json::parse(*text, nullptr, false);
  if (!live.is_object() || !live.contains("metrics") || !live["metrics"].is_object()) return job;
  job["metrics"] = live["metrics"];
  if (live.contains("t") && live["t"].is_number_integer()) job["metrics_at_ms"] = live["t"];
  return job;
}

void Daemon::OnSubmit(const std::shared_ptr<Connection>& conn, const protocol::Request& request) {
  Submission s = Submit(request.spec, conn->caller(), "");
  json reply = s.code == ReplyCode::kOk ? json{{"ok", true}} : ErrorReply(s.code, s.error);
  if (s.record) reply["job_id"] = s.record->job_id;
  conn->Send(reply);
}

void Daemon::OnWait(const std::shared_ptr<Connection>& conn, const JobRecord& r) {
  if (IsFinal(r.state)) return conn->Send({{"ok", true}, {"job", PublicJob(r)}});
  if (!conn->EnterWaitPool()) {
    return conn->Send(ErrorReply(ReplyCode::kBusy, "too many waits of yours are open; poll with `cordon status`"));
  }
  waiters_[r.job_id].push_back(conn);
}

void Daemon::OnCancel(const std::shared_ptr<Connection>& conn, JobRecord& r) {
  const Caller& caller = conn->caller();
  if (!AuditEvent("job.cancel", r.job_id, IsFinal(r.state) ? "noop" : "requested", json::object(), caller)) {
    return conn->Send(ErrorReply(ReplyCode::kAuditUnavailable, "the audit log cannot record the cancel; nothing was done"));
  }
  if (r.state == JobState::kQueued) {
    SetFinal(r, JobState::kCancelled, "cancelled", "cancelled while queued by uid " + std::to_string(caller.id.uid));
    Notify();
  } else if (r.executor == "slurm" && slurm_) {
    r.cancel_requested = true;
    if (auto s = store_->Save(r); !s) spdlog::error("job {}: cannot save its state: {}", r.job_id, s.error().message);
    slurm_->Cancel(r.job_id);
  } else {
    supervisor_.Signal(r.job_id, SIGTERM, true);
  }
  conn->Send({{"ok", true}, {"job", PublicJob(r)}});
}

// `halt` (root only: `cordon halt`, locally or as cordond's admin child, which audited the
// step under its caller's identity and quarantines the inputs once the job has ended). A
// queued job ends here; a running one is stopped without stage-out whatever its executor:
// SIGUSR1 to the local runner through its pidfd, or SlurmExecutor::Halt. However it then
// ends without a report of its own, it is recorded `halted` (halt_requested).
void Daemon::OnHalt(const std::shared_ptr<Connection>& conn, const protocol::Request& request) {
  const Caller& caller = conn->caller();
  if (caller.id.uid != 0) {
    Refuse(caller, "halt " + request.job, "halt is root's (`cordon halt`; an admin runs it through cordond)");
    return conn->Send(ErrorReply(ReplyCode::kDenied, "op halt is root's: run `cordon halt`"));
  }
  JobRecord* r = store_->Find(request.job);
  if (!r) return conn->Send(ErrorReply(ReplyCode::kNotFound, "no job " + request.job));
  enum class How { kNoop, kDequeued, kScancel, kSigusr1 };
  static constexpr const char* kHowName[] = {"noop", "dequeued", "scancel", "sigusr1"};
  const How how = IsFinal(r->state)                ? How::kNoop
                  : r->state == JobState::kQueued ? How::kDequeued
                  : r->executor == "slurm"        ? How::kScancel
                                                  : How::kSigusr1;
  const char* how_name = kHowName[static_cast<int>(how)];
  if (!AuditEvent("job.halt_requested", r->job_id, how == How::kNoop ? "noop" : "requested",
                  {{"executor", r->executor}, {"state", JobStateName(r->state)}, {"how", how_name},
                   {"slurm_job_id", r->slurm_job_id}},
                  caller)) {
    return conn->Send(ErrorReply(ReplyCode::kAuditUnavailable, "the audit log cannot record the halt; nothing was done"));
  }
  if (how == How::kDequeued) {
    SetFinal(*r, JobState::kCancelled, "halted", "halted while queued (cordon halt)");
    journal::JobEvent({r->job_id, "halted", "cancelled"}, "halted while queued", journal::Level::kWarning);
    Notify();
  } else if (how != How::kNoop) {
    r->halt_requested = true;
    if (auto s = store_->Save(*r); !s) spdlog::error("job {}: cannot save its state: {}", r->job_id, s.error().message);
    if (how == How::kScancel && slurm_) slurm_->Halt(r->job_id);
    else (void)supervisor_.Signal(r->job_id, SIGUSR1, false);
  }
  conn->Send({{"ok", true}, {"job", PublicJob(*r)}, {"how", how_name}});
}

// The job's trainer log, found through what the record keeps: the job
// directory must still be the one the runner created (device and inode), the
// log a regular file in it with the sha256 the runner reported. No symbolic
// link is followed; a path the submitter swapped is refused, never read.
Result<UniqueFd> Daemon::OpenTrainerLog(const JobRecord& r) {
  if (r.trainer_log_sha256.empty() || r.output_dir.empty() || r.output_dir_ino == 0 ||
      r.trainer_log_file.empty() || r.trainer_log_file.find('/') != std::string::npos) {
    return Fail(Errc::kNotFound, "job " + r.job_id + " has no trainer log");
  }
  UniqueFd dir(OpenNoSymlinks(AT_FDCWD, r.output_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  struct stat st {};
  if (!dir || ::fstat(dir.get(), &st) != 0 || st.st_dev != r.output_dir_dev || st.st_ino != r.output_dir_ino) {
    return Fail(Errc::kIntegrity, "the output directory of job " + r.job_id +
                                      " was moved or replaced since the job ran; its log is not read");
  }
  UniqueFd log(OpenNoSymlinks(dir.get(), r.trainer_log_file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!log || ::fstat(log.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Fail(Errc::kNotFound, "job " + r.job_id + ": its trainer log is gone");
  }
  auto sha = sealed::Sha256Fd(log.get());
  if (!sha || *sha != r.trainer_log_sha256) {
    return Fail(Errc::kIntegrity, "job " + r.job_id + ": the trainer log is not the one the job sealed");
  }
  return log;
}

// `cordon logs`: a child `cordon unseal` reads the log through the fd opened
// above and writes the plaintext straight into the client's socket after a
// one-line header; the daemon never holds it. A client that stops reading is
// cut off after --log-reader-timeout; a whole stream after kLogStreamLimit.
void Daemon::OnLogs(const std::shared_ptr<Connection>& conn, const JobRecord& r) {
  auto log = OpenTrainerLog(r);
  if (!log) {
    if (log.error().code == Errc::kIntegrity) Refuse(conn->caller(), "logs " + r.job_id, log.error().message);
    return conn->Send(ErrorReply(log.error().code == Errc::kIntegrity ? ReplyCode::kError : ReplyCode::kNotFound,
                                 log.error().message));
  }
  if (!AuditEvent("job.logs", r.job_id, "ok", {{"log_sha256", r.trainer_log_sha256}}, conn->caller())) {
    return conn->Send(ErrorReply(ReplyCode::kAuditUnavailable, "the audit log cannot record the read; nothing was sent"));
  }
  conn->StopTimer();
  const std::string header = protocol::EncodeReply(json{{"ok", true}, {"stream", true}});
  const int sock = conn->socket().native_handle();
  // Asio made the socket non-blocking; the unsealer shares it as stdout and
  // must block on a slow reader (bounded by SO_SNDTIMEO) instead of failing.
  ::fcntl(sock, F_SETFL, ::fcntl(sock, F_GETFL) & ~O_NONBLOCK);
  const timeval send_timeout{options_.log_reader_timeout.count(), 0};
  ::setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
  (void)::send(sock, header.data(), header.size(), MSG_NOSIGNAL);
  SpawnOptions unsealer;
  unsealer.argv = {options_.cordon_bin, "--config", config_.path, "unseal", "/dev/stdin", "-"};
  unsealer.stdin_fd = log->get();
  unsealer.stdout_fd = sock;
  auto child = Spawn(unsealer);
  if (!child) return conn->Close();
  auto pidfd = std::make_shared<asio::posix::stream_descriptor>(io_, child->pidfd.release());
  auto limit = std::make_shared<asio::steady_timer>(io_, kLogStreamLimit);
  limit->async_wait([pid = child->pid, pidfd](boost::system::error_code ec) {
    if (!ec) ::kill(pid, SIGKILL);  // not yet reaped: the pidfd's wait below has not fired
  });
  pidfd->async_wait(asio::posix::stream_descriptor::wait_read, [conn, pidfd, limit, pid = child->pid](boost::system::error_code) {
    limit->cancel();
    (void)WaitChild(pid);
    conn->Close();
  });
}

// `admin`: a dataset or incident-response command, for policy admins only,
// run as a child `cordon ... --caller-uid UID` (admin_ops.h).
void Daemon::OnAdmin(const std::shared_ptr<Connection>& conn, const protocol::Request& request) {
  const Caller& caller = conn->caller();
  std::string line;
  for (const std::string& arg : request.argv) line += (line.empty() ? "" : " ") + arg;
  if (!policy::IsAdmin(policy_, caller.id)) {
    Refuse(caller, "admin " + line, "not an admin in policy.yaml");
    return conn->Send(ErrorReply(ReplyCode::kDenied, "uid " + std::to_string(caller.id.uid) + " is not an admin in policy.yaml"));
  }
  if (const std::string why = protocol::AdminCommandRefusal(request.argv); !why.empty()) {
    Refuse(caller, "admin " + line, why);
    return conn->Send(ErrorReply(ReplyCode::kInvalid, why));
  }
  if (!AuditEvent("admin.request", "", "accepted", {{"command", Clip(line)}}, caller)) {
    return conn->Send(ErrorReply(ReplyCode::kAuditUnavailable, "the audit log cannot record the request; nothing was done"));
  }
  conn->StopTimer();
  const bool started = RunAdminCommand(io_, options_.cordon_bin, config_.path, request.argv, caller.id.uid,
                                       [conn](AdminResult r) {
                                         conn->Send({{"ok", true}, {"exit", r.exit_status}, {"stdout", r.out}, {"stderr", r.err}});
                                       });
  if (!started) conn->Send(ErrorReply(ReplyCode::kError, "cannot start " + options_.cordon_bin));
}

// ---------------------------------------------------------------- submission

Status Daemon::CheckQuota(const policy::Grant& grant, const Caller& caller) {
  std::size_t active = 0;
  for (JobRecord* r : store_->All()) active += r->submitter == caller.id.uid && !IsFinal(r->state);
  if (active < grant.max_queued) return {};
  return Fail(Errc::kPermissionDenied, "uid " + std::to_string(caller.id.uid) + " already has " +
                                           std::to_string(active) + " jobs queued or running (max_queued)");
}

// A directory image is scanned (nothing in it may reach out of the sandbox); an OCI layout is
// never shown to the trainer: its index, manifest and config are verified now (read through
// the fd opened as the submitter) and the pin compared, so a wrong digest is refused at
// submission; the runner verifies again and unpacks.
Status Daemon::CheckTrainerImage(const specs::Trainer& trainer, int image_fd, const Identity& who) {
  if (trainer.image_kind == specs::ImageKind::kOciLayout) {
    auto image = images::Resolve(image_fd, trainer.image_ref, {}, images::Reader{who.uid, who.groups});
    if (!image) return std::unexpected(image.error());
    if (trainer.image_digest && *trainer.image_digest != image->manifest_digest) {
      return Fail(Errc::kIntegrity, "the manifest digest is " + image->manifest_digest + ", the spec pins " +
                                        *trainer.image_digest + " (image_digest)");
    }
    return {};
  }
  const runner::internal::ImageSubmitter submitter{who.uid, who.groups};
  return runner::internal::CheckImage(image_fd, config_.daemon.socket, runner::internal::HardlinksProtected(), &submitter);
}

// The policy decides on what the submitter can reach, opened as the submitter:
// first what the spec says (keys, places, ceilings), then each input's sealed
// header read through the very fd the runner will read.
Result<OpenedJob> Daemon::OpenAndAuthorize(const specs::TrainingJob& job, const Caller& caller) {
  const policy::Grant* grant = policy::GrantFor(policy_, caller.id);
  if (!grant) return Fail(Errc::kPermissionDenied, "uid " + std::to_string(caller.id.uid) + " is not in the policy");
  if (auto ok = policy::CheckJob(*grant, job, {}); !ok) return std::unexpected(ok.error());
  std::vector<OpenRequest> requests;
  for (const auto& in : job.inputs) requests.push_back({in.path, OpenKind::kFile});
  requests.push_back({job.output.path, OpenKind::kDirectoryCreate});
  requests.push_back({job.trainer.image, OpenKind::kDirectory});
  const Identity who = IdentityOf(caller.id.uid, caller.id.gid);
  auto fds = OpenAsUser(who, requests);
  if (!fds) return std::unexpected(fds.error());
  OpenedJob opened;
  opened.image = std::move(fds->back());
  fds->pop_back();
  opened.output = std::move(fds->back());
  fds->pop_back();
  opened.inputs = std::move(*fds);
  if (auto ok = CheckTrainerImage(job.trainer, opened.image.get(), who); !ok) {
    return Fail(Errc::kPermissionDenied, "trainer.image " + specs::ImageReference(job.trainer) + ": " + ok.error().message);
  }
  std::vector<policy::InputFacts> facts;
  for (std::size_t i = 0; i < job.inputs.size(); ++i) {
    auto info = sealed::OpenSealed(opened.inputs[i].get());
    if (!info) return Fail(Errc::kPermissionDenied, "input " + job.inputs[i].name + ": not a sealed file");
    facts.push_back({job.inputs[i].path, info->header.dataset, info->header.key.ToString()});
    opened.datasets.emplace_back(job.inputs[i].name, info->header.dataset);
    opened.keys.emplace_back(job.inputs[i].name, info->header.key.ToString());
    opened.plaintext_bytes.push_back(info->plaintext_bytes);
  }
  if (auto ok = policy::CheckJob(*grant, job, facts); !ok) return std::unexpected(ok.error());
  return opened;
}

// Step 2 as the runner makes it, against cordond's registry, through the fds opened as the
// submitter: the first input that is a quarantined version (or of a quarantined dataset).
// A pinned input is taken to be its pin (the runner refuses a file that is not); an unpinned
// one is hashed only when a quarantined version of its dataset could be it. Asked at
// submission and again at start, so a job cordond hands to Slurm is bound by the quarantines
// made here whatever registry the node keeps. An unreadable registry is an error.
Result<std::optional<QuarantinedInput>> Daemon::FindQuarantined(const specs::TrainingJob& job, const OpenedJob& opened) {
  for (std::size_t i = 0; i < job.inputs.size(); ++i) {
    const specs::Input& input = job.inputs[i];
    std::string sha = input.sha256 ? "sha256:" + *input.sha256 : "";
    auto hit = datasets::CheckQuarantine(config_.state_dir, opened.datasets[i].second, opened.inputs[i].get(), opened.plaintext_bytes[i], sha);
    if (!hit) return Fail(hit.error().code, "the dataset registry cannot be read: " + hit.error().message);
    if (!*hit) continue;
    return QuarantinedInput{"input '" + input.name + "' (" + input.path + "): " + (*hit)->message,
                            {{"input", input.name}, {"dataset", opened.datasets[i].second},
                             {"sha256", sha.empty() ? json(nullptr) : json(sha)},
                             {"version", (*hit)->version.empty() ? json(nullptr) : json((*hit)->version)},
                             {"reason", Clip((*hit)->reason)}}};
  }
  return std::optional<QuarantinedInput>();
}

Submission Daemon::Submit(const std::string& text, const Caller& caller, const std::string& source) {
  Submission out;
  JobRecord record;
  record.submitter = caller.id.uid;
  record.via = caller.via;
  record.submitted_at = NowSeconds();
  record.source = source;
  record.spec_sha256 = sealed::Sha256Bytes(text);
  specs::ParseResult parsed = specs::ParseSpec(text);
  std::optional<QuarantinedInput> quarantined;
  if (!parsed.job) {
    out.code = ReplyCode::kInvalidSpec;
    out.error = FirstLines(parsed.diagnostics);
  } else {
    record.name = parsed.job->name;
    const policy::Grant* grant = policy::GrantFor(policy_, caller.id);
    Status decision = stopping_ ? Fail(Errc::kUnsupported, "cordond is stopping")
                      : grant   ? CheckQuota(*grant, caller)
                                : Status{};
    if (decision) {
      auto opened = OpenAndAuthorize(*parsed.job, caller);  // the fds close here; Launch opens again
      auto found = opened ? FindQuarantined(*parsed.job, *opened)
                          : Result<std::optional<QuarantinedInput>>(std::unexpected(opened.error()));
      if (!found) decision = std::unexpected(found.error());
      else quarantined = std::move(*found);
    }
    if (!decision) {
      out.code = stopping_ ? ReplyCode::kStopping : CodeFor(decision.error());
      out.error = decision.error().message;
    } else if (quarantined) {  // step 2, as the runner would refuse it
      out.code = ReplyCode::kInputRejected;
      out.error = quarantined->message;
    }
  }
  if (out.code != ReplyCode::kOk) {
    record.state = JobState::kRejected;
    record.outcome = protocol::ReplyCodeName(out.code);
    record.reason = out.error;
    record.finished_at = record.submitted_at;
  }
  // Write-ahead: the decision is in the audit log before the job exists.
  store_->AssignId(record);
  json details = {{"spec_sha256", record.spec_sha256}, {"name", record.name}};
  if (out.code != ReplyCode::kOk) details["reason"] = Clip(out.error);
  const std::string verdict = out.code == ReplyCode::kOk ? "accepted" : protocol::ReplyCodeName(out.code);
  json refusal = quarantined ? quarantined->details : json();
  if (quarantined) refusal["at"] = "submission";
  if ((quarantined && !AuditEvent("input.quarantined", record.job_id, "denied", refusal, caller)) ||
      !AuditEvent("job.submitted", record.job_id, verdict, details, caller)) {
    return {nullptr, ReplyCode::kAuditUnavailable, "the audit log cannot record the submission; nothing was queued"};
  }
  auto created = store_->Create(std::move(record), text);
  if (!created) {
    const std::string why = "cannot record the job: " + created.error().message;
    AuditEvent("job.rejected", "", "error", {{"reason", Clip(why)}}, caller);
    return {nullptr, ReplyCode::kError, why};
  }
  out.record = *created;
  journal::JobEvent({out.record->job_id, out.code == ReplyCode::kOk ? "" : verdict, JobStateName(out.record->state)},
                    "submitted by uid " + std::to_string(caller.id.uid) + " via " + caller.via + ": " + verdict);
  if (out.code == ReplyCode::kOk) Schedule();
  return out;
}

SpoolVerdict Daemon::SpoolSubmit(const std::string& text, const Caller& caller, const std::string& token) {
  Submission s = Submit(text, caller, token);
  return {s.record && s.code == ReplyCode::kOk, s.record ? s.record->job_id : "", protocol::ReplyCodeName(s.code),
          s.error};
}

bool Daemon::KnownSource(const std::string& token) {
  for (JobRecord* r : store_->All()) {
    if (r->source == token) return true;
  }
  return false;
}

// ---------------------------------------------------------------- jobs

void Daemon::Schedule() {
  // slurm.scheduling: slurm hands every accepted job to Slurm at once; its priority decides.
  const bool slurm_orders = SlurmExecutes() && config_.slurm.scheduling == orchestrator::Config::Slurm::Scheduling::kSlurm;
  while (!stopping_ && (slurm_orders || Running() < config_.daemon.max_concurrent_jobs)) {
    std::vector<QueuedJob> queued;
    std::vector<JobRecord*> records;
    for (JobRecord* r : store_->All()) {
      if (r->state != JobState::kQueued) continue;
      queued.push_back({r->seq, r->submitter});
      records.push_back(r);
    }
    schedule_.running_by_user.clear();
    for (const auto& id : RunningIds()) schedule_.running_by_user[store_->Find(id)->submitter]++;
    const auto next = PickNext(queued, schedule_);
    if (!next) break;
    JobRecord& record = *records[*next];
    const std::size_t before = Running();
    Launch(record);
    if (record.state == JobState::kQueued) {  // the audit log could not record the start
      RetryLater();
      break;
    }
    if (Running() > before) schedule_.last_served[record.submitter] = ++serve_counter_;
  }
  Notify();
}

Result<std::vector<std::string>> Daemon::RunnerArgs(const JobRecord& record, const specs::TrainingJob& job,
                                                    const OpenedJob& opened, std::vector<int>& pass_fds) {
  std::vector<std::string> argv = {options_.cordon_bin, "--config", config_.path, "run", "--json", "--die-with-parent",
                                   "--job-id", record.job_id, "--submitter-uid", std::to_string(record.submitter),
                                   "--status-file", store_->JobDir(record.job_id) + "/" + kLiveStatusFile};
  for (std::size_t i = 0; i < job.inputs.size(); ++i) {
    argv.insert(argv.end(), {"--input-fd", job.inputs[i].name + "=" + std::to_string(opened.inputs[i].get())});
    pass_fds.push_back(opened.inputs[i].get());
  }
  if (!options_.cgroup_parent.empty()) argv.insert(argv.end(), {"--cgroup-parent", options_.cgroup_parent});
  argv.insert(argv.end(), {"--output-fd", std::to_string(opened.output.get()), "--image-fd",
                           std::to_string(opened.image.get()), store_->SpecPath(record.job_id)});
  pass_fds.push_back(opened.output.get());
  pass_fds.push_back(opened.image.get());
  return argv;
}

// Opens everything the spec names again, as the submitter, decides on what was
// opened (the policy may have changed, the files certainly may have), and
// hands exactly those fds to the runner: it never opens a submitter's path.
// The spec text the job runs, as stored at submission (root's copy).
specs::ParseResult Daemon::StoredSpec(const JobRecord& r) {
  auto text = ReadFileLimited(store_->SpecPath(r.job_id), protocol::kMaxRequestBytes);
  return text ? specs::ParseSpec(*text) : specs::ParseResult{};
}

void Daemon::Launch(JobRecord& record) {
  const specs::ParseResult parsed = StoredSpec(record);
  const passwd* pw = ::getpwuid(record.submitter);
  const Caller submitter{{record.submitter, pw ? pw->pw_gid : gid_t{65534}}, 0, record.via};
  Result<OpenedJob> opened = parsed.job ? OpenAndAuthorize(*parsed.job, submitter)
                                        : Fail(Errc::kInvalidData, "the stored spec no longer parses");
  if (opened && RefuseQuarantined(record, FindQuarantined(*parsed.job, *opened))) return;
  if (opened && SlurmExecutes()) return LaunchSlurm(record, *parsed.job, *opened);
  std::vector<int> pass_fds;
  auto argv = opened ? RunnerArgs(record, *parsed.job, *opened, pass_fds)
                     : Result<std::vector<std::string>>(std::unexpected(opened.error()));
  if (!argv) {
    if (!AuditEvent("job.refused", record.job_id, "denied", {{"reason", Clip(argv.error().message)}})) return;
    SetFinal(record, JobState::kRejected, "denied", "at start: " + argv.error().message);
    journal::JobEvent({record.job_id, "denied", "rejected"}, "refused at start: " + argv.error().message,
                      journal::Level::kWarning);
    return;
  }
  if (!AuditEvent("job.started", record.job_id, "intent", {{"runner", options_.cordon_bin}})) return;  // stays queued
  SpawnOptions runner;
  runner.argv = std::move(*argv);
  runner.stderr_path = store_->JobDir(record.job_id) + "/runner.err";
  runner.pass_fds = std::move(pass_fds);
  runner.setsid = true;
  auto pid = supervisor_.Start(record.job_id, std::move(runner));
  if (!pid) {
    AuditEvent("job.completed", record.job_id, "failed", {{"runner_outcome", "setup_error"}, {"reason", Clip(pid.error().message)}});
    SetFinal(record, JobState::kFailed, "setup_error", pid.error().message);
    return;
  }
  record.state = JobState::kRunning;
  record.started_at = NowSeconds();
  record.inputs = ApprovedInputs(opened->datasets);
  record.pid = *pid;
  record.pid_start = ProcessStartTime(*pid);
  if (auto s = store_->Save(record); !s) spdlog::error("job {}: cannot save its state: {}", record.job_id, s.error().message);
  journal::JobEvent({record.job_id, "", "running"}, "started (runner pid " + std::to_string(*pid) + ")");
}

// At start: an input quarantined while the job was queued ends it as the runner would have at
// step 2 (failed, input_rejected, `cordon run`'s status 14; an unreadable registry:
// setup_error), before anything is spawned or handed to Slurm. Audited `input.quarantined`
// (denied) and `job.completed` first; when the log cannot record, the job stays queued.
// True when the job was not started.
bool Daemon::RefuseQuarantined(JobRecord& record, const Result<std::optional<QuarantinedInput>>& found) {
  if (found && !*found) return false;
  const bool hit = found.has_value();
  const std::string reason = "at start: " + (hit ? (*found)->message : found.error().message);
  const std::string outcome = hit ? "input_rejected" : "setup_error";
  json details = hit ? (*found)->details : json{{"error", "registry unreadable"}};
  details["at"] = "start";
  if (!AuditEvent("input.quarantined", record.job_id, "denied", std::move(details)) ||
      !AuditEvent("job.completed", record.job_id, "failed", {{"runner_outcome", outcome}, {"reason", Clip(reason)}})) {
    return true;  // stays queued; retried
  }
  record.exit_status = hit ? kExitInputRejected : kExitSetupError;
  SetFinal(record, JobState::kFailed, outcome, reason);
  metrics_.JobFinished(outcome, -1, -1, -1, 0);
  journal::JobEvent({record.job_id, outcome, "failed"}, "refused " + reason, journal::Level::kWarning);
  return true;
}

// The runner's report is our own program's output, still parsed defensively.
void Daemon::OnRunnerExit(RunnerExit exit) {
  JobRecord* r = store_->Find(exit.job_id);
  const int ws = exit.wait_status;
  r->exit_status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
  std::string outcome = "setup_error", reason = "cordon run ended without a report (exit status " + std::to_string(r->exit_status) + ")";
  if (WIFSIGNALED(ws)) {
    outcome = "runner_crashed";
    reason = "cordon run was killed by signal " + std::to_string(WTERMSIG(ws)) + " (" + ::strsignal(WTERMSIG(ws)) + ")";
  }
  const json report = json::parse(exit.report, nullptr, false);
  try {
    if (report.is_object() && report.contains("outcome")) {
      outcome = report.at("outcome").get<std::string>();
      reason = report.value("reason", "");
      r->output_dir = report.value("output_dir", "");
      r->outputs = report.contains("outputs") && report["outputs"].is_array() ? report["outputs"] : json::array();
      if (const auto id = report.find("output_dir_id"); id != report.end() && id->is_object()) {
        r->output_dir_dev = id->at("dev").get<std::uint64_t>();
        r->output_dir_ino = id->at("ino").get<std::uint64_t>();
      }
      if (const auto log = report.find("trainer_log"); log != report.end() && log->is_object()) {
        r->trainer_log_file = log->at("file").get<std::string>();
        r->trainer_log_sha256 = log->at("sha256").get<std::string>();
      }
      r->resources = ResourcesOf(report);
      r->inputs = InputsOf(report, r->inputs);
    }
  } catch (const json::exception& e) {
    outcome = "setup_error";
    reason = std::string("cordon run's report is malformed: ") + e.what();
  }
  // A SIGTERM that reached `cordon run` before its handler: killed, no report.
  if (exit.cancel_requested && !report.is_object()) outcome = "cancelled", reason = "cancelled before the job started";
  // `cordon halt` stopped it before it could report (SIGUSR1 before its handler; cancelled in Slurm).
  if (r->halt_requested && !report.is_object()) outcome = "halted", reason = "halted (cordon halt) before the runner reported";
  // `halted`: an admin's `cordon halt` stopped it (the runner got SIGUSR1): stopped from outside,
  // like `cancelled`, but kept apart so `status`/`wait` say which.
  const JobState state = outcome == "succeeded" ? JobState::kSucceeded
                         : outcome == "cancelled" || outcome == "halted" || exit.cancel_requested
                             ? JobState::kCancelled
                             : JobState::kFailed;
  AuditEvent("job.completed", r->job_id, JobStateName(state), {{"runner_outcome", outcome}, {"exit_status", r->exit_status}});
  SetFinal(*r, state, outcome, reason);
  if (!report.is_object()) CleanUpAbandoned(*r);
  std::uint64_t violations = 0;
  try {
    violations = report.is_object() ? report.value(json::json_pointer("/manifest/resources/seccomp_violations"), 0u) : 0;
  } catch (const json::exception&) {
  }
  metrics_.JobFinished(outcome, r->started_at > 0 ? r->finished_at - r->started_at : -1, -1, -1, violations);
  journal::JobEvent({r->job_id, outcome, JobStateName(state)}, std::string(JobStateName(state)) + ": " + outcome,
                    state == JobState::kSucceeded ? journal::Level::kInfo : journal::Level::kWarning);
  if (stopping_ && supervisor_.size() == 0) return FinishStop();
  Schedule();
}

// A runner that left no report may have left partial outputs and an empty job
// directory behind: removed, through the submitter's output.path (cleanup.h).
void Daemon::CleanUpAbandoned(const JobRecord& r) {
  const specs::ParseResult parsed = StoredSpec(r);
  if (!parsed.job) return;
  const passwd* pw = ::getpwuid(r.submitter);
  auto cleaned = CleanAbandonedJobDir(IdentityOf(r.submitter, pw ? pw->pw_gid : gid_t{65534}), parsed.job->output.path,
                                      r.job_id);
  if (!cleaned) {
    spdlog::warn("job {}: leftovers not cleaned: {}", r.job_id, cleaned.error().message);
    return;
  }
  if (cleaned->partials_removed || cleaned->directory_removed) {
    AuditEvent("job.cleaned", r.job_id, "ok",
               {{"partials_removed", cleaned->partials_removed}, {"directory_removed", cleaned->directory_removed}});
  }
}


// ---------------------------------------------------------------- daemon.executor: slurm

std::vector<std::string> Daemon::RunningIds() const {
  std::vector<std::string> ids = supervisor_.JobIds();
  if (slurm_) {
    for (auto& id : slurm_->JobIds()) ids.push_back(std::move(id));
  }
  return ids;
}

void Daemon::StartSlurm() {
  if (slurm_) return;
  SlurmExecutor::Callbacks callbacks;
  callbacks.submitted = [this](const std::string& id, Result<std::string> slurm_id) { OnSlurmSubmitted(id, std::move(slurm_id)); };
  callbacks.placed = [this](const std::string& id, const std::string& node) { OnSlurmPlaced(id, node); };
  callbacks.ended = [this](SlurmEnd end) { OnSlurmEnded(std::move(end)); };
  slurm_ = std::make_unique<SlurmExecutor>(io_, config_, std::move(callbacks));
}

// The job was decided as a local one is (OpenAndAuthorize, as the submitter,
// just now); the node opens everything again as the submitter and refuses
// unless each input is the dataset and key decided on here.
void Daemon::LaunchSlurm(JobRecord& record, const specs::TrainingJob& job, const OpenedJob& opened) {
  auto text = ReadFileLimited(store_->SpecPath(record.job_id), protocol::kMaxRequestBytes);
  SlurmJobRequest request;
  request.job_id = record.job_id;
  request.submitter = record.submitter;
  request.spec_text = text ? *text : "";
  request.spec_sha256 = record.spec_sha256;
  request.memory_bytes = job.resources.memory_bytes;
  request.scratch_bytes = job.resources.scratch_bytes;
  request.cpus = job.resources.cpus;
  request.timeout = job.resources.timeout;
  request.datasets = opened.datasets;
  request.keys = opened.keys;
  if (!AuditEvent("job.started", record.job_id, "intent", {{"runner", config_.slurm.cordon}, {"executor", "slurm"}})) return;
  Status submitted = text ? slurm_->Submit(request) : Status(std::unexpected(text.error()));
  if (!submitted) {
    AuditEvent("job.completed", record.job_id, "failed", {{"runner_outcome", "setup_error"}, {"reason", Clip(submitted.error().message)}});
    SetFinal(record, JobState::kFailed, "setup_error", "cannot hand the job to Slurm: " + submitted.error().message);
    return;
  }
  record.state = JobState::kRunning;
  record.inputs = ApprovedInputs(opened.datasets);
  record.executor = "slurm";
  record.started_at = NowSeconds();
  if (auto s = store_->Save(record); !s) spdlog::error("job {}: cannot save its state: {}", record.job_id, s.error().message);
  journal::JobEvent({record.job_id, "", "running"}, "handed to Slurm (sbatch)");
}

void Daemon::OnSlurmSubmitted(const std::string& job_id, Result<std::string> slurm_job_id) {
  JobRecord* r = store_->Find(job_id);
  if (!r || IsFinal(r->state)) return;
  if (!slurm_job_id) {
    AuditEvent("job.completed", job_id, "failed", {{"runner_outcome", "setup_error"}, {"reason", Clip(slurm_job_id.error().message)}});
    SetFinal(*r, JobState::kFailed, "setup_error", slurm_job_id.error().message);
    journal::JobEvent({job_id, "setup_error", "failed"}, slurm_job_id.error().message, journal::Level::kWarning);
    metrics_.JobFinished("setup_error", -1, -1, -1, 0);
    return Schedule();
  }
  r->slurm_job_id = *slurm_job_id;
  if (auto s = store_->Save(*r); !s) spdlog::error("job {}: cannot save its state: {}", job_id, s.error().message);
  AuditEvent("job.slurm_submitted", job_id, "ok", {{"slurm_job_id", *slurm_job_id}, {"partition", config_.slurm.partition}});
}

void Daemon::OnSlurmPlaced(const std::string& job_id, const std::string& node) {
  JobRecord* r = store_->Find(job_id);
  if (!r || !r->node.empty()) return;
  r->node = node.empty() ? "unknown" : node;
  if (auto s = store_->Save(*r); !s) spdlog::error("job {}: cannot save its state: {}", job_id, s.error().message);
  AuditEvent("job.dispatched", job_id, "ok", {{"slurm_job_id", r->slurm_job_id}, {"node", Clip(r->node)}});
  journal::JobEvent({job_id, "", "running"}, "running on Slurm node " + r->node);
}

// The node's audit log's latest signed checkpoint, taken by its runner at the
// end of the job: the central log anchors the node's history with it.
void Daemon::RecordNodeCheckpoint(const JobRecord& r, const json& report) {
  const auto note = report.find("node_checkpoint");
  std::vector<std::string> lines;
  if (note != report.end() && note->is_string() && note->get_ref<const std::string&>().size() < 480) {
    std::string line;
    for (std::istringstream in(note->get<std::string>()); std::getline(in, line);) lines.push_back(line);
  }
  if (lines.size() < 4 || lines[1].empty() || lines[1].find_first_not_of("0123456789") != std::string::npos) {
    AuditEvent("node.checkpoint", r.job_id, "missing", {{"node", Clip(r.node)}, {"slurm_job_id", r.slurm_job_id}});
    return;
  }
  // The whole signed note, hex (one line in every reader), for `cordon audit verify --node-checkpoints`.
  std::string hex;
  for (const char c : note->get<std::string>()) {
    const auto byte = static_cast<unsigned char>(c);
    hex += "0123456789abcdef"[byte >> 4];
    hex += "0123456789abcdef"[byte & 15];
  }
  AuditEvent("node.checkpoint", r.job_id, "ok",
             {{"node", Clip(r.node)}, {"slurm_job_id", r.slurm_job_id}, {"origin", Clip(lines[0])},
              {"size", std::stoull(lines[1])}, {"root", Clip(lines[2])}, {"note_hex", hex}});
}

// A job whose `expect:` checks failed on a Slurm node: its runner quarantined the version in
// the node's registry and says so in the manifest (an input's `quarantined`: the reason).
// cordond quarantines it in its own registry too, so no later job of its reads it on any node.
// Only an input the job was approved for (its name and dataset, as recorded at start) with a
// well-formed sha256 is taken; the node's words are clipped. Audited `dataset.quarantined`.
void Daemon::QuarantineFromNode(const JobRecord& r, const json& report) {
  const json::json_pointer at("/manifest/inputs");
  if (!report.contains(at) || !report[at].is_array()) return;
  for (const json& in : report[at]) {
    const auto text = [&](const char* key) {
      const auto v = in.is_object() ? in.find(key) : in.end();
      return v != in.end() && v->is_string() ? v->get<std::string>() : std::string();
    };
    const std::string name = text("name"), dataset = text("dataset"), sha = text("sha256"), why = text("quarantined");
    const bool approved = std::any_of(r.inputs.begin(), r.inputs.end(), [&](const json& a) {
      return a.is_object() && a.value("name", json()) == json(name) && a.value("dataset", json()) == json(dataset);
    });
    if (why.empty() || !approved || !images::IsSha256Digest(sha)) continue;
    const std::string reason = Clip(why) + " (on Slurm node " + Clip(r.node) + ")";
    const Status done = datasets::QuarantineVersion(config_.state_dir, dataset, sha, Clip(text("path")), r.job_id, reason);
    AuditEvent("dataset.quarantined", r.job_id, done ? "ok" : "failed",
               {{"dataset", dataset}, {"sha256", sha}, {"reason", reason}, {"by", "expectations"}, {"node", Clip(r.node)},
                {"error", done ? "" : Clip(done.error().message)}});
  }
}

void Daemon::OnSlurmEnded(SlurmEnd end) {
  JobRecord* r = store_->Find(end.job_id);
  if (!r || IsFinal(r->state)) return;
  json report = end.report.empty() ? json() : json::parse(end.report, nullptr, false);
  if (report.is_object() && report.value("job_id", json()) != json(r->job_id)) report = json();  // not this job's
  if (report.is_object()) {
    if (r->node.empty()) OnSlurmPlaced(r->job_id, report.value("node", json()).is_string() ? report["node"].get<std::string>() : "");
    RecordNodeCheckpoint(*r, report);
    QuarantineFromNode(*r, report);
    const json outcome = report.value("outcome", json());
    // Cancelled, but not by Cordon: scancel behind its back, preemption, a node drain.
    if (outcome == "cancelled" && !r->cancel_requested && !r->halt_requested) {
      const std::string why = "stopped from outside Cordon: Slurm job " + r->slurm_job_id +
                              " was cancelled or signalled in Slurm (scancel, preemption, a node drain); "
                              "the runner sealed what it had";
      AuditEvent("job.interrupted", r->job_id, "interrupted", {{"slurm_job_id", r->slurm_job_id}, {"reason", Clip(why)}});
      r->output_dir = report.value("output_dir", json("")).is_string() ? report["output_dir"].get<std::string>() : "";
      SetFinal(*r, JobState::kInterrupted, "interrupted", why);
      metrics_.JobFinished("interrupted", r->finished_at - r->started_at, -1, -1, 0);
      journal::JobEvent({r->job_id, "interrupted", "interrupted"}, why, journal::Level::kWarning);
      return Schedule();
    }
    const json status = report.value("status", json());
    const int code = status.is_number_integer() ? status.get<int>() : 1;
    OnRunnerExit(RunnerExit{r->job_id, std::move(end.report), W_EXITCODE(code & 0xff, 0), r->cancel_requested});
    return;
  }
  JobState state = JobState::kInterrupted;
  std::string outcome = "interrupted", why = end.why;
  if (r->cancel_requested) state = JobState::kCancelled, outcome = "cancelled", why = "cancelled in Slurm (" + end.why + ")";
  if (r->halt_requested) state = JobState::kCancelled, outcome = "halted", why = "halted (cordon halt) in Slurm (" + end.why + ")";
  AuditEvent(state == JobState::kCancelled ? "job.completed" : "job.interrupted", r->job_id, JobStateName(state),
             {{"slurm_job_id", r->slurm_job_id}, {"slurm_state", end.slurm_state}, {"reason", Clip(why)}});
  SetFinal(*r, state, outcome, why);
  CleanUpAbandoned(*r);
  metrics_.JobFinished(outcome, r->finished_at - r->started_at, -1, -1, 0);
  journal::JobEvent({r->job_id, outcome, JobStateName(state)}, why, journal::Level::kWarning);
  Schedule();
}

}  // namespace

int Run(const DaemonOptions& options) {
  Daemon daemon(options);
  return daemon.Main();
}

}  // namespace cordon::daemon
