#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "cordon/hex.h"
#include "cordon/file_io.h"
#include "cordon/datasets/datasets.h"
#include "cordon/unique_fd.h"

namespace cordon::datasets {
namespace {

using nlohmann::json;

constexpr std::uint64_t kMaxDocumentBytes = 64ull << 20;

bool IsPlainName(std::string_view name) {
  return !name.empty() && name.size() <= 200 && name.front() != '.' &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == '-';
         });
}


json CallerJson(const Caller& c) { return {{"uid", c.uid}, {"user", c.user}}; }
Caller CallerFrom(const json& j) {
  Caller c;
  if (j.is_object()) {
    c.uid = j.value("uid", std::uint32_t{0});
    c.user = j.value("user", "");
  }
  return c;
}

json VersionJson(const Version& v) {
  json j = {{"id", v.id}, {"aliases", v.aliases}, {"path", v.path}, {"sealed_by", CallerJson(v.sealed_by)},
            {"sealed_at", v.sealed_at}, {"key_ref", v.key_ref}, {"key_version", v.key_version},
            {"plaintext_bytes", v.plaintext_bytes}, {"rows", v.rows ? json(*v.rows) : json(nullptr)},
            {"header", v.header}, {"content_digest", v.content_digest},
            {"summaries", v.summaries ? orchestrator::SummariesToJson(*v.summaries) : json(nullptr)},
            {"quarantined", v.quarantined}};
  if (v.quarantined) j["quarantine_reason"] = v.quarantine_reason;
  return j;
}

Version VersionFromJson(const json& j) {
  Version v;
  v.id = j.at("id").get<std::string>();
  v.aliases = j.value("aliases", std::vector<std::string>{});
  v.path = j.value("path", "");
  v.sealed_by = CallerFrom(j.value("sealed_by", json::object()));
  v.sealed_at = j.value("sealed_at", std::int64_t{0});
  v.key_ref = j.value("key_ref", "");
  v.key_version = j.value("key_version", std::uint32_t{0});
  v.plaintext_bytes = j.value("plaintext_bytes", std::uint64_t{0});
  if (j.contains("rows") && j["rows"].is_number_unsigned()) v.rows = j["rows"].get<std::uint64_t>();
  v.header = j.value("header", std::vector<std::string>{});
  v.content_digest = j.value("content_digest", "");
  if (j.contains("summaries") && j["summaries"].is_object()) v.summaries = orchestrator::SummariesFromJson(j["summaries"]);
  v.quarantined = j.value("quarantined", false);
  v.quarantine_reason = j.value("quarantine_reason", "");
  return v;
}

json EventJson(const Event& e) {
  json j = {{"time", e.time}, {"action", e.action}, {"by", CallerJson(e.by)}};
  if (!e.version.empty()) j["version"] = e.version;
  if (!e.reason.empty()) j["reason"] = e.reason;
  if (!e.job.empty()) j["job"] = e.job;
  return j;
}

Event EventFromJson(const json& j) {
  return Event{j.value("time", std::int64_t{0}), j.value("action", ""), j.value("version", ""),
               CallerFrom(j.value("by", json::object())), j.value("reason", ""), j.value("job", "")};
}

std::string Normalise(std::string_view spec) {
  std::string s(spec);
  if (!s.starts_with("sha256:")) s = "sha256:" + s;
  return s;
}

