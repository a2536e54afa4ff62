// cordon rewrap --all --key kms://ADAPTER/NAME [--dir DIR]...: after `cordon keys
// rotate NAME`, every sealed file wrapped under an older version of NAME is
// rewrapped under its newest version (header only), in batches. A file whose
// new header has its old length (the usual case) gets it written in place;
// any other gets a rewrapped copy beside it, renamed over it. Each batch is
// made durable at once (one syncfs per file system), so a crash never leaves
// a damaged file (docs/THREAT-MODEL.md, "rewrap --all").
//
// Which files: every version the dataset registry knows, the registry's hash
// key, and every sealed file found under each --dir (walked without following
// symbolic links). Resumable: a rerun skips every file already at the newest
// version. A journal in the registry directory gets, before a batch's files
// change (its lines fdatasync'd together), "H <header before> <header after>
// <dev>:<ino> <path>" for each in-place file and, for the registry's files, "B <sha256
// before> <path>"; after: "D <sha256 after> <path>" for the registry's files
// and "E" once the batch's headers are on disk. A rerun first puts back the
// old header of any file of an unended batch whose header is neither (torn by
// a power loss), then settles a B without its D (the file either still has
// the old header, and is redone, or has the new one, and is recorded), skips
// every file already at the newest version, and at the end records the new
// sha256s as aliases of the registry's versions (a version keeps its
// identity). The journal is removed when a pass completes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <sstream>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "cordon/file_io.h"
#include "cordon/hex.h"
#include "cordon/unique_fd.h"
#include "incident_cli.h"
#include "sealed_cli.h"

namespace cordon::cli {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct Journal {
  std::string path;
  UniqueFd fd;
  std::map<std::string, std::string> begun;  // path -> sha before (no D yet)
  std::map<std::string, std::pair<std::string, std::string>> done;  // path -> (sha before, sha after)
  // The in-place header writes of a batch without its E line: path -> (header before, after).
  struct Headers {
    std::string before, after;
    std::uint64_t dev = 0, ino = 0;
  };
  std::map<std::string, Headers> headers;

  static std::string Line(char tag, const std::string& sha, const std::string& file) {
    return std::string(1, tag) + " " + sha + " " + file + "\n";
  }
  // Lines (a batch's), on disk when it returns.
  Status Append(const std::string& lines) {
    if (lines.empty()) return {};
    if (auto ok = WriteAll(fd.get(), lines); !ok) return ok;
    return ::fdatasync(fd.get()) == 0 ? Status{} : Status(FailErrno("fdatasync " + path));
  }
};

Result<Journal> OpenJournal(const std::string& dir, const KeyRef& key) {
  Journal j;
  std::string name;
  for (const char c : key.ToString()) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  j.path = dir + "/rewrap-" + name + ".journal";
  std::ifstream in(j.path);
  std::string line;
  while (std::getline(in, line)) {
    if (line == "E") {  // a batch's header writes are on disk
      j.headers.clear();
      continue;
    }
    if (line.starts_with("H ")) {  // "H <header before, hex> <header after, hex> <dev>:<ino> <path>"
      std::istringstream fields(line.substr(2));
      std::string before_hex, after_hex, id;
      fields >> before_hex >> after_hex >> id;
      const std::size_t colon = id.find(':'), path_at = 2 + before_hex.size() + after_hex.size() + id.size() + 3;
      if (colon == std::string::npos || path_at >= line.size()) continue;  // a torn last line: its batch wrote nothing yet
      auto before = HexDecode(before_hex), after = HexDecode(after_hex);
      std::uint64_t dev = 0, ino = 0;
      const auto parse = [](std::string_view t, std::uint64_t& v) {
        return !t.empty() && std::from_chars(t.data(), t.data() + t.size(), v).ptr == t.data() + t.size();
      };
      if (before && after && before->size() == after->size() && !before->empty() &&
          parse(std::string_view(id).substr(0, colon), dev) && parse(std::string_view(id).substr(colon + 1), ino)) {
        j.headers[line.substr(path_at)] = {std::move(*before), std::move(*after), dev, ino};
      }
      continue;
    }
    if (line.size() < 3 + 71 || (line[0] != 'B' && line[0] != 'D') || line[1] != ' ') continue;  // a torn last line
    const std::string sha = line.substr(2, 71), file = line.substr(74);
    if (line[0] == 'B') {
      j.begun[file] = sha;
    } else if (j.begun.contains(file)) {
      j.done[file] = {j.begun[file], sha};
      j.begun.erase(file);
    }
  }
  j.fd.reset(::open(j.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!j.fd) return FailErrno("open " + j.path);
  return j;
}

// Every regular file under `dir` (links are not followed). A rewrap's temp
// file (".NAME.cordon-tmp.XXXXXX") left by a crash beside NAME is removed.
void Walk(const std::string& dir, std::set<std::string>& out, std::size_t& examined) {
  std::error_code ec;
  std::vector<fs::path> temps;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (++examined > 1'000'000) break;
    if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
    const std::string name = it->path().filename().string();
    if (name.starts_with(".") && name.find(".cordon-tmp.") != std::string::npos) {
      temps.push_back(it->path());
      continue;
    }
    out.insert(it->path().string());
  }
  for (const fs::path& temp : temps) {
    const std::string name = temp.filename().string();
    const std::string base = name.substr(1, name.find(".cordon-tmp.") - 1);
    if (out.contains((temp.parent_path() / base).string())) fs::remove(temp, ec);
  }
}

struct Candidate {
  std::string path;
  std::uint32_t version = 0;
};

}  // namespace

