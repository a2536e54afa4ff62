#include "cordon/config/config.h"

#include <cstdlib>
#include <filesystem>

#include "cordon/file_io.h"
#include "cordon/paths.h"
#include "cordon/units.h"

namespace cordon::orchestrator {
namespace {

using yaml::Diagnostics;
using yaml::MapReader;
using yaml::Node;

constexpr std::size_t kMaxConfigBytes = 256 * 1024;
constexpr std::int64_t kMaxId = 4294967294;  // (uid_t)-1 is "no change" to the kernel

class ConfigReader final {
 public:
  explicit ConfigReader(Diagnostics& d) : d_(d) {}

  Config Read(const Node& root) {
    Config c;
    MapReader top(d_, root, "");
    Path(top, "state_dir", c.state_dir);
    Path(top, "spool_dir", c.spool_dir);
    Path(top, "audit_dir", c.audit_dir);
    if (const Node* n = top.Optional("kms")) ReadKms(*n, c.kms);
    if (const Node* n = top.Optional("sandbox")) ReadSandbox(*n, c.sandbox);
    if (const Node* n = top.Optional("daemon")) ReadDaemon(*n, c.daemon);
    if (const Node* n = top.Optional("audit")) ReadAudit(*n, c.audit);
    if (const Node* n = top.Optional("slurm")) ReadSlurm(*n, c.slurm);
    top.Finish();
    return c;
  }

 private:
  void Path(MapReader& m, std::string_view key, std::string& out, bool required = false) {
    const Node* n = required ? m.Required(key) : m.Optional(key);
    if (n == nullptr) return;
    auto v = yaml::ReadString(d_, *n, m.Path(key));
    if (!v) return;
    if (auto ok = CheckHostPath(*v); !ok) {
      d_.Add(*n, m.Path(key) + ": " + ok.error().message);
      return;
    }
    out = *v;
  }

  void ReadKms(const Node& node, Config::Kms& kms) {
    MapReader m(d_, node, "kms");
    if (const Node* local = m.Optional("local")) {
      MapReader l(d_, *local, "kms.local");
      Path(l, "keyring", kms.local_keyring);
      l.Finish();
    }
    if (const Node* p = m.Optional("pkcs11")) {
      MapReader p11(d_, *p, "kms.pkcs11");
      Pkcs11Config pkcs11;
      Path(p11, "module", pkcs11.module, true);
      if (const Node* n = p11.Required("token_label")) {
        if (auto v = yaml::ReadString(d_, *n, "kms.pkcs11.token_label")) {
          // PKCS#11 token labels are 32 bytes, blank padded.
          if (v->empty() || v->size() > 32) d_.Add(*n, "kms.pkcs11.token_label: must be 1-32 bytes");
          else pkcs11.token_label = *v;
        }
      }
      Path(p11, "pin_file", pkcs11.pin_file, true);
      p11.Finish();
      kms.pkcs11 = std::move(pkcs11);
    }
    m.Finish();
  }

  void ReadSandbox(const Node& node, Config::Sandbox& s) {
    MapReader m(d_, node, "sandbox");
    ReadId(m, "uid", s.uid);
    ReadId(m, "gid", s.gid);
    if (const Node* n = m.Optional("allow_swap")) {
      if (auto v = yaml::ReadBool(d_, *n, "sandbox.allow_swap")) s.allow_swap = *v;
    }
    m.Finish();
  }

  void ReadId(MapReader& m, std::string_view key, std::uint32_t& out) {
    const Node* n = m.Optional(key);
    if (n == nullptr) return;
    const std::string where = m.Path(key);
    if (yaml::Resolve(*n) == yaml::ScalarType::kInt && n->value == "0") {
      d_.Add(*n, where + ": 0 (root) is not allowed: the trainer must be unprivileged on the host");
      return;
    }
    if (auto v = yaml::ReadInt(d_, *n, where, 1, kMaxId)) out = static_cast<std::uint32_t>(*v);
  }

  void ReadDaemon(const Node& node, Config::Daemon& daemon) {
    MapReader m(d_, node, "daemon");
    if (const Node* n = m.Optional("max_concurrent_jobs")) {
      if (auto v = yaml::ReadInt(d_, *n, "daemon.max_concurrent_jobs", 1, 256)) {
        daemon.max_concurrent_jobs = static_cast<std::uint32_t>(*v);
      }
    }
    Path(m, "socket", daemon.socket);
    if (daemon.socket.size() >= 108) {  // sizeof(sockaddr_un::sun_path)
      d_.Add(m.node(), "daemon.socket: path is longer than a Unix socket allows (107 bytes)");
    }
    if (const Node* n = m.Optional("metrics_file")) {
      Path(m, "metrics_file", daemon.metrics_file);
      const std::string& f = daemon.metrics_file;
      if (!f.empty() && (f.size() < 6 || f.compare(f.size() - 5, 5, ".prom") != 0)) {
        d_.Add(*n, "daemon.metrics_file: must end in .prom (node_exporter's textfile collector reads only those)");
        daemon.metrics_file.clear();
      }
    }
    Choice(m, "executor", {"local", "slurm"}, daemon.executor);
    m.Finish();
  }

