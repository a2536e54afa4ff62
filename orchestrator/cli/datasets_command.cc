// cordon datasets list | show NAME | history NAME | mark-good NAME VERSION | diff NAME V1 V2
// The dataset version registry (docs/INCIDENT-RESPONSE.md). Root locally; a
// policy admin through cordond (incident_cli.h).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <set>

#include "cordon/audit/verify.h"
#include "cordon/unique_fd.h"
#include "incident_cli.h"
#include "sealed_cli.h"

namespace cordon::cli {
namespace {

using nlohmann::json;

std::string Short(const std::string& id) { return id.empty() ? "-" : id.substr(0, std::min<std::size_t>(id.size(), 7 + 16)); }

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// Jobs that read each version, from the audit log: input.verify (pinned or
// not, with the dataset) and input.hashed (the lineage hash of an unpinned one).
std::map<std::string, std::set<std::string>> JobsByVersion(const IncidentContext& ctx, const datasets::Dataset& d) {
  std::map<std::string, std::set<std::string>> out;
  auto entries = audit::ReadEntries(ctx.config.audit_dir, {std::nullopt, std::nullopt, std::string("input.*")});
  if (!entries) return out;
  for (const json& e : *entries) {
    const json details = e.value("details", json::object());
    const std::string sha = details.value("sha256", "");
    const std::string job = e.value("job", "");
    if (sha.empty() || job.empty()) continue;
    if (const datasets::Version* v = d.Find(sha)) out[v->id].insert(job);
  }
  return out;
}

json VersionSummaryJson(const datasets::Version& v, const datasets::Dataset& d, const std::set<std::string>& jobs) {
  return {{"version", v.id}, {"aliases", v.aliases}, {"path", v.path}, {"sealed_by", {{"uid", v.sealed_by.uid}, {"user", v.sealed_by.user}}},
          {"sealed_at", Iso8601Utc(v.sealed_at)}, {"key_ref", v.key_ref}, {"key_version", v.key_version},
          {"rows", v.rows ? json(*v.rows) : json(nullptr)}, {"columns", v.header}, {"content_digest", v.content_digest},
          {"plaintext_bytes", v.plaintext_bytes}, {"quarantined", d.IsQuarantined(v)},
          {"quarantine_reason", v.quarantined ? v.quarantine_reason : d.quarantine_reason},
          {"current", d.current == v.id}, {"last_good", d.last_good == v.id}, {"jobs", jobs}};
}

class DatasetsCommand final : public Command {
 public:
  explicit DatasetsCommand(CLI::App& app) {
    sub_ = app.add_subcommand("datasets", "the dataset version registry: versions, lineage, last known good, diff");
    sub_->require_subcommand(1);
    list_ = sub_->add_subcommand("list", "every registered dataset");
    show_ = sub_->add_subcommand("show", "a dataset's versions: who sealed each, when, rows, digest, jobs that read it");
    history_ = sub_->add_subcommand("history", "a dataset's timeline: seals, jobs, quarantines, restores");
    good_ = sub_->add_subcommand("mark-good", "record VERSION as the last known good (the max_drift baseline)");
    diff_ = sub_->add_subcommand("diff", "compare two versions in memory: rows, schema, column summaries, rows added/removed");
    for (CLI::App* s : {show_, history_, good_, diff_}) s->add_option("name", name_, "dataset name")->required();
    good_->add_option("version", v1_, "sha256 (or a unique prefix of 12+ hex digits)")->required();
    diff_->add_option("v1", v1_, "the earlier version")->required();
    diff_->add_option("v2", v2_, "the later version")->required();
    for (CLI::App* s : {list_, show_, history_, diff_}) s->add_flag("--json", json_, "print JSON");
    for (CLI::App* s : {list_, show_, history_, good_, diff_}) AddCallerOption(s, caller_uid_);
    sub_->footer("Root runs these directly; an admin named in policy.yaml runs them through cordond.\n" +
                 ExitStatusLine({{kExitOk, "ok"}, {kExitFailure, "failed"}, {kExitInvalid, "usage"},
                                 {kExitDenied, "not an admin (via cordond)"}, {kExitNotFound, "no such dataset/version"}}));
  }

  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions& global) override {
    Opened opened = OpenIncidentContext(global, "datasets", caller_uid_);
    if (opened.forward) return ForwardToDaemon(global, Argv());
    if (!opened.context) return opened.exit_status;
    IncidentContext& ctx = *opened.context;
    if (list_->parsed()) return List(ctx);
    auto loaded = ctx.registry->Load(name_);
    if (!loaded) return Complain(loaded.error());
    if (!*loaded) {
      std::cerr << "cordon datasets: no dataset '" << name_ << "' in the registry\n";
      return kExitNotFound;
    }
    datasets::Dataset& d = **loaded;
    if (show_->parsed()) return Show(ctx, d);
    if (history_->parsed()) return History(ctx, d);
    if (good_->parsed()) return MarkGood(ctx);
    return Diff(ctx, d);
  }

