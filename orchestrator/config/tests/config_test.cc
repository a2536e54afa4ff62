#include "cordon/config/config.h"

#include <cstdlib>

#include <gtest/gtest.h>

namespace cordon::orchestrator {
namespace {

std::string Diagnostics(const ConfigParse& p) {
  std::string out;
  for (const auto& d : p.diagnostics) out += yaml::FormatDiagnostic("cordon.yaml", d) + "\n";
  return out;
}

TEST(Config, EmptyMapGivesDocumentedDefaults) {
  ConfigParse p = ParseConfig("{}\n");
  ASSERT_TRUE(p.config.has_value()) << Diagnostics(p);
  const Config& c = *p.config;
  EXPECT_EQ(c.state_dir, "/var/lib/cordon");
  EXPECT_EQ(c.spool_dir, "/var/spool/cordon");
  EXPECT_EQ(c.audit_dir, "/var/log/cordon/audit");
  EXPECT_EQ(c.kms.local_keyring, "/etc/cordon/keys");
  EXPECT_FALSE(c.kms.pkcs11.has_value());
  EXPECT_EQ(c.sandbox.uid, 65534u);
  EXPECT_EQ(c.sandbox.gid, 65534u);
  EXPECT_FALSE(c.sandbox.allow_swap);
  EXPECT_EQ(c.daemon.max_concurrent_jobs, 2u);
  EXPECT_EQ(c.daemon.socket, "/run/cordon/cordon.sock");
  EXPECT_EQ(c.daemon.metrics_file, "");
}

TEST(Config, MetricsFileIsAnAbsolutePromFile) {
  ConfigParse ok = ParseConfig("daemon: {metrics_file: /var/lib/prometheus/node-exporter/cordon.prom}\n");
  ASSERT_TRUE(ok.config.has_value()) << Diagnostics(ok);
  EXPECT_EQ(ok.config->daemon.metrics_file, "/var/lib/prometheus/node-exporter/cordon.prom");
  for (const char* bad : {"daemon: {metrics_file: cordon.prom}\n", "daemon: {metrics_file: /tmp/cordon.txt}\n"}) {
    ConfigParse p = ParseConfig(bad);
    EXPECT_FALSE(p.config.has_value()) << bad;
    EXPECT_NE(Diagnostics(p).find("daemon.metrics_file"), std::string::npos) << Diagnostics(p);
  }
}

TEST(Config, RenderedConfigParsesBackIdentically) {
  Config c = ConfigUnder("/opt/cordon test");
  c.kms.pkcs11 = Pkcs11Config{"/usr/lib/softhsm/libsofthsm2.so", "cordon", "/opt/cordon test/hsm.pin"};
  c.sandbox.uid = 64000;
  c.daemon.max_concurrent_jobs = 4;
  EXPECT_TRUE(ParseConfig(RenderConfig(c)).config.has_value());  // metrics_file commented out
  c.daemon.metrics_file = "/opt/cordon test/cordon.prom";
  ConfigParse p = ParseConfig(RenderConfig(c));
  ASSERT_TRUE(p.config.has_value()) << Diagnostics(p) << RenderConfig(c);
  EXPECT_EQ(p.config->state_dir, "/opt/cordon test/state");
  EXPECT_EQ(p.config->kms.pkcs11->token_label, "cordon");
  EXPECT_EQ(p.config->sandbox.uid, 64000u);
  EXPECT_EQ(p.config->daemon.max_concurrent_jobs, 4u);
  EXPECT_EQ(p.config->daemon.socket, "/opt/cordon test/run/cordon.sock");
  EXPECT_EQ(p.config->daemon.metrics_file, "/opt/cordon test/cordon.prom");
}

struct BadConfig {
  const char* text;
  int line;
  int column;
  const char* message;
};

TEST(Config, StrictValidation) {
  const BadConfig cases[] = {
      {"state_dir: var/lib\n", 1, 12, "state_dir: path 'var/lib' is relative"},
      {"spool_dir: /proc/x\n", 1, 12, "is inside /proc"},
      {"logging: {}\n", 1, 1, "unknown field 'logging' in the document"},
      {"kms: {local: {keyring: /k, extra: 1}}\n", 1, 28, "unknown field 'extra' in kms.local"},
      {"kms: {pkcs11: {module: /m.so, pin_file: /p}}\n", 1, 15, "missing required field 'kms.pkcs11.token_label'"},
      {"kms: {pkcs11: {module: /m.so, token_label: '', pin_file: /p}}\n", 1, 44, "token_label: must be 1-32 bytes"},
      {"sandbox: {uid: 0}\n", 1, 16, "sandbox.uid: 0 (root) is not allowed"},
      {"sandbox: {gid: -5}\n", 1, 16, "sandbox.gid: -5 is out of range"},
      {"sandbox: {uid: '1000'}\n", 1, 16, "sandbox.uid: expected a decimal integer"},
      {"sandbox: {allow_swap: yes}\n", 1, 23, "sandbox.allow_swap: expected true or false"},
      {"daemon: {max_concurrent_jobs: 0}\n", 1, 31, "daemon.max_concurrent_jobs: 0 is out of range: allowed 1..256"},
      {"daemon: {socket: relative.sock}\n", 1, 18, "daemon.socket: path 'relative.sock' is relative"},
      {"state_dir: /a\nstate_dir: /b\n", 2, 1, "duplicate key 'state_dir'"},
      {"- a\n", 1, 1, "expected a map, got a list"},
  };
  for (const BadConfig& c : cases) {
    ConfigParse p = ParseConfig(c.text);
    EXPECT_FALSE(p.config.has_value()) << c.text;
    bool found = false;
    for (const auto& d : p.diagnostics) {
      found = found || (d.mark.line == c.line && d.mark.column == c.column &&
                        d.message.find(c.message) != std::string::npos);
    }
    EXPECT_TRUE(found) << c.text << "want " << c.line << ":" << c.column << " " << c.message
                       << "\ngot:\n" << Diagnostics(p);
  }
  ConfigParse long_socket = ParseConfig("daemon: {socket: /" + std::string(120, 's') + "}\n");
  EXPECT_FALSE(long_socket.config.has_value());
}

TEST(Config, ResolvePathPrecedence) {
  ::unsetenv("CORDON_CONFIG");
  EXPECT_EQ(ResolveConfigPath(std::nullopt), "/etc/cordon/cordon.yaml");
  ::setenv("CORDON_CONFIG", "/env/cordon.yaml", 1);
  EXPECT_EQ(ResolveConfigPath(std::nullopt), "/env/cordon.yaml");
  EXPECT_EQ(ResolveConfigPath(std::string("/flag.yaml")), "/flag.yaml");
  ::setenv("CORDON_CONFIG", "", 1);
  EXPECT_EQ(ResolveConfigPath(std::nullopt), "/etc/cordon/cordon.yaml");
  ::unsetenv("CORDON_CONFIG");
}

TEST(Config, LoadReportsFileLineColumn) {
  auto missing = LoadConfig("/nonexistent/cordon.yaml");
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find("cordon init DIR"), std::string::npos);
}

}  // namespace
}  // namespace cordon::orchestrator
