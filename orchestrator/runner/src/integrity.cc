#include "integrity.h"

#include "cordon/datasets/datasets.h"
#include "cordon/datasets/quarantine.h"

namespace cordon::runner::internal {

Result<std::optional<std::string>> QuarantineReason(const std::string& state_dir, const std::string& dataset, int fd,
                                                    const sealed::SealedInfo& info, std::string& sha256) {
  auto hit = datasets::CheckQuarantine(state_dir, dataset, fd, info.plaintext_bytes, sha256);
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

}  // namespace cordon::runner::internal
