#include "cordon/daemon/protocol.h"

#include <algorithm>
#include <array>
#include <utility>

namespace cordon::protocol {
namespace {

using nlohmann::json;

constexpr std::array<std::pair<Op, const char*>, 8> kOps{{
    {Op::kPing, "ping"}, {Op::kSubmit, "submit"}, {Op::kStatus, "status"}, {Op::kWait, "wait"},
    {Op::kCancel, "cancel"}, {Op::kLogs, "logs"}, {Op::kAdmin, "admin"}, {Op::kHalt, "halt"},
}};

constexpr std::array<std::pair<ReplyCode, const char*>, 11> kCodes{{
    {ReplyCode::kOk, "ok"},
    {ReplyCode::kInvalid, "invalid"},
    {ReplyCode::kInvalidSpec, "invalid_spec"},
    {ReplyCode::kDenied, "denied"},
    {ReplyCode::kNotFound, "not_found"},
    {ReplyCode::kBusy, "busy"},
    {ReplyCode::kTimeout, "timeout"},
    {ReplyCode::kStopping, "stopping"},
    {ReplyCode::kAuditUnavailable, "audit_unavailable"},
    {ReplyCode::kInputRejected, "input_rejected"},
    {ReplyCode::kError, "error"},
}};

// Members that would name who is asking: identity comes from the socket.
constexpr std::array<std::string_view, 10> kIdentity{"uid", "gid", "pid", "user", "submitter",
                                                     "caller", "identity", "actor", "as", "admin"};

Error Invalid(std::string message) { return Error{Errc::kInvalidArgument, std::move(message)}; }

// Copies a member that must be a string; absent is fine (empty).
Status ReadString(const json& object, const char* key, std::size_t max, std::string& out) {
  const auto it = object.find(key);
  if (it == object.end()) return {};
  if (!it->is_string()) return std::unexpected(Invalid(std::string("\"") + key + "\" must be a string"));
  const auto& s = it->get_ref<const std::string&>();
  if (s.size() > max) return std::unexpected(Invalid(std::string("\"") + key + "\" is too long"));
  out = s;
  return {};
}

Status ReadArgv(const json& j, Request& r) {
  const auto it = j.find("argv");
  if (it == j.end()) {
    return r.op == Op::kAdmin ? Status(std::unexpected(Invalid("admin needs \"argv\""))) : Status{};
  }
  if (r.op != Op::kAdmin) return std::unexpected(Invalid("only admin takes \"argv\""));
  if (!it->is_array() || it->empty() || it->size() > kMaxAdminArgs) {
    return std::unexpected(Invalid("\"argv\" must be a list of 1 to 32 strings"));
  }
  for (const json& arg : *it) {
    if (!arg.is_string() || arg.get_ref<const std::string&>().size() > kMaxAdminArgBytes) {
      return std::unexpected(Invalid("\"argv\" must be a list of strings of at most 4096 bytes"));
    }
    r.argv.push_back(arg.get<std::string>());
  }
  return {};
}

}  // namespace

std::string AdminCommandRefusal(const std::vector<std::string>& argv) {
  static constexpr std::array<std::string_view, 8> kCommands{"datasets", "quarantine", "release", "restore",
                                                             "halt",     "incident",   "rewrap",  "keys"};
  if (argv.empty()) return "no command";
  if (std::find(kCommands.begin(), kCommands.end(), argv[0]) == kCommands.end()) {
    return "'" + argv[0] + "' is not a command an admin runs through cordond (datasets, quarantine, release, "
           "restore, halt, incident, rewrap, keys)";
  }
  if (argv[0] == "keys" && (argv.size() < 2 || (argv[1] != "rotate" && argv[1] != "disable" && argv[1] != "list"))) {
    return "keys: only rotate, disable and list run through cordond";
  }
  if (argv[0] == "rewrap" && std::find(argv.begin(), argv.end(), "--all") == argv.end()) {
    return "rewrap: only rewrap --all runs through cordond";
  }
  for (const std::string& arg : argv) {
    if (arg == "--" || arg.starts_with("--config") || arg.starts_with("--caller-uid") || arg.find('\0') != std::string::npos) {
      return "argument '" + arg.substr(0, 64) + "' is not allowed through cordond";
    }
  }
  return "";
}

namespace {

// The wire names of an enum, both ways, from one table.
template <typename E, std::size_t N>
const char* NameIn(const std::array<std::pair<E, const char*>, N>& table, E value, const char* unknown) {
  for (const auto& [v, name] : table) {
    if (v == value) return name;
  }
  return unknown;
}

template <typename E, std::size_t N>
std::optional<E> ValueIn(const std::array<std::pair<E, const char*>, N>& table, std::string_view name) {
  for (const auto& [v, text] : table) {
    if (name == text) return v;
  }
  return std::nullopt;
}

}  // namespace

const char* OpName(Op op) { return NameIn(kOps, op, "?"); }
std::optional<Op> ParseOp(std::string_view name) { return ValueIn(kOps, name); }
const char* ReplyCodeName(ReplyCode code) { return NameIn(kCodes, code, "error"); }
std::optional<ReplyCode> ParseReplyCode(std::string_view name) { return ValueIn(kCodes, name); }

bool IsJobId(std::string_view id) {
  if (id.empty() || id.size() > kMaxJobIdBytes || id.front() == '.') return false;
  for (const char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Result<Request> ParseRequest(std::string_view line) {
  if (line.size() > kMaxRequestBytes) return std::unexpected(Invalid("request line over 1 MiB"));
  // nlohmann's lexer takes a NUL byte for the end of input: what follows one
  // would be silently ignored, so a line holding one is refused outright.
  if (line.find('\0') != std::string_view::npos) return std::unexpected(Invalid("the request holds a NUL byte"));
  // parse(..., allow_exceptions=false) reports every syntax error, invalid
  // UTF-8 and excessive depth as a discarded value instead of throwing.
  const json j = json::parse(line.begin(), line.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::unexpected(Invalid("the request is not one JSON object"));
  for (const auto& [key, value] : j.items()) {
    for (const auto id : kIdentity) {
      if (key == id) {
        return std::unexpected(Error{Errc::kPermissionDenied,
                                     "forged identity field \"" + key +
                                         "\": identity comes from the socket (SO_PEERCRED), never from a request"});
      }
    }
    if (key != "op" && key != "spec" && key != "spec_path" && key != "job" && key != "argv") {
      return std::unexpected(Invalid("unknown request member (allowed: op, spec, spec_path, job, argv)"));
    }
  }
  Request r;
  std::string op;
  if (auto s = ReadString(j, "op", 16, op); !s) return std::unexpected(s.error());
  const auto parsed = ParseOp(op);
  if (!parsed) return std::unexpected(Invalid("\"op\" must be one of ping, submit, status, wait, cancel, logs, admin, halt"));
  r.op = *parsed;
  for (auto [key, max, out] : {std::tuple{"spec", kMaxRequestBytes, &r.spec},
                               std::tuple{"spec_path", std::size_t{4096}, &r.spec_path},
                               std::tuple{"job", kMaxJobIdBytes, &r.job}}) {
    if (auto s = ReadString(j, key, max, *out); !s) return std::unexpected(s.error());
  }
  if (!r.job.empty() && !IsJobId(r.job)) return std::unexpected(Invalid("\"job\" is not a job id"));
  const bool needs_job = r.op == Op::kWait || r.op == Op::kCancel || r.op == Op::kLogs || r.op == Op::kHalt;
  if (needs_job && r.job.empty()) return std::unexpected(Invalid(std::string(OpName(r.op)) + " needs \"job\""));
  if (r.op == Op::kSubmit && !j.contains("spec")) return std::unexpected(Invalid("submit needs \"spec\" (the YAML text)"));
  if (r.op != Op::kSubmit && (j.contains("spec") || j.contains("spec_path"))) {
    return std::unexpected(Invalid("only submit takes \"spec\""));
  }
  if (auto s = ReadArgv(j, r); !s) return std::unexpected(s.error());
  return r;
}

std::string EncodeRequest(const Request& request) {
  json j = {{"op", OpName(request.op)}};
  if (request.op == Op::kSubmit) {
    j["spec"] = request.spec;
    if (!request.spec_path.empty()) j["spec_path"] = request.spec_path;
  }
  if (!request.job.empty()) j["job"] = request.job;
  if (request.op == Op::kAdmin) j["argv"] = request.argv;
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string EncodeReply(const json& reply) {
  return reply.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

json ErrorReply(ReplyCode code, std::string_view message) {
  return json{{"ok", false}, {"code", ReplyCodeName(code)}, {"error", std::string(message)}};
}

Result<Reply> ParseReply(std::string_view line) {
  const json j = json::parse(line.begin(), line.end(), nullptr, false);
  const auto bad = [] { return std::unexpected(Error{Errc::kInvalidData, "cordond sent a malformed reply"}); };
  if (j.is_discarded() || !j.is_object()) return bad();
  const auto ok = j.find("ok");
  if (ok == j.end() || !ok->is_boolean()) return bad();
  Reply r;
  r.ok = ok->get<bool>();
  r.code = ReplyCode::kOk;
  if (!r.ok) {
    const auto code = j.find("code");
    const auto error = j.find("error");
    if (code == j.end() || !code->is_string() || error == j.end() || !error->is_string()) return bad();
    r.code = ParseReplyCode(code->get_ref<const std::string&>()).value_or(ReplyCode::kError);
    r.error = error->get<std::string>();
  }
  r.body = j;
  return r;
}

}  // namespace cordon::protocol