int RewrapAll(const GlobalOptions& global, const std::string& key_text, const std::vector<std::string>& dirs,
              bool json_out, std::optional<uid_t> caller_uid, std::size_t batch_files) {
  Opened opened = OpenIncidentContext(global, "rewrap", caller_uid);
  if (opened.forward) {
    std::vector<std::string> argv = {"rewrap", "--all", "--key", key_text};
    for (const std::string& d : dirs) argv.insert(argv.end(), {"--dir", d});
    if (json_out) argv.push_back("--json");
    argv.insert(argv.end(), {"--batch", std::to_string(batch_files)});
    return ForwardToDaemon(global, argv);
  }
  if (!opened.context) return opened.exit_status;
  IncidentContext& ctx = *opened.context;
  auto key = ParseKeyRef(key_text);
  if (!key) return ReportError("rewrap", key.error());
  auto km = ctx.kms().get(key->adapter);
  if (!km) return ReportError("rewrap", km.error());
  auto info = (*km)->Describe(key->name);
  if (!info) return ReportError("rewrap", info.error());
  const std::uint32_t target = info->current();
  // The files: the registry's versions and hash key, and the --dir trees.
  std::set<std::string> files, registered;
  std::size_t examined = 0;
  if (auto names = ctx.registry->Names()) {
    for (const std::string& name : *names) {
      if (auto d = ctx.registry->Load(name); d && *d) {
        for (const auto& v : (*d)->versions) if (!v.path.empty()) registered.insert(v.path);
      }
    }
  }
  files = registered;
  files.insert(ctx.registry->HashKeyPath());
  for (const std::string& dir : dirs) Walk(dir, files, examined);
  auto journal = OpenJournal(ctx.registry->dir(), *key);
  if (!journal) return ReportError("rewrap", journal.error());
  auto intent = ctx.Begin("key.rewrap_all", {{"key_ref", key->ToString()}, {"target_version", target},
                                             {"files_considered", files.size()}, {"resumed", !journal->begun.empty() || !journal->done.empty()},
                                             {"dirs", dirs.size()}, {"batch_files", batch_files}});
  if (!intent) return kExitFailure;
  std::size_t rewrapped = 0, failed = 0;
  json failures = json::array();
  const auto fail = [&](const std::string& path, const std::string& why) {
    ++failed;
    if (failures.size() < 20) failures.push_back({{"path", path}, {"error", why}});
    std::cerr << "cordon rewrap: " << path << ": " << why << "\n";
  };
  // Settle what a crash left. A header written in place in a batch that did
  // not end is the old one, the new one, or (after a power loss) torn: then
  // the old one goes back (sealed::RestoreHeader) and the file is redone.
  if (!journal->headers.empty()) {
    for (const auto& [path, h] : journal->headers) {
      const auto bytes = [](const std::string& b) {
        return std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(b.data()), b.size());
      };
      if (auto r = sealed::RestoreHeader(path, h.dev, h.ino, bytes(h.before), bytes(h.after));
          !r && r.error().code != Errc::kNotFound) {
        fail(path, "restoring its header after a crash: " + r.error().message);
      }
    }
    if (failed == 0 && journal->Append("E\n")) journal->headers.clear();
  }
  // A begun file either has the new header (done) or the old (redo).
  for (const auto& [path, before] : journal->begun) {
    const fs::path p(path);
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(p.parent_path(), ec)) {
      if (e.path().filename().string().starts_with("." + p.filename().string() + ".cordon-tmp.")) fs::remove(e.path(), ec);
    }
    auto sha = sealed::Sha256File(path);
    if (sha && *sha != before) journal->done[path] = {before, *sha};
  }
  std::vector<Candidate> todo;
  std::size_t current = 0, other_keys = 0, not_sealed = 0;
  for (const std::string& path : files) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) { ++not_sealed; continue; }
    auto sealed_info = sealed::OpenSealed(fd.get());
    if (!sealed_info) { ++not_sealed; continue; }
    if (!(sealed_info->header.key == *key)) { ++other_keys; continue; }
    if (sealed_info->header.kek_version >= target) { ++current; continue; }
    todo.push_back({path, sealed_info->header.kek_version});
  }
  const auto start = std::chrono::steady_clock::now();
  // In batches. Each file's header is rewritten in place where the new one
  // has the old one's length (sealed::PrepareHeaderRewrite: no new file, the
  // chunks untouched), else a rewrapped copy is written beside it and renamed
  // over it. Journal, per batch, before anything changes (one fdatasync): an
  // H line for each in-place file (its header before and after: a header torn
  // by a power loss is put back on the next run) and, for the registry's files
  // (their new hash becomes an alias), a B line. Then the headers are written
  // and the copies committed (sealed::WriteHeaders, CommitRewraps: one syncfs
  // per file system, the renames, one fsync per directory), and the batch
  // ends with the registry files' D lines and an E line. A rerun tells done
  // from not done by the header's key version.
  batch_files = std::clamp<std::size_t>(batch_files, 1, 65536);
  for (std::size_t first = 0; first < todo.size(); first += batch_files) {
    const std::size_t end = std::min(todo.size(), first + batch_files);
    std::map<std::string, std::string> before;  // journaled path -> sha256 before
    std::string lines;
    std::vector<sealed::HeaderRewrite> in_place;
    std::vector<sealed::PendingRewrap> copies;
    for (std::size_t i = first; i < end; ++i) {
      const std::string& path = todo[i].path;
      if (registered.contains(path)) {
        auto sha = sealed::Sha256File(path);
        if (!sha) {
          fail(path, "cannot read it to journal its hash: " + sha.error().message);
          continue;
        }
        before[path] = *sha;
        lines += Journal::Line('B', *sha, path);
      }
      // In place only where the journal can name the file (one line): else a copy.
      auto h = path.find_first_of("\n\r") == std::string::npos
                   ? sealed::PrepareHeaderRewrite(path, ctx.kms(), *key)
                   : Result<sealed::HeaderRewrite>(Fail(Errc::kUnsupported, "a line break in its name"));
      if (h) {
        lines += "H " + HexEncode(h->before) + " " + HexEncode(h->after) + " " + std::to_string(h->dev) + ":" +
                 std::to_string(h->ino) + " " + path + "\n";
        in_place.push_back(std::move(*h));
        continue;
      }
      if (h.error().code != Errc::kUnsupported) {
        fail(path, h.error().message);
        continue;
      }
      auto p = sealed::PrepareRewrap(path, ctx.kms(), *key);
      if (!p) {
        fail(path, p.error().message);
        continue;
      }
      copies.push_back(std::move(*p));
    }
    if (const Status begun = journal->Append(lines); !begun) {
      for (const auto& h : in_place) fail(h.file, begun.error().message);
      for (const auto& p : copies) {
        ::unlink(p.temp.c_str());
        fail(p.file, begun.error().message);
      }
      continue;
    }
    lines.clear();
    std::vector<std::pair<std::string, std::string>> journaled;  // path, sha after
    const auto committed_file = [&](const std::string& path, const std::string& sha_after) {
      if (!before.contains(path)) {
        ++rewrapped;
        return;
      }
      lines += Journal::Line('D', sha_after, path);
      journaled.emplace_back(path, sha_after);
    };
    const std::vector<Status> written = sealed::WriteHeaders(in_place);
    for (std::size_t k = 0; k < in_place.size(); ++k) {
      if (!written[k]) {
        fail(in_place[k].file, written[k].error().message);
        continue;
      }
      std::string sha_after;
      if (before.contains(in_place[k].file)) {
        auto sha = sealed::Sha256Fd(in_place[k].fd.get());
        if (!sha) {
          fail(in_place[k].file, "rewrapped, but cannot hash it: " + sha.error().message);  // a rerun settles its B line
          continue;
        }
        sha_after = *sha;
      }
      committed_file(in_place[k].file, sha_after);
    }
    const std::vector<Status> committed = sealed::CommitRewraps(copies);
    for (std::size_t k = 0; k < copies.size(); ++k) {
      if (!committed[k]) fail(copies[k].file, committed[k].error().message);
      else committed_file(copies[k].file, copies[k].report.sha256);
    }
    // E: no header of the batch needs a look after a crash (any failed write leaves them all open).
    if (!in_place.empty() && std::all_of(written.begin(), written.end(), [](const Status& w) { return w.has_value(); })) {
      lines += "E\n";
    }
    const Status ended = journal->Append(lines);
    for (const auto& [path, sha_after] : journaled) {
      if (ended) {
        journal->done[path] = {before.at(path), sha_after};
        ++rewrapped;
      } else {
        fail(path, ended.error().message);  // rewrapped; a rerun settles its open B line
      }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cerr << "rewrap: " << end << "/" << todo.size() << " files ("
              << static_cast<long long>(secs > 0 ? static_cast<double>(end) / secs : 0) << " files/s)\n";
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // A version keeps its identity; its file's new sha256 becomes an alias.
  std::size_t aliases = 0;
  if (auto names = ctx.registry->Names()) {
    for (const std::string& name : *names) {
      auto updated = ctx.registry->Update(name, [&](datasets::Dataset& d) -> Status {
        for (auto& v : d.versions) {
          const auto it = journal->done.find(v.path);
          if (it == journal->done.end() || !v.Matches(it->second.first) || v.Matches(it->second.second)) continue;
          v.aliases.push_back(it->second.second);
          ++aliases;
          if (v.key_ref == key->ToString()) v.key_version = target;
        }
        return Status{};
      });
      if (!updated) ++failed;
    }
  }
  const json summary = {{"key", key->ToString()}, {"target_version", target}, {"files_considered", files.size()},
                        {"rewrapped", rewrapped}, {"already_current", current}, {"other_keys", other_keys},
                        {"not_sealed", not_sealed}, {"failed", failed}, {"registry_aliases", aliases},
                        {"seconds", std::to_string(secs)},
                        {"files_per_second", std::to_string(secs > 0 ? static_cast<double>(rewrapped) / secs : 0)}};
  ctx.Done(intent, failed == 0, json{{"rewrapped", rewrapped}, {"already_current", current}, {"failed", failed},
                                     {"failures", failures}, {"registry_aliases", aliases}});
  if (failed == 0) {
    journal->fd.reset();
    ::unlink(journal->path.c_str());
  }
  if (json_out) {
    std::cout << summary.dump(2) << "\n";
  } else {
    std::cout << "rewrapped " << rewrapped << " file(s) to " << key->ToString() << " v" << target << " ("
              << current << " already current, " << failed << " failed) in " << secs << " s: "
              << (secs > 0 ? static_cast<double>(rewrapped) / secs : 0) << " files/s\n";
  }
  return failed == 0 ? kExitOk : kExitFailure;
}

}  // namespace cordon::cli
