// The audit log writer: group commit inside a process, flock across
// processes, recovery of a torn tail, forward-secure MAC key evolution and
// checkpoints. The protocol for one batch, under flock(audit.lock):
//   1. read the MAC state (next seq + its key) and check it against the log
//      head (re-reading the tail when another process wrote, repairing a torn
//      tail, replaying journaled lines the segment lost, deriving the key
//      forward after a crash between 3 and 4)
//   2. seal each entry with k_seq, evolving the key in memory after each
//   3. one write(2) on the O_APPEND segment, not synced
//   4. the lines into the journal of mac.state (after the lines it holds),
//      the state record with the evolved key over its first sector, and ONE
//      fdatasync of mac.state: the entries are durable (in the journal) and
//      the old key is overwritten, in one flush of a file whose size and
//      blocks never change (no metadata to commit)
//   5. a checkpoint when due: the segment is fdatasync'd first, then the
//      note, then the state record again (its checkpoint fields)
// Only then do the callers of the batch return. The segment is fdatasync'd
// lazily: before a checkpoint, at rotation, when the journal is full, at
// close; the journal is then emptied (see docs/AUDIT-FORMAT.md, "Writing").
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <functional>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "cordon/file_io.h"
#include "cordon/audit/verify.h"
#include "cordon/unique_fd.h"
#include "internal.h"
#include "merkle.h"

namespace cordon::audit {

using namespace internal;

namespace {

constexpr std::size_t kTailWindow = 2 * kMaxLineBytes;
// tree.hashes is derived from the log: it is fdatasync'd before a checkpoint
// signs its root and every this many records, and a process that opens the
// log recomputes the hashes after the last sync point (a power cut may have
// lost or zeroed an unsynced tail).
constexpr std::uint64_t kTreeSyncEvery = 1024;
// mac.state: the 512-byte state record, then the journal (lines since the
// segment was last synced), preallocated and written with zeros once so that
// every later write overwrites allocated blocks in place.
constexpr std::size_t kJournalBytes = 256 * 1024;
constexpr std::size_t kStateFileBytes = kStateRecordBytes + kJournalBytes;

class FileLock final {
 public:
  explicit FileLock(int fd) : fd_(fd) {
    (void)RetryEintr([&] { return ::flock(fd_, LOCK_EX); });
  }
  ~FileLock() { ::flock(fd_, LOCK_UN); }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

Result<UniqueFd> OpenFile(const std::string& path, int flags, mode_t mode = 0600) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) return FailErrno("open " + path);
  return fd;
}

Status WriteAll(int fd, std::string_view data, const std::string& what) {
  if (auto ok = cordon::WriteAll(fd, data); !ok) return std::unexpected(WithContext(ok.error(), what));
  return {};
}

Status PwriteAll(int fd, std::string_view data, off_t offset, const std::string& what) {
  if (auto ok = cordon::PwriteAll(fd, data, offset); !ok) return std::unexpected(WithContext(ok.error(), what));
  return {};
}

// The size and link count of an open file, without its timestamps. With
// multigrain timestamps (Linux 6.13 on), a stat that reads mtime/ctime marks
// them queried, so the next write stamps a fine-grained time and dirties the
// inode in the filesystem journal: on every append, since the writer checks
// the segment before each batch. On ext4 that cost the durable append about
// 30 % against the bare write+fdatasync loop (scripts/bench-audit). statx
// asking for the size and links only leaves the times alone.
bool SameSizeAndLinked(int fd, off_t size) {
  struct statx sx{};
  if (::statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, STATX_SIZE | STATX_NLINK, &sx) == 0) {
    return (sx.stx_mask & (STATX_SIZE | STATX_NLINK)) == (STATX_SIZE | STATX_NLINK) &&
           sx.stx_size == static_cast<std::uint64_t>(size) && sx.stx_nlink > 0;
  }
  struct stat st{};
  return ::fstat(fd, &st) == 0 && st.st_size == size && st.st_nlink > 0;
}

Status DataSync(int fd, const std::string& what) {
  if (::fdatasync(fd) != 0) return FailErrno("fdatasync " + what);
  return {};
}

Result<std::string> ReadAt(int fd, std::size_t size, off_t offset, const std::string& what) {
  std::string buf(size, '\0');
  auto done = PreadFull(fd, {reinterpret_cast<std::uint8_t*>(buf.data()), size}, offset);
  if (!done) return std::unexpected(WithContext(done.error(), what));
  buf.resize(*done);
  return buf;
}

// Key files must be readable by their owner only, and owned by us: anything
// looser means someone else may have read (or planted) the key.
Status CheckPrivate(int fd, const std::string& path) {
  struct stat st{};
  if (::fstat(fd, &st) != 0) return FailErrno("stat " + path);
  if ((st.st_mode & 077) != 0 || st.st_uid != ::geteuid()) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Fail(Errc::kPermissionDenied, path + ": mode " + mode + " owner " + std::to_string(st.st_uid) +
                                             ": must be 0600 and owned by uid " + std::to_string(::geteuid()));
  }
  return {};
}

