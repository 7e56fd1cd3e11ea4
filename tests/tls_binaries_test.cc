// TLS end to end with the real binaries: cohort-coordinator with --tls-* flags, a plaintext
// --health-listen port and HTTPS metrics; cohort-agent processes with client certificates
// forming a pool; cohortctl with and without the right certificate. Certificates come from
// deploy/mint-certs.sh (tests/certs.h); everything listens on 127.0.0.1:0.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/coordinator_client.h"
#include "common/metrics_util.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/certs.h"
#include "tests/process.h"
#include "tests/raw_grpc.h"
#include "tests/scratch_dir.h"

namespace cohort {
namespace {

using ::cohort::testing::ChildProcess;
using ::cohort::testing::ScratchDir;
using ::cohort::testing::TestCerts;
using ::cohort::testing::raw_grpc::kServing;
using ::cohort::testing::raw_grpc::WaitForHealth;
using ::testing::HasSubstr;

std::string Bin(const std::string& name) { return std::string(COHORT_BIN_DIR) + "/" + name; }

std::string Quote(const std::string& s) { return "'" + s + "'"; }

struct CommandRun {
  int exit_status = -1;
  std::string out;
};

// Runs a shell command to its end (cohortctl, curl), with stdout and stderr together.
CommandRun Shell(const std::string& command) {
  CommandRun run;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return run;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) run.out.append(buffer, n);
  const int status = pclose(pipe);
  run.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

// The SHA-256 fingerprint of the certificate a TLS server on 127.0.0.1:`port` presents to a
// client with operator.crt ("" if the handshake failed).
std::string ServedFingerprint(int port) {
  TestCerts& certs = TestCerts::Get();
  CommandRun r = Shell(
      absl::StrCat("timeout 10 openssl s_client -connect 127.0.0.1:", port, " -CAfile ",
                   Quote(certs.Path("ca.crt")), " -cert ", Quote(certs.Path("operator.crt")),
                   " -key ", Quote(certs.Path("operator.key")),
                   " -alpn h2 </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"));
  return r.exit_status == 0 ? r.out : "";
}

std::string FileFingerprint(const std::string& path) {
  return Shell("openssl x509 -noout -fingerprint -sha256 -in " + Quote(path)).out;
}

class TlsBinariesTest : public ::testing::Test {
 protected:
  static TestCerts& certs() { return TestCerts::Get(); }

  void SetUp() override { ASSERT_TRUE(certs().ok()); }

