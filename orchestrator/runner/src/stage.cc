#include "stage.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <openssl/crypto.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <sys/mman.h>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "cordon/file_io.h"
#include "cordon/datasets/csv_projection.h"
#include "cordon/unique_fd.h"

namespace cordon::runner::internal {
namespace {

using nlohmann::json;

Status ReadExactly(int fd, std::uint8_t* out, std::size_t size) {
  std::size_t got = 0;
  while (got < size) {
    const ssize_t n = RetryEintr([&] { return ::read(fd, out + got, size - got); });
    if (n <= 0) return Fail(Errc::kInternal, "the key pipe ended early");
    got += static_cast<std::size_t>(n);
  }
  return {};
}

// The init's view of the KMS: it can only ask the runner, over the control
// socket, to wrap a data key it generated. Nothing else is reachable from here.
class RemoteWrapper final : public kms::KeyManager {
 public:
  RemoteWrapper(int ctl_fd, KeyRef key) : ctl_fd_(ctl_fd), key_(std::move(key)) {}
  std::string_view adapter() const override { return key_.adapter; }
  Result<kms::KeyInfo> Create(std::string_view) override { return Unsupported(); }
  Result<std::vector<kms::KeyInfo>> List() override { return Unsupported(); }
  Result<kms::KeyInfo> Describe(std::string_view) override { return Unsupported(); }
  Result<kms::KeyInfo> Rotate(std::string_view) override { return Unsupported(); }
  Status Disable(std::string_view) override { return Unsupported(); }
  Result<SecretBytes> Unwrap(std::string_view, std::uint32_t, std::span<const std::uint8_t>,
                             const kms::WrapContext&) override {
    return Unsupported();
  }

  Result<kms::WrappedKey> Wrap(std::string_view name, const SecretBytes& dek,
                               const kms::WrapContext& context) override {
    if (name != key_.name) return Fail(Errc::kInternal, "unexpected wrap request");
    auto request = EncodeWrapRequest(context, dek);
    if (!request) return std::unexpected(request.error());
    Status sent = SendMessage(ctl_fd_, Msg::kWrapRequest, *request);
    OPENSSL_cleanse(request->data(), request->size());
    if (!sent) return std::unexpected(sent.error());
    return ReceiveWrapped();
  }

 private:
  static std::unexpected<Error> Unsupported() {
    return Fail(Errc::kUnsupported, "not available inside the sandbox");
  }

  Result<kms::WrappedKey> ReceiveWrapped() {
    auto got = ReceiveMessage(ctl_fd_, true);
    if (!got || got->status != Received::Status::kMessage) {
      const bool cut = got && got->status == Received::Status::kTruncated;
      return Fail(Errc::kKmsUnavailable, cut ? "the runner's answer to a wrap request was over the control socket's limit"
                                             : "the runner did not answer a wrap request");
    }
    return DecodeWrapReply(got->datagram);
  }

