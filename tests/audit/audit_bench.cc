// Benchmark for scripts/bench-audit. All on the filesystem holding DIR, in one run:
//   1. AuditLog::Append, one thread (durable: write + fdatasync log + fdatasync key state)
//   2. the baseline: a bare O_APPEND write + fdatasync loop of the same line size
//   3. T threads appending through group commit, and T threads of the bare loop
//   4. verification of a generated log of V entries with MACs (entries/s, MB/s)
// usage: audit_bench DIR [N=1000] [THREADS=8] [V=500000] [ROUNDS=3]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "cordon/file_io.h"
#include "cordon/orchestrator/audit.h"
#include "cordon/orchestrator/audit_verify.h"
#include "internal.h"

namespace {

namespace fs = std::filesystem;
using namespace cordon::audit;
using Clock = std::chrono::steady_clock;

double ThreadCpuSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
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

double AppendRate(const std::string& dir, std::size_t n, unsigned threads,
                  KeyErasure erasure = KeyErasure::kSynchronous) {
  auto log = AuditLog::Open({.dir = dir, .checkpoint_every = 1000, .key_erasure = erasure});
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
  auto r = Verify({dir, std::nullopt, std::nullopt});
  return r && r->entries ? bytes / r->entries : 300;
}

// Appends v sealed entries straight to the segment (no fsync: this only
// builds the input for the verification benchmark).
void Generate(const fs::path& root, const std::string& dir, std::size_t v) {
  auto text = cordon::ReadFileLimited((root / "verifier.key").string(), 4096);
  auto vk = internal::DecodeVerifierKey(*text);
  auto first = Verify({dir, std::nullopt, std::nullopt});
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

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
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

  // Interleaved rounds, medians: the baseline and the log see the same disk
  // load (this machine is shared), and one noisy round does not decide.
  std::vector<double> bare1, sync1, pipe1, baren, syncn, pipen, r_sync1, r_pipe1, r_syncn, r_pipen, r_syncn1, r_pipen1;
  std::size_t line = 0;
  for (int r = 0; r < rounds; ++r) {
    const std::string one = Fresh(root, "one");
    sync1.push_back(AppendRate(one, n, 1));
    line = AverageLine(one);
    bare1.push_back(BareRate(root / "bare.jsonl", n, line, 1));
    pipe1.push_back(AppendRate(Fresh(root, "piped"), n, 1, KeyErasure::kPipelined));
    syncn.push_back(AppendRate(Fresh(root, "many"), n, threads));
    baren.push_back(BareRate(root / "bare.jsonl", n, line, threads));
    pipen.push_back(AppendRate(Fresh(root, "many-piped"), n, threads, KeyErasure::kPipelined));
    r_sync1.push_back(sync1.back() / bare1.back());
    r_pipe1.push_back(pipe1.back() / bare1.back());
    r_syncn.push_back(syncn.back() / baren.back());
    r_pipen.push_back(pipen.back() / baren.back());
    r_syncn1.push_back(syncn.back() / bare1.back());
    r_pipen1.push_back(pipen.back() / bare1.back());
  }
  std::printf("line size %zu bytes, %zu appends per measurement, %d rounds (medians)\n", line, n, rounds);
  std::printf("bare write+fdatasync, 1 thread          %8.0f lines/s\n", Median(bare1));
  std::printf("append, 1 thread, synchronous erasure   %8.0f entries/s  ratio %.2f\n", Median(sync1), Median(r_sync1));
  std::printf("append, 1 thread, pipelined erasure     %8.0f entries/s  ratio %.2f\n", Median(pipe1), Median(r_pipe1));
  std::printf("bare write+fdatasync, %u threads         %8.0f lines/s\n", threads, Median(baren));
  std::printf("append, %u threads, synchronous erasure  %8.0f entries/s  ratio %.2f vs %u-thread bare, %.2f vs 1-thread bare\n",
              threads, Median(syncn), Median(r_syncn), threads, Median(r_syncn1));
  std::printf("append, %u threads, pipelined erasure    %8.0f entries/s  ratio %.2f vs %u-thread bare, %.2f vs 1-thread bare\n",
              threads, Median(pipen), Median(r_pipen), threads, Median(r_pipen1));

  const std::string big = Fresh(root, "verify");
  Generate(root / "verify", big, v);
  auto vkey = (root / "verify" / "verifier.key").string();
  std::vector<double> secs, cpu;
  VerifyReport report;
  for (int r = 0; r < rounds; ++r) {
    const auto start = Clock::now();
    const double cpu_start = ThreadCpuSeconds();
    auto rep = Verify({big, vkey, std::nullopt});
    secs.push_back(Seconds(start));
    cpu.push_back(ThreadCpuSeconds() - cpu_start);
    if (!rep || rep->failure) {
      std::fprintf(stderr, "verify failed\n");
      return 1;
    }
    report = *rep;
  }
  const double best = *std::min_element(secs.begin(), secs.end());
  std::printf("verify with MACs, one core              %8.0f entries/s  %.1f MB/s  (%llu entries, %.1f MB, best of %d: %.3f s)\n",
              static_cast<double>(report.entries) / best, static_cast<double>(report.bytes) / best / 1e6,
              static_cast<unsigned long long>(report.entries), static_cast<double>(report.bytes) / 1e6, rounds, best);
  const double best_cpu = *std::min_element(cpu.begin(), cpu.end());
  std::printf("verify with MACs, per CPU second        %8.0f entries/s  %.1f MB/s  (CPU time of the verifying thread: what one\n"
              "                                        unshared core does; the line above is wall clock on this machine)\n",
              static_cast<double>(report.entries) / best_cpu, static_cast<double>(report.bytes) / best_cpu / 1e6);
  for (const char* d : {"one", "piped", "many", "many-piped", "verify"}) fs::remove_all(root / d);
  fs::remove(root / "bare.jsonl");
  return 0;
}