 private:
  std::vector<std::string> Argv() const {
    std::vector<std::string> argv = {"datasets"};
    for (CLI::App* s : {list_, show_, history_, good_, diff_}) {
      if (s->parsed()) argv.push_back(s->get_name());
    }
    if (!list_->parsed()) argv.push_back(name_);
    if (good_->parsed() || diff_->parsed()) argv.push_back(v1_);
    if (diff_->parsed()) argv.push_back(v2_);
    if (json_) argv.push_back("--json");
    return argv;
  }

  static int Complain(const Error& e) {
    std::cerr << "cordon datasets: " << e.message << "\n";
    return e.code == Errc::kNotFound ? kExitNotFound : e.code == Errc::kInvalidArgument ? kExitInvalid : kExitFailure;
  }

  int List(IncidentContext& ctx) {
    auto names = ctx.registry->Names();
    if (!names) return Complain(names.error());
    json all = json::array();
    for (const std::string& name : *names) {
      auto d = ctx.registry->Load(name);
      if (!d || !*d) continue;
      std::size_t quarantined = 0;
      for (const auto& v : (*d)->versions) quarantined += (*d)->IsQuarantined(v);
      all.push_back({{"name", name}, {"versions", (*d)->versions.size()}, {"current", (*d)->current},
                     {"last_good", (*d)->last_good}, {"quarantined_versions", quarantined},
                     {"quarantined", (*d)->quarantined}});
    }
    if (json_) {
      std::cout << all.dump(2) << "\n";
      return kExitOk;
    }
    std::printf("%-24s %8s  %-23s  %-23s  %s\n", "DATASET", "VERSIONS", "CURRENT", "LAST GOOD", "QUARANTINED");
    for (const json& d : all) {
      std::printf("%-24s %8zu  %-23s  %-23s  %zu%s\n", d["name"].get<std::string>().c_str(), d["versions"].get<std::size_t>(),
                  Short(d["current"]).c_str(), Short(d["last_good"]).c_str(), d["quarantined_versions"].get<std::size_t>(),
                  d["quarantined"].get<bool>() ? " (whole dataset)" : "");
    }
    return kExitOk;
  }

  int Show(IncidentContext& ctx, const datasets::Dataset& d) {
    const auto jobs = JobsByVersion(ctx, d);
    json versions = json::array();
    for (const auto& v : d.versions) {
      const auto it = jobs.find(v.id);
      versions.push_back(VersionSummaryJson(v, d, it == jobs.end() ? std::set<std::string>{} : it->second));
    }
    if (json_) {
      std::cout << json{{"name", d.name}, {"current", d.current}, {"last_good", d.last_good},
                        {"quarantined", d.quarantined}, {"versions", versions}}.dump(2) << "\n";
      return kExitOk;
    }
    std::cout << "dataset " << d.name << (d.quarantined ? "  QUARANTINED: " + d.quarantine_reason : "") << "\n"
              << "current   " << (d.current.empty() ? "-" : d.current) << "\n"
              << "last good " << (d.last_good.empty() ? "-" : d.last_good) << "\n";
    for (const json& v : versions) {
      std::cout << "\n" << v["version"].get<std::string>()
                << (v["current"].get<bool>() ? "  [current]" : "") << (v["last_good"].get<bool>() ? "  [last good]" : "")
                << (v["quarantined"].get<bool>() ? "  [QUARANTINED: " + v["quarantine_reason"].get<std::string>() + "]" : "") << "\n"
                << "  sealed   " << v["sealed_at"].get<std::string>() << " by " << v["sealed_by"]["user"].get<std::string>()
                << " (uid " << v["sealed_by"]["uid"] << ") under " << v["key_ref"].get<std::string>() << " v" << v["key_version"] << "\n"
                << "  path     " << v["path"].get<std::string>() << "\n"
                << "  rows     " << (v["rows"].is_null() ? "- (not CSV)" : v["rows"].dump()) << ", "
                << v["columns"].size() << " columns, " << v["plaintext_bytes"] << " bytes\n"
                << "  digest   " << v["content_digest"].get<std::string>() << "\n"
                << "  jobs     " << (v["jobs"].empty() ? "-" : "") ;
      for (const auto& j : v["jobs"]) std::cout << j.get<std::string>() << " ";
      std::cout << "\n";
    }
    return kExitOk;
  }