  // The coordinator with TLS, a plaintext health port and a startup pool of two, plus `extra`.
  // Reads back the address and the health and metrics addresses it prints.
  void StartCoordinator(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {Bin("cohort-coordinator"),
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--health-listen",
                                     "127.0.0.1:0",
                                     "--world-size",
                                     "2",
                                     "--dp",
                                     "2",
                                     "--backend",
                                     "gloo",
                                     "--log-level",
                                     "info"};
    if (server_flags_.empty()) server_flags_ = certs().ServerFlags();
    argv.insert(argv.end(), server_flags_.begin(), server_flags_.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto child = ChildProcess::Spawn(argv, logs_ / "coordinator.log");
    ASSERT_TRUE(child.has_value());
    coordinator_ = std::make_unique<ChildProcess>(std::move(*child));
    // "cohort-coordinator V listening on A", ["metrics on URL"], "health on A".
    while (health_address_.empty()) {
      std::optional<std::string> line = coordinator_->ReadLine(absl::Seconds(30));
      ASSERT_TRUE(line.has_value()) << "the coordinator stopped early:\n"
                                    << ScratchDir::Read(logs_ / "coordinator.log");
      const std::string value = line->substr(line->rfind(' ') + 1);
      if (absl::StrContains(*line, "listening on")) address_ = value;
      if (absl::StartsWith(*line, "metrics on")) metrics_url_ = value;
      if (absl::StartsWith(*line, "health on")) health_address_ = value;
    }
    ASSERT_FALSE(address_.empty());
  }

  void TearDown() override {
    for (auto& agent : agents_) {
      agent->Signal(SIGTERM);
      agent->WaitExit(absl::Seconds(30));
    }
    if (coordinator_ != nullptr) {
      coordinator_->Signal(SIGTERM);
      coordinator_->WaitExit(absl::Seconds(30));
    }
  }

  void StartAgent(int r, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {
        Bin("cohort-agent"), "--coordinator", address_,     "--identity", absl::StrCat("agent-", r),
        "--rank-hint",       absl::StrCat(r), "--backends", "gloo",       "--host-address",
        "127.0.0.1",         "--log-level",   "info"};
    for (const std::string& f : certs().ClientFlags(absl::StrCat("agent-", r))) argv.push_back(f);
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto child = ChildProcess::Spawn(argv, logs_ / absl::StrCat("agent-", r, ".log"));
    ASSERT_TRUE(child.has_value());
    agents_.push_back(std::make_unique<ChildProcess>(std::move(*child)));
  }

  // cohortctl `args` --coordinator address_ with the flags `tls`.
  CommandRun Ctl(const std::vector<std::string>& args, const std::vector<std::string>& tls) {
    std::vector<std::string> quoted = {Quote(Bin("cohortctl"))};
    for (const std::string& a : args) quoted.push_back(Quote(a));
    quoted.insert(quoted.end(), {"--coordinator", Quote(address_)});
    for (const std::string& a : tls) quoted.push_back(Quote(a));
    return Shell(absl::StrJoin(quoted, " "));
  }

  // curl on the metrics URL with `flags`.
  CommandRun Curl(const std::string& flags) {
    return Shell(absl::StrCat("curl -sS --fail --max-time 20 ", flags, " ", Quote(metrics_url_)));
  }

  ScratchDir logs_;
  std::vector<std::string> server_flags_;  // default: certs().ServerFlags()
  std::unique_ptr<ChildProcess> coordinator_;
  std::vector<std::unique_ptr<ChildProcess>> agents_;
  std::string address_, metrics_url_, health_address_;
};

TEST_F(TlsBinariesTest, AgentsWithClientCertificatesFormThePool_CohortctlReadsIt) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ASSERT_NO_FATAL_FAILURE(StartAgent(0));
  // The other one checks the name the certificate holds instead of the IP address.
  ASSERT_NO_FATAL_FAILURE(StartAgent(1, {"--tls-server-name", "cohort-coordinator"}));
  CommandRun ready =
      Ctl({"wait", "--state", "READY", "--timeout", "60s"}, certs().ClientFlags("operator"));
  ASSERT_EQ(ready.exit_status, 0) << ready.out << ScratchDir::Read(logs_ / "agent-0.log")
                                  << ScratchDir::Read(logs_ / "coordinator.log");
  CommandRun members = Ctl({"members"}, certs().ClientFlags("viewer"));
  EXPECT_EQ(members.exit_status, 0) << members.out;
  EXPECT_THAT(members.out, HasSubstr("agent-1"));

