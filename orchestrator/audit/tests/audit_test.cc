// The audit log on real files: canonical form, the details guard, crash
// recovery, and every tamper class on logs made by real appends.
#include <gtest/gtest.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <span>
#include <thread>

#include "cordon/file_io.h"
#include "cordon/audit/audit.h"
#include "cordon/audit/ocsf.h"
#include "cordon/audit/verify.h"
#include "internal.h"
#include "merkle.h"

namespace cordon::audit {
namespace {

namespace fs = std::filesystem;
using internal::Bytes32;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}
std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("cordon-audit-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "audit");
    dir_ = (root_ / "audit").string();
    vkey_ = (root_ / "verifier.key").string();
    auto keys = CreateAuditKeys(dir_, vkey_);
    ASSERT_TRUE(keys) << keys.error().message;
    ASSERT_TRUE(keys->created);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<AuditLog> OpenLog(std::uint64_t every = 1000) {
    auto log = AuditLog::Open({.dir = dir_, .checkpoint_every = every});
    EXPECT_TRUE(log) << log.error().message;
    return log ? std::move(*log) : nullptr;
  }
  void AppendJob(AuditLog& log, const std::string& job, int n) {
    static const char* kSteps[] = {"job.accepted", "job.inputs_verified", "key.unwrapped", "sandbox.started",
                                   "trainer.exited", "outputs.sealed", "job.finished"};
    for (int i = 0; i < n; ++i) {
      auto seq = log.Append({.action = kSteps[i % 7], .job = job, .outcome = "ok",
                             .details = {{"step", i}, {"dataset_ref", "ds-1"}}, .actor = std::nullopt});
      ASSERT_TRUE(seq) << seq.error().message;
    }
  }
  // A log with log.created (seq 0) + 30 entries (seq 1..30).
  void MakeLog() {
    auto log = OpenLog();
    AppendJob(*log, "J1", 30);
  }
  std::string Segment() const { return dir_ + "/" + internal::SegmentName(0); }
  // Appends `count` sealed entries straight to the segment after what the log
  // holds, each with the MAC key its seq gets (fast: no fsync, no state).
  void Extend(std::size_t count) {
    auto text = cordon::ReadFileLimited(vkey_, 4096);
    ASSERT_TRUE(text);
    auto vk = internal::DecodeVerifierKey(*text);
    ASSERT_TRUE(vk);
    const VerifyReport r = Check();
    ASSERT_FALSE(r.failure.has_value()) << r.failure->detail;
    Bytes32 key = vk->k0;
    for (std::uint64_t s = 0; s < r.entries; ++s) key = internal::EvolveKey(key);
    auto prev = internal::Unhex32(r.head);
    ASSERT_TRUE(prev);
    const Actor actor = internal::CurrentActor();
    const std::string time = internal::FormatTime(internal::NowNs());
    std::string lines;
    for (std::uint64_t i = 0; i < count; ++i) {
      const Event e{.action = "job.inputs_verified", .job = "J1", .outcome = "ok",
                    .details = {{"dataset_ref", "ds-1"}, {"i", i}}, .actor = std::nullopt};
      auto sealed = internal::SealEntry(e, actor, r.entries + i, time, *prev, key);
      ASSERT_TRUE(sealed);
      lines += sealed->line;
      *prev = sealed->hash;
      key = internal::EvolveKey(key);
    }
    std::ofstream(Segment(), std::ios::binary | std::ios::app) << lines;
  }
  VerifyReport Check(bool with_key = true, std::optional<std::string> checkpoint = std::nullopt) {
    auto r = Verify({dir_, with_key ? std::optional(vkey_) : std::nullopt, checkpoint, {}, 0, 0});
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : VerifyReport{};
  }
  void ExpectFailure(const VerifyReport& r, Tamper t, std::uint64_t line, std::optional<std::uint64_t> seq) {
    ASSERT_TRUE(r.failure.has_value()) << "verify passed a tampered log";
    EXPECT_EQ(TamperName(r.failure->tamper), std::string(TamperName(t))) << r.failure->detail;
    EXPECT_EQ(r.failure->line, line) << r.failure->detail;
    EXPECT_EQ(r.failure->seq, seq) << r.failure->detail;
  }

  fs::path root_;
  std::string dir_;
  std::string vkey_;
};

// ---- primitives ------------------------------------------------------------------

TEST(AuditCrypto, HmacMatchesOpenSsl) {
  Bytes32 key{}, msg{};
  for (std::size_t i = 0; i < 32; ++i) {
    key[i] = static_cast<std::uint8_t>(i * 7 + 1);
    msg[i] = static_cast<std::uint8_t>(255 - i);
  }
  unsigned char out[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), 32, msg.data(), 32, out, &len);
  const Bytes32 ours = internal::HmacSha256(key, msg);
  EXPECT_EQ(internal::Hex(ours), internal::Hex(out, 32));
}