  // One of two words, the enum's first and second value.
  template <typename Enum>
  void Choice(MapReader& m, std::string_view key, std::pair<const char*, const char*> words, Enum& out) {
    const Node* n = m.Optional(key);
    if (n == nullptr) return;
    auto v = yaml::ReadString(d_, *n, m.Path(key));
    if (!v) return;
    if (*v == words.first) out = static_cast<Enum>(0);
    else if (*v == words.second) out = static_cast<Enum>(1);
    else d_.Add(*n, m.Path(key) + ": must be " + words.first + " or " + words.second);
  }

  // A word sbatch reads: no control characters, bounded.
  void Word(MapReader& m, std::string_view key, std::string& out) {
    const Node* n = m.Optional(key);
    if (n == nullptr) return;
    auto v = yaml::ReadString(d_, *n, m.Path(key));
    if (!v) return;
    if (!PlainWord(*v)) return d_.Add(*n, m.Path(key) + ": 1-256 printable characters, no spaces");
    out = *v;
  }
  static bool PlainWord(const std::string& v) {
    if (v.empty() || v.size() > 256) return false;
    for (const char c : v) {
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
    }
    return true;
  }

  void ReadSlurm(const Node& node, Config::Slurm& s) {
    MapReader m(d_, node, "slurm");
    Word(m, "partition", s.partition);
    Word(m, "account", s.account);
    if (const Node* n = m.Optional("sbatch_args")) {
      if (auto v = yaml::ReadStringList(d_, *n, "slurm.sbatch_args", 64)) {
        for (const auto& arg : *v) {
          if (!PlainWord(arg) || arg[0] != '-') {
            d_.Add(*n, "slurm.sbatch_args: '" + arg.substr(0, 64) + "' is not an option (-x or --name=value, no spaces)");
          }
          // Cordon owns these: where Slurm writes output, what runs, for whom.
          for (const char* owned : {"--output", "--error", "--input", "--wrap", "--job-name", "--uid", "--gid",
                                    "--export", "--chdir", "-o", "-e", "-i", "-J", "-D"}) {
            if (arg == owned || arg.rfind(std::string(owned) + "=", 0) == 0 ||
                (owned[1] != '-' && arg.rfind(owned, 0) == 0)) {
              d_.Add(*n, "slurm.sbatch_args: " + std::string(owned) + " is set by cordond");
            }
          }
        }
        s.sbatch_args = *v;
      }
    }
    Path(m, "cordon", s.cordon);
    Path(m, "node_config", s.node_config);
    Path(m, "shared_dir", s.shared_dir);
    if (const Node* n = m.Optional("poll_interval")) {
      if (auto v = yaml::ReadString(d_, *n, "slurm.poll_interval")) {
        auto d = ParseDuration(*v);
        if (!d || d->count() < 100 || d->count() > 3600000) d_.Add(*n, "slurm.poll_interval: a duration from 100ms to 1h");
        else s.poll_interval_ms = static_cast<std::uint32_t>(d->count());
      }
    }
    if (const Node* n = m.Optional("time_grace")) {
      if (auto v = yaml::ReadString(d_, *n, "slurm.time_grace")) {
        auto d = ParseDuration(*v);
        if (!d || d->count() < 0 || d->count() > 86400000) d_.Add(*n, "slurm.time_grace: a duration from 0s to 24h");
        else s.time_grace_s = static_cast<std::uint32_t>(d->count() / 1000);
      }
    }
    Choice(m, "scheduling", {"cordon", "slurm"}, s.scheduling);
    m.Finish();
  }

  void ReadAudit(const Node& node, Config::Audit& audit) {
    MapReader m(d_, node, "audit");
    if (const Node* n = m.Optional("checkpoint_every")) {
      if (auto v = yaml::ReadInt(d_, *n, "audit.checkpoint_every", 1, 1000000000)) {
        audit.checkpoint_every = static_cast<std::uint64_t>(*v);
      }
    }
    if (const Node* n = m.Optional("checkpoint_interval")) {
      if (auto v = yaml::ReadString(d_, *n, "audit.checkpoint_interval")) {
        auto d = ParseDuration(*v);
        if (!d || d->count() < 1000 || d->count() > 86400000) {
          d_.Add(*n, "audit.checkpoint_interval: a duration from 1s to 24h (e.g. \"5m\")");
        } else {
          audit.checkpoint_interval_s = static_cast<std::uint32_t>(d->count() / 1000);
        }
      }
    }
    m.Finish();
  }

