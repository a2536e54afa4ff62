// Incident response, one command per step (docs/INCIDENT-RESPONSE.md):
//   cordon quarantine DATASET[@VERSION] --reason TEXT
//   cordon release DATASET[@VERSION]
//   cordon restore DATASET --to VERSION [--install PATH]
//   cordon halt JOB --reason TEXT
//   cordon incident report --job JOB | --dataset NAME [--json]
// Root runs them directly; an admin named in policy.yaml through cordond.
// Each step is audited (write-ahead) with the caller's identity.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <set>
#include <thread>

#include "cordon/file_io.h"
#include "cordon/audit/verify.h"
#include "cordon/daemon/protocol.h"
#include "cordon/process.h"
#include "cordon/unique_fd.h"
#include "incident_cli.h"
#include "daemon_client.h"
#include "run_registry.h"

namespace cordon::cli {
namespace {

using nlohmann::json;

int Complain(const std::string& command, const Error& e) {
  std::cerr << "cordon " << command << ": " << e.message << "\n";
  switch (e.code) {
    case Errc::kNotFound: return kExitNotFound;
    case Errc::kInvalidArgument: return kExitInvalid;
    case Errc::kPermissionDenied: return kExitDenied;
    default: return kExitFailure;
  }
}

// Marks a version (or, with version "", the whole dataset) quarantined or released.
Result<std::string> SetQuarantine(IncidentContext& ctx, const DatasetRef& ref, bool on, const std::string& reason,
                                  const std::string& job = "") {
  std::string id;
  auto updated = ctx.registry->Update(ref.name, [&](datasets::Dataset& d) -> Status {
    if (ref.version.empty()) {
      if (!on && !d.quarantined && d.versions.empty()) return Fail(Errc::kNotFound, "no dataset '" + ref.name + "'");
      d.quarantined = on;
      d.quarantine_reason = on ? reason : "";
    } else {
      auto v = d.Resolve(ref.version);
      if (!v && on && v.error().code == Errc::kNotFound && ref.version.size() == 7 + 64 && ref.version.starts_with("sha256:")) {
        datasets::Version unknown;  // never registered (sealed elsewhere): known from now on by its hash
        unknown.id = ref.version;
        d.versions.push_back(unknown);
        v = &d.versions.back();
      }
      if (!v) return std::unexpected(v.error());
      (*v)->quarantined = on;
      (*v)->quarantine_reason = on ? reason : "";
      id = (*v)->id;
      if (on && d.current == id) d.current.clear();
      if (on && d.last_good == id) d.last_good.clear();
    }
    d.events.push_back({std::time(nullptr), on ? "quarantined" : "released", id, ctx.caller, reason, job});
    return {};
  });
  if (!updated) return std::unexpected(updated.error());
  return id;
}

class QuarantineCommand final : public Command {
 public:
  QuarantineCommand(CLI::App& app, bool on) : on_(on) {
    sub_ = app.add_subcommand(on ? "quarantine" : "release",
                              on ? "refuse every job that names DATASET[@VERSION] until it is released"
                                 : "lift a quarantine of DATASET[@VERSION]");
    sub_->add_option("target", target_, "DATASET or DATASET@VERSION (sha256, or 12+ hex digits of it)")->required();
    auto* reason = sub_->add_option("--reason", reason_, "why (recorded in the registry and the audit log)");
    if (on) reason->required();
    AddCallerOption(sub_, caller_uid_);
    sub_->footer(on ? "A job naming a quarantined version fails at step 2 (input_rejected) before any key is used.\n"
                      "Without @VERSION every version of the dataset is refused."
                    : "");
  }
  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions& global) override {
    const std::string name = on_ ? "quarantine" : "release";
    Opened opened = OpenIncidentContext(global, name, caller_uid_);
    if (opened.forward) {
      std::vector<std::string> argv = {name, target_};
      if (!reason_.empty()) argv.insert(argv.end(), {"--reason", reason_});
      return ForwardToDaemon(global, argv);
    }
    if (!opened.context) return opened.exit_status;
    IncidentContext& ctx = *opened.context;
    const DatasetRef ref = ParseDatasetRef(target_);
    if (auto ok = sealed::CheckDatasetName(ref.name); !ok) return Complain(name, ok.error());
    auto intent = ctx.Begin(on_ ? "dataset.quarantine" : "dataset.release",
                            {{"dataset", ref.name}, {"version", ref.version}, {"reason", reason_}});
    if (!intent) return kExitFailure;
    auto id = SetQuarantine(ctx, ref, on_, reason_);
    ctx.Done(intent, id.has_value(), id ? json{{"version", *id}} : json{{"error", id.error().message}});
    if (!id) return Complain(name, id.error());
    std::cout << "dataset " << ref.name << (id->empty() ? " (every version)" : " version " + *id) << ": "
              << (on_ ? "quarantined" : "released") << "\n";
    return kExitOk;
  }

