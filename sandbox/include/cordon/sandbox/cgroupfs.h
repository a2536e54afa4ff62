// Reading and writing the cgroup file systems (v1 and v2): the few primitives
// the sandbox's job cgroups and cordond's v2 delegation both use.
#pragma once

#include <string>
#include <vector>

#include "cordon/error.h"

namespace cordon::sandbox::cgroupfs {

// A small control file's text ("" when it cannot be read).
[[nodiscard]] std::string Read(const std::string& path);
// One write(2) of `value` into a control file (the kernel takes it whole or not at all).
[[nodiscard]] Status Write(const std::string& path, const std::string& value);
// True when `word` is one of the whitespace-separated words of `text` (cgroup.controllers, ...).
[[nodiscard]] bool HasWord(const std::string& text, const std::string& word);

struct Mount {
  std::string point, fstype, super_options;
};
// Every cgroup and cgroup2 mount of this process's mount namespace (/proc/self/mountinfo).
[[nodiscard]] std::vector<Mount> Mounts();
// The first cgroup2 mount point, or "".
[[nodiscard]] std::string Cgroup2Mount();
// This process's cgroup path in the hierarchy whose /proc/self/cgroup controller list holds
// `controller` ("" = the v2 hierarchy, "0::"), or "".
[[nodiscard]] std::string OwnPath(const std::string& controller);

}  // namespace cordon::sandbox::cgroupfs
