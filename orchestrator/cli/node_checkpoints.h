// `cordon audit verify --node-checkpoints NODE_AUDIT_DIR` (docs/SCALE-OUT.md):
// every `node.checkpoint` the central log recorded for that node's log (same
// origin) must be a checkpoint the node log verifies against today — signed
// by the node's key, and its head still in the node's log. Since the node
// log is a hash chain, each recorded checkpoint being held means every later
// one extends every earlier one (consistency); a node log rewritten or rolled
// back after the centre anchored it fails.
#pragma once

#include <optional>
#include <string>

namespace cordon::cli {

// Prints one line per node log; returns the process exit status (0 all held,
// 1 a recorded checkpoint is not held or the node log does not verify, 2 usage).
[[nodiscard]] int VerifyNodeCheckpoints(const std::string& central_dir, const std::string& node_dir,
                                        const std::optional<std::string>& node_verifier_key, bool json);

}  // namespace cordon::cli
