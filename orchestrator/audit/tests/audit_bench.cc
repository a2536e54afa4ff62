// Benchmark for scripts/bench-audit. All on the filesystem holding DIR, in one run:
//   1. AuditLog::Append, one thread (durable: the segment written, the lines and the
//      evolved key in mac.state's journal, one fdatasync)
//   2. the baseline: a bare O_APPEND write + fdatasync loop of the same line size,
//      interleaved with 1. in chunks of 50 calls (the disk is shared: both see the same load)
//   3. T threads appending through group commit, and T threads of the bare loop
//   4. verification of a generated log of V entries with MACs and the Merkle root (entries/s, MB/s)
//   5. the Merkle tree's share of an append: the same stored-hash work
//      (leaf, subtree hashes, pwrite to tree.hashes) timed alone
//   6. inclusion and consistency proofs on a tree of P records (tree.hashes as appends store it)
// usage: audit_bench DIR [N=1000] [THREADS=8] [V=500000] [ROUNDS=3] [P=10000000]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "cordon/file_io.h"
#include "cordon/audit/audit.h"
#include "cordon/audit/verify.h"
#include "cordon/audit/tlog.h"
#include "internal.h"
#include "merkle.h"

namespace {

namespace fs = std::filesystem;
using namespace cordon::audit;
using Clock = std::chrono::steady_clock;

double ProcessCpuSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

Event Sample(std::size_t i) {
  return {.action = "job.inputs_verified", .job = "job-1234", .outcome = "ok",
          .details = {{"dataset_ref", "patients-2026"}, {"chunks", i}, {"manifest_sha256", std::string(64, 'a')}},
          .actor = std::nullopt};
}

std::string Fresh(const fs::path& dir, const char* name) {
  const fs::path d = dir / name;
  fs::remove_all(d);
  fs::create_directories(d / "audit");
  auto keys = CreateAuditKeys((d / "audit").string(), (d / "verifier.key").string());
  if (!keys) {
    std::fprintf(stderr, "keys: %s\n", keys.error().message.c_str());
    std::exit(1);
  }
  return (d / "audit").string();
}

double AppendRate(const std::string& dir, std::size_t n, unsigned threads) {
  auto log = AuditLog::Open({.dir = dir, .checkpoint_every = 1000});
  if (!log) std::exit(1);
  const auto start = Clock::now();
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (std::size_t i = t; i < n; i += threads) {
        if (!(*log)->Append(Sample(i))) std::exit(1);
      }
    });
  }
  for (auto& w : workers) w.join();
  return static_cast<double>(n) / Seconds(start);
}

double BareRate(const fs::path& file, std::size_t n, std::size_t line_size, unsigned threads) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  std::string line(line_size - 1, 'x');
  line += '\n';
  const auto start = Clock::now();
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (std::size_t i = t; i < n; i += threads) {
        if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()) || ::fdatasync(fd) != 0) {
          std::exit(1);
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  const double rate = static_cast<double>(n) / Seconds(start);
  ::close(fd);
  return rate;
}

std::size_t AverageLine(const std::string& dir) {
  auto segs = internal::ListSegments(dir);
  std::size_t bytes = 0;
  for (const auto& s : *segs) bytes += fs::file_size(s.path);
  auto r = Verify({dir, std::nullopt, std::nullopt, {}, 0, 0});
  return r && r->entries ? bytes / r->entries : 300;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One thread, finely interleaved: chunks of `chunk` appends and `chunk` bare
// write+fdatasync calls (same line size) alternate on the same disk, so both
// see the same load (this machine's disk is shared, and its latency moves by
// milliseconds within seconds). Returns {append/s, bare/s, median chunk ratio}.
struct OneThread {
  double append = 0, bare = 0, ratio = 0;
  std::size_t line = 0;
};
OneThread InterleavedOneThread(const fs::path& root, std::size_t n, std::size_t chunk) {
  const std::string dir = Fresh(root, "one");
  auto log = AuditLog::Open({.dir = dir, .checkpoint_every = 1000});
  if (!log) std::exit(1);
  for (std::size_t i = 0; i < 8; ++i) {  // the line size, and a warm log
    if (!(*log)->Append(Sample(i))) std::exit(1);
  }
  OneThread out;
  out.line = AverageLine(dir);
  const int fd = ::open((root / "bare.jsonl").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  std::string line(out.line - 1, 'x');
  line += '\n';
  double append_s = 0, bare_s = 0;
  std::vector<double> ratios;
  for (std::size_t done = 0; done < n; done += chunk) {
    const std::size_t k = std::min(chunk, n - done);
    auto t0 = Clock::now();
    for (std::size_t i = 0; i < k; ++i) {
      if (!(*log)->Append(Sample(done + i))) std::exit(1);
    }
    const double a = Seconds(t0);
    t0 = Clock::now();
    for (std::size_t i = 0; i < k; ++i) {
      if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()) || ::fdatasync(fd) != 0) std::exit(1);
    }
    const double b = Seconds(t0);
    append_s += a;
    bare_s += b;
    ratios.push_back(b / a);
  }
  ::close(fd);
  out.append = static_cast<double>(n) / append_s;
  out.bare = static_cast<double>(n) / bare_s;
  out.ratio = Median(ratios);
  return out;
}


