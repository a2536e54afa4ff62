#include "cordon/daemon/job_store.h"

#include <sys/random.h>

#include <array>
#include <chrono>
#include <filesystem>

#include "cordon/file_io.h"

namespace cordon::daemon {
namespace {

using nlohmann::json;

constexpr std::array<const char*, 7> kStateNames = {"queued",      "running",   "succeeded", "failed",
                                                     "interrupted", "cancelled", "rejected"};

std::string RandomHex4() {
  std::array<unsigned char, 2> b{};
  if (::getrandom(b.data(), b.size(), 0) != static_cast<ssize_t>(b.size())) b = {0, 0};
  char out[5];
  std::snprintf(out, sizeof out, "%02x%02x", b[0], b[1]);
  return out;
}

}  // namespace

const char* JobStateName(JobState state) { return kStateNames[static_cast<std::size_t>(state)]; }

std::optional<JobState> ParseJobState(std::string_view name) {
  for (std::size_t i = 0; i < kStateNames.size(); ++i) {
    if (name == kStateNames[i]) return static_cast<JobState>(i);
  }
  return std::nullopt;
}

bool IsFinal(JobState state) { return state != JobState::kQueued && state != JobState::kRunning; }

double NowSeconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

json JobRecord::ToJson() const {
  return {{"job_id", job_id},         {"seq", seq},
          {"name", name},             {"state", JobStateName(state)},
          {"outcome", outcome},       {"reason", reason},
          {"submitter", submitter},   {"via", via}, {"source", source},
          {"spec_sha256", spec_sha256}, {"submitted_at", submitted_at},
          {"started_at", started_at}, {"finished_at", finished_at},
          {"pid", pid},               {"pid_start", pid_start},
          {"exit_status", exit_status}, {"output_dir", output_dir},
          {"outputs", outputs},        {"resources", resources},
          {"executor", executor},
          {"slurm_job_id", slurm_job_id.empty() ? json(nullptr) : json(slurm_job_id)},
          {"node", node.empty() ? json(nullptr) : json(node)},
          {"cancel_requested", cancel_requested}, {"halt_requested", halt_requested},
          {"inputs", inputs},
          {"output_dir_id", output_dir_ino ? json{{"dev", output_dir_dev}, {"ino", output_dir_ino}} : json(nullptr)},
          {"trainer_log", trainer_log_sha256.empty() ? json(nullptr)
                                                     : json{{"file", trainer_log_file}, {"sha256", trainer_log_sha256}}}};
}

Result<JobRecord> JobRecord::FromJson(const json& j) {
  try {
    JobRecord r;
    r.job_id = j.at("job_id").get<std::string>();
    r.seq = j.at("seq").get<std::uint64_t>();
    r.name = j.at("name").get<std::string>();
    auto state = ParseJobState(j.at("state").get<std::string>());
    if (!state) return Fail(Errc::kInvalidData, "unknown state");
    r.state = *state;
    r.outcome = j.at("outcome").get<std::string>();
    r.reason = j.at("reason").get<std::string>();
    r.submitter = j.at("submitter").get<uid_t>();
    r.via = j.at("via").get<std::string>();
    r.source = j.at("source").get<std::string>();
    r.spec_sha256 = j.at("spec_sha256").get<std::string>();
    r.submitted_at = j.at("submitted_at").get<double>();
    r.started_at = j.at("started_at").get<double>();
    r.finished_at = j.at("finished_at").get<double>();
    r.pid = j.at("pid").get<pid_t>();
    r.pid_start = j.at("pid_start").get<std::uint64_t>();
    r.exit_status = j.at("exit_status").get<int>();
    r.output_dir = j.at("output_dir").get<std::string>();
    r.outputs = j.at("outputs");
    if (const auto res = j.find("resources"); res != j.end() && res->is_object()) r.resources = *res;
    r.executor = j.value("executor", "local");
    if (const auto id = j.find("slurm_job_id"); id != j.end() && id->is_string()) r.slurm_job_id = id->get<std::string>();
    if (const auto n = j.find("node"); n != j.end() && n->is_string()) r.node = n->get<std::string>();
    r.cancel_requested = j.value("cancel_requested", false);
    r.halt_requested = j.value("halt_requested", false);
    if (const auto in = j.find("inputs"); in != j.end() && in->is_array()) r.inputs = *in;
    if (const auto id = j.find("output_dir_id"); id != j.end() && id->is_object()) {
      r.output_dir_dev = id->at("dev").get<std::uint64_t>();
      r.output_dir_ino = id->at("ino").get<std::uint64_t>();
    }
    if (const auto log = j.find("trainer_log"); log != j.end() && log->is_object()) {
      r.trainer_log_file = log->at("file").get<std::string>();
      r.trainer_log_sha256 = log->at("sha256").get<std::string>();
    }
    return r;
  } catch (const json::exception& e) {
    return Fail(Errc::kInvalidData, e.what());
  }
}

Result<JobStore> JobStore::Open(const std::string& state_dir) {
  JobStore store;
  store.dir_ = state_dir + "/jobs";
  if (auto made = MakeDir(store.dir_, 0700); !made) return std::unexpected(made.error());
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(store.dir_, ec)) {
    const std::string file = entry.path().string() + "/job.json";
    std::error_code exists_ec;
    if (!std::filesystem::exists(file, exists_ec)) continue;  // crashed between spec and record
    auto text = ReadFileLimited(file, 1 << 20);
    if (!text) return std::unexpected(text.error());
    json j = json::parse(*text, nullptr, false);
    auto record = j.is_discarded() ? Fail(Errc::kInvalidData, "not JSON") : JobRecord::FromJson(j);
    if (!record) return std::unexpected(WithContext(record.error(), file));
    store.next_seq_ = std::max(store.next_seq_, record->seq + 1);
    store.by_id_[record->job_id] = record->seq;
    store.jobs_[record->seq] = std::move(*record);
  }
  if (ec) return Fail(Errc::kIo, store.dir_ + ": " + ec.message());
  return store;
}

