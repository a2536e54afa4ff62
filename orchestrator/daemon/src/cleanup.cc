#include "cleanup.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string_view>
#include <vector>

#include "cordon/unique_fd.h"

namespace cordon::daemon {

Result<Cleaned> CleanAbandonedJobDir(const Identity& submitter, const std::string& output_path,
                                     const std::string& job_id) {
  auto parent = OpenAsUser(submitter, {{output_path, OpenKind::kDirectory}});
  if (!parent) return std::unexpected(parent.error());
  const int parent_fd = parent->at(0).get();
  UniqueFd dir(OpenNoSymlinks(parent_fd, job_id.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  Cleaned cleaned;
  struct stat st {};
  if (!dir) return errno == ENOENT ? Result<Cleaned>(cleaned) : FailErrno(output_path + "/" + job_id);
  if (::fstat(dir.get(), &st) != 0 || st.st_uid != 0) {
    return Fail(Errc::kPermissionDenied, output_path + "/" + job_id + ": not the directory the runner made");
  }
  std::vector<std::string> names;
  std::size_t others = 0;
  {
    const int listing = ::dup(dir.get());
    struct CloseDir {
      void operator()(DIR* d) const { ::closedir(d); }
    };
    std::unique_ptr<DIR, CloseDir> d(listing >= 0 ? ::fdopendir(listing) : nullptr);
    if (!d) return FailErrno("list " + job_id);
    while (const dirent* e = ::readdir(d.get())) {
      const std::string_view name = e->d_name;
      if (name == "." || name == "..") continue;
      if (name.starts_with('.') && name.ends_with(".partial")) names.emplace_back(name);
      else ++others;
    }
  }
  for (const auto& name : names) {
    if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) && st.st_uid == 0 &&
        ::unlinkat(dir.get(), name.c_str(), 0) == 0) {
      ++cleaned.partials_removed;
    } else {
      ++others;
    }
  }
  if (others == 0 && ::unlinkat(parent_fd, job_id.c_str(), AT_REMOVEDIR) == 0) cleaned.directory_removed = true;
  return cleaned;
}

}  // namespace cordon::daemon
