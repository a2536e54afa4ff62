// libFuzzer: one OCI layer (any bytes: tar, gzip, zstd or garbage) applied to a scratch rootfs
// with small limits. Whatever the input, nothing may be written outside the rootfs (the
// directory beside it is checked empty) and no sanitizer may fire.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>

#include "cordon/images/oci_image.h"
#include "cordon/unique_fd.h"

namespace {

std::filesystem::path Scratch() {
  static const std::filesystem::path dir = [] {
    char tmpl[] = "/tmp/cordon-fuzz-oci-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) std::abort();
    return std::filesystem::path(tmpl);
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::filesystem::path base = Scratch(), rootfs = base / "rootfs", beside = base / "beside";
  std::filesystem::create_directories(rootfs);
  std::filesystem::create_directories(beside);
  cordon::UniqueFd blob(memfd_create("layer", MFD_CLOEXEC));
  if (!blob || write(blob.get(), data, size) != static_cast<ssize_t>(size) || lseek(blob.get(), 0, SEEK_SET) != 0) {
    std::abort();
  }
  cordon::UniqueFd root(open(rootfs.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  cordon::images::Limits limits;
  limits.max_entries = 2000;
  limits.max_unpacked_bytes = 4u << 20;
  limits.max_depth = 32;
  {
    cordon::images::LayerExtractor ex(root.get(), limits);
    if (ex.Apply(blob.get())) (void)ex.Finish();
  }
  if (!std::filesystem::is_empty(beside)) std::abort();  // an entry escaped the rootfs
  std::filesystem::permissions(rootfs, std::filesystem::perms::owner_all);
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(rootfs, ec)) {
    if (e.is_directory(ec) && !e.is_symlink(ec)) std::filesystem::permissions(e.path(), std::filesystem::perms::owner_all, ec);
  }
  std::filesystem::remove_all(rootfs, ec);
  return 0;
}
