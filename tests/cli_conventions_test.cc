// The command-line conventions of the three binaries, run as processes: --version, exit status 2
// with one `error:` line on a bad flag, the duration syntax and the old -ms aliases, and the
// agent's COHORT_COORDINATOR. Coordinators listen on 127.0.0.1:0.
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cohort/v1/agent.grpc.pb.h"
#include "common/cohort_config.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"
#include "tests/process.h"

namespace cohort {
namespace {

using ::cohort::testing::ChildProcess;
using ::cohort::testing::Cluster;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct ProcessRun {
  int exit_status = -1;
  std::string first_line;  // stdout
  std::string err;
};

std::string Binary(const std::string& name) { return std::string(COHORT_BIN_DIR) + "/" + name; }

// Runs a binary that is expected to exit by itself (bad flags, --version) and collects its
// exit status, first stdout line and stderr.
ProcessRun RunToExit(const std::string& name, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {Binary(name)};
  argv.insert(argv.end(), args.begin(), args.end());
  static int runs = 0;
  const std::string err_path =
      absl::StrCat(::testing::TempDir(), "/", name, "-", getpid(), "-", runs++, ".err");
  std::optional<ChildProcess> child = ChildProcess::Spawn(argv, err_path);
  ProcessRun run;
  if (!child.has_value()) {
    ADD_FAILURE() << "cannot start " << argv[0];
    return run;
  }
  std::optional<std::string> line = child->ReadLine(absl::Seconds(30));
  if (line.has_value()) run.first_line = *line;
  std::optional<int> status = child->WaitExit(absl::Seconds(30));
  if (!status.has_value()) {
    child->Signal(SIGKILL);
    child->WaitExit(absl::Seconds(10));
    ADD_FAILURE() << name << " did not exit";
    return run;
  }
  run.exit_status = WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
  std::ifstream in(err_path);
  std::stringstream text;
  text << in.rdbuf();
  run.err = text.str();
  std::remove(err_path.c_str());
  return run;
}

class EveryBinaryTest : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryBinaryTest, UnknownFlag_Exit2WithOneErrorLine) {
  ProcessRun run = RunToExit(GetParam(), {"--no-such-flag"});
  EXPECT_EQ(run.exit_status, 2) << run.err;
  EXPECT_THAT(run.err, StartsWith("error: "));
  EXPECT_THAT(run.err, HasSubstr("--no-such-flag"));
  EXPECT_THAT(run.err, HasSubstr("--help"));
}

TEST_P(EveryBinaryTest, Version_PrintsNameAndVersionAndExits0) {
  ProcessRun run = RunToExit(GetParam(), {"--version"});
  EXPECT_EQ(run.exit_status, 0) << run.err;
  EXPECT_EQ(run.first_line, absl::StrCat(GetParam(), " ", COHORT_VERSION));
}

// Plaintext only when asked for: a command line that talks to the coordinator (or serves it)
// and chooses no transport is refused before anything starts, naming both choices.
TEST_P(EveryBinaryTest, NoTransportChosen_Exit2NamingTlsAndInsecure) {
  std::vector<std::string> args;
  if (GetParam() == "cohortctl") args = {"status", "--coordinator", "127.0.0.1:1"};
  ProcessRun run = RunToExit(GetParam(), args);
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_THAT(run.err, StartsWith("error: "));
  EXPECT_THAT(run.err, HasSubstr("--tls-cert/--tls-key/--tls-ca for TLS, or --insecure for "
                                 "plaintext"));
}

TEST_P(EveryBinaryTest, InsecureWithTlsFlags_Exit2) {
  std::vector<std::string> args = {"--insecure", "--tls-ca", "/nonexistent/ca.crt"};
  if (GetParam() == "cohortctl") args.insert(args.begin(), "status");
  ProcessRun run = RunToExit(GetParam(), args);
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_THAT(run.err, HasSubstr("--insecure cannot be combined with --tls-cert"));
}

TEST_P(EveryBinaryTest, MissingCertificateFile_Exit2NamingTheFlag) {
  std::vector<std::string> args = {"--tls-cert", "/nonexistent/c.crt",
                                   "--tls-key",  "/nonexistent/c.key",
                                   "--tls-ca",   "/nonexistent/ca.crt"};
  if (GetParam() == "cohortctl") args.insert(args.begin(), "status");
  ProcessRun run = RunToExit(GetParam(), args);
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_THAT(run.err, HasSubstr("--tls-cert /nonexistent/c.crt: cannot be opened"));
}

// Offline commands need no transport.
TEST(CohortctlTransportTest, OfflineCommands_NeedNoTransport) {
  EXPECT_EQ(RunToExit("cohortctl", {"layout", "-n", "4", "--dp", "2", "--tp", "2"}).exit_status, 0);
  EXPECT_EQ(RunToExit("cohortctl", {"version", "--client"}).exit_status, 0);
}

// The TLS files can come from the environment (a Kubernetes pod spec): COHORT_TLS_CA alone
// chooses TLS, and is checked like the flag.
TEST(AgentFlagsTest, TlsFilesFromTheEnvironment_CheckedLikeTheFlags) {
  ASSERT_EQ(setenv("COHORT_TLS_CA", "/nonexistent/env-ca.crt", 1), 0);
  ProcessRun run = RunToExit("cohort-agent", {});
  unsetenv("COHORT_TLS_CA");
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_THAT(run.err, HasSubstr("--tls-ca /nonexistent/env-ca.crt: cannot be opened"));
}

TEST(AgentFlagsTest, TokenFileWithInsecure_Exit2SayingTokensNeedTls) {
  ProcessRun run = RunToExit("cohort-agent", {"--insecure", "--token-file", "/etc/hostname"});
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_THAT(run.err, HasSubstr("--token-file needs TLS"));
}

INSTANTIATE_TEST_SUITE_P(Binaries, EveryBinaryTest,
                         ::testing::Values("cohort-coordinator", "cohort-agent", "cohortctl"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(CoordinatorFlagsTest, BadDuration_Exit2NamingTheFlag) {
  ProcessRun run = RunToExit("cohort-coordinator", {"--heartbeat-interval", "soon"});
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_THAT(run.err, StartsWith("error: --heartbeat-interval: bad duration 'soon'"));
}

TEST(CoordinatorFlagsTest, AttachTimeoutOutOfRange_Exit2InBothSpellings) {
  ProcessRun ms = RunToExit("cohort-coordinator", {"--attach-timeout-ms", "0"});
  EXPECT_EQ(ms.exit_status, 2);
  EXPECT_THAT(ms.err, HasSubstr("must be between 1ms and 24h"));
  ProcessRun duration = RunToExit("cohort-coordinator", {"--attach-timeout", "25h"});
  EXPECT_EQ(duration.exit_status, 2);
  EXPECT_THAT(duration.err, HasSubstr("must be between 1ms and 24h"));
}

// The heartbeat interval an agent is told when it joins: what the flag set.
int32_t JoinedHeartbeatMs(const Cluster& cluster) {
  auto stub = v1::AgentService::NewStub(
      grpc::CreateChannel(cluster.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  v1::JoinRequest request;
  request.set_identity("probe");
  request.set_incarnation("probe-1");
  request.add_backends("none");
  v1::JoinResponse response;
  grpc::Status status = stub->Join(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.heartbeat_interval_ms();
}

TEST(CoordinatorFlagsTest, HeartbeatInterval_DurationAndMillisecondsAlias) {
  Cluster duration({"--heartbeat-interval", "250ms"});
  ASSERT_TRUE(duration.ok());
  EXPECT_EQ(JoinedHeartbeatMs(duration), 250);
  Cluster alias({"--heartbeat-interval-ms", "300"});
  ASSERT_TRUE(alias.ok());
  EXPECT_EQ(JoinedHeartbeatMs(alias), 300);
}

TEST(CoordinatorFlagsTest, BadPolicy_Exit2NamingTheLineAndTheFix) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/bad-policy-", getpid(), ".yaml");
  std::ofstream(path) << "principals:\n  - name: a\n    role: admin\n    certificate: {cn: a}\n";
  ProcessRun run = RunToExit("cohort-coordinator", {"--insecure", "--policy", path});
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_THAT(run.err, StartsWith(absl::StrCat("error: --policy: ", path,
                                               " line 3: unknown role 'admin'; use agent, "
                                               "operator or viewer")));
  ProcessRun missing =
      RunToExit("cohort-coordinator", {"--insecure", "--policy", path + ".missing"});
  EXPECT_EQ(missing.exit_status, 2);
  EXPECT_THAT(missing.err, HasSubstr("cannot read the policy file"));
  std::remove(path.c_str());
}

// With a policy, a plaintext caller (no certificate, no token) is UNAUTHENTICATED, and the
// refusal is in the audit log file.
TEST(CoordinatorFlagsTest, Policy_AnonymousJoinRefused_AuditLogFileHasTheLine) {
  const std::string base = absl::StrCat(::testing::TempDir(), "/policy-", getpid());
  std::ofstream(base + ".yaml")
      << "principals:\n  - name: ops\n    role: operator\n    certificate: {cn: ops}\n";
  Cluster cluster({"--policy", base + ".yaml", "--audit-log", base + ".audit"});
  ASSERT_TRUE(cluster.ok());
  auto stub = v1::AgentService::NewStub(
      grpc::CreateChannel(cluster.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  v1::JoinRequest request;
  request.set_identity("probe");
  request.set_incarnation("probe-1");
  v1::JoinResponse response;
  grpc::Status status = stub->Join(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("Join needs role agent"));
  std::ifstream in(base + ".audit");
  std::stringstream audit;
  audit << in.rdbuf();
  EXPECT_THAT(audit.str(), HasSubstr("role=none action=Join pool=default result=UNAUTHENTICATED"));
  std::remove((base + ".yaml").c_str());
  std::remove((base + ".audit").c_str());
}

TEST(AgentFlagsTest, BadConnectTimeout_Exit2) {
  ProcessRun run = RunToExit("cohort-agent", {"--connect-timeout", "-5s"});
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_THAT(run.err, StartsWith("error: --connect-timeout: bad duration '-5s'"));
}

// Without --coordinator the agent finds the coordinator through COHORT_COORDINATOR, like
// cohortctl: it joins the startup pool of one rank, which becomes READY.
TEST(AgentFlagsTest, CohortCoordinatorEnvironment_NamesTheCoordinator) {
  Cluster cluster({"--world-size", "1", "--backend", "gloo"});
  ASSERT_TRUE(cluster.ok());
  ASSERT_EQ(setenv("COHORT_COORDINATOR", cluster.address().c_str(), 1), 0);
  std::optional<ChildProcess> agent = ChildProcess::Spawn(
      {Binary("cohort-agent"), "--insecure", "--identity", "env-agent", "--backends", "gloo",
       "--host-address", "127.0.0.1", "--connect-timeout", "30s", "--log-level", "warn"},
      absl::StrCat(cluster.log_dir(), "/env-agent.log"));
  unsetenv("COHORT_COORDINATOR");
  ASSERT_TRUE(agent.has_value());
  absl::StatusOr<v1::PoolState> state =
      cluster.WaitForPhase(v1::POOL_PHASE_READY, 1, absl::Seconds(60));
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->phase(), v1::POOL_PHASE_READY);
  ASSERT_EQ(state->members_size(), 1);
  EXPECT_EQ(state->members(0).identity(), "env-agent");
  agent->Signal(SIGTERM);
  std::optional<int> status = agent->WaitExit(absl::Seconds(30));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

}  // namespace
}  // namespace cohort