  Diagnostics& d_;
};

std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

ConfigParse ParseConfig(std::string_view text) {
  ConfigParse result;
  result.config = yaml::LoadAndRead(text, {.max_bytes = kMaxConfigBytes}, result.diagnostics,
                                    [](Diagnostics& d, const Node& root) { return ConfigReader(d).Read(root); });
  if (result.config && result.config->slurm.shared_dir.empty()) {
    result.config->slurm.shared_dir = result.config->state_dir + "/slurm";
  }
  return result;
}

std::string ResolveConfigPath(const std::optional<std::string>& flag) {
  if (flag && !flag->empty()) return *flag;
  if (const char* env = std::getenv(std::string(kConfigEnv).c_str()); env != nullptr && *env != '\0') {
    return env;
  }
  return std::string(kDefaultConfigPath);
}

Result<Config> LoadConfig(const std::string& path) {
  auto text = ReadFileLimited(path, kMaxConfigBytes);
  if (!text) {
    return Fail(text.error().code, "cannot read config " + text.error().message +
                                       " (set --config FILE or CORDON_CONFIG; `cordon init DIR` "
                                       "creates one)");
  }
  ConfigParse parsed = ParseConfig(*text);
  if (!parsed.config) return Fail(Errc::kInvalidArgument, yaml::FormatDiagnostics(path, parsed.diagnostics));
  std::error_code ec;
  parsed.config->path = std::filesystem::absolute(path, ec).lexically_normal().string();
  if (ec) parsed.config->path = path;
  return std::move(*parsed.config);
}

Config ConfigUnder(const std::string& root) {
  Config c;
  c.path = root + "/cordon.yaml";
  c.state_dir = root + "/state";
  c.spool_dir = root + "/spool";
  c.audit_dir = root + "/audit";
  c.kms.local_keyring = root + "/keys";
  c.daemon.socket = root + "/run/cordon.sock";
  return c;
}

std::string RenderConfig(const Config& c) {
  std::string out;
  out += "# Cordon configuration. Every field is documented in docs/CONFIG.md.\n";
  out += "# Paths must be absolute. Unknown keys are errors.\n";
  out += "state_dir: " + Quoted(c.state_dir) + "   # jobs and registry (0700)\n";
  out += "spool_dir: " + Quoted(c.spool_dir) + "   # incoming/ and rejected/ spec files\n";
  out += "audit_dir: " + Quoted(c.audit_dir) + "   # audit-*.jsonl (0700)\n";
  out += "kms:\n";
  out += "  local:\n";
  out += "    keyring: " + Quoted(c.kms.local_keyring) + "   # versioned KEKs (0700)\n";
  if (c.kms.pkcs11) {
    out += "  pkcs11:\n";
    out += "    module: " + Quoted(c.kms.pkcs11->module) + "\n";
    out += "    token_label: " + Quoted(c.kms.pkcs11->token_label) + "\n";
    out += "    pin_file: " + Quoted(c.kms.pkcs11->pin_file) + "\n";
  } else {
    out += "  # pkcs11:                  # an HSM through its PKCS#11 module\n";
    out += "  #   module: \"/usr/lib/softhsm/libsofthsm2.so\"\n";
    out += "  #   token_label: \"cordon\"\n";
    out += "  #   pin_file: \"/etc/cordon/hsm.pin\"\n";
  }
  out += "sandbox:\n";
  out += "  uid: " + std::to_string(c.sandbox.uid) + "   # the trainer's uid, unprivileged on the host\n";
  out += "  gid: " + std::to_string(c.sandbox.gid) + "\n";
  out += std::string("  allow_swap: ") + (c.sandbox.allow_swap ? "true" : "false") +
         "   # kernels < 6.4 only: run although swap is on\n";
  out += "audit:\n";
  out += "  checkpoint_every: " + std::to_string(c.audit.checkpoint_every) + "   # signed checkpoint every N entries\n";
  out += "  checkpoint_interval: \"" + std::to_string(c.audit.checkpoint_interval_s) +
         "s\"   # ... and after this long (checked on append)\n";
  out += "daemon:\n";
  out += "  max_concurrent_jobs: " + std::to_string(c.daemon.max_concurrent_jobs) + "\n";
  out += "  socket: " + Quoted(c.daemon.socket) + "\n";
  if (c.daemon.metrics_file.empty()) {
    out += "  # metrics_file: \"/var/lib/prometheus/node-exporter/cordon.prom\"   # Prometheus textfile\n";
  } else {
    out += "  metrics_file: " + Quoted(c.daemon.metrics_file) + "   # Prometheus textfile\n";
  }
  out += "  # executor: local   # or slurm: each job a Slurm batch job (docs/SCALE-OUT.md, the slurm: section)\n";
  return out;
}

}  // namespace cordon::orchestrator
