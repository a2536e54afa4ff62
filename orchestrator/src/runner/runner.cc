#include "cordon/orchestrator/runner.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <cmath>
#include <csignal>
#include <ctime>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>

#include "cordon/file_io.h"
#include "cordon/units.h"
#include "cordon/orchestrator/audit.h"
#include "cordon/orchestrator/audit_config.h"
#include "cordon/orchestrator/sealed.h"
#include "cordon/orchestrator/sealed_kms.h"
#include "cordon/sandbox/sandbox.h"
#include "cordon/unique_fd.h"
#include "stage.h"

namespace cordon::runner {
namespace {

using nlohmann::json;
using internal::Msg;

constexpr std::size_t kMaxLogBytes = 64u << 20;   // trainer stdout+stderr kept for sealing
constexpr std::size_t kMaxMetricLine = 4096;
constexpr std::size_t kMaxMetricMembers = 32;

volatile std::sig_atomic_t g_cancel = 0;

struct Pipe {
  UniqueFd read, write;
};

Result<Pipe> MakePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return FailErrno("pipe");
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

Result<Pipe> MakeSocketPair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) return FailErrno("socketpair");
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

std::string NewJobId(const std::string& name) {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &utc);
  std::random_device rd;
  char suffix[8];
  std::snprintf(suffix, sizeof suffix, "%04x", rd() & 0xffffu);
  return name + "-" + stamp + "-" + suffix;
}

// Keeps only what a progress line needs: a flat object of numbers and booleans
// with short, plain member names. Strings (where PII would travel) are dropped.
std::optional<json> SanitiseMetrics(std::string_view line) {
  if (line.size() > kMaxMetricLine) return std::nullopt;
  json parsed = json::parse(line, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) return std::nullopt;
  json clean = json::object();
  for (const auto& [key, value] : parsed.items()) {
    if (clean.size() >= kMaxMetricMembers || key.empty() || key.size() > 64) continue;
    const bool plain_name = std::all_of(key.begin(), key.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
    });
    const bool finite = value.is_number() && (!value.is_number_float() || std::isfinite(value.get<double>()));
    if (plain_name && (finite || value.is_boolean())) clean[key] = value;
  }
  if (clean.empty()) return std::nullopt;
  return clean;
}

// The audit log refuses floats (their text is not canonical); metrics go in as strings.
json MetricsForAudit(const json& metrics) {
  json out = json::object();
  for (const auto& [key, value] : metrics.items()) out[key] = value.is_number_float() ? json(value.dump()) : value;
  return out;
}

std::string UserName(uid_t uid) {
  if (const passwd* pw = ::getpwuid(uid)) return pw->pw_name;
  return std::to_string(uid);
}

// Everything gathered while the sandbox runs.
struct SandboxRun {
  std::optional<sandbox::RunResult> result;
  std::string log;
  bool log_truncated = false;
  std::optional<json> last_metrics;
  std::vector<OutputFile> outputs;
  json refused = json::array();
  std::optional<json> input_error;
  std::string metrics_buffer;
  std::string result_text;
};

class Runner final {
 public:
  Runner(const orchestrator::Config& config, const specs::TrainingJob& job, const RunOptions& options,
         audit::AuditLog& log, JobReport& report)
      : config_(config), job_(job), options_(options), log_(log), report_(report),
        managers_(sealed::CachedKeyManagers(orchestrator::KmsOptionsFrom(config))) {}

  JobReport Run() {
    started_ = std::chrono::system_clock::now();
    if (!Accept()) return report_;
    if (options_.on_started) options_.on_started(report_.job_id);
    if (!PrepareOutputDir() || !CheckInputs()) return Done();
    StartLineageHashes();
    if (!UnwrapKeys() || !CheckOutputKey()) return Done();
    RunSandbox();
    FinishLineageHashes();
    SealTrainerLog();
    WriteManifest();
    return Done();
  }

 private:
  // ---- audit helpers: write-ahead intent, then the outcome ----
  std::optional<audit::Intent> Begin(const std::string& action, json details) {
    audit::Event event;
    event.action = action;
    event.job = report_.job_id;
    event.details = std::move(details);
    auto intent = log_.Begin(std::move(event));
    if (!intent) Reject(JobOutcome::kSetupError, "audit log: " + intent.error().message);
    return intent ? std::optional(*intent) : std::nullopt;
  }

