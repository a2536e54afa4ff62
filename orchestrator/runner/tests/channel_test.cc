// The runner's control-socket codec (channel.h): what the sandbox init sends
// and what the runner answers, both directions, and hostile frames refused.
#include "channel.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include "cordon/unique_fd.h"

namespace cordon::runner::internal {
namespace {

SecretBytes Dek(std::uint8_t fill) {
  SecretBytes dek(kms::kDekBytes);
  for (std::size_t i = 0; i < dek.size(); ++i) dek.data()[i] = static_cast<std::uint8_t>(fill + i);
  return dek;
}

std::string_view View(const SecretBytes& s) { return {reinterpret_cast<const char*>(s.data()), s.size()}; }

TEST(ChannelTest, MessagesCarryTheirTypeAndPayload) {
  const std::string frame = EncodeMessage(Msg::kOutput, R"({"file":"out-000001.sealed"})");
  EXPECT_EQ(frame, R"(O{"file":"out-000001.sealed"})");
  auto message = DecodeMessage(frame);
  ASSERT_TRUE(message);
  EXPECT_EQ(message->type, 'O');
  EXPECT_EQ(message->payload, R"({"file":"out-000001.sealed"})");
  EXPECT_FALSE(DecodeMessage(""));
  message = DecodeMessage("Z");  // an unknown type with nothing after it: the caller ignores it
  ASSERT_TRUE(message);
  EXPECT_EQ(message->type, 'Z');
  EXPECT_TRUE(message->payload.empty());
}

TEST(ChannelTest, AnOversizedPayloadIsCutToOneDatagram) {
  const std::string frame = EncodeMessage(Msg::kMetrics, std::string(kMaxMessageBytes * 2, 'x'));
  EXPECT_EQ(frame.size(), kMaxMessageBytes);
  EXPECT_EQ(frame[0], 'M');
}

TEST(ChannelTest, WrapRequestsRoundTrip) {
  const SecretBytes dek = Dek(7);
  for (const kms::WrapContext& context : {kms::WrapContext{"out-000001", "job-42"}, kms::WrapContext{"", ""},
                                          kms::WrapContext{std::string(255, 'd'), std::string(255, 'j')}}) {
    auto payload = EncodeWrapRequest(context, dek);
    ASSERT_TRUE(payload) << payload.error().message;
    auto request = DecodeWrapRequest(*payload);
    ASSERT_TRUE(request) << request.error().message;
    EXPECT_EQ(request->context.dataset, context.dataset);
    EXPECT_EQ(request->context.job, context.job);
    EXPECT_EQ(View(request->dek), View(dek));
  }
}

TEST(ChannelTest, WrapRequestsTheEncoderCannotMakeAreRefused) {
  EXPECT_FALSE(EncodeWrapRequest({std::string(256, 'd'), "job"}, Dek(1)));
  EXPECT_FALSE(EncodeWrapRequest({"out-000001", std::string(256, 'j')}, Dek(1)));
  EXPECT_FALSE(EncodeWrapRequest({"out-000001", "job"}, SecretBytes(16)));
}

TEST(ChannelTest, MalformedWrapRequestsAreRefused) {
  const std::string good = *EncodeWrapRequest({"out-000001", "job-42"}, Dek(3));
  // Truncated anywhere, or one byte too long: the lengths no longer add up.
  for (std::size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(DecodeWrapRequest(good.substr(0, n))) << "truncated to " << n;
  }
  EXPECT_FALSE(DecodeWrapRequest(good + "x"));
  // A length byte pointing past the end, and lengths that claim the DEK's bytes.
  std::string lying = good;
  lying[0] = static_cast<char>(0xff);
  EXPECT_FALSE(DecodeWrapRequest(lying));
  lying = good;
  lying[1 + 10] = static_cast<char>(6 + kms::kDekBytes);
  EXPECT_FALSE(DecodeWrapRequest(lying));
  auto refused = DecodeWrapRequest("");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "malformed request");
}

TEST(ChannelTest, WrapRepliesRoundTrip) {
  kms::WrappedKey wrapped;
  wrapped.version = 0x01020304;
  wrapped.blob = {0xde, 0xad, 0x00, 0xbe, 0xef};
  auto got = DecodeWrapReply(EncodeMessage(Msg::kWrapResponse, EncodeWrapResponse(wrapped)));
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->version, wrapped.version);
  EXPECT_EQ(got->blob, wrapped.blob);

