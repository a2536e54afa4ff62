// The `expect:` checks inside the sandbox init: one pass over the decrypted
// chunks feeds both /data/<name> and the evaluator (stage.h).
#include <nlohmann/json.hpp>

#include "cordon/file_io.h"
#include "cordon/datasets/csv_projection.h"
#include "stage.h"

namespace cordon::runner::internal {
namespace {

using nlohmann::json;

// What crosses to the runner: the typed result, aggregates only. A result too
// large for one datagram loses its summaries, never its failed checks.
void ReportResult(int ctl_fd, const std::string& input, const orchestrator::ExpectationResult& result) {
  json body = {{"input", input}, {"result", result.ToJson()}};
  std::string text = body.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() + 1 > kMaxMessageBytes) {
    body["result"]["summaries"] = json::object();
    body["result"]["summaries_dropped"] = true;
    text = body.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  (void)SendMessage(ctl_fd, Msg::kExpectations, text);
}

std::string FailureLine(const orchestrator::ExpectationResult& r) {
  std::string line = std::to_string(r.failures.size()) + " of " + std::to_string(r.checks) + " expectations failed:";
  for (std::size_t i = 0; i < r.failures.size() && i < 8; ++i) {
    const auto& f = r.failures[i];
    line += (i ? ", " : " ") + f.check + (f.column.empty() ? "" : "(" + f.column + ")");
  }
  if (r.failures.size() > 8) line += ", ...";
  return line;
}

}  // namespace

Status DecryptWithExpectations(const InputPlan& input, const SecretBytes& dek, int out_fd, int ctl_fd) {
  orchestrator::ExpectationEvaluator evaluator(*input.expect, input.baseline);
  const bool project = !input.columns.empty();
  // Projected: the projector writes the columns and observes in one walk. Not
  // projected: the plaintext goes to /data as it is and an observe-only
  // projector reads the same chunk from memory.
  orchestrator::CsvProjector projector(project ? input.columns : std::vector<std::string>{},
                                       [&](std::string_view bytes) { return WriteAll(out_fd, bytes); });
  projector.Observe(evaluator.columns(), [&](std::span<const std::string_view> fields) { return evaluator.Record(fields); });
  auto report = sealed::UnsealWithKey(input.fd, input.header, dek, [&](std::span<const std::uint8_t> p) -> Status {
    if (!project) {
      if (auto ok = WriteAll(out_fd, p); !ok) return ok;
    }
    return projector.Feed({reinterpret_cast<const char*>(p.data()), p.size()});
  });
  if (!report) return std::unexpected(report.error());
  if (auto ok = projector.Finish(); !ok) return ok;
  const std::uint64_t rows = projector.rows() > 0 ? projector.rows() - 1 : 0;
  const orchestrator::ExpectationResult result = evaluator.Finish(projector.observed_present(), rows);
  ReportResult(ctl_fd, input.name, result);
  if (!result.passed) return Fail(Errc::kInvalidData, FailureLine(result));
  return {};
}

}  // namespace cordon::runner::internal