  int History(IncidentContext& ctx, const datasets::Dataset& d) {
    json events = json::array();
    for (const auto& e : d.events) {
      events.push_back({{"time", Iso8601Utc(e.time)}, {"action", e.action}, {"version", e.version},
                        {"by", e.by.user}, {"uid", e.by.uid}, {"reason", e.reason}, {"job", e.job}});
    }
    for (const auto& [version, jobs] : JobsByVersion(ctx, d)) {
      for (const std::string& job : jobs) events.push_back({{"action", "read_by_job"}, {"version", version}, {"job", job}});
    }
    if (json_) {
      std::cout << json{{"name", d.name}, {"events", events}}.dump(2) << "\n";
      return kExitOk;
    }
    for (const json& e : events) {
      std::cout << e.value("time", "                    ") << "  " << e["action"].get<std::string>() << "  "
                << Short(e["version"]) << (e.value("by", "").empty() ? "" : "  by " + e.value("by", ""))
                << (e["job"].get<std::string>().empty() ? "" : "  job " + e["job"].get<std::string>())
                << (e.value("reason", "").empty() ? "" : "  (" + e.value("reason", "") + ")") << "\n";
    }
    return kExitOk;
  }

  int MarkGood(IncidentContext& ctx) {
    auto intent = ctx.Begin("dataset.mark_good", {{"dataset", name_}, {"version", v1_}});
    if (!intent) return kExitFailure;
    std::string id;
    auto updated = ctx.registry->Update(name_, [&](datasets::Dataset& d) -> Status {
      auto v = d.Resolve(v1_);
      if (!v) return std::unexpected(v.error());
      if (d.IsQuarantined(**v)) {
        return Fail(Errc::kPermissionDenied, "version " + (*v)->id + " is quarantined; release it first");
      }
      id = (*v)->id;
      d.last_good = id;
      d.events.push_back({std::time(nullptr), "mark_good", id, ctx.caller, "", ""});
      return {};
    });
    ctx.Done(intent, updated.has_value(), updated ? json{{"version", id}} : json{{"error", updated.error().message}});
    if (!updated) return Complain(updated.error());
    std::cout << "dataset " << name_ << ": last known good is " << id << "\n";
    return kExitOk;
  }