  int ctl_fd_;
  KeyRef key_;
};

void Report(int ctl_fd, Msg type, const json& body) { (void)SendMessage(ctl_fd, type, body.dump()); }

// The live-metrics relay: a child of the init that drops to the trainer's uid
// (so it is no more privileged than the trainer, and not dumpable), keeps only
// the pipe to the runner, and forwards what the trainer appends to its metrics
// file. The runner parses and sanitises; the relay only copies bytes.
[[noreturn]] void RelayMain(const StagePlan& plan) {
  (void)::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::dup2(plan.metrics_fd, 0) < 0) ::_exit(1);
  ::close_range(1, ~0u, 0);
  if (::setgroups(0, nullptr) != 0 || ::setresgid(plan.gid, plan.gid, plan.gid) != 0 ||
      ::setresuid(plan.uid, plan.uid, plan.uid) != 0 || ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    ::_exit(1);
  }
  ino_t inode = 0;
  off_t offset = 0;
  std::uint8_t buffer[16384];
  for (;;) {
    ::usleep(250'000);
    UniqueFd fd(::open(kMetricsPath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (st.st_ino != inode || st.st_size < offset) {
      inode = st.st_ino;
      offset = 0;
    }
    const ssize_t n = ::pread(fd.get(), buffer, sizeof buffer, offset);
    if (n <= 0) continue;
    if (!WriteAll(0, {buffer, static_cast<std::size_t>(n)})) ::_exit(0);
    offset += n;
  }
}

// Runs `op` with the trainer's file-system identity (setfsuid/setfsgid; this
// thread only) and returns its result with its errno. What the trainer made in
// /out and /tmp is opened as the trainer would: the init needs no CAP_DAC_*
// for it, so the hardened unit can drop them (docs/DAEMON.md). A change of
// fsuid clears the parent-death signal (prctl(2)): it is armed again after.
template <class Op>
auto AsTrainer(const StagePlan& plan, Op op) {
  int death_signal = 0;
  (void)::prctl(PR_GET_PDEATHSIG, &death_signal);
  ::setfsgid(plan.gid);
  ::setfsuid(plan.uid);
  auto result = op();
  const int saved = errno;
  ::setfsuid(0);
  ::setfsgid(0);
  if (death_signal != 0) (void)::prctl(PR_SET_PDEATHSIG, death_signal);
  errno = saved;
  return result;
}

Status CreateMetricsFile(const StagePlan& plan) {  // the trainer's own file in its /tmp
  UniqueFd fd(AsTrainer(plan, [] { return ::open(kMetricsPath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600); }));
  if (!fd) return FailErrno(std::string("create ") + kMetricsPath);
  return {};
}

Status DecryptInput(const InputPlan& input, SecretBytes dek, int ctl_fd) {
  const std::string path = "/data/" + input.name;
  UniqueFd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) return FailErrno("create " + path);
  const auto write_out = [&](std::string_view bytes) { return WriteAll(out.get(), bytes); };
  Status result;
  if (input.expect) {
    result = DecryptWithExpectations(input, dek, out.get(), ctl_fd);
  } else if (input.columns.empty()) {
    auto report = sealed::UnsealWithKey(input.fd, input.header, dek, [&](std::span<const std::uint8_t> p) {
      return WriteAll(out.get(), p);
    });
    if (!report) result = std::unexpected(report.error());
  } else {
    orchestrator::CsvProjector projector(input.columns, write_out);
    auto report = sealed::UnsealWithKey(input.fd, input.header, dek, [&](std::span<const std::uint8_t> p) {
      return projector.Feed({reinterpret_cast<const char*>(p.data()), p.size()});
    });
    if (!report) result = std::unexpected(report.error());
    else result = projector.Finish();
  }
  if (!result) {
    // Nothing partial may reach the trainer: drop the file's pages now.
    if (::ftruncate(out.get(), 0) != 0) { /* unlinked next: its pages go with it */ }
    ::unlink(path.c_str());
  }
  return result;
}

// ---- stage out ----

struct OutputWalk {
  const StagePlan& plan;
  int out_dir_fd;
  RemoteWrapper wrapper;
  SealLedger& ledger;
  std::chrono::steady_clock::time_point deadline{};
  std::size_t examined = 0;
  std::vector<std::string> temps{};  // ".out-NNNNNN.partial", renamed once all are synced
  std::vector<json> sealed{};        // what goes to the runner for each output sealed now
  std::map<std::string, std::uint64_t> refused{};  // kind -> count
  std::size_t refused_total = 0;
  bool deadline_hit = false;
};

// The relative path as a JSON string, or null when it is not UTF-8 (the index
// cannot hold it; such a file is refused as "name").
json PathJson(const std::string& rel) {
  json path = rel;
  try {
    (void)path.dump();
  } catch (const json::exception&) {
    return nullptr;
  }
  return path;
}

void AddToIndex(OutputWalk& walk, const json& entry) {
  if (walk.ledger.index_entries++ > 0) walk.ledger.index += ',';
  walk.ledger.index += entry.dump();
}

std::int64_t Nanos(const timespec& t) { return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec; }

SealLedger::Version VersionOf(const struct stat& st, std::uint32_t version) {
  return {st.st_dev, st.st_ino, st.st_size, Nanos(st.st_mtim), Nanos(st.st_ctim), version};
}

// The file's last live version, when it is exactly this file unchanged (a write changes ctime).
bool SealedLiveUnchanged(const SealLedger& ledger, const std::string& rel, const struct stat& st) {
  const auto it = ledger.live.find(rel);
  if (it == ledger.live.end()) return false;
  const SealLedger::Version now = VersionOf(st, it->second.version);
  const SealLedger::Version& was = it->second;
  return now.dev == was.dev && now.ino == was.ino && now.size == was.size && now.mtime_ns == was.mtime_ns &&
         now.ctime_ns == was.ctime_ns;
}

std::uint32_t NextVersion(const SealLedger& ledger, const std::string& rel) {
  const auto it = ledger.live.find(rel);
  return it == ledger.live.end() ? 0 : it->second.version + 1;
}

// A refusal: counted by kind, the path kept for the sealed index only.
void Refuse(OutputWalk& walk, const std::string& rel, const char* kind) {
  ++walk.refused[kind];
  if (++walk.refused_total <= kMaxRefusalReports) {
    Report(walk.plan.ctl_fd, Msg::kRefused, {{"n", walk.refused_total}, {"kind", kind}});
  }
  if (walk.refused_total <= kMaxIndexedRefusals) AddToIndex(walk, {{"path", PathJson(rel)}, {"refused", kind}});
}

bool PastDeadline(OutputWalk& walk) {
  if (!walk.deadline_hit && std::chrono::steady_clock::now() > walk.deadline) walk.deadline_hit = true;
  return walk.deadline_hit;
}

// Seals the open plaintext `in` into `<temp>` in the job directory; the report's sha256 is the file's.
Result<sealed::Report> SealInto(OutputWalk& walk, int in, const std::string& temp, const std::string& dataset) {
  UniqueFd out(::openat(walk.out_dir_fd, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640));
  if (!out) return FailErrno("create " + temp);
  walk.temps.push_back(temp);
  sealed::SealOptions options;
  options.key = walk.plan.output_key;
  options.dataset = dataset;
  options.job = walk.plan.job_id;
  auto report = sealed::SealStream(in, out.get(), walk.wrapper, options);
  if (!report) return std::unexpected(WithContext(report.error(), "sealing " + dataset));
  return report;
}

Status SealOne(OutputWalk& walk, int dir_fd, const std::string& entry, const std::string& rel) {
  SealLedger& ledger = walk.ledger;
  UniqueFd in(AsTrainer(walk.plan, [&] { return ::openat(dir_fd, entry.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC); }));
  struct stat st {};
  const bool readable = in && ::fstat(in.get(), &st) == 0 && S_ISREG(st.st_mode);
  if (readable && st.st_nlink == 1 && SealedLiveUnchanged(ledger, rel, st)) return {};  // its live version stands
  if (ledger.sealed_count >= walk.plan.max_files) return Refuse(walk, rel, "file_cap"), Status{};
  if (PastDeadline(walk)) return Refuse(walk, rel, "deadline"), Status{};
  if (!readable) return Refuse(walk, rel, "unreadable"), Status{};
  if (st.st_nlink != 1) return Refuse(walk, rel, "hard_link"), Status{};  // it may alias another file
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > walk.plan.max_bytes - std::min(walk.plan.max_bytes, ledger.sealed_bytes)) {
    return Refuse(walk, rel, "byte_cap"), Status{};  // sparse, or past the job's byte cap
  }
  json entry_json = {{"path", PathJson(rel)}};
  if (entry_json["path"].is_null()) return Refuse(walk, rel, "name"), Status{};
  const std::size_t n = ++ledger.sealed_count;
  const std::string dataset = OutputDataset(n);
  auto report = SealInto(walk, in.get(), "." + dataset + ".partial", dataset);
  if (!report) return std::unexpected(report.error());
  ledger.sealed_bytes += report->plaintext_bytes;
  entry_json["file"] = dataset + ".sealed";
  entry_json["size"] = report->plaintext_bytes;
  entry_json["sha256"] = report->sha256;
  if (const std::uint32_t version = NextVersion(ledger, rel); version > 0) entry_json["version"] = version;
  AddToIndex(walk, entry_json);
  walk.sealed.push_back({{"file", dataset + ".sealed"}, {"size", report->plaintext_bytes}, {"sha256", report->sha256}});
  return {};
}

Status WalkDir(OutputWalk& walk, int dir_fd, const std::string& prefix, int depth) {
  UniqueFd dup_fd(::dup(dir_fd));
  DIR* dir = dup_fd ? ::fdopendir(dup_fd.get()) : nullptr;
  if (dir == nullptr) return FailErrno("read a directory of /out");
  (void)dup_fd.release();
  std::vector<std::string> names;
  while (dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
    if (walk.examined + names.size() > kMaxOutputEntries) break;
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string rel = prefix + name;
    if (++walk.examined > kMaxOutputEntries) {
      Refuse(walk, rel, "entry_cap");
      continue;
    }
    struct stat st {};
    if (AsTrainer(walk.plan, [&] { return ::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW); }) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (depth >= kMaxOutputDepth) {
        Refuse(walk, rel + "/", "depth");
        continue;
      }
      UniqueFd sub(AsTrainer(walk.plan, [&] { return ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC); }));
      if (!sub) {
        Refuse(walk, rel + "/", "unreadable");
        continue;
      }
      if (auto ok = WalkDir(walk, sub.get(), rel + "/", depth + 1); !ok) return ok;
      continue;
    }
    if (S_ISLNK(st.st_mode)) { Refuse(walk, rel, "symlink"); continue; }
    if (S_ISFIFO(st.st_mode)) { Refuse(walk, rel, "fifo"); continue; }
    if (S_ISSOCK(st.st_mode)) { Refuse(walk, rel, "socket"); continue; }
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) { Refuse(walk, rel, "device"); continue; }
    if (!S_ISREG(st.st_mode)) { Refuse(walk, rel, "other_type"); continue; }
    if (auto ok = SealOne(walk, dir_fd, name, rel); !ok) return ok;
  }
  return {};
}

