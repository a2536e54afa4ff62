#include "cordon/audit/ocsf.h"

#include <string_view>

#include "internal.h"

namespace cordon::audit {
namespace {

using nlohmann::json;

constexpr int kProcessActivity = 1007;  // category 1: System Activity
constexpr int kApiActivity = 6003;      // category 6: Application Activity

struct Mapping {
  int class_uid;
  int activity_id;
  const char* activity_name;
};

// Cordon action -> OCSF class and activity.
Mapping Map(std::string_view action) {
  struct Row {
    std::string_view action;
    Mapping m;
  };
  static constexpr Row kRows[] = {
      {"daemon.started", {kProcessActivity, 1, "Launch"}},
      {"daemon.stopped", {kProcessActivity, 2, "Terminate"}},
      {"sandbox.start", {kProcessActivity, 1, "Launch"}},
      {"job.finished", {kProcessActivity, 2, "Terminate"}},
      {"job.completed", {kProcessActivity, 2, "Terminate"}},
      {"job.interrupted", {kProcessActivity, 2, "Terminate"}},
      {"job.submitted", {kApiActivity, 1, "Create"}},
      {"job.accepted", {kApiActivity, 1, "Create"}},
      {"job.rejected", {kApiActivity, 1, "Create"}},
      {"job.cancel", {kApiActivity, 3, "Update"}},
      {"job.logs", {kApiActivity, 2, "Read"}},
      {"dataset.sealed", {kApiActivity, 1, "Create"}},
      {"dataset.unsealed", {kApiActivity, 2, "Read"}},
      {"dataset.rewrapped", {kApiActivity, 3, "Update"}},
      {"output.prepare", {kApiActivity, 1, "Create"}},
      {"output.sealed", {kApiActivity, 1, "Create"}},
      {"output.refused", {kApiActivity, 1, "Create"}},
      {"key.created", {kApiActivity, 1, "Create"}},
      {"key.rotated", {kApiActivity, 3, "Update"}},
      {"key.disabled", {kApiActivity, 3, "Update"}},
      {"policy.reloaded", {kApiActivity, 3, "Update"}},
      {"daemon.max_concurrent_jobs", {kApiActivity, 3, "Update"}},
  };
  for (const Row& r : kRows) {
    if (r.action == action) return r.m;
  }
  return {kApiActivity, 99, "Other"};
}

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// "2026-11-27T07:00:00.123456789Z" -> epoch milliseconds (0 when malformed or
// an impossible date such as Feb 31: the entry's own time parser decides).
long long EpochMs(const std::string& t) {
  const auto ns = internal::ParseTime(t);
  return ns ? static_cast<long long>(*ns / 1'000'000) : 0;
}

// ok -> Success; intent (write-ahead, the outcome follows in a later entry) -> Other;
// anything else (failed, denied, error, a job's final state...) -> Failure with the word.
void Status(json& ev, const std::string& outcome) {
  if (outcome == "ok" || outcome == "succeeded") {
    ev["status_id"] = 1;
    ev["status"] = "Success";
    ev["severity_id"] = 1;
    ev["severity"] = "Informational";
  } else if (outcome == "intent") {
    ev["status_id"] = 99;
    ev["status"] = "Intent";
    ev["severity_id"] = 1;
    ev["severity"] = "Informational";
  } else {
    ev["status_id"] = 2;
    ev["status"] = "Failure";
    ev["status_detail"] = outcome;
    const bool denied = outcome == "denied";
    ev["severity_id"] = denied ? 3 : 2;
    ev["severity"] = denied ? "Medium" : "Low";
  }
}

json OcsfActor(const json& entry) {
  json actor = json::object();
  auto it = entry.find("actor");
  if (it == entry.end() || !it->is_object()) return actor;
  const json& a = *it;
  json user = json::object();
  if (a.contains("uid") && a["uid"].is_number_integer()) {
    user["uid"] = std::to_string(a["uid"].get<long long>());
    user["type_id"] = a["uid"].get<long long>() == 0 ? 2 : 1;  // 2 Admin, 1 User
    user["type"] = a["uid"].get<long long>() == 0 ? "Admin" : "User";
  }
  if (const std::string name = Str(a, "user"); !name.empty()) user["name"] = name;
  if (!user.empty()) actor["user"] = user;
  json process = json::object();
  if (a.contains("pid") && a["pid"].is_number_integer()) process["pid"] = a["pid"];
  if (const std::string name = Str(a, "process"); !name.empty()) process["name"] = name;
  if (!process.empty()) actor["process"] = process;
  return actor;
}

}  // namespace

json ToOcsf(const json& entry, const OcsfContext& context) {
  const std::string action = Str(entry, "action"), outcome = Str(entry, "outcome"), job = Str(entry, "job");
  const Mapping m = Map(action);
  json ev;
  ev["class_uid"] = m.class_uid;
  ev["class_name"] = m.class_uid == kProcessActivity ? "Process Activity" : "API Activity";
  ev["category_uid"] = m.class_uid / 1000;
  ev["category_name"] = m.class_uid == kProcessActivity ? "System Activity" : "Application Activity";
  ev["activity_id"] = m.activity_id;
  ev["activity_name"] = m.activity_id == 99 ? action : std::string(m.activity_name);
  ev["type_uid"] = m.class_uid * 100 + m.activity_id;
  ev["type_name"] = ev["class_name"].get<std::string>() + ": " + ev["activity_name"].get<std::string>();
  ev["time"] = EpochMs(Str(entry, "time"));
  ev["message"] = action + (job.empty() ? "" : " " + job) + " " + outcome;
  Status(ev, outcome);
  ev["actor"] = OcsfActor(entry);
  json metadata = {{"version", kOcsfVersion},
                   {"product", {{"name", "Cordon"}, {"vendor_name", "Cordon"}, {"version", context.product_version}}},
                   {"log_name", "cordon.audit"},
                   {"original_time", Str(entry, "time")}};
  if (entry.contains("seq") && entry["seq"].is_number_unsigned()) metadata["sequence"] = entry["seq"];
  if (const std::string hash = Str(entry, "hash"); !hash.empty()) metadata["uid"] = hash;
  if (!job.empty()) metadata["correlation_uid"] = job;
  ev["metadata"] = metadata;
  const json details = entry.contains("details") && entry["details"].is_object() ? entry["details"] : json::object();
  if (m.class_uid == kProcessActivity) {
    ev["device"] = {{"type_id", 1}, {"type", "Server"}, {"hostname", context.hostname}};
    json process = {{"name", action.rfind("daemon.", 0) == 0 ? "cordond" : "cordon-job"}};
    if (!job.empty()) process["uid"] = job;
    if (action.rfind("daemon.", 0) == 0 && ev["actor"].contains("process")) process = ev["actor"]["process"];
    ev["process"] = process;
    for (const char* key : {"exit_status", "trainer_exit_code"}) {
      if (details.contains(key) && details[key].is_number_integer()) ev["exit_code"] = details[key];
    }
  } else {
    const std::string object = action.substr(0, action.find('.'));
    ev["api"] = {{"operation", action}, {"service", {{"name", "cordon"}}}};
    ev["src_endpoint"] = {{"hostname", context.hostname}};
    if (!job.empty()) ev["resources"] = json::array({{{"type", "job"}, {"uid", job}}});
    else if (object != "log" && object != "request") ev["resources"] = json::array({{{"type", object}}});
  }
  ev["unmapped"] = {{"cordon", {{"action", action}, {"outcome", outcome}, {"details", details}}}};
  return ev;
}

}  // namespace cordon::audit
