#include "cordon/runner/outputs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "cordon/file_io.h"
#include "cordon/unique_fd.h"

namespace cordon::runner {
namespace {

using nlohmann::json;

constexpr std::uint64_t kMaxIndexBytes = 256ull << 20;
constexpr std::size_t kMaxPathDepth = 64;

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

// One output the index lists, checked before anything is written.
struct Entry {
  std::string file;                // out-NNNNNN.sealed
  std::vector<std::string> parts;  // the relative path's components
  std::string sha256;
  std::uint64_t version = 0;       // a live output's version (0: sealed once, at the end)
};

Result<Entry> CheckEntry(const json& entry) {
  const auto text = [&](const char* key) -> const json* {
    auto it = entry.find(key);
    return it != entry.end() && it->is_string() ? &*it : nullptr;
  };
  const json* file = text("file");
  const json* path = text("path");
  const json* sha = text("sha256");
  if (file == nullptr || path == nullptr || sha == nullptr) return Fail(Errc::kInvalidData, "the index holds a malformed entry");
  Entry out{file->get<std::string>(), {}, sha->get<std::string>()};
  if (auto v = entry.find("version"); v != entry.end()) {
    if (!v->is_number_unsigned()) return Fail(Errc::kInvalidData, "the index holds a malformed entry");
    out.version = v->get<std::uint64_t>();
  }
  const bool cordon_name = out.file.size() == 17 && out.file.starts_with("out-") && out.file.ends_with(".sealed") &&
                           std::all_of(out.file.begin() + 4, out.file.begin() + 10, [](char c) { return c >= '0' && c <= '9'; });
  if (!cordon_name) return Fail(Errc::kInvalidData, "the index names a file Cordon does not make");
  auto parts = SafeComponents(path->get<std::string>());
  if (!parts) return std::unexpected(parts.error());
  out.parts = std::move(*parts);
  return out;
}

Status ExtractOne(int job_fd, int dest_fd, const Entry& entry, const sealed::KeyManagers& kms, Extracted& done) {
  const std::string& file = entry.file;
  UniqueFd in(::openat(job_fd, file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in) return FailErrno("open " + file);
  auto sha = sealed::Sha256Fd(in.get());
  if (!sha) return std::unexpected(sha.error());
  if (*sha != entry.sha256) return Fail(Errc::kIntegrity, file + ": sha256 differs from the index");
  auto parent = OpenParent(dest_fd, entry.parts);
  if (!parent) return std::unexpected(parent.error());
  UniqueFd out(::openat(parent->get(), entry.parts.back().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
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

}  // namespace

Result<Extracted> ExtractOutputs(const std::string& job_dir, const std::string& dest, const sealed::KeyManagers& kms) {
  UniqueFd job_fd(::open(job_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!job_fd) return FailErrno(job_dir);
  // A job still running (or one a host crash stopped) has no index.sealed yet: its live outputs
  // are listed in index.live.sealed.
  std::string index_file = "index.sealed", index_dataset = "index";
  UniqueFd index_fd(::openat(job_fd.get(), index_file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!index_fd && errno == ENOENT) {
    index_fd.reset(::openat(job_fd.get(), "index.live.sealed", O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (index_fd) index_file = "index.live.sealed", index_dataset = "index-live";
    else errno = ENOENT;
  }
  if (!index_fd) return FailErrno(job_dir + "/index.sealed");
  Extracted done;
  done.live_index = index_dataset != "index";
  std::string text;
  auto report = UnsealChecked(index_fd.get(), kms, index_dataset, done.job, [&](std::span<const std::uint8_t> p) -> Status {
    if (text.size() + p.size() > kMaxIndexBytes) return Fail(Errc::kInvalidData, "the index is too large");
    text.append(reinterpret_cast<const char*>(p.data()), p.size());
    return {};
  });
  if (!report) return std::unexpected(WithContext(report.error(), index_file));
  const json index = json::parse(text, nullptr, false);
  if (!index.is_array()) return Fail(Errc::kInvalidData, index_file + " does not hold a JSON array");
  // Every entry is checked before DEST exists: a bad index writes nothing.
  std::vector<Entry> entries;
  for (const json& entry : index) {
    if (!entry.is_object()) return Fail(Errc::kInvalidData, "the index holds a malformed entry");
    if (entry.contains("refused")) {
      ++done.refused;
      continue;
    }
    auto checked = CheckEntry(entry);
    if (!checked) return std::unexpected(checked.error());
    entries.push_back(std::move(*checked));
  }
  // A path sealed in several versions (live outputs) is restored once: its highest version.
  std::map<std::vector<std::string>, std::size_t> latest;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    auto [it, fresh] = latest.try_emplace(entries[i].parts, i);
    if (!fresh && entries[i].version >= entries[it->second].version) it->second = i;
  }
  std::vector<Entry> restore;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (latest.at(entries[i].parts) == i) restore.push_back(std::move(entries[i]));
  }
  done.superseded = entries.size() - restore.size();
  entries = std::move(restore);
  // The tree is written into a fresh sibling of DEST and renamed to DEST only once every file is
  // restored and synced: a failure part-way (a tampered output, a full disk) leaves no DEST and no
  // plaintext behind.
  struct stat st{};
  if (::lstat(dest.c_str(), &st) == 0) return Fail(Errc::kAlreadyExists, dest + " already exists: DEST must be new");
  std::string staging = dest + ".partial-XXXXXX";
  if (::mkdtemp(staging.data()) == nullptr) return FailErrno("create " + dest);
  auto restored = [&]() -> Status {
    UniqueFd dest_fd(::open(staging.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dest_fd) return FailErrno(staging);
    for (const Entry& entry : entries) {
      if (auto ok = ExtractOne(job_fd.get(), dest_fd.get(), entry, kms, done); !ok) return ok;
    }
    if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE) != 0) {
      return FailErrno("rename the restored tree to " + dest);
    }
    const std::filesystem::path parent = std::filesystem::path(dest).parent_path();
    return FsyncDir(parent.empty() ? "." : parent.string());
  }();
  if (!restored) {
    std::error_code ignored;
    std::filesystem::remove_all(staging, ignored);  // never follows a link inside
    return std::unexpected(restored.error());
  }
  return done;
}


}  // namespace cordon::runner
