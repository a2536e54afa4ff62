// The OCI extractor and resolver against layers and layouts this test writes itself (libarchive's
// writer produces exactly the hostile entries a real tar tool would refuse to make).
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cordon/images/oci_image.h"
#include "cordon/unique_fd.h"
#include "cordon/testing/temp_dir.h"

namespace cordon::images {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Entry {
  std::string name;
  mode_t type = AE_IFREG;
  mode_t perm = 0644;
  std::string data;
  std::string link;       // symlink target
  std::string hardlink;   // hard link target
};

Entry File(std::string name, std::string data, mode_t perm = 0644) { return {std::move(name), AE_IFREG, perm, std::move(data), "", ""}; }
Entry Dir(std::string name, mode_t perm = 0755) { return {std::move(name), AE_IFDIR, perm, "", "", ""}; }
Entry Link(std::string name, std::string target) { return {std::move(name), AE_IFLNK, 0777, "", std::move(target), ""}; }

std::string Sha256Hex(const std::string& bytes) {
  unsigned char md[32];
  unsigned len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  std::ostringstream out;
  for (unsigned i = 0; i < len; ++i) out << std::hex << (md[i] >> 4) << (md[i] & 15);
  return out.str();
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void WriteAll(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

class OciTest : public ::testing::Test {
 protected:
  cordon::testing::TempDir tmp_dir_{"oci"};  // removed with the fixture
  void SetUp() override {
    dir_ = tmp_dir_.path();
    fs::create_directories(dir_ / "rootfs");
    fs::create_directories(dir_ / "outside");
    rootfs_.reset(open((dir_ / "rootfs").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  }

  // Writes a tar (gzip-compressed when `gzip`) of `entries` and returns its bytes.
  std::string Tar(const std::vector<Entry>& entries, bool gzip = true) {
    const fs::path out = dir_ / ("layer-" + std::to_string(counter_++));
    archive* a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (gzip) archive_write_add_filter_gzip(a);
    EXPECT_EQ(archive_write_open_filename(a, out.c_str()), ARCHIVE_OK);
    for (const Entry& e : entries) {
      archive_entry* ae = archive_entry_new();
      archive_entry_set_pathname(ae, e.name.c_str());
      if (!e.hardlink.empty()) {
        archive_entry_set_hardlink(ae, e.hardlink.c_str());
        archive_entry_set_filetype(ae, AE_IFREG);
      } else {
        archive_entry_set_filetype(ae, e.type);
      }
      archive_entry_set_perm(ae, e.perm);
      if (e.type == AE_IFLNK) archive_entry_set_symlink(ae, e.link.c_str());
      if (e.type == AE_IFCHR) archive_entry_set_rdev(ae, makedev(1, 3));
      archive_entry_set_size(ae, e.type == AE_IFREG && e.hardlink.empty() ? static_cast<la_int64_t>(e.data.size()) : 0);
      EXPECT_EQ(archive_write_header(a, ae), ARCHIVE_OK) << e.name;
      if (!e.data.empty()) archive_write_data(a, e.data.data(), e.data.size());
      archive_entry_free(ae);
    }
    archive_write_close(a);
    archive_write_free(a);
    return ReadAll(out);
  }

  Status Apply(LayerExtractor& ex, const std::string& blob, const Descriptor* expect = nullptr) {
    const fs::path p = dir_ / ("blob-" + std::to_string(counter_++));
    WriteAll(p, blob);
    UniqueFd fd(open(p.c_str(), O_RDONLY | O_CLOEXEC));
    return ex.Apply(fd.get(), expect);
  }

  Status ApplyOne(const std::vector<Entry>& entries, const Limits& limits = {}) {
    LayerExtractor ex(rootfs_.get(), limits);
    auto st = Apply(ex, Tar(entries));
    if (!st) return st;
    return ex.Finish();
  }

  fs::path Root(const std::string& rel) const { return dir_ / "rootfs" / rel; }

  fs::path dir_;
  UniqueFd rootfs_;
  int counter_ = 0;
};

mode_t Mode(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
  return st.st_mode;
}

TEST_F(OciTest, ExtractsFilesDirsLinksAndStripsSetuid) {
  ASSERT_TRUE(ApplyOne({Dir("./usr/"), Dir("usr/bin", 0555), File("usr/bin/tool", "#!/bin/sh\n", 04755),
                        File("etc/conf", "x", 0666), Link("bin", "usr/bin"), Link("abs", "/etc/shadow"),
                        {"usr/bin/tool2", AE_IFREG, 0644, "", "", "usr/bin/tool"}}));
  EXPECT_EQ(ReadAll(Root("usr/bin/tool")), "#!/bin/sh\n");
  EXPECT_EQ(Mode(Root("usr/bin/tool")) & 07777, 0755u);        // setuid dropped
  EXPECT_EQ(Mode(Root("etc/conf")) & 07777, 0644u);            // group/other write dropped
  EXPECT_EQ(Mode(Root("usr/bin")) & 07777, 0555u);             // applied after extraction
  EXPECT_EQ(Mode(Root("etc")) & 07777, 0755u);                 // implied parent
  EXPECT_TRUE(S_ISLNK(Mode(Root("bin"))));
  EXPECT_EQ(fs::read_symlink(Root("abs")), "/etc/shadow");     // kept as text, never followed here
  struct stat a {}, b {};
  ASSERT_EQ(stat(Root("usr/bin/tool").c_str(), &a), 0);
  ASSERT_EQ(stat(Root("usr/bin/tool2").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
}

TEST_F(OciTest, WhiteoutsAndOpaqueDirectories) {
  LayerExtractor ex(rootfs_.get(), {});
  ASSERT_TRUE(Apply(ex, Tar({File("a/x", "1"), File("a/y", "2"), File("b/z", "3"), File("d/old", "4")})));
  ASSERT_TRUE(Apply(ex, Tar({File("a/.wh.x", ""), File(".wh.b", ""), File("d/new", "5"), File("d/.wh..wh..opq", "")})));
  ASSERT_TRUE(ex.Finish());
  EXPECT_FALSE(fs::exists(Root("a/x")));
  EXPECT_TRUE(fs::exists(Root("a/y")));
  EXPECT_FALSE(fs::exists(Root("b")));
  EXPECT_FALSE(fs::exists(Root("d/old")));
  EXPECT_TRUE(fs::exists(Root("d/new")));  // same layer as the opaque marker: kept
  EXPECT_FALSE(fs::exists(Root("a/.wh.x")));
}

TEST_F(OciTest, LaterLayerReplacesTypes) {
  LayerExtractor ex(rootfs_.get(), {});
  ASSERT_TRUE(Apply(ex, Tar({File("p/q", "file"), Dir("r"), File("r/s", "1")})));
  ASSERT_TRUE(Apply(ex, Tar({Dir("p/q"), File("r", "now a file")})));
  ASSERT_TRUE(ex.Finish());
  EXPECT_TRUE(fs::is_directory(Root("p/q")));
  EXPECT_EQ(ReadAll(Root("r")), "now a file");
}

TEST_F(OciTest, RefusesDotDotEscape) {
  auto st = ApplyOne({File("../outside/escaped", "x")});
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("'..'"), std::string::npos) << st.error().message;
  EXPECT_FALSE(fs::exists(dir_ / "outside/escaped"));
  EXPECT_FALSE(ApplyOne({File("a/../../outside/escaped", "x")}));
  EXPECT_FALSE(fs::exists(dir_ / "outside/escaped"));
}

TEST_F(OciTest, RefusesAbsoluteNames) {
  const std::string target = (dir_ / "outside/abs").string();
  auto st = ApplyOne({File(target, "x")});
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("absolute"), std::string::npos) << st.error().message;
  EXPECT_FALSE(fs::exists(target));
}

TEST_F(OciTest, SymlinkThenWriteThroughIsRefused) {
  const std::string outside = (dir_ / "outside").string();
  auto st = ApplyOne({Link("evil", outside), File("evil/pwned", "x")});
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("symbolic link"), std::string::npos) << st.error().message;
  EXPECT_FALSE(fs::exists(dir_ / "outside/pwned"));
  // The link in one layer, the write in the next; a relative link climbing out; a hard link
  // through the link; a directory entry through it.
  LayerExtractor ex(rootfs_.get(), {});
  ASSERT_TRUE(Apply(ex, Tar({Link("up", "../../outside"), Link("evil2", outside)})));
  EXPECT_FALSE(Apply(ex, Tar({File("evil2/pwned", "x")})));
  EXPECT_FALSE(Apply(ex, Tar({File("up/pwned", "x")})));
  EXPECT_FALSE(Apply(ex, Tar({Dir("evil2/sub")})));
  EXPECT_FALSE(Apply(ex, Tar({{"h", AE_IFREG, 0644, "", "", "evil2/target"}})));
  EXPECT_FALSE(Apply(ex, Tar({{"h2", AE_IFREG, 0644, "", "", "up"}})));  // a link to a symlink
  EXPECT_TRUE(fs::is_empty(dir_ / "outside"));
}

TEST_F(OciTest, RefusesDevicesAndFifos) {
  auto st = ApplyOne({{"dev/null", AE_IFCHR, 0666, "", "", ""}});
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("character device"), std::string::npos) << st.error().message;
  EXPECT_FALSE(fs::exists(Root("dev/null")));
  EXPECT_FALSE(ApplyOne({{"fifo", AE_IFIFO, 0666, "", "", ""}}));
  EXPECT_FALSE(ApplyOne({{"blk", AE_IFBLK, 0666, "", "", ""}}));
}

TEST_F(OciTest, EntryAndSizeLimits) {
  Limits few;
  few.max_entries = 3;
  auto st = ApplyOne({File("1", "a"), File("2", "b"), File("3", "c"), File("4", "d")}, few);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("more than 3 entries"), std::string::npos) << st.error().message;
  Limits small;
  small.max_unpacked_bytes = 1000;
  st = ApplyOne({File("big", std::string(4000, 'x'))}, small);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("larger than 1000"), std::string::npos) << st.error().message;
  EXPECT_FALSE(fs::exists(Root("big")));
  Limits shallow;
  shallow.max_depth = 3;
  EXPECT_FALSE(ApplyOne({File("a/b/c/d", "x")}, shallow));
}

TEST_F(OciTest, BlobDigestAndSizeAreChecked) {
  const std::string blob = Tar({File("f", "data")});
  Descriptor good{"application/vnd.oci.image.layer.v1.tar+gzip", "sha256:" + Sha256Hex(blob), blob.size()};
  {
    LayerExtractor ex(rootfs_.get(), {});
    EXPECT_TRUE(Apply(ex, blob, &good));
  }
  Descriptor wrong = good;
  wrong.digest = "sha256:" + std::string(64, '0');
  LayerExtractor ex(rootfs_.get(), {});
  auto st = Apply(ex, blob, &wrong);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::kIntegrity);
  Descriptor shorter = good;
  shorter.size = blob.size() - 10;
  st = Apply(ex, blob, &shorter);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::kIntegrity) << st.error().message;
}