TEST(AuditCrypto, Unhex32DecodesLowerCaseHexOnly) {
  Bytes32 bytes{};
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(i * 37 + 11);
  for (int round = 0; round < 256; ++round) {
    bytes[static_cast<std::size_t>(round) % 32] = static_cast<std::uint8_t>(round);
    const std::string hex = internal::Hex(bytes);
    auto back = internal::Unhex32(hex);
    ASSERT_TRUE(back.has_value()) << hex;
    EXPECT_EQ(*back, bytes) << hex;
  }
  const std::string good = internal::Hex(bytes);
  EXPECT_FALSE(internal::Unhex32(good.substr(1)).has_value());
  EXPECT_FALSE(internal::Unhex32(good + "0").has_value());
  // Every position, every byte that is not a lower-case hex digit.
  for (std::size_t at = 0; at < 64; ++at) {
    for (int c = 0; c < 256; ++c) {
      if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) continue;
      std::string bad = good;
      bad[at] = static_cast<char>(c);
      ASSERT_FALSE(internal::Unhex32(bad).has_value()) << "byte " << c << " at " << at;
    }
  }
}

TEST(AuditCrypto, KeyEvolutionIsOneWayChainNotIdentity) {
  Bytes32 k{};
  const Bytes32 k1 = internal::EvolveKey(k);
  EXPECT_NE(internal::Hex(k1), internal::Hex(k));
  EXPECT_NE(internal::Hex(internal::EvolveKey(k1)), internal::Hex(k1));
}

TEST(AuditEntry, TimeParserRefusesImpossibleDates) {
  using internal::ParseTime;
  EXPECT_TRUE(ParseTime("2026-01-31T00:00:00Z"));
  EXPECT_TRUE(ParseTime("2024-02-29T23:59:59.999999999Z"));  // a leap year
  EXPECT_TRUE(ParseTime("2000-02-29T00:00:00Z"));            // divisible by 400: leap
  EXPECT_EQ(*ParseTime("2026-03-01T00:00:00Z") - *ParseTime("2026-02-28T00:00:00Z"), 86'400'000'000'000);
  for (const char* bad : {"2026-02-31T00:00:00Z", "2026-02-30T00:00:00Z", "2026-02-29T00:00:00Z",
                          "1900-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
                          "2026-06-31T00:00:00Z", "2026-09-31T00:00:00Z", "2026-11-31T00:00:00Z",
                          "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z", "2026-01-00T00:00:00Z",
                          "2026-01-32T00:00:00Z"}) {
    EXPECT_FALSE(ParseTime(bad)) << bad;
  }
  // An entry with such a time is not canonical; OCSF export maps it to time 0, not to March 3.
  nlohmann::json entry = {{"seq", 1}, {"time", "2026-02-31T00:00:00.000000001Z"}, {"action", "job.accepted"},
                          {"outcome", "ok"}, {"hash", std::string(64, 'a')}, {"details", nlohmann::json::object()},
                          {"actor", {{"pid", 1}, {"process", "p"}, {"uid", 0}, {"user", "root"}}}};
  EXPECT_EQ(ToOcsf(entry, {})["time"], 0);
  entry["time"] = "2026-02-28T00:00:00.5Z";
  EXPECT_EQ(ToOcsf(entry, {})["time"], *ParseTime("2026-02-28T00:00:00Z") / 1'000'000 + 500);
}

// SealEntry writes the canonical form member by member; the reference is the
// json object dumped whole, with the hash and mac put in their sorted places.
std::string ReferenceLine(const Event& event, const Actor& actor, std::uint64_t seq, const std::string& time,
                          const Bytes32& prev, const Bytes32& key) {
  nlohmann::json j = nlohmann::json::object();
  j["seq"] = seq;
  j["time"] = time;
  j["actor"] = {{"uid", actor.uid}, {"user", actor.user}, {"pid", actor.pid}, {"process", actor.process}};
  j["action"] = event.action;
  if (!event.job.empty()) j["job"] = event.job;
  j["outcome"] = event.outcome;
  j["details"] = event.details;
  j["prev"] = internal::Hex(prev);
  const std::string hashed = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
  const Bytes32 hash = internal::Sha256(hashed);
  j["hash"] = internal::Hex(hash);
  j["mac"] = internal::Hex(internal::HmacSha256(key, hash));
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict) + "\n";
}

