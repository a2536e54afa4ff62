// cordon run SPEC [--json] [--show-logs] [--input-fd NAME=FD]... [--output-fd FD] [--image-fd FD]
//                [--as-submitter UID --expect-input NAME=DATASET --expect-key NAME=KEY ... --report-file FILE]
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <fcntl.h>
#include <tuple>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "run_registry.h"
#include "sealed_cli.h"
#include "cordon/file_io.h"
#include "cordon/audit/audit.h"
#include "cordon/config/audit_options.h"
#include "cordon/runner/node_open.h"
#include "cordon/runner/runner.h"
#include "cordon/sealed/sealed.h"

namespace cordon::cli {
namespace {

using nlohmann::json;

class RunCommand final : public Command {
 public:
  explicit RunCommand(CLI::App& app) {
    sub_ = app.add_subcommand("run", "run one training job in the foreground, end to end");
    sub_->add_option("spec", spec_, "job spec (YAML)")->required();
    sub_->add_flag("--json", json_, "print one JSON object: job_id, outcome, exit_code, outputs, manifest");
    sub_->add_flag("--show-logs", show_logs_,
                   "also print the trainer's stdout/stderr live (shows whatever the trainer prints, "
                   "which may include data it read)");
    sub_->add_option("--job-id", job_id_, "use this job id (cordond assigns ids; default: generated)")
        ->check([](const std::string& id) {
          const bool ok = !id.empty() && id.size() <= 128 &&
                          id.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") == std::string::npos;
          return ok ? std::string() : std::string("job ids are 1-128 of a-z 0-9 -");
        });
    sub_->add_option("--submitter-uid", submitter_uid_, "record the job as submitted by UID (for cordond)");
    sub_->add_option("--cgroup-parent", cgroup_parent_,
                     "cgroup v2: create the job's cgroup below this one (for cordond under a delegated cgroup)");
    sub_->add_option("--input-fd", input_fds_,
                     "read spec input NAME from inherited fd FD, a regular file opened as the submitter "
                     "(for cordond; repeatable); the input's path is then never opened")
        ->type_name("NAME=FD");
    sub_->add_option("--output-fd", output_fd_,
                     "inherited O_DIRECTORY fd of spec.output.path (for cordond): the job directory is "
                     "created in it and the path is never looked up")
        ->check(CLI::NonNegativeNumber);
    sub_->add_option("--image-fd", image_fd_,
                     "inherited O_DIRECTORY (or O_PATH) fd of spec.trainer.image (for cordond): what /job binds")
        ->check(CLI::NonNegativeNumber);
    sub_->add_option("--status-file", status_file_,
                     "keep the latest accepted metrics in FILE ({\"metrics\": {...}, \"t\": unix ms}, replaced "
                     "at most once a second) while the trainer runs (for cordond's `cordon status JOB`)");
    sub_->add_option("--as-submitter", as_submitter_,
                     "open every path the spec names as UID (a child that becomes UID, no symbolic link "
                     "followed), never as root: for a Slurm node, where cordond cannot pass fds. Root only; "
                     "needs --expect-input and --expect-key for every input");
    sub_->add_option("--expect-input", expect_inputs_,
                     "with --as-submitter: input NAME must be a sealed file of DATASET (what cordond approved)")
        ->type_name("NAME=DATASET");
    sub_->add_option("--expect-key", expect_keys_,
                     "with --as-submitter: input NAME must be sealed under KEY (what cordond approved)")
        ->type_name("NAME=KEY");
    sub_->add_option("--expect-spec-sha256", expect_spec_sha_, "refuse unless the spec file's sha256 is this");
    sub_->add_option("--report-file", report_file_,
                     "also write the --json report to FILE (0600, atomically), with the node's name and its "
                     "audit log's latest signed checkpoint (for cordond's Slurm executor)");
    sub_->add_flag("--die-with-parent", die_with_parent_,
                   "stop the job (SIGKILL) when the parent process dies (for cordond)");
    std::vector<std::pair<int, std::string>> statuses;  // from the outcomes themselves: never stale
    for (const runner::JobOutcome o : runner::kJobOutcomes) {
      statuses.emplace_back(runner::ExitStatusFor(o), runner::JobOutcomeName(o));
    }
    sub_->footer(
        ExitStatusLine(statuses) +
        "\n2 the spec or the config is invalid; 1 the job could not be started (audit log).\n"
        "Outputs are sealed into <spec.output.path>/<job id>/ as out-000001.sealed, ... beside\n"
        "index.sealed (their relative paths), trainer.log.sealed and manifest.json;\n"
        "`cordon outputs extract` restores the tree.");
  }

  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions& global) override {
    auto config = orchestrator::LoadConfig(orchestrator::ResolveConfigPath(global.config));
    if (!config) {
      std::cerr << "cordon: " << config.error().message << "\n";
      return kExitInvalid;
    }
    specs::ParseResult parsed = specs::LoadSpecFile(spec_);
    if (!parsed.job) return Rejected(*config, parsed);
    auto sha = sealed::Sha256File(spec_);
    runner::RunOptions options;
    options.spec_path = spec_;
    options.spec_sha256 = sha ? *sha : "";
    options.show_logs = show_logs_;
    options.logs_to_stderr = json_;  // stdout carries the JSON result only
    options.job_id = job_id_;
    if (submitter_uid_) options.submitter_uid = static_cast<uid_t>(*submitter_uid_);
    options.cgroup_parent = cgroup_parent_;
    if (!ParseFds(options)) return kExitInvalid;
    if (!report_file_.empty() && report_file_[0] != '/') {
      std::cerr << "cordon run: --report-file must be an absolute path\n";
      return kExitInvalid;
    }
    if (as_submitter_) {
      bool opened = false;
      auto refused = OpenOnNode(*config, *parsed.job, options, opened);
      if (refused) {
        Print(*refused, *config);
        return runner::ExitStatusFor(refused->outcome);
      }
      if (!opened) return kExitInvalid;
    } else if (!expect_inputs_.empty() || !expect_keys_.empty()) {
      std::cerr << "cordon run: --expect-input/--expect-key go with --as-submitter\n";
      return kExitInvalid;
    }
    if (die_with_parent_ && ::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
      std::cerr << "cordon: PR_SET_PDEATHSIG failed\n";
      return kExitFailure;
    }
    const bool tty = ::isatty(2) != 0;
    const auto start = std::chrono::steady_clock::now();
    std::string job_id;
    std::optional<RunRegistration> registration;  // where `cordon halt` finds this run; removed at the end
    options.on_started = [&](const std::string& id) {
      job_id = id;
      if (!json_) std::cerr << "cordon: job " << id << " started\n";
      if (::geteuid() != 0) return;  // `cordon halt` is root's, and so is the registry
      auto registered = RegisterRun(config->state_dir, id, options.submitter_uid.value_or(::getuid()));
      if (registered) registration.emplace(std::move(*registered));
      else std::cerr << "cordon run: warning: `cordon halt " << id << "` will not find this run: " << registered.error().message << "\n";
      PrintSweep("run", SweepStaleRuns(config->state_dir, id));  // records runs killed with SIGKILL left
    };
    std::optional<std::chrono::steady_clock::time_point> status_written;
    if (tty || !status_file_.empty()) {
      options.on_metrics = [&](const json& metrics) {
        const auto now = std::chrono::steady_clock::now();
        if (!status_file_.empty() && (!status_written || now - *status_written >= std::chrono::seconds(1))) {
          status_written = now;
          const auto t = std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::system_clock::now().time_since_epoch());
          (void)WriteFileAtomic(status_file_, json{{"metrics", metrics}, {"t", t.count()}}.dump() + "\n", 0600);
        }
        if (!tty) return;
        const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - start);
        std::string line;
        for (const auto& [k, v] : metrics.items()) line += " " + k + "=" + v.dump();
        std::cerr << "\r\033[K[" << job_id << " " << secs.count() << "s]" << line << std::flush;
      };
    }
    struct sigaction sa {};
    sa.sa_handler = [](int) { runner::RequestCancel(); };
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    auto report = runner::RunJob(*config, *parsed.job, options);
    if (tty) std::cerr << "\r\033[K";
    if (!report) {
      std::cerr << "cordon: " << report.error().message << "\n";
      return kExitFailure;
    }
    Print(*report, *config);
    return runner::ExitStatusFor(report->outcome);
  }

 private:
  int Rejected(const orchestrator::Config& config, const specs::ParseResult& parsed) {
    for (const auto& d : parsed.diagnostics) std::cerr << yaml::FormatDiagnostic(spec_, d) << "\n";
    if (auto log = audit::AuditLog::Open(orchestrator::AuditOptionsFor(config))) {
      audit::Event event;
      event.action = "job.rejected";
      event.outcome = "invalid_spec";
      event.details = {{"spec_path", spec_}, {"errors", parsed.diagnostics.size()}};
      (void)(*log)->Append(event);
    }
    return kExitInvalid;
  }

  // NAME=VALUE words, each NAME once.
  static bool ParsePairs(const char* flag, const std::vector<std::string>& args, std::map<std::string, std::string>& out) {
    for (const std::string& arg : args) {
      const std::size_t eq = arg.find('=');
      if (eq == 0 || eq == std::string::npos || eq + 1 == arg.size() ||
          !out.emplace(arg.substr(0, eq), arg.substr(eq + 1)).second) {
        std::cerr << "cordon run: " << flag << " " << arg << ": expected NAME=VALUE, each NAME once\n";
        return false;
      }
    }
    return true;
  }

  // --as-submitter: opens as the submitter and checks against the approval.
  // Returns a refusal report, or nothing with `fds` set (or unset: bad usage).
  std::optional<runner::JobReport> OpenOnNode(const orchestrator::Config& config, const specs::TrainingJob& job,
                                              runner::RunOptions& options, bool& opened_ok) {
    runner::Approval approval;
    if (!input_fds_.empty() || output_fd_ || image_fd_) {
      std::cerr << "cordon run: --as-submitter opens the paths itself; no --input-fd/--output-fd/--image-fd\n";
      return std::nullopt;
    }
    if (!ParsePairs("--expect-input", expect_inputs_, approval.datasets) ||
        !ParsePairs("--expect-key", expect_keys_, approval.keys)) {
      return std::nullopt;
    }
    runner::JobReport refused;
    refused.job_id = job_id_;
    refused.outcome = runner::JobOutcome::kSetupError;
    if (!expect_spec_sha_.empty() && options.spec_sha256 != expect_spec_sha_) {
      refused.reason = "the spec file is not the one cordond approved (sha256 differs)";
    } else {
      auto opened = runner::OpenAsSubmitter(config, job, static_cast<uid_t>(*as_submitter_), approval);
      if (opened) {
        for (auto& [name, fd] : opened->inputs) options.input_fds[name] = fd.get();
        options.output_fd = opened->output.get();
        options.image_fd = opened->image.get();
        if (!options.submitter_uid) options.submitter_uid = static_cast<uid_t>(*as_submitter_);
        // RunJob takes the fds over and closes them.
        for (auto& [name, fd] : opened->inputs) (void)fd.release();
        (void)opened->output.release();
        (void)opened->image.release();
        opened_ok = true;
        return std::nullopt;
      }
      refused.reason = opened.error().message;
      if (opened.error().kind == runner::NodeRefusal::kInput) refused.outcome = runner::JobOutcome::kInputRejected;
    }
    if (auto log = audit::AuditLog::Open(orchestrator::AuditOptionsFor(config))) {
      audit::Event event;
      event.action = "job.refused";
      event.job = job_id_;
      event.outcome = "denied";
      event.details = {{"reason", refused.reason.substr(0, 480)},
                       {"submitter_uid", *as_submitter_},
                       {"runner_outcome", runner::JobOutcomeName(refused.outcome)}};
      (void)(*log)->Append(event);
    }
    return refused;
  }

  // --input-fd NAME=FD (each name once), --output-fd, --image-fd: each an open fd.
  bool ParseFds(runner::RunOptions& options) const {
    const auto open_fd = [](int fd) { return fd >= 0 && ::fcntl(fd, F_GETFD) >= 0; };
    for (const std::string& arg : input_fds_) {
      const std::size_t eq = arg.find('=');
      int fd = -1;
      const std::string name = arg.substr(0, eq);
      const std::string number = eq == std::string::npos ? "" : arg.substr(eq + 1);
      const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), fd);
      if (name.empty() || number.empty() || ec != std::errc() || end != number.data() + number.size() || !open_fd(fd) ||
          !options.input_fds.emplace(name, fd).second) {
        std::cerr << "cordon run: --input-fd " << arg << ": expected NAME=FD, an open fd, each NAME once\n";
        return false;
      }
    }
    for (const auto& [flag, value, target] : {std::tuple{"--output-fd", output_fd_, &options.output_fd},
                                              std::tuple{"--image-fd", image_fd_, &options.image_fd}}) {
      if (!value) continue;
      if (!open_fd(*value)) {
        std::cerr << "cordon run: " << flag << " " << *value << " is not an open fd\n";
        return false;
      }
      *target = *value;
    }
    return true;
  }

  static json FileJson(const runner::OutputFile& o) {
    return {{"file", o.file}, {"size", o.size}, {"sha256", o.sha256}};
  }

  void Print(const runner::JobReport& r, const orchestrator::Config& config) const {
    json outputs = json::array();
    for (const auto& o : r.outputs) outputs.push_back(FileJson(o));
    if (json_ || !report_file_.empty()) {
      json out = {{"job_id", r.job_id}, {"outcome", runner::JobOutcomeName(r.outcome)},
                  {"exit_code", r.trainer_exit_code >= 0 ? json(r.trainer_exit_code) : json(nullptr)},
                  {"signal", r.trainer_signal}, {"reason", r.reason}, {"status", runner::ExitStatusFor(r.outcome)},
                  {"output_dir", r.output_dir},
                  {"output_dir_id", r.output_dir_id ? json{{"dev", r.output_dir_id->first}, {"ino", r.output_dir_id->second}}
                                                    : json(nullptr)},
                  {"outputs", outputs},
                  {"index", r.index ? json{{"file", r.index->file}, {"sha256", r.index->sha256}} : json(nullptr)},
                  {"trainer_log", r.trainer_log ? json{{"file", r.trainer_log->file}, {"sha256", r.trainer_log->sha256}}
                                                : json(nullptr)},
                  {"metrics_series", r.metrics_series ? json{{"file", r.metrics_series->file},
                                                             {"sha256", r.metrics_series->sha256}}
                                                      : json(nullptr)},
                  {"refused_outputs", r.refused}, {"metrics_dropped", r.metrics_dropped},
                  {"manifest", r.manifest}};
      // Every denied call by name: escapes (a sandbox_violation) and harmless probes.
      const json resources = r.manifest.is_object() ? r.manifest.value("resources", json::object()) : json::object();
      for (const char* key : {"seccomp_violations", "violations_by_syscall", "probes", "probes_by_syscall"}) {
        out[key] = resources.value(key, json(nullptr));
      }
      if (!report_file_.empty()) WriteReportFile(out, config);
      if (json_) {
        std::cout << out.dump(2) << "\n";
        return;
      }
    }
    std::cout << "job " << r.job_id << ": " << runner::JobOutcomeName(r.outcome);
    if (!r.reason.empty()) std::cout << " (" << r.reason << ")";
    std::cout << "\n";
    std::cout << "  " << r.outputs.size() << " output(s) sealed in " << r.output_dir << "\n";
    std::uint64_t refused = 0;
    for (const auto& [kind, count] : r.refused.items()) refused += count.get<std::uint64_t>();
    if (refused > 0) std::cout << "  " << refused << " output(s) refused (see the manifest)\n";
    if (r.index) std::cout << "  " << r.index->file << "  " << r.index->sha256 << "\n";
    if (r.trainer_log) std::cout << "  " << r.trainer_log->file << "  " << r.trainer_log->sha256 << "\n";
    if (!r.manifest_path.empty()) std::cout << "  manifest: " << r.manifest_path << "\n";
  }

  // The report on shared storage for cordond (docs/SCALE-OUT.md): this node's
  // name and its audit log's latest signed checkpoint, which cordond records
  // in the central log as `node.checkpoint`.
  void WriteReportFile(json report, const orchestrator::Config& config) const {
    char host[256] = {};
    (void)::gethostname(host, sizeof host - 1);
    report["node"] = host;
    if (auto log = audit::AuditLog::Open(orchestrator::AuditOptionsFor(config))) {
      if (auto checkpoint = (*log)->Checkpoint()) report["node_checkpoint"] = *checkpoint;
      else std::cerr << "cordon run: node audit checkpoint: " << checkpoint.error().message << "\n";
    }
    if (auto w = WriteFileAtomic(report_file_, report.dump() + "\n", 0600); !w) {
      std::cerr << "cordon run: --report-file: " << w.error().message << "\n";
    }
  }

  CLI::App* sub_ = nullptr;
  std::string spec_;
  bool json_ = false;
  std::string status_file_;
  bool show_logs_ = false;
  bool die_with_parent_ = false;
  std::string job_id_;
  std::optional<std::uint32_t> submitter_uid_;
  std::string cgroup_parent_;
  std::vector<std::string> input_fds_;
  std::optional<int> output_fd_, image_fd_;
  std::optional<std::uint32_t> as_submitter_;
  std::vector<std::string> expect_inputs_, expect_keys_;
  std::string expect_spec_sha_, report_file_;
};

}  // namespace

std::unique_ptr<Command> MakeRunCommand(CLI::App& app) { return std::make_unique<RunCommand>(app); }

}  // namespace cordon::cli
