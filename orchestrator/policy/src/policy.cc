#include "cordon/policy/policy.h"

#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <filesystem>

#include "cordon/file_io.h"
#include "cordon/paths.h"
#include "cordon/units.h"

namespace cordon::policy {
namespace {

using yaml::Diagnostics;
using yaml::MapReader;
using yaml::Node;

constexpr std::size_t kMaxItems = 1024;

template <class Id, class Lookup>
std::vector<Id> ReadIds(Diagnostics& d, const Node& n, const std::string& where, Lookup lookup) {
  std::vector<Id> out;
  if (n.kind != Node::Kind::kSequence) {
    d.Add(n, where + ": expected a list of ids or names, got " + std::string(yaml::DescribeNode(n)));
    return out;
  }
  for (std::size_t i = 0; i < n.items.size() && i < kMaxItems; ++i) {
    const Node& item = n.items[i];
    const std::string at = where + "[" + std::to_string(i) + "]";
    if (item.kind == Node::Kind::kScalar && yaml::Resolve(item) == yaml::ScalarType::kInt) {
      if (auto v = yaml::ReadInt(d, item, at, 0, 0xfffffffe)) out.push_back(static_cast<Id>(*v));
    } else if (auto name = yaml::ReadString(d, item, at)) {
      auto id = lookup(*name);
      if (!id) d.Add(item, at + ": no such account or group \"" + *name + "\" on this host");
      else out.push_back(*id);
    }
  }
  return out;
}

std::optional<uid_t> LookupUser(const std::string& name) {
  const passwd* pw = ::getpwnam(name.c_str());
  return pw ? std::optional<uid_t>(pw->pw_uid) : std::nullopt;
}
std::optional<gid_t> LookupGroup(const std::string& name) {
  const group* gr = ::getgrnam(name.c_str());
  return gr ? std::optional<gid_t>(gr->gr_gid) : std::nullopt;
}

Principals ReadPrincipals(Diagnostics& d, MapReader& m) {
  Principals p;
  if (const Node* n = m.Optional("uids")) p.uids = ReadIds<uid_t>(d, *n, m.Path("uids"), LookupUser);
  if (const Node* n = m.Optional("groups")) p.gids = ReadIds<gid_t>(d, *n, m.Path("groups"), LookupGroup);
  return p;
}

std::vector<std::string> ReadPatterns(Diagnostics& d, MapReader& m, std::string_view key) {
  const Node* n = m.Optional(key);
  if (!n) return {};
  auto list = yaml::ReadStringList(d, *n, m.Path(key), kMaxItems);
  return list ? *list : std::vector<std::string>{};
}

void ReadCeilings(Diagnostics& d, MapReader& m, Grant& g) {
  if (const Node* n = m.Optional("max_memory")) {
    if (auto s = yaml::ReadString(d, *n, m.Path("max_memory"))) {
      if (auto v = ParseSize(*s)) g.max_memory = *v;
      else d.Add(*n, m.Path("max_memory") + ": " + v.error().message);
    }
  }
  if (const Node* n = m.Optional("max_timeout")) {
    if (auto s = yaml::ReadString(d, *n, m.Path("max_timeout"))) {
      if (auto v = ParseDuration(*s)) g.max_timeout = *v;
      else d.Add(*n, m.Path("max_timeout") + ": " + v.error().message);
    }
  }
  if (const Node* n = m.Optional("max_cpus")) {
    if (auto v = yaml::ReadNumber(d, *n, m.Path("max_cpus"))) {
      if (*v <= 0 || *v > 1024) d.Add(*n, m.Path("max_cpus") + ": must be in (0, 1024]");
      else g.max_cpus = *v;
    }
  }
  if (const Node* n = m.Optional("max_gpus")) {
    if (auto v = yaml::ReadInt(d, *n, m.Path("max_gpus"), 0, 64)) g.max_gpus = static_cast<std::uint32_t>(*v);
  }
  if (const Node* n = m.Optional("max_queued")) {
    if (auto v = yaml::ReadInt(d, *n, m.Path("max_queued"), 1, 100000)) g.max_queued = static_cast<std::uint32_t>(*v);
  }
}

// outputs:/images: entries are "*" or normalised absolute directories.
std::vector<std::string> ReadPlaces(Diagnostics& d, MapReader& m, std::string_view key) {
  std::vector<std::string> places = ReadPatterns(d, m, key);
  const Node* n = m.Optional(key);
  for (std::size_t i = 0; n && i < places.size(); ++i) {
    if (places[i] == "*") continue;
    if (auto ok = CheckNormalizedAbsolutePath(places[i]); !ok) {
      d.Add(n->kind == Node::Kind::kSequence && i < n->items.size() ? n->items[i] : *n,
            m.Path(key) + "[" + std::to_string(i) + "]: " + ok.error().message);
    }
  }
  return places;
}

Grant ReadGrant(Diagnostics& d, const Node& n, std::string where) {
  MapReader m(d, n, std::move(where));
  Grant g;
  g.who = ReadPrincipals(d, m);
  if (g.who.uids.empty() && g.who.gids.empty() && m.node().kind == Node::Kind::kMap) {
    d.Add(n, m.Path("uids") + ": an entry must name at least one uid or group");
  }
  g.datasets = ReadPatterns(d, m, "datasets");
  g.keys = ReadPatterns(d, m, "keys");
  g.outputs = ReadPlaces(d, m, "outputs");
  g.images = ReadPlaces(d, m, "images");
  ReadCeilings(d, m, g);
  m.Finish();
  return g;
}

bool Named(const Principals& p, const Caller& c) {
  if (std::find(p.uids.begin(), p.uids.end(), c.uid) != p.uids.end()) return true;
  if (p.gids.empty()) return false;
  std::vector<gid_t> groups{c.gid};
  if (const passwd* pw = ::getpwuid(c.uid)) {
    int count = 64;
    std::vector<gid_t> list(static_cast<std::size_t>(count));
    if (::getgrouplist(pw->pw_name, pw->pw_gid, list.data(), &count) >= 0) {
      list.resize(static_cast<std::size_t>(count));
      groups.insert(groups.end(), list.begin(), list.end());
    }
  }
  for (gid_t g : groups) {
    if (std::find(p.gids.begin(), p.gids.end(), g) != p.gids.end()) return true;
  }
  return false;
}

bool Allowed(const std::vector<std::string>& patterns, std::string_view a, std::string_view b = {}) {
  for (const auto& p : patterns) {
    if (p == "*" || p == a || (!b.empty() && p == b)) return true;
  }
  return false;
}

bool PlaceAllowed(const std::vector<std::string>& places, std::string_view path) {
  for (const auto& p : places) {
    if (p == "*" || PathIsWithin(path, p)) return true;
  }
  return false;
}

std::string List(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out + "]";
}

}  // namespace

PolicyParse ParsePolicy(std::string_view text) {
  PolicyParse out;
  yaml::Document doc = yaml::Load(text);
  if (!doc.root || !doc.diagnostics.empty()) {
    out.diagnostics = std::move(doc.diagnostics);
    return out;
  }
  Diagnostics d;
  Policy p;
  MapReader root(d, *doc.root, "");
  if (const Node* n = root.Optional("admins")) {
    MapReader m(d, *n, "admins");
    p.admins = ReadPrincipals(d, m);
    m.Finish();
  }
  if (const Node* n = root.Optional("users")) {
    if (n->kind != Node::Kind::kSequence) {
      d.Add(*n, "users: expected a list, got " + std::string(yaml::DescribeNode(*n)));
    } else {
      for (std::size_t i = 0; i < n->items.size() && i < kMaxItems; ++i) {
        p.grants.push_back(ReadGrant(d, n->items[i], "users[" + std::to_string(i) + "]"));
      }
    }
  }
  root.Finish();
  if (d.empty()) out.policy = std::move(p);
  out.diagnostics = d.Take();
  return out;
}

Result<Policy> LoadPolicy(const std::string& path) {
  auto text = ReadFileLimited(path, 1 << 20);
  if (!text) return std::unexpected(WithContext(text.error(), "policy"));
  PolicyParse parsed = ParsePolicy(*text);
  if (!parsed.policy) return Fail(Errc::kInvalidArgument, yaml::FormatDiagnostics(path, parsed.diagnostics));
  parsed.policy->path = path;
  return std::move(*parsed.policy);
}

std::string PolicyPathFor(const std::string& config_path) {
  std::error_code ec;  // beside the real file when the config is a symbolic link (scripts/install)
  std::filesystem::path real = std::filesystem::weakly_canonical(config_path, ec);
  if (ec) real = config_path;
  return (real.parent_path() / "policy.yaml").string();
}

std::string RenderInitialPolicy(uid_t uid) {
  const std::string id = std::to_string(uid);
  return "# cordond access policy (docs/DAEMON.md). Deny by default: a uid or group named by\n"
         "# no entry below may not submit. Reload with SIGHUP (systemctl reload cordond).\n"
         "admins:            # may see, cancel and read the logs of every job\n"
         "  uids: [" + id + "]\n"
         "  groups: []\n"
         "users:\n"
         "  - uids: [" + id + "]        # numeric uids or user names\n"
         "    groups: []          # numeric gids or group names\n"
         "    datasets: [\"*\"]     # dataset names or absolute sealed paths; \"*\" = any\n"
         "    keys: [\"*\"]         # kms:// key refs for inputs and outputs; \"*\" = any\n"
         "    outputs: [\"*\"]      # output.path must be one of these directories or beneath one\n"
         "    images: [\"*\"]       # trainer.image likewise\n"
         "    max_memory: 64Gi\n"
         "    max_cpus: 64\n"
         "    max_timeout: 7d\n"
         "    max_queued: 1000\n"
         "    max_gpus: 0         # resources.gpus ceiling (NVIDIA); 0 = none\n"
         "  # Grant another user, e.g. alice may train on `customers` only:\n"
         "  # - uids: [alice]\n"
         "  #   datasets: [customers]\n"
         "  #   keys: [kms://local/datasets, kms://local/models]\n"
         "  #   outputs: [/srv/cordon/outputs/alice]\n"
         "  #   images: [/srv/cordon/images]\n"
         "  #   max_memory: 8Gi\n";
}

bool IsAdmin(const Policy& policy, const Caller& caller) { return Named(policy.admins, caller); }

const Grant* GrantFor(const Policy& policy, const Caller& caller) {
  for (const Grant& g : policy.grants) {
    if (Named(g.who, caller)) return &g;
  }
  return nullptr;
}

Status CheckJob(const Grant& grant, const specs::TrainingJob& job, const std::vector<InputFacts>& inputs) {
  for (const InputFacts& in : inputs) {
    if (!Allowed(grant.datasets, in.dataset, in.path)) {
      return Fail(Errc::kPermissionDenied, "dataset \"" + in.dataset + "\" (" + in.path +
                                               ") is not granted: not in the grant's datasets " + List(grant.datasets));
    }
    if (!Allowed(grant.keys, in.key)) {
      return Fail(Errc::kPermissionDenied,
                  "key " + in.key + " of input " + in.path + " is not granted: not in the grant's keys " + List(grant.keys));
    }
  }
  const std::string out_key = job.output.key.ToString();
  if (!Allowed(grant.keys, out_key)) {
    return Fail(Errc::kPermissionDenied, "output key " + out_key + " is not granted: not in the grant's keys " + List(grant.keys));
  }
  if (!PlaceAllowed(grant.outputs, job.output.path)) {
    return Fail(Errc::kPermissionDenied, "output.path " + job.output.path +
                                             " is not granted: not within the grant's outputs " + List(grant.outputs));
  }
  if (!PlaceAllowed(grant.images, job.trainer.image)) {  // an OCI image: the layout's directory
    return Fail(Errc::kPermissionDenied, "trainer.image " + job.trainer.image +
                                             " is not granted: not within the grant's images " + List(grant.images));
  }
  const auto& r = job.resources;
  // Both are RAM the job may pin (the scratch is a noswap tmpfs charged to the job's cgroup):
  // the ceiling holds their sum.
  if (grant.max_memory && r.memory_bytes + r.scratch_bytes > grant.max_memory) {
    return Fail(Errc::kPermissionDenied, "memory " + FormatSize(r.memory_bytes) + " + scratch " +
                                             FormatSize(r.scratch_bytes) + " exceeds the ceiling max_memory " +
                                             FormatSize(grant.max_memory));
  }
  if (grant.max_cpus > 0 && r.cpus > grant.max_cpus) {
    return Fail(Errc::kPermissionDenied, "cpus exceed the ceiling " + std::to_string(grant.max_cpus));
  }
  if (grant.max_timeout.count() && r.timeout > grant.max_timeout) {
    return Fail(Errc::kPermissionDenied, "timeout " + FormatDuration(r.timeout) + " exceeds the ceiling " +
                                             FormatDuration(grant.max_timeout));
  }
  if (r.gpus > grant.max_gpus) {
    return Fail(Errc::kPermissionDenied, "gpus " + std::to_string(r.gpus) + " exceeds the ceiling max_gpus " +
                                             std::to_string(grant.max_gpus));
  }
  return {};
}

}  // namespace cordon::policy