  bool Finish(const std::optional<audit::Intent>& intent, const std::string& outcome, json details = json::object()) {
    if (!intent) return false;
    auto done = log_.Finish(*intent, outcome, std::move(details));
    if (!done) Reject(JobOutcome::kSetupError, "audit log: " + done.error().message);
    return done.has_value();
  }

  bool Record(const std::string& action, const std::string& outcome, json details) {
    audit::Event event;
    event.action = action;
    event.job = report_.job_id;
    event.outcome = outcome;
    event.details = std::move(details);
    auto seq = log_.Append(event);
    if (!seq) Reject(JobOutcome::kSetupError, "audit log: " + seq.error().message);
    return seq.has_value();
  }

  // Records the first failure; later ones do not overwrite the reason.
  bool Reject(JobOutcome outcome, std::string reason) {
    if (!failed_) {
      failed_ = true;
      report_.outcome = outcome;
      report_.reason = std::move(reason);
    }
    return false;
  }

  // ---- 1. accept ----
  bool Accept() {
    const uid_t uid = options_.submitter_uid.value_or(::getuid());
    json details = {{"name", job_.name}, {"spec_path", options_.spec_path}, {"spec_sha256", options_.spec_sha256},
                    {"submitter", {{"uid", uid}, {"user", UserName(uid)}}}, {"inputs", job_.inputs.size()},
                    {"output_key_ref", job_.output.key.ToString()}, {"output_path", job_.output.path}};
    auto intent = Begin("job.accepted", details);
    return Finish(intent, "ok");
  }

  // ---- 2. output directory: <output.path>/<job id>, created fresh ----
  bool PrepareOutputDir() {
    report_.output_dir = job_.output.path + "/" + report_.job_id;
    auto intent = Begin("output.prepare", {{"path", report_.output_dir}});
    std::error_code ec;
    std::filesystem::create_directories(job_.output.path, ec);
    if (ec || ::mkdir(report_.output_dir.c_str(), 0750) != 0) {
      const std::string why = ec ? ec.message() : std::strerror(errno);
      Finish(intent, "failed", {{"error", why}});
      return Reject(JobOutcome::kSetupError, "cannot create output directory " + report_.output_dir + ": " + why);
    }
    return Finish(intent, "ok");
  }

  // ---- 3. inputs: open once, hash through that fd, parse the header ----
  bool CheckInputs() {
    for (const specs::Input& input : job_.inputs) {
      auto intent = Begin("input.verify", {{"input", input.name}, {"path", input.path}});
      if (!intent || !CheckInput(input, *intent)) return false;
    }
    return true;
  }

