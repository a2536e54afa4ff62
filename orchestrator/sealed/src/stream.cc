// The chunk engine: two lanes take turns reading batches of records in order,
// run the AEAD on their own batch in parallel, and take turns writing.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

#include "cordon/hex.h"
#include "cordon/file_io.h"
#include "cordon/sha256.h"
#include "format.h"

namespace cordon::sealed {
namespace {

using internal::ChunkNonce;

constexpr std::size_t kBatchBytes = 4u << 20;  // per lane

// Reads records of up to `record` bytes from an fd, knowing for each whether
// it is the last (EOF right after it). Positional (pread from an offset) or
// streaming (read with a one-byte lookahead).
class RecordReader {
 public:
  RecordReader(int fd, std::optional<std::uint64_t> offset, std::size_t record)
      : fd_(fd), offset_(offset), record_(record) {}

  // Fills `out` with the next record; returns its size and sets `last`.
  Result<std::size_t> Next(std::uint8_t* out, bool& last) {
    std::size_t n = 0;
    if (pending_) {
      out[n++] = *pending_;
      pending_.reset();
    }
    auto got = Fill(out + n, record_ - n);
    if (!got) return std::unexpected(got.error());
    n += *got;
    if (n < record_) {
      last = true;
      return n;
    }
    std::uint8_t peek = 0;
    auto more = Peek(peek);
    if (!more) return std::unexpected(more.error());
    last = !*more;
    return n;
  }

 private:
  Result<std::size_t> Fill(std::uint8_t* out, std::size_t want) {
    std::size_t got = 0;
    while (got < want) {
      const ssize_t n = RetryEintr([&] {
        return offset_ ? ::pread(fd_, out + got, want - got, static_cast<off_t>(*offset_)) : ::read(fd_, out + got, want - got);
      });
      if (n < 0) return FailErrno("read");
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
      if (offset_) *offset_ += static_cast<std::uint64_t>(n);
    }
    return got;
  }

  Result<bool> Peek(std::uint8_t& byte) {
    const ssize_t n =
        RetryEintr([&] { return offset_ ? ::pread(fd_, &byte, 1, static_cast<off_t>(*offset_)) : ::read(fd_, &byte, 1); });
    if (n < 0) return FailErrno("read");
    if (n == 1 && !offset_) pending_ = byte;
    return n == 1;
  }

  int fd_;
  std::optional<std::uint64_t> offset_;
  std::size_t record_;
  std::optional<std::uint8_t> pending_;
};

// One AES-256-GCM context per lane, keyed once.
class ChunkAead {
 public:
  ChunkAead(const SecretBytes& key, bool encrypt) : ctx_(EVP_CIPHER_CTX_new()) {
    ok_ = ctx_ != nullptr &&
          EVP_CipherInit_ex(ctx_.get(), EVP_aes_256_gcm(), nullptr, key.data(), nullptr, encrypt ? 1 : 0) == 1;
  }

  // Encrypts `len` bytes in place and appends the tag at buf + len.
  bool Seal(std::uint64_t index, bool final, std::uint8_t* buf, std::size_t len) {
    int out = 0;
    const auto nonce = ChunkNonce(index, final);
    return ok_ && EVP_CipherInit_ex(ctx_.get(), nullptr, nullptr, nullptr, nonce.data(), 1) == 1 &&
           EVP_CipherUpdate(ctx_.get(), buf, &out, buf, static_cast<int>(len)) == 1 &&
           EVP_CipherFinal_ex(ctx_.get(), buf + len, &out) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, buf + len) == 1;
  }

  // Decrypts ct (len bytes + tag) into `out`; false (out cleansed) if it does not verify.
  bool Open(std::uint64_t index, bool final, const std::uint8_t* ct, std::size_t len, std::uint8_t* out) {
    int n = 0;
    const auto nonce = ChunkNonce(index, final);
    const bool ok = ok_ && EVP_CipherInit_ex(ctx_.get(), nullptr, nullptr, nullptr, nonce.data(), 0) == 1 &&
                    EVP_CipherUpdate(ctx_.get(), out, &n, ct, static_cast<int>(len)) == 1 &&
                    EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes,
                                        const_cast<std::uint8_t*>(ct + len)) == 1 &&
                    EVP_CipherFinal_ex(ctx_.get(), out + n, &n) == 1;
    if (!ok && len > 0) OPENSSL_cleanse(out, len);
    return ok;
  }