struct Tail {
  std::optional<std::string> last_line;  // without '\n'
  std::optional<nlohmann::json> recovered;  // details of a torn tail moved aside
};

// Whether torn bytes at the end of a segment, where the line of `seq` would
// start, are a prefix of that line as the journal holds it.
using InJournal = std::function<bool(std::uint64_t seq, std::string_view torn)>;

// Finds the last complete line of a segment; a torn remainder is copied to a
// side file and cut off, so nothing is lost and the log ends on a line. A
// remainder that the journal holds in full is only cut (it is replayed next).
Result<Tail> ReadTail(int fd, const std::string& dir, const Segment& seg, const InJournal& in_journal) {
  struct stat st{};
  if (::fstat(fd, &st) != 0) return FailErrno("stat " + seg.path);
  const auto size = static_cast<std::size_t>(st.st_size);
  const std::size_t window = std::min(size, kTailWindow);
  auto buf = ReadAt(fd, window, static_cast<off_t>(size - window), seg.path);
  if (!buf) return std::unexpected(buf.error());
  Tail tail;
  std::size_t end = buf->size();
  if (end > 0 && buf->back() != '\n') {
    const std::size_t nl = buf->rfind('\n');
    if (nl == std::string::npos && window < size) return Fail(Errc::kInvalidData, seg.path + ": last line over 32 KiB");
    const std::size_t cut = nl == std::string::npos ? 0 : nl + 1;
    const std::string torn = buf->substr(cut);
    const auto offset = static_cast<std::uint64_t>(size - window + cut);
    std::optional<std::uint64_t> torn_seq;
    if (offset == 0) {
      torn_seq = seg.first_seq;
    } else if (cut > 0) {
      const std::size_t before = cut >= 2 ? buf->rfind('\n', cut - 2) : std::string::npos;
      const std::size_t from = before == std::string::npos ? 0 : before + 1;
      if (before != std::string::npos || window == size) {
        if (auto prev = ScanEntryLine(std::string_view(*buf).substr(from, cut - 1 - from))) torn_seq = prev->seq + 1;
      }
    }
    if (torn_seq && in_journal(*torn_seq, torn)) {
      if (::ftruncate(fd, static_cast<off_t>(offset)) != 0) return FailErrno("truncate " + seg.path);
      if (auto ok = DataSync(fd, seg.path); !ok) return std::unexpected(ok.error());
      return ReadTail(fd, dir, seg, in_journal);
    }
    const std::string side = dir + "/torn-" + std::to_string(seg.first_seq) + "-" + std::to_string(offset) + "-" +
                             std::to_string(NowNs()) + ".bin";
    if (auto ok = WriteFileAtomic(side, torn, 0600, Overwrite::kRefuse); !ok) return std::unexpected(ok.error());
    if (::ftruncate(fd, static_cast<off_t>(offset)) != 0) return FailErrno("truncate " + seg.path);
    if (auto ok = DataSync(fd, seg.path); !ok) return std::unexpected(ok.error());
    tail.recovered = nlohmann::json{{"segment", seg.path.substr(seg.path.rfind('/') + 1)},
                                    {"offset", offset},
                                    {"bytes", torn.size()},
                                    {"sha256", Hex(Sha256(torn))},
                                    {"side_file", side.substr(side.rfind('/') + 1)}};
    end = cut;
  }
  if (end == 0) return tail;
  const std::size_t start = buf->rfind('\n', end - 2);
  if (start == std::string::npos && window < size) return Fail(Errc::kInvalidData, seg.path + ": last line over 32 KiB");
  const std::size_t from = start == std::string::npos ? 0 : start + 1;
  tail.last_line = buf->substr(from, end - 1 - from);
  return tail;
}

// A line of the journal in mac.state (with its '\n').
struct JournalLine {
  std::uint64_t seq;
  std::string line;
  Bytes32 hash, prev;
};

// The journal's lines as the state record describes them: consecutive seqs
// from journal_seq, each a valid entry whose hash matches its content. It
// stops at the first line that is not (a torn flush, or a region being
// reused); the caller decides whether what it needs is there.
std::vector<JournalLine> ReadJournal(int state_fd, const MacState& s) {
  std::vector<JournalLine> out;
  if (s.journal_bytes == 0 || s.journal_bytes > kJournalBytes) return out;
  auto text = ReadAt(state_fd, s.journal_bytes, static_cast<off_t>(kStateRecordBytes), kStateFile);
  if (!text) return out;
  std::uint64_t seq = s.journal_seq;
  for (std::size_t at = 0; at < text->size();) {
    const std::size_t nl = text->find('\n', at);
    if (nl == std::string::npos) break;
    const std::string_view line = std::string_view(*text).substr(at, nl - at);
    auto e = ScanEntryLine(line);
    if (!e || e->seq != seq || !Equal32(e->hash, e->computed)) break;
    out.push_back({seq++, std::string(line) + "\n", e->hash, e->prev});
    at = nl + 1;
  }
  return out;
}

}  // namespace