// Every sealed output is written under a temp name; one syncfs makes them all
// durable, then each is renamed to its final name and the directory is synced.
Status CommitOutputs(OutputWalk& walk) {
  if (walk.temps.empty()) return {};
  if (::syncfs(walk.out_dir_fd) != 0) return FailErrno("syncfs the job directory");
  for (const std::string& temp : walk.temps) {
    const std::string final_name = temp.substr(1, temp.size() - 1 - std::string_view(".partial").size()) + ".sealed";
    if (::renameat2(walk.out_dir_fd, temp.c_str(), walk.out_dir_fd, final_name.c_str(), RENAME_NOREPLACE) != 0) {
      return FailErrno("rename " + final_name);
    }
  }
  walk.temps.clear();
  return {};
}

Status SealIndex(OutputWalk& walk) {
  walk.ledger.index += ']';
  const std::string& text = walk.ledger.index;
  UniqueFd memfd(::memfd_create("cordon-output-index", MFD_CLOEXEC));
  if (!memfd || !WriteAll(memfd.get(), text)) return FailErrno("buffer the output index");
  ::lseek(memfd.get(), 0, SEEK_SET);
  const std::string temp = std::string(".") + kIndexFile + ".partial";
  auto report = SealInto(walk, memfd.get(), temp, kIndexDataset);
  if (!report) return std::unexpected(report.error());
  if (::fsync(walk.out_dir_fd) != 0) return FailErrno("fsync the job directory");
  UniqueFd written(::openat(walk.out_dir_fd, temp.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!written || ::fsync(written.get()) != 0) return FailErrno("fsync " + temp);
  if (::renameat2(walk.out_dir_fd, temp.c_str(), walk.out_dir_fd, kIndexFile, RENAME_NOREPLACE) != 0) {
    return FailErrno(std::string("rename ") + kIndexFile);
  }
  walk.temps.clear();
  if (::fsync(walk.out_dir_fd) != 0) return FailErrno("fsync the job directory");
  Report(walk.plan.ctl_fd, Msg::kIndex, {{"file", kIndexFile}, {"size", report->plaintext_bytes},
                                         {"sha256", report->sha256}, {"entries", walk.ledger.index_entries}});
  return {};
}

// The live index: every live version so far, sealed under its own dataset name and put in
// place of the previous one (rename over it: a crash leaves the old one or the new one).
Status WriteLiveIndex(OutputWalk& walk) {
  const std::string text = walk.ledger.index + "]";
  UniqueFd memfd(::memfd_create("cordon-live-index", MFD_CLOEXEC));
  if (!memfd || !WriteAll(memfd.get(), text)) return FailErrno("buffer the live index");
  ::lseek(memfd.get(), 0, SEEK_SET);
  const std::string temp = std::string(".") + kLiveIndexFile + ".partial";
  auto report = SealInto(walk, memfd.get(), temp, kLiveIndexDataset);
  walk.temps.clear();
  if (!report) {
    (void)::unlinkat(walk.out_dir_fd, temp.c_str(), 0);
    return std::unexpected(report.error());
  }
  UniqueFd written(::openat(walk.out_dir_fd, temp.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!written || ::fsync(written.get()) != 0) return FailErrno("fsync " + temp);
  if (::renameat(walk.out_dir_fd, temp.c_str(), walk.out_dir_fd, kLiveIndexFile) != 0) {
    return FailErrno(std::string("rename ") + kLiveIndexFile);
  }
  if (::fsync(walk.out_dir_fd) != 0) return FailErrno("fsync the job directory");
  return {};
}

// /out/<path> opened component by component as the trainer, no link followed.
UniqueFd OpenLiveFile(const StagePlan& plan, std::string_view path) {
  return UniqueFd(AsTrainer(plan, [&] {
    UniqueFd dir(::open("/out", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    std::size_t at = 0;
    for (int depth = 0; dir; ++depth) {
      const std::size_t slash = path.find('/', at);
      const std::string part(path.substr(at, slash == std::string_view::npos ? std::string_view::npos : slash - at));
      if (part.empty() || part == "." || part == ".." || depth > kMaxOutputDepth) return -1;
      if (slash == std::string_view::npos) {
        return ::openat(dir.get(), part.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      }
      dir.reset(::openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      at = slash + 1;
    }
    return -1;
  }));
}

void ReportOutputs(const OutputWalk& walk) {
  for (const json& output : walk.sealed) Report(walk.plan.ctl_fd, Msg::kOutput, output);
}

// After the trainer: the last short lines of the metrics file (the relay may
// not have seen them), oldest first; the runner keeps the last valid one.
void SendFinalMetrics(const StagePlan& plan) {
  const int ctl_fd = plan.ctl_fd;
  constexpr off_t kTail = 64 * 1024;
  constexpr std::size_t kLines = 16;
  UniqueFd fd(AsTrainer(plan, [] { return ::open(kMetricsPath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC); }));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return;
  const off_t start = st.st_size > kTail ? st.st_size - kTail : 0;
  std::string tail(static_cast<std::size_t>(st.st_size - start), '\0');
  const ssize_t n = ::pread(fd.get(), tail.data(), tail.size(), start);
  if (n <= 0) return;
  tail.resize(static_cast<std::size_t>(n));
  std::vector<std::string_view> lines;
  std::string_view rest = tail;
  if (start != 0) rest.remove_prefix(std::min(rest.size(), rest.find('\n') + 1));  // a partial first line
  while (!rest.empty()) {
    const std::size_t nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    if (!line.empty() && line.size() < 4096) lines.push_back(line);
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  const std::size_t first = lines.size() > kLines ? lines.size() - kLines : 0;
  for (std::size_t i = first; i < lines.size(); ++i) (void)SendMessage(ctl_fd, Msg::kMetrics, lines[i]);
}

}  // namespace

std::string OutputDataset(std::size_t n) {
  char name[32];
  std::snprintf(name, sizeof name, "out-%06zu", n);
  return name;
}

Status StageIn(const StagePlan& plan) {
  if (auto ok = CreateMetricsFile(plan); !ok) return ok;
  // The relay forks before any plaintext exists in this process's memory.
  // fork(), not Spawn: the relay is our own code (RelayMain), and inside the
  // sandbox there is no program of ours to exec.
  const pid_t relay = ::fork();
  if (relay < 0) return FailErrno("fork the metrics relay");
  if (relay == 0) RelayMain(plan);
  ::close(plan.metrics_fd);
  for (const InputPlan& input : plan.inputs) {
    SecretBytes dek(kms::kDekBytes);
    Status st = ReadExactly(plan.keys_fd, dek.data(), dek.size());
    if (st) st = DecryptInput(input, std::move(dek), plan.ctl_fd);
    if (!st) {
      Report(plan.ctl_fd, Msg::kInputError,
             {{"input", input.name}, {"code", ErrcName(st.error().code)}, {"message", st.error().message}});
      return std::unexpected(WithContext(st.error(), "input '" + input.name + "'"));
    }
    ::close(input.fd);
  }
  ::close(plan.keys_fd);
  return {};
}

Status SealLive(const StagePlan& plan, SealLedger& ledger, int output_dir_fd, std::string_view path) {
  const std::string rel(path);
  const bool inside = std::any_of(plan.live.begin(), plan.live.end(), [&](const std::string& p) { return rel.starts_with(p); });
  if (!inside || output_dir_fd < 0 || ledger.live_seals >= kMaxLiveSeals || PathJson(rel).is_null()) return {};
  UniqueFd in = OpenLiveFile(plan, rel);
  struct stat st {};
  if (!in || ::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) return {};
  if (SealedLiveUnchanged(ledger, rel, st)) return {};
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (ledger.sealed_count >= plan.max_files || size > plan.max_bytes - std::min(plan.max_bytes, ledger.sealed_bytes)) {
    return {};  // the final stage-out refuses it, counted
  }
  OutputWalk walk{plan, output_dir_fd, RemoteWrapper(plan.ctl_fd, plan.output_key), ledger};
  const std::size_t n = ledger.sealed_count + 1;
  const std::string dataset = OutputDataset(n);
  auto report = SealInto(walk, in.get(), "." + dataset + ".partial", dataset);
  Status st_ok = report ? CommitOutputs(walk) : Status(std::unexpected(report.error()));
  if (st_ok && ::fsync(output_dir_fd) != 0) st_ok = FailErrno("fsync the job directory");
  if (!st_ok) {
    for (const std::string& temp : walk.temps) ::unlinkat(output_dir_fd, temp.c_str(), 0);
    return st_ok;
  }
  ledger.sealed_count = n;
  ++ledger.live_seals;
  ledger.sealed_bytes += report->plaintext_bytes;
  const std::uint32_t version = std::max<std::uint32_t>(NextVersion(ledger, rel), 1);
  ledger.live[rel] = VersionOf(st, version);
  AddToIndex(walk, {{"path", rel}, {"file", dataset + ".sealed"}, {"size", report->plaintext_bytes},
                    {"sha256", report->sha256}, {"live", true}, {"version", version}});
  Status indexed = WriteLiveIndex(walk);
  Report(plan.ctl_fd, Msg::kLiveOutput, {{"file", dataset + ".sealed"}, {"size", report->plaintext_bytes},
                                         {"sha256", report->sha256}, {"version", version}});
  return indexed;
}

Status StageOut(const StagePlan& plan, SealLedger& ledger, int output_dir_fd) {
  SendFinalMetrics(plan);
  if (output_dir_fd < 0) return Fail(Errc::kInternal, "no output directory");
  UniqueFd out(AsTrainer(plan, [] { return ::open("/out", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC); }));
  if (!out) return FailErrno("open /out");
  OutputWalk walk{plan, output_dir_fd, RemoteWrapper(plan.ctl_fd, plan.output_key), ledger};
  walk.deadline = std::chrono::steady_clock::now() + plan.stage_deadline;
  Status st = WalkDir(walk, out.get(), "", 0);
  if (st) st = CommitOutputs(walk);
  if (st) st = SealIndex(walk);
  if (!st) {
    for (const std::string& temp : walk.temps) ::unlinkat(output_dir_fd, temp.c_str(), 0);
    return st;
  }
  if (!ledger.live.empty()) {  // index.sealed holds every live version: the live index goes
    (void)::unlinkat(output_dir_fd, kLiveIndexFile, 0);
    (void)::fsync(output_dir_fd);
  }
  ReportOutputs(walk);
  Report(plan.ctl_fd, Msg::kStageSummary,
         {{"sealed", ledger.sealed_count}, {"bytes", ledger.sealed_bytes},
          {"refused", walk.refused}, {"refused_total", walk.refused_total}, {"deadline_hit", walk.deadline_hit}});
  return {};
}

}  // namespace cordon::runner::internal
