#include "cordon/runner/runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <deque>
#include <set>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <cmath>
#include <csignal>
#include <ctime>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>

#include "cordon/file_io.h"
#include "cordon/process.h"
#include "cordon/units.h"
#include "cordon/audit/audit.h"
#include "cordon/config/audit_options.h"
#include "cordon/exit_codes.h"
#include "cordon/sealed/sealed.h"
#include "cordon/config/kms_options.h"
#include "cordon/sandbox/sandbox.h"
#include "cordon/unique_fd.h"
#include "cordon/runner/image_scan.h"
#include "integrity.h"
#include "cordon/datasets/quarantine.h"
#include "metrics.h"
#include "classify.h"
#include "stage.h"
#include "trainer_image.h"

namespace cordon::runner {
namespace {

using nlohmann::json;
using internal::Msg;

constexpr std::size_t kMaxLogBytes = 64u << 20;   // trainer stdout+stderr kept for sealing
using internal::kMaxMetricLine;
// Stage-out's own wall clock, after the trainer's timeout (docs: orchestrator/README.md).
constexpr std::chrono::minutes kStageOutDeadline{10};
// Sealed outputs audited one by one; the rest only in the job's output.staged summary.
constexpr std::size_t kMaxOutputsAudited = 5;
constexpr const char* kTrainerLogFile = "trainer.log.sealed";
constexpr const char* kMetricsSeriesFile = "metrics.jsonl.sealed";
constexpr std::size_t kMaxMetricsSeriesBytes = 16u << 20;  // then the series notes its truncation
constexpr std::size_t kMetricsTailLines = 16;              // stage-out re-sends at most this many
constexpr const char* kManifestFile = "manifest.json";
// What Runner::Supervise polls, by index: the trainer's stdout and stderr, the
// live-metrics pipe, the control socket and the supervisor's result pipe.
enum PollChannel : std::size_t { kPollStdout, kPollStderr, kPollMetrics, kPollControl, kPollResult, kPollChannels };

bool IsCordonOutputFile(const std::string& file) {
  return file.size() == 17 && file.starts_with("out-") && file.ends_with(".sealed") &&
         std::all_of(file.begin() + 4, file.begin() + 10, [](char c) { return c >= '0' && c <= '9'; });
}

bool IsCordonOutputDataset(const std::string& dataset) {
  return dataset == internal::kIndexDataset || dataset == internal::kLiveIndexDataset ||
         IsCordonOutputFile(dataset + ".sealed");
}

volatile std::sig_atomic_t g_cancel = 0;
volatile std::sig_atomic_t g_halt = 0;  // SIGUSR1 (`cordon halt`): kill the sandbox now, stage out nothing

// `cordon halt`: the sandbox's init (the supervisor's child) and the
// supervisor die by SIGKILL at once, so stage-out never runs; the trainer's
// log, held here, is still sealed and the job finishes as cancelled.
void KillSandboxNow(pid_t supervisor) {
  std::ifstream children("/proc/" + std::to_string(supervisor) + "/task/" + std::to_string(supervisor) + "/children");
  pid_t child = 0;
  while (children >> child) ::kill(child, SIGKILL);
  ::kill(supervisor, SIGKILL);
}

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
  struct StageSummary {
    std::uint64_t bytes = 0, refused_total = 0;
    std::map<std::string, std::uint64_t> refused;  // kind -> count
    bool deadline_hit = false;
  };
  std::optional<StageSummary> stage_summary;  // counts from the init's stage-out
  std::size_t outputs_audited = 0;
  std::size_t refusals_audited = 0;
  std::size_t truncated_messages = 0;  // control datagrams over kMaxMessageBytes (OnTruncatedControl)
  bool overran = false;              // killed past the timeout + the stage-out deadline
  std::uint64_t index_entries = 0;   // entries in index.sealed
  std::optional<json> input_error;
  std::map<std::string, orchestrator::ExpectationResult> expectations;  // input name -> result
  std::string metrics_buffer;
  std::string result_text;
  // The time series: accepted lines as JSONL; the raw text of the last kMetricsTailLines the
  // relay delivered (to skip those stage-out sends again); the lines stage-out sent.
  std::string metrics_series;
  std::uint64_t metrics_series_lines = 0;
  bool metrics_series_truncated = false;
  std::deque<std::string> metrics_recent;
  std::vector<std::string> metrics_tail;
};

class Runner final {
 public:
  Runner(const orchestrator::Config& config, const specs::TrainingJob& job, const RunOptions& options,
         audit::AuditLog& log, JobReport& report)
      : config_(config), job_(job), options_(options), log_(log), report_(report),
        managers_(sealed::CachedKeyManagers(orchestrator::KmsOptionsFrom(config))),
        declared_metrics_(job.metrics.begin(), job.metrics.end()) {
    TakeFds();
  }