 private:
  bool on_;
  CLI::App* sub_ = nullptr;
  std::string target_, reason_;
  std::optional<uid_t> caller_uid_;
};

// Copies the verified file open at `in` to `dest` atomically (temp beside it,
// fsync, rename over, fsync the directory) and checks the copy's hash.
Status InstallCopy(int in, const std::string& dest, const std::string& sha256) {
  const std::string temp = dest + ".cordon-restore";
  ::unlink(temp.c_str());
  UniqueFd out(::open(temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!out) return FailErrno("create " + temp);
  struct stat st {};
  Status ok = ::fstat(in, &st) == 0 ? Status{} : Status(FailErrno("stat"));
  for (off_t offset = 0; ok && offset < st.st_size;) {
    const ssize_t n = ::copy_file_range(in, &offset, out.get(), nullptr, static_cast<std::size_t>(st.st_size - offset), 0);
    if (n <= 0) ok = FailErrno("copy to " + temp);
  }
  if (ok) {
    auto copied = sealed::Sha256Fd(out.get());
    if (!copied || *copied != sha256) ok = Fail(Errc::kIntegrity, "the copy at " + temp + " does not hash to " + sha256);
  }
  if (ok && (::fchmod(out.get(), st.st_mode & 07777) != 0 || ::fsync(out.get()) != 0)) ok = FailErrno("fsync " + temp);
  if (ok && ::rename(temp.c_str(), dest.c_str()) != 0) ok = FailErrno("rename over " + dest);
  if (!ok) {
    ::unlink(temp.c_str());
    return ok;
  }
  return FsyncDir(std::filesystem::path(dest).parent_path().string());
}

class RestoreCommand final : public Command {
 public:
  explicit RestoreCommand(CLI::App& app) {
    sub_ = app.add_subcommand("restore", "make a verified earlier version of DATASET the current one");
    sub_->add_option("dataset", name_, "dataset name")->required();
    sub_->add_option("--to", version_, "the version (sha256, or 12+ hex digits of it)")->required();
    sub_->add_option("--install", install_, "also copy that version's verified file over PATH (atomically)");
    AddCallerOption(sub_, caller_uid_);
    sub_->footer("The version's file is hashed first and must be the registered version; a quarantined\n"
                 "version is refused. The last line on stdout is its sha256 (the pin for a spec).");
  }
  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions& global) override {
    Opened opened = OpenIncidentContext(global, "restore", caller_uid_);
    if (opened.forward) {
      std::vector<std::string> argv = {"restore", name_, "--to", version_};
      if (!install_.empty()) argv.insert(argv.end(), {"--install", install_});
      return ForwardToDaemon(global, argv);
    }
    if (!opened.context) return opened.exit_status;
    IncidentContext& ctx = *opened.context;
    auto intent = ctx.Begin("dataset.restore", {{"dataset", name_}, {"version", version_}, {"install", install_}});
    if (!intent) return kExitFailure;
    std::string id, path;
    auto updated = ctx.registry->Update(name_, [&](datasets::Dataset& d) -> Status {
      auto v = d.Resolve(version_);
      if (!v) return std::unexpected(v.error());
      if (d.IsQuarantined(**v)) return Fail(Errc::kPermissionDenied, "version " + (*v)->id + " is quarantined");
      id = (*v)->id;
      path = (*v)->path;
      UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd) return FailErrno("open " + path);
      auto sha = sealed::Sha256Fd(fd.get());
      if (!sha) return std::unexpected(sha.error());
      if (!(*v)->Matches(*sha)) {
        return Fail(Errc::kIntegrity, path + " hashes to " + *sha + ", not to version " + id + ": not restored");
      }
      if (!install_.empty()) {
        if (auto ok = InstallCopy(fd.get(), install_, *sha); !ok) return ok;
      }
      d.current = id;
      d.events.push_back({std::time(nullptr), "restored", id, ctx.caller, install_.empty() ? "" : "installed at " + install_, ""});
      return {};
    });
    ctx.Done(intent, updated.has_value(), updated ? json{{"version", id}, {"path", path}} : json{{"error", updated.error().message}});
    if (!updated) return Complain("restore", updated.error());
    std::cerr << "dataset " << name_ << ": current version is " << id << " (" << (install_.empty() ? path : install_) << ")\n";
    std::cout << id << "\n";
    return kExitOk;
  }