class AuditLog::Impl {
 public:
  Options opt;
  UniqueFd lock_fd, state_fd, checkpoints_fd, seg_fd, tree_fd;
  Identity id;
  Bytes32 seed{};
  MacState state;  // the key for seq `state.seq`
  Actor self;
  // The head as this process last saw it (valid only under the flock after Sync).
  bool head_valid = false;
  Segment seg{0, ""};
  off_t seg_size = 0;
  std::uint64_t next_seq = 0;
  Bytes32 head{};
  Frontier tree;              // the Merkle tree's right edge (valid with head_valid)
  bool tree_checked = false;  // this process recomputed the unsynced tail of tree.hashes
  std::string last_note;       // the last checkpoint this process signed
  std::vector<Event> pending;  // recovery entries to write before the next batch

  struct Request {
    const Event* event;
    bool done = false;
    Result<std::uint64_t> result{0};
  };
  std::mutex mu;
  std::condition_variable cv;
  bool leader = false;
  std::vector<Request*> queue;

  pid_t opened_by = 0;  // the process whose Open() succeeded: only it closes the log (not a forked child)
  std::size_t journal_capacity = 0;  // 0: no journal (it could not be preallocated)

  // Closing: the segment is made durable and the journal emptied (so a later
  // deletion from the segment is never masked by a stale journal).
  void Close() {
    FileLock lock(lock_fd.get());
    if (!Sync() || !FlushPendingLocked()) return;
    if (state.journal_seq < next_seq && SyncSegment()) (void)WriteState();
  }

  ~Impl() {
    if (opened_by == ::getpid()) Close();
    Cleanse(seed.data(), seed.size());
    Cleanse(state.key.data(), state.key.size());
  }

  Status Sync();
  Status Resync(const MacState& on_disk);
  Status EnsureJournal();
  Status SyncSegment();
  Status SyncTree(std::uint64_t records);
  Status RebuildTree(std::uint64_t from, std::uint64_t to);
  Status AppendTree(const std::vector<Bytes32>& leaves);
  Status DurableTree();
  Status OpenSegment(const Segment& s, bool create);
  Result<std::uint64_t> WriteEntries(const std::vector<const Event*>& events, std::vector<std::uint64_t>& seqs,
                                     bool sync_segment, bool& state_written);
  Status WriteRecord(const MacState& s);
  Status WriteCheckpointLocked();
  Status WriteState();
  Status FlushPendingLocked();
  void CommitBatch(std::vector<Request*>& batch);
  Result<std::uint64_t> Enqueue(const Event& event);
  template <class F> auto Exclusive(F&& fn);
};

Status AuditLog::Impl::OpenSegment(const Segment& s, bool create) {
  const int flags = O_RDWR | O_APPEND | (create ? O_CREAT | O_EXCL : 0);
  auto fd = OpenFile(s.path, flags);
  if (!fd) return std::unexpected(fd.error());
  if (create) {
    if (auto ok = FsyncDir(opt.dir); !ok) return ok;
  }
  seg_fd = std::move(*fd);
  seg = s;
  struct stat st{};
  if (::fstat(seg_fd.get(), &st) != 0) return FailErrno("stat " + s.path);
  seg_size = st.st_size;
  return {};
}

Status AuditLog::Impl::Sync() {
  auto record = ReadAt(state_fd.get(), kStateRecordBytes, 0, kStateFile);
  if (!record) return std::unexpected(record.error());
  auto on_disk = DecodeState(*record);
  Cleanse(record->data(), record->size());  // it held the current key
  if (!on_disk) return std::unexpected(WithContext(on_disk.error(), opt.dir + "/" + kStateFile));
  const bool same = head_valid && seg_fd && on_disk->seq == next_seq && SameSizeAndLinked(seg_fd.get(), seg_size);
  if (same) {
    state = *on_disk;
    Cleanse(on_disk->key.data(), 32);
    return {};
  }
  auto ok = Resync(*on_disk);
  Cleanse(on_disk->key.data(), 32);
  return ok;
}

