#include "stage.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <openssl/crypto.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "cordon/file_io.h"
#include "cordon/orchestrator/csv_projection.h"
#include "cordon/unique_fd.h"

namespace cordon::runner::internal {
namespace {

using nlohmann::json;

Status ReadExactly(int fd, std::uint8_t* out, std::size_t size) {
  std::size_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, out + got, size - got);
    if (n < 0 && errno == EINTR) continue;
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
    if (name != key_.name || dek.size() != kms::kDekBytes || context.dataset.size() > 255 ||
        context.job.size() > 255) {
      return Fail(Errc::kInternal, "unexpected wrap request");
    }
    std::string request;
    request += static_cast<char>(context.dataset.size());
    request += context.dataset;
    request += static_cast<char>(context.job.size());
    request += context.job;
    request.append(reinterpret_cast<const char*>(dek.data()), dek.size());
    Status sent = SendMessage(ctl_fd_, Msg::kWrapRequest, request);
    OPENSSL_cleanse(request.data(), request.size());
    if (!sent) return std::unexpected(sent.error());
    return ReceiveWrapped();
  }

 private:
  static std::unexpected<Error> Unsupported() {
    return Fail(Errc::kUnsupported, "not available inside the sandbox");
  }

  Result<kms::WrappedKey> ReceiveWrapped() {
    std::string reply(kMaxMessageBytes, '\0');
    ssize_t n;
    do n = ::recv(ctl_fd_, reply.data(), reply.size(), 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0) return Fail(Errc::kKmsUnavailable, "the runner did not answer a wrap request");
    reply.resize(static_cast<std::size_t>(n));
    if (reply[0] == static_cast<char>(Msg::kWrapError)) {
      return Fail(Errc::kKmsUnavailable, "wrapping an output key failed: " + reply.substr(1));
    }
    if (reply[0] != static_cast<char>(Msg::kWrapResponse) || reply.size() < 6) {
      return Fail(Errc::kInternal, "malformed wrap response");
    }
    kms::WrappedKey wrapped;
    for (int i = 1; i <= 4; ++i) wrapped.version = (wrapped.version << 8) | static_cast<std::uint8_t>(reply[static_cast<std::size_t>(i)]);
    wrapped.blob.assign(reply.begin() + 5, reply.end());
    return wrapped;
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

Status CreateMetricsFile(const StagePlan& plan) {
  UniqueFd fd(::open(kMetricsPath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return FailErrno(std::string("create ") + kMetricsPath);
  if (::fchown(fd.get(), plan.uid, plan.gid) != 0) return FailErrno("chown metrics file");
  return {};
}

Status DecryptInput(const InputPlan& input, SecretBytes dek) {
  const std::string path = "/data/" + input.name;
  UniqueFd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) return FailErrno("create " + path);
  const auto write_out = [&](std::string_view bytes) { return WriteAll(out.get(), bytes); };
  Status result;
  if (input.columns.empty()) {
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
  RemoteWrapper wrapper;
  std::size_t seen = 0;
};

void Refuse(OutputWalk& walk, const std::string& name, const std::string& reason) {
  Report(walk.plan.ctl_fd, Msg::kRefused, {{"name", name}, {"reason", reason}});
}

bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

Status SealOne(OutputWalk& walk, int dir_fd, int out_dir_fd, const std::string& entry, const std::string& rel) {
  UniqueFd in(::openat(dir_fd, entry.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  struct stat st {};
  if (!in || ::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    Refuse(walk, rel, "could not be opened as a regular file");
    return {};
  }
  if (st.st_nlink != 1) {
    Refuse(walk, rel, "has " + std::to_string(st.st_nlink) + " hard links (refused: it may alias another file)");
    return {};
  }
  if (static_cast<std::uint64_t>(st.st_size) > walk.plan.max_output_bytes) {
    Refuse(walk, rel, "is " + std::to_string(st.st_size) + " bytes, larger than the scratch space (" +
                          std::to_string(walk.plan.max_output_bytes) + " bytes): a sparse file");
    return {};
  }
  const std::string dataset = DatasetForOutput(rel);
  if (dataset.size() > 255 || entry.size() > 240) {
    Refuse(walk, rel, "name is too long to seal");
    return {};
  }
  const std::string temp = "." + entry + ".sealed.partial";
  const std::string final_name = entry + ".sealed";
  UniqueFd out(::openat(out_dir_fd, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640));
  if (!out) return FailErrno("create sealed output for " + rel);
  sealed::SealOptions options;
  options.key = walk.plan.output_key;
  options.dataset = dataset;
  options.job = walk.plan.job_id;
  auto report = sealed::SealStream(in.get(), out.get(), walk.wrapper, options);
  if (report && ::fsync(out.get()) != 0) report = FailErrno("fsync sealed output for " + rel);
  if (report && ::renameat2(out_dir_fd, temp.c_str(), out_dir_fd, final_name.c_str(), RENAME_NOREPLACE) != 0) {
    report = FailErrno("rename sealed output for " + rel);
  }
  if (!report) {
    ::unlinkat(out_dir_fd, temp.c_str(), 0);
    return std::unexpected(WithContext(report.error(), "sealing output " + rel));
  }
  const std::size_t slash = rel.rfind('/');
  const std::string sealed_rel = (slash == std::string::npos ? "" : rel.substr(0, slash + 1)) + final_name;
  Report(walk.plan.ctl_fd, Msg::kOutput,
         {{"name", rel}, {"path", sealed_rel}, {"size", report->plaintext_bytes}, {"sha256", report->sha256}});
  return {};
}

Status WalkDir(OutputWalk& walk, int dir_fd, int out_dir_fd, const std::string& prefix, int depth) {
  UniqueFd dup_fd(::dup(dir_fd));
  DIR* dir = dup_fd ? ::fdopendir(dup_fd.get()) : nullptr;
  if (dir == nullptr) return FailErrno("read /out/" + prefix);
  (void)dup_fd.release();
  std::vector<std::string> names;
  while (dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string rel = prefix + name;
    if (++walk.seen > kMaxOutputs) {
      Refuse(walk, rel, "more than " + std::to_string(kMaxOutputs) + " entries in /out");
      continue;
    }
    if (HasControl(name)) {
      Refuse(walk, json(rel).dump(), "name contains control characters");
      continue;
    }
    struct stat st {};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (depth >= kMaxOutputDepth) {
        Refuse(walk, rel + "/", "directory nesting deeper than " + std::to_string(kMaxOutputDepth));
        continue;
      }
      UniqueFd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (::mkdirat(out_dir_fd, name.c_str(), 0750) != 0 && errno != EEXIST) return FailErrno("mkdir " + rel);
      UniqueFd out_sub(::openat(out_dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub || !out_sub) return FailErrno("open " + rel);
      if (auto ok = WalkDir(walk, sub.get(), out_sub.get(), rel + "/", depth + 1); !ok) return ok;
      continue;
    }
    if (S_ISLNK(st.st_mode)) { Refuse(walk, rel, "is a symbolic link (never followed)"); continue; }
    if (S_ISFIFO(st.st_mode)) { Refuse(walk, rel, "is a FIFO"); continue; }
    if (S_ISSOCK(st.st_mode)) { Refuse(walk, rel, "is a socket"); continue; }
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) { Refuse(walk, rel, "is a device node"); continue; }
    if (!S_ISREG(st.st_mode)) { Refuse(walk, rel, "is not a regular file"); continue; }
    if (rel == "trainer.log") { Refuse(walk, rel, "the name is reserved for the trainer's captured log"); continue; }
    if (auto ok = SealOne(walk, dir_fd, out_dir_fd, name, rel); !ok) return ok;
  }
  if (::fsync(out_dir_fd) != 0) return FailErrno("fsync output directory");
  return {};
}

// After the trainer: the last short lines of the metrics file (the relay may
// not have seen them), oldest first; the runner keeps the last valid one.
void SendFinalMetrics(int ctl_fd) {
  constexpr off_t kTail = 64 * 1024;
  constexpr std::size_t kLines = 16;
  UniqueFd fd(::open(kMetricsPath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
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

Status SendMessage(int fd, Msg type, std::string_view payload) {
  std::string message(1, static_cast<char>(type));
  message += payload;
  if (message.size() > kMaxMessageBytes) message.resize(kMaxMessageBytes);
  ssize_t n;
  do n = ::send(fd, message.data(), message.size(), MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  OPENSSL_cleanse(message.data(), message.size());
  return n == static_cast<ssize_t>(message.size()) ? Status{} : FailErrno("send to the runner");
}

std::string DatasetForOutput(const std::string& relative) {
  std::string out;
  for (const char c : relative) {
    if (c == '/') out += "%2F";
    else if (c == '%') out += "%25";
    else out += c;
  }
  return out;
}

Status StageIn(const StagePlan& plan) {
  if (auto ok = CreateMetricsFile(plan); !ok) return ok;
  // The relay forks before any plaintext exists in this process's memory.
  const pid_t relay = ::fork();
  if (relay < 0) return FailErrno("fork the metrics relay");
  if (relay == 0) RelayMain(plan);
  ::close(plan.metrics_fd);
  for (const InputPlan& input : plan.inputs) {
    SecretBytes dek(kms::kDekBytes);
    Status st = ReadExactly(plan.keys_fd, dek.data(), dek.size());
    if (st) st = DecryptInput(input, std::move(dek));
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

Status StageOut(const StagePlan& plan, int output_dir_fd) {
  SendFinalMetrics(plan.ctl_fd);
  if (output_dir_fd < 0) return Fail(Errc::kInternal, "no output directory");
  UniqueFd out(::open("/out", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!out) return FailErrno("open /out");
  OutputWalk walk{plan, RemoteWrapper(plan.ctl_fd, plan.output_key)};
  return WalkDir(walk, out.get(), output_dir_fd, "", 0);
}

}  // namespace cordon::runner::internal