 private:
  CLI::App* sub_ = nullptr;
  std::string name_, version_, install_;
  std::optional<uid_t> caller_uid_;
};

// ---------------------------------------------------------------- halt

// What the audit log says job `job` read: (dataset, sha256 or "").
std::vector<std::pair<std::string, std::string>> JobInputs(const IncidentContext& ctx, const std::string& job) {
  std::map<std::string, std::pair<std::string, std::string>> by_input;  // input name -> (dataset, sha)
  auto entries = audit::ReadEntries(ctx.config.audit_dir, {job, std::nullopt, std::string("input.*")});
  if (!entries) return {};
  std::map<std::uint64_t, std::string> input_of_intent;  // an outcome names its input only through intent_seq
  for (const json& e : *entries) {
    const json d = e.value("details", json::object());
    std::string input = d.contains("input") && d["input"].is_string() ? d["input"].get<std::string>() : "";
    if (!input.empty()) input_of_intent[e.value("seq", std::uint64_t{0})] = input;
    if (input.empty() && d.contains("intent_seq") && d["intent_seq"].is_number_unsigned()) {
      input = input_of_intent[d["intent_seq"].get<std::uint64_t>()];
    }
    if (input.empty()) continue;
    auto& slot = by_input[input];
    if (d.contains("dataset") && d["dataset"].is_string()) slot.first = d["dataset"].get<std::string>();
    if (d.contains("sha256") && d["sha256"].is_string()) slot.second = d["sha256"].get<std::string>();
  }
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [input, facts] : by_input) {
    if (!facts.first.empty()) out.push_back(facts);
  }
  return out;
}

// cordond's record of `job` (read only: cordond owns it), or nullopt when it has none.
std::optional<json> StoredJob(const orchestrator::Config& config, const std::string& job) {
  auto text = ReadFileLimited(config.state_dir + "/jobs/" + job + "/job.json", 1 << 20);
  if (!text) return std::nullopt;
  json r = json::parse(*text, nullptr, false);
  if (!r.is_object() || !r.contains("state") || !r["state"].is_string()) return std::nullopt;
  return r;
}

bool IsFinalState(const json& record) {
  const std::string state = record.value("state", "");
  return state != "queued" && state != "running";
}

// How a halt went: whether the job was running, whether it ended in time, and its outcome.
struct Stopped {
  bool was_running = false;
  bool ended = true;
  std::string outcome;
  std::string error;
};

// A job of cordond's, whatever its executor: cordond stops it (op halt) and records the end;
// we wait for its record to be final.
Stopped HaltThroughDaemon(const orchestrator::Config& config, const std::string& job, std::chrono::seconds wait) {
  std::optional<json> record = StoredJob(config, job);
  Stopped out;
  if (!record || IsFinalState(*record)) {
    out.outcome = record ? record->value("outcome", "") : "";
    return out;
  }
  out.was_running = true;
  auto fd = ConnectToDaemon(config.daemon.socket);
  protocol::Request request;
  request.op = protocol::Op::kHalt;
  request.job = job;
  auto reply = fd ? AskDaemon(fd->get(), request) : Result<protocol::Reply>(std::unexpected(fd.error()));
  if (!reply || !reply->ok) {
    out.ended = false;
    out.error = reply ? "cordond: " + reply->error : reply.error().message;
    return out;
  }
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while ((record = StoredJob(config, job)) && !IsFinalState(*record) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  out.ended = record && IsFinalState(*record);
  out.outcome = record ? record->value("outcome", "") : "";
  return out;
}

// A `cordon run` cordond does not know (started by hand): SIGUSR1 through a pidfd of the
// registered process, then wait for it to exit.
Stopped HaltRun(const std::string& state_dir, const RunRecord& run, std::chrono::seconds wait) {
  Stopped out;
  UniqueFd pidfd = OpenRunProcess(run);
  if (!pidfd) {
    RemoveStaleRun(state_dir, run);
    return out;
  }
  out.was_running = true;
  if (auto sent = PidfdSignal(pidfd.get(), SIGUSR1); !sent) {  // it kills its sandbox, seals the log, finishes
    out.ended = false;
    out.error = sent.error().message;
    return out;
  }
  pollfd p{pidfd.get(), POLLIN, 0};
  const int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(wait).count());
  out.ended = RetryEintr([&] { return ::poll(&p, 1, ms); }) == 1;
  if (out.ended) out.outcome = "halted";
  return out;
}

