// cordond's parts on their own: the control protocol's decoder, the fair
// scheduler's pick, and opening paths with a submitter's rights (as the real
// unprivileged uid 65534, in real directories).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "cordon/daemon/protocol.h"
#include "cleanup.h"
#include "cordon/unique_fd.h"
#include "cordon/testing/temp_dir.h"
#include "scheduler.h"
#include "user_open.h"

namespace cordon {
namespace {

namespace p = protocol;

TEST(Protocol, ParsesEveryOp) {
  auto r = p::ParseRequest(R"({"op":"submit","spec":"x: 1\n","spec_path":"/tmp/a.yaml"})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->op, p::Op::kSubmit);
  EXPECT_EQ(r->spec, "x: 1\n");
  for (const char* op : {"wait", "cancel", "logs", "status", "halt"}) {
    auto j = p::ParseRequest(std::string(R"({"op":")") + op + R"(","job":"t-000001-ab12"})");
    ASSERT_TRUE(j) << op;
    EXPECT_EQ(p::OpName(j->op), std::string(op));
  }
  EXPECT_TRUE(p::ParseRequest(R"({"op":"ping"})"));
  EXPECT_TRUE(p::ParseRequest(R"({"op":"status"})"));
}

// Each of these once threw out of the event loop or slipped through.
TEST(Protocol, TypeConfusedRequestsAreInvalidNeverThrown) {
  for (const char* line : {R"({"op":5})", R"({"op":["x"]})", R"({"op":"status","job":7})", R"({"op":null})",
                           R"({"op":"submit","spec":{}})", R"({"op":"submit"})", R"({"op":"wait"})", R"({"op":"halt"})",
                           R"({"op":"logs","job":"../../etc"})", R"({"op":"ping","spec":"x"})", R"({"op":"bogus"})",
                           R"({"op":"ping","extra":1})", "[1,2]", "\"op\"", "", "{",
                           "{\"op\":\"\xff\"}"}) {
    auto r = p::ParseRequest(line);
    ASSERT_FALSE(r) << line;
    EXPECT_EQ(r.error().code, Errc::kInvalidArgument) << line;
    EXPECT_FALSE(r.error().message.empty());
  }
  EXPECT_FALSE(p::ParseRequest(std::string("{\"op\":\"ping\"}\0x", 15)));  // a NUL and trailing bytes
  std::string deep(100000, '[');
  EXPECT_FALSE(p::ParseRequest(deep));
  EXPECT_FALSE(p::ParseRequest(std::string(p::kMaxRequestBytes + 1, ' ')));
}

TEST(Protocol, IdentityMembersAreDenied) {
  for (const char* key : {"uid", "gid", "pid", "user", "submitter", "admin", "as"}) {
    auto r = p::ParseRequest(std::string(R"({"op":"status",")") + key + R"(":0})");
    ASSERT_FALSE(r) << key;
    EXPECT_EQ(r.error().code, Errc::kPermissionDenied) << key;
  }
}

TEST(Protocol, AdminRequestsAreBoundedAndFiltered) {
  auto ok = p::ParseRequest(R"({"op":"admin","argv":["quarantine","churn@sha256:ab","--reason","x"]})");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->argv.size(), 4u);
  EXPECT_EQ(p::AdminCommandRefusal(ok->argv), "");
  EXPECT_FALSE(p::ParseRequest(R"({"op":"admin"})"));
  EXPECT_FALSE(p::ParseRequest(R"({"op":"admin","argv":[]})"));
  EXPECT_FALSE(p::ParseRequest(R"({"op":"admin","argv":[1]})"));
  EXPECT_FALSE(p::ParseRequest(R"({"op":"status","argv":["datasets"]})"));
  EXPECT_FALSE(p::ParseRequest(R"({"op":"admin","argv":["datasets"],"uid":0})"));
  EXPECT_NE(p::AdminCommandRefusal({"run", "/spec.yaml"}), "");
  EXPECT_NE(p::AdminCommandRefusal({"keys", "create", "k"}), "");
  EXPECT_NE(p::AdminCommandRefusal({"rewrap", "/some/file"}), "");
  EXPECT_NE(p::AdminCommandRefusal({"datasets", "list", "--config=/tmp/evil.yaml"}), "");
  EXPECT_NE(p::AdminCommandRefusal({"datasets", "list", "--caller-uid", "0"}), "");
  EXPECT_NE(p::AdminCommandRefusal({"release", "--", "x"}), "");
  EXPECT_EQ(p::AdminCommandRefusal({"rewrap", "--all", "--key", "kms://local/k"}), "");
}

TEST(Protocol, RoundTripsAndRepliesNeverThrow) {
  p::Request req{p::Op::kSubmit, "a: \xc3\xa9\n", "/x.yaml", "", {}};
  auto back = p::ParseRequest(p::EncodeRequest(req));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->spec, req.spec);
  const std::string bad_utf8 = "no job \xff\xfe of yours";
  const std::string line = p::EncodeReply(p::ErrorReply(p::ReplyCode::kNotFound, bad_utf8));
  auto reply = p::ParseReply(line.substr(0, line.size() - 1));
  ASSERT_TRUE(reply);
  EXPECT_FALSE(reply->ok);
  EXPECT_EQ(reply->code, p::ReplyCode::kNotFound);
  EXPECT_FALSE(p::ParseReply(R"({"ok":"yes"})"));
  EXPECT_FALSE(p::ParseReply(R"({"ok":false})"));
  for (auto code : {p::ReplyCode::kBusy, p::ReplyCode::kAuditUnavailable, p::ReplyCode::kInvalidSpec,
                    p::ReplyCode::kInputRejected}) {
    EXPECT_EQ(p::ParseReplyCode(p::ReplyCodeName(code)), code);
  }
}

TEST(Scheduler, FewestRunningFirstThenLongestUnservedThenFifo) {
  using daemon::PickNext;
  daemon::SchedulerState s;
  EXPECT_FALSE(PickNext({}, s));
  std::vector<daemon::QueuedJob> q = {{1, 100}, {2, 100}, {3, 200}};
  EXPECT_EQ(PickNext(q, s), 0u);              // nobody runs or was served: FIFO
  s.running_by_user[100] = 1;
  EXPECT_EQ(PickNext(q, s), 2u);              // 200 runs nothing
  s.running_by_user[200] = 1;
  s.last_served = {{100, 5}, {200, 9}};
  EXPECT_EQ(PickNext(q, s), 0u);              // equal load: 100 waited longest; its oldest job
  s.running_by_user[100] = 3;
  EXPECT_EQ(PickNext(q, s), 2u);
}

class UserOpen : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to become uid 65534";
    temp_.emplace("useropen");
    dir_ = temp_->path();
    ::chmod(dir_.c_str(), 0755);
    std::ofstream(dir_ + "/public") << "p";
    std::ofstream(dir_ + "/secret") << "s";
    ::chmod((dir_ + "/public").c_str(), 0644);
    ::chmod((dir_ + "/secret").c_str(), 0600);
    std::filesystem::create_directory(dir_ + "/mine");
    ASSERT_EQ(::chown((dir_ + "/mine").c_str(), 65534, 65534), 0);
    std::filesystem::create_symlink(dir_ + "/secret", dir_ + "/mine/link");
    std::filesystem::create_directory_symlink(dir_, dir_ + "/mine/up");
  }
  daemon::Identity nobody_{65534, 65534, {65534}};
  std::optional<testing::TempDir> temp_;  // made once the test knows it can run
  std::string dir_;
};

TEST_F(UserOpen, OpensWithTheUsersRightsOnly) {
  auto ok = daemon::OpenAsUser(nobody_, {{dir_ + "/public", daemon::OpenKind::kFile}});
  ASSERT_TRUE(ok) << ok.error().message;
  char c = 0;
  EXPECT_EQ(::pread(ok->at(0).get(), &c, 1, 0), 1);
  EXPECT_EQ(c, 'p');
  auto secret = daemon::OpenAsUser(nobody_, {{dir_ + "/secret", daemon::OpenKind::kFile}});
  ASSERT_FALSE(secret);
  EXPECT_EQ(secret.error().code, Errc::kPermissionDenied);
  EXPECT_NE(secret.error().message.find("permission denied to the submitter"), std::string::npos);
}

TEST_F(UserOpen, FollowsNoSymlinkInAnyComponent) {
  for (const std::string& path : {dir_ + "/mine/link", dir_ + "/mine/up/public"}) {
    auto r = daemon::OpenAsUser(nobody_, {{path, daemon::OpenKind::kFile}});
    ASSERT_FALSE(r) << path;
    EXPECT_NE(r.error().message.find("symbolic link"), std::string::npos) << r.error().message;
  }
  daemon::Identity root{0, 0, {0}};  // root too: no deputy, but still no symlinks
  EXPECT_FALSE(daemon::OpenAsUser(root, {{dir_ + "/mine/link", daemon::OpenKind::kFile}}));
}

// The fallback walk for kernels or filters without openat2 holds the same line.
TEST_F(UserOpen, TheWalkWithoutOpenat2FollowsNoSymlinkEither) {
  UniqueFd ok(daemon::WalkNoSymlinks(AT_FDCWD, (dir_ + "/public").c_str(), O_RDONLY | O_CLOEXEC));
  EXPECT_TRUE(ok);
  for (const std::string& path : {dir_ + "/mine/link", dir_ + "/mine/up/public"}) {
    EXPECT_LT(daemon::WalkNoSymlinks(AT_FDCWD, path.c_str(), O_RDONLY | O_CLOEXEC), 0) << path;
    EXPECT_EQ(errno, ELOOP) << path;
  }
  UniqueFd mine(::open((dir_ + "/mine").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  EXPECT_LT(daemon::WalkNoSymlinks(mine.get(), "../public", O_RDONLY | O_CLOEXEC), 0);
  EXPECT_LT(daemon::WalkNoSymlinks(mine.get(), "/etc/passwd", O_RDONLY | O_CLOEXEC), 0);
  UniqueFd dir(daemon::WalkNoSymlinks(AT_FDCWD, (dir_ + "/mine").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  EXPECT_TRUE(dir);
}

TEST_F(UserOpen, CreatesOutputDirectoriesAsTheUserAndNowhereElse) {
  auto made = daemon::OpenAsUser(nobody_, {{dir_ + "/mine/a/b", daemon::OpenKind::kDirectoryCreate}});
  ASSERT_TRUE(made) << made.error().message;
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/mine/a/b").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);  // the user's, not root's
  auto outside = daemon::OpenAsUser(nobody_, {{dir_ + "/theirs", daemon::OpenKind::kDirectoryCreate}});
  ASSERT_FALSE(outside);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/theirs"));
  auto through_link = daemon::OpenAsUser(nobody_, {{dir_ + "/mine/up/x", daemon::OpenKind::kDirectoryCreate}});
  ASSERT_FALSE(through_link);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/x"));
  // An existing directory the user can read but not write is not an output place.
  auto readonly = daemon::OpenAsUser(nobody_, {{dir_, daemon::OpenKind::kDirectoryCreate}});
  EXPECT_FALSE(readonly);
}

TEST_F(UserOpen, AFifoDoesNotStallTheOpener) {
  ASSERT_EQ(::mkfifo((dir_ + "/mine/fifo").c_str(), 0666), 0);
  auto r = daemon::OpenAsUser(nobody_, {{dir_ + "/mine/fifo", daemon::OpenKind::kFile}}, std::chrono::seconds(5));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not a regular file"), std::string::npos);
}

// A crashed runner's leftovers: partials go, a directory with nothing else
// goes, anything else stays; a directory the runner did not make is refused.
TEST_F(UserOpen, CleansWhatACrashedRunnerLeft) {
  const std::string mine = dir_ + "/mine";
  for (const char* job : {"j1", "j2", "j3"}) std::filesystem::create_directory(mine + "/" + job);
  std::ofstream(mine + "/j1/.out-000001.partial") << "x";
  std::ofstream(mine + "/j1/out-000002.sealed") << "x";
  std::ofstream(mine + "/j2/.out-000001.partial") << "x";
  ASSERT_EQ(::chown((mine + "/j3").c_str(), 65534, 65534), 0);
  auto one = daemon::CleanAbandonedJobDir(nobody_, mine, "j1");
  ASSERT_TRUE(one) << one.error().message;
  EXPECT_EQ(one->partials_removed, 1u);
  EXPECT_FALSE(one->directory_removed);
  EXPECT_TRUE(std::filesystem::exists(mine + "/j1/out-000002.sealed"));
  auto two = daemon::CleanAbandonedJobDir(nobody_, mine, "j2");
  ASSERT_TRUE(two);
  EXPECT_TRUE(two->directory_removed);
  EXPECT_FALSE(std::filesystem::exists(mine + "/j2"));
  EXPECT_FALSE(daemon::CleanAbandonedJobDir(nobody_, mine, "j3"));  // the user's own directory
  auto none = daemon::CleanAbandonedJobDir(nobody_, mine, "absent");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->directory_removed);
}

}  // namespace
}  // namespace cordon