  // The plaintext health port tells a probe the pool is serving.
  auto health = grpc::CreateChannel(health_address_, grpc::InsecureChannelCredentials());
  int last = -1;
  EXPECT_TRUE(
      WaitForHealth(health.get(), "cohort.pool.default", kServing, absl::Seconds(30), &last))
      << last;
}

TEST_F(TlsBinariesTest, CohortctlWithoutTheRightCertificate_CannotReachTheCoordinator) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  CommandRun stranger = Ctl({"status"}, certs().ClientFlags("stranger"));
  EXPECT_EQ(stranger.exit_status, 4) << stranger.out;
  EXPECT_THAT(stranger.out, HasSubstr("cannot reach the coordinator"));
  EXPECT_THAT(stranger.out, HasSubstr("check that --tls-ca signed"));
  CommandRun none = Ctl({"status"}, certs().ClientFlags(""));
  EXPECT_EQ(none.exit_status, 4) << none.out;
  CommandRun plaintext = Ctl({"status"}, {"--insecure"});
  EXPECT_THAT(plaintext.out, HasSubstr("closes plaintext (--insecure) connections"));
  EXPECT_EQ(plaintext.exit_status, 4) << plaintext.out;
  CommandRun expired = Ctl({"status"}, certs().ClientFlags("expired"));
  EXPECT_EQ(expired.exit_status, 4) << expired.out;
  CommandRun good = Ctl({"status"}, certs().ClientFlags("operator"));
  EXPECT_EQ(good.exit_status, 0) << good.out;
}

// With TLS, /metrics is HTTPS with the same files, where civetweb can serve HTTPS. Debian 12's
// civetweb (built for OpenSSL 1.1) cannot with OpenSSL 3: it would crash on the first HTTPS
// request (CivetwebTlsSupport), so the coordinator refuses to start instead, naming
// --metrics-insecure.
TEST_F(TlsBinariesTest, Metrics_HttpsWithClientCertificates_OrRefusedWhereCivetwebCannot) {
  const absl::Status support = CivetwebTlsSupport();
  if (!support.ok()) {
    std::vector<std::string> argv = {Bin("cohort-coordinator"), "--listen", "127.0.0.1:0",
                                     "--metrics-listen", "127.0.0.1:0"};
    for (const std::string& f : certs().ServerFlags()) argv.push_back(f);
    auto child = ChildProcess::Spawn(argv, logs_ / "refused.log");
    ASSERT_TRUE(child.has_value());
    std::optional<int> status = child->WaitExit(absl::Seconds(30));
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0);
    const std::string err = ScratchDir::Read(logs_ / "refused.log");
    EXPECT_THAT(err, HasSubstr("civetweb cannot serve HTTPS"));
    EXPECT_THAT(err, HasSubstr("--metrics-insecure"));
    GTEST_SKIP() << "HTTPS metrics not tested here: " << support.message();
  }
  if (Shell("command -v curl").exit_status != 0) GTEST_SKIP() << "curl is not installed";
  ASSERT_NO_FATAL_FAILURE(StartCoordinator({"--metrics-listen", "127.0.0.1:0"}));
  ASSERT_TRUE(absl::StartsWith(metrics_url_, "https://")) << metrics_url_;
  const std::string ca = "--cacert " + Quote(certs().Path("ca.crt"));
  CommandRun ok = Curl(absl::StrCat(ca, " --cert ", Quote(certs().Path("operator.crt")), " --key ",
                                    Quote(certs().Path("operator.key"))));
  EXPECT_EQ(ok.exit_status, 0) << ok.out;
  EXPECT_THAT(ok.out, HasSubstr("cohort_pool"));
  // Client authentication is required (the coordinator's default): no certificate, no metrics.
  CommandRun anonymous = Curl(ca);
  EXPECT_THAT(anonymous.out, ::testing::Not(HasSubstr("cohort_pool")));
  CommandRun stranger = Curl(absl::StrCat(ca, " --cert ", Quote(certs().Path("stranger.crt")),
                                          " --key ", Quote(certs().Path("stranger.key"))));
  EXPECT_THAT(stranger.out, ::testing::Not(HasSubstr("cohort_pool")));
}

TEST_F(TlsBinariesTest, MetricsInsecure_PlainHttpMetricsWhileGrpcIsTls) {
  if (Shell("command -v curl").exit_status != 0) GTEST_SKIP() << "curl is not installed";
  ASSERT_NO_FATAL_FAILURE(
      StartCoordinator({"--metrics-listen", "127.0.0.1:0", "--metrics-insecure"}));
  ASSERT_TRUE(absl::StartsWith(metrics_url_, "http://")) << metrics_url_;
  CommandRun ok = Curl("");
  EXPECT_EQ(ok.exit_status, 0) << ok.out;
  EXPECT_THAT(ok.out, HasSubstr("cohort_pool"));
  // gRPC stays TLS.
  EXPECT_EQ(Ctl({"status"}, {"--insecure"}).exit_status, 4);
}

TEST_F(TlsBinariesTest, AgentMetrics_HttpsWithTheAgentsCertificate_OrRefusedUpFront) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ASSERT_NO_FATAL_FAILURE(StartAgent(0, {"--metrics-listen", "127.0.0.1:0"}));
  if (!CivetwebTlsSupport().ok()) {
    std::optional<int> status = agents_.back()->WaitExit(absl::Seconds(30));
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2);
    EXPECT_THAT(ScratchDir::Read(logs_ / "agent-0.log"), HasSubstr("--metrics-insecure"));
    agents_.clear();
    GTEST_SKIP() << "HTTPS metrics not tested here: " << CivetwebTlsSupport().message();
  }
  if (Shell("command -v curl").exit_status != 0) GTEST_SKIP() << "curl is not installed";
  std::optional<std::string> line = agents_.back()->ReadLine(absl::Seconds(60));
  ASSERT_TRUE(line.has_value()) << ScratchDir::Read(logs_ / "agent-0.log");
  ASSERT_TRUE(absl::StartsWith(*line, "metrics on https://127.0.0.1:")) << *line;
  const size_t colon = line->rfind(':');
  const std::string port = line->substr(colon + 1, line->find("/metrics") - colon - 1);
  // The agent's certificate names agent-0 (DNS), not the IP: resolve that name to loopback.
  const std::string url = absl::StrCat("https://agent-0:", port, "/metrics");
  const std::string resolve = absl::StrCat(" --resolve agent-0:", port, ":127.0.0.1 ");
  CommandRun ok =
      Shell(absl::StrCat("curl -sS --fail --max-time 20 --cacert ", Quote(certs().Path("ca.crt")),
                         " --cert ", Quote(certs().Path("operator.crt")), " --key ",
                         Quote(certs().Path("operator.key")), resolve, url));
  EXPECT_EQ(ok.exit_status, 0) << ok.out;
  EXPECT_THAT(ok.out, HasSubstr("cohort_agent_"));
  // The agent always wants a client certificate.
  CommandRun anonymous = Shell(absl::StrCat("curl -sS --fail --max-time 20 --cacert ",
                                            Quote(certs().Path("ca.crt")), resolve, url));
  EXPECT_THAT(anonymous.out, ::testing::Not(HasSubstr("cohort_agent_")));
}