  bool CheckInput(const specs::Input& input, const audit::Intent& intent) {
    const auto reject = [&](const std::string& why) {
      Finish(intent, "failed", {{"error", why}});
      return Reject(JobOutcome::kInputRejected, "input '" + input.name + "' (" + input.path + "): " + why);
    };
    UniqueFd fd(::open(input.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    struct stat st {};
    if (!fd) return reject(std::strerror(errno));
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return reject("not a regular file");
    // A pinned input is hashed now, before any key is touched. An unpinned one is
    // hashed for the lineage record by a child process while the job runs.
    std::string sha;
    if (input.sha256) {
      auto hashed = sealed::Sha256Fd(fd.get());
      if (!hashed) return reject(hashed.error().message);
      sha = *hashed;
      if (sha != "sha256:" + *input.sha256) {
        Finish(intent, "failed", {{"error", "pin mismatch"}});
        Record("input.integrity_failed", "failed",
               {{"input", input.name}, {"path", input.path}, {"expected", "sha256:" + *input.sha256}, {"actual", sha}});
        return Reject(JobOutcome::kInputRejected, "input '" + input.name + "' (" + input.path +
                                                    "): sha256 mismatch: the spec pins sha256:" + *input.sha256 +
                                                    ", the file is " + sha);
      }
    }
    auto info = sealed::OpenSealed(fd.get());
    if (!info) return reject(info.error().message);
    const sealed::Header& h = info->header;
    inputs_json_.push_back({{"name", input.name}, {"path", input.path}, {"sha256", sha.empty() ? json(nullptr) : json(sha)},
                            {"dataset", h.dataset}, {"key_ref", h.key.ToString()}, {"key_version", h.kek_version},
                            {"sealed_bytes", info->sealed_bytes}, {"columns", input.columns}});
    plan_.inputs.push_back({input.name, fd.release(), h, input.columns});
    json details = {{"dataset", h.dataset}, {"key_ref", h.key.ToString()}, {"key_version", h.kek_version},
                    {"pinned", input.sha256.has_value()}};
    if (!sha.empty()) details["sha256"] = sha;
    return Finish(intent, "ok", std::move(details));
  }

  // The lineage hash of every unpinned input, computed by a child process (forked
  // before any key is unwrapped) through the same fds the sandbox reads with pread.
  void StartLineageHashes() {
    std::vector<std::size_t> pending;
    for (std::size_t i = 0; i < plan_.inputs.size(); ++i) {
      if (inputs_json_[i]["sha256"].is_null()) pending.push_back(i);
    }
    if (pending.empty()) return;
    auto pipe = MakePipe();
    if (!pipe) return;
    hasher_ = ::fork();
    if (hasher_ == 0) {
      pipe->read.reset();
      for (const std::size_t i : pending) {
        auto sha = sealed::Sha256Fd(plan_.inputs[i].fd);
        const std::string line = std::to_string(i) + " " + (sha ? *sha : "error") + "\n";
        if (!WriteAll(pipe->write.get(), line)) break;
      }
      ::_exit(0);
    }
    if (hasher_ > 0) hashes_ = std::move(pipe->read);
  }

  void FinishLineageHashes() {
    if (hasher_ <= 0) return;
    std::string text;
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(hashes_.get(), buffer, sizeof buffer)) != 0) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      text.append(buffer, static_cast<std::size_t>(n));
    }
    while (::waitpid(hasher_, nullptr, 0) < 0 && errno == EINTR) {}
    hasher_ = -1;
    hashes_.reset();
    std::istringstream lines(text);
    std::size_t index;
    std::string sha;
    while (lines >> index >> sha) {
      if (index >= inputs_json_.size() || !sha.starts_with("sha256:")) continue;
      inputs_json_[index]["sha256"] = sha;
      Record("input.hashed", "ok", {{"input", inputs_json_[index]["name"]}, {"sha256", sha}});
    }
  }

  // ---- 4. data keys ----
  bool UnwrapKeys() {
    for (const internal::InputPlan& input : plan_.inputs) {
      const sealed::Header& h = input.header;
      auto intent = Begin("key.unwrap", {{"input", input.name}, {"key_ref", h.key.ToString()},
                                         {"key_version", h.kek_version}, {"dataset", h.dataset}});
      if (!intent) return false;
      auto kms = managers_.get(h.key.adapter);
      auto dek = kms ? sealed::UnwrapDataKey(h, **kms) : Result<SecretBytes>(std::unexpected(kms.error()));
      if (!dek) {
        Finish(*intent, "failed", {{"error", ErrcName(dek.error().code)}});
        const JobOutcome outcome = dek.error().code == Errc::kKmsUnavailable ? JobOutcome::kSetupError
                                                                               : JobOutcome::kInputRejected;
        return Reject(outcome, "input '" + input.name + "': " + dek.error().message);
      }
      deks_.push_back(std::move(*dek));
      if (!Finish(*intent, "ok")) return false;
    }
    return true;
  }

  bool CheckOutputKey() {
    auto kms = managers_.get(job_.output.key.adapter);
    auto info = kms ? (*kms)->Describe(job_.output.key.name) : Result<kms::KeyInfo>(std::unexpected(kms.error()));
    if (!info) return Reject(JobOutcome::kSetupError, "output key " + job_.output.key.ToString() + ": " + info.error().message);
    if (info->disabled) return Reject(JobOutcome::kSetupError, "output key " + job_.output.key.ToString() + " is disabled");
    return true;
  }

  // ---- 5..7. the sandbox ----
  void RunSandbox();
  sandbox::Policy MakePolicy(const Pipe& out, const Pipe& err, const Pipe& keys, const Pipe& ctl, const Pipe& metrics);
  void Supervise(pid_t supervisor, Pipe& out, Pipe& err, Pipe& metrics, Pipe& ctl, Pipe& result);
  bool OnControl(int fd);  // false: the init closed its end
  void OnWrapRequest(int fd, std::string& message);
  void OnLog(std::string_view bytes, bool is_stderr);
  void OnMetricsBytes(std::string_view bytes);
  void ClassifyResult();

  void CloseInputs() {
    for (auto& input : plan_.inputs) {
      if (input.fd >= 0) ::close(input.fd);
      input.fd = -1;
    }
  }

  // ---- 7b. the trainer log and the manifest ----
  void SealTrainerLog();
  void WriteManifest();
  JobReport Done();

  const orchestrator::Config& config_;
  const specs::TrainingJob& job_;
  const RunOptions& options_;
  audit::AuditLog& log_;
  JobReport& report_;
  sealed::KeyManagers managers_;
  internal::StagePlan plan_;
  std::vector<SecretBytes> deks_;
  json inputs_json_ = json::array();
  SandboxRun run_;
  bool failed_ = false;
  std::chrono::system_clock::time_point started_;
  pid_t hasher_ = -1;  // the lineage-hash child, while it runs
  UniqueFd hashes_;    // its results: "<input index> sha256:<hex>" lines
};