 private:
  struct Free {
    void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
  };
  std::unique_ptr<EVP_CIPHER_CTX, Free> ctx_;
  bool ok_ = false;
};

struct Batch {
  std::uint64_t number = 0;
  std::uint64_t first_chunk = 0;
  std::vector<std::uint8_t> in;   // records, `slot` bytes apart
  std::vector<std::uint8_t> out;  // results, `slot` bytes apart (unseal only)
  std::vector<std::size_t> sizes; // record sizes
  std::vector<std::size_t> out_sizes;
  bool last = false;
};

// What a direction does with one batch.
struct Direction {
  std::size_t record = 0;  // bytes per record read
  std::size_t slot = 0;    // buffer stride per record
  bool separate_out = false;
  // Transforms record i of the batch (chunk index, last?) -> output size; error stops.
  std::function<Status(ChunkAead&, Batch&, std::size_t i, bool last)> transform;
  std::function<Status(std::span<const std::uint8_t>)> write;
  std::function<Status(std::span<const std::uint8_t>)> post;  // optional, after write, in order
  std::function<Result<ChunkAead>()> make_aead;
};

class LaneEngine {
 public:
  LaneEngine(RecordReader& reader, const Direction& dir) : reader_(reader), dir_(dir) {}

  Status Run() {
    std::thread other;
    try {
      other = std::thread([this] { Lane(1); });
    } catch (const std::system_error& e) {
      return Fail(Errc::kIo, std::string("cannot start the second lane thread: ") + e.what());
    }
    Lane(0);
    other.join();
    if (error_) return std::unexpected(*error_);
    return {};
  }

 private:
  // Plaintext passes through the lane buffers (verified plaintext on unseal,
  // what is being sealed on seal): wiped once when the lane ends.
  struct Wipe {
    Batch& batch;
    ~Wipe() {
      OPENSSL_cleanse(batch.in.data(), batch.in.size());
      OPENSSL_cleanse(batch.out.data(), batch.out.size());
    }
  };

  void Lane(std::uint64_t first) {
    Batch batch;
    Wipe wipe{batch};
    auto aead = dir_.make_aead();
    if (!aead) {
      Abort(first, aead.error());
      return;
    }
    const std::size_t per_batch = std::max<std::size_t>(1, kBatchBytes / dir_.slot);
    batch.in.resize(per_batch * dir_.slot);
    if (dir_.separate_out) batch.out.resize(per_batch * dir_.slot);
    for (std::uint64_t b = first;; b += 2) {
      if (!WaitTurn(read_turn_, b)) return;
      auto read = ReadBatch(batch, b, per_batch);
      Advance(read_turn_, b, batch.last || !read);
      if (!read) return Abort(b, read.error());
      auto done = Transform(*aead, batch);
      if (!done) return Abort(b, done.error());
      if (!WaitTurn(write_turn_, b)) return;
      auto wrote = Emit(batch, dir_.write);
      Advance(write_turn_, b, false);
      if (!wrote) return Abort(b, wrote.error());
      if (dir_.post) {  // e.g. hashing: in order, but overlapping the next batch's write
        if (!WaitTurn(post_turn_, b)) return;
        auto posted = Emit(batch, dir_.post);
        Advance(post_turn_, b, false);
        if (!posted) return Abort(b, posted.error());
      }
      if (batch.last) return;
    }
  }

  Status ReadBatch(Batch& batch, std::uint64_t b, std::size_t per_batch) {
    batch.number = b;
    batch.first_chunk = next_chunk_;
    batch.sizes.clear();
    batch.last = false;
    for (std::size_t i = 0; i < per_batch && !batch.last; ++i) {
      auto n = reader_.Next(batch.in.data() + i * dir_.slot, batch.last);
      if (!n) return std::unexpected(n.error());
      batch.sizes.push_back(*n);
    }
    next_chunk_ += batch.sizes.size();
    return {};
  }

