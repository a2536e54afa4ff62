// Incident response, one command per step (docs/INCIDENT-RESPONSE.md):
//   cordon quarantine DATASET[@VERSION] --reason TEXT
//   cordon release DATASET[@VERSION]
//   cordon restore DATASET --to VERSION [--install PATH]
//   cordon halt JOB --reason TEXT
//   cordon incident report --job JOB | --dataset NAME [--json]
// Root runs them directly; an admin named in policy.yaml through cordond.
// Each step is audited (write-ahead) with the caller's identity.
#include <fcntl.h>
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

class HaltCommand final : public Command {
 public:
  explicit HaltCommand(CLI::App& app) {
    sub_ = app.add_subcommand("halt", "stop a running job now and quarantine its inputs");
    sub_->add_option("job", job_, "the job id (cordond's)")->required();
    sub_->add_option("--reason", reason_, "why (recorded)")->required();
    sub_->add_option("--wait", wait_s_, "seconds to wait for the job to end (default 30)");
    AddCallerOption(sub_, caller_uid_);
    sub_->footer("The sandbox is killed at once (SIGKILL to its init): nothing the trainer produced is\n"
                 "sealed, its log is sealed as usual, the job ends `halted`. Then every input the\n"
                 "job read is quarantined (the version, or the whole dataset when its hash is unknown).");
  }
  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions& global) override {
    Opened opened = OpenIncidentContext(global, "halt", caller_uid_);
    if (opened.forward) return ForwardToDaemon(global, {"halt", job_, "--reason", reason_, "--wait", std::to_string(wait_s_)});
    if (!opened.context) return opened.exit_status;
    IncidentContext& ctx = *opened.context;
    if (!protocol::IsJobId(job_)) return Complain("halt", Error{Errc::kInvalidArgument, "'" + job_ + "' is not a job id"});
    auto record = ReadFileLimited(ctx.config.state_dir + "/jobs/" + job_ + "/job.json", 1 << 20);
    if (!record) return Complain("halt", Error{Errc::kNotFound, "no job " + job_ + " in cordond's job store"});
    const json r = json::parse(*record, nullptr, false);
    const pid_t pid = r.is_object() ? r.value("pid", 0) : 0;
    const std::uint64_t start = r.is_object() ? r.value("pid_start", std::uint64_t{0}) : 0;
    auto intent = ctx.Begin("job.halt", {{"reason", reason_}, {"runner_pid", pid}}, job_);
    if (!intent) return kExitFailure;
    const bool running = pid > 0 && start != 0 && ProcessStartTime(pid) == start;
    if (running) ::kill(pid, SIGUSR1);  // the runner kills its sandbox, seals the log, finishes
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s_);
    while (running && ProcessStartTime(pid) == start && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const bool ended = !running || ProcessStartTime(pid) != start;
    json quarantined = json::array();
    for (const auto& [dataset, sha] : JobInputs(ctx, job_)) {
      const DatasetRef ref{dataset, sha};
      auto id = SetQuarantine(ctx, ref, true, "halted job " + job_ + ": " + reason_, job_);
      ctx.Record("dataset.quarantined", id ? "ok" : "failed",
                 {{"dataset", dataset}, {"sha256", sha}, {"by", "halt"}, {"job_ref", job_}, {"error", id ? "" : id.error().message}});
      quarantined.push_back({{"dataset", dataset}, {"version", sha.empty() ? "(every version)" : sha}});
    }
    ctx.Done(intent, ended, {{"was_running", running}, {"ended", ended}, {"quarantined", quarantined}});
    std::cout << "job " << job_ << ": " << (running ? (ended ? "halted" : "signalled, still ending") : "was not running")
              << "; quarantined " << quarantined.size() << " input(s)\n";
    return ended ? kExitOk : kExitFailure;
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