sandbox::Policy Runner::MakePolicy(const Pipe& out, const Pipe& err, const Pipe& keys, const Pipe& ctl,
                                   const Pipe& metrics) {
  sandbox::Policy p;
  p.image_dir = job_.trainer.image;
  p.argv = job_.trainer.command;
  p.env = {job_.trainer.env.begin(), job_.trainer.env.end()};
  p.env["CORDON_METRICS"] = internal::kMetricsPath;
  p.env["CORDON_JOB"] = report_.job_id;
  p.uid = config_.sandbox.uid;
  p.gid = config_.sandbox.gid;
  p.memory_bytes = job_.resources.memory_bytes;
  p.pids = job_.resources.pids;
  p.cpus = job_.resources.cpus;
  p.timeout = job_.resources.timeout;
  p.scratch_bytes = job_.resources.scratch_bytes;
  p.allow_swap = config_.sandbox.allow_swap;
  p.hostname = "cordon-job";
  p.output_dir = report_.output_dir;
  p.stdout_fd = out.write.get();
  p.stderr_fd = err.write.get();
  plan_.keys_fd = keys.read.get();
  plan_.ctl_fd = ctl.write.get();
  plan_.metrics_fd = metrics.write.get();
  plan_.uid = p.uid;
  plan_.gid = p.gid;
  plan_.output_key = job_.output.key;
  plan_.job_id = report_.job_id;
  plan_.max_output_bytes = job_.resources.scratch_bytes;
  p.init_fds = {plan_.keys_fd, plan_.ctl_fd, plan_.metrics_fd};
  for (const auto& input : plan_.inputs) p.init_fds.push_back(input.fd);
  const internal::StagePlan& plan = plan_;
  p.stage_in = [&plan](const sandbox::StageInContext&) { return internal::StageIn(plan); };
  p.stage_out = [&plan](const sandbox::StageOutContext& ctx) { return internal::StageOut(plan, ctx.output_dir_fd); };
  return p;
}

// The supervisor: a child that runs the sandbox (Run() blocks) while the
// runner keeps serving the init's requests and draining the trainer's output.
[[noreturn]] void SupervisorMain(const sandbox::Policy& policy, int result_fd) {
  (void)::prctl(PR_SET_PDEATHSIG, SIGKILL);
  struct sigaction sa {};
  sa.sa_handler = [](int) { sandbox::RequestStop(); };
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  auto result = sandbox::Run(policy);
  std::string text;
  if (result) {
    text = result->ToJson();
  } else {
    sandbox::RunResult failed;
    failed.outcome = sandbox::Outcome::kSetupError;
    failed.failed_step = "policy";
    failed.reason = result.error().message;
    text = failed.ToJson();
  }
  for (std::string_view rest = text; !rest.empty();) {
    const ssize_t n = ::write(result_fd, rest.data(), rest.size());
    if (n <= 0 && errno != EINTR) break;
    if (n > 0) rest.remove_prefix(static_cast<std::size_t>(n));
  }
  ::_exit(0);
}

