#include "integrity.h"

#include <ctime>

#include "cordon/datasets/datasets.h"
#include "cordon/datasets/quarantine.h"

namespace cordon::runner::internal {

Result<std::optional<std::string>> QuarantineReason(const std::string& state_dir, const std::string& dataset, int fd,
                                                    const sealed::SealedInfo& info, std::string& sha256) {
  auto hit = datasets::CheckQuarantine(state_dir, dataset, fd, info, sha256);
  if (!hit) return std::unexpected(hit.error());
  return *hit ? std::optional<std::string>((*hit)->message) : std::nullopt;
}

std::optional<orchestrator::Summaries> LastGoodSummaries(const std::string& state_dir, const std::string& dataset) {
  auto registry = datasets::Registry::Open(state_dir);
  if (!registry) return std::nullopt;
  auto loaded = registry->Load(dataset);
  if (!loaded || !*loaded || (*loaded)->last_good.empty()) return std::nullopt;
  const datasets::Version* v = (*loaded)->Find((*loaded)->last_good);
  return v ? v->summaries : std::nullopt;
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

}  // namespace cordon::runner::internal
