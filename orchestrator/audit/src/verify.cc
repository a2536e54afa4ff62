// The verifier, the timeline reader and the latest checkpoint.
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>
#include <unordered_set>

#include "cordon/file_io.h"
#include "cordon/audit/verify.h"
#include "cordon/unique_fd.h"
#include "cordon/units.h"
#include "internal.h"
#include "merkle.h"

namespace cordon::audit {

using namespace internal;

const char* TamperName(Tamper t) {
  switch (t) {
    case Tamper::kModified: return "modified";
    case Tamper::kDeleted: return "deleted";
    case Tamper::kReordered: return "reordered";
    case Tamper::kInserted: return "inserted";
    case Tamper::kMacMismatch: return "MAC mismatch";
    case Tamper::kBadSignature: return "bad signature";
    case Tamper::kTruncated: return "truncated before checkpoint";
  }
  return "unknown";
}

namespace {

struct Line {
  std::size_t file;       // index into Log::paths
  std::uint64_t number;   // 1-based
  std::string_view text;  // without '\n'
  bool torn = false;      // no '\n' at the end
};

// A read-only mapping of a segment. Mapping instead of reading saves zeroing
// and copying the whole log (most of the verifier's time otherwise).
class Mapping final {
 public:
  Mapping(void* p, std::size_t n) : p_(p), n_(n) {}
  Mapping(Mapping&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(o.n_) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping& operator=(Mapping&&) = delete;
  ~Mapping() {
    if (p_ != nullptr) ::munmap(p_, n_);
  }
  std::string_view view() const { return {static_cast<const char*>(p_), p_ ? n_ : 0}; }

 private:
  void* p_;
  std::size_t n_;
};

struct Log {
  std::vector<std::string> paths;
  std::vector<Mapping> maps;
  std::vector<std::string> torn;  // a last line without '\n', copied
  std::vector<Line> lines;
  std::uint64_t bytes = 0;
};

// Appends the lines of `text` (complete lines, each ending in '\n') of file
// `file` to `out`. A large segment is split on `threads` threads, each finding
// the lines of a range that starts after a '\n' (touching the mapped pages
// there, in parallel, instead of on one thread before the verifier starts).
void SplitLines(std::size_t file, std::string_view text, unsigned threads, std::vector<Line>& out) {
  const auto split = [file](std::string_view part, std::vector<Line>& lines) {
    std::uint64_t number = 0;
    while (!part.empty()) {
      const std::size_t nl = part.find('\n');
      lines.push_back({file, ++number, part.substr(0, nl), false});
      part.remove_prefix(nl + 1);
    }
  };
  constexpr std::size_t kParallelFrom = 4u << 20;
  if (threads <= 1 || text.size() < kParallelFrom) {
    split(text, out);
    return;
  }
  std::vector<std::size_t> bounds{0};
  for (unsigned t = 1; t < threads; ++t) {
    const std::size_t nl = text.find('\n', std::max(bounds.back(), text.size() / threads * t));
    bounds.push_back(nl == std::string_view::npos ? text.size() : nl + 1);
  }
  bounds.push_back(text.size());
  std::vector<std::vector<Line>> parts(threads);
  {
    std::vector<std::jthread> running;
    for (unsigned t = 0; t < threads; ++t) {
      running.emplace_back(split, text.substr(bounds[t], bounds[t + 1] - bounds[t]), std::ref(parts[t]));
    }
  }
  std::size_t total = out.size();
  for (const auto& part : parts) total += part.size();
  out.reserve(total);
  std::uint64_t before = 0;
  for (const auto& part : parts) {
    for (const Line& l : part) out.push_back({l.file, before + l.number, l.text, false});
    before += part.size();
  }
}

// Maps every segment under a shared flock on audit.lock (when there is one):
// Cordon writers only append, or cut a torn tail back to its last '\n' during
// recovery, so the bytes up to the last '\n' seen under the lock stay valid
// after it is released. (Someone else truncating the files makes the
// verifier die of SIGBUS: fail-closed.)
Result<Log> LoadLog(const std::string& dir, unsigned threads = 1) {
  UniqueFd lock(::open((dir + "/" + kLockFile).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (lock) {
    (void)RetryEintr([&] { return ::flock(lock.get(), LOCK_SH); });
  }
  auto segments = ListSegments(dir);
  if (!segments) return std::unexpected(segments.error());
  Log log;
  for (const Segment& s : *segments) {
    UniqueFd fd(::open(s.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    struct stat st{};
    if (!fd || ::fstat(fd.get(), &st) != 0) return FailErrno("open " + s.path);
    if (!S_ISREG(st.st_mode)) return Fail(Errc::kInvalidData, s.path + ": not a regular file");
    const auto size = static_cast<std::size_t>(st.st_size);
    void* p = size == 0 ? nullptr : ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (p == MAP_FAILED) return FailErrno("mmap " + s.path);
    if (p != nullptr) ::madvise(p, size, MADV_SEQUENTIAL);
    log.maps.emplace_back(p, size);
    const std::string_view all = log.maps.back().view();
    const std::size_t nl = all.rfind('\n');
    const std::size_t complete = nl == std::string_view::npos ? 0 : nl + 1;
    log.torn.emplace_back(all.substr(complete));
    log.paths.push_back(s.path);
    log.bytes += size;
  }
  if (lock) ::flock(lock.get(), LOCK_UN);
  for (std::size_t f = 0; f < log.maps.size(); ++f) {
    std::string_view rest = log.maps[f].view();
    rest.remove_suffix(log.torn[f].size());
    SplitLines(f, rest, threads, log.lines);
    if (!log.torn[f].empty()) {
      const std::uint64_t number = log.lines.empty() || log.lines.back().file != f ? 1 : log.lines.back().number + 1;
      log.lines.push_back({f, number, log.torn[f], true});
    }
  }
  return log;
}

struct Anchor {
  Bytes32 head;
  std::string file;
  std::uint64_t line;
};

class Verifier final {
 public:
  Verifier(const Log& log, std::optional<Bytes32> k0, std::multimap<std::uint64_t, Anchor> anchors, unsigned threads)
      : log_(log), key_(k0.value_or(Bytes32{})), macs_(k0.has_value()), anchors_(std::move(anchors)),
        threads_(threads) {}
  ~Verifier() {
    Cleanse(key_.data(), key_.size());
    for (Block& b : blocks_) {
      if (!b.keys.empty()) Cleanse(b.keys.data(), b.keys.size() * sizeof(Bytes32));
    }
    if (!spare_keys_.empty()) Cleanse(spare_keys_.data(), spare_keys_.size() * sizeof(Bytes32));
  }

  // Blocks of lines: the per-entry work (scan, hashes, leaf hash, MAC under
  // the key the entry gets if every line before it is accepted, and the
  // hashes of the block's aligned subtrees) runs on every core, one block
  // ahead of the sequential part (the chain, anchors), which walks the block
  // prepared before and then helps prepare the next (chunks of kChunk lines,
  // taken one at a time). The MAC keys of the block after that one are evolved at
  // the same time on a thread of their own, so no core waits for the chain
  // of keys. A block without a checkpoint inside it joins the tree as its
  // subtree hashes; otherwise (and up to a finding) leaf by leaf.
  std::optional<Finding> Run() {
    if (auto f = CheckAnchors(); f) return f;  // size 0
    const std::size_t n = log_.lines.size();
    std::vector<std::jthread> ahead;  // joined before the block is read, or on return
    if (n > 0) {
      EvolveKeys(spare_keys_, std::min(n, kBlock));
      Launch(blocks_[0], 0, std::min(n, kBlock), ahead);
      PrepareChunks(blocks_[0]);
    }
    for (std::size_t start = 0, b = 0; start < n; start += kBlock, b ^= 1) {
      ahead.clear();  // joins: block b is ready, and the keys of block b + 1
      const std::size_t next = start + kBlock;
      const std::size_t end = std::min(n, next);
      if (next < n) Launch(blocks_[b ^ 1], next, std::min(n, next + kBlock), ahead);
      current_ = &blocks_[b];
      // Anchors strictly inside the block need the root at their size.
      const auto inside = anchors_.upper_bound(start);
      const bool whole = inside == anchors_.end() || inside->first >= end;
      for (std::size_t i = start; i < end; ++i) {
        if (auto f = Step(i, !whole); f) {
          if (whole) {
            for (std::size_t j = start; j < i; ++j) tree_.Append(current_->pre[j - start].leaf);
          }
          return f;
        }
        if (!whole) {
          if (auto f = CheckAnchors(); f) return f;
        }
      }
      if (whole) {
        for (const auto& part : current_->subtrees) {
          for (const Subtree& t : part) tree_.AppendSubtree(t.hash, t.level);
        }
        if (auto f = CheckAnchors(); f) return f;
      }
      // The walk is cheap: help prepare the next block instead of waiting.
      if (next < n) PrepareChunks(blocks_[b ^ 1]);
    }
    return CheckBeyondEnd();
  }
  std::uint64_t entries() const { return expected_; }
  const Bytes32& head() const { return head_; }
  Bytes32 root() const { return tree_.Root(); }

 private:
  Finding At(std::size_t i, Tamper t, std::optional<std::uint64_t> seq, std::string detail) const {
    const Line& l = log_.lines[i];
    return Finding{t, log_.paths[l.file], l.number, seq, std::move(detail)};
  }
  std::string Where(std::size_t i) const {
    const Line& l = log_.lines[i];
    return log_.paths[l.file] + ":" + std::to_string(l.number);
  }
  std::optional<ParsedEntry> ParseAt(std::size_t i) const {
    if (i >= log_.lines.size()) return std::nullopt;
    auto e = ScanEntryLine(log_.lines[i].text);
    return e ? std::optional<ParsedEntry>(std::move(*e)) : std::nullopt;
  }

  static constexpr std::size_t kBlock = 1 << 14;
  static constexpr std::size_t kChunk = 1 << 8;  // divides kBlock
  struct Prepared {
    Result<ParsedEntry> entry{ParsedEntry{}};
    Bytes32 leaf{};
    bool mac_ok = false;
  };
  struct Block {
    std::size_t start = 0;
    std::size_t end = 0;
    std::vector<Prepared> pre;
    std::vector<Bytes32> keys;                  // k of each line, if every line before it is accepted
    std::vector<std::vector<Subtree>> subtrees;  // per chunk, left to right: the block's aligned subtrees
    std::atomic<std::size_t> next_chunk{0};      // the next chunk a preparing thread takes
  };

  // `count` keys from key_ on; key_ becomes the key of the line after them.
  void EvolveKeys(std::vector<Bytes32>& keys, std::size_t count) {
    if (count < keys.size()) Cleanse(keys.data() + count, (keys.size() - count) * sizeof(Bytes32));
    keys.resize(count);
    if (!macs_) return;
    for (auto& slot : keys) {
      slot = key_;
      key_ = EvolveKey(key_);
    }
  }

  // Prepares lines [start, end) into `block` on threads_ - 1 threads
  // (returned in `running`) and the walking thread, which joins them once it
  // has walked the block before, with the keys spare_keys_ holds for them;
  // spare_keys_ gets those of the next block on one more thread.
  void Launch(Block& block, std::size_t start, std::size_t end, std::vector<std::jthread>& running) {
    block.start = start;
    block.pre.resize(end - start);
    block.keys.swap(spare_keys_);
    // Chunks of kChunk lines (aligned: the block starts at a multiple of
    // kBlock), claimed one at a time, so a thread the scheduler delays (this
    // machine's cores are shared with the chain walk and the key thread) does
    // not leave the others idle at the end of the block.
    const std::size_t chunks = (end - start + kChunk - 1) / kChunk;
    block.subtrees.resize(chunks);
    block.next_chunk.store(0, std::memory_order_relaxed);
    block.end = end;
    for (std::size_t t = 1; t < std::min<std::size_t>(threads_, chunks); ++t) {
      running.emplace_back([this, &block] { PrepareChunks(block); });
    }
    const std::size_t after = std::min(log_.lines.size(), end + kBlock) - end;
    if (after > 0) running.emplace_back([this, after] { EvolveKeys(spare_keys_, after); });
  }

  // Prepares the chunks of `block` no thread has taken yet.
  void PrepareChunks(Block& block) const {
    const std::size_t chunks = block.subtrees.size();
    std::vector<Bytes32> leaves;
    for (std::size_t c; (c = block.next_chunk.fetch_add(1, std::memory_order_relaxed)) < chunks;) {
      const std::size_t from = block.start + c * kChunk;
      const std::size_t to = std::min(block.end, from + kChunk);
      leaves.resize(to - from);
      for (std::size_t i = from; i < to; ++i) {
        Prepared& p = block.pre[i - block.start];
        p.entry = ScanEntryLine(log_.lines[i].text);
        p.leaf = LeafHash(log_.lines[i].text);
        leaves[i - from] = p.leaf;
        p.mac_ok = macs_ && p.entry && Equal32(HmacSha256(block.keys[i - block.start], p.entry->hash), p.entry->mac);
      }
      block.subtrees[c].clear();
      AlignedSubtrees(from, leaves, block.subtrees[c]);
    }
  }

  // Accepts line i or returns the finding; `leaf`: appends its leaf to the tree.
  std::optional<Finding> Step(std::size_t i, bool leaf) {
    const Line& line = log_.lines[i];
    if (line.torn) return At(i, Tamper::kModified, std::nullopt, "torn last line (no newline): a crash not yet recovered, or an edit");
    const Prepared& p = current_->pre[i - current_->start];
    const auto& e = p.entry;
    if (!e) return At(i, Tamper::kModified, std::nullopt, "not a valid entry: " + e.error().message);
    // Hashes of public content compare with ==: their timing reveals nothing
    // (the MAC, keyed, is compared in constant time).
    if (e->computed != e->hash) {
      return At(i, Tamper::kModified, e->seq, "the content does not match its hash");
    }
    if (e->seq != expected_ || e->prev != head_) return Classify(i, *e);
    if (macs_ && !p.mac_ok) {
      auto next = ParseAt(i + 1);
      if (next && (next->seq == e->seq || Equal32(next->prev, e->prev))) {
        return At(i, Tamper::kInserted, e->seq, "forged entry (MAC mismatch); the next line is the real seq " +
                                                    std::to_string(e->seq));
      }
      return At(i, Tamper::kMacMismatch, e->seq,
                "the MAC does not verify under the forward-secure key for this seq (entry rewritten)");
    }
    accepted_.push_back(i);
    if (leaf) tree_.Append(p.leaf);
    head_ = e->hash;
    ++expected_;
    return std::nullopt;
  }

  std::optional<Finding> Classify(std::size_t i, const ParsedEntry& e) {
    if (e.seq == expected_) {
      auto next = ParseAt(i + 1);
      if (next && next->seq == e.seq) return At(i, Tamper::kInserted, e.seq, "not linked to the chain; the next line is seq " + std::to_string(e.seq) + " too");
      const std::string prev_at = accepted_.empty() ? "the start of the log" : Where(accepted_.back());
      return At(i, Tamper::kModified, e.seq, "prev does not match the hash of the entry before (" + prev_at + "): one of them was rewritten");
    }
    if (e.seq > expected_) {
      std::optional<std::size_t> later;
      bool referenced = false;
      for (std::size_t j = i + 1; j < log_.lines.size(); ++j) {
        auto o = ParseAt(j);
        if (!o) continue;
        if (o->seq == expected_ && !later) later = j;
        if (Equal32(o->prev, e.hash)) referenced = true;
      }
      if (!later) {
        return At(i, Tamper::kDeleted, e.seq, "seq " + std::to_string(expected_) + (e.seq - 1 > expected_ ? ".." + std::to_string(e.seq - 1) : "") + " missing before this entry");
      }
      if (referenced) return At(i, Tamper::kReordered, e.seq, "expected seq " + std::to_string(expected_) + ", which comes later at " + Where(*later));
      return At(i, Tamper::kInserted, e.seq, "not part of the chain: seq " + std::to_string(expected_) + " follows at " + Where(*later));
    }
    // e.seq < expected_: a seq that was already accepted. If this line is the
    // real one (its successor links to it), the accepted one was inserted.
    const std::size_t earlier = accepted_[e.seq];
    auto next = ParseAt(i + 1);
    if (next && Equal32(next->prev, e.hash)) {
      return At(earlier, Tamper::kInserted, e.seq, "forged entry: " + Where(i) + " is the seq " + std::to_string(e.seq) + " the chain continues from");
    }
    return At(i, Tamper::kInserted, e.seq, "seq " + std::to_string(e.seq) + " already appeared at " + Where(earlier));
  }

  std::optional<Finding> CheckAnchors() {
    auto [from, to] = anchors_.equal_range(expected_);
    if (from == to) return std::nullopt;
    const Bytes32 root = tree_.Root();
    for (auto it = from; it != to; ++it) {
      // The Merkle root (a checkpoint made before the tree carried the chain head: both commit to the prefix).
      if (!Equal32(it->second.head, root) && !Equal32(it->second.head, head_)) {
        const std::string where = accepted_.empty() ? "the start of the log" : Where(accepted_.back());
        return Finding{Tamper::kTruncated, it->second.file, it->second.line, expected_ == 0 ? std::nullopt : std::optional<std::uint64_t>(expected_ - 1),
                       "the log does not contain this checkpoint: the head at size " + std::to_string(expected_) +
                           " (" + where + ") differs (rolled back or rewritten)"};
      }
    }
    return std::nullopt;
  }

  std::optional<Finding> CheckBeyondEnd() const {
    for (const auto& [size, anchor] : anchors_) {
      if (size > expected_) {
        return Finding{Tamper::kTruncated, anchor.file, anchor.line, size - 1,
                       "checkpoint of size " + std::to_string(size) + " but the log ends after " +
                           std::to_string(expected_) + " entries: the tail was truncated"};
      }
    }
    return std::nullopt;
  }

  const Log& log_;
  Bytes32 key_;  // the MAC key of the next line to prepare
  bool macs_;
  std::multimap<std::uint64_t, Anchor> anchors_;
  unsigned threads_;
  std::vector<std::size_t> accepted_;  // line index of each accepted seq
  Frontier tree_;                      // RFC 6962 tree over the accepted records
  std::array<Block, 2> blocks_;        // the block being walked and the one being prepared
  std::vector<Bytes32> spare_keys_;    // the keys of the block after the one being prepared
  const Block* current_ = nullptr;
  std::uint64_t expected_ = 0;
  Bytes32 head_{};
};

Result<Identity> LoadIdentity(const VerifyOptions& o, std::optional<Bytes32>& k0) {
  if (o.verifier_key_file) {
    auto text = ReadSecretFile(*o.verifier_key_file, 64 * 1024);
    if (!text) return std::unexpected(text.error());
    auto key = DecodeVerifierKey({reinterpret_cast<const char*>(text->data()), text->size()});
    if (!key) return std::unexpected(WithContext(key.error(), *o.verifier_key_file));
    k0 = key->k0;
    Cleanse(key->k0.data(), 32);
    return key->identity;
  }
  auto text = ReadFileLimited(o.dir + "/" + kIdentityFile, 64 * 1024);
  if (!text) return std::unexpected(WithContext(text.error(), o.dir + " is not an audit log directory"));
  return DecodeIdentity(*text);
}

struct Witnesses {
  std::vector<WitnessIdentity> keys;
  std::uint64_t required = 0;
  std::uint64_t verified = 0;
};

Result<Witnesses> LoadWitnesses(const VerifyOptions& o) {
  Witnesses w;
  w.required = o.witnesses_required;
  for (const std::string& k : o.witness_keys) {
    std::string vkey = k;
    if (::access(k.c_str(), F_OK) == 0) {
      auto text = ReadFileLimited(k, 4096);
      if (!text) return std::unexpected(text.error());
      vkey = text->substr(0, text->find('\n'));
    }
    auto id = ParseWitnessVerifierKey(vkey);
    if (!id) return std::unexpected(WithContext(id.error(), k));
    w.keys.push_back(*id);
  }
  if (w.required > w.keys.size()) {
    return Fail(Errc::kInvalidArgument, std::to_string(w.required) + " witnesses required but " +
                                            std::to_string(w.keys.size()) + " witness key(s) given");
  }
  return w;
}

// Checkpoint signatures; the good ones become anchors the log must contain.
// With `witnesses`, every note must also carry that many of their cosignatures.
std::optional<Finding> LoadAnchors(const std::string& path, const Identity& id, bool required,
                                   std::multimap<std::uint64_t, Anchor>& anchors, std::uint64_t& count,
                                   Witnesses* witnesses = nullptr) {
  auto text = ReadFileLimited(path, 256ull << 20);
  if (!text) {
    if (!required && text.error().code == Errc::kNotFound) return std::nullopt;
    return Finding{Tamper::kBadSignature, path, 0, std::nullopt, "cannot read checkpoints: " + text.error().message};
  }
  for (const ParsedCheckpoint& cp : ParseCheckpoints(*text, id)) {
    if (!cp.signature_ok) return Finding{Tamper::kBadSignature, path, cp.line, std::nullopt, cp.problem};
    if (witnesses != nullptr && !witnesses->keys.empty()) {
      std::uint64_t cosigned = 0;
      for (const WitnessIdentity& w : witnesses->keys) cosigned += HasCosignature(cp.body_text, cp.signatures, w) ? 1u : 0u;
      if (cosigned < witnesses->required) {
        return Finding{Tamper::kBadSignature, path, cp.line, std::nullopt,
                       "checkpoint of size " + std::to_string(cp.body.size) + " has " + std::to_string(cosigned) +
                           " valid witness cosignature(s); " + std::to_string(witnesses->required) + " required"};
      }
      witnesses->verified += cosigned;
    }
    anchors.emplace(cp.body.size, Anchor{cp.body.head, path, cp.line});
    ++count;
  }
  if (required && count == 0) return Finding{Tamper::kBadSignature, path, 0, std::nullopt, "no checkpoint in the file"};
  return std::nullopt;
}

}  // namespace

Result<VerifyReport> Verify(const VerifyOptions& options) {
  std::optional<Bytes32> k0;
  auto id = LoadIdentity(options, k0);
  if (!id) return std::unexpected(id.error());
  auto witnesses = LoadWitnesses(options);
  if (!witnesses) return std::unexpected(witnesses.error());
  if (!options.witness_keys.empty() && !options.checkpoint_file) {
    return Fail(Errc::kInvalidArgument, "witness keys check the cosignatures of --checkpoint FILE: give one");
  }
  VerifyReport report;
  report.macs_checked = k0.has_value();
  std::multimap<std::uint64_t, Anchor> anchors;
  report.failure = LoadAnchors(options.dir + "/" + kCheckpointsFile, *id, false, anchors, report.checkpoints);
  if (!report.failure && options.checkpoint_file) {
    std::uint64_t external = 0;
    report.failure = LoadAnchors(*options.checkpoint_file, *id, true, anchors, external, &*witnesses);
    report.checkpoints += external;
    report.witnesses = witnesses->verified;
  }
  const unsigned threads = options.threads != 0 ? std::min(options.threads, 64u)
                                                : std::clamp(std::thread::hardware_concurrency(), 1u, 16u);
  auto log = LoadLog(options.dir, threads);
  if (!log) return std::unexpected(log.error());
  report.bytes = log->bytes;
  Verifier verifier(*log, k0, std::move(anchors), threads);
  if (k0) Cleanse(k0->data(), 32);
  if (!report.failure) report.failure = verifier.Run();
  report.entries = verifier.entries();
  if (report.entries > 0) report.head = Hex(verifier.head());
  const Bytes32 root = verifier.root();
  report.root = Base64(root.data(), root.size());
  return report;
}

Result<std::vector<nlohmann::json>> ReadEntries(const std::string& dir, const ShowFilter& filter) {
  std::optional<std::int64_t> since;
  if (filter.since) {
    since = ParseTime(*filter.since);
    if (!since) {
      auto ago = ParseDuration(*filter.since);
      if (!ago) return Fail(Errc::kInvalidArgument, "--since " + *filter.since + ": not RFC 3339 UTC (…Z) or a duration (30m)");
      since = NowNs() - std::int64_t{ago->count()} * 1'000'000;
    }
  }
  auto log = LoadLog(dir);
  if (!log) return std::unexpected(log.error());
  std::vector<nlohmann::json> out;
  for (const Line& line : log->lines) {
    nlohmann::json j = nlohmann::json::parse(line.text, nullptr, false);
    if (!j.is_object() || !j.contains("action") || !j["action"].is_string() || !j.contains("time") || !j["time"].is_string()) {
      out.push_back({{"unreadable", log->paths[line.file] + ":" + std::to_string(line.number)}});
      continue;
    }
    if (filter.job && (!j.contains("job") || j["job"] != *filter.job)) continue;
    if (filter.action_glob && ::fnmatch(filter.action_glob->c_str(), j["action"].get_ref<const std::string&>().c_str(), 0) != 0) continue;
    if (since) {
      auto t = ParseTime(j["time"].get_ref<const std::string&>());
      if (!t || *t < *since) continue;
    }
    out.push_back(std::move(j));
  }
  return out;
}

std::string FormatTimelineLine(const nlohmann::json& e) {
  if (e.contains("unreadable")) return "?? unreadable line at " + e["unreadable"].get<std::string>() + " (run cordon audit verify)";
  auto str = [&](const char* k) { return e.contains(k) && e[k].is_string() ? e[k].get<std::string>() : std::string("-"); };
  std::string time = str("time");
  if (time.size() == 30) time = time.substr(0, 23) + "Z";  // milliseconds are enough to read
  std::string out = time + "  #" + (e.contains("seq") ? e["seq"].dump() : "?");
  out += "  " + str("action");
  if (e.contains("job")) out += "  job=" + str("job");
  out += "  " + str("outcome");
  if (e.contains("actor") && e["actor"].is_object()) {
    const auto& a = e["actor"];
    out += "  by " + (a.contains("user") && a["user"].is_string() ? a["user"].get<std::string>() : "?") + "(uid " + (a.contains("uid") ? a["uid"].dump() : "?") +
           ") " + (a.contains("process") && a["process"].is_string() ? a["process"].get<std::string>() : "?") + "[" +
           (a.contains("pid") ? a["pid"].dump() : "?") + "]";
  }
  if (e.contains("details") && e["details"].is_object() && !e["details"].empty()) {
    for (const auto& [k, v] : e["details"].items()) out += "  " + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return out;
}

Result<std::string> LatestCheckpoint(const std::string& dir) {
  auto identity = ReadFileLimited(dir + "/" + kIdentityFile, 64 * 1024);
  if (!identity) return std::unexpected(identity.error());
  auto id = DecodeIdentity(*identity);
  if (!id) return std::unexpected(id.error());
  auto text = ReadFileLimited(dir + "/" + kCheckpointsFile, 256ull << 20);
  if (!text) return std::unexpected(text.error());
  auto notes = ParseCheckpoints(*text, *id);
  if (notes.empty()) return Fail(Errc::kNotFound, dir + "/" + kCheckpointsFile + ": no checkpoint yet");
  if (!notes.back().signature_ok) return Fail(Errc::kIntegrity, "latest checkpoint: " + notes.back().problem);
  return notes.back().text;
}

}  // namespace cordon::audit
