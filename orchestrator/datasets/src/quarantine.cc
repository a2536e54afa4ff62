#include "cordon/datasets/quarantine.h"

#include <algorithm>
#include <ctime>

#include "cordon/datasets/datasets.h"

namespace cordon::datasets {

Result<std::optional<QuarantineHit>> CheckQuarantine(const std::string& state_dir, const std::string& dataset, int fd,
                                                     std::uint64_t plaintext_bytes, std::string& sha256) {
  auto registry = Registry::Open(state_dir);
  if (!registry) return std::unexpected(registry.error());
  auto loaded = registry->Load(dataset);
  if (!loaded) return std::unexpected(loaded.error());
  if (!*loaded) return std::optional<QuarantineHit>();
  const Dataset& d = **loaded;
  const std::string release = "; release it with `cordon release " + dataset;
  if (d.quarantined) {
    return QuarantineHit{"", d.quarantine_reason,
                         "dataset '" + dataset + "' is quarantined (" + d.quarantine_reason + ")" + release + "`"};
  }
  const bool could_be = std::any_of(d.versions.begin(), d.versions.end(), [&](const Version& v) {
    return v.quarantined && (v.plaintext_bytes == 0 || v.plaintext_bytes == plaintext_bytes);
  });
  if (!could_be) return std::optional<QuarantineHit>();
  if (sha256.empty()) {
    auto sha = sealed::Sha256Fd(fd);
    if (!sha) return std::unexpected(sha.error());
    sha256 = *sha;
  }
  const Version* v = d.Find(sha256);
  if (v == nullptr || !v->quarantined) return std::optional<QuarantineHit>();
  return QuarantineHit{v->id, v->quarantine_reason,
                       "dataset '" + dataset + "' version " + v->id + " is quarantined (" + v->quarantine_reason + ")" +
                           release + "@" + v->id + "`"};
}

Status QuarantineVersion(const std::string& state_dir, const std::string& dataset, const std::string& sha256,
                         const std::string& path, const std::string& job, const std::string& reason) {
  auto registry = datasets::Registry::Open(state_dir);
  if (!registry) return std::unexpected(registry.error());
  const std::int64_t now = std::time(nullptr);
  auto updated = registry->Update(dataset, [&](datasets::Dataset& d) -> Status {
    datasets::Version* v = d.Find(sha256);
    if (v == nullptr) {  // sealed outside the registry: known from now on, by its hash
      datasets::Version fresh;
      fresh.id = sha256;
      fresh.path = path;
      fresh.sealed_at = 0;
      d.versions.push_back(std::move(fresh));
      v = &d.versions.back();
    }
    v->quarantined = true;
    v->quarantine_reason = reason;
    if (d.current == v->id) d.current.clear();
    d.events.push_back({now, "rejected", v->id, datasets::CallerFor(), reason, job});
    d.events.push_back({now, "quarantined", v->id, datasets::CallerFor(), reason, job});
    return {};
  });
  if (!updated) return std::unexpected(updated.error());
  return {};
}

}  // namespace cordon::datasets
