#include "slurm_executor.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/wait.h>

#include <cmath>
#include <sstream>

#include "cordon/file_io.h"
#include "cordon/unique_fd.h"

namespace cordon::daemon {
namespace {

namespace asio = boost::asio;

constexpr std::uint64_t kRunnerOverhead = 256ull << 20;  // cordon run + the sandbox's init, beside the trainer
constexpr std::uint64_t kMaxReportBytes = 4 << 20;
constexpr int kMissesBeforeEnd = 2;  // polls without report after Slurm stopped running the job
constexpr auto kCancelEscalation = std::chrono::seconds(30);
constexpr auto kHaltResend = std::chrono::seconds(5);

// A word for /bin/sh: single-quoted, ' as '\''.
std::string Quote(const std::string& s) {
  std::string out = "'";
  for (const char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

bool FinalSlurmState(const std::string& s) {
  return s != "PENDING" && s != "RUNNING" && s != "CONFIGURING" && s != "COMPLETING" && s != "SUSPENDED" &&
         s != "REQUEUED" && s != "RESIZING" && s != "SIGNALING" && s != "STAGE_OUT" && s != "STOPPED" &&
         s != "REQUEUE_HOLD" && s != "REQUEUE_FED" && s != "RESV_DEL_HOLD" && !s.empty();
}

}  // namespace

SlurmExecutor::SlurmExecutor(asio::io_context& io, const orchestrator::Config& config, Callbacks callbacks)
    : io_(io),
      config_(config),
      callbacks_(std::move(callbacks)),
      children_(io, [this](RunnerExit exit) { OnChildExit(std::move(exit)); }),
      poll_timer_(io) {}

std::vector<std::string> SlurmExecutor::SbatchArgs(const SlurmJobRequest& r) const {
  const std::uint64_t mem_mib = (r.memory_bytes + r.scratch_bytes + kRunnerOverhead + (1 << 20) - 1) >> 20;
  const auto cpus = static_cast<std::uint64_t>(std::max(1.0, std::ceil(r.cpus)));
  const auto seconds = r.timeout.count() / 1000 + config_.slurm.time_grace_s;
  const auto minutes = std::max<std::int64_t>(1, (seconds + 59) / 60);
  std::vector<std::string> argv = {"sbatch", "--parsable", "--job-name=cordon-" + r.job_id,
                                   // Nothing the job prints reaches Slurm's files.
                                   "--output=/dev/null", "--error=/dev/null", "--input=/dev/null",
                                   // A requeued job would run twice; cordond decides what runs.
                                   "--no-requeue", "--chdir=/", "--export=NONE", "--nodes=1", "--ntasks=1",
                                   "--mem=" + std::to_string(mem_mib) + "M",
                                   "--cpus-per-task=" + std::to_string(cpus), "--time=" + std::to_string(minutes)};
  if (!config_.slurm.partition.empty()) argv.push_back("--partition=" + config_.slurm.partition);
  if (!config_.slurm.account.empty()) argv.push_back("--account=" + config_.slurm.account);
  for (const auto& a : config_.slurm.sbatch_args) argv.push_back(a);
  argv.push_back(JobDir(r.job_id) + "/job.sh");
  return argv;
}

std::string SlurmExecutor::BatchScript(const SlurmJobRequest& r) const {
  const std::string dir = JobDir(r.job_id);
  const std::string node_config = config_.slurm.node_config.empty() ? config_.path : config_.slurm.node_config;
  std::vector<std::string> words = {config_.slurm.cordon, "--config", node_config, "run",
                                    "--job-id", r.job_id, "--submitter-uid", std::to_string(r.submitter),
                                    "--as-submitter", std::to_string(r.submitter),
                                    "--expect-spec-sha256", r.spec_sha256, "--report-file", dir + "/report.json"};
  for (const auto& [name, dataset] : r.datasets) words.insert(words.end(), {"--expect-input", name + "=" + dataset});
  for (const auto& [name, key] : r.keys) words.insert(words.end(), {"--expect-key", name + "=" + key});
  words.push_back(dir + "/spec.yaml");
  std::string script = "#!/bin/sh\n# Cordon job " + r.job_id +
                       ", written by cordond (docs/SCALE-OUT.md). No secret is in this file.\n"
                       "PATH=/usr/sbin:/usr/bin:/sbin:/bin\nexport PATH\nexec";
  for (const auto& w : words) script += " " + Quote(w);
  script += " >/dev/null 2>>" + Quote(dir + "/runner.err") + "\n";
  return script;
}

Status SlurmExecutor::Submit(const SlurmJobRequest& r) {
  if (auto made = MakeDir(config_.slurm.shared_dir, 0700); !made) return std::unexpected(made.error());
  const std::string dir = JobDir(r.job_id);
  if (auto made = MakeDir(dir, 0700); !made) return std::unexpected(made.error());
  ::unlink((dir + "/report.json").c_str());  // never a stale report
  if (auto w = WriteFileAtomic(dir + "/spec.yaml", r.spec_text, 0600); !w) return w;
  if (auto w = WriteFileAtomic(dir + "/job.sh", BatchScript(r), 0700); !w) return w;
  jobs_[r.job_id] = Tracked{};
  const std::string job_id = r.job_id;
  Run("sbatch:" + job_id, SbatchArgs(r), [this, job_id, dir](RunnerExit exit) {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return;
    std::string out = exit.report;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    // --parsable: "<id>" or "<id>;<cluster>".
    const std::string id = out.substr(0, out.find(';'));
    const bool ok = WIFEXITED(exit.wait_status) && WEXITSTATUS(exit.wait_status) == 0 && !id.empty() &&
                    id.find_first_not_of("0123456789") == std::string::npos;
    if (!ok) {
      auto err = ReadFileLimited(dir + "/sbatch.err", 2048);
      std::string why = err && !err->empty() ? *err : "sbatch exited with status " + std::to_string(exit.wait_status);
      while (!why.empty() && why.back() == '\n') why.pop_back();
      jobs_.erase(it);
      callbacks_.submitted(job_id, Fail(Errc::kIo, "sbatch: " + why));
      return;
    }
    it->second.slurm_job_id = id;
    it->second.state = "PENDING";
    callbacks_.submitted(job_id, id);
    if (it->second.cancel_requested) Scancel(job_id, {});
    ArmPoll();
  }, dir + "/sbatch.err");
  return {};
}

void SlurmExecutor::Adopt(const std::string& job_id, const std::string& slurm_job_id) {
  Tracked t;
  t.slurm_job_id = slurm_job_id;
  jobs_[job_id] = t;
  ArmPoll();
}

void SlurmExecutor::Cancel(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  it->second.cancel_requested = true;
  if (it->second.slurm_job_id.empty()) return;  // sbatch still running: cancelled when it answers
  // A running job: its runner (the batch shell exec'd it) gets SIGTERM and
  // ends as `cancelled` with its report; then the whole job, if still there.
  if (it->second.state != "RUNNING") return Scancel(job_id, {});
  Scancel(job_id, {"--batch", "--signal=TERM"});
  ScancelLater(job_id, kCancelEscalation, {});
}

void SlurmExecutor::Halt(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  it->second.cancel_requested = true;
  if (it->second.slurm_job_id.empty()) return;  // sbatch still running: cancelled when it answers
  // Both, whatever squeue last said: each is a no-op in the other state, so a job that starts
  // between the two is still stopped, and never by SIGTERM (which would seal its outputs).
  Scancel(job_id, {"--state=PENDING"});
  Scancel(job_id, {"--batch", "--signal=USR1"});
  ScancelLater(job_id, kHaltResend, {"--batch", "--signal=USR1"});
  ScancelLater(job_id, kCancelEscalation, {});
}

void SlurmExecutor::ScancelLater(const std::string& job_id, std::chrono::seconds delay, std::vector<std::string> options) {
  auto timer = std::make_shared<asio::steady_timer>(io_, delay);
  timer->async_wait([this, job_id, timer, options = std::move(options)](boost::system::error_code ec) {
    if (!ec && jobs_.contains(job_id)) Scancel(job_id, options);
  });
}

void SlurmExecutor::Scancel(const std::string& job_id, std::vector<std::string> options) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.slurm_job_id.empty()) return;
  std::vector<std::string> argv = {"scancel"};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back(it->second.slurm_job_id);
  Run("scancel:" + std::to_string(++counter_), std::move(argv), [](RunnerExit) {});
}

std::vector<std::string> SlurmExecutor::JobIds() const {
  std::vector<std::string> ids;
  for (const auto& [id, t] : jobs_) ids.push_back(id);
  return ids;
}

void SlurmExecutor::Stop() {
  stopped_ = true;
  poll_timer_.cancel();
}

void SlurmExecutor::Run(const std::string& key, std::vector<std::string> argv, std::function<void(RunnerExit)> done,
                        const std::string& stderr_path) {
  SpawnOptions spec;
  spec.argv = std::move(argv);
  const std::string program = spec.argv[0];
  // Slurm's clients from the usual places (cordond's PATH may be minimal under systemd).
  for (const char* dir : {"/usr/bin/", "/usr/local/bin/", "/bin/"}) {
    if (::access((dir + program).c_str(), X_OK) == 0) {
      spec.argv[0] = dir + program;
      break;
    }
  }
  spec.stderr_path = stderr_path;
  pending_[key] = std::move(done);
  if (auto pid = children_.Start(key, std::move(spec)); !pid) {
    auto it = pending_.find(key);
    auto cb = std::move(it->second);
    pending_.erase(it);
    cb(RunnerExit{key, "", 127 << 8, false});
  }
}

void SlurmExecutor::OnChildExit(RunnerExit exit) {
  auto it = pending_.find(exit.job_id);
  if (it == pending_.end()) return;
  auto cb = std::move(it->second);
  pending_.erase(it);
  cb(std::move(exit));
}

void SlurmExecutor::ArmPoll() {
  if (poll_armed_ || stopped_ || jobs_.empty()) return;
  poll_armed_ = true;
  poll_timer_.expires_after(std::chrono::milliseconds(config_.slurm.poll_interval_ms));
  poll_timer_.async_wait([this](boost::system::error_code ec) {
    poll_armed_ = false;
    if (!ec) Poll();
  });
}

// A report on the shared storage ends the job (the runner wrote it atomically, last).
bool SlurmExecutor::TryReport(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return false;
  auto text = ReadFileLimited(JobDir(job_id) + "/report.json", kMaxReportBytes);
  if (!text) return false;
  SlurmEnd end{job_id, it->second.slurm_job_id, std::move(*text), it->second.state, ""};
  jobs_.erase(it);
  callbacks_.ended(std::move(end));
  RemoveJobDir(job_id);
  return true;
}

// Once the report is recorded the job's folder on the shared storage has served its purpose:
// it is removed (only the files cordond and the runner put there, never following a link), so
// shared_dir does not grow with every job. A job that ends without a report keeps its folder:
// runner.err and sbatch.err say why.
void SlurmExecutor::RemoveJobDir(const std::string& job_id) const {
  const std::string dir = JobDir(job_id);
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return;
  for (const char* name : {"spec.yaml", "job.sh", "report.json", "runner.err", "sbatch.err"}) {
    ::unlinkat(fd.get(), name, 0);
  }
  ::rmdir(dir.c_str());  // fails, harmlessly, if anything else is inside
}

void SlurmExecutor::End(const std::string& job_id, std::string why) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  SlurmEnd end{job_id, it->second.slurm_job_id, "", it->second.state, std::move(why)};
  jobs_.erase(it);
  callbacks_.ended(std::move(end));
}

