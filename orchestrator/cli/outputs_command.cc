// cordon outputs extract JOB_DIR DEST_DIR [--json]
//
// Restores a job's output tree for an authorised consumer (root, the KMS through
// the config, like `cordon unseal`): index.sealed is unsealed in memory, then
// each out-NNNNNN.sealed is unsealed to DEST_DIR/<its relative path>. DEST_DIR is
// created fresh (0700). The index is sealed, but its paths are still checked
// (relative, no empty, '.' or '..' component, no control bytes, bounded depth),
// every directory and file is made with mkdirat/openat relative to DEST's fd,
// O_NOFOLLOW | O_EXCL, so nothing outside DEST_DIR can be written. Each sealed
// file's header must name the index's job and its own Cordon-made dataset, and
// its sha256 must be the index's. Neither the audit log nor this command's
// output carries a restored path: only counts, the job id and hashes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cordon/file_io.h"
#include "cordon/unique_fd.h"
#include "sealed_cli.h"

namespace cordon::cli {
namespace {

using nlohmann::json;

constexpr std::uint64_t kMaxIndexBytes = 256ull << 20;
constexpr std::size_t kMaxPathDepth = 64;

struct Extracted {
  std::string job;
  std::uint64_t files = 0, bytes = 0, refused = 0;
};

// Unseals the sealed file open at `fd` into `sink`; the header's dataset and job must be `dataset` / `job`
// (an empty `job` takes the header's).
Result<sealed::Report> UnsealChecked(int fd, const sealed::KeyManagers& kms, const std::string& dataset,
                                     std::string& job, const sealed::ChunkSink& sink) {
  auto info = sealed::OpenSealed(fd);
  if (!info) return std::unexpected(info.error());
  const sealed::Header& h = info->header;
  if (h.dataset != dataset || h.job.empty() || (!job.empty() && h.job != job)) {
    return Fail(Errc::kInvalidData, "the sealed file " + dataset + " is not this job's (header: dataset '" + h.dataset +
                                        "', job '" + h.job + "')");
  }
  job = h.job;
  auto adapter = kms.get(h.key.adapter);
  if (!adapter) return std::unexpected(adapter.error());
  auto dek = sealed::UnwrapDataKey(h, **adapter);
  if (!dek) return std::unexpected(dek.error());
  return sealed::UnsealWithKey(fd, h, *dek, sink);
}

// Splits an index path into safe components, or fails (the message names no component).
Result<std::vector<std::string>> SafeComponents(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t at = 0;
  while (true) {
    const std::size_t slash = path.find('/', at);
    parts.push_back(path.substr(at, slash - at));
    if (slash == std::string::npos) break;
    at = slash + 1;
  }
  for (const std::string& p : parts) {
    const bool control = std::any_of(p.begin(), p.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
    if (p.empty() || p == "." || p == ".." || control || p.size() > 255) {
      return Fail(Errc::kInvalidData, "the index holds an unsafe path (absolute, empty, '.' or '..' component, control bytes)");
    }
  }
  if (parts.size() > kMaxPathDepth) return Fail(Errc::kInvalidData, "the index holds a path nested too deep");
  return parts;
}

// Opens (creating as needed) the directory for `parts[0..n-1]` under dest, never following a link.
Result<UniqueFd> OpenParent(int dest_fd, const std::vector<std::string>& parts) {
  UniqueFd dir(::fcntl(dest_fd, F_DUPFD_CLOEXEC, 3));
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    if (::mkdirat(dir.get(), parts[i].c_str(), 0700) != 0 && errno != EEXIST) return FailErrno("mkdir in DEST");
    UniqueFd next(::openat(dir.get(), parts[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next) return FailErrno("open a directory in DEST");
    dir = std::move(next);
  }
  return dir;
}

Status ExtractOne(int job_fd, int dest_fd, const json& entry, const sealed::KeyManagers& kms, Extracted& done) {
  const std::string file = entry.value("file", "");
  const bool cordon_name = file.size() == 17 && file.starts_with("out-") && file.ends_with(".sealed") &&
                           std::all_of(file.begin() + 4, file.begin() + 10, [](char c) { return c >= '0' && c <= '9'; });
  if (!cordon_name || !entry.contains("path") || !entry["path"].is_string()) {
    return Fail(Errc::kInvalidData, "the index holds a malformed entry");
  }
  auto parts = SafeComponents(entry["path"].get<std::string>());
  if (!parts) return std::unexpected(parts.error());
  UniqueFd in(::openat(job_fd, file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in) return FailErrno("open " + file);
  auto sha = sealed::Sha256Fd(in.get());
  if (!sha) return std::unexpected(sha.error());
  if (*sha != entry.value("sha256", "")) return Fail(Errc::kIntegrity, file + ": sha256 differs from the index");
  auto parent = OpenParent(dest_fd, *parts);
  if (!parent) return std::unexpected(parent.error());
  UniqueFd out(::openat(parent->get(), parts->back().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) return FailErrno("create the file of " + file + " in DEST");
  const std::string dataset = file.substr(0, 10);
  auto report = UnsealChecked(in.get(), kms, dataset, done.job,
                              [&](std::span<const std::uint8_t> p) { return WriteAll(out.get(), p); });
  if (!report) return std::unexpected(WithContext(report.error(), file));
  if (::fsync(out.get()) != 0) return FailErrno("fsync the file of " + file);
  ++done.files;
  done.bytes += report->plaintext_bytes;
  return {};
}

Result<Extracted> Extract(const std::string& job_dir, const std::string& dest, const sealed::KeyManagers& kms) {
  UniqueFd job_fd(::open(job_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!job_fd) return FailErrno(job_dir);
  UniqueFd index_fd(::openat(job_fd.get(), "index.sealed", O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!index_fd) return FailErrno(job_dir + "/index.sealed");
  Extracted done;
  std::string text;
  auto report = UnsealChecked(index_fd.get(), kms, "index", done.job, [&](std::span<const std::uint8_t> p) -> Status {
    if (text.size() + p.size() > kMaxIndexBytes) return Fail(Errc::kInvalidData, "the index is too large");
    text.append(reinterpret_cast<const char*>(p.data()), p.size());
    return {};
  });
  if (!report) return std::unexpected(WithContext(report.error(), "index.sealed"));
  const json index = json::parse(text, nullptr, false);
  if (!index.is_array()) return Fail(Errc::kInvalidData, "index.sealed does not hold a JSON array");
  if (::mkdir(dest.c_str(), 0700) != 0) return FailErrno("create " + dest);
  UniqueFd dest_fd(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dest_fd) return FailErrno(dest);
  for (const json& entry : index) {
    if (!entry.is_object()) return Fail(Errc::kInvalidData, "the index holds a malformed entry");
    if (entry.contains("refused")) {
      ++done.refused;
      continue;
    }
    if (auto ok = ExtractOne(job_fd.get(), dest_fd.get(), entry, kms, done); !ok) return std::unexpected(ok.error());
  }
  return done;
}

class OutputsCommand final : public Command {
 public:
  explicit OutputsCommand(CLI::App& app) {
    sub_ = app.add_subcommand("outputs", "work with a finished job's sealed outputs");
    sub_->require_subcommand(1);
    extract_ = sub_->add_subcommand("extract", "unseal a job's outputs into a fresh directory tree");
    extract_->add_option("job_dir", job_dir_, "the job directory (<output.path>/<job id>)")->required();
    extract_->add_option("dest_dir", dest_, "directory to create and fill (must not exist)")->required();
    extract_->add_flag("--json", json_, "print one JSON object: job, files, bytes, refused, dest");
    extract_->footer(
        "Restores each output at DEST_DIR/<the relative path the trainer gave it>, from the\n"
        "sealed index. Outputs the job refused are counted, not restored. Audited as\n"
        "outputs.extracted (write-ahead; only counts and the job id are recorded).\n" +
        std::string(kSealedExitFooter));
  }

  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions& global) override {
    auto kms = KeyManagersFromConfig(global, "outputs extract");
    if (!kms) return kExitInvalid;
    auto audited = AuditedOperation::Begin(global, "outputs extract", "outputs.extracted",
                                           {{"job_dir", job_dir_}, {"dest", dest_}});
    if (!audited) return kExitFailure;
    auto done = Extract(job_dir_, dest_, *kms);
    if (!done) {
      audited->Done({{"job_dir", job_dir_}, {"dest", dest_}}, &done.error());
      return ReportError("outputs extract", done.error());
    }
    const json summary = {{"job", done->job}, {"files", done->files}, {"bytes", done->bytes},
                          {"refused", done->refused}, {"dest", dest_}};
    audited->Done(summary, nullptr);
    if (json_) std::cout << summary.dump(2) << "\n";
    else std::cerr << "extracted " << done->files << " file(s), " << done->bytes << " bytes, of job " << done->job
                   << " into " << dest_ << (done->refused ? " (" + std::to_string(done->refused) + " refused by the job)" : "")
                   << "\n";
    return kExitOk;
  }

 private:
  CLI::App* sub_ = nullptr;
  CLI::App* extract_ = nullptr;
  std::string job_dir_, dest_;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Command> MakeOutputsCommand(CLI::App& app) { return std::make_unique<OutputsCommand>(app); }

}  // namespace cordon::cli
