#include "cordon/runner/node_open.h"

#include <pwd.h>
#include <unistd.h>

#include "cordon/runner/image_scan.h"
#include "cordon/sealed/sealed.h"
#include "cordon/runner/user_open.h"

namespace cordon::runner {
namespace {

std::unexpected<NodeOpenError> Refuse(NodeRefusal kind, std::string message) {
  return std::unexpected(NodeOpenError{kind, std::move(message)});
}

}  // namespace

std::expected<SubmitterFds, NodeOpenError> OpenAsSubmitter(const orchestrator::Config& config,
                                                           const specs::TrainingJob& job, uid_t submitter,
                                                           const Approval& approval) {
  if (::geteuid() != 0) return Refuse(NodeRefusal::kSetup, "--as-submitter needs root (it becomes the submitter to open)");
  if (approval.datasets.size() != job.inputs.size() || approval.keys.size() != job.inputs.size()) {
    return Refuse(NodeRefusal::kInput, "every input needs exactly one approved dataset and key (--expect-input)");
  }
  std::vector<useropen::OpenRequest> requests;
  for (const auto& in : job.inputs) {
    if (!approval.datasets.contains(in.name) || !approval.keys.contains(in.name)) {
      return Refuse(NodeRefusal::kInput, "input " + in.name + ": not approved by cordond");
    }
    requests.push_back({in.path, useropen::OpenKind::kFile});
  }
  requests.push_back({job.output.path, useropen::OpenKind::kDirectoryCreate});
  requests.push_back({job.trainer.image, useropen::OpenKind::kDirectory});
  const passwd* pw = ::getpwuid(submitter);
  const useropen::Identity who = useropen::IdentityOf(submitter, pw ? pw->pw_gid : gid_t{65534});
  auto fds = useropen::OpenAsUser(who, requests);
  if (!fds) {
    // Name which request failed: inputs come first, in spec order.
    const bool input = fds.error().message.rfind(job.output.path + ":", 0) != 0 &&
                       fds.error().message.rfind(job.trainer.image + ":", 0) != 0;
    return Refuse(input ? NodeRefusal::kInput : NodeRefusal::kSetup, "as uid " + std::to_string(submitter) + ": " +
                                                                         fds.error().message);
  }
  SubmitterFds out;
  out.image = std::move(fds->back());
  fds->pop_back();
  out.output = std::move(fds->back());
  fds->pop_back();
  const internal::ImageSubmitter image_submitter{who.uid, who.groups};
  if (auto ok = internal::CheckImage(out.image.get(), config.daemon.socket, internal::HardlinksProtected(),
                                     submitter == 0 ? nullptr : &image_submitter);
      !ok) {
    return Refuse(NodeRefusal::kSetup, "trainer.image " + job.trainer.image + ": " + ok.error().message);
  }
  for (std::size_t i = 0; i < job.inputs.size(); ++i) {
    const auto& in = job.inputs[i];
    auto info = sealed::OpenSealed((*fds)[i].get());
    if (!info) return Refuse(NodeRefusal::kInput, "input " + in.name + ": not a sealed file");
    const std::string key = info->header.key.ToString();
    if (info->header.dataset != approval.datasets.at(in.name) || key != approval.keys.at(in.name)) {
      return Refuse(NodeRefusal::kInput, "input " + in.name + ": the file on this node is not the one cordond approved "
                                         "(its dataset or key differs)");
    }
    out.inputs.emplace(in.name, std::move((*fds)[i]));
  }
  return out;
}

}  // namespace cordon::runner