// Appends v sealed entries straight to the segment (no fsync: this only
// builds the input for the verification benchmark).
void Generate(const fs::path& root, const std::string& dir, std::size_t v) {
  auto text = cordon::ReadFileLimited((root / "verifier.key").string(), 4096);
  auto vk = internal::DecodeVerifierKey(*text);
  auto first = Verify({dir, std::nullopt, std::nullopt, {}, 0, 0});
  internal::Bytes32 key = internal::EvolveKey(vk->k0);
  auto prev = internal::Unhex32(first->head);
  const Actor actor = internal::CurrentActor();
  std::FILE* f = std::fopen((dir + "/" + internal::SegmentName(0)).c_str(), "ab");
  const std::string time = internal::FormatTime(internal::NowNs());
  for (std::size_t i = 1; i <= v; ++i) {
    auto sealed = internal::SealEntry(Sample(i), actor, i, time, *prev, key);
    std::fwrite(sealed->line.data(), 1, sealed->line.size(), f);
    *prev = sealed->hash;
    key = internal::EvolveKey(key);
  }
  std::fclose(f);
}

// Seconds per record for the tree's work on an append: the leaf hash of a
// line, the completed subtrees, one pwrite of the new stored hashes.
double TreeCostPerAppend(const fs::path& file, std::size_t n, std::size_t line_size) {
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const std::string line(line_size - 1, 'x');
  internal::Frontier tree;
  std::vector<internal::Bytes32> stored;
  const auto start = Clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    stored.clear();
    const auto offset = static_cast<off_t>(internal::StoredHashCount(tree.size()) * 32);
    tree.Append(internal::LeafHash(line), &stored);
    if (::pwrite(fd, stored.data(), stored.size() * 32, offset) != static_cast<ssize_t>(stored.size() * 32)) std::exit(1);
  }
  const double per = Seconds(start) / static_cast<double>(n);
  ::close(fd);
  return per;
}