// Every input the job read, by (dataset, sha256): from the audit log and from cordond's
// record (what its runner reported, else what the policy approved). A dataset whose version
// is known is not also quarantined whole.
std::set<std::pair<std::string, std::string>> InputsToQuarantine(const IncidentContext& ctx, const std::string& job) {
  std::set<std::pair<std::string, std::string>> inputs;
  for (const auto& input : JobInputs(ctx, job)) inputs.insert(input);
  if (const auto record = StoredJob(ctx.config, job); record && record->contains("inputs") && (*record)["inputs"].is_array()) {
    for (const json& in : (*record)["inputs"]) {
      if (!in.is_object() || !in.contains("dataset") || !in["dataset"].is_string()) continue;
      inputs.emplace(in["dataset"].get<std::string>(), in.contains("sha256") && in["sha256"].is_string() ? in["sha256"].get<std::string>() : "");
    }
  }
  std::set<std::string> versioned;
  for (const auto& [dataset, sha] : inputs) {
    if (!sha.empty()) versioned.insert(dataset);
  }
  std::erase_if(inputs, [&](const auto& in) { return in.second.empty() && versioned.contains(in.first); });
  return inputs;
}

class HaltCommand final : public Command {
 public:
  explicit HaltCommand(CLI::App& app) {
    sub_ = app.add_subcommand("halt", "stop a running job now and quarantine its inputs");
    sub_->add_option("job", job_, "the job id: cordond's (local or Slurm), or a `cordon run` on this host")->required();
    sub_->add_option("--reason", reason_, "why (recorded)")->required();
    sub_->add_option("--wait", wait_s_, "seconds to wait for the job to end (default 30)");
    AddCallerOption(sub_, caller_uid_);
    sub_->footer("The sandbox is killed at once (its runner gets SIGUSR1 and SIGKILLs the sandbox's init):\n"
                 "nothing the trainer produced is sealed, its log is sealed as usual, the job ends\n"
                 "`halted` (state cancelled; `cordon run` and `cordon wait` exit 18). A job of cordond's is\n"
                 "stopped by cordond: a local one through its runner, one in Slurm by `scancel --batch\n"
                 "--signal=USR1` (cancelled outright while still pending there), a queued one dequeued.\n"
                 "A `cordon run` started by hand is found through its registration (<state_dir>/runs/).\n"
                 "Then every input the job read is quarantined (the version, or the whole dataset when\n"
                 "its hash is unknown: a job halted before it read them, the datasets it was approved).\n"
                 "Exit status: 0 ended (or was not running), 1 still ending after --wait or a run record\n"
                 "refused, 2 usage, 3 not an admin (through cordond), 4 no such job, 5 cordond unreachable.");
  }
  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions& global) override {
    Opened opened = OpenIncidentContext(global, "halt", caller_uid_);
    if (opened.forward) return ForwardToDaemon(global, {"halt", job_, "--reason", reason_, "--wait", std::to_string(wait_s_)});
    if (!opened.context) return opened.exit_status;
    IncidentContext& ctx = *opened.context;
    if (!protocol::IsJobId(job_)) return Complain("halt", Error{Errc::kInvalidArgument, "'" + job_ + "' is not a job id"});
    PrintSweep("halt", SweepStaleRuns(ctx.config.state_dir, job_));  // job_'s own record is handled below
    const bool cordonds = StoredJob(ctx.config, job_).has_value();
    Result<RunRecord> run = cordonds ? Fail(Errc::kNotFound, "") : FindRun(ctx.config.state_dir, job_);
    if (!cordonds && !run) {
      if (run.error().code == Errc::kNotFound) {
        return Complain("halt", Error{Errc::kNotFound, "no job " + job_ + ": not in cordond's job store, and no `cordon run` "
                                                       "of that id registered on this host"});
      }
      ctx.Record("job.halt", "refused", {{"job_ref", job_}, {"reason", reason_}, {"error", run.error().message}});
      return Complain("halt", run.error());
    }
    json details = {{"reason", reason_}, {"found", cordonds ? "cordond" : "cordon run"}};
    if (!cordonds) details.update({{"runner_pid", run->pid}, {"runner_uid", run->uid}});
    auto intent = ctx.Begin("job.halt", details, job_);
    if (!intent) return kExitFailure;
    const auto wait = std::chrono::seconds(std::max(wait_s_, 0));
    const Stopped stopped = cordonds ? HaltThroughDaemon(ctx.config, job_, wait) : HaltRun(ctx.config.state_dir, *run, wait);
    json quarantined = json::array();
    for (const auto& [dataset, sha] : InputsToQuarantine(ctx, job_)) {
      const DatasetRef ref{dataset, sha};
      auto id = SetQuarantine(ctx, ref, true, "halted job " + job_ + ": " + reason_, job_);
      ctx.Record("dataset.quarantined", id ? "ok" : "failed",
                 {{"dataset", dataset}, {"sha256", sha}, {"by", "halt"}, {"job_ref", job_}, {"error", id ? "" : id.error().message}});
      quarantined.push_back({{"dataset", dataset}, {"version", sha.empty() ? "(every version)" : sha}});
    }
    ctx.Done(intent, stopped.ended, {{"was_running", stopped.was_running}, {"ended", stopped.ended},
                                     {"job_outcome", stopped.outcome}, {"quarantined", quarantined}, {"error", stopped.error}});
    if (!stopped.error.empty()) std::cerr << "cordon halt: " << job_ << ": " << stopped.error << "\n";
    std::cout << "job " << job_ << ": "
              << (stopped.was_running ? (stopped.ended ? "halted" : "signalled, still ending") : "was not running")
              << (stopped.outcome.empty() ? "" : " (outcome " + stopped.outcome + ")") << "; quarantined "
              << quarantined.size() << " input(s)\n";
    return stopped.ended ? kExitOk : kExitFailure;
  }

 private:
  CLI::App* sub_ = nullptr;
  std::string job_, reason_;
  int wait_s_ = 30;
  std::optional<uid_t> caller_uid_;
};

