#include "cordon/sandbox/cgroupfs.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "cordon/unique_fd.h"

namespace cordon::sandbox::cgroupfs {

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status Write(const std::string& path, const std::string& value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return FailErrno("cgroup: open " + path);
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return FailErrno("cgroup: write '" + value + "' to " + path);
  }
  return {};
}

bool HasWord(const std::string& text, const std::string& word) {
  std::istringstream in(text);
  for (std::string w; in >> w;) {
    if (w == word) return true;
  }
  return false;
}

std::vector<Mount> Mounts() {
  std::vector<Mount> out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    const auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream pre(line.substr(0, dash)), post(line.substr(dash + 3));
    std::string id, parent, devno, root, point, fstype, source, super_options;
    pre >> id >> parent >> devno >> root >> point;
    post >> fstype >> source >> super_options;
    if (fstype == "cgroup" || fstype == "cgroup2") out.push_back({point, fstype, super_options});
  }
  return out;
}

std::string OwnPath(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string list = "," + line.substr(a + 1, b - a - 1) + ",";
    if ((controller.empty() && list == ",,") ||
        (!controller.empty() && list.find("," + controller + ",") != std::string::npos)) {
      return line.substr(b + 1);
    }
  }
  return {};
}

std::string Cgroup2Mount() {
  for (const auto& m : Mounts()) {
    if (m.fstype == "cgroup2") return m.point;
  }
  return {};
}

}  // namespace cordon::sandbox::cgroupfs