  Status Transform(ChunkAead& aead, Batch& batch) {
    batch.out_sizes.assign(batch.sizes.size(), 0);
    for (std::size_t i = 0; i < batch.sizes.size(); ++i) {
      const bool last = batch.last && i + 1 == batch.sizes.size();
      if (auto ok = dir_.transform(aead, batch, i, last); !ok) return ok;
    }
    return {};
  }

  Status Emit(Batch& batch, const std::function<Status(std::span<const std::uint8_t>)>& stage) {
    const auto& buf = dir_.separate_out ? batch.out : batch.in;
    for (std::size_t i = 0; i < batch.sizes.size(); ++i) {
      if (auto ok = stage({buf.data() + i * dir_.slot, batch.out_sizes[i]}); !ok) return ok;
    }
    return {};
  }

  // Waits until `turn` reaches b; false when the run stopped before b.
  bool WaitTurn(std::uint64_t& turn, std::uint64_t b) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return turn == b || stop_before_ <= b || (&turn == &read_turn_ && input_done_); });
    return turn == b && stop_before_ > b && !(&turn == &read_turn_ && input_done_);
  }

  void Advance(std::uint64_t& turn, std::uint64_t b, bool input_done) {
    std::lock_guard lock(mu_);
    turn = b + 1;
    if (input_done) input_done_ = true;
    cv_.notify_all();
  }

  void Abort(std::uint64_t b, Error error) {
    std::lock_guard lock(mu_);
    if (b < stop_before_) {
      stop_before_ = b;
      error_ = std::move(error);
    }
    cv_.notify_all();
  }

  RecordReader& reader_;
  const Direction& dir_;
  std::uint64_t next_chunk_ = 0;  // touched only by the lane holding the read turn
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t read_turn_ = 0;
  std::uint64_t write_turn_ = 0;
  std::uint64_t post_turn_ = 0;
  bool input_done_ = false;
  std::uint64_t stop_before_ = UINT64_MAX;
  std::optional<Error> error_;
};


// The size of a regular file (progress totals); 0 for pipes and the like.
std::uint64_t TotalOf(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  return static_cast<std::uint64_t>(st.st_size);
}

// A regular file is read with pread from its current offset (aligned reads,
// no one-byte lookahead copies); anything else as a stream.
std::optional<std::uint64_t> PositionOf(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  const off_t at = ::lseek(fd, 0, SEEK_CUR);
  if (at < 0) return std::nullopt;
  return static_cast<std::uint64_t>(at);
}

Status CheckSealOptions(const SealOptions& o, kms::KeyManager& kms) {
  if (auto ok = CheckDatasetName(o.dataset); !ok) return ok;
  if (o.job.size() > 255) return Fail(Errc::kInvalidArgument, "job id must be at most 255 bytes");
  if (o.chunk_bytes < kMinChunkBytes || o.chunk_bytes > kMaxChunkBytes) {
    return Fail(Errc::kInvalidArgument, "chunk size must be " + std::to_string(kMinChunkBytes) + " bytes to 64 MiB");
  }
  if (o.key.adapter != kms.adapter()) {
    return Fail(Errc::kInternal, "key manager '" + std::string(kms.adapter()) + "' does not serve " + o.key.ToString());
  }
  return {};
}