Status AuditLog::Impl::Resync(const MacState& on_disk) {
  head_valid = false;
  seg_fd.reset();
  auto segments = ListSegments(opt.dir);
  if (!segments) return std::unexpected(segments.error());
  next_seq = 0;
  head = Bytes32{};
  // The journal's lines, read only when the segment's tail needs them.
  std::optional<std::vector<JournalLine>> journal;
  auto journal_lines = [&]() -> const std::vector<JournalLine>& {
    if (!journal) journal = ReadJournal(state_fd.get(), on_disk);
    return *journal;
  };
  const InJournal in_journal = [&](std::uint64_t seq, std::string_view torn) {
    if (on_disk.journal_bytes == 0 || seq < on_disk.journal_seq || seq >= on_disk.seq) return false;
    for (const JournalLine& l : journal_lines()) {
      if (l.seq == seq) return std::string_view(l.line).starts_with(torn);
    }
    return false;
  };
  for (std::size_t i = segments->size(); i-- > 0;) {
    const bool active = i + 1 == segments->size();
    auto fd = OpenFile((*segments)[i].path, active ? O_RDWR | O_APPEND : O_RDONLY);
    if (!fd) return std::unexpected(fd.error());
    auto tail = ReadTail(fd->get(), opt.dir, (*segments)[i], in_journal);
    if (!tail) return std::unexpected(tail.error());
    if (tail->recovered) {
      pending.push_back(Event{"log.recovered", "", "ok",
                              {{"reason", "torn last line (crash during a write) moved aside intact"},
                               {"torn", *tail->recovered}}, std::nullopt});
    }
    if (active) {
      if (auto ok = OpenSegment((*segments)[i], false); !ok) return ok;
    }
    if (!tail->last_line) continue;  // an empty segment: the head is in the one before
    auto entry = ScanEntryLine(*tail->last_line);
    if (!entry) {
      return Fail(Errc::kIntegrity, (*segments)[i].path + ": last entry unreadable (" + entry.error().message +
                                        "); run `cordon audit verify`");
    }
    next_seq = entry->seq + 1;
    head = entry->hash;
    break;
  }
  state = on_disk;
  bool recovered = false;
  if (state.seq > next_seq && state.journal_bytes > 0 && seg_fd) {
    // Acknowledged entries the segment lost (a power cut before it was
    // synced): replay them from the journal, each linked to the head.
    std::string replay;
    for (const JournalLine& l : journal_lines()) {
      if (l.seq < next_seq) continue;
      if (l.seq != next_seq || l.seq >= state.seq || !Equal32(l.prev, head)) break;
      replay += l.line;
      head = l.hash;
      ++next_seq;
    }
    if (!replay.empty()) {
      Status ok = WriteAll(seg_fd.get(), replay, seg.path);
      if (ok) ok = DataSync(seg_fd.get(), seg.path);
      if (!ok) return std::unexpected(WithContext(ok.error(), "replaying journaled entries"));
      seg_size += static_cast<off_t>(replay.size());
      recovered = true;
    }
  }
  const std::uint64_t records = next_seq;
  if (state.seq < next_seq) {
    // Crash after the log was synced and before the state was: derive forward.
    if (next_seq - state.seq > 1'000'000) return Fail(Errc::kIntegrity, "MAC state is far behind the log");
    while (state.seq < next_seq) {
      state.key = EvolveKey(state.key);
      ++state.seq;
    }
  } else if (state.seq > next_seq) {
    // Entries whose keys are already erased are gone from the log. Never
    // reuse a key: continue at state.seq and record the gap (verify fails there).
    pending.push_back(Event{"log.gap_detected", "", "error",
                            {{"missing_from_seq", next_seq}, {"missing_to_seq", state.seq - 1},
                             {"reason", "entries present when the key was evolved are missing from the log and "
                                        "its journal (deleted, or a power cut tore the journal's last flush)"}},
                            std::nullopt});
    next_seq = state.seq;
  }
  if (recovered || on_disk.seq != records) {
    // The journal must hold consecutive lines from journal_seq: start it
    // afresh behind a durable segment.
    if (auto ok = SyncSegment(); !ok) return ok;
  }
  if (auto ok = SyncTree(records); !ok) return ok;
  head_valid = true;
  return {};
}

// Brings tree.hashes to exactly the hashes of the log's `records` records:
// cuts what is beyond (or, at the first look of this process, unsynced) and
// recomputes the missing tail from the entries.
Status AuditLog::Impl::SyncTree(std::uint64_t records) {
  struct stat st{};
  if (::fstat(tree_fd.get(), &st) != 0) return FailErrno(std::string("stat ") + kTreeFile);
  std::uint64_t hashes = static_cast<std::uint64_t>(st.st_size) / 32;
  std::optional<std::uint64_t> have = RecordsForHashCount(hashes);
  while (!have && hashes > 0) have = RecordsForHashCount(--hashes);
  std::uint64_t keep = std::min(have.value_or(0), records);
  if (!tree_checked) keep = std::min(keep, state.tree_synced);
  if (StoredHashCount(keep) * 32 != static_cast<std::uint64_t>(st.st_size) &&
      ::ftruncate(tree_fd.get(), static_cast<off_t>(StoredHashCount(keep) * 32)) != 0) {
    return FailErrno(std::string("truncate ") + kTreeFile);
  }
  auto edge = Frontier::Load(keep, [&](std::uint64_t i) -> Result<Bytes32> {
    Bytes32 h{};
    if (::pread(tree_fd.get(), h.data(), 32, static_cast<off_t>(i * 32)) != 32) {
      return Fail(Errc::kIo, std::string("read ") + kTreeFile);
    }
    return h;
  });
  if (!edge) return std::unexpected(edge.error());
  tree = std::move(*edge);
  if (keep < records) {
    if (auto ok = RebuildTree(keep, records); !ok) return ok;
  }
  tree_checked = true;
  return {};
}

