#include "cordon/config/install.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "cordon/file_io.h"
#include "cordon/audit/audit.h"
#include "cordon/policy/policy.h"
#include "cordon/paths.h"

namespace cordon::orchestrator {
namespace {

struct DirSpec {
  std::string path;
  mode_t mode;
  const char* description;
};

}  // namespace

Result<InitReport> InitInstallation(const std::string& root_arg) {
  std::error_code ec;
  const std::string root = std::filesystem::absolute(root_arg, ec).lexically_normal().string();
  if (ec) return Fail(Errc::kInvalidArgument, root_arg + ": " + ec.message());
  std::string normal = root;
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  if (auto ok = CheckHostPath(normal); !ok) return std::unexpected(WithContext(ok.error(), "cordon init"));

  InitReport report;
  report.config = ConfigUnder(normal);
  const Config& c = report.config;
  const std::string run_dir = c.daemon.socket.substr(0, c.daemon.socket.rfind('/'));
  const std::vector<DirSpec> dirs = {
      {normal, 0755, "installation root"},
      {c.kms.local_keyring, 0700, "local keyring"},
      {c.state_dir, 0700, "state directory"},
      {c.spool_dir, 0755, "spool"},
      // Anyone may drop a spec; nobody may list or take another's (sticky, no read).
      {c.spool_dir + "/incoming", 01733, "spool for incoming specs"},
      {c.spool_dir + "/rejected", 0700, "spool for rejected specs"},
      {c.audit_dir, 0700, "audit log directory"},
      {run_dir, 0755, "runtime directory (socket)"},
  };
  // Like `mkdir -p`: missing parents of the root are created (0755).
  const std::filesystem::path parent = std::filesystem::path(normal).parent_path();
  std::filesystem::create_directories(parent, ec);
  if (ec) return Fail(Errc::kIo, "cordon init: cannot create " + parent.string() + ": " + ec.message());
  for (const DirSpec& dir : dirs) {
    auto state = MakeDir(dir.path, dir.mode);
    if (!state) return std::unexpected(WithContext(state.error(), "cordon init"));
    report.items.push_back({dir.path, dir.description, *state == DirState::kCreated});
  }
  auto written = WriteFileAtomic(c.path, RenderConfig(c), 0640, Overwrite::kRefuse);
  if (!written && written.error().code != Errc::kAlreadyExists) {
    return std::unexpected(WithContext(written.error(), "cordon init"));
  }
  report.items.push_back({c.path, "config", written.has_value()});
  // cordond's access policy: the user who ran `cordon init` may submit and administer.
  const std::string policy_path = policy::PolicyPathFor(c.path);
  auto policy_written = WriteFileAtomic(policy_path, policy::RenderInitialPolicy(::getuid()), 0640, Overwrite::kRefuse);
  if (!policy_written && policy_written.error().code != Errc::kAlreadyExists) {
    return std::unexpected(WithContext(policy_written.error(), "cordon init"));
  }
  report.items.push_back({policy_path, "cordond access policy", policy_written.has_value()});
  // Audit keys: MAC seed k0 + Ed25519 checkpoint key; the verifier key must leave the host.
  auto audit_keys = audit::CreateAuditKeys(c.audit_dir, c.state_dir + "/audit-verifier.key");
  if (!audit_keys) return std::unexpected(WithContext(audit_keys.error(), "cordon init: audit keys"));
  report.items.push_back({audit_keys->verifier_key_path,
                          "audit verifier key: copy it OFF this host, then delete it here; "
                          "`cordon audit verify --verifier-key FILE` checks every MAC with it",
                          audit_keys->created});
  return report;
}

}  // namespace cordon::orchestrator
