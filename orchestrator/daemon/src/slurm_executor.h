// cordond's Slurm executor (daemon.executor: slurm; docs/SCALE-OUT.md): each
// Cordon job becomes one Slurm batch job named cordon-<job id> that runs
// `cordon run --as-submitter` on a node. Everything here goes through Slurm's
// own clients (sbatch, scancel, squeue, sacct) run as child processes watched
// by the event loop (supervisor.h), so nothing blocks it.
//
//   shared_dir/<job id>/   (on storage every node sees at the same path; 0700 root)
//     spec.yaml            the spec text cordond accepted (its sha256 is checked on the node)
//     job.sh               the batch script: one exec of `cordon run`, no secret in it
//     report.json          written by the runner (atomically) when the job ends
//     runner.err           the runner's stderr (Cordon's own diagnostics)
//
// Slurm's --output/--error are /dev/null: nothing the trainer prints reaches
// Slurm's files (it is sealed by the runner, as on a local job).
//
// A job ends when its report appears, or when Slurm no longer runs it and no
// report followed within two polls (`Ended` with `report` empty and the last
// state Slurm gave). `squeue --states=all` answers for jobs the controller
// still remembers (MinJobAge); for one it has forgotten, `sacct` answers where
// accounting is configured.
#pragma once

#include <sys/types.h>

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it
#include <boost/asio.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cordon/error.h"
#include "cordon/config/config.h"
#include "supervisor.h"

namespace cordon::daemon {

struct SlurmJobRequest {
  std::string job_id;
  uid_t submitter = 0;
  std::string spec_text;
  std::string spec_sha256;
  std::uint64_t memory_bytes = 0, scratch_bytes = 0;
  double cpus = 1;
  std::chrono::milliseconds timeout{0};
  // What cordond's policy approved, per input name: its dataset and key.
  std::vector<std::pair<std::string, std::string>> datasets, keys;
};

struct SlurmEnd {
  std::string job_id;
  std::string slurm_job_id;
  std::string report;       // report.json's text; empty: the job ended without one
  std::string slurm_state;  // the last state Slurm gave (COMPLETED, CANCELLED, ...; "" unknown)
  std::string why;          // for a job without report: what was seen
};

class SlurmExecutor final {
 public:
  struct Callbacks {
    // sbatch answered: the Slurm job id, or why it failed.
    std::function<void(const std::string& job_id, Result<std::string> slurm_job_id)> submitted;
    // Slurm placed the job on `node` (first seen RUNNING).
    std::function<void(const std::string& job_id, const std::string& node)> placed;
    std::function<void(SlurmEnd)> ended;
  };
  SlurmExecutor(boost::asio::io_context& io, const orchestrator::Config& config, Callbacks callbacks);

  // The sbatch argv and the batch script for a job (pure; tested on their own).
  [[nodiscard]] std::vector<std::string> SbatchArgs(const SlurmJobRequest& request) const;
  [[nodiscard]] std::string BatchScript(const SlurmJobRequest& request) const;
  [[nodiscard]] std::string JobDir(const std::string& job_id) const { return config_.slurm.shared_dir + "/" + job_id; }

  // Writes the job's files and starts sbatch; tracked from now on.
  [[nodiscard]] Status Submit(const SlurmJobRequest& request);
  // A job a previous cordond dispatched: tracked again. `slurm_job_id` "" when
  // that cordond died before sbatch answered: found by its name, or ended.
  void Adopt(const std::string& job_id, const std::string& slurm_job_id);
  // `cordon cancel`: scancel (a running job's runner gets SIGTERM first and
  // seals what it has; the whole job is killed if it is still there 30 s later).
  void Cancel(const std::string& job_id);
  // `cordon halt`: a job still pending in Slurm is cancelled there (`scancel --state=PENDING`,
  // a no-op once it runs); a running job's runner gets SIGUSR1 (`scancel --batch
  // --signal=USR1`: the batch step only, which is the runner, never the sandbox's processes),
  // kills its sandbox and reports `halted`. The signal is sent again after 5 s (a job that
  // had just started), and the whole job is killed if it is still there 30 s later.
  void Halt(const std::string& job_id);

  [[nodiscard]] std::size_t size() const { return jobs_.size(); }
  [[nodiscard]] std::vector<std::string> JobIds() const;
  void Stop();  // no more polling (cordond stopping; the jobs stay in Slurm)

 private:
  struct Tracked {
    std::string slurm_job_id;
    std::string state;  // PENDING, RUNNING, ... as squeue last said
    bool placed = false;
    bool cancel_requested = false;
    int misses = 0;     // polls since Slurm stopped running it without a report
    bool sacct_asked = false;
  };
  void Run(const std::string& key, std::vector<std::string> argv, std::function<void(RunnerExit)> done,
           const std::string& stderr_path = "/dev/null");
  void OnChildExit(RunnerExit exit);
  void Poll();
  void ArmPoll();
  void OnSqueue(const std::string& text, bool ok);
  bool TryReport(const std::string& job_id);
  void RemoveJobDir(const std::string& job_id) const;
  void End(const std::string& job_id, std::string why);
  void Scancel(const std::string& job_id, std::vector<std::string> options);
  void ScancelLater(const std::string& job_id, std::chrono::seconds delay, std::vector<std::string> options);

  boost::asio::io_context& io_;
  const orchestrator::Config& config_;
  Callbacks callbacks_;
  Supervisor children_;
  std::map<std::string, std::function<void(RunnerExit)>> pending_;
  std::map<std::string, Tracked> jobs_;
  boost::asio::steady_timer poll_timer_;
  bool poll_armed_ = false;
  bool squeue_running_ = false;
  bool stopped_ = false;
  std::uint64_t counter_ = 0;
};

}  // namespace cordon::daemon