  JobReport Run() {
    started_ = std::chrono::system_clock::now();
    if (!Accept()) return report_;
    if (options_.on_started) options_.on_started(report_.job_id);
    if (!PrepareOutputDir() || !CheckImage() || !CheckGpus() || !CheckInputs()) return Done();
    StartLineageHashes();
    if (!UnwrapKeys() || !CheckOutputKey()) return Done();
    RunSandbox();
    FinishLineageHashes();
    QuarantineRejectedInputs();
    SealTrainerLog();
    SealMetricsSeries();
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

  // The caller's fds become ours: close-on-exec, closed when the runner ends.
  void TakeFds() {
    const auto take = [](int fd) {
      if (fd >= 0) (void)::fcntl(fd, F_SETFD, FD_CLOEXEC);
      return UniqueFd(fd);
    };
    output_fd_ = take(options_.output_fd);
    image_fd_ = take(options_.image_fd);
    for (const auto& [name, fd] : options_.input_fds) input_fds_[name] = take(fd);
  }

  // ---- 1. accept ----
  bool Accept() {
    const uid_t uid = options_.submitter_uid.value_or(::getuid());
    json details = {{"name", job_.name}, {"spec_path", options_.spec_path}, {"spec_sha256", options_.spec_sha256},
                    {"submitter", {{"uid", uid}, {"user", UserName(uid)}}}, {"inputs", job_.inputs.size()},
                    {"output_key_ref", job_.output.key.ToString()}, {"output_path", job_.output.path},
                    {"fds", {{"inputs", options_.input_fds.size()}, {"output", options_.output_fd >= 0},
                             {"image", options_.image_fd >= 0}}}};
    auto intent = Begin("job.accepted", details);
    return Finish(intent, "ok");
  }

  // ---- 2. output directory: <output.path>/<job id>, created fresh, then used by fd only ----
  bool PrepareOutputDir() {
    report_.output_dir = job_.output.path + "/" + report_.job_id;
    auto intent = Begin("output.prepare", {{"path", report_.output_dir}, {"via_fd", output_fd_.get() >= 0}});
    const auto fail = [&](const std::string& why) {
      Finish(intent, "failed", {{"error", why}});
      return Reject(JobOutcome::kSetupError, "cannot create output directory " + report_.output_dir + ": " + why);
    };
    UniqueFd parent = std::move(output_fd_);
    if (!parent) {  // `cordon run` by root, no fd given: the path, once
      std::error_code ec;
      std::filesystem::create_directories(job_.output.path, ec);
      if (ec) return fail(ec.message());
      parent.reset(::open(job_.output.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!parent) return fail(std::strerror(errno));
    }
    struct stat st {};
    if (::fstat(parent.get(), &st) != 0 || !S_ISDIR(st.st_mode)) return fail("not a directory");
    if (::mkdirat(parent.get(), report_.job_id.c_str(), 0750) == 0) {
      job_dir_.reset(::openat(parent.get(), report_.job_id.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    } else if (errno == EACCES && options_.submitter_uid.value_or(0) != 0) {
      if (auto made = MakeJobDirAsSubmitter(parent.get()); !made) return fail(made.error().message);
    } else {
      return fail(std::strerror(errno));
    }
    if (!job_dir_ || ::fstat(job_dir_.get(), &st) != 0) return fail(std::strerror(errno));
    // Whoever owns the parent could have swapped the entry between mkdirat and
    // openat; only root can make a root-owned directory.
    if (st.st_uid != ::geteuid()) return fail("the directory opened is not the one Cordon created");
    report_.output_dir_id = std::pair(st.st_dev, st.st_ino);
    return Finish(intent, "ok", {{"dev", st.st_dev}, {"ino", st.st_ino}});
  }

  // Under the hardened unit root holds no CAP_DAC_OVERRIDE, so it cannot create
  // in a submitter's directory what the submitter could: the job directory is
  // made as the submitter (setfsuid, this thread), then made root's (fchown
  // needs only CAP_CHOWN) and must be empty once it is root's — a directory the
  // submitter swapped in between would have to be, and then holds nothing.
  Status MakeJobDirAsSubmitter(int parent) {
    const uid_t uid = *options_.submitter_uid;
    const passwd* pw = ::getpwuid(uid);
    const gid_t gid = pw ? pw->pw_gid : uid;
    int death_signal = 0;  // a change of fsuid clears it (prctl(2)): armed again after
    (void)::prctl(PR_GET_PDEATHSIG, &death_signal);
    ::setfsgid(gid);
    ::setfsuid(uid);
    const int made = ::mkdirat(parent, report_.job_id.c_str(), 0750);
    if (made == 0) job_dir_.reset(::openat(parent, report_.job_id.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    const int saved = errno;
    ::setfsuid(0);
    ::setfsgid(0);
    if (death_signal != 0) (void)::prctl(PR_SET_PDEATHSIG, death_signal);
    if (made != 0) return FailErrno("create it as the submitter", saved);
    struct stat st {};
    if (!job_dir_ || ::fstat(job_dir_.get(), &st) != 0 || st.st_uid != uid) {
      return Fail(Errc::kPermissionDenied, "the directory opened is not the one Cordon created");
    }
    if (::fchown(job_dir_.get(), 0, 0) != 0 || ::fchmod(job_dir_.get(), 0750) != 0) return FailErrno("make it root's");
    UniqueFd listing(::openat(job_dir_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    DIR* dir = listing ? ::fdopendir(listing.get()) : nullptr;
    if (dir == nullptr) return FailErrno("list it");
    (void)listing.release();
    std::size_t entries = 0;
    while (const dirent* e = ::readdir(dir)) entries += std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0;
    ::closedir(dir);
    if (entries != 0) return Fail(Errc::kPermissionDenied, "the directory opened is not the one Cordon created (not empty)");
    return {};
  }

  // ---- 2b. the image: opened once, scanned through that fd, bound from it ----
  bool CheckImage() {
    if (job_.trainer.image_kind == specs::ImageKind::kOciLayout) return PrepareOciImage();
    auto intent = Begin("image.check", {{"image", job_.trainer.image}, {"via_fd", image_fd_.get() >= 0}});
    if (!image_fd_) image_fd_.reset(::open(job_.trainer.image.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    Status ok = image_fd_ ? internal::CheckImage(image_fd_.get(), config_.daemon.socket, internal::HardlinksProtected())
                          : Status(FailErrno("open " + job_.trainer.image));
    if (!ok) {
      Finish(intent, "failed", {{"error", ok.error().message}});
      return Reject(JobOutcome::kSetupError, "trainer image " + job_.trainer.image + ": " + ok.error().message);
    }
    return Finish(intent, "ok");
  }

  // An OCI layout: resolved and verified through its fd (the submitter's), the pin checked,
  // unpacked once into the image cache; the sandbox gets the cached rootfs, never the layout.
  bool PrepareOciImage() {
    const std::string ref = specs::ImageReference(job_.trainer);
    const json pin = job_.trainer.image_digest ? json(*job_.trainer.image_digest) : json(nullptr);
    auto intent = Begin("image.check", {{"image", ref}, {"kind", "oci"}, {"image_digest", pin}, {"via_fd", image_fd_.get() >= 0}});
    if (!image_fd_) image_fd_.reset(::open(job_.trainer.image.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    auto prepared = image_fd_ ? internal::PrepareOci(job_.trainer, image_fd_.get(), config_.state_dir, options_.submitter_uid)
                              : Result<internal::PreparedOci>(FailErrno("open " + job_.trainer.image));
    image_fd_.reset();  // the layout is done with: the sandbox never sees it
    if (!prepared) {
      Finish(intent, "failed", {{"error", prepared.error().message}});
      return Reject(JobOutcome::kSetupError, "trainer image " + ref + ": " + prepared.error().message);
    }
    oci_ = std::move(*prepared);
    return Finish(intent, "ok", {{"manifest_digest", oci_->manifest_digest}, {"cached", oci_->cached},
                                 {"entries", oci_->entries}, {"bytes", oci_->bytes}});
  }

  // ---- 2c. GPUs: the devices must exist; the driver's files are found as the toolkit does ----
  bool CheckGpus() {
    if (job_.resources.gpus == 0) return true;
    auto intent = Begin("gpu.check", {{"gpus", job_.resources.gpus}});
    auto found = internal::FindGpus(job_.resources.gpus);
    if (!found) {
      Finish(intent, "failed", {{"error", found.error().message}});
      return Reject(JobOutcome::kSetupError, found.error().message);
    }
    gpu_ = std::move(*found);
    return Finish(intent, "ok", {{"devices", gpu_.devices}, {"libraries", gpu_.libraries.size()}, {"tools", gpu_.tools}});
  }

  // ---- 3. inputs: open once, hash through that fd, parse the header ----
  bool CheckInputs() {
    for (const auto& [name, fd] : input_fds_) {
      const bool known = std::any_of(job_.inputs.begin(), job_.inputs.end(), [&](const auto& i) { return i.name == name; });
      if (!known) return Reject(JobOutcome::kSetupError, "an input fd was given for '" + name + "', which the spec does not name");
    }
    for (const specs::Input& input : job_.inputs) {
      auto intent = Begin("input.verify", {{"input", input.name}, {"path", input.path}, {"via_fd", input_fds_.contains(input.name)}});
      if (!intent || !CheckInput(input, *intent)) return false;
    }
    return true;
  }

  bool CheckInput(const specs::Input& input, const audit::Intent& intent) {
    const auto reject = [&](const std::string& why) {
      Finish(intent, "failed", {{"error", why}});
      return Reject(JobOutcome::kInputRejected, "input '" + input.name + "' (" + input.path + "): " + why);
    };
    // The daemon's fd (opened as the submitter) when there is one; the path never.
    UniqueFd fd;
    if (auto it = input_fds_.find(input.name); it != input_fds_.end()) fd = std::move(it->second);
    else fd.reset(::open(input.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
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
    if (!CheckNotQuarantined(input, *info, fd.get(), sha, intent)) return false;
    inputs_json_.push_back({{"name", input.name}, {"path", input.path}, {"sha256", sha.empty() ? json(nullptr) : json(sha)},
                            {"dataset", h.dataset}, {"key_ref", h.key.ToString()}, {"key_version", h.kek_version},
                            {"sealed_bytes", info->sealed_bytes}, {"columns", input.columns}});
    plan_.inputs.push_back({input.name, fd.release(), h, input.columns, input.expect,
                            input.expect && input.expect->max_drift
                                ? internal::LastGoodSummaries(config_.state_dir, h.dataset)
                                : std::nullopt});
    json details = {{"dataset", h.dataset}, {"key_ref", h.key.ToString()}, {"key_version", h.kek_version},
                    {"pinned", input.sha256.has_value()}};
    if (!sha.empty()) details["sha256"] = sha;
    return Finish(intent, "ok", std::move(details));
  }

  // The lineage hash of every unpinned input, computed by a child process (forked
  // before any key is unwrapped) through the same fds the sandbox reads with pread.
  // fork(), not Spawn: the child runs our own code on fds already open here, and
  // forks before any key exists in this process, so there is nothing to exec.
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
    while ((n = RetryEintr([&] { return ::read(hashes_.get(), buffer, sizeof buffer); })) > 0) {
      text.append(buffer, static_cast<std::size_t>(n));
    }
    (void)WaitChild(hasher_);
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
  void OnTruncatedControl(int fd, internal::Received& got);
  void OnInitMessage(char type, const json& parsed);
  void OnWrapRequest(int fd, std::string& message);
  void OnLog(std::string_view bytes, bool is_stderr);
  void OnMetricsBytes(std::string_view bytes);
  bool AcceptMetrics(std::string_view line);
  void AcceptMetricsTail();
  void OnOutput(const json& parsed);
  void OnLiveOutput(const json& parsed);
  void RecordStageOut();
  void ClassifyResult();
  // ---- the data checkpoint (integrity.h): quarantine at step 2, `expect:` results ----
  bool CheckNotQuarantined(const specs::Input& input, const sealed::SealedInfo& info, int fd, std::string& sha,
                           const audit::Intent& intent);
  void OnExpectations(const json& parsed);
  void QuarantineRejectedInputs();

  void CloseInputs() {
    for (auto& input : plan_.inputs) {
      if (input.fd >= 0) ::close(input.fd);
      input.fd = -1;
    }
  }

  // ---- 7b. the trainer log and the manifest ----
  Result<std::string> WriteInJobDir(const std::string& name, const std::function<Status(int fd)>& fill);
  std::optional<OutputFile> SealBuffer(const std::string& file, const std::string& dataset, const std::string& action,
                                       std::string& text, json details);
  void SealTrainerLog();
  void SealMetricsSeries();
  void WriteManifest();
  JobReport Done();

  const orchestrator::Config& config_;
  const specs::TrainingJob& job_;
  const RunOptions& options_;
  audit::AuditLog& log_;
  JobReport& report_;
  sealed::KeyManagers managers_;
  internal::StagePlan plan_;
  internal::SealLedger ledger_;  // used by the sandbox init's copy of this object
  std::vector<SecretBytes> deks_;
  json inputs_json_ = json::array();
  SandboxRun run_;
  bool failed_ = false;
  std::chrono::system_clock::time_point started_;
  pid_t hasher_ = -1;  // the lineage-hash child, while it runs
  UniqueFd hashes_;    // its results: "<input index> sha256:<hex>" lines
  std::set<std::string> declared_metrics_;
  UniqueFd output_fd_, image_fd_, job_dir_;
  std::optional<internal::PreparedOci> oci_;  // an OCI image, unpacked
  sandbox::GpuAccess gpu_;
  std::map<std::string, UniqueFd> input_fds_;
  std::optional<audit::Intent> wrap_intent_;  // one write-ahead entry for every output key wrap
  std::uint64_t wraps_ = 0, wrap_failures_ = 0;
  std::uint32_t wrap_key_version_ = 0;
};

sandbox::Policy Runner::MakePolicy(const Pipe& out, const Pipe& err, const Pipe& keys, const Pipe& ctl,
                                   const Pipe& metrics) {
  sandbox::Policy p;
  p.image_dir = job_.trainer.image;  // a label: the sandbox binds image_fd
  p.image_fd = image_fd_.get();
  p.argv = job_.trainer.command;
  if (oci_) {  // the image config's Env first (PATH for its python3), the spec's over it
    p.rootfs_dir = oci_->rootfs;
    p.rootfs_fd = oci_->rootfs_fd.get();
    for (const auto& [k, v] : oci_->env) {
      if (!k.starts_with("CORDON_")) p.env[k] = v;
    }
  }
  for (const auto& [k, v] : job_.trainer.env) p.env[k] = v;
  if (!gpu_.devices.empty()) {
    p.gpu = gpu_;
    const auto append = [&](const std::string& key, const std::string& dir, const std::string& fallback) {
      auto it = p.env.find(key);
      const std::string base = it != p.env.end() ? it->second : fallback;
      p.env[key] = base.empty() ? dir : base + ":" + dir;
    };
    append("PATH", "/nvidia/bin", "/usr/local/bin:/usr/bin:/bin");
    append("LD_LIBRARY_PATH", "/nvidia/lib64", "");
  }
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
  p.cgroup_parent = options_.cgroup_parent;
  p.output_dir_fd = job_dir_.get();
  p.stdout_fd = out.write.get();
  p.stderr_fd = err.write.get();
  plan_.keys_fd = keys.read.get();
  plan_.ctl_fd = ctl.write.get();
  plan_.metrics_fd = metrics.write.get();
  plan_.uid = p.uid;
  plan_.gid = p.gid;
  plan_.output_key = job_.output.key;
  plan_.job_id = report_.job_id;
  plan_.max_files = job_.output.max_files;
  plan_.max_bytes = job_.output.max_bytes.value_or(job_.resources.scratch_bytes);
  plan_.stage_deadline = kStageOutDeadline;
  plan_.live = job_.output.live;
  p.init_fds = {plan_.keys_fd, plan_.ctl_fd, plan_.metrics_fd};
  for (const auto& input : plan_.inputs) p.init_fds.push_back(input.fd);
  const internal::StagePlan& plan = plan_;
  p.stage_in = [&plan](const sandbox::StageInContext&) { return internal::StageIn(plan); };
  internal::SealLedger& ledger = ledger_;
  p.stage_out = [&plan, &ledger](const sandbox::StageOutContext& ctx) {
    return internal::StageOut(plan, ledger, ctx.output_dir_fd);
  };
  p.live_dirs = job_.output.live;
  if (!p.live_dirs.empty()) {
    p.live_output = [&plan, &ledger](const sandbox::LiveOutputContext& ctx) {
      (void)internal::SealLive(plan, ledger, ctx.output_dir_fd, ctx.path);  // else: the final stage-out
    };
  }
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
  (void)WriteAll(result_fd, text);
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
  auto intent = Begin("sandbox.start", {{"image", specs::ImageReference(job_.trainer)},
                                        {"image_digest", oci_ ? json(oci_->manifest_digest) : json(nullptr)},
                                        {"gpus", job_.resources.gpus}, {"uid", policy.uid}, {"gid", policy.gid},
                                        {"memory_bytes", policy.memory_bytes}, {"pids", policy.pids},
                                        {"timeout_ms", policy.timeout.count()}, {"scratch_bytes", policy.scratch_bytes}});
  if (!intent) return;
  // fork(), not Spawn: the child is the sandbox supervisor (sandbox::Run in
  // this program, sandbox/README.md), holding the channels opened above.
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
  AcceptMetricsTail();
  ClassifyResult();
  RecordStageOut();
  const sandbox::RunResult& r = *run_.result;
  Finish(intent, r.outcome == sandbox::Outcome::kOk ? "ok" : "failed", {{"sandbox_outcome", sandbox::OutcomeName(r.outcome)}, {"exit_code", r.exit_code}, {"signal", r.signal},
                                                   {"failed_step", r.failed_step}});
  Record("trainer.exited", r.outcome == sandbox::Outcome::kOk ? "ok" : "failed",
         {{"sandbox_outcome", sandbox::OutcomeName(r.outcome)}, {"exit_code", r.exit_code}, {"signal", r.signal},
          {"wall_ms", r.wall.count()}, {"peak_memory_bytes", r.peak_memory_bytes},
          {"memory_limit_bytes", r.memory_limit_bytes}, {"max_rss_bytes", r.max_rss_bytes},
          {"scratch_peak_bytes", r.scratch_peak_bytes}, {"scratch_full", r.scratch_full},
          {"memory_limit_hit", r.memory_limit_hit}, {"pids_limit_hit", r.pids_limit_hit},
          {"timeout_hit", r.timeout_hit}, {"seccomp_violations", r.seccomp_violations},
          {"violations", r.violations_by_syscall}, {"probes_by_syscall", r.probes_by_syscall}, {"reason", r.reason}});
}

void Runner::Supervise(pid_t supervisor, Pipe& out, Pipe& err, Pipe& metrics, Pipe& ctl, Pipe& result) {
  std::array<pollfd, kPollChannels> fds{};
  fds[kPollStdout] = {out.read.get(), POLLIN, 0};
  fds[kPollStderr] = {err.read.get(), POLLIN, 0};
  fds[kPollMetrics] = {metrics.read.get(), POLLIN, 0};
  fds[kPollControl] = {ctl.read.get(), POLLIN, 0};
  fds[kPollResult] = {result.read.get(), POLLIN, 0};
  bool cancel_sent = false, halt_sent = false;
  char buffer[65536];
  // The sandbox enforces the trainer's timeout and stage-out its own deadline;
  // this is the backstop if either is outlived (a stuck seal, a wedged init).
  // Stage-in is allowed 20 MiB/s of the scratch size (decryption runs at hundreds of MB/s).
  const auto stage_in = std::chrono::seconds(job_.resources.scratch_bytes / (20u << 20));
  const auto hard_stop = std::chrono::steady_clock::now() + job_.resources.timeout + kStageOutDeadline +
                         stage_in + std::chrono::minutes(2);
  while (fds[kPollStdout].fd >= 0 || fds[kPollStderr].fd >= 0 || fds[kPollResult].fd >= 0) {
    if (g_halt && !halt_sent) {
      KillSandboxNow(supervisor);
      halt_sent = true;
    }
    if ((g_cancel || std::chrono::steady_clock::now() > hard_stop) && !cancel_sent) {
      run_.overran = !g_cancel;
      ::kill(supervisor, SIGTERM);
      cancel_sent = true;
    }
    if (::poll(fds.data(), fds.size(), 200) < 0 && errno != EINTR) break;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      if (i == kPollControl) {
        if (!OnControl(fds[i].fd)) fds[i].fd = -1;
        continue;
      }
      const ssize_t n = RetryEintr([&] { return ::read(fds[i].fd, buffer, sizeof buffer); });
      if (n <= 0) {
        fds[i].fd = -1;
        continue;
      }
      const std::string_view bytes(buffer, static_cast<std::size_t>(n));
      if (i == kPollStdout || i == kPollStderr) OnLog(bytes, i == kPollStderr);
      else if (i == kPollMetrics) OnMetricsBytes(bytes);
      else run_.result_text.append(bytes.substr(0, 1 << 20));
    }
  }
  // Requests the init sent just before it exited.
  while (fds[kPollControl].fd >= 0) {
    pollfd p{fds[kPollControl].fd, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0 || (p.revents & POLLIN) == 0 || !OnControl(fds[kPollControl].fd)) break;
  }
  const int status = WaitChild(supervisor).value_or(0);
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
    std::ostream& echo = is_stderr || options_.logs_to_stderr ? std::cerr : std::cout;
    echo << bytes;
    echo.flush();
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
    run_.metrics_recent.push_back(line);
    if (run_.metrics_recent.size() > kMetricsTailLines) run_.metrics_recent.pop_front();
    if (AcceptMetrics(line) && options_.on_metrics) options_.on_metrics(*run_.last_metrics);
  }
  if (run_.metrics_buffer.size() > kMaxMetricLine) run_.metrics_buffer.clear();  // an endless line
}

bool Runner::OnControl(int fd) {
  auto got = internal::ReceiveMessage(fd, false);
  if (!got || got->status == internal::Received::Status::kClosed) return false;
  if (got->status == internal::Received::Status::kNothing) return true;
  if (got->status == internal::Received::Status::kTruncated) {
    OnTruncatedControl(fd, *got);
    return true;
  }
  std::string& message = got->datagram;
  const char type = message[0];
  if (type == static_cast<char>(Msg::kWrapRequest)) {
    OnWrapRequest(fd, message);
    return true;
  }
  const std::string body(internal::DecodeMessage(message)->payload);
  if (type == static_cast<char>(Msg::kMetrics)) {
    if (run_.metrics_tail.size() < kMetricsTailLines) run_.metrics_tail.push_back(body);
    return true;
  }
  json parsed = json::parse(body, nullptr, false);
  if (!parsed.is_object()) return true;
  try {
    OnInitMessage(type, parsed);
  } catch (const json::exception&) {
    // A member of the wrong type: the init never sends one; ignored, never fatal.
  }
  return true;
}

// A datagram the kernel cut (over kMaxMessageBytes): the init never sends one, so it is a bug
// or a hostile init. Nothing of it is used: a wrap request is answered with an error (the init
// waits for one), the first is audited (its size only), and the job fails — a record lost this
// way (an output, the stage-out summary) would leave its report incomplete.
void Runner::OnTruncatedControl(int fd, internal::Received& got) {
  const bool wrap = !got.datagram.empty() && got.datagram[0] == static_cast<char>(Msg::kWrapRequest);
  OPENSSL_cleanse(got.datagram.data(), got.datagram.size());
  const std::string why = "the sandbox init sent a control message of " + std::to_string(got.bytes) +
                          " bytes, over the " + std::to_string(internal::kMaxMessageBytes) +
                          "-byte limit of one datagram: refused";
  if (wrap) (void)SendMessage(fd, Msg::kWrapError, why);
  if (run_.truncated_messages++ == 0) Record("control.truncated", "failed", {{"bytes", got.bytes}, {"wrap_request", wrap}});
  Reject(JobOutcome::kSetupError, why);
}

void Runner::OnInitMessage(char type, const json& parsed) {
  if (type == static_cast<char>(Msg::kExpectations)) {
    OnExpectations(parsed);
  } else if (type == static_cast<char>(Msg::kInputError)) {
    run_.input_error = parsed;
    Record("input.rejected", "failed", parsed);
  } else if (type == static_cast<char>(Msg::kRefused)) {
    // The init reports the first few only; each carries an ordinal and a kind, never a name.
    if (run_.refusals_audited++ < internal::kMaxRefusalReports) {
      Record("output.refused", "denied", {{"n", parsed.value("n", 0)}, {"kind", parsed.value("kind", "")}});
    }
  } else if (type == static_cast<char>(Msg::kOutput)) {
    OnOutput(parsed);
  } else if (type == static_cast<char>(Msg::kLiveOutput)) {
    OnLiveOutput(parsed);
  } else if (type == static_cast<char>(Msg::kIndex)) {
    report_.index = OutputFile{internal::kIndexFile, report_.output_dir + "/" + internal::kIndexFile,
                               parsed.value("size", std::uint64_t{0}), parsed.value("sha256", "")};
    run_.index_entries = parsed.value("entries", std::uint64_t{0});
  } else if (type == static_cast<char>(Msg::kStageSummary)) {
    run_.stage_summary = SandboxRun::StageSummary{
        parsed.at("bytes").get<std::uint64_t>(), parsed.at("refused_total").get<std::uint64_t>(),
        parsed.at("refused").get<std::map<std::string, std::uint64_t>>(), parsed.at("deadline_hit").get<bool>()};
  }
}

// A metrics line: declared names with numbers pass, everything else is counted.
bool Runner::AcceptMetrics(std::string_view line) {
  auto clean = internal::SanitiseMetrics(line, declared_metrics_);
  if (!clean) return false;
  report_.metrics_dropped += clean->dropped;
  if (clean->values.empty()) return false;
  run_.last_metrics = std::move(clean->values);
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  json point = {{"t", now.count()}};
  point.update(*run_.last_metrics);
  const std::string text = point.dump() + "\n";
  if (run_.metrics_series.size() + text.size() > kMaxMetricsSeriesBytes) {
    run_.metrics_series_truncated = true;
  } else {
    run_.metrics_series += text;
    ++run_.metrics_series_lines;
  }
  return true;
}

// The lines stage-out re-sent are the file's last ones; the relay delivered a prefix of the
// file. Skip the longest head of the tail that the relay's last lines end with.
void Runner::AcceptMetricsTail() {
  const auto& tail = run_.metrics_tail;
  const auto& recent = run_.metrics_recent;
  std::size_t skip = 0;
  for (std::size_t j = std::min(tail.size(), recent.size()); j > 0; --j) {
    if (std::equal(tail.begin(), tail.begin() + static_cast<std::ptrdiff_t>(j), recent.end() - static_cast<std::ptrdiff_t>(j))) {
      skip = j;
      break;
    }
  }
  for (std::size_t i = skip; i < tail.size(); ++i) (void)AcceptMetrics(tail[i]);
  run_.metrics_tail.clear();
}

void Runner::OnOutput(const json& parsed) {
  const std::string file = parsed.value("file", "");
  if (!IsCordonOutputFile(file)) return;  // the init makes these names; anything else is a bug
  OutputFile out{file, report_.output_dir + "/" + file, parsed.value("size", std::uint64_t{0}),
                 parsed.value("sha256", "")};
  if (run_.outputs_audited++ < kMaxOutputsAudited) {
    Record("output.sealed", "ok", {{"file", out.file}, {"size", out.size}, {"sha256", out.sha256}});
  }
  report_.outputs.push_back(std::move(out));
}

// A live output: sealed and durable while the trainer runs. Each version is audited (the caps
// bound them: max_files counts live and final outputs together).
void Runner::OnLiveOutput(const json& parsed) {
  const std::string file = parsed.value("file", "");
  if (!IsCordonOutputFile(file)) return;
  OutputFile out{file, report_.output_dir + "/" + file, parsed.value("size", std::uint64_t{0}), parsed.value("sha256", "")};
  Record("output.sealed", "ok", {{"file", out.file}, {"size", out.size}, {"sha256", out.sha256}, {"live", true},
                                 {"version", parsed.value("version", std::uint64_t{0})}});
  report_.outputs.push_back(std::move(out));
}

// One entry for the whole stage-out, however many files the trainer left:
// the write-ahead intent of the output key wraps is closed with the counts.
void Runner::RecordStageOut() {
  if (wrap_intent_) {
    Finish(wrap_intent_, wrap_failures_ == 0 ? "ok" : "failed",
           {{"wraps", wraps_}, {"failures", wrap_failures_}, {"key_version", wrap_key_version_}});
    wrap_intent_.reset();
  }
  if (!run_.stage_summary) return;
  const SandboxRun::StageSummary& s = *run_.stage_summary;
  report_.refused = s.refused;
  Record("output.staged", "ok",
         {{"sealed", report_.outputs.size()}, {"bytes", s.bytes},
          {"refused", report_.refused}, {"refused_total", s.refused_total},
          {"deadline_hit", s.deadline_hit},
          {"index_sha256", report_.index ? json(report_.index->sha256) : json(nullptr)}});
}

// The init asks for an output data key to be wrapped: the runner checks it is
// for this job, wraps it with the spec's output key and records it.
void Runner::OnWrapRequest(int fd, std::string& message) {
  auto request = internal::DecodeWrapRequest(internal::DecodeMessage(message)->payload);
  OPENSSL_cleanse(message.data(), message.size());
  if (!request) {
    (void)SendMessage(fd, Msg::kWrapError, request.error().message);
    return;
  }
  const kms::WrapContext& context = request->context;
  // One write-ahead intent covers every wrap of this job's stage-out (closed
  // with the counts by RecordStageOut): the audit log grows O(1) per job.
  if (!wrap_intent_) {
    wrap_intent_ = Begin("key.wrap", {{"key_ref", job_.output.key.ToString()}, {"purpose", "job outputs"},
                                      {"max_files", plan_.max_files}, {"max_bytes", plan_.max_bytes}});
  }
  auto kms = managers_.get(job_.output.key.adapter);
  Result<kms::WrappedKey> wrapped = Fail(Errc::kPermissionDenied, "the request is not for this job");
  if (!wrap_intent_) wrapped = Fail(Errc::kIo, "the audit log did not record the wrap");
  else if (context.job == report_.job_id && IsCordonOutputDataset(context.dataset) && kms) {
    wrapped = (*kms)->Wrap(job_.output.key.name, request->dek, context);
  } else if (!kms) wrapped = std::unexpected(kms.error());
  ++(wrapped ? wraps_ : wrap_failures_);
  if (wrapped) wrap_key_version_ = wrapped->version;
  (void)(wrapped ? SendMessage(fd, Msg::kWrapResponse, internal::EncodeWrapResponse(*wrapped))
                 : SendMessage(fd, Msg::kWrapError, wrapped.error().message));
}

void Runner::ClassifyResult() {
  const sandbox::RunResult& r = *run_.result;
  report_.trainer_exit_code = r.exit_code;
  report_.trainer_signal = r.signal;
  if (failed_) return;
  const internal::RunContext context{g_halt != 0, g_cancel != 0, run_.overran, kStageOutDeadline,
                                     run_.input_error ? &*run_.input_error : nullptr};
  if (auto verdict = internal::ClassifyRun(r, job_.resources, context)) Reject(verdict->outcome, verdict->reason);
}

// Step 2: a quarantined version (or dataset) is refused before any key is touched.
bool Runner::CheckNotQuarantined(const specs::Input& input, const sealed::SealedInfo& info, int fd, std::string& sha,
                                 const audit::Intent& intent) {
  const std::string& dataset = info.header.dataset;
  auto why = internal::QuarantineReason(config_.state_dir, dataset, fd, info, sha);
  if (why && !*why) return true;
  const std::string reason = why ? **why : "the dataset registry cannot be read: " + why.error().message;
  Finish(intent, "failed", {{"error", why ? "quarantined" : "registry unreadable"}});
  Record("input.quarantined", "denied", {{"input", input.name}, {"dataset", dataset},
                                         {"sha256", sha.empty() ? json(nullptr) : json(sha)}});
  return Reject(why ? JobOutcome::kInputRejected : JobOutcome::kSetupError,
                "input '" + input.name + "' (" + input.path + "): " + reason);
}

// The init's typed result of an input's `expect:` checks: aggregates only.
// The audit entry carries the failed checks with their observed values.
void Runner::OnExpectations(const json& parsed) {
  const std::string input = parsed.value("input", "");
  auto result = orchestrator::ExpectationResult::FromJson(parsed.value("result", json()));
  const auto plan = std::find_if(plan_.inputs.begin(), plan_.inputs.end(), [&](const auto& i) { return i.name == input; });
  if (!result || plan == plan_.inputs.end() || run_.expectations.contains(input)) return;
  json failed = result->ToJson()["failed"];
  json details = {{"input", input}, {"dataset", plan->header.dataset}, {"rows", result->rows},
                  {"checks", result->checks}, {"failed", failed}, {"baseline_known", result->baseline_known}};
  if (result->drift) details["drift"] = {{"value", std::to_string(*result->drift)}, {"column", result->drift_column}};
  for (json& f : details["failed"]) {  // the log refuses floats: numbers as text
    for (const char* k : {"observed", "expected"}) {
      if (f[k].is_number_float()) f[k] = std::to_string(f[k].get<double>());
      if (f[k].is_object()) {
        for (auto& [name, value] : f[k].items()) {
          if (value.is_number_float()) value = std::to_string(value.get<double>());
        }
      }
    }
  }
  Record("input.expectations", result->passed ? "ok" : "failed", std::move(details));
  run_.expectations.emplace(input, std::move(*result));
}

// After a failed `expect:`: that version is quarantined (by its sealed sha256), and its
// manifest input entry says so (`quarantined`: the reason).
void Runner::QuarantineRejectedInputs() {
  for (const auto& [name, result] : run_.expectations) {
    if (result.passed) continue;
    for (json& in : inputs_json_) {
      if (in["name"] != name) continue;
      const std::string sha = in["sha256"].is_string() ? in["sha256"].get<std::string>() : "";
      const std::string dataset = in.value("dataset", "");
      const std::string reason = "job " + report_.job_id + ": " + std::to_string(result.failures.size()) +
                                 " expectation(s) failed on input '" + name + "'";
      Status done = sha.empty() ? Status(Fail(Errc::kIo, "its sha256 is unknown"))
                                : datasets::QuarantineVersion(config_.state_dir, dataset, sha, in.value("path", ""),
                                                              report_.job_id, reason);
      Record("dataset.quarantined", done ? "ok" : "failed",
             {{"dataset", dataset}, {"sha256", sha}, {"reason", reason}, {"by", "expectations"},
              {"error", done ? "" : done.error().message}});
      // In the manifest too: cordond quarantines it in its own registry for a job that ran on a
      // Slurm node, whose registry is the node's.
      if (!sha.empty()) in["quarantined"] = reason;
    }
  }
}

// Writes `bytes` into the job directory as `name`: a temp name, fsync, a rename
// that never replaces, fsync of the directory. Only the job directory's fd is used.
Result<std::string> Runner::WriteInJobDir(const std::string& name, const std::function<Status(int fd)>& fill) {
  const std::string temp = "." + name + ".partial";
  UniqueFd out(::openat(job_dir_.get(), temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640));
  if (!out) return FailErrno("create " + temp);
  Status st = fill(out.get());
  if (st && ::fsync(out.get()) != 0) st = FailErrno("fsync " + temp);
  if (st && ::renameat2(job_dir_.get(), temp.c_str(), job_dir_.get(), name.c_str(), RENAME_NOREPLACE) != 0) {
    st = FailErrno("rename " + temp);
  }
  if (st && ::fsync(job_dir_.get()) != 0) st = FailErrno("fsync the job directory");
  if (!st) {
    ::unlinkat(job_dir_.get(), temp.c_str(), 0);
    return std::unexpected(st.error());
  }
  return sealed::Sha256Fd(out.get());
}

// Seals `text` (cleansed after) into the job directory as `file` (dataset `dataset`), audited
// write-ahead as `action`; nullopt (and the job failed) when that did not work.
std::optional<OutputFile> Runner::SealBuffer(const std::string& file, const std::string& dataset, const std::string& action,
                                             std::string& text, json details) {
  auto intent = Begin(action, std::move(details));
  UniqueFd memfd(::memfd_create("cordon-runner-buffer", MFD_CLOEXEC));
  Result<std::string> written = Fail(Errc::kIo, "cannot buffer " + dataset);
  std::uint64_t plaintext = 0;
  auto kms = managers_.get(job_.output.key.adapter);
  if (!kms) written = std::unexpected(kms.error());
  if (kms && memfd && ::write(memfd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size())) {
    sealed::SealOptions o;
    o.key = job_.output.key;
    o.dataset = dataset;
    o.job = report_.job_id;
    ::lseek(memfd.get(), 0, SEEK_SET);
    written = WriteInJobDir(file, [&](int fd) -> Status {
      auto sealed = sealed::SealStream(memfd.get(), fd, **kms, o);
      if (!sealed) return std::unexpected(sealed.error());
      plaintext = sealed->plaintext_bytes;
      return {};
    });
  }
  OPENSSL_cleanse(text.data(), text.size());
  if (!written) {
    Finish(intent, "failed", {{"error", written.error().message}});
    Reject(JobOutcome::kSetupError, "sealing " + file + ": " + written.error().message);
    return std::nullopt;
  }
  Finish(intent, "ok", {{"file", file}, {"sha256", *written}});
  return OutputFile{file, report_.output_dir + "/" + file, plaintext, *written};
}

void Runner::SealTrainerLog() {
  if (!run_.result || !job_dir_) return;
  if (run_.log_truncated) run_.log += "\n[cordon: log truncated at " + std::to_string(kMaxLogBytes) + " bytes]\n";
  const json details = {{"bytes", run_.log.size()}, {"truncated", run_.log_truncated}};
  report_.trainer_log = SealBuffer(kTrainerLogFile, "trainer.log", "log.seal", run_.log, details);
}

// metrics.jsonl.sealed: the accepted metrics lines with the time the runner received each.
void Runner::SealMetricsSeries() {
  if (!run_.result || !job_dir_ || run_.metrics_series_lines == 0) return;
  if (run_.metrics_series_truncated) run_.metrics_series += "{\"cordon\":\"truncated\"}\n";
  const json details = {{"lines", run_.metrics_series_lines}, {"truncated", run_.metrics_series_truncated}};
  report_.metrics_series = SealBuffer(kMetricsSeriesFile, "metrics", "metrics.seal", run_.metrics_series, details);
}

json ScratchJson(const sandbox::RunResult& r) {
  return {{"size_bytes", r.scratch_size_bytes}, {"peak_bytes", r.scratch_peak_bytes},
          {"final_bytes", r.scratch_final_bytes}, {"full", r.scratch_full},
          {"final_by_dir", {{"/data", r.scratch_data_bytes}, {"/out", r.scratch_out_bytes}, {"/tmp", r.scratch_tmp_bytes}}}};
}

json OutputJson(const OutputFile& o) { return {{"file", o.file}, {"size", o.size}, {"sha256", o.sha256}}; }

void Runner::WriteManifest() {
  if (!job_dir_) return;
  json outputs = json::array();
  for (const OutputFile& o : report_.outputs) outputs.push_back(OutputJson(o));
  const sandbox::RunResult r = run_.result.value_or(sandbox::RunResult{});
  const uid_t uid = options_.submitter_uid.value_or(::getuid());
  const SandboxRun::StageSummary stage = run_.stage_summary.value_or(SandboxRun::StageSummary{});
  report_.manifest = {
      {"manifest_version", 2},
      {"job_id", report_.job_id},
      {"name", job_.name},
      {"spec", {{"path", options_.spec_path}, {"sha256", options_.spec_sha256}}},
      {"submitter", {{"uid", uid}, {"user", UserName(uid)}}},
      {"inputs", inputs_json_},
      {"output_dir_id", report_.output_dir_id ? json{{"dev", report_.output_dir_id->first}, {"ino", report_.output_dir_id->second}}
                                              : json(nullptr)},
      {"outputs", outputs},
      {"index", report_.index ? json{{"file", report_.index->file}, {"sha256", report_.index->sha256},
                                     {"entries", run_.index_entries}}
                              : json(nullptr)},
      {"trainer_log", report_.trainer_log ? OutputJson(*report_.trainer_log) : json(nullptr)},
      {"metrics_series", report_.metrics_series ? json{{"file", report_.metrics_series->file},
                                                       {"size", report_.metrics_series->size},
                                                       {"sha256", report_.metrics_series->sha256},
                                                       {"lines", run_.metrics_series_lines}}
                                                : json(nullptr)},
      {"refused_outputs", {{"total", stage.refused_total}, {"by_kind", report_.refused}}},
      {"stage_out", {{"max_files", plan_.max_files}, {"max_bytes", plan_.max_bytes},
                     {"deadline_s", plan_.stage_deadline.count() / 1000},
                     {"bytes", stage.bytes}, {"deadline_hit", stage.deadline_hit}}},
      {"trainer", {{"command", job_.trainer.command}, {"image", specs::ImageReference(job_.trainer)},
                   {"image_digest", oci_ ? json(oci_->manifest_digest) : json(nullptr)}, {"gpus", job_.resources.gpus},
                   {"exit_code", r.exit_code}, {"signal", r.signal}, {"sandbox_outcome", sandbox::OutcomeName(r.outcome)}}},
      {"resources", {{"wall_ms", r.wall.count()}, {"cpu_user_ms", r.cpu_user.count()},
                     {"cpu_system_ms", r.cpu_system.count()}, {"peak_memory_bytes", r.peak_memory_bytes},
                     {"memory_limit_bytes", r.memory_limit_bytes}, {"max_rss_bytes", r.max_rss_bytes},
                     {"scratch", ScratchJson(r)},
                     {"memory_limit_hit", r.memory_limit_hit}, {"pids_limit_hit", r.pids_limit_hit},
                     {"timeout_hit", r.timeout_hit}, {"seccomp_violations", r.seccomp_violations},
                     {"violations_by_syscall", r.violations_by_syscall}, {"probes", r.probes},
                     {"probes_by_syscall", r.probes_by_syscall}, {"cpus_allowed", r.cpus_allowed},
                     {"loopback_up", r.loopback_up},
                     {"cgroup_mode", r.cgroup_mode}, {"scratch_noswap", r.scratch_noswap}}},
      {"metrics", run_.last_metrics.value_or(json(nullptr))},
      {"metrics_declared", job_.metrics},
      {"metrics_dropped", report_.metrics_dropped},
      {"outcome", JobOutcomeName(failed_ ? report_.outcome : JobOutcome::kSucceeded)},
      {"reason", report_.reason},
  };
  const std::string text = report_.manifest.dump(2) + "\n";
  auto intent = Begin("manifest.write", {{"file", kManifestFile}});
  auto written = WriteInJobDir(kManifestFile, [&](int fd) -> Status { return WriteAll(fd, text); });
  if (!written) {
    Finish(intent, "failed", {{"error", written.error().message}});
    Reject(JobOutcome::kSetupError, "writing the manifest: " + written.error().message);
    return;
  }
  report_.manifest_path = report_.output_dir + "/" + kManifestFile;
  Finish(intent, "ok", {{"sha256", *written}});
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
                  {"refused_outputs", report_.refused}, {"metrics_dropped", report_.metrics_dropped},
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
    case JobOutcome::kHalted: return "halted";
  }
  return "setup_error";
}

int ExitStatusFor(JobOutcome outcome) {
  switch (outcome) {
    case JobOutcome::kSucceeded: return kExitOk;
    case JobOutcome::kTrainerFailed: return kExitTrainerFailed;
    case JobOutcome::kTimeout: return kExitTimeout;
    case JobOutcome::kMemoryLimit: return kExitMemoryLimit;
    case JobOutcome::kSandboxViolation: return kExitSandboxViolation;
    case JobOutcome::kInputRejected: return kExitInputRejected;
    case JobOutcome::kSetupError: return kExitSetupError;
    case JobOutcome::kCancelled: return kExitCancelled;
    case JobOutcome::kHalted: return kExitHalted;
  }
  return kExitSetupError;
}

void RequestCancel() { g_cancel = 1; }

Result<JobReport> RunJob(const orchestrator::Config& config, const specs::TrainingJob& job,
                         const RunOptions& options) {
  if (auto hardened = HardenKeyHoldingProcess(); !hardened) return std::unexpected(hardened.error());
  struct sigaction halt {};
  halt.sa_handler = [](int) { g_halt = 1; };
  ::sigaction(SIGUSR1, &halt, nullptr);
  auto log = audit::AuditLog::Open(orchestrator::AuditOptionsFor(config));
  if (!log) return std::unexpected(WithContext(log.error(), "audit log " + config.audit_dir));
  JobReport report;
  report.job_id = options.job_id.empty() ? NewJobId(job.name) : options.job_id;
  Runner runner(config, job, options, **log, report);
  return runner.Run();
}

}  // namespace cordon::runner