TEST_F(OciTest, NotATarIsRefused) {
  LayerExtractor ex(rootfs_.get(), {});
  EXPECT_FALSE(Apply(ex, std::string(3000, '\x42')));
}

// Found by fuzz_oci_layer: a gzip stream cut inside a tar header, where libarchive reports an
// error without a message (a NULL string). Refused with a message, not a crash.
TEST_F(OciTest, ErrorWithoutLibarchiveMessageIsRefused) {
  static constexpr unsigned char kLayer[] = {
      0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xed, 0xd6, 0xdd, 0x0a, 0x83, 0x20, 0x18, 0x80,
      0xe1, 0xef, 0x52, 0xbc, 0x82, 0xd2, 0xa6, 0x76, 0x3d, 0xc5, 0x62, 0x0d, 0x22, 0xb7, 0x5a, 0xec, 0xf6, 0x27,
      0x1d, 0x46, 0x6c, 0xec, 0x40, 0x09, 0x7a, 0x1f, 0x10, 0x3d, 0xf3, 0xe0, 0xc5, 0x9f, 0x65, 0x9e, 0x4a, 0x49,
      0x4c, 0x47, 0xb5, 0x73, 0xeb, 0x1c, 0x6d, 0xe7, 0x9d, 0xb5, 0x77, 0xce, 0x8b, 0x72, 0x92, 0xc1, 0x32, 0xbf,
      0x9a, 0x29, 0x6e, 0x29, 0xe7, 0xb4, 0xc4, 0xfe, 0x4d, 0x86, 0xfe, 0xde, 0xda, 0x2f, 0xfd, 0xdd, 0xb6, 0x7f,
      0x6d, 0xac, 0x28, 0x4d, 0xff, 0xe4, 0xfa, 0x6e, 0x7c, 0x00, 0x82, 0xbc, 0x18, 0xbf, 0x7d, 0x7e, 0x3b, 0x00,
      0x28, 0x00, 0x00};
  LayerExtractor ex(rootfs_.get(), {});
  const auto st = Apply(ex, std::string(reinterpret_cast<const char*>(kLayer), sizeof kLayer));
  ASSERT_FALSE(st);
  EXPECT_FALSE(st.error().message.empty());
}