TEST(AuditEntry, SealedLineIsTheJsonDumpByteForByte) {
  Bytes32 prev{}, key{};
  for (std::size_t i = 0; i < 32; ++i) prev[i] = static_cast<std::uint8_t>(i * 7), key[i] = static_cast<std::uint8_t>(255 - i);
  const std::string controls = std::string("a\x01\x1f\x7f\b\f\n\r\t\"\\/", 13);
  const std::vector<std::pair<Event, Actor>> cases = {
      {{.action = "job.accepted", .job = "J1", .outcome = "ok", .details = nlohmann::json::object(), .actor = std::nullopt},
       {0, "root", 1, "cordond"}},
      {{.action = "log.created", .job = "", .outcome = "ok", .details = {{"n", -3}, {"big", 18446744073709551615ull}},
        .actor = std::nullopt},
       {4294967295u, "", -1, ""}},
      {{.action = "dataset.sealed", .job = "job-\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" + controls, .outcome = "failed",
        .details = {{"z", controls}, {"\xc3\xa9", {{"b", true}, {"a", nullptr}, {"l", {1, "x", 2.5}}}}, {"A", ""}},
        .actor = std::nullopt},
       {1000, "\xc3\xa9l\"ise\\" + controls, 2147483647, "py\ttho\nn"}},
  };
  for (const auto& [event, actor] : cases) {
    for (const std::uint64_t seq : {0ull, 1ull, 9007199254740991ull}) {
      auto sealed = internal::SealEntry(event, actor, seq, "2026-11-30T22:00:00.123456789Z", prev, key);
      ASSERT_TRUE(sealed) << sealed.error().message;
      EXPECT_EQ(sealed->line, ReferenceLine(event, actor, seq, "2026-11-30T22:00:00.123456789Z", prev, key));
    }
  }
  // Not UTF-8: refused, as the dump refuses it.
  Event bad{.action = "job.accepted", .job = "J\xff", .outcome = "ok", .details = nlohmann::json::object(),
            .actor = std::nullopt};
  EXPECT_FALSE(internal::SealEntry(bad, Actor{0, "root", 1, "p"}, 1, "2026-11-30T22:00:00Z", prev, key));
}

TEST(AuditEntry, SealedLineParsesAndIsCanonical) {
  Event e{.action = "job.accepted", .job = "J1", .outcome = "ok",
          .details = {{"z", 1}, {"a", "x\n\"y\""}, {"m", {{"b", true}, {"a", nullptr}}}}, .actor = std::nullopt};
  Actor actor{1000, "alice", 42, "cordon"};
  auto sealed = internal::SealEntry(e, actor, 7, internal::FormatTime(internal::NowNs()), Bytes32{}, Bytes32{});
  ASSERT_TRUE(sealed) << sealed.error().message;
  const std::string line = sealed->line.substr(0, sealed->line.size() - 1);
  EXPECT_TRUE(line.starts_with("{\"action\":\"job.accepted\",\"actor\":{\"pid\":42,"));
  auto parsed = internal::ParseEntryLine(line);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->seq, 7u);
  EXPECT_TRUE(internal::Equal32(parsed->computed, sealed->hash));
  EXPECT_TRUE(internal::Equal32(parsed->hash, sealed->hash));
  // Members named like the top-level ones inside details, quotes and a backslash in the job,
  // with and without a job: hash and mac still land in their sorted places.
  for (const std::string job : {"J\\\",\"job\":\"x", ""}) {
    Event tricky{.action = "job.accepted", .job = job, .outcome = "ok",
                 .details = {{"job", "j"}, {"outcome", "o"}, {"mac", "m"}, {"x", {{"outcome", "p"}}}},
                 .actor = std::nullopt};
    Bytes32 key{};
    key[0] = 9;
    auto t = internal::SealEntry(tricky, actor, 8, internal::FormatTime(internal::NowNs()), Bytes32{}, key);
    ASSERT_TRUE(t) << t.error().message;
    auto p = internal::ParseEntryLine(std::string_view(t->line).substr(0, t->line.size() - 1));
    ASSERT_TRUE(p) << p.error().message << "\n" << t->line;
    EXPECT_EQ(p->json["details"]["job"], "j");
    EXPECT_EQ(p->json.value("job", ""), job);
    EXPECT_TRUE(internal::Equal32(p->computed, t->hash));
    EXPECT_TRUE(internal::Equal32(p->mac, internal::HmacSha256(key, t->hash)));
  }
}

TEST(AuditEntry, NonCanonicalLinesAreRejected) {
  Event e{.action = "job.accepted", .job = "", .outcome = "ok", .details = {{"n", 1}}, .actor = std::nullopt};
  auto sealed = internal::SealEntry(e, Actor{1, "u", 2, "p"}, 0, "2026-11-27T07:00:00.000000000Z", Bytes32{}, Bytes32{});
  ASSERT_TRUE(sealed);
  std::string line = sealed->line.substr(0, sealed->line.size() - 1);
  ASSERT_TRUE(internal::ParseEntryLine(line));
  std::string spaced = line;
  spaced.insert(1, " ");
  EXPECT_FALSE(internal::ParseEntryLine(spaced));
  std::string dup = line;
  dup.insert(dup.size() - 1, ",\"time\":\"2026-11-27T07:00:00.000000000Z\"");
  EXPECT_FALSE(internal::ParseEntryLine(dup));
  std::string floaty = line;
  floaty.replace(floaty.find("\"n\":1"), 5, "\"n\":1.0");
  EXPECT_FALSE(internal::ParseEntryLine(floaty));
  EXPECT_FALSE(internal::ParseEntryLine(std::string(20000, '[')));
  EXPECT_FALSE(internal::ParseEntryLine(std::string(2000, '[') + std::string(2000, ']')));
}