// Recomputes the stored hashes of records [from, to) from the segments
// (record i is the line of seq i; segment names give their first seq).
Status AuditLog::Impl::RebuildTree(std::uint64_t from, std::uint64_t to) {
  auto segments = ListSegments(opt.dir);
  if (!segments) return std::unexpected(segments.error());
  std::size_t first = 0;
  for (std::size_t i = 0; i < segments->size(); ++i) {
    if ((*segments)[i].first_seq <= from) first = i;
  }
  for (std::size_t i = first; i < segments->size() && tree.size() < to; ++i) {
    const Segment& s = (*segments)[i];
    auto fd = OpenFile(s.path, O_RDONLY);
    if (!fd) return std::unexpected(fd.error());
    struct stat st{};
    if (::fstat(fd->get(), &st) != 0) return FailErrno("stat " + s.path);
    auto text = ReadAt(fd->get(), static_cast<std::size_t>(st.st_size), 0, s.path);
    if (!text) return std::unexpected(text.error());
    std::vector<Bytes32> leaves;
    std::uint64_t record = s.first_seq;
    for (std::size_t at = 0; at < text->size() && record < to;) {
      const std::size_t nl = text->find('\n', at);
      if (nl == std::string::npos) break;
      if (record >= tree.size()) {
        leaves.push_back(LeafHash(std::string_view(*text).substr(at, nl - at)));
      }
      at = nl + 1;
      ++record;
    }
    if (auto ok = AppendTree(leaves); !ok) return ok;
  }
  if (tree.size() != to) {
    return Fail(Errc::kIntegrity, "the Merkle tree cannot be rebuilt: the log has " + std::to_string(tree.size()) +
                                      " of " + std::to_string(to) + " records; run `cordon audit verify`");
  }
  return {};
}

// Appends the stored hashes of the next records (one write; cut back on failure).
Status AuditLog::Impl::AppendTree(const std::vector<Bytes32>& leaves) {
  if (leaves.empty()) return {};
  const auto offset = static_cast<off_t>(StoredHashCount(tree.size()) * 32);
  Frontier next = tree;
  std::vector<Bytes32> stored;
  stored.reserve(leaves.size() * 2 + 64);
  for (const Bytes32& leaf : leaves) next.Append(leaf, &stored);
  const std::string_view bytes(reinterpret_cast<const char*>(stored.data()), stored.size() * 32);
  if (auto ok = PwriteAll(tree_fd.get(), bytes, offset, kTreeFile); !ok) {
    if (::ftruncate(tree_fd.get(), offset) != 0) {}  // best effort: a longer file is cut at the next Resync
    return ok;
  }
  tree = std::move(next);
  if (tree.size() - std::min(tree.size(), state.tree_synced) >= kTreeSyncEvery) return DurableTree();
  return {};
}

// Makes the stored hashes durable (before a checkpoint signs their root).
Status AuditLog::Impl::DurableTree() {
  if (state.tree_synced == tree.size()) return {};
  if (auto ok = DataSync(tree_fd.get(), kTreeFile); !ok) return ok;
  state.tree_synced = tree.size();
  return {};
}

// Overwrites the state record (the first sector of mac.state) in place.
Status AuditLog::Impl::WriteRecord(const MacState& s) {
  std::string record = EncodeState(s);
  const ssize_t n = ::pwrite(state_fd.get(), record.data(), record.size(), 0);
  Cleanse(record.data(), record.size());
  if (n != static_cast<ssize_t>(kStateRecordBytes)) return FailErrno("write " + std::string(kStateFile));
  return {};
}

// Called only after the entries before next_seq are durable (in the segment
// or the journal), so the record on disk is never ahead of them
// (state.seq > log head means entries deleted).
Status AuditLog::Impl::WriteState() {
  state.seq = next_seq;
  if (auto ok = WriteRecord(state); !ok) return ok;
  return DataSync(state_fd.get(), kStateFile);
}

// Makes the active segment durable; the journal then starts afresh at
// next_seq (recorded with the next state record).
Status AuditLog::Impl::SyncSegment() {
  if (seg_fd && state.journal_seq < next_seq) {
    if (auto ok = DataSync(seg_fd.get(), seg.path); !ok) return ok;
  }
  state.journal_seq = next_seq;
  state.journal_bytes = 0;
  return {};
}