// A whole layout: index.json -> manifest -> config + layers.
class LayoutTest : public OciTest {
 protected:
  std::string AddBlob(const std::string& bytes) {
    const std::string hex = Sha256Hex(bytes);
    fs::create_directories(layout() / "blobs/sha256");
    WriteAll(layout() / "blobs/sha256" / hex, bytes);
    return "sha256:" + hex;
  }
  fs::path layout() const { return dir_ / "layout"; }

  // Returns the manifest digest.
  std::string Build(const std::vector<std::string>& layers, const std::string& tag = "v1") {
    const std::string config = json{{"architecture", "amd64"}, {"os", "linux"},
                                    {"config", {{"Env", {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "bad"}},
                                                {"WorkingDir", "/app"}}}}.dump();
    json manifest = {{"schemaVersion", 2}, {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                     {"config", {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                                 {"digest", AddBlob(config)}, {"size", config.size()}}},
                     {"layers", json::array()}};
    for (const std::string& l : layers) {
      manifest["layers"].push_back({{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                                    {"digest", AddBlob(l)}, {"size", l.size()}});
    }
    const std::string m = manifest.dump();
    const std::string digest = AddBlob(m);
    json index = {{"schemaVersion", 2}, {"manifests", {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                                                        {"digest", digest}, {"size", m.size()},
                                                        {"annotations", {{"org.opencontainers.image.ref.name", tag}}}}}}};
    WriteAll(layout() / "index.json", index.dump());
    WriteAll(layout() / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
    return digest;
  }
  UniqueFd OpenLayout() { return UniqueFd(open(layout().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); }
};

TEST_F(LayoutTest, ResolvesUnpacksAndCaches) {
  const std::string digest = Build({Tar({File("bin/tool", "t", 0755)}), Tar({File("bin/.wh.tool", ""), File("x", "y")})});
  UniqueFd fd = OpenLayout();
  auto image = Resolve(fd.get(), "v1", {});
  ASSERT_TRUE(image) << image.error().message;
  EXPECT_EQ(image->manifest_digest, digest);
  ASSERT_EQ(image->layers.size(), 2u);
  ASSERT_EQ(image->image_config.env.size(), 2u);  // "bad" has no '='
  EXPECT_EQ(image->image_config.env[0].first, "PATH");
  EXPECT_EQ(image->image_config.working_dir, "/app");
  auto untagged = Resolve(fd.get(), "", {});  // one manifest: no tag needed
  ASSERT_TRUE(untagged);
  EXPECT_EQ(untagged->manifest_digest, digest);
  auto missing = Resolve(fd.get(), "v2", {});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("no manifest is tagged 'v2'"), std::string::npos);

  const std::string cache = (dir_ / "cache").string();
  auto first = Unpack(fd.get(), *image, cache, {});
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_FALSE(first->cached);
  EXPECT_EQ(first->rootfs, cache + "/" + digest.substr(7) + "/rootfs");
  EXPECT_EQ(ReadAll(first->rootfs + "/x"), "y");
  EXPECT_FALSE(fs::exists(first->rootfs + "/bin/tool"));
  EXPECT_FALSE(fs::exists(cache + "/" + digest.substr(7) + ".tmp"));
  EXPECT_EQ(Mode(cache) & 07777, 0700u);
  auto second = Unpack(fd.get(), *image, cache, {});
  ASSERT_TRUE(second);
  EXPECT_TRUE(second->cached);
}

// `cordon images prune`: an entry a job holds is never removed, a recent one is kept, a dry run
// removes nothing, and a name that is not an entry (a link dressed as one) is left alone.
TEST_F(LayoutTest, PruneRemovesOnlyUnheldOldEntries) {
  const std::string digest = Build({Tar({File("x", "y")})});
  UniqueFd fd = OpenLayout();
  auto image = Resolve(fd.get(), "v1", {});
  ASSERT_TRUE(image) << image.error().message;
  const std::string cache = (dir_ / "cache").string(), entry = cache + "/" + digest.substr(7);
  auto held = Unpack(fd.get(), *image, cache, {});
  ASSERT_TRUE(held) << held.error().message;
  auto again = Unpack(fd.get(), *image, cache, {});  // a second job on the same image does not wait
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE(again->cached);
  fs::create_directories(dir_ / "outside");
  WriteAll(dir_ / "outside/keep", "k");
  fs::create_directory_symlink(dir_ / "outside", cache + "/" + std::string(64, 'a'));

  auto report = PruneCache(cache, 0, false);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->in_use, 1u);
  EXPECT_TRUE(report->removed.empty());
  held->hold.reset();
  EXPECT_EQ(PruneCache(cache, 0, false)->in_use, 1u);  // still held by the second
  again->hold.reset();
  report = PruneCache(cache, 3600, false);
  ASSERT_TRUE(report);
  EXPECT_EQ(report->recent, 1u);
  report = PruneCache(cache, 0, true);
  ASSERT_TRUE(report);
  ASSERT_EQ(report->removed.size(), 1u);
  EXPECT_EQ(report->removed[0].digest, digest);
  EXPECT_EQ(report->removed[0].bytes, 1u);
  EXPECT_TRUE(fs::exists(entry));  // a dry run
  report = PruneCache(cache, 0, false);
  ASSERT_TRUE(report);
  EXPECT_EQ(report->removed.size(), 1u);
  EXPECT_FALSE(fs::exists(entry));
  EXPECT_FALSE(fs::exists(entry + ".lock"));
  EXPECT_EQ(ReadAll(dir_ / "outside/keep"), "k");
  auto fresh = Unpack(fd.get(), *image, cache, {});  // unpacked again on the next use
  ASSERT_TRUE(fresh) << fresh.error().message;
  EXPECT_FALSE(fresh->cached);
}

TEST_F(LayoutTest, TamperedBlobsAreRefused) {
  const std::string layer = Tar({File("f", "1")});
  Build({layer});
  UniqueFd fd = OpenLayout();
  auto image = Resolve(fd.get(), "v1", {});
  ASSERT_TRUE(image);
  // A layer whose bytes no longer match its digest: nothing lands in the cache.
  const fs::path blob = layout() / "blobs/sha256" / image->layers[0].digest.substr(7);
  std::string bytes = ReadAll(blob);
  bytes[bytes.size() / 2] ^= 1;
  WriteAll(blob, bytes);
  const std::string cache = (dir_ / "cache").string();
  auto unpacked = Unpack(fd.get(), *image, cache, {});
  ASSERT_FALSE(unpacked);
  EXPECT_NE(unpacked.error().message.find("layer 1/1"), std::string::npos) << unpacked.error().message;
  EXPECT_FALSE(fs::exists(cache + "/" + image->manifest_digest.substr(7)));
  EXPECT_FALSE(fs::exists(cache + "/" + image->manifest_digest.substr(7) + ".tmp"));
  // The config blob changed: refused at Resolve.
  const fs::path config = layout() / "blobs/sha256" / image->config.digest.substr(7);
  WriteAll(config, ReadAll(config) + " ");
  auto again = Resolve(fd.get(), "v1", {});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::kIntegrity) << again.error().message;
}

