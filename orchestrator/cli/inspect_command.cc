// cordon inspect [--json] FILE
#include <fcntl.h>

#include <iostream>

#include "cordon/unique_fd.h"
#include "sealed_cli.h"

namespace cordon::cli {
namespace {

class InspectCommand final : public Command {
 public:
  explicit InspectCommand(CLI::App& app) {
    sub_ = app.add_subcommand("inspect", "show a sealed file's header without decrypting it");
    sub_->add_option("file", file_, "sealed file")->required();
    sub_->add_flag("--json", json_, "print one JSON object");
    sub_->footer(
        "Needs no key and no config. Nothing shown is authenticated until the file is unsealed:\n"
        "plaintext_bytes is derived from the file's length.\n" +
        SealedExitFooter());
  }

  CLI::App* sub() const override { return sub_; }

  int Run(const GlobalOptions&) override {
    UniqueFd fd(::open(file_.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) return ReportError("inspect", FailErrno(file_).error());
    auto info = sealed::OpenSealed(fd.get());
    if (!info) return ReportError("inspect", WithContext(info.error(), file_));
    const sealed::Header& h = info->header;
    nlohmann::json j = {{"file", file_},
                        {"format_version", h.format_version},
                        {"key", h.key.ToString()},
                        {"key_version", h.kek_version},
                        {"dataset", h.dataset},
                        {"job", h.job},
                        {"plaintext_bytes", info->plaintext_bytes},
                        {"chunk_bytes", h.chunk_bytes},
                        {"chunks", info->chunks},
                        {"header_bytes", h.header_bytes},
                        {"sealed_bytes", info->sealed_bytes}};
    if (json_) {
      std::cout << j.dump(2) << "\n";
      return kExitOk;
    }
    for (const auto& [name, value] : j.items()) {
      std::cout << name << ": " << (value.is_string() ? value.get<std::string>() : value.dump()) << "\n";
    }
    return kExitOk;
  }

 private:
  CLI::App* sub_ = nullptr;
  std::string file_;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Command> MakeInspectCommand(CLI::App& app) { return std::make_unique<InspectCommand>(app); }

}  // namespace cordon::cli