// Preallocates the journal with written zeros (a log from before the journal
// has a 512-byte mac.state), so that no later write changes the file's size
// or allocation: its fdatasync then flushes data only.
Status AuditLog::Impl::EnsureJournal() {
  struct stat st{};
  if (::fstat(state_fd.get(), &st) != 0) return FailErrno(std::string("stat ") + kStateFile);
  if (st.st_size >= static_cast<off_t>(kStateFileBytes)) {
    journal_capacity = kJournalBytes;
    return {};
  }
  if (st.st_size < static_cast<off_t>(kStateRecordBytes)) return {};  // refused by the state's parser
  const std::string zeros(64 * 1024, '\0');
  Status ok;
  for (off_t at = st.st_size; ok && at < static_cast<off_t>(kStateFileBytes);) {
    const auto n = std::min<off_t>(static_cast<off_t>(zeros.size()), static_cast<off_t>(kStateFileBytes) - at);
    ok = PwriteAll(state_fd.get(), std::string_view(zeros).substr(0, static_cast<std::size_t>(n)), at, kStateFile);
    at += n;
  }
  if (ok && ::fsync(state_fd.get()) != 0) ok = FailErrno(std::string("fsync ") + kStateFile);
  if (!ok) {
    // No room (a full disk): run without the journal (two flushes a batch)
    // rather than refuse to log; the next Open tries again.
    if (::ftruncate(state_fd.get(), st.st_size) != 0) return FailErrno(std::string("truncate ") + kStateFile);
    return {};
  }
  journal_capacity = kJournalBytes;
  return {};
}

Status AuditLog::Impl::WriteCheckpointLocked() {
  const std::int64_t now = NowNs();
  if (auto ok = SyncSegment(); !ok) return ok;  // no note may cover entries only the journal holds
  if (auto ok = DurableTree(); !ok) return ok;
  auto note = SignCheckpoint(CheckpointBody{id.origin, tree.size(), tree.Root(), FormatTime(now)}, id, seed);
  if (!note) return std::unexpected(note.error());
  struct stat st{};
  if (::fstat(checkpoints_fd.get(), &st) != 0) return FailErrno(std::string("stat ") + kCheckpointsFile);
  Status ok = WriteAll(checkpoints_fd.get(), *note + "\n", kCheckpointsFile);
  if (ok) ok = DataSync(checkpoints_fd.get(), kCheckpointsFile);
  if (!ok) {
    if (::ftruncate(checkpoints_fd.get(), st.st_size) != 0) {}  // best effort: no torn note
    return ok;
  }
  last_note = *note;
  state.checkpoint_size = next_seq;
  state.checkpoint_time_ns = now;
  return {};
}

// Appends a batch. With the journal (the default) the lines go to the segment
// unsynced and, with the evolved key, into mac.state under one fdatasync
// (state_written); with sync_segment (a checkpoint follows) or a batch larger
// than the journal, the segment is fdatasync'd and the caller writes the state.
Result<std::uint64_t> AuditLog::Impl::WriteEntries(const std::vector<const Event*>& events,
                                                   std::vector<std::uint64_t>& seqs, bool sync_segment,
                                                   bool& state_written) {
  state_written = false;
  std::string lines;
  std::vector<Bytes32> leaves;
  leaves.reserve(events.size());
  Bytes32 key = state.key;
  Bytes32 prev = head;
  std::uint64_t seq = next_seq;
  for (const Event* e : events) {
    auto sealed = SealEntry(*e, e->actor.value_or(self), seq, FormatTime(NowNs()), prev, key);
    if (!sealed) return std::unexpected(sealed.error());
    lines += sealed->line;
    leaves.push_back(LeafHash(std::string_view(sealed->line).substr(0, sealed->line.size() - 1)));
    prev = sealed->hash;
    key = EvolveKey(key);
    seqs.push_back(seq++);
  }
  auto fail = [&](const Error& e) -> Result<std::uint64_t> {
    Cleanse(key.data(), 32);
    return std::unexpected(e);
  };
  if (!seg_fd || (seg_size > 0 && static_cast<std::uint64_t>(seg_size) + lines.size() > opt.segment_max_bytes)) {
    // The journal only ever holds lines of the active segment.
    if (auto ok = SyncSegment(); !ok) return fail(ok.error());
    if (auto ok = OpenSegment({next_seq, opt.dir + "/" + SegmentName(next_seq)}, true); !ok) return fail(ok.error());
  }
  const bool journal = !sync_segment && lines.size() <= journal_capacity;
  if (journal && state.journal_bytes + lines.size() > journal_capacity) {
    if (auto ok = SyncSegment(); !ok) return fail(ok.error());  // the journal is full: start it afresh
  }
  head_valid = false;  // until the write is known to be complete and durable
  Status written = WriteAll(seg_fd.get(), lines, seg.path);
  if (written && !journal) written = DataSync(seg_fd.get(), seg.path);
  const std::size_t journal_bytes = state.journal_bytes + lines.size();
  if (written && journal) {
    // The lines after those the journal holds, then the record naming them
    // with the evolved key: a record never describes lines not yet written.
    written = PwriteAll(state_fd.get(), lines, static_cast<off_t>(kStateRecordBytes + state.journal_bytes), kStateFile);
    MacState next = state;
    next.seq = seq;
    next.key = key;
    next.journal_bytes = journal_bytes;
    if (written) written = WriteRecord(next);
    Cleanse(next.key.data(), 32);
    if (written && ::fdatasync(state_fd.get()) != 0) {
      // The record and the lines may or may not be on the disk: the next
      // batch re-reads what is there.
      const Error e = FailErrno(std::string("fdatasync ") + kStateFile).error();
      return fail(WithContext(e, "audit entries were written but are not known to be durable"));
    }
  }
  if (!written) {
    // A short write (ENOSPC, EIO) must not leave a torn line: cut the segment
    // back to its last good size, so the log still verifies and the next
    // writer needs no space to recover. If even that fails, the next writer
    // moves the torn line aside (recovery). The record on disk is unchanged.
    if (::ftruncate(seg_fd.get(), seg_size) == 0 && (journal || ::fdatasync(seg_fd.get()) == 0)) head_valid = true;
    return fail(WithContext(written.error(), "nothing was appended"));
  }
  seg_size += static_cast<off_t>(lines.size());
  next_seq = seq;
  head = prev;
  state.key = key;
  state.seq = seq;
  Cleanse(key.data(), 32);
  if (journal) {
    state.journal_bytes = journal_bytes;
    state_written = true;
  } else {
    state.journal_seq = seq;  // the segment is durable: the journal starts afresh
    state.journal_bytes = 0;
  }
  // The entries are durable; the tree is derived from them. If its hashes
  // cannot be stored now, the next batch recomputes them (Resync) first.
  head_valid = static_cast<bool>(AppendTree(leaves));
  return seq;
}