TEST_F(LayoutTest, SymlinkedBlobsAndOversizedJsonAreRefused) {
  Build({Tar({File("f", "1")})});
  UniqueFd fd = OpenLayout();
  auto image = Resolve(fd.get(), "v1", {});
  ASSERT_TRUE(image);
  Limits tiny;
  tiny.max_json_bytes = 16;
  auto small = Resolve(fd.get(), "v1", tiny);
  ASSERT_FALSE(small);
  EXPECT_NE(small.error().message.find("larger than 16"), std::string::npos) << small.error().message;
  // blobs/sha256 replaced by a symlink to a copy: never followed.
  fs::rename(layout() / "blobs/sha256", layout() / "blobs/real");
  fs::create_directory_symlink("real", layout() / "blobs/sha256");
  auto linked = Resolve(fd.get(), "v1", {});
  ASSERT_FALSE(linked);
  EXPECT_NE(linked.error().message.find("symlink"), std::string::npos) << linked.error().message;
}

TEST_F(LayoutTest, ABlobTheSubmitterCannotReadIsRefused) {
  Build({Tar({File("f", "1")})});
  UniqueFd fd = OpenLayout();
  auto image = Resolve(fd.get(), "v1", {});
  ASSERT_TRUE(image);
  const fs::path blob = layout() / "blobs/sha256" / image->layers[0].digest.substr(7);
  ASSERT_EQ(chmod(blob.c_str(), 0600), 0);
  const Reader stranger{54321, {54321}};
  auto unpacked = Unpack(fd.get(), *image, (dir_ / "cache").string(), {}, stranger);
  ASSERT_FALSE(unpacked);
  EXPECT_NE(unpacked.error().message.find("may not read"), std::string::npos) << unpacked.error().message;
}

TEST(OciDigest, Syntax) {
  EXPECT_TRUE(IsSha256Digest("sha256:" + std::string(64, 'a')));
  EXPECT_FALSE(IsSha256Digest("sha256:" + std::string(64, 'A')));
  EXPECT_FALSE(IsSha256Digest("sha512:" + std::string(64, 'a')));
  EXPECT_FALSE(IsSha256Digest("sha256:" + std::string(63, 'a')));
}

}  // namespace
}  // namespace cordon::images