  auto error = DecodeWrapReply(EncodeMessage(Msg::kWrapError, "the KMS is down"));
  ASSERT_FALSE(error);
  EXPECT_EQ(error.error().code, Errc::kKmsUnavailable);
  EXPECT_EQ(error.error().message, "wrapping an output key failed: the KMS is down");
}

TEST(ChannelTest, MalformedWrapRepliesAreRefused) {
  for (const std::string& frame : {std::string(), std::string("K"), std::string("K\x00\x00\x00\x01", 5),
                                  std::string("O{}"), std::string("W\x01", 2)}) {
    auto got = DecodeWrapReply(frame);
    ASSERT_FALSE(got) << "accepted a " << frame.size() << "-byte frame";
    EXPECT_EQ(got.error().code, Errc::kInternal);
    EXPECT_EQ(got.error().message, "malformed wrap response");
  }
}

TEST(ChannelTest, SendMessageIsOneDatagram) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd a(pair[0]), b(pair[1]);
  ASSERT_TRUE(SendMessage(a.get(), Msg::kStageSummary, R"({"sealed":1})"));
  ASSERT_TRUE(SendMessage(a.get(), Msg::kMetrics, std::string(kMaxMessageBytes + 10, 'm')));
  std::string buffer(kMaxMessageBytes + 100, '\0');
  ssize_t n = ::recv(b.get(), buffer.data(), buffer.size(), 0);
  EXPECT_EQ(std::string(buffer.data(), static_cast<std::size_t>(n)), R"(S{"sealed":1})");
  n = ::recv(b.get(), buffer.data(), buffer.size(), 0);
  EXPECT_EQ(n, static_cast<ssize_t>(kMaxMessageBytes));
  b.reset();
  EXPECT_FALSE(SendMessage(a.get(), Msg::kMetrics, "x"));  // the peer is gone: an error, no SIGPIPE
}

// A datagram over the limit is cut by the kernel; ReceiveMessage says so (with its real
// size) instead of handing over its first 64 KiB as if they were the message.
TEST(ChannelTest, AnOversizedDatagramIsReportedTruncatedNeverTakenWhole) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd a(pair[0]), b(pair[1]);
  auto none = ReceiveMessage(b.get(), false);
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_EQ(none->status, Received::Status::kNothing);
  const std::string oversized = "W" + std::string(kMaxMessageBytes, 'x');  // raw: EncodeMessage would cut it
  ASSERT_EQ(::send(a.get(), oversized.data(), oversized.size(), 0), static_cast<ssize_t>(oversized.size()));
  const std::string exact = EncodeMessage(Msg::kOutput, std::string(kMaxMessageBytes, 'o'));
  ASSERT_EQ(exact.size(), kMaxMessageBytes);
  ASSERT_TRUE(SendMessage(a.get(), Msg::kOutput, std::string(kMaxMessageBytes, 'o')));
  auto cut = ReceiveMessage(b.get(), false);
  ASSERT_TRUE(cut) << cut.error().message;
  EXPECT_EQ(cut->status, Received::Status::kTruncated);
  EXPECT_EQ(cut->bytes, kMaxMessageBytes + 1);
  EXPECT_EQ(cut->datagram[0], 'W') << "the type byte survives, so a wrap request can be answered";
  auto whole = ReceiveMessage(b.get(), true);  // the next datagram is intact: nothing was mixed in
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->status, Received::Status::kMessage);
  EXPECT_EQ(whole->datagram, exact);
  a.reset();
  auto closed = ReceiveMessage(b.get(), true);
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->status, Received::Status::kClosed);
}

}  // namespace
}  // namespace cordon::runner::internal
