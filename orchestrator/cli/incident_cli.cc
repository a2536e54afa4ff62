#include "incident_cli.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>

#include "cordon/config/audit_options.h"
#include "cordon/config/kms_options.h"
#include "cordon/daemon/protocol.h"
#include "cordon/file_io.h"
#include "cordon/unique_fd.h"
#include "daemon_client.h"
#include "sealed_cli.h"

namespace cordon::cli {
namespace {

using nlohmann::json;

// Audit strings stay well under the log's 1 KiB guard.
json Clipped(json details) {
  for (auto& [k, v] : details.items()) {
    if (v.is_string() && v.get_ref<const std::string&>().size() > 480) v = v.get<std::string>().substr(0, 480) + "...";
  }
  return details;
}

}  // namespace

void AddCallerOption(CLI::App* sub, std::optional<uid_t>& caller_uid) {
  sub->add_option("--caller-uid", caller_uid, "set by cordond: the admin it acts for")->group("");
}

std::string Iso8601Utc(std::int64_t unix_seconds) {
  if (unix_seconds == 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

const sealed::KeyManagers& IncidentContext::kms() {
  if (!kms_) kms_ = sealed::CachedKeyManagers(orchestrator::KmsOptionsFrom(config));
  return *kms_;
}

audit::Actor IncidentContext::Actor() const {
  audit::Actor a;
  a.uid = caller.uid;
  a.user = caller.user;
  a.pid = ::getpid();
  a.process = via == "cordond" ? "cordon-via-cordond" : "cordon";
  return a;
}

// An event under the caller's identity, its details clipped and marked with how it came.
audit::Event IncidentContext::Event(const std::string& action, const std::string& job, const std::string& outcome,
                                    json details) const {
  audit::Event e;
  e.action = action;
  e.job = job;
  e.outcome = outcome;
  e.details = Clipped(std::move(details));
  e.details["via"] = via;
  e.actor = Actor();
  return e;
}

std::optional<audit::Intent> IncidentContext::Begin(const std::string& action, json details, const std::string& job) {
  audit::Event e = Event(action, job, "", std::move(details));
  subject_ = nlohmann::json::object();
  for (const char* k : {"dataset", "key_ref", "version"}) {
    if (e.details.contains(k)) subject_[k] = e.details[k];
  }
  auto intent = log->Begin(std::move(e));
  if (!intent) {
    std::cerr << "cordon: refusing to act without an audit record: " << intent.error().message << "\n";
    return std::nullopt;
  }
  return *intent;
}

void IncidentContext::Done(const std::optional<audit::Intent>& intent, bool ok, json details) {
  if (!intent) return;
  details = Clipped(std::move(details));
  for (const auto& [k, v] : subject_.items()) {
    if (!details.contains(k)) details[k] = v;
  }
  // As AuditLog::Finish does (same action and job, intent_seq), but under the caller's identity.
  details["intent_seq"] = intent->seq;
  auto done = log->Append(Event(intent->action, intent->job, ok ? "ok" : "failed", std::move(details)));
  if (!done) std::cerr << "cordon: warning: the audit log did not record the outcome: " << done.error().message << "\n";
}

bool IncidentContext::Record(const std::string& action, const std::string& outcome, json details) {
  auto seq = log->Append(Event(action, "", outcome, std::move(details)));
  if (!seq) std::cerr << "cordon: the audit log cannot record: " << seq.error().message << "\n";
  return seq.has_value();
}

Opened OpenIncidentContext(const GlobalOptions& global, const std::string& command, std::optional<uid_t> caller_uid,
                           bool needs_registry) {
  Opened out;
  if (::geteuid() != 0) {
    if (caller_uid) {
      std::cerr << "cordon " << command << ": --caller-uid is cordond's, not a user's\n";
      out.exit_status = kExitDenied;
      return out;
    }
    out.forward = true;
    return out;
  }
  if (auto hardened = HardenKeyHoldingProcess(); !hardened) {
    std::cerr << "cordon " << command << ": warning: " << hardened.error().message << "\n";
  }
  auto config = orchestrator::LoadConfig(orchestrator::ResolveConfigPath(global.config));
  if (!config) {
    std::cerr << "cordon " << command << ": " << config.error().message << "\n";
    out.exit_status = kExitInvalid;
    return out;
  }
  IncidentContext ctx;
  ctx.config = std::move(*config);
  ctx.caller = datasets::CallerFor(caller_uid);
  ctx.via = caller_uid ? "cordond" : "local";
  auto log = audit::AuditLog::Open(orchestrator::AuditOptionsFor(ctx.config));
  if (!log) {
    std::cerr << "cordon " << command << ": refusing to act without an audit record: " << log.error().message << "\n";
    out.exit_status = kExitFailure;
    return out;
  }
  ctx.log = std::move(*log);
  if (needs_registry) {
    auto registry = datasets::Registry::Open(ctx.config.state_dir);
    if (!registry) {
      std::cerr << "cordon " << command << ": " << registry.error().message << "\n";
      out.exit_status = kExitFailure;
      return out;
    }
    ctx.registry = std::move(*registry);
  }
  out.context = std::move(ctx);
  return out;
}

int ForwardToDaemon(const GlobalOptions& global, const std::vector<std::string>& argv) {
  std::string socket = "/run/cordon/cordon.sock";
  if (const char* env = std::getenv("CORDON_SOCKET"); env && *env) {
    socket = env;
  } else if (auto config = orchestrator::LoadConfig(orchestrator::ResolveConfigPath(global.config))) {
    socket = config->daemon.socket;
  }
  auto fd = ConnectToDaemon(socket);
  if (!fd) {
    std::cerr << "cordon " << argv[0] << ": not root, and " << fd.error().message << "\n";
    return kExitUnavailable;
  }
  protocol::Request request;
  request.op = protocol::Op::kAdmin;
  request.argv = argv;
  auto reply = AskDaemon(fd->get(), request);
  if (!reply) {
    std::cerr << "cordon " << argv[0] << ": " << reply.error().message << "\n";
    return kExitFailure;
  }
  if (!reply->ok) {
    std::cerr << "cordon " << argv[0] << ": cordond: " << reply->error << "\n";
    switch (reply->code) {
      case protocol::ReplyCode::kDenied: return kExitDenied;
      case protocol::ReplyCode::kBusy:
      case protocol::ReplyCode::kAuditUnavailable:
      case protocol::ReplyCode::kStopping: return kExitUnavailable;
      case protocol::ReplyCode::kInvalid: return kExitInvalid;
      default: return kExitFailure;
    }
  }
  std::cout << reply->body.value("stdout", "");
  std::cerr << reply->body.value("stderr", "");
  return reply->body.value("exit", kExitFailure);
}

DatasetRef ParseDatasetRef(const std::string& text) {
  const std::size_t at = text.rfind('@');
  if (at == std::string::npos) return {text, ""};
  return {text.substr(0, at), text.substr(at + 1)};
}

namespace {

// Unlinks `path` if it still hashes to `sha256` (the file this command sealed).
bool RemoveIfStill(const std::string& path, const std::string& sha256) {
  auto sha = sealed::Sha256File(path);
  return sha && *sha == sha256 && ::unlink(path.c_str()) == 0;
}

}  // namespace

bool RegisterSealed(const GlobalOptions& global, const std::string& path, const sealed::Report& report) {
  Opened opened = OpenIncidentContext(global, "seal", std::nullopt);
  if (!opened.context) {
    if (opened.forward) {
      std::cerr << "cordon seal: note: not registered (the dataset registry is root's)\n";
      return true;
    }
    const bool removed = RemoveIfStill(path, report.sha256);
    std::cerr << "cordon seal: no dataset registry to record '" << report.dataset << "'; " << path
              << (removed ? " removed (seal again once it is fixed, or seal with --no-register)\n"
                          : " left in place: it changed since it was sealed\n");
    return false;
  }
  IncidentContext& ctx = *opened.context;
  const auto fail = [&](const Error& e) {
    const bool removed = RemoveIfStill(path, report.sha256);
    std::cerr << "cordon seal: the registry cannot record '" << report.dataset << "': " << e.message << "\n"
              << "cordon seal: " << path << (removed ? " removed (seal again once the registry is fixed, or "
                                                       "seal with --no-register)\n"
                                                     : " left in place: it changed since it was sealed\n");
    ctx.Record("dataset.registered", "failed", {{"dataset", report.dataset}, {"sha256", report.sha256},
                                                 {"error", e.message}, {"sealed_file_removed", removed}});
    return false;
  };
  std::error_code ec;
  const std::string absolute = std::filesystem::absolute(path, ec).lexically_normal().string();
  auto hash_key = ctx.registry->HashKey(ctx.kms(), report.key);
  if (!hash_key) return fail(hash_key.error());
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return fail(FailErrno("open " + path).error());
  auto info = sealed::OpenSealed(fd.get());
  if (!info) return fail(info.error());
  auto profile = datasets::ProfileSealed(fd.get(), ctx.kms(), *hash_key, false);
  if (!profile) return fail(profile.error());
  const std::int64_t now = std::time(nullptr);
  auto updated = ctx.registry->Update(report.dataset, [&](datasets::Dataset& d) -> Status {
    if (d.Find(report.sha256) == nullptr) {
      d.versions.push_back(datasets::VersionFrom(report.sha256, absolute, info->header, *profile, ctx.caller, now));
    }
    if (!d.quarantined) d.current = report.sha256;
    d.events.push_back({now, "sealed", report.sha256, ctx.caller, "", ""});
    return {};
  });
  if (!updated) return fail(updated.error());
  ctx.Record("dataset.registered", "ok",
             {{"dataset", report.dataset}, {"sha256", report.sha256}, {"path", absolute},
              {"rows", profile->rows ? json(*profile->rows) : json(nullptr)},
              {"content_digest", profile->content_digest}, {"key_ref", report.key.ToString()},
              {"key_version", report.kek_version}});
  return true;
}

}  // namespace cordon::cli
