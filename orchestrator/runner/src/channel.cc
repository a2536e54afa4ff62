#include "channel.h"

#include <openssl/crypto.h>
#include <sys/socket.h>

#include "cordon/file_io.h"

namespace cordon::runner::internal {

std::string EncodeMessage(Msg type, std::string_view payload) {
  std::string message(1, static_cast<char>(type));
  message.append(payload.substr(0, kMaxMessageBytes - 1));
  return message;
}

std::optional<Message> DecodeMessage(std::string_view datagram) {
  if (datagram.empty()) return std::nullopt;
  return Message{datagram[0], datagram.substr(1)};
}

Result<std::string> EncodeWrapRequest(const kms::WrapContext& context, const SecretBytes& dek) {
  if (dek.size() != kms::kDekBytes || context.dataset.size() > 255 || context.job.size() > 255) {
    return Fail(Errc::kInternal, "unexpected wrap request");
  }
  std::string request;
  request += static_cast<char>(context.dataset.size());
  request += context.dataset;
  request += static_cast<char>(context.job.size());
  request += context.job;
  request.append(reinterpret_cast<const char*>(dek.data()), dek.size());
  return request;
}

Result<WrapRequest> DecodeWrapRequest(std::string_view payload) {
  const std::size_t size = payload.size();
  const std::size_t dataset_len = size > 0 ? static_cast<std::uint8_t>(payload[0]) : 0;
  const std::size_t job_at = 1 + dataset_len;
  const std::size_t job_len = size > job_at ? static_cast<std::uint8_t>(payload[job_at]) : 0;
  const std::size_t dek_at = job_at + 1 + job_len;
  if (size != dek_at + kms::kDekBytes) return Fail(Errc::kInvalidData, "malformed request");
  return WrapRequest{{std::string(payload.substr(1, dataset_len)), std::string(payload.substr(job_at + 1, job_len))},
                     SecretBytes::From({reinterpret_cast<const std::uint8_t*>(payload.data()) + dek_at, kms::kDekBytes})};
}

std::string EncodeWrapResponse(const kms::WrappedKey& wrapped) {
  std::string payload;
  for (int shift = 24; shift >= 0; shift -= 8) payload += static_cast<char>((wrapped.version >> shift) & 0xff);
  payload.append(wrapped.blob.begin(), wrapped.blob.end());
  return payload;
}

Result<kms::WrappedKey> DecodeWrapReply(std::string_view datagram) {
  const auto message = DecodeMessage(datagram);
  if (message && message->type == static_cast<char>(Msg::kWrapError)) {
    return Fail(Errc::kKmsUnavailable, "wrapping an output key failed: " + std::string(message->payload));
  }
  if (!message || message->type != static_cast<char>(Msg::kWrapResponse) || message->payload.size() < 5) {
    return Fail(Errc::kInternal, "malformed wrap response");
  }
  kms::WrappedKey wrapped;
  for (std::size_t i = 0; i < 4; ++i) wrapped.version = (wrapped.version << 8) | static_cast<std::uint8_t>(message->payload[i]);
  wrapped.blob.assign(message->payload.begin() + 4, message->payload.end());
  return wrapped;
}

Result<Received> ReceiveMessage(int fd, bool wait) {
  Received got;
  got.datagram.assign(kMaxMessageBytes, '\0');
  iovec iov{got.datagram.data(), got.datagram.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  // MSG_TRUNC: the return value is the datagram's real size even when it was cut.
  const ssize_t n = RetryEintr([&] { return ::recvmsg(fd, &msg, MSG_TRUNC | MSG_CMSG_CLOEXEC | (wait ? 0 : MSG_DONTWAIT)); });
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Received{};
  if (n < 0) return FailErrno("receive on the control socket");
  got.bytes = static_cast<std::size_t>(n);
  if (n == 0) {
    got.status = Received::Status::kClosed;
    got.datagram.clear();
  } else if ((msg.msg_flags & MSG_TRUNC) != 0 || got.bytes > kMaxMessageBytes) {
    got.status = Received::Status::kTruncated;
  } else {
    got.status = Received::Status::kMessage;
    got.datagram.resize(got.bytes);
  }
  return got;
}

Status SendMessage(int fd, Msg type, std::string_view payload) {
  std::string message = EncodeMessage(type, payload);
  const ssize_t n = RetryEintr([&] { return ::send(fd, message.data(), message.size(), MSG_NOSIGNAL); });
  OPENSSL_cleanse(message.data(), message.size());
  return n == static_cast<ssize_t>(message.size()) ? Status{} : FailErrno("send to the runner");
}

}  // namespace cordon::runner::internal