std::string JobStore::JobDir(std::string_view job_id) const { return dir_ + "/" + std::string(job_id); }

void JobStore::AssignId(JobRecord& record) {
  record.seq = next_seq_++;
  char seq[24];
  std::snprintf(seq, sizeof seq, "%06llu", static_cast<unsigned long long>(record.seq));
  record.job_id = (record.name.empty() ? std::string("job") : record.name) + "-" + seq + "-" + RandomHex4();
}

Result<JobRecord*> JobStore::Create(JobRecord record, std::string_view spec_text) {
  if (record.job_id.empty()) AssignId(record);
  const std::string dir = JobDir(record.job_id);
  if (auto made = MakeDir(dir, 0700); !made) return std::unexpected(made.error());
  if (auto w = WriteFileAtomic(dir + "/spec.yaml", spec_text, 0600, Overwrite::kRefuse); !w) {
    return std::unexpected(w.error());
  }
  if (auto s = Save(record); !s) return std::unexpected(s.error());
  if (auto s = FsyncDir(dir_); !s) return std::unexpected(s.error());
  by_id_[record.job_id] = record.seq;
  auto& slot = jobs_[record.seq];
  slot = std::move(record);
  return &slot;
}

Status JobStore::Save(const JobRecord& record) {
  return WriteFileAtomic(JobDir(record.job_id) + "/job.json", record.ToJson().dump() + "\n", 0600);
}

JobRecord* JobStore::Find(std::string_view job_id) {
  auto it = by_id_.find(job_id);
  return it == by_id_.end() ? nullptr : &jobs_.at(it->second);
}

std::vector<JobRecord*> JobStore::All() {
  std::vector<JobRecord*> out;
  out.reserve(jobs_.size());
  for (auto& [seq, record] : jobs_) out.push_back(&record);
  return out;
}

}  // namespace cordon::daemon
