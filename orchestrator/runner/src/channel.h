// The control socket between the sandbox init and the runner: a SOCK_SEQPACKET
// pair, one datagram per message, its first byte the type (Msg), the rest the
// payload. The encoders and decoders of both directions live here, pure, so
// they are unit-tested and fuzzed without a sandbox; SendMessage is the one
// writer. Each side treats what it reads as hostile: a decoder refuses any
// frame that is not exactly what its encoder makes. Private to the runner.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "cordon/error.h"
#include "cordon/kms/kms.h"
#include "cordon/secret.h"

namespace cordon::runner::internal {

// A datagram is cut at this size (the receiver's buffer).
inline constexpr std::size_t kMaxMessageBytes = 64 * 1024;

// Message types on the control socket (first byte of each datagram).
enum class Msg : char {
  kWrapRequest = 'W',   // init -> runner: u8 len, dataset, u8 len, job, 32-byte DEK
  kWrapResponse = 'K',  // runner -> init: u32 BE version, wrapped blob
  kWrapError = 'E',     // runner -> init: message
  kOutput = 'O',        // init -> runner: JSON {file, size, sha256} (Cordon-made names only)
  kRefused = 'R',       // init -> runner: JSON {n, kind} (the first kMaxRefusalReports only)
  kIndex = 'X',         // init -> runner: JSON {file, size, sha256, entries} of the sealed index
  kStageSummary = 'S',  // init -> runner: JSON {sealed, bytes, refused: {kind: count}, deadline_hit}
  kMetrics = 'M',       // init -> runner: the trainer's last metrics line
  kInputError = 'I',    // init -> runner: JSON {input, code, message}
  kLiveOutput = 'L',    // init -> runner: JSON {file, size, sha256, version}: sealed while the trainer runs
  kExpectations = 'V',  // init -> runner: JSON {input, result: ExpectationResult} (aggregates only)
};

// One datagram: the type byte, then the payload, cut at kMaxMessageBytes.
[[nodiscard]] std::string EncodeMessage(Msg type, std::string_view payload);

// A received datagram split into its type byte (any value: the caller ignores
// types it does not know) and payload; nullopt for an empty one.
struct Message {
  char type = 0;
  std::string_view payload;
};
[[nodiscard]] std::optional<Message> DecodeMessage(std::string_view datagram);

// kWrapRequest's payload. Holds the data key in the clear: the caller cleanses
// it once sent. Refuses a DEK that is not kDekBytes and names over 255 bytes.
[[nodiscard]] Result<std::string> EncodeWrapRequest(const kms::WrapContext& context, const SecretBytes& dek);
struct WrapRequest {
  kms::WrapContext context;
  SecretBytes dek;
};
// Refuses (kInvalidData, "malformed request") a payload whose lengths do not
// add up to exactly one DEK after the names.
[[nodiscard]] Result<WrapRequest> DecodeWrapRequest(std::string_view payload);

// kWrapResponse's payload.
[[nodiscard]] std::string EncodeWrapResponse(const kms::WrappedKey& wrapped);
// The runner's answer to a wrap request, a whole datagram: kWrapResponse (a
// version and a non-empty blob) or kWrapError (kKmsUnavailable with the
// runner's message); anything else is kInternal "malformed wrap response".
[[nodiscard]] Result<kms::WrappedKey> DecodeWrapReply(std::string_view datagram);

// Sends one datagram (EncodeMessage) and cleanses the copy it made.
[[nodiscard]] Status SendMessage(int fd, Msg type, std::string_view payload);

// One datagram read from `fd`. The kernel cuts a datagram longer than the buffer
// (kMaxMessageBytes) and drops the rest: such a one is kTruncated, never taken for a
// whole message (EncodeMessage never makes one, so it is a bug or a hostile sender). The
// caller cleanses `datagram` when it may hold key material (a wrap request).
struct Received {
  enum class Status { kMessage, kTruncated, kNothing, kClosed };
  Status status = Status::kNothing;
  std::string datagram;   // kMessage: all of it; kTruncated: its first kMaxMessageBytes
  std::size_t bytes = 0;  // the datagram's real size
};
// `wait`: block until a datagram or the end; else kNothing when none is waiting. A
// zero-length read is kClosed. A failing recvmsg is an error naming errno.
[[nodiscard]] Result<Received> ReceiveMessage(int fd, bool wait);

}  // namespace cordon::runner::internal
