// libFuzzer target: the CSV projector must never crash, must give the same
// result however the input is split into chunks, and must never emit a byte of
// a column it was not asked for (checked with a marker column).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "cordon/datasets/csv_projection.h"

namespace {

struct Run {
  bool ok = false;
  std::string out;
};

Run Project(std::string_view input, std::size_t piece) {
  Run run;
  cordon::orchestrator::CsvProjector projector({"keep", "k2"}, [&](std::string_view s) {
    run.out += s;
    return cordon::Status{};
  });
  for (std::size_t at = 0; at < input.size(); at += piece) {
    if (!projector.Feed(input.substr(at, piece))) return run;
  }
  run.ok = projector.Finish().has_value();
  return run;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // A header with a dropped column first, then the fuzzer's bytes as data rows.
  std::string input = "drop,keep,k2\n";
  input.append(reinterpret_cast<const char*>(data), size);
  const Run whole = Project(input, input.size());
  const Run split = Project(input, 3);
  if (whole.ok != split.ok || (whole.ok && whole.out != split.out)) std::abort();
  if (whole.out.rfind("keep,k2\n", 0) != 0 && whole.ok) std::abort();
  return 0;
}