void Runner::RunSandbox() {
  auto out = MakePipe(), err = MakePipe(), keys = MakePipe(), metrics = MakePipe(), result = MakePipe();
  auto ctl = MakeSocketPair();
  if (!out || !err || !keys || !metrics || !result || !ctl) {
    Reject(JobOutcome::kSetupError, "cannot create the channels to the sandbox");
    return;
  }
  // The data keys go into the pipe now and are cleansed here before the fork.
  for (SecretBytes& dek : deks_) {
    if (::write(keys->write.get(), dek.data(), dek.size()) != static_cast<ssize_t>(dek.size())) {
      Reject(JobOutcome::kSetupError, "cannot hand the data keys to the sandbox");
      return;
    }
  }
  deks_.clear();
  keys->write.reset();
  const sandbox::Policy policy = MakePolicy(*out, *err, *keys, *ctl, *metrics);
  auto intent = Begin("sandbox.start", {{"image", job_.trainer.image}, {"uid", policy.uid}, {"gid", policy.gid},
                                        {"memory_bytes", policy.memory_bytes}, {"pids", policy.pids},
                                        {"timeout_ms", policy.timeout.count()}, {"scratch_bytes", policy.scratch_bytes}});
  if (!intent) return;
  const pid_t supervisor = ::fork();
  if (supervisor < 0) {
    Reject(JobOutcome::kSetupError, std::string("fork: ") + std::strerror(errno));
    return;
  }
  if (supervisor == 0) {
    out->read.reset(); err->read.reset(); metrics->read.reset(); result->read.reset(); ctl->read.reset();
    SupervisorMain(policy, result->write.get());
  }
  keys->read.reset(); out->write.reset(); err->write.reset(); metrics->write.reset(); ctl->write.reset();
  result->write.reset();
  CloseInputs();
  Supervise(supervisor, *out, *err, *metrics, *ctl, *result);
  ClassifyResult();
  const sandbox::RunResult& r = *run_.result;
  Finish(intent, r.outcome == sandbox::Outcome::kOk ? "ok" : "failed", {{"sandbox_outcome", sandbox::OutcomeName(r.outcome)}, {"exit_code", r.exit_code}, {"signal", r.signal},
                                                   {"failed_step", r.failed_step}});
  Record("trainer.exited", r.outcome == sandbox::Outcome::kOk ? "ok" : "failed",
         {{"sandbox_outcome", sandbox::OutcomeName(r.outcome)}, {"exit_code", r.exit_code}, {"signal", r.signal},
          {"wall_ms", r.wall.count()}, {"peak_memory_bytes", r.peak_memory_bytes},
          {"memory_limit_hit", r.memory_limit_hit}, {"pids_limit_hit", r.pids_limit_hit},
          {"timeout_hit", r.timeout_hit}, {"seccomp_violations", r.seccomp_violations},
          {"violations", r.violations_by_syscall}, {"reason", r.reason}});
}

void Runner::Supervise(pid_t supervisor, Pipe& out, Pipe& err, Pipe& metrics, Pipe& ctl, Pipe& result) {
  std::array<pollfd, 5> fds{{{out.read.get(), POLLIN, 0}, {err.read.get(), POLLIN, 0}, {metrics.read.get(), POLLIN, 0},
                              {ctl.read.get(), POLLIN, 0}, {result.read.get(), POLLIN, 0}}};
  bool cancel_sent = false;
  char buffer[65536];
  while (fds[0].fd >= 0 || fds[1].fd >= 0 || fds[4].fd >= 0) {
    if (g_cancel && !cancel_sent) {
      ::kill(supervisor, SIGTERM);
      cancel_sent = true;
    }
    if (::poll(fds.data(), fds.size(), 200) < 0 && errno != EINTR) break;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      if (i == 3) {
        if (!OnControl(fds[i].fd)) fds[i].fd = -1;
        continue;
      }
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fds[i].fd = -1;
        continue;
      }
      const std::string_view bytes(buffer, static_cast<std::size_t>(n));
      if (i <= 1) OnLog(bytes, i == 1);
      else if (i == 2) OnMetricsBytes(bytes);
      else run_.result_text.append(bytes.substr(0, 1 << 20));
    }
  }
  // Requests the init sent just before it exited.
  while (fds[3].fd >= 0) {
    pollfd p{fds[3].fd, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0 || (p.revents & POLLIN) == 0 || !OnControl(fds[3].fd)) break;
  }
  int status = 0;
  while (::waitpid(supervisor, &status, 0) < 0 && errno == EINTR) {}
  std::optional<sandbox::RunResult> parsed = sandbox::RunResult::FromJson(run_.result_text);
  if (!parsed) {
    parsed = sandbox::RunResult{};
    parsed->outcome = sandbox::Outcome::kSetupError;
    parsed->failed_step = "supervisor";
    parsed->reason = "the sandbox supervisor died (status " + std::to_string(status) + ")";
  }
  run_.result = std::move(parsed);
}

void Runner::OnLog(std::string_view bytes, bool is_stderr) {
  if (options_.show_logs) {
    (is_stderr ? std::cerr : std::cout) << bytes;
    (is_stderr ? std::cerr : std::cout).flush();
  }
  const std::size_t room = kMaxLogBytes - std::min(kMaxLogBytes, run_.log.size());
  if (bytes.size() > room) run_.log_truncated = true;
  run_.log.append(bytes.substr(0, room));
}