TEST(AuditEntry, GuardRefusesSecretsAndData) {
  auto check = [](nlohmann::json details) {
    return internal::ValidateEvent({.action = "key.unwrapped", .job = "", .outcome = "ok",
                                    .details = std::move(details), .actor = std::nullopt});
  };
  EXPECT_TRUE(check({{"kek_ref", "kms://local/kek"}, {"key_version", 3}, {"dek_fingerprint", "ab"}}));
  EXPECT_TRUE(check({{"plaintext_bytes", 4096}, {"key_size", 32}}));  // sizes, not values
  for (const char* name : {"key", "dek", "KEK", "private_key", "password", "pin", "api_token", "plaintext"}) {
    auto r = check({{name, "00112233"}});
    ASSERT_FALSE(r) << name;
    EXPECT_EQ(r.error().code, Errc::kPermissionDenied) << name;
  }
  EXPECT_FALSE(check({{"nested", {{"inner", {{"secret", "x"}}}}}}));
  EXPECT_FALSE(check({{"loss", 0.25}}));
  EXPECT_FALSE(check({{"row", std::string(2000, 'x')}}));
  EXPECT_FALSE(internal::ValidateEvent({.action = "Job accepted", .job = "", .outcome = "ok",
                                        .details = nlohmann::json::object(), .actor = std::nullopt}));
}

// ---- writing and verifying -------------------------------------------------------