// An HTTPS metrics endpoint whose certificate files live in a scratch copy that a test can
// rotate (deploy/mint-certs.sh --rotate-server); the files are polled every second.
class MetricsHttpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CivetwebTlsSupport().ok()) GTEST_SKIP() << CivetwebTlsSupport().message();
    if (Shell("command -v openssl").exit_status != 0) GTEST_SKIP() << "openssl is not installed";
    TestCerts& certs = TestCerts::Get();
    ASSERT_TRUE(certs.ok());
    for (const char* name : {"ca.crt", "ca.key", "coordinator.crt", "coordinator.key"}) {
      ScratchDir::Write(dir_ / name, ScratchDir::Read(certs.Path(name)));
    }
    MetricsTls tls;
    tls.certificate_file = dir_ / "coordinator.crt";
    tls.key_file = dir_ / "coordinator.key";
    tls.ca_file = certs.Path("ca.crt");
    tls.reload_interval = absl::Seconds(1);
    absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
        MetricsEndpoint::Start("127.0.0.1:0", {}, /*num_threads=*/2, tls);
    ASSERT_TRUE(endpoint.ok()) << endpoint.status();
    endpoint_ = *std::move(endpoint);
  }
  // A new server certificate on disk (the endpoint notices at its next poll).
  void RotateServerCertificate() {
    ASSERT_EQ(Shell(absl::StrCat(COHORT_SOURCE_DIR, "/deploy/mint-certs.sh ", Quote(dir_.path()),
                                 " --rotate-server"))
                  .exit_status,
              0);
  }

  ScratchDir dir_;
  std::unique_ptr<MetricsEndpoint> endpoint_;
};

// The metrics endpoint re-reads its certificate files: a rotated server certificate is served
// by the restarted endpoint, on the same port, without restarting the process.
TEST_F(MetricsHttpsTest, CertificateRotated_EndpointServesTheNewOneOnTheSamePort) {
  const int port = endpoint_->port();
  const std::string old_fingerprint = FileFingerprint(dir_ / "coordinator.crt");
  ASSERT_FALSE(old_fingerprint.empty());
  EXPECT_EQ(ServedFingerprint(port), old_fingerprint);

  ASSERT_NO_FATAL_FAILURE(RotateServerCertificate());
  const std::string new_fingerprint = FileFingerprint(dir_ / "coordinator.crt");
  ASSERT_NE(new_fingerprint, old_fingerprint);
  // Nothing to wait on but the files being polled: each try is a new handshake, to a deadline.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  std::string served;
  while (served != new_fingerprint && absl::Now() < deadline) served = ServedFingerprint(port);
  EXPECT_EQ(served, new_fingerprint);
  EXPECT_GE(endpoint_->reloads(), 1);
  EXPECT_EQ(endpoint_->port(), port);
}