// ---------------------------------------------------------------- incident report

class IncidentCommand final : public Command {
 public:
  explicit IncidentCommand(CLI::App& app) {
    sub_ = app.add_subcommand("incident", "incident response: the report for the lessons-learned step");
    sub_->require_subcommand(1);
    report_ = sub_->add_subcommand("report", "a timeline from the audit log: who sealed what, which jobs read it, "
                                             "what they produced, which keys were involved");
    auto* job = report_->add_option("--job", job_, "around one job (its inputs' datasets and keys too)");
    auto* dataset = report_->add_option("--dataset", dataset_, "around one dataset (every job that read it)");
    job->excludes(dataset);
    report_->add_flag("--json", json_, "print one JSON object");
    AddCallerOption(report_, caller_uid_);
  }
  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions& global) override {
    if (job_.empty() == dataset_.empty()) {
      std::cerr << "cordon incident report: give --job JOB or --dataset NAME\n";
      return kExitInvalid;
    }
    Opened opened = OpenIncidentContext(global, "incident", caller_uid_, false);
    if (opened.forward) {
      std::vector<std::string> argv = {"incident", "report", job_.empty() ? "--dataset" : "--job", job_.empty() ? dataset_ : job_};
      if (json_) argv.push_back("--json");
      return ForwardToDaemon(global, argv);
    }
    if (!opened.context) return opened.exit_status;
    IncidentContext& ctx = *opened.context;
    auto entries = audit::ReadEntries(ctx.config.audit_dir, {});
    if (!entries) return Complain("incident", entries.error());
    const json report = Build(*entries);
    ctx.Record("incident.report", "ok", {{"job_ref", job_}, {"dataset", dataset_}, {"entries", report["timeline"].size()}});
    if (json_) {
      std::cout << report.dump(2) << "\n";
      return kExitOk;
    }
    Print(report);
    return kExitOk;
  }

 private:
  static std::string Detail(const json& e, const char* key) {
    const json d = e.value("details", json::object());
    return d.contains(key) && d[key].is_string() ? d[key].get<std::string>() : "";
  }

  // Everything related, by closure: the subject's entries give its jobs,
  // datasets, versions and keys; those give their entries.
  json Build(const std::vector<json>& entries) {
    std::set<std::string> jobs, datasets, shas, keys;
    if (!job_.empty()) jobs.insert(job_);
    if (!dataset_.empty()) datasets.insert(dataset_);
    for (int pass = 0; pass < 2; ++pass) {
      for (const json& e : entries) {
        const std::string job = e.value("job", ""), ds = Detail(e, "dataset"), sha = Detail(e, "sha256");
        const bool hit = (!job.empty() && jobs.contains(job)) || (!ds.empty() && datasets.contains(ds)) ||
                         (!sha.empty() && shas.contains(sha));
        if (!hit) continue;
        const std::string action = e.value("action", "");
        if (!job.empty() && (action.starts_with("input.") || !job_.empty() || ds == dataset_)) jobs.insert(job);
        if (!ds.empty() && action.starts_with("input.")) datasets.insert(ds);
        if (!sha.empty() && (action.starts_with("input.") || action.starts_with("dataset."))) shas.insert(sha);
        if (const std::string key = Detail(e, "key_ref"); !key.empty() && action != "key.wrap") keys.insert(key);
      }
    }
    json timeline = json::array(), produced = json::array(), sealed_by = json::array(), outcomes = json::object();
    for (const json& e : entries) {
      const std::string job = e.value("job", ""), ds = Detail(e, "dataset"), sha = Detail(e, "sha256");
      const std::string action = e.value("action", ""), key = Detail(e, "key_ref");
      const bool related = (!job.empty() && jobs.contains(job)) || (!ds.empty() && datasets.contains(ds)) ||
                           (!sha.empty() && shas.contains(sha)) ||
                           (!key.empty() && keys.contains(key) && (action.starts_with("key.") || action.starts_with("dataset.")));
      if (!related || e.value("outcome", "") == "intent") continue;
      timeline.push_back(e);
      if (action == "output.sealed" || action == "manifest.write" || action == "log.seal") {
        produced.push_back({{"job", job}, {"action", action}, {"file", Detail(e, "file")},
                            {"sha256", e["details"].value("sha256", "")}});
      }
      if (action == "dataset.registered") {
        sealed_by.push_back({{"dataset", ds}, {"sha256", sha}, {"user", e["actor"].value("user", "")},
                             {"uid", e["actor"].value("uid", 0)}, {"time", e.value("time", "")}});
      }
      if (action == "job.finished") outcomes[job] = e["details"].value("outcome", "");
    }
    return {{"subject", job_.empty() ? json{{"dataset", dataset_}} : json{{"job", job_}}},
            {"jobs", jobs}, {"datasets", datasets}, {"versions", shas}, {"keys", keys}, {"job_outcomes", outcomes},
            {"sealed", sealed_by}, {"produced", produced}, {"timeline", timeline}};
  }

  static void Print(const json& r) {
    const auto list = [](const json& a) {
      std::string s;
      for (const auto& x : a) s += (s.empty() ? "" : ", ") + (x.is_string() ? x.get<std::string>() : x.dump());
      return s.empty() ? std::string("-") : s;
    };
    std::cout << "incident report: " << r["subject"].dump() << "\n"
              << "datasets: " << list(r["datasets"]) << "\n"
              << "versions: " << list(r["versions"]) << "\n"
              << "keys:     " << list(r["keys"]) << "\n"
              << "jobs:     ";
    for (const auto& j : r["jobs"]) std::cout << j.get<std::string>() << " (" << r["job_outcomes"].value(j.get<std::string>(), "?") << ") ";
    std::cout << "\nsealed:\n";
    for (const auto& s : r["sealed"]) {
      std::cout << "  " << s["time"].get<std::string>() << "  " << s["dataset"].get<std::string>() << " " << s["sha256"].get<std::string>()
                << " by " << s["user"].get<std::string>() << " (uid " << s["uid"] << ")\n";
    }
    std::cout << "produced:\n";
    for (const auto& p : r["produced"]) {
      std::cout << "  " << p["job"].get<std::string>() << "  " << p["action"].get<std::string>() << " " << p["file"].get<std::string>()
                << " " << p["sha256"].get<std::string>() << "\n";
    }
    std::cout << "timeline:\n";
    for (const auto& e : r["timeline"]) std::cout << "  " << audit::FormatTimelineLine(e) << "\n";
  }

  CLI::App* sub_ = nullptr;
  CLI::App* report_ = nullptr;
  std::string job_, dataset_;
  bool json_ = false;
  std::optional<uid_t> caller_uid_;
};

}  // namespace

std::vector<std::unique_ptr<Command>> MakeIncidentCommands(CLI::App& app) {
  std::vector<std::unique_ptr<Command>> out;
  out.push_back(std::make_unique<QuarantineCommand>(app, true));
  out.push_back(std::make_unique<QuarantineCommand>(app, false));
  out.push_back(std::make_unique<RestoreCommand>(app));
  out.push_back(std::make_unique<HaltCommand>(app));
  out.push_back(std::make_unique<IncidentCommand>(app));
  return out;
}

}  // namespace cordon::cli
