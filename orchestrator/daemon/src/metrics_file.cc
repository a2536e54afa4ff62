#include "metrics_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "cordon/unique_fd.h"

namespace cordon::daemon {
namespace {

// Prometheus floats: shortest round-trip form, +Inf spelled as the format wants.
std::string Num(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {  // integers as integers: "60", not "6e+01"
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  double back = 0;
  for (int precision = 1; precision <= 17; ++precision) {  // the shortest that reads back equal
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::sscanf(buf, "%lf", &back) == 1 && back == v) break;
  }
  return buf;
}

// Label values: backslash, double quote and newline escaped (text exposition format).
std::string Label(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void Header(std::ostringstream& out, std::string_view name, std::string_view type, std::string_view help) {
  out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
}

Status WriteAll(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) return FailErrno("write metrics file");
    done += static_cast<std::size_t>(n);
  }
  return {};
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  if (value < 0 || std::isnan(value)) return;
  std::size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

std::string Histogram::Render(std::string_view name) const {
  std::ostringstream out;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    out << name << "_bucket{le=\"" << (i < bounds_.size() ? Num(bounds_[i]) : "+Inf") << "\"} " << cumulative
        << "\n";
  }
  out << name << "_sum " << Num(sum_) << "\n" << name << "_count " << count_ << "\n";
  return out.str();
}

Metrics::Metrics()
    : job_({1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600}),
      stage_in_({0.1, 0.5, 1, 5, 15, 60, 300, 900}),
      stage_out_({0.1, 0.5, 1, 5, 15, 60, 300, 900}) {}

void Metrics::SetJobStates(std::map<std::string, std::uint64_t> s) { states_ = std::move(s); }
void Metrics::SetQueueLengths(std::map<uid_t, std::uint64_t> q) { queued_ = std::move(q); }
void Metrics::SetDegraded(bool degraded) { degraded_ = degraded; }
void Metrics::SetFinishedCounts(std::map<std::string, std::uint64_t> f) { finished_ = std::move(f); }
void Metrics::SetAuditEntries(std::uint64_t total) { audit_entries_ = total; }
void Metrics::SetLastCheckpoint(double unix_seconds) { last_checkpoint_ = unix_seconds; }

void Metrics::JobFinished(std::string_view outcome, double job_seconds, double stage_in_seconds,
                          double stage_out_seconds, std::uint64_t seccomp_violations) {
  ++finished_[std::string(outcome)];
  job_.Observe(job_seconds);
  stage_in_.Observe(stage_in_seconds);
  stage_out_.Observe(stage_out_seconds);
  violations_ += seccomp_violations;
}

std::string Metrics::Render(double now_unix) const {
  std::ostringstream out;
  Header(out, "cordon_jobs", "gauge", "Jobs known to cordond, by state.");
  for (const auto& [state, n] : states_) out << "cordon_jobs{state=\"" << Label(state) << "\"} " << n << "\n";
  Header(out, "cordon_jobs_finished_total", "counter", "Jobs that reached a final state, by outcome.");
  for (const auto& [outcome, n] : finished_) {
    out << "cordon_jobs_finished_total{outcome=\"" << Label(outcome) << "\"} " << n << "\n";
  }
  Header(out, "cordon_queue_length", "gauge", "Queued jobs per submitting uid.");
  for (const auto& [uid, n] : queued_) out << "cordon_queue_length{uid=\"" << uid << "\"} " << n << "\n";
  Header(out, "cordon_job_duration_seconds", "histogram", "Job start to final state.");
  out << job_.Render("cordon_job_duration_seconds");
  Header(out, "cordon_stage_in_duration_seconds", "histogram", "Decrypting a job's inputs into its sandbox.");
  out << stage_in_.Render("cordon_stage_in_duration_seconds");
  Header(out, "cordon_stage_out_duration_seconds", "histogram", "Sealing a job's outputs.");
  out << stage_out_.Render("cordon_stage_out_duration_seconds");
  Header(out, "cordon_seccomp_violations_total", "counter", "Denied system calls attempted by trainers.");
  out << "cordon_seccomp_violations_total " << violations_ << "\n";
  Header(out, "cordon_audit_entries_total", "counter", "Entries in the audit log.");
  out << "cordon_audit_entries_total " << audit_entries_ << "\n";
  if (last_checkpoint_) {
    Header(out, "cordon_audit_last_checkpoint_age_seconds", "gauge", "Seconds since the last signed audit checkpoint.");
    out << "cordon_audit_last_checkpoint_age_seconds " << Num(std::max(0.0, now_unix - *last_checkpoint_)) << "\n";
  }
  Header(out, "cordon_degraded", "gauge", "1 while the audit log cannot record (requests are refused).");
  out << "cordon_degraded " << (degraded_ ? 1 : 0) << "\n";
  return out.str();
}

Status Metrics::WriteFile(const std::string& path, double now_unix) const {
  const std::filesystem::path target(path);
  // Not ending in .prom: the collector ignores the temp file while it is written.
  const std::string tmp = (target.parent_path() / ("." + target.filename().string() + ".tmp")).string();
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd) return FailErrno("create " + tmp);
  if (::fchmod(fd.get(), 0644) != 0) return FailErrno("chmod " + tmp);  // whatever the umask
  if (auto st = WriteAll(fd.get(), Render(now_unix)); !st) return st;
  if (::fsync(fd.get()) != 0) return FailErrno("fsync " + tmp);
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const auto err = FailErrno("rename " + tmp + " to " + path);
    ::unlink(tmp.c_str());
    return err;
  }
  return {};
}

}  // namespace cordon::daemon
