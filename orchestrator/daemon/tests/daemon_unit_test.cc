// The access policy and the job store, through their public headers.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "cordon/file_io.h"
#include "cordon/daemon/job_store.h"
#include "cordon/policy/policy.h"
#include "cordon/specs/spec.h"
#include "cordon/testing/temp_dir.h"

namespace cordon {
namespace {

specs::TrainingJob Job(const std::string& memory = "256Mi", const std::string& scratch = "64Mi") {
  auto parsed = specs::ParseSpec(
      "apiVersion: cordon/v1\nkind: TrainingJob\nmetadata: {name: t}\nspec:\n"
      "  trainer: {image: /opt/img, command: [/bin/true]}\n"
      "  inputs: [{name: d, path: /srv/d.sealed}]\n"
      "  output: {path: /srv/out, key: kms://local/models}\n"
      "  resources: {memory: " + memory + ", scratch: " + scratch + "}\n");
  EXPECT_TRUE(parsed.job.has_value());
  return *parsed.job;
}

TEST(Policy, DenyByDefault) {
  auto p = policy::ParsePolicy("users:\n  - uids: [4001]\n    datasets: ['*']\n    keys: ['*']\n");
  ASSERT_TRUE(p.policy);
  EXPECT_EQ(policy::GrantFor(*p.policy, {4002, 4002}), nullptr);
  EXPECT_NE(policy::GrantFor(*p.policy, {4001, 4001}), nullptr);
  EXPECT_FALSE(policy::IsAdmin(*p.policy, {4001, 4001}));
  auto empty = policy::ParsePolicy("{}");
  ASSERT_TRUE(empty.policy);
  EXPECT_EQ(policy::GrantFor(*empty.policy, {0, 0}), nullptr);
  EXPECT_FALSE(policy::IsAdmin(*empty.policy, {0, 0}));
}

TEST(Policy, GroupsGrantByThePeersGid) {
  auto p = policy::ParsePolicy("admins: {groups: [778]}\nusers:\n  - groups: [777]\n    datasets: ['*']\n");
  ASSERT_TRUE(p.policy);
  EXPECT_NE(policy::GrantFor(*p.policy, {50001, 777}), nullptr);  // no account: its gid only
  EXPECT_EQ(policy::GrantFor(*p.policy, {50001, 776}), nullptr);
  EXPECT_TRUE(policy::IsAdmin(*p.policy, {50002, 778}));
  EXPECT_FALSE(policy::IsAdmin(*p.policy, {50002, 777}));
}

TEST(Policy, StrictParsing) {
  EXPECT_FALSE(policy::ParsePolicy("users:\n  - uids: [1]\n    dataset: [x]\n").policy);  // typo
  EXPECT_FALSE(policy::ParsePolicy("admins: {uids: [1]}\nadmins: {uids: [2]}\n").policy);  // duplicate
  EXPECT_FALSE(policy::ParsePolicy("users:\n  - datasets: [x]\n").policy);  // names nobody
  EXPECT_FALSE(policy::ParsePolicy("users:\n  - uids: [no-such-user-zz9]\n").policy);
  auto bad = policy::ParsePolicy("users:\n  - uids: [1]\n    max_memory: lots\n");
  ASSERT_FALSE(bad.policy);
  EXPECT_EQ(bad.diagnostics.at(0).mark.line, 3);
}

TEST(Policy, DatasetKeyAndCeilings) {
  auto p = policy::ParsePolicy(
      "users:\n  - uids: [7]\n    datasets: [customers]\n    keys: [kms://local/datasets, kms://local/models]\n"
      "    outputs: [/srv/out]\n    images: [/opt]\n    max_memory: 1Gi\n");
  ASSERT_TRUE(p.policy);
  const policy::Grant& g = p.policy->grants.at(0);
  const policy::InputFacts ok{"/srv/d.sealed", "customers", "kms://local/datasets"};
  EXPECT_TRUE(policy::CheckJob(g, Job(), {ok}));
  auto other = policy::CheckJob(g, Job(), {{"/srv/d.sealed", "payroll", "kms://local/datasets"}});
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().message.find("payroll"), std::string::npos);
  EXPECT_FALSE(policy::CheckJob(g, Job(), {{"/srv/d.sealed", "customers", "kms://local/other"}}));
  EXPECT_FALSE(policy::CheckJob(g, Job("2Gi"), {ok}));
  // The scratch is RAM too (a noswap tmpfs charged to the job): max_memory holds memory + scratch.
  EXPECT_TRUE(policy::CheckJob(g, Job("512Mi", "512Mi"), {ok}));
  auto both = policy::CheckJob(g, Job("768Mi", "512Mi"), {ok});
  ASSERT_FALSE(both);
  EXPECT_NE(both.error().message.find("memory 768Mi + scratch 512Mi exceeds the ceiling max_memory 1Gi"), std::string::npos)
      << both.error().message;
}

// The policy grants places: output.path and trainer.image must be equal to or
// beneath a granted directory, compared by whole path components.
TEST(Policy, OutputsAndImagesArePlaces) {
  const auto grant = [](const std::string& outputs, const std::string& images) {
    auto p = policy::ParsePolicy("users:\n  - uids: [7]\n    datasets: ['*']\n    keys: ['*']\n    outputs: " + outputs +
                                 "\n    images: " + images + "\n");
    EXPECT_TRUE(p.policy) << (p.diagnostics.empty() ? "" : p.diagnostics[0].message);
    return p.policy ? p.policy->grants.at(0) : policy::Grant{};
  };
  EXPECT_TRUE(policy::CheckJob(grant("[/srv/out]", "[/opt/img]"), Job(), {}));
  EXPECT_TRUE(policy::CheckJob(grant("[/srv]", "['*']"), Job(), {}));
  auto out = policy::CheckJob(grant("[/srv/o]", "['*']"), Job(), {});  // /srv/out is not beneath /srv/o
  ASSERT_FALSE(out);
  EXPECT_NE(out.error().message.find("output.path /srv/out"), std::string::npos);
  EXPECT_NE(out.error().message.find("outputs [/srv/o]"), std::string::npos);
  auto img = policy::CheckJob(grant("['*']", "[/opt/other]"), Job(), {});
  ASSERT_FALSE(img);
  EXPECT_NE(img.error().message.find("images"), std::string::npos);
  auto none = policy::ParsePolicy("users:\n  - uids: [7]\n    datasets: ['*']\n    keys: ['*']\n");
  ASSERT_TRUE(none.policy);
  EXPECT_FALSE(policy::CheckJob(none.policy->grants.at(0), Job(), {}));  // no place granted: none
  for (const char* bad : {"[relative]", "[/srv/../etc]", "[/srv/]", "[7]"}) {
    auto p = policy::ParsePolicy(std::string("users:\n  - uids: [7]\n    outputs: ") + bad + "\n");
    EXPECT_FALSE(p.policy) << bad;
  }
}

TEST(Policy, InitialPolicyGrantsTheInvoker) {
  auto p = policy::ParsePolicy(policy::RenderInitialPolicy(4242));
  ASSERT_TRUE(p.policy) << (p.diagnostics.empty() ? "" : p.diagnostics[0].message);
  EXPECT_TRUE(policy::IsAdmin(*p.policy, {4242, 4242}));
  EXPECT_NE(policy::GrantFor(*p.policy, {4242, 4242}), nullptr);
  EXPECT_EQ(policy::GrantFor(*p.policy, {4243, 4243}), nullptr);
  const policy::Grant* g = policy::GrantFor(*p.policy, {4242, 4242});
  ASSERT_NE(g, nullptr);
  EXPECT_TRUE(policy::CheckJob(*g, Job(), {}));  // outputs and images: "*"
}

TEST(JobStore, SurvivesReopenAndRefusesCorruptRecords) {
  const testing::TempDir temp("store");
  const std::string& dir = temp.path();
  std::string id;
  {
    auto store = daemon::JobStore::Open(dir);
    ASSERT_TRUE(store);
    daemon::JobRecord r;
    r.name = "train";
    r.submitter = 4001;
    auto created = store->Create(r, "spec text");
    ASSERT_TRUE(created);
    id = (*created)->job_id;
    (*created)->state = daemon::JobState::kRunning;
    ASSERT_TRUE(store->Save(**created));
    auto second = store->Create(r, "spec 2");
    ASSERT_TRUE(second);
    EXPECT_NE((*second)->job_id, id);
  }
  auto again = daemon::JobStore::Open(dir);
  ASSERT_TRUE(again);
  ASSERT_EQ(again->All().size(), 2u);
  EXPECT_EQ(again->Find(id)->state, daemon::JobState::kRunning);
  EXPECT_EQ(again->Find(id)->submitter, 4001u);
  EXPECT_EQ(again->All()[0]->job_id, id);  // seq order
  ASSERT_TRUE(WriteFileAtomic(again->JobDir(id) + "/job.json", "{\"job_id\":", 0600));
  auto corrupt = daemon::JobStore::Open(dir);
  ASSERT_FALSE(corrupt);
  EXPECT_NE(corrupt.error().message.find(id), std::string::npos);
}

TEST(JobStore, RecordsRoundTripThroughJson) {
  daemon::JobRecord r;
  r.job_id = "train-000042-beef";
  r.seq = 42;
  r.name = "train";
  r.state = daemon::JobState::kSucceeded;
  r.reason = "a reason with \"quotes\" and \n";
  r.submitter = 4001;
  r.via = "spool";
  r.source = "tok-1";
  r.spec_sha256 = "sha256:" + std::string(64, 'a');
  r.submitted_at = 1.5;
  r.started_at = 2.25;
  r.finished_at = 3.125;
  r.pid = 1234;
  r.pid_start = 99;
  r.exit_status = 13;
  r.output_dir = "/srv/out/train-000042-beef";
  r.output_dir_dev = 2049;
  r.output_dir_ino = 1ull << 40;
  r.trainer_log_file = "trainer.log.sealed";
  r.trainer_log_sha256 = "sha256:" + std::string(64, 'b');
  r.outputs = nlohmann::json::array({{{"file", "out-000001.sealed"}, {"size", 12}}});
  r.resources = {{"peak_memory_bytes", 1024}};
  r.executor = "slurm";
  r.slurm_job_id = "77";
  r.node = "gpu-1";
  r.cancel_requested = true;
  r.halt_requested = true;
  r.inputs = nlohmann::json::array({{{"name", "customers"}, {"dataset", "customers"}, {"sha256", nullptr}}});
  const nlohmann::json j = r.ToJson();
  auto back = daemon::JobRecord::FromJson(j);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->ToJson(), j);
  EXPECT_EQ(back->state, daemon::JobState::kSucceeded);
  EXPECT_EQ(back->output_dir_ino, 1ull << 40);
  EXPECT_TRUE(back->halt_requested);
  EXPECT_EQ(back->inputs, r.inputs);
  for (const char* member : {"job_id", "state", "submitter"}) {
    nlohmann::json broken = j;
    broken[member] = nlohmann::json::array();  // the wrong type: refused, never thrown
    EXPECT_FALSE(daemon::JobRecord::FromJson(broken)) << member;
  }
}

}  // namespace
}  // namespace cordon