// Builds the header of a new file: fresh DEK wrapped under the key's current version.
Result<std::pair<Header, internal::DerivedKeys>> NewHeader(const SealOptions& o, kms::KeyManager& kms) {
  auto dek = SecretBytes::Random(kms::kDekBytes);
  if (!dek) return std::unexpected(dek.error());
  auto wrapped = kms.Wrap(o.key.name, *dek, {o.dataset, o.job});
  if (!wrapped) return std::unexpected(wrapped.error());
  Header h;
  h.chunk_bytes = o.chunk_bytes;
  h.key = o.key;
  h.kek_version = wrapped->version;
  h.dataset = o.dataset;
  h.job = o.job;
  h.wrapped_dek = std::move(wrapped->blob);
  if (RAND_bytes(h.salt.data(), static_cast<int>(h.salt.size())) != 1) return Fail(Errc::kInternal, "RAND_bytes failed");
  auto keys = internal::DeriveKeys(*dek, h);
  if (!keys) return std::unexpected(keys.error());
  h.commitment = keys->commitment;
  auto mac = internal::HeaderMac(*keys, h);
  if (!mac) return std::unexpected(mac.error());
  h.mac = *mac;
  h.header_bytes = internal::EncodeHeader(h).size();
  return std::pair{std::move(h), std::move(*keys)};
}

}  // namespace

Result<Report> SealStream(int in_fd, int out_fd, kms::KeyManager& kms, const SealOptions& o) {
  if (auto ok = CheckSealOptions(o, kms); !ok) return std::unexpected(ok.error());
  auto made = NewHeader(o, kms);
  if (!made) return std::unexpected(made.error());
  auto& [header, keys] = *made;
  Report report{o.key, header.kek_version, o.dataset, o.job, o.chunk_bytes, 0, 0, 0, "", {}, 0};

  Sha256 sha;
  const std::uint64_t total = TotalOf(in_fd);
  const auto emit = [&](std::span<const std::uint8_t> bytes) -> Status {
    if (auto ok = sha.Update(bytes); !ok) return ok;
    report.sealed_bytes += bytes.size();
    return WriteAll(out_fd, bytes);
  };
  if (auto ok = emit(internal::EncodeHeader(header)); !ok) return std::unexpected(ok.error());

  Direction dir;
  dir.record = o.chunk_bytes;
  dir.slot = o.chunk_bytes + kTagBytes;
  dir.make_aead = [&]() -> Result<ChunkAead> { return ChunkAead(keys.payload, true); };
  dir.transform = [&](ChunkAead& aead, Batch& b, std::size_t i, bool last) -> Status {
    const std::uint64_t index = b.first_chunk + i;
    if (!aead.Seal(index, last, b.in.data() + i * dir.slot, b.sizes[i])) {
      return Fail(Errc::kInternal, "AES-256-GCM failed on chunk " + std::to_string(index));
    }
    b.out_sizes[i] = b.sizes[i] + kTagBytes;
    return {};
  };
  dir.write = [&](std::span<const std::uint8_t> sealed) { return WriteAll(out_fd, sealed); };
  dir.post = [&](std::span<const std::uint8_t> sealed) -> Status {
    if (auto ok = sha.Update(sealed); !ok) return ok;
    report.sealed_bytes += sealed.size();
    report.plaintext_bytes += sealed.size() - kTagBytes;
    ++report.chunks;
    if (o.progress) o.progress(report.plaintext_bytes, total);
    return {};
  };
  RecordReader reader(in_fd, PositionOf(in_fd), dir.record);
  if (auto ok = LaneEngine(reader, dir).Run(); !ok) return std::unexpected(ok.error());
  auto digest = sha.Finish();
  if (!digest) return std::unexpected(digest.error());
  report.sha256 = std::move(*digest);
  return report;
}

Result<SecretBytes> UnwrapDataKey(const Header& header, kms::KeyManager& kms) {
  if (header.key.adapter != kms.adapter()) {
    return Fail(Errc::kInternal, "key manager '" + std::string(kms.adapter()) + "' does not serve " +
                                     header.key.ToString());
  }
  auto dek = kms.Unwrap(header.key.name, header.kek_version, header.wrapped_dek, {header.dataset, header.job});
  if (!dek) return std::unexpected(dek.error());
  auto keys = internal::DeriveKeys(*dek, header);
  if (!keys) return std::unexpected(keys.error());
  if (auto ok = internal::VerifyHeader(header, *keys); !ok) return std::unexpected(ok.error());
  return std::move(*dek);
}

