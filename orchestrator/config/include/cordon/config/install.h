// `cordon init DIR`: lays out a self-contained Cordon installation under DIR,
// the same tree a packaged install has under /etc, /var and /run (see
// docs/CONFIG.md). Nothing that exists is overwritten: a second run reports
// each item as already present and changes nothing.
#pragma once

#include <string>
#include <vector>

#include "cordon/error.h"
#include "cordon/config/config.h"

namespace cordon::orchestrator {

struct InitItem {
  std::string path;
  std::string description;  // "config", "local keyring", ...
  bool created = false;     // false: it existed and was left untouched
};

struct InitReport {
  Config config;  // the configuration the installation uses
  std::vector<InitItem> items;
};

// `root` may be relative; it is made absolute and must then be a valid host
// path (see cordon/paths.h).
[[nodiscard]] Result<InitReport> InitInstallation(const std::string& root);

}  // namespace cordon::orchestrator