// An exclusive lock on the registry for one read-modify-write.
Result<UniqueFd> Lock(const std::string& dir) {
  UniqueFd fd(::open((dir + "/registry.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return FailErrno("open " + dir + "/registry.lock");
  if (RetryEintr([&] { return ::flock(fd.get(), LOCK_EX); }) != 0) return FailErrno("lock " + dir + "/registry.lock");
  return fd;
}

}  // namespace

bool Version::Matches(std::string_view sha256) const {
  return id == sha256 || std::find(aliases.begin(), aliases.end(), sha256) != aliases.end();
}

Version* Dataset::Find(std::string_view sha256) {
  for (Version& v : versions) {
    if (v.Matches(sha256)) return &v;
  }
  return nullptr;
}

const Version* Dataset::Find(std::string_view sha256) const {
  return const_cast<Dataset*>(this)->Find(sha256);
}

Result<Version*> Dataset::Resolve(std::string_view spec) {
  const std::string want = Normalise(spec);
  if (Version* exact = Find(want)) return exact;
  if (want.size() < 7 + 12) {
    return Fail(Errc::kNotFound, "dataset '" + name + "' has no version " + std::string(spec) +
                                     " (give the sha256, or at least 12 of its hex digits)");
  }
  Version* found = nullptr;
  for (Version& v : versions) {
    bool hit = v.id.starts_with(want);
    for (const std::string& a : v.aliases) hit = hit || a.starts_with(want);
    if (!hit) continue;
    if (found != nullptr && found != &v) {
      return Fail(Errc::kInvalidArgument, "version prefix " + std::string(spec) + " of '" + name + "' is ambiguous");
    }
    found = &v;
  }
  if (found == nullptr) return Fail(Errc::kNotFound, "dataset '" + name + "' has no version " + std::string(spec));
  return found;
}

json Dataset::ToJson() const {
  json versions_json = json::array();
  for (const Version& v : versions) versions_json.push_back(VersionJson(v));
  json events_json = json::array();
  for (const Event& e : events) events_json.push_back(EventJson(e));
  json j = {{"registry_version", 1}, {"name", name}, {"current", current}, {"last_good", last_good},
            {"quarantined", quarantined}, {"versions", std::move(versions_json)}, {"events", std::move(events_json)}};
  if (quarantined) j["quarantine_reason"] = quarantine_reason;
  return j;
}

Result<Dataset> Dataset::FromJson(const json& j) {
  try {
    Dataset d;
    d.name = j.at("name").get<std::string>();
    d.current = j.value("current", "");
    d.last_good = j.value("last_good", "");
    d.quarantined = j.value("quarantined", false);
    d.quarantine_reason = j.value("quarantine_reason", "");
    for (const json& v : j.at("versions")) d.versions.push_back(VersionFromJson(v));
    for (const json& e : j.value("events", json::array())) d.events.push_back(EventFromJson(e));
    return d;
  } catch (const json::exception& e) {
    return Fail(Errc::kInvalidData, std::string("malformed registry document: ") + e.what());
  }
}

Result<Registry> Registry::Open(const std::string& state_dir) {
  const std::string dir = state_dir + "/datasets";
  auto made = MakeDir(dir, 0700);
  if (!made) return std::unexpected(WithContext(made.error(), "dataset registry " + dir));
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return FailErrno("dataset registry " + dir);
  if (st.st_uid != ::geteuid() || (st.st_mode & 0077) != 0) {
    return Fail(Errc::kPermissionDenied, "dataset registry " + dir + " must be a 0700 directory of uid " +
                                             std::to_string(::geteuid()));
  }
  return Registry(dir);
}

std::string Registry::PathOf(std::string_view name) const {
  if (IsPlainName(name)) return dir_ + "/" + std::string(name) + ".json";
  return dir_ + "/x-" + HexEncode(name) + ".json";
}

Result<std::vector<std::string>> Registry::Names() const {
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) return FailErrno("list " + dir_);
  std::vector<std::string> files;
  while (const dirent* e = ::readdir(d)) {
    const std::string file = e->d_name;
    if (file.size() > 5 && file.ends_with(".json") && file.front() != '.') files.push_back(file);
  }
  ::closedir(d);
  std::vector<std::string> names;
  for (const std::string& file : files) {
    auto text = ReadFileLimited(dir_ + "/" + file, kMaxDocumentBytes);
    if (!text) continue;
    const json j = json::parse(*text, nullptr, false);
    if (j.is_object() && j.contains("name") && j["name"].is_string()) names.push_back(j["name"].get<std::string>());
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::optional<Dataset>> Registry::Load(std::string_view name) const {
  const std::string path = PathOf(name);
  if (::access(path.c_str(), F_OK) != 0) return std::optional<Dataset>();
  auto text = ReadFileLimited(path, kMaxDocumentBytes);
  if (!text) return std::unexpected(text.error());
  const json j = json::parse(*text, nullptr, false);
  if (j.is_discarded()) return Fail(Errc::kInvalidData, path + ": not JSON");
  auto d = Dataset::FromJson(j);
  if (!d) return std::unexpected(WithContext(d.error(), path));
  if (d->name != name) return Fail(Errc::kInvalidData, path + ": holds dataset '" + d->name + "'");
  return std::optional<Dataset>(std::move(*d));
}

Result<Dataset> Registry::Update(std::string_view name, const std::function<Status(Dataset&)>& change) {
  if (auto ok = sealed::CheckDatasetName(name); !ok) return std::unexpected(ok.error());
  auto lock = Lock(dir_);
  if (!lock) return std::unexpected(lock.error());
  auto loaded = Load(name);
  if (!loaded) return std::unexpected(loaded.error());
  Dataset d = loaded->value_or(Dataset{});
  d.name = std::string(name);
  if (auto ok = change(d); !ok) return std::unexpected(ok.error());
  if (d.events.size() > kMaxEvents) d.events.erase(d.events.begin(), d.events.end() - kMaxEvents);
  if (auto ok = WriteFileAtomic(PathOf(name), d.ToJson().dump(1) + "\n", 0600); !ok) return std::unexpected(ok.error());
  return d;
}

Caller CallerFor(std::optional<uid_t> uid) {
  Caller c;
  c.uid = uid.value_or(::getuid());
  if (const passwd* pw = ::getpwuid(c.uid)) c.user = pw->pw_name;
  else c.user = std::to_string(c.uid);
  return c;
}

Version VersionFrom(const std::string& sha256, const std::string& path, const sealed::Header& header,
                    const Profile& profile, const Caller& by, std::int64_t now) {
  Version v;
  v.id = sha256;
  v.path = path;
  v.sealed_by = by;
  v.sealed_at = now;
  v.key_ref = header.key.ToString();
  v.key_version = header.kek_version;
  v.plaintext_bytes = profile.plaintext_bytes;
  v.rows = profile.rows;
  v.header = profile.header;
  v.content_digest = profile.content_digest;
  v.summaries = profile.summaries;
  return v;
}

}  // namespace cordon::datasets
