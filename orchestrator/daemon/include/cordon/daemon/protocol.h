// cordond's control protocol (docs/DAEMON.md), shared by the daemon and the
// `cordon` client: one JSON object per line. A request is
//   {"op": "ping"|"submit"|"status"|"wait"|"cancel"|"logs", "spec": TEXT, "spec_path": PATH, "job": ID}
// or, for policy admins, {"op": "admin", "argv": [COMMAND, ARG...]} (an incident-response or
// dataset command that cordond runs as root on their behalf; AdminCommandAllowed says which),
// and, from root only, {"op": "halt", "job": ID} (`cordon halt`, which audits the step under
// its caller's identity first: cordond stops the job whatever its executor and records it halted).
// and a reply {"ok": true, ...} or {"ok": false, "code": CODE, "error": TEXT}.
//
// Security contract: ParseRequest is the only decoder of bytes a local user
// sends. It never throws, checks every member's type, refuses unknown members
// and any member that names an identity (identity comes from SO_PEERCRED
// only), and bounds every string. EncodeReply never throws either (invalid
// UTF-8 is replaced), so no request can raise an exception in the event loop.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cordon/error.h"

namespace cordon::protocol {

inline constexpr std::size_t kMaxRequestBytes = 1 << 20;  // one line, spec text included
inline constexpr std::size_t kMaxJobIdBytes = 128;

enum class Op { kPing, kSubmit, kStatus, kWait, kCancel, kLogs, kAdmin, kHalt };
[[nodiscard]] const char* OpName(Op op);
[[nodiscard]] std::optional<Op> ParseOp(std::string_view name);

enum class ReplyCode {
  kOk,
  kInvalid,           // the request is malformed
  kInvalidSpec,       // the spec does not validate
  kDenied,            // the access policy refuses it
  kNotFound,          // no such job of the caller's
  kBusy,              // a connection or wait limit of the caller is reached
  kTimeout,           // no request line in time
  kStopping,          // cordond is stopping
  kAuditUnavailable,  // the audit log cannot record the decision, so nothing was done
  kInputRejected,     // an input the spec names is quarantined (step 2, as `cordon run` refuses it)
  kError,             // anything else (the message says what)
};
[[nodiscard]] const char* ReplyCodeName(ReplyCode code);
[[nodiscard]] std::optional<ReplyCode> ParseReplyCode(std::string_view name);

struct Request {
  Op op = Op::kPing;
  std::string spec;       // submit: the YAML text
  std::string spec_path;  // submit: where the client read it (informational)
  std::string job;        // status (optional), wait, cancel, logs, halt
  std::vector<std::string> argv;  // admin: the command and its arguments
};

inline constexpr std::size_t kMaxAdminArgs = 32;
inline constexpr std::size_t kMaxAdminArgBytes = 4096;
// The commands an admin may run through cordond, and never an argument that
// would change whose config, identity or options parsing applies (--config,
// --caller-uid, a bare "--"). "" when allowed, else why not.
[[nodiscard]] std::string AdminCommandRefusal(const std::vector<std::string>& argv);

// Errc::kPermissionDenied for a member naming an identity; Errc::kInvalidArgument
// for everything else malformed. The message is safe to send back and to audit.
[[nodiscard]] Result<Request> ParseRequest(std::string_view line);
// The request line (with its newline), as the client sends it.
[[nodiscard]] std::string EncodeRequest(const Request& request);

// A job id as cordond makes them: 1..128 of [A-Za-z0-9._-], not starting with '.'.
[[nodiscard]] bool IsJobId(std::string_view id);

// One reply line (with its newline); invalid UTF-8 in any string is replaced.
[[nodiscard]] std::string EncodeReply(const nlohmann::json& reply);
[[nodiscard]] nlohmann::json ErrorReply(ReplyCode code, std::string_view message);
// What a client makes of a reply line: an object with a boolean "ok" and, when
// not ok, a known "code"; anything else is an error.
struct Reply {
  bool ok = false;
  ReplyCode code = ReplyCode::kError;
  std::string error;
  nlohmann::json body;  // the whole object
};
[[nodiscard]] Result<Reply> ParseReply(std::string_view line);

}  // namespace cordon::protocol