void Runner::OnMetricsBytes(std::string_view bytes) {
  run_.metrics_buffer.append(bytes);
  std::size_t nl;
  while ((nl = run_.metrics_buffer.find('\n')) != std::string::npos) {
    const std::string line = run_.metrics_buffer.substr(0, nl);
    run_.metrics_buffer.erase(0, nl + 1);
    if (auto clean = SanitiseMetrics(line)) {
      run_.last_metrics = *clean;
      if (options_.on_metrics) options_.on_metrics(*clean);
    }
  }
  if (run_.metrics_buffer.size() > kMaxMetricLine) run_.metrics_buffer.clear();  // an endless line
}

bool Runner::OnControl(int fd) {
  std::string message(internal::kMaxMessageBytes, '\0');
  const ssize_t n = ::recv(fd, message.data(), message.size(), MSG_DONTWAIT);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  if (n == 0) return false;
  message.resize(static_cast<std::size_t>(n));
  const char type = message[0];
  if (type == static_cast<char>(Msg::kWrapRequest)) {
    OnWrapRequest(fd, message);
    return true;
  }
  const std::string body = message.substr(1);
  if (type == static_cast<char>(Msg::kMetrics)) {
    if (auto clean = SanitiseMetrics(body)) run_.last_metrics = *clean;
    return true;
  }
  json parsed = json::parse(body, nullptr, false);
  if (!parsed.is_object()) return true;
  if (type == static_cast<char>(Msg::kInputError)) {
    run_.input_error = parsed;
    Record("input.rejected", "failed", parsed);
  } else if (type == static_cast<char>(Msg::kRefused)) {
    run_.refused.push_back(parsed);
    Record("output.refused", "denied", parsed);
  } else if (type == static_cast<char>(Msg::kOutput)) {
    OutputFile file{parsed.value("name", ""), report_.output_dir + "/" + parsed.value("path", ""),
                    parsed.value("size", std::uint64_t{0}), parsed.value("sha256", "")};
    Record("output.sealed", "ok", {{"name", file.name}, {"path", file.path}, {"size", file.size}, {"sha256", file.sha256}});
    report_.outputs.push_back(std::move(file));
  }
  return true;
}

// The init asks for an output data key to be wrapped: the runner checks it is
// for this job, wraps it with the spec's output key and records it.
void Runner::OnWrapRequest(int fd, std::string& message) {
  std::string reply(1, static_cast<char>(Msg::kWrapError));
  const std::size_t size = message.size();
  const std::size_t dataset_len = size > 1 ? static_cast<std::uint8_t>(message[1]) : 0;
  const std::size_t job_at = 2 + dataset_len;
  const std::size_t job_len = size > job_at ? static_cast<std::uint8_t>(message[job_at]) : 0;
  const std::size_t dek_at = job_at + 1 + job_len;
  if (size != dek_at + kms::kDekBytes) {
    reply += "malformed request";
  } else {
    const kms::WrapContext context{message.substr(2, dataset_len), message.substr(job_at + 1, job_len)};
    SecretBytes dek = SecretBytes::From({reinterpret_cast<const std::uint8_t*>(message.data()) + dek_at, kms::kDekBytes});
    auto intent = Begin("key.wrap", {{"key_ref", job_.output.key.ToString()}, {"dataset", context.dataset}});
    auto kms = managers_.get(job_.output.key.adapter);
    Result<kms::WrappedKey> wrapped = Fail(Errc::kPermissionDenied, "the request is not for this job");
    if (context.job == report_.job_id && kms) wrapped = (*kms)->Wrap(job_.output.key.name, dek, context);
    else if (!kms) wrapped = std::unexpected(kms.error());
    Finish(intent, wrapped ? "ok" : "failed", wrapped ? json{{"key_version", wrapped->version}}
                                                     : json{{"error", wrapped.error().message}});
    if (wrapped) {
      reply.assign(1, static_cast<char>(Msg::kWrapResponse));
      for (int shift = 24; shift >= 0; shift -= 8) reply += static_cast<char>((wrapped->version >> shift) & 0xff);
      reply.append(wrapped->blob.begin(), wrapped->blob.end());
    } else {
      reply += wrapped.error().message;
    }
  }
  OPENSSL_cleanse(message.data(), message.size());
  ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
}