// tree.hashes for p records in dir (random leaves), as the writer stores them.
void BuildTree(const fs::path& dir, std::uint64_t p) {
  fs::create_directories(dir);
  std::FILE* f = std::fopen((dir / internal::kTreeFile).c_str(), "wb");
  std::fclose(std::fopen((dir / internal::kLockFile).c_str(), "wb"));
  internal::Frontier tree;
  std::vector<internal::Bytes32> stored;
  for (std::uint64_t i = 0; i < p; ++i) {
    const std::string record = "record " + std::to_string(i);
    tree.Append(internal::LeafHash(record), &stored);
    if (stored.size() >= 1 << 16) {
      std::fwrite(stored.data(), 32, stored.size(), f);
      stored.clear();
    }
  }
  std::fwrite(stored.data(), 32, stored.size(), f);
  std::fclose(f);
}


}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [N] [THREADS] [V] [ROUNDS]\n", argv[0]);
    return 2;
  }
  const fs::path root = argv[1];
  const std::size_t n = argc > 2 ? std::stoul(argv[2]) : 1000;
  const unsigned threads = argc > 3 ? static_cast<unsigned>(std::stoul(argv[3])) : 8;
  const std::size_t v = argc > 4 ? std::stoul(argv[4]) : 500000;
  const int rounds = argc > 5 ? std::stoi(argv[5]) : 3;
  const std::uint64_t proof_records = argc > 6 ? std::stoull(argv[6]) : 10'000'000;

  // Interleaved rounds, medians: the baseline and the log see the same disk
  // load (this machine is shared), and one noisy round does not decide.
  std::vector<double> bare1, sync1, baren, syncn, r_sync1, r_chunk1, r_syncn, r_syncn1;
  std::size_t line = 0;
  for (int r = 0; r < rounds; ++r) {
    const OneThread one = InterleavedOneThread(root, n, 50);
    line = one.line;
    sync1.push_back(one.append);
    bare1.push_back(one.bare);
    r_chunk1.push_back(one.ratio);
    syncn.push_back(AppendRate(Fresh(root, "many"), n, threads));
    baren.push_back(BareRate(root / "bare.jsonl", n, line, threads));
    r_sync1.push_back(sync1.back() / bare1.back());
    r_syncn.push_back(syncn.back() / baren.back());
    r_syncn1.push_back(syncn.back() / bare1.back());
  }
  std::printf("line size %zu bytes, %zu appends per measurement, %d rounds (medians)\n", line, n, rounds);
  std::printf("bare write+fdatasync, 1 thread          %8.0f lines/s\n", Median(bare1));
  std::printf("append, 1 thread (key erased on disk)  %8.0f entries/s  ratio %.2f (median of the 50-call chunk ratios: %.2f)\n",
              Median(sync1), Median(r_sync1), Median(r_chunk1));
  std::printf("bare write+fdatasync, %u threads         %8.0f lines/s\n", threads, Median(baren));
  std::printf("append, %u threads (group commit)       %8.0f entries/s  ratio %.2f vs %u-thread bare, %.2f vs 1-thread bare\n",
              threads, Median(syncn), Median(r_syncn), threads, Median(r_syncn1));

  {
    std::vector<double> tree_cost;
    for (int r = 0; r < rounds; ++r) tree_cost.push_back(TreeCostPerAppend(root / "tree.bench", n, line));
    const double per = Median(tree_cost);
    std::printf("Merkle tree work per append                %6.2f us  = %.2f%% of a 1-thread append (%.0f us)\n",
                per * 1e6, 100.0 * per * Median(sync1), 1e6 / Median(sync1));
    fs::remove(root / "tree.bench");
  }
  if (proof_records > 0) {
    const fs::path tdir = root / "proofs";
    const auto build_start = Clock::now();
    BuildTree(tdir, proof_records);
    const double build = Seconds(build_start);
    std::mt19937_64 rng(7);
    std::vector<double> incl, cons;
    for (int i = 0; i < 200; ++i) {
      const std::uint64_t size = proof_records - rng() % (proof_records / 10 + 1);
      const std::uint64_t index = rng() % size;
      auto t0 = Clock::now();
      auto p = ProveInclusion(tdir.string(), index, size);
      incl.push_back(Seconds(t0));
      t0 = Clock::now();
      auto c = ProveConsistency(tdir.string(), 1 + index, size);
      cons.push_back(Seconds(t0));
      if (!p || !c) {
        std::fprintf(stderr, "proof failed\n");
        return 1;
      }
    }
    std::printf("proofs on %llu records (tree.hashes %.0f MB, built in %.1f s): inclusion median %.3f ms, max %.3f ms;"
                " consistency median %.3f ms, max %.3f ms (200 each, random sizes and indexes, the whole call)\n",
                static_cast<unsigned long long>(proof_records),
                static_cast<double>(fs::file_size(tdir / internal::kTreeFile)) / 1e6, build, Median(incl) * 1e3,
                *std::max_element(incl.begin(), incl.end()) * 1e3, Median(cons) * 1e3,
                *std::max_element(cons.begin(), cons.end()) * 1e3);
    fs::remove_all(tdir);
  }

  const std::string big = Fresh(root, "verify");
  Generate(root / "verify", big, v);
  auto vkey = (root / "verify" / "verifier.key").string();
  // Interleaved: one preparing thread (the same-run baseline) and one per core.
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::vector<double> secs1, secsn, cpu1, cpun;
  VerifyReport report;
  for (int r = 0; r < rounds; ++r) {
    for (const unsigned t : {1u, cores}) {
      const auto start = Clock::now();
      const double cpu_start = ProcessCpuSeconds();
      auto rep = Verify({big, vkey, std::nullopt, {}, 0, t});
      (t == 1 ? secs1 : secsn).push_back(Seconds(start));
      (t == 1 ? cpu1 : cpun).push_back(ProcessCpuSeconds() - cpu_start);
      if (!rep || rep->failure) {
        std::fprintf(stderr, "verify failed\n");
        return 1;
      }
      report = *rep;
    }
  }
  const auto rate = [&](const std::vector<double>& times) {
    return static_cast<double>(report.entries) / *std::min_element(times.begin(), times.end());
  };
  std::printf("verify with MACs + Merkle root (%llu entries, %.1f MB, best of %d), wall clock:\n",
              static_cast<unsigned long long>(report.entries), static_cast<double>(report.bytes) / 1e6, rounds);
  std::printf("  1 preparing thread (the walking one)    %8.0f entries/s  %.1f MB/s\n", rate(secs1),
              rate(secs1) * static_cast<double>(report.bytes) / static_cast<double>(report.entries) / 1e6);
  std::printf("  %u preparing threads (one per core)     %8.0f entries/s  %.1f MB/s  speed-up %.2f\n", cores, rate(secsn),
              rate(secsn) * static_cast<double>(report.bytes) / static_cast<double>(report.entries) / 1e6,
              rate(secsn) / rate(secs1));
  std::printf("  CPU time of the whole process          %8.0f entries per CPU second (what one unshared core does)\n",
              rate(cpun));
  for (const char* d : {"one", "many", "verify"}) fs::remove_all(root / d);
  fs::remove(root / "bare.jsonl");
  return 0;
}