namespace {

// `aligned_final`: the final chunk's sealed length if whole chunks had been
// appended to this file ((size - header) mod record), to tell "trailing data"
// from "chunk N failed" when the original final chunk was short.
Status OpenChunk(ChunkAead& aead, Batch& b, std::size_t i, bool last, std::size_t slot, std::uint32_t chunk_bytes,
                 std::size_t aligned_final) {
  const std::uint64_t index = b.first_chunk + i;
  const std::size_t n = b.sizes[i];
  const std::string where = "chunk " + std::to_string(index);
  if (n < kTagBytes) {
    if (index == 0 && n == 0) return Fail(Errc::kTruncated, "truncated: the file has a header but no chunks");
    return Fail(Errc::kTruncated, "truncated: " + where + " is " + std::to_string(n) + " bytes, shorter than its tag");
  }
  const std::uint8_t* ct = b.in.data() + i * slot;
  std::uint8_t* out = b.out.data() + i * slot;
  const std::size_t len = n - kTagBytes;
  if (aead.Open(index, last, ct, len, out)) {
    if (last && len == 0 && index != 0) {
      return Fail(Errc::kInvalidData, where + ": an empty final chunk after other chunks is not allowed");
    }
    b.out_sizes[i] = len;
    return {};
  }
  if (last && len == chunk_bytes && aead.Open(index, false, ct, len, out)) {
    OPENSSL_cleanse(out, len);
    return Fail(Errc::kTruncated, "truncated: the file ends after " + where + ", which is not the final chunk");
  }
  if (!last && (aead.Open(index, true, ct, len, out) ||
                (aligned_final >= kTagBytes && aligned_final < n &&
                 aead.Open(index, true, ct, aligned_final - kTagBytes, out)))) {
    OPENSSL_cleanse(out, len);
    return Fail(Errc::kTrailingData, "trailing data: " + where + " is the final chunk but more bytes follow it");
  }
  if (last && len < chunk_bytes) {
    return Fail(Errc::kIntegrity, where + " failed authentication (altered, from another file, or the file was "
                                          "cut inside this chunk)");
  }
  return Fail(Errc::kIntegrity, where + " failed authentication (altered, reordered or from another file)");
}

}  // namespace

Result<Report> UnsealWithKey(int in_fd, const Header& header, const SecretBytes& dek, const ChunkSink& sink,
                             const Progress& progress) {
  auto keys = internal::DeriveKeys(dek, header);
  if (!keys) return std::unexpected(keys.error());
  if (auto ok = internal::VerifyHeader(header, *keys); !ok) return std::unexpected(ok.error());
  Report report{header.key, header.kek_version, header.dataset, header.job, header.chunk_bytes,
                0, header.header_bytes, 0, "", {}, 0};
  std::uint64_t total = 0;
  std::size_t aligned_final = 0;
  if (const std::uint64_t size = TotalOf(in_fd); size > header.header_bytes) {
    const std::uint64_t record = std::uint64_t{header.chunk_bytes} + kTagBytes;
    const std::uint64_t body = size - header.header_bytes;
    total = body - (body + record - 1) / record * kTagBytes;
    aligned_final = static_cast<std::size_t>(body % record);
  }
  Direction dir;
  dir.record = header.chunk_bytes + kTagBytes;
  dir.slot = dir.record;
  dir.separate_out = true;
  dir.make_aead = [&]() -> Result<ChunkAead> { return ChunkAead(keys->payload, false); };
  dir.transform = [&](ChunkAead& aead, Batch& b, std::size_t i, bool last) {
    return OpenChunk(aead, b, i, last, dir.slot, header.chunk_bytes, aligned_final);
  };
  dir.write = [&](std::span<const std::uint8_t> plain) -> Status {
    report.plaintext_bytes += plain.size();
    report.sealed_bytes += plain.size() + kTagBytes;
    ++report.chunks;
    if (auto ok = sink(plain); !ok) return ok;
    if (progress) progress(report.plaintext_bytes, total);
    return {};
  };
  RecordReader reader(in_fd, std::uint64_t{header.header_bytes}, dir.record);
  if (auto ok = LaneEngine(reader, dir).Run(); !ok) return std::unexpected(ok.error());
  return report;
}

}  // namespace cordon::sealed