void Runner::ClassifyResult() {
  const sandbox::RunResult& r = *run_.result;
  report_.trainer_exit_code = r.exit_code;
  report_.trainer_signal = r.signal;
  if (failed_) return;
  using sandbox::Outcome;
  // The OOM killer may have picked a child of the trainer, which then exits non-zero.
  if ((r.outcome == Outcome::kOk && r.exit_code != 0) || r.outcome == Outcome::kSignaled) {
    if (r.memory_limit_hit) {
      Reject(JobOutcome::kMemoryLimit, "the memory limit (" + FormatSize(job_.resources.memory_bytes) +
                                           ") killed a process of the job");
      return;
    }
  }
  switch (r.outcome) {
    case Outcome::kOk:
      if (r.exit_code == 0) return;
      Reject(JobOutcome::kTrainerFailed, "the trainer exited with status " + std::to_string(r.exit_code));
      return;
    case Outcome::kSignaled:
      Reject(JobOutcome::kTrainerFailed, "the trainer died of signal " + std::to_string(r.signal));
      return;
    case Outcome::kTimeout:
      Reject(JobOutcome::kTimeout, "the job ran past its timeout of " + FormatDuration(job_.resources.timeout));
      return;
    case Outcome::kViolation:
      Reject(JobOutcome::kSandboxViolation, "the trainer broke the sandbox policy: " + r.reason);
      return;
    case Outcome::kExternalKill:
      Reject(g_cancel ? JobOutcome::kCancelled : JobOutcome::kSetupError, g_cancel ? "cancelled" : "the sandbox was killed from outside");
      return;
    case Outcome::kSetupError:
      if (run_.input_error) {
        Reject(JobOutcome::kInputRejected, "input '" + run_.input_error->value("input", "") + "': " +
                                             run_.input_error->value("message", ""));
      } else {
        Reject(JobOutcome::kSetupError, "sandbox step " + r.failed_step + ": " + r.reason);
      }
      return;
  }
}

void Runner::SealTrainerLog() {
  if (!run_.result) return;
  if (run_.log_truncated) run_.log += "\n[cordon: log truncated at " + std::to_string(kMaxLogBytes) + " bytes]\n";
  auto intent = Begin("log.seal", {{"bytes", run_.log.size()}, {"truncated", run_.log_truncated}});
  UniqueFd memfd(::memfd_create("cordon-trainer-log", MFD_CLOEXEC));
  const std::string path = report_.output_dir + "/trainer.log.sealed";
  const std::string temp = report_.output_dir + "/.trainer.log.sealed.partial";
  Result<sealed::Report> sealed = Fail(Errc::kIo, "cannot buffer the trainer log");
  auto kms = managers_.get(job_.output.key.adapter);
  if (!kms) sealed = std::unexpected(kms.error());
  if (kms && memfd && ::write(memfd.get(), run_.log.data(), run_.log.size()) == static_cast<ssize_t>(run_.log.size())) {
    ::lseek(memfd.get(), 0, SEEK_SET);
    sealed::SealOptions o;
    o.key = job_.output.key;
    o.dataset = "trainer.log";
    o.job = report_.job_id;
    UniqueFd out(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640));
    sealed = out ? sealed::SealStream(memfd.get(), out.get(), **kms, o) : Result<sealed::Report>(FailErrno(temp));
    if (sealed && ::fsync(out.get()) != 0) sealed = FailErrno("fsync " + temp);
    if (sealed && ::rename(temp.c_str(), path.c_str()) != 0) sealed = FailErrno("rename " + temp);
    if (!sealed) ::unlink(temp.c_str());
  }
  OPENSSL_cleanse(run_.log.data(), run_.log.size());
  if (!sealed) {
    Finish(intent, "failed", {{"error", sealed.error().message}});
    Reject(JobOutcome::kSetupError, "sealing the trainer log: " + sealed.error().message);
    return;
  }
  Finish(intent, "ok", {{"sha256", sealed->sha256}, {"path", path}});
  report_.outputs.push_back({"trainer.log", path, sealed->plaintext_bytes, sealed->sha256});
}