void SlurmExecutor::Poll() {
  for (const auto& id : JobIds()) {
    if (!jobs_.at(id).slurm_job_id.empty()) TryReport(id);
  }
  if (!squeue_running_ && !jobs_.empty()) {
    squeue_running_ = true;
    // Every job of ours the controller remembers, finished ones included (MinJobAge).
    Run("squeue:" + std::to_string(++counter_),
        {"squeue", "--noheader", "--me", "--states=all", "--format=%i|%j|%T|%N"}, [this](RunnerExit exit) {
          squeue_running_ = false;
          OnSqueue(exit.report, WIFEXITED(exit.wait_status) && WEXITSTATUS(exit.wait_status) == 0);
        });
  }
  ArmPoll();
}

void SlurmExecutor::OnSqueue(const std::string& text, bool ok) {
  if (!ok) return;  // the controller is unreachable: nothing is concluded; the next poll asks again
  struct Row {
    std::string id, state, node;
  };
  std::map<std::string, Row> by_name;  // cordon-<job id> -> the newest row
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<std::string> f;
    std::size_t start = 0;
    for (std::size_t bar; (bar = line.find('|', start)) != std::string::npos; start = bar + 1) f.push_back(line.substr(start, bar - start));
    f.push_back(line.substr(start));
    if (f.size() != 4 || f[1].rfind("cordon-", 0) != 0) continue;
    Row& row = by_name[f[1].substr(7)];
    if (row.id.empty() || std::stoull("0" + f[0]) > std::stoull("0" + row.id)) row = {f[0], f[2], f[3]};
  }
  for (const auto& job_id : JobIds()) {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) continue;
    Tracked& t = it->second;
    const auto row = by_name.find(job_id);
    if (t.slurm_job_id.empty()) {
      if (pending_.contains("sbatch:" + job_id)) continue;  // sbatch has not answered yet
      if (row == by_name.end()) {
        End(job_id, "cordond stopped while submitting it to Slurm, and Slurm has no job cordon-" + job_id);
        continue;
      }
      t.slurm_job_id = row->second.id;  // adopted by name after a crash
      callbacks_.submitted(job_id, t.slurm_job_id);
    }
    if (row != by_name.end() && row->second.id == t.slurm_job_id) {
      t.state = row->second.state;
      if (!t.placed && t.state == "RUNNING" && !row->second.node.empty() && row->second.node != "(null)") {
        t.placed = true;
        callbacks_.placed(job_id, row->second.node);
      }
      if (!FinalSlurmState(t.state)) {
        t.misses = 0;
        continue;
      }
    }
    // Slurm no longer runs it: the report decides; give shared storage two polls.
    if (TryReport(job_id)) continue;
    if (++t.misses < kMissesBeforeEnd) continue;
    if (row == by_name.end() && !t.sacct_asked) {
      // Forgotten by the controller (MinJobAge): accounting may know how it ended.
      t.sacct_asked = true;
      const std::string id = t.slurm_job_id;
      Run("sacct:" + std::to_string(++counter_), {"sacct", "--noheader", "--parsable2", "--allocations", "--jobs", id,
                                                  "--format=State"},
          [this, job_id, id](RunnerExit exit) {
            auto j = jobs_.find(job_id);
            if (j == jobs_.end() || TryReport(job_id)) return;
            std::string state = exit.report.substr(0, exit.report.find_first_of(" \n"));
            if (WIFEXITED(exit.wait_status) && WEXITSTATUS(exit.wait_status) == 0 && !state.empty()) {
              j->second.state = state;
              return End(job_id, "Slurm job " + id + " ended " + state + " (sacct) without a Cordon report");
            }
            End(job_id, "Slurm job " + id + " is gone from Slurm (not in squeue; no accounting) without a Cordon report");
          });
      continue;
    }
    if (row != by_name.end()) {
      End(job_id, "Slurm job " + t.slurm_job_id + " ended " + t.state + " without a Cordon report");
    }
  }
}

}  // namespace cordon::daemon