  // Both versions decrypted in memory, chunk by chunk; only aggregates and
  // keyed row hashes are kept. Each file must still be the version it names.
  Result<datasets::Profile> ProfileVersion(IncidentContext& ctx, const datasets::Version& v, const SecretBytes& key) {
    UniqueFd fd(::open(v.path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return FailErrno("open " + v.path);
    auto sha = sealed::Sha256Fd(fd.get());
    if (!sha) return std::unexpected(sha.error());
    if (!v.Matches(*sha)) {
      return Fail(Errc::kIntegrity, v.path + " is no longer version " + v.id + " (it is " + *sha + ")");
    }
    return datasets::ProfileSealed(fd.get(), ctx.kms(), key, true);
  }

  int Diff(IncidentContext& ctx, datasets::Dataset& d) {
    auto a = d.Resolve(v1_);
    if (!a) return Complain(a.error());
    auto b = d.Resolve(v2_);
    if (!b) return Complain(b.error());
    auto intent = ctx.Begin("dataset.diff", {{"dataset", d.name}, {"from", (*a)->id}, {"to", (*b)->id}});
    if (!intent) return kExitFailure;
    auto key = ctx.registry->HashKey(ctx.kms(), ParseKeyRef((*a)->key_ref).value_or(KeyRef{}));
    Result<datasets::Profile> pa = key ? ProfileVersion(ctx, **a, *key) : Result<datasets::Profile>(std::unexpected(key.error()));
    Result<datasets::Profile> pb = pa ? ProfileVersion(ctx, **b, *key) : Result<datasets::Profile>(std::unexpected(pa.error()));
    if (!pb) {
      ctx.Done(intent, false, {{"error", pb.error().message}});
      return Complain(pb.error());
    }
    const json out = DiffJson(d.name, **a, **b, *pa, *pb);
    ctx.Done(intent, true, {{"rows_added", out["rows_added"]}, {"rows_removed", out["rows_removed"]},
                            {"columns_changed", out["columns_changed"].size()}});
    if (json_) std::cout << out.dump(2) << "\n";
    else PrintDiff(out);
    return kExitOk;
  }

  static json DiffJson(const std::string& name, const datasets::Version& a, const datasets::Version& b,
                       const datasets::Profile& pa, const datasets::Profile& pb) {
    std::vector<std::uint64_t> added, removed;
    std::set_difference(pb.row_hashes.begin(), pb.row_hashes.end(), pa.row_hashes.begin(), pa.row_hashes.end(),
                        std::back_inserter(added));
    std::set_difference(pa.row_hashes.begin(), pa.row_hashes.end(), pb.row_hashes.begin(), pb.row_hashes.end(),
                        std::back_inserter(removed));
    json columns = json::object(), changed = json::array(), cols_added = json::array(), cols_removed = json::array();
    for (const auto& c : pb.header) if (std::find(pa.header.begin(), pa.header.end(), c) == pa.header.end()) cols_added.push_back(c);
    for (const auto& c : pa.header) if (std::find(pb.header.begin(), pb.header.end(), c) == pb.header.end()) cols_removed.push_back(c);
    if (pa.summaries && pb.summaries) {
      for (const auto& [col, sa] : *pa.summaries) {
        const auto it = pb.summaries->find(col);
        if (it == pb.summaries->end()) continue;
        const json ja = sa.ToJson(), jb = it->second.ToJson();
        columns[col] = {{"from", ja}, {"to", jb}};
        if (ja != jb) changed.push_back(col);
      }
    }
    return {{"dataset", name}, {"from", a.id}, {"to", b.id},
            {"rows", {{"from", pa.rows ? json(*pa.rows) : json(nullptr)}, {"to", pb.rows ? json(*pb.rows) : json(nullptr)}}},
            {"same_content", pa.content_digest == pb.content_digest},
            {"schema_changed", pa.header != pb.header}, {"columns_added", cols_added}, {"columns_removed", cols_removed},
            {"rows_added", added.size()}, {"rows_removed", removed.size()},
            {"columns_changed", changed}, {"columns", columns}};
  }

  static void PrintDiff(const json& out) {
    std::cout << "dataset " << out["dataset"].get<std::string>() << ": " << Short(out["from"]) << " -> " << Short(out["to"]) << "\n"
              << "rows: " << out["rows"]["from"].dump() << " -> " << out["rows"]["to"].dump()
              << "   added " << out["rows_added"] << ", removed " << out["rows_removed"] << " (by keyed row hash)\n"
              << "schema: " << (out["schema_changed"].get<bool>() ? "changed" : "same");
    if (!out["columns_added"].empty()) std::cout << "; added " << out["columns_added"].dump();
    if (!out["columns_removed"].empty()) std::cout << "; removed " << out["columns_removed"].dump();
    std::cout << (out["same_content"].get<bool>() ? "\ncontent: identical\n" : "\n");
    std::printf("%-20s %-21s %-25s %-25s %-25s %s\n", "column", "null rate", "min", "max", "mean", "distinct");
    for (const auto& [col, c] : out["columns"].items()) {
      const json& f = c["from"];
      const json& t = c["to"];
      const auto num = [](const json& s, const char* k) { return s.contains(k) ? Num(s[k].get<double>()) : std::string("-"); };
      const auto pair = [&](const char* k) { return num(f, k) + " -> " + num(t, k); };
      const bool changed = f != t;
      std::printf("%-20s %-21s %-25s %-25s %-25s %s%s\n", col.c_str(), pair("null_fraction").c_str(), pair("min").c_str(),
                  pair("max").c_str(), pair("mean").c_str(),
                  (f["distinct"].dump() + " -> " + t["distinct"].dump()).c_str(), changed ? "  *" : "");
    }
  }

  CLI::App* sub_ = nullptr;
  CLI::App* list_ = nullptr;
  CLI::App* show_ = nullptr;
  CLI::App* history_ = nullptr;
  CLI::App* good_ = nullptr;
  CLI::App* diff_ = nullptr;
  std::string name_, v1_, v2_;
  bool json_ = false;
  std::optional<uid_t> caller_uid_;
};

}  // namespace

std::unique_ptr<Command> MakeDatasetsCommand(CLI::App& app) { return std::make_unique<DatasetsCommand>(app); }

}  // namespace cordon::cli