// A restart after a certificate change that fails for a reason the files do not show (here: the
// port taken in the meantime) is tried again at every interval until it works. Before, the
// watcher waited for the files to change again and the endpoint stayed down for good (seen as a
// flaky CertificateRotated_EndpointServesTheNewOneOnTheSamePort on a loaded machine).
TEST_F(MetricsHttpsTest, RestartFailedForABusyPort_TriedAgainUntilItWorks) {
  const int port = endpoint_->port();
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  auto wait_for = [&](const std::function<bool()>& done) {
    while (!done() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
    return done();
  };

  // A broken certificate: the endpoint goes down (its port is free).
  ScratchDir::Write(dir_ / "coordinator.crt", "not a certificate\n");
  ASSERT_TRUE(wait_for([&] { return endpoint_->failed_restarts() >= 1; }));
  // Someone takes the port; then the certificate is good again, but the restart cannot bind.
  const int squatter = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(squatter, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(squatter, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << errno;
  ASSERT_EQ(listen(squatter, 1), 0);
  ASSERT_NO_FATAL_FAILURE(RotateServerCertificate());
  const std::string fingerprint = FileFingerprint(dir_ / "coordinator.crt");
  const int failures = endpoint_->failed_restarts();
  ASSERT_TRUE(wait_for([&] { return endpoint_->failed_restarts() > failures; }));
  // The port is free again; the files do not change any more.
  close(squatter);
  std::string served;
  ASSERT_TRUE(wait_for([&] { return (served = ServedFingerprint(port)) == fingerprint; }))
      << "served: " << served;
  EXPECT_GE(endpoint_->reloads(), 1);
}

// The coordinator's certificate is re-minted on disk while two agents hold their sessions:
// new connections are served the new certificate, the agents' sessions carry on (the pool stays
// READY in the same generation, nobody is lost), and a new cohortctl connection works.
TEST_F(TlsBinariesTest, ServerCertificateRotated_AgentSessionsCarryOn) {
  if (Shell("command -v openssl").exit_status != 0) GTEST_SKIP() << "openssl is not installed";
  ScratchDir dir;
  for (const char* name : {"ca.crt", "ca.key", "coordinator.crt", "coordinator.key"}) {
    ScratchDir::Write(dir / name, ScratchDir::Read(certs().Path(name)));
  }
  server_flags_ = {"--tls-cert",
                   dir / "coordinator.crt",
                   "--tls-key",
                   dir / "coordinator.key",
                   "--tls-ca",
                   certs().Path("ca.crt"),
                   "--tls-reload-interval",
                   "1s"};
  ASSERT_NO_FATAL_FAILURE(StartCoordinator());
  ASSERT_NO_FATAL_FAILURE(StartAgent(0));
  ASSERT_NO_FATAL_FAILURE(StartAgent(1));
  const std::vector<std::string> op = certs().ClientFlags("operator");
  CommandRun ready = Ctl({"wait", "--state", "READY", "--timeout", "60s"}, op);
  ASSERT_EQ(ready.exit_status, 0) << ready.out;
  CommandRun before = Ctl({"state", "-o", "json"}, op);
  ASSERT_EQ(before.exit_status, 0) << before.out;

  const int port = std::stoi(address_.substr(address_.rfind(':') + 1));
  const std::string old_fingerprint = FileFingerprint(dir / "coordinator.crt");
  EXPECT_EQ(ServedFingerprint(port), old_fingerprint);
  ASSERT_EQ(Shell(absl::StrCat(COHORT_SOURCE_DIR, "/deploy/mint-certs.sh ", Quote(dir.path()),
                               " --rotate-server"))
                .exit_status,
            0);
  const std::string new_fingerprint = FileFingerprint(dir / "coordinator.crt");
  ASSERT_NE(new_fingerprint, old_fingerprint);
  // Nothing to wait on but gRPC's file watcher: each try is a new handshake, to a deadline.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  std::string served;
  while (served != new_fingerprint && absl::Now() < deadline) served = ServedFingerprint(port);
  ASSERT_EQ(served, new_fingerprint);

  // A new connection works, and the pool is as it was: same generation, both members READY.
  CommandRun after = Ctl({"state", "-o", "json"}, op);
  ASSERT_EQ(after.exit_status, 0) << after.out;
  auto generation = [](const std::string& json) {
    const size_t at = json.find("\"generation\"");
    return at == std::string::npos ? std::string() : json.substr(at, json.find(',', at) - at);
  };
  EXPECT_FALSE(generation(before.out).empty()) << before.out;
  EXPECT_EQ(generation(after.out), generation(before.out));
  EXPECT_EQ(Ctl({"wait", "--state", "READY", "--timeout", "1s"}, op).exit_status, 0);
  CommandRun events = Ctl({"events", "-o", "json"}, op);
  ASSERT_EQ(events.exit_status, 0) << events.out;
  EXPECT_THAT(events.out, HasSubstr("EVENT_KIND_MEMBER_READY")) << events.out;
  EXPECT_THAT(events.out, ::testing::Not(HasSubstr("EVENT_KIND_MEMBER_LOST"))) << events.out;
}

}  // namespace
}  // namespace cohort