Status AuditLog::Impl::FlushPendingLocked() {
  if (pending.empty()) return {};
  std::vector<const Event*> events;
  std::vector<std::uint64_t> seqs;
  for (const Event& e : pending) events.push_back(&e);
  bool state_written = false;
  auto written = WriteEntries(events, seqs, false, state_written);
  if (!written) return std::unexpected(written.error());
  pending.clear();
  return state_written ? Status{} : WriteState();
}

void AuditLog::Impl::CommitBatch(std::vector<Request*>& batch) {
  FileLock lock(lock_fd.get());
  std::vector<const Event*> events;
  std::vector<std::uint64_t> seqs;
  auto fail_all = [&](const Error& e) {
    for (Request* r : batch) r->result = std::unexpected(e);
  };
  if (auto ok = Sync(); !ok) return fail_all(ok.error());
  const std::vector<Event> pre = std::move(pending);
  pending.clear();
  for (const Event& e : pre) events.push_back(&e);
  for (Request* r : batch) events.push_back(r->event);
  if (events.empty()) return;
  const std::int64_t interval_ns = std::int64_t{opt.checkpoint_interval.count()} * 1'000'000'000;
  const bool due = next_seq + events.size() - state.checkpoint_size >= opt.checkpoint_every ||
                   NowNs() - state.checkpoint_time_ns >= interval_ns;
  bool state_written = false;
  auto written = WriteEntries(events, seqs, due, state_written);
  if (!written) {
    pending = pre;
    return fail_all(written.error());
  }
  Status ok = due ? WriteCheckpointLocked() : Status{};
  if (ok && (due || !state_written)) ok = WriteState();
  if (!ok) {
    head_valid = false;
    return fail_all(WithContext(ok.error(), "audit entries were written but the MAC key was not erased"));
  }
  for (std::size_t i = 0; i < batch.size(); ++i) batch[i]->result = seqs[pre.size() + i];
}

template <class F>
auto AuditLog::Impl::Exclusive(F&& fn) {
  std::unique_lock l(mu);
  cv.wait(l, [&] { return !leader; });
  leader = true;
  l.unlock();
  auto result = fn();
  l.lock();
  leader = false;
  cv.notify_all();
  return result;
}

Result<std::uint64_t> AuditLog::Impl::Enqueue(const Event& event) {
  Request req{&event};
  std::unique_lock l(mu);
  queue.push_back(&req);
  while (!req.done) {
    if (leader) {
      cv.wait(l);
      continue;
    }
    leader = true;
    std::vector<Request*> batch = std::exchange(queue, {});
    l.unlock();
    CommitBatch(batch);
    l.lock();
    leader = false;
    for (Request* r : batch) r->done = true;
    cv.notify_all();
  }
  return req.result;
}

AuditLog::AuditLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AuditLog::~AuditLog() = default;