void Runner::WriteManifest() {
  json outputs = json::array();
  for (const OutputFile& o : report_.outputs) {
    outputs.push_back({{"name", o.name}, {"path", o.path}, {"size", o.size}, {"sha256", o.sha256}});
  }
  const sandbox::RunResult r = run_.result.value_or(sandbox::RunResult{});
  const uid_t uid = options_.submitter_uid.value_or(::getuid());
  report_.manifest = {
      {"manifest_version", 1},
      {"job_id", report_.job_id},
      {"name", job_.name},
      {"spec", {{"path", options_.spec_path}, {"sha256", options_.spec_sha256}}},
      {"submitter", {{"uid", uid}, {"user", UserName(uid)}}},
      {"inputs", inputs_json_},
      {"outputs", outputs},
      {"refused_outputs", run_.refused},
      {"trainer", {{"command", job_.trainer.command}, {"image", job_.trainer.image},
                   {"exit_code", r.exit_code}, {"signal", r.signal}, {"sandbox_outcome", sandbox::OutcomeName(r.outcome)}}},
      {"resources", {{"wall_ms", r.wall.count()}, {"cpu_user_ms", r.cpu_user.count()},
                     {"cpu_system_ms", r.cpu_system.count()}, {"peak_memory_bytes", r.peak_memory_bytes},
                     {"memory_limit_hit", r.memory_limit_hit}, {"pids_limit_hit", r.pids_limit_hit},
                     {"timeout_hit", r.timeout_hit}, {"seccomp_violations", r.seccomp_violations},
                     {"cgroup_mode", r.cgroup_mode}, {"scratch_noswap", r.scratch_noswap}}},
      {"metrics", run_.last_metrics.value_or(json(nullptr))},
      {"outcome", JobOutcomeName(failed_ ? report_.outcome : JobOutcome::kSucceeded)},
      {"reason", report_.reason},
  };
  const std::string path = report_.output_dir + "/manifest.json";
  const std::string text = report_.manifest.dump(2) + "\n";
  auto intent = Begin("manifest.write", {{"path", path}});
  if (auto ok = WriteFileAtomic(path, text, 0640); !ok) {
    Finish(intent, "failed", {{"error", ok.error().message}});
    Reject(JobOutcome::kSetupError, "writing the manifest: " + ok.error().message);
    return;
  }
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  auto sha = fd ? sealed::Sha256Fd(fd.get()) : Result<std::string>(FailErrno(path));
  report_.manifest_path = path;
  Finish(intent, "ok", {{"sha256", sha ? *sha : ""}});
}

JobReport Runner::Done() {
  FinishLineageHashes();
  if (!failed_) {
    report_.outcome = JobOutcome::kSucceeded;
    report_.reason = "";
  }
  CloseInputs();
  deks_.clear();
  json details = {{"outcome", JobOutcomeName(report_.outcome)}, {"reason", report_.reason},
                  {"trainer_exit_code", report_.trainer_exit_code}, {"outputs", report_.outputs.size()},
                  {"manifest", report_.manifest_path}};
  if (run_.last_metrics) details["metrics"] = MetricsForAudit(*run_.last_metrics);
  Record("job.finished", report_.outcome == JobOutcome::kSucceeded ? "ok" : "failed", details);
  return report_;
}

}  // namespace

const char* JobOutcomeName(JobOutcome outcome) {
  switch (outcome) {
    case JobOutcome::kSucceeded: return "succeeded";
    case JobOutcome::kTrainerFailed: return "trainer_failed";
    case JobOutcome::kTimeout: return "timeout";
    case JobOutcome::kMemoryLimit: return "memory_limit";
    case JobOutcome::kSandboxViolation: return "sandbox_violation";
    case JobOutcome::kInputRejected: return "input_rejected";
    case JobOutcome::kSetupError: return "setup_error";
    case JobOutcome::kCancelled: return "cancelled";
  }
  return "setup_error";
}

int ExitStatusFor(JobOutcome outcome) {
  switch (outcome) {
    case JobOutcome::kSucceeded: return 0;
    case JobOutcome::kTrainerFailed: return 10;
    case JobOutcome::kTimeout: return 11;
    case JobOutcome::kMemoryLimit: return 12;
    case JobOutcome::kSandboxViolation: return 13;
    case JobOutcome::kInputRejected: return 14;
    case JobOutcome::kSetupError: return 15;
    case JobOutcome::kCancelled: return 16;
  }
  return 15;
}

void RequestCancel() { g_cancel = 1; }

Result<JobReport> RunJob(const orchestrator::Config& config, const specs::TrainingJob& job,
                         const RunOptions& options) {
  if (auto hardened = HardenKeyHoldingProcess(); !hardened) return std::unexpected(hardened.error());
  auto log = audit::AuditLog::Open(orchestrator::AuditOptionsFor(config));
  if (!log) return std::unexpected(WithContext(log.error(), "audit log " + config.audit_dir));
  JobReport report;
  report.job_id = options.job_id.empty() ? NewJobId(job.name) : options.job_id;
  Runner runner(config, job, options, **log, report);
  return runner.Run();
}

}  // namespace cordon::runner