TEST_F(AuditLogTest, FreshLogHasCreatedEntryCheckpointAndVerifies) {
  const auto r = Check();
  EXPECT_FALSE(r.failure.has_value()) << r.failure->detail;
  EXPECT_EQ(r.entries, 1u);
  EXPECT_TRUE(r.macs_checked);
  EXPECT_EQ(r.checkpoints, 1u);
  struct stat st{};
  ASSERT_EQ(::stat(vkey_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0400u);
  ASSERT_EQ(::stat((dir_ + "/mac.state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // The on-host state never holds k0 once an entry was written.
  const std::string vk = ReadAll(vkey_);
  const std::string seed = vk.substr(vk.find("mac-seed ") + 9, 64);
  EXPECT_EQ(ReadAll(dir_ + "/mac.state").find(seed), std::string::npos);
  // A second init leaves everything as is.
  auto again = CreateAuditKeys(dir_, vkey_);
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->created);
}

TEST_F(AuditLogTest, RefusesKeyFilesOthersCanRead) {
  for (const char* file : {"mac.state", "checkpoint.key"}) {
    const std::string path = dir_ + "/" + file;
    ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
    auto log = AuditLog::Open({.dir = dir_});
    ASSERT_FALSE(log) << file;
    EXPECT_EQ(log.error().code, Errc::kPermissionDenied);
    EXPECT_NE(log.error().message.find("mode 0640"), std::string::npos) << log.error().message;
    ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  }
  EXPECT_TRUE(AuditLog::Open({.dir = dir_}));
}

TEST_F(AuditLogTest, AppendsVerifyWithAndWithoutKey) {
  MakeLog();
  auto r = Check();
  EXPECT_FALSE(r.failure.has_value()) << r.failure->detail;
  EXPECT_EQ(r.entries, 31u);
  const auto last = Lines(ReadAll(Segment())).back();
  EXPECT_NE(last.find(r.head), std::string::npos);
  r = Check(false);
  EXPECT_FALSE(r.failure.has_value());
  EXPECT_FALSE(r.macs_checked);
}

TEST_F(AuditLogTest, WriteAheadIntentAndOutcome) {
  auto log = OpenLog();
  auto intent = log->Begin({.action = "dataset.unsealed", .job = "J9", .outcome = "ok",
                            .details = {{"dataset_ref", "d"}}, .actor = std::nullopt});
  ASSERT_TRUE(intent) << intent.error().message;
  // Durable before the action: another reader already sees it.
  auto seen = ReadEntries(dir_, {.job = "J9", .since = std::nullopt, .action_glob = std::nullopt});
  ASSERT_TRUE(seen);
  ASSERT_EQ(seen->size(), 1u);
  EXPECT_EQ((*seen)[0]["outcome"], "intent");
  auto done = log->Finish(*intent, "failed", {{"reason", "bad chunk 3"}});
  ASSERT_TRUE(done);
  seen = ReadEntries(dir_, {.job = "J9", .since = std::nullopt, .action_glob = "dataset.*"});
  ASSERT_EQ(seen->size(), 2u);
  EXPECT_EQ((*seen)[1]["details"]["intent_seq"], intent->seq);
  EXPECT_FALSE(Check().failure.has_value());
}

TEST_F(AuditLogTest, SegmentsLinkAcrossFiles) {
  {
    auto log = AuditLog::Open({.dir = dir_, .checkpoint_every = 1000, .segment_max_bytes = 2000});
    ASSERT_TRUE(log);
    AppendJob(**log, "J1", 40);
  }
  auto segs = internal::ListSegments(dir_);
  ASSERT_TRUE(segs);
  EXPECT_GT(segs->size(), 3u);
  auto r = Check();
  EXPECT_FALSE(r.failure.has_value()) << r.failure->detail;
  EXPECT_EQ(r.entries, 41u);
  // Deleting a whole middle segment is caught.
  fs::remove((*segs)[1].path);
  r = Check();
  ASSERT_TRUE(r.failure.has_value());
  EXPECT_EQ(r.failure->tamper, Tamper::kDeleted);
}

TEST_F(AuditLogTest, CheckpointsEveryNEntriesAndOnRequest) {
  auto log = OpenLog(10);
  AppendJob(*log, "J1", 25);
  auto cp = log->Checkpoint();
  ASSERT_TRUE(cp) << cp.error().message;
  EXPECT_NE(cp->find("\n26\n"), std::string::npos) << *cp;
  EXPECT_NE(cp->find("\xe2\x80\x94 cordon.audit/"), std::string::npos);
  auto latest = LatestCheckpoint(dir_);
  ASSERT_TRUE(latest);
  EXPECT_EQ(*latest, *cp);
  auto r = Check();
  EXPECT_FALSE(r.failure.has_value()) << r.failure->detail;
  EXPECT_GE(r.checkpoints, 4u);  // init + 2 by count + on request
}

// ---- tamper classes ----------------------------------------------------------------

TEST_F(AuditLogTest, EditOneByteIsModified) {
  MakeLog();
  auto lines = Lines(ReadAll(Segment()));
  const std::size_t at = lines[10].find("ds-1");
  lines[10][at + 3] = '2';  // seq 10 is on line 11
  WriteAll(Segment(), Join(lines));
  ExpectFailure(Check(), Tamper::kModified, 11, 10);
  ExpectFailure(Check(false), Tamper::kModified, 11, 10);
}

TEST_F(AuditLogTest, DeleteEntryIsDeleted) {
  MakeLog();
  auto lines = Lines(ReadAll(Segment()));
  lines.erase(lines.begin() + 5);  // seq 5
  WriteAll(Segment(), Join(lines));
  ExpectFailure(Check(), Tamper::kDeleted, 6, 6);
}

TEST_F(AuditLogTest, SwapTwoIsReordered) {
  MakeLog();
  auto lines = Lines(ReadAll(Segment()));
  std::swap(lines[7], lines[8]);  // seq 7 and 8
  WriteAll(Segment(), Join(lines));
  ExpectFailure(Check(), Tamper::kReordered, 8, 8);
  ExpectFailure(Check(false), Tamper::kReordered, 8, 8);
}

TEST_F(AuditLogTest, ForgedEntryWithCorrectHashIsInserted) {
  MakeLog();
  auto lines = Lines(ReadAll(Segment()));
  auto prev = internal::ParseEntryLine(lines[11]);  // seq 11
  ASSERT_TRUE(prev);
  Bytes32 wrong_key{};
  wrong_key[0] = 1;
  auto forged = internal::SealEntry({.action = "job.finished", .job = "J1", .outcome = "ok",
                                     .details = nlohmann::json::object(), .actor = std::nullopt},
                                    Actor{0, "root", 1, "evil"}, 12, internal::FormatTime(internal::NowNs()),
                                    prev->hash, wrong_key);
  ASSERT_TRUE(forged);
  lines.insert(lines.begin() + 12, forged->line.substr(0, forged->line.size() - 1));
  WriteAll(Segment(), Join(lines));
  ExpectFailure(Check(), Tamper::kInserted, 13, 12);
  ExpectFailure(Check(false), Tamper::kInserted, 13, 12);  // the real seq 12 is the one seq 13 links to
}

TEST_F(AuditLogTest, RewrittenChainWithCorrectHashesIsCaughtByMacs) {
  MakeLog();
  auto lines = Lines(ReadAll(Segment()));
  // Root rewrites seq 9 onwards: new content, a consistent chain, MACs under a
  // key it does not have (k_9 was erased long ago), checkpoints file removed.
  auto head = internal::ParseEntryLine(lines[8]);
  ASSERT_TRUE(head);
  Bytes32 prev = head->hash;
  Bytes32 key{};
  for (std::size_t i = 9; i < lines.size(); ++i) {
    auto e = internal::ParseEntryLine(lines[i]);
    ASSERT_TRUE(e);
    auto forged = internal::SealEntry({.action = e->json["action"].get<std::string>(), .job = "J1", .outcome = "ok",
                                       .details = {{"rewritten", true}}, .actor = std::nullopt},
                                      Actor{0, "root", 1, "evil"}, e->seq, e->json["time"].get<std::string>(), prev, key);
    ASSERT_TRUE(forged);
    lines[i] = forged->line.substr(0, forged->line.size() - 1);
    prev = forged->hash;
    key = internal::EvolveKey(key);
  }
  WriteAll(Segment(), Join(lines));
  WriteAll(dir_ + "/checkpoints", "");
  ExpectFailure(Check(), Tamper::kMacMismatch, 10, 9);
  EXPECT_FALSE(Check(false).failure.has_value());  // without the key only the MACs could tell
}

TEST_F(AuditLogTest, TruncatedTailIsCaughtAgainstSavedCheckpoint) {
  MakeLog();
  auto log = OpenLog();
  auto saved = log->Checkpoint();
  ASSERT_TRUE(saved);
  log.reset();
  const std::string saved_path = (root_ / "offhost.checkpoint").string();
  WriteAll(saved_path, *saved);
  auto lines = Lines(ReadAll(Segment()));
  lines.resize(lines.size() - 4);
  WriteAll(Segment(), Join(lines));
  WriteAll(dir_ + "/checkpoints", "");  // root removes the on-host evidence too
  EXPECT_FALSE(Check().failure.has_value());  // a valid prefix: only a checkpoint can tell
  auto r = Check(true, saved_path);
  ExpectFailure(r, Tamper::kTruncated, 1, 30);
  EXPECT_EQ(r.failure->file, saved_path);
}

TEST_F(AuditLogTest, RewrittenTailIsCaughtAgainstCheckpoint) {
  MakeLog();
  auto log = OpenLog();
  auto cp = log->Checkpoint();
  ASSERT_TRUE(cp);
  log.reset();
  const std::string saved_path = (root_ / "offhost.checkpoint").string();
  WriteAll(saved_path, *cp);
  auto lines = Lines(ReadAll(Segment()));
  auto before = internal::ParseEntryLine(lines[29]);
  ASSERT_TRUE(before);
  auto forged = internal::SealEntry({.action = "job.finished", .job = "J1", .outcome = "ok",
                                     .details = {{"rewritten", true}}, .actor = std::nullopt},
                                    Actor{0, "root", 1, "evil"}, 30, internal::FormatTime(internal::NowNs()),
                                    before->hash, Bytes32{});
  ASSERT_TRUE(forged);
  lines[30] = forged->line.substr(0, forged->line.size() - 1);
  WriteAll(Segment(), Join(lines));
  WriteAll(dir_ + "/checkpoints", "");
  ExpectFailure(Check(false, saved_path), Tamper::kTruncated, 1, 30);
}

TEST_F(AuditLogTest, ReplacedCheckpointSignatureIsBadSignature) {
  MakeLog();
  auto log = OpenLog();
  ASSERT_TRUE(log->Checkpoint());
  log.reset();
  std::string text = ReadAll(dir_ + "/checkpoints");
  const std::size_t dash = text.rfind("\xe2\x80\x94 ");
  const std::size_t sig = text.find(' ', dash + 4) + 1;
  text[sig + 10] = text[sig + 10] == 'A' ? 'B' : 'A';
  WriteAll(dir_ + "/checkpoints", text);
  auto r = Check();
  ASSERT_TRUE(r.failure.has_value());
  EXPECT_EQ(r.failure->tamper, Tamper::kBadSignature);
  EXPECT_EQ(r.failure->file, dir_ + "/checkpoints");
  EXPECT_GT(r.failure->line, 1u);
  // A checkpoint re-signed by another key (another log's) is refused too.
  const fs::path other = root_ / "other";
  fs::create_directories(other / "audit");
  ASSERT_TRUE(CreateAuditKeys((other / "audit").string(), (other / "v.key").string()));
  auto foreign = LatestCheckpoint((other / "audit").string());
  ASSERT_TRUE(foreign);
  WriteAll((root_ / "foreign.cp").string(), *foreign);
  auto r2 = Verify({dir_, vkey_, (root_ / "foreign.cp").string(), {}, 0, 0});
  ASSERT_TRUE(r2);
  ASSERT_TRUE(r2->failure.has_value());
  EXPECT_EQ(r2->failure->tamper, Tamper::kBadSignature);
}

// ---- crash recovery ---------------------------------------------------------------

TEST_F(AuditLogTest, TornLastLineIsMovedAsideAndRecorded) {
  MakeLog();
  const std::string torn = "{\"action\":\"job.accepted\",\"actor\":{\"pid\":1";
  {
    std::ofstream(Segment(), std::ios::app | std::ios::binary) << torn;
  }
  auto log = OpenLog();  // recovery happens on open
  ASSERT_TRUE(log);
  auto entries = ReadEntries(dir_, {.job = std::nullopt, .since = std::nullopt, .action_glob = "log.recovered"});
  ASSERT_TRUE(entries);
  ASSERT_EQ(entries->size(), 1u);
  const auto& d = (*entries)[0]["details"]["torn"];
  EXPECT_EQ(d["bytes"], torn.size());
  EXPECT_EQ(ReadAll(dir_ + "/" + d["side_file"].get<std::string>()), torn);
  EXPECT_EQ((*entries)[0]["seq"], 31);
  auto r = Check();
  EXPECT_FALSE(r.failure.has_value()) << r.failure->detail;
  EXPECT_EQ(r.entries, 32u);
}

TEST_F(AuditLogTest, CrashBetweenLogAndKeyStateDerivesForward) {
  MakeLog();
  const std::string old_state = ReadAll(dir_ + "/mac.state");
  {
    auto log = OpenLog();
    AppendJob(*log, "J2", 3);
  }
  WriteAll(dir_ + "/mac.state", old_state);  // as if the state write never reached the disk
  {
    auto log = OpenLog();
    AppendJob(*log, "J3", 2);
  }
  auto r = Check();
  EXPECT_FALSE(r.failure.has_value()) << r.failure->detail;
  EXPECT_EQ(r.entries, 36u);
}

TEST_F(AuditLogTest, DeletedTailIsNeverPaperedOver) {
  MakeLog();
  auto lines = Lines(ReadAll(Segment()));
  lines.pop_back();  // seq 30 gone; its key is erased, so the writer cannot refill it
  WriteAll(Segment(), Join(lines));
  {
    auto log = OpenLog();
    AppendJob(*log, "J2", 1);
  }
  auto gap = ReadEntries(dir_, {.job = std::nullopt, .since = std::nullopt, .action_glob = "log.gap_detected"});
  ASSERT_TRUE(gap);
  ASSERT_EQ(gap->size(), 1u);
  EXPECT_EQ((*gap)[0]["seq"], 31);
  ExpectFailure(Check(), Tamper::kDeleted, 31, 31);
}

// RFC 6962's MTH, recursively, for the check below.
Bytes32 ReferenceRoot(std::span<const Bytes32> leaves) {
  if (leaves.size() == 1) return leaves[0];
  std::size_t k = 1;
  while (k * 2 < leaves.size()) k *= 2;
  return internal::NodeHash(ReferenceRoot(leaves.first(k)), ReferenceRoot(leaves.subspan(k)));
}

// Four of the verifier's blocks (16,384 lines, prepared in chunks on every
// core), a checkpoint inside the second: findings after the first block come
// at the right line, and the root is the one computed independently.
TEST_F(AuditLogTest, LargeLogFindingsAndCheckpointBeyondTheFirstBlock) {
  OpenLog();
  Extend(20'000);
  {
    auto log = OpenLog();
    auto note = log->Checkpoint();
    ASSERT_TRUE(note) << note.error().message;
  }
  Extend(30'000);
  const std::string original = ReadAll(Segment());
  const std::vector<std::string> lines = Lines(original);
  ASSERT_GT(lines.size(), 3u * 16'384u);
  const VerifyReport clean = Check();
  ASSERT_FALSE(clean.failure.has_value()) << clean.failure->detail;
  EXPECT_EQ(clean.entries, lines.size());
  std::vector<Bytes32> leaves;
  for (const std::string& l : lines) leaves.push_back(internal::LeafHash(l));
  const Bytes32 root = ReferenceRoot(leaves);
  EXPECT_EQ(clean.root, internal::Base64(root.data(), root.size()));

  const auto index_of = [&](std::uint64_t seq) {
    const std::string needle = ",\"seq\":" + std::to_string(seq) + ",";
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].find(needle) != std::string::npos) return i;
    }
    ADD_FAILURE() << "no seq " << seq;
    return std::size_t{0};
  };
  // A changed detail before and after the checkpoint (both in the second block).
  for (const std::uint64_t seq : {18'000u, 25'000u}) {
    std::vector<std::string> edited = lines;
    const std::size_t i = index_of(seq);
    edited[i].replace(edited[i].find("ds-1"), 4, "ds-2");
    WriteAll(Segment(), Join(edited));
    ExpectFailure(Check(), Tamper::kModified, i + 1, seq);
  }
  // A rewritten MAC in the third block.
  {
    std::vector<std::string> edited = lines;
    const std::size_t i = index_of(40'000);
    const std::size_t at = edited[i].find("\"mac\":\"") + 7;
    edited[i][at] = edited[i][at] == '0' ? '1' : '0';
    WriteAll(Segment(), Join(edited));
    ExpectFailure(Check(), Tamper::kMacMismatch, i + 1, 40'000u);
  }
  // Cut before the checkpoint inside the second block.
  WriteAll(Segment(), Join(std::vector<std::string>(lines.begin(), lines.begin() + 19'000)));
  const VerifyReport cut = Check();
  ASSERT_TRUE(cut.failure.has_value());
  EXPECT_EQ(TamperName(cut.failure->tamper), std::string(TamperName(Tamper::kTruncated))) << cut.failure->detail;
  WriteAll(Segment(), original);
  EXPECT_FALSE(Check().failure.has_value());
}

TEST_F(AuditLogTest, GroupCommitFromManyThreads) {
  auto log = OpenLog(100);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] { AppendJob(*log, "T" + std::to_string(t), 60); });
  }
  for (auto& t : threads) t.join();
  auto r = Check();
  EXPECT_FALSE(r.failure.has_value()) << r.failure->detail;
  EXPECT_EQ(r.entries, 1u + 8 * 60);
}

TEST_F(AuditLogTest, PipelinedKeyErasureKeepsTheSameGuarantees) {
  {
    auto log = AuditLog::Open({.dir = dir_, .checkpoint_every = 50, .key_erasure = KeyErasure::kPipelined});
    ASSERT_TRUE(log);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) threads.emplace_back([&, t] { AppendJob(**log, "P" + std::to_string(t), 40); });
    for (auto& t : threads) t.join();
  }  // the destructor waits for the last erasure
  const std::string vk = ReadAll(vkey_);
  auto key = internal::DecodeVerifierKey(vk);
  ASSERT_TRUE(key);
  auto state = internal::DecodeState(ReadAll(dir_ + "/mac.state"));
  ASSERT_TRUE(state);
  EXPECT_EQ(state->seq, 161u);
  Bytes32 k = key->k0;
  for (int i = 0; i < 161; ++i) k = internal::EvolveKey(k);
  EXPECT_TRUE(internal::Equal32(k, state->key));  // the durable state holds exactly k_161
  auto r = Check();
  EXPECT_FALSE(r.failure.has_value()) << r.failure->detail;
  EXPECT_EQ(r.entries, 161u);
}

TEST_F(AuditLogTest, ShowTimelineAndFilters) {
  MakeLog();
  auto all = ReadEntries(dir_, {});
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 31u);
  const std::string line = FormatTimelineLine((*all)[1]);
  EXPECT_NE(line.find("#1  job.accepted  job=J1  ok  by "), std::string::npos) << line;
  auto future = ReadEntries(dir_, {.job = std::nullopt, .since = "2200-01-01T00:00:00Z", .action_glob = std::nullopt});
  ASSERT_TRUE(future);
  EXPECT_TRUE(future->empty());
  auto recent = ReadEntries(dir_, {.job = "J1", .since = "1h", .action_glob = "key.*"});
  ASSERT_TRUE(recent);
  EXPECT_EQ(recent->size(), 4u);  // steps 2, 9, 16, 23
  EXPECT_FALSE(ReadEntries(dir_, {.job = std::nullopt, .since = "yesterday", .action_glob = std::nullopt}));
}

}  // namespace
}  // namespace cordon::audit

namespace cordon::audit {
namespace {

// The fast scanner must accept exactly what the nlohmann-json reference
// accepts (parse + re-serialise + compare), on mutations of real lines.
TEST(AuditEntry, ScannerAgreesWithReferenceOnMutations) {
  Event e{.action = "job.accepted", .job = "J\u00e9\x01", .outcome = "ok",
          .details = {{"a", {1, -2, true, nullptr, "x\"\\\t\u2028"}}, {"b", {{"c", {{"d", 9007199254740991}}}}}},
          .actor = std::nullopt};
  auto sealed = internal::SealEntry(e, Actor{7, "bob", -1, "p"}, 3, "2026-11-27T07:00:00.5Z", Bytes32{}, Bytes32{});
  ASSERT_TRUE(sealed);
  const std::string line = sealed->line.substr(0, sealed->line.size() - 1);
  ASSERT_TRUE(internal::ScanEntryLine(line));
  std::uint32_t rng = 12345;
  auto next = [&] { return rng = rng * 1103515245u + 12345u; };
  const std::string alphabet = "{}[]\",:\\0123456789-.eEtrufalsn \x01\x7f\xc3\xa9\xed\xa0\x80u";
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string m = line;
    const int edits = 1 + static_cast<int>(next() % 3);
    for (int k = 0; k < edits; ++k) {
      const std::size_t at = next() % m.size();
      const char c = alphabet[next() % alphabet.size()];
      switch (next() % 3) {
        case 0: m[at] = c; break;
        case 1: m.insert(at, 1, c); break;
        default: m.erase(at, 1); break;
      }
    }
    auto fast = internal::ScanEntryLine(m);
    auto ref = internal::ParseEntryLineReference(m);
    ASSERT_EQ(fast.has_value(), ref.has_value()) << m << "\nfast: " << (fast ? "ok" : fast.error().message)
                                                 << "\nreference: " << (ref ? "ok" : ref.error().message);
    if (fast) {
      ++accepted;
      EXPECT_TRUE(internal::Equal32(fast->computed, ref->computed)) << m;
    }
  }
  EXPECT_GT(accepted, 0);
}

TEST(AuditEntry, DepthLimitIsTheSameInBothParsers) {
  for (int depth = 5; depth <= 9; ++depth) {
    nlohmann::json d = 1;
    for (int k = 0; k < depth; ++k) d = nlohmann::json{{"x", d}};
    nlohmann::json j = {{"action", "a.b"}, {"actor", {{"pid", 1}, {"process", "p"}, {"uid", 1}, {"user", "u"}}},
                        {"details", d}, {"hash", std::string(64, '0')}, {"mac", std::string(64, '0')},
                        {"outcome", "ok"}, {"prev", std::string(64, '0')}, {"seq", 0},
                        {"time", "2026-11-27T07:00:00Z"}};
    const std::string line = j.dump();
    EXPECT_EQ(internal::ScanEntryLine(line).has_value(), internal::ParseEntryLineReference(line).has_value()) << depth;
  }
}

}  // namespace
}  // namespace cordon::audit