Result<std::unique_ptr<AuditLog>> AuditLog::Open(Options options) {
  auto impl = std::make_unique<Impl>();
  impl->opt = std::move(options);
  const std::string& dir = impl->opt.dir;
  if (impl->opt.checkpoint_every == 0) impl->opt.checkpoint_every = 1;
  auto state_fd = OpenFile(dir + "/" + kStateFile, O_RDWR);
  if (!state_fd) {
    return Fail(state_fd.error().code, "audit log " + dir + " has no keys (" + state_fd.error().message +
                                           "); `cordon init` creates them");
  }
  if (auto ok = CheckPrivate(state_fd->get(), dir + "/" + kStateFile); !ok) return std::unexpected(ok.error());
  auto lock_fd = OpenFile(dir + "/" + kLockFile, O_RDWR);
  auto cp_fd = OpenFile(dir + "/" + kCheckpointsFile, O_WRONLY | O_APPEND);
  auto tree_fd = OpenFile(dir + "/" + kTreeFile, O_RDWR | O_CREAT);  // made here for a log from before the tree
  auto identity = ReadFileLimited(dir + "/" + kIdentityFile, 4096);
  auto seed_text = ReadSecretFile(dir + "/" + kSigningKeyFile, 4096);
  if (!lock_fd || !cp_fd || !tree_fd || !identity || !seed_text) {
    const Error& e = !lock_fd ? lock_fd.error() : !cp_fd ? cp_fd.error() : !tree_fd ? tree_fd.error()
                     : !identity ? identity.error() : seed_text.error();
    return std::unexpected(WithContext(e, "audit log " + dir));
  }
  {
    auto key_fd = OpenFile(dir + "/" + kSigningKeyFile, O_RDONLY);
    if (!key_fd) return std::unexpected(key_fd.error());
    if (auto ok = CheckPrivate(key_fd->get(), dir + "/" + kSigningKeyFile); !ok) return std::unexpected(ok.error());
  }
  auto id = DecodeIdentity(*identity);
  const std::string_view key_text(reinterpret_cast<const char*>(seed_text->data()), seed_text->size());
  const std::size_t at = key_text.find("seed ");
  auto seed = at == std::string_view::npos ? std::nullopt : Unhex32(key_text.substr(at + 5, 64));
  if (!id || !seed) return Fail(Errc::kInvalidData, "audit log " + dir + ": identity or checkpoint key unreadable");
  impl->state_fd = std::move(*state_fd);
  impl->lock_fd = std::move(*lock_fd);
  impl->checkpoints_fd = std::move(*cp_fd);
  impl->tree_fd = std::move(*tree_fd);
  impl->id = *id;
  impl->seed = *seed;
  Cleanse(&*seed, sizeof(Bytes32));
  impl->self = CurrentActor();
  ::mlock(impl.get(), sizeof(Impl));  // best effort: keep the keys out of swap
  std::unique_ptr<AuditLog> log(new AuditLog(std::move(impl)));
  // Recover now (torn tail, gap), not at the first append.
  Impl& impl_ref = *log->impl_;
  auto recovered = impl_ref.Exclusive([&]() -> Status {
    FileLock lock(impl_ref.lock_fd.get());
    if (auto ok = impl_ref.EnsureJournal(); !ok) return ok;
    if (auto ok = impl_ref.Sync(); !ok) return ok;
    return impl_ref.FlushPendingLocked();
  });
  if (!recovered) return std::unexpected(recovered.error());
  impl_ref.opened_by = ::getpid();
  return log;
}

Result<std::uint64_t> AuditLog::Append(const Event& event) {
  if (auto ok = ValidateEvent(event); !ok) return std::unexpected(ok.error());
  return impl_->Enqueue(event);
}

Result<Intent> AuditLog::Begin(Event event) {
  event.outcome = "intent";
  auto seq = Append(event);
  if (!seq) return std::unexpected(seq.error());
  return Intent{*seq, event.action, event.job};
}

Result<std::uint64_t> AuditLog::Finish(const Intent& intent, std::string outcome, nlohmann::json details) {
  if (!details.is_object()) return Fail(Errc::kInvalidArgument, "audit details: must be an object");
  details["intent_seq"] = intent.seq;
  return Append(Event{intent.action, intent.job, std::move(outcome), std::move(details), std::nullopt});
}

Result<std::string> AuditLog::Checkpoint() {
  return impl_->Exclusive([&]() -> Result<std::string> {
    FileLock lock(impl_->lock_fd.get());
    if (auto ok = impl_->Sync(); !ok) return std::unexpected(ok.error());
    if (auto ok = impl_->FlushPendingLocked(); !ok) return std::unexpected(ok.error());
    if (auto ok = impl_->WriteCheckpointLocked(); !ok) return std::unexpected(ok.error());
    if (auto ok = impl_->WriteState(); !ok) return std::unexpected(ok.error());
    return impl_->last_note;
  });
}

}  // namespace cordon::audit
