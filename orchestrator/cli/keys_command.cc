// cordon keys create|list|rotate|disable
#include <ctime>
#include <iostream>
#include <unistd.h>

#include "cordon/key_ref.h"
#include "incident_cli.h"
#include "sealed_cli.h"

namespace cordon::cli {
namespace {

nlohmann::json KeyJson(const kms::KeyInfo& k) {
  return {{"key", "kms://" + k.adapter + "/" + k.name}, {"adapter", k.adapter}, {"name", k.name},
          {"versions", k.versions}, {"current_version", k.current()}, {"disabled", k.disabled},
          {"created", Iso8601Utc(k.created_unix)}};
}

void PrintKey(const kms::KeyInfo& k) {
  std::cout << "kms://" << k.adapter << "/" << k.name << "  version " << k.current() << " (of "
            << k.versions.size() << ")  created " << Iso8601Utc(k.created_unix)
            << (k.disabled ? "  DISABLED" : "") << "\n";
}

class KeysCommand final : public Command {
 public:
  explicit KeysCommand(CLI::App& app) {
    sub_ = app.add_subcommand("keys", "manage KMS keys (KEKs): create, list, rotate, disable");
    sub_->require_subcommand(1);
    create_ = sub_->add_subcommand("create", "create a key (version 1)");
    rotate_ = sub_->add_subcommand("rotate", "add a new version; new seals use it, old versions still unwrap");
    disable_ = sub_->add_subcommand("disable", "refuse every wrap and unwrap with the key (incident response)");
    list_ = sub_->add_subcommand("list", "list keys of the local adapter and every configured one");
    for (CLI::App* s : {create_, rotate_, disable_}) {
      s->add_option("name", name_, "key name, or kms://ADAPTER/NAME")->required();
      s->add_option("--adapter", adapter_, "local (default) or pkcs11");
    }
    for (CLI::App* s : {rotate_, disable_, list_}) AddCallerOption(s, caller_uid_);
    disable_->add_option("--version", version_, "disable only this old version (after rotate + rewrap --all)");
    list_->add_option("--adapter", adapter_, "only this adapter");
    list_->add_flag("--json", json_, "print a JSON array");
    sub_->footer(
        "Keys are referenced as kms://ADAPTER/NAME. Disabling cannot be undone with the CLI.\n" +
        SealedExitFooter());
  }

  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions& global) override {
    if (::geteuid() != 0 && (rotate_->parsed() || disable_->parsed()) && !caller_uid_) {
      // A policy admin: through cordond, which runs it as root and audits the admin's uid.
      std::vector<std::string> argv = {"keys", rotate_->parsed() ? "rotate" : "disable", name_, "--adapter", adapter_};
      if (version_) argv.insert(argv.end(), {"--version", std::to_string(*version_)});
      return ForwardToDaemon(global, argv);
    }
    kms::Options options;
    auto managers = KeyManagersFromConfig(global, "keys", &options);
    if (!managers) return kExitInvalid;
    if (list_->parsed()) return List(*managers, options);
    if (name_.starts_with("kms://")) {
      auto ref = ParseKeyRef(name_);
      if (!ref) return ReportError("keys", ref.error());
      adapter_ = ref->adapter;
      name_ = ref->name;
    }
    auto km = managers->get(adapter_);
    if (!km) return ReportError("keys", km.error());
    const std::string ref = "kms://" + adapter_ + "/" + name_;
    const std::string op = create_->parsed() ? "key.created" : rotate_->parsed() ? "key.rotated" : "key.disabled";
    nlohmann::json details = {{"key", ref}};
    if (version_) details["version"] = *version_;
    if (caller_uid_) details["on_behalf_of_uid"] = *caller_uid_;  // cordond ran it for this admin
    auto audited = AuditedOperation::Begin(global, "keys", version_ ? "key.version_disabled" : op, details);
    if (!audited) return kExitFailure;
    Result<kms::KeyInfo> info = Fail(Errc::kInternal, "no operation");
    if (create_->parsed()) info = (*km)->Create(name_);
    if (rotate_->parsed()) info = (*km)->Rotate(name_);
    if (disable_->parsed()) {
      auto ok = version_ ? (*km)->DisableVersion(name_, *version_) : (*km)->Disable(name_);
      info = ok ? (*km)->Describe(name_) : Result<kms::KeyInfo>(std::unexpected(ok.error()));
    }
    if (!info) {
      audited->Done({{"key", ref}}, &info.error());
      return ReportError("keys", info.error());
    }
    audited->Done(KeyJson(*info), nullptr);
    PrintKey(*info);
    return kExitOk;
  }

 private:
  int List(const sealed::KeyManagers& managers, const kms::Options& options) {
    std::vector<std::string> adapters = {"local"};
    if (!list_->get_option("--adapter")->empty()) adapters = {adapter_};
    else if (options.pkcs11) adapters.push_back("pkcs11");
    nlohmann::json all = nlohmann::json::array();
    for (const std::string& adapter : adapters) {
      auto km = managers.get(adapter);
      if (!km) return ReportError("keys", km.error());
      auto keys = (*km)->List();
      if (!keys) return ReportError("keys", keys.error());
      for (const auto& k : *keys) {
        if (json_) all.push_back(KeyJson(k));
        else PrintKey(k);
      }
    }
    if (json_) std::cout << all.dump(2) << "\n";
    return kExitOk;
  }

  CLI::App* sub_ = nullptr;
  CLI::App* create_ = nullptr;
  CLI::App* rotate_ = nullptr;
  CLI::App* disable_ = nullptr;
  CLI::App* list_ = nullptr;
  std::string name_;
  std::string adapter_ = "local";
  bool json_ = false;
  std::optional<std::uint32_t> version_;
  std::optional<uid_t> caller_uid_;
};

}  // namespace

std::unique_ptr<Command> MakeKeysCommand(CLI::App& app) { return std::make_unique<KeysCommand>(app); }

}  // namespace cordon::cli
