// cohort-agent --health-listen end to end, with real processes on loopback: what a kubelet's
// gRPC probes would see while the agent waits for a generation, holds a READY one, rejoins a
// restarted coordinator, and once its session is lost for good. Every wait has a deadline; none
// bounds how fast.
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "agent/agent_health.h"
#include "gmock/gmock.h"
#include "tests/cluster.h"
#include "tests/raw_grpc.h"

namespace cohort::testing {
namespace {

using raw_grpc::Check;
using raw_grpc::kNotServing;
using raw_grpc::kServing;
using raw_grpc::WaitForHealth;

constexpr absl::Duration kDeadline = absl::Seconds(30);
constexpr char kReady[] = "cohort.agent.ready";

// Reads the agent's stdout up to its "health on IP:PORT" line; returns the address.
std::string HealthAddress(ChildProcess& agent) {
  const absl::Time deadline = absl::Now() + kDeadline;
  while (absl::Now() < deadline) {
    std::optional<std::string> line = agent.ReadLine(deadline - absl::Now());
    if (!line.has_value()) break;
    if (absl::StartsWith(*line, "health on ")) {
      return line->substr(std::string("health on ").size());
    }
  }
  return "";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

TEST(AgentHealthProbe, Waiting_Ready_Rejoining_LiveThroughout_ReadyWhileJoined) {
  Cluster cluster({"--heartbeat-interval-ms", "250", "--heartbeat-misses", "40"});
  ASSERT_TRUE(cluster.ok());
  cluster.StartAgent(0, 0, {"--health-listen", "127.0.0.1:0", "--connect-timeout", "120s"});
  const std::string address = HealthAddress(cluster.agent(0));
  ASSERT_FALSE(address.empty()) << "no \"health on\" line (log in " << cluster.log_dir() << ")";
  auto health = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());

  // Joined, no pool initialized: waiting for a generation is healthy and ready.
  ASSERT_TRUE(WaitForHealth(health.get(), kReady, kServing, kDeadline));
  EXPECT_EQ(Check(health.get(), "").value_or(-1), kServing);

  ASSERT_TRUE(cluster.Initialize(ParallelConfig{.world_size = 1}).ok());
  absl::StatusOr<v1::PoolState> ready =
      cluster.WaitForPhase(v1::POOL_PHASE_READY, 1, absl::Seconds(60));
  ASSERT_TRUE(ready.ok()) << ready.status();
  ASSERT_EQ(ready->phase(), v1::POOL_PHASE_READY) << ready->error();
  EXPECT_EQ(Check(health.get(), "").value_or(-1), kServing);
  EXPECT_EQ(Check(health.get(), kReady).value_or(-1), kServing);

  // The coordinator goes: the agent rejoins (for up to --connect-timeout), not ready, alive.
  cluster.KillCoordinator();
  ASSERT_TRUE(WaitForHealth(health.get(), kReady, kNotServing, kDeadline));
  EXPECT_EQ(Check(health.get(), "").value_or(-1), kServing) << "rejoining is not broken";

  cluster.RestartCoordinator();
  EXPECT_TRUE(WaitForHealth(health.get(), kReady, kServing, kDeadline))
      << "log in " << cluster.log_dir();
  EXPECT_EQ(Check(health.get(), "").value_or(-1), kServing);
  EXPECT_FALSE(cluster.agent(0).WaitExit(absl::ZeroDuration()).has_value());
}

TEST(AgentHealthProbe, SessionLostForGood_NotServingThenExitsWithStatus1) {
  Cluster cluster;
  ASSERT_TRUE(cluster.ok());
  cluster.StartAgent(0, 0, {"--health-listen", "127.0.0.1:0", "--connect-timeout", "1s"});
  const std::string address = HealthAddress(cluster.agent(0));
  ASSERT_FALSE(address.empty()) << "no \"health on\" line (log in " << cluster.log_dir() << ")";
  auto health = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  ASSERT_TRUE(WaitForHealth(health.get(), kReady, kServing, kDeadline));
  EXPECT_EQ(Check(health.get(), "").value_or(-1), kServing);

  // No coordinator comes back: after --connect-timeout the session is lost for good.
  cluster.KillCoordinator();

  // A probe sees NOT_SERVING, or (the agent exits right after) no answer at all: either is a
  // failed probe. Watch until one of them.
  const absl::Time deadline = absl::Now() + kDeadline;
  bool not_serving = false;
  while (!not_serving && absl::Now() < deadline &&
         !cluster.agent(0).WaitExit(absl::ZeroDuration()).has_value()) {
    not_serving = WaitForHealth(health.get(), "", kNotServing, absl::Seconds(1));
  }
  std::optional<int> status = cluster.agent(0).WaitExit(kDeadline);
  ASSERT_TRUE(status.has_value()) << "the agent did not exit";
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  // Published before the exit, whether or not the probe above caught it in time.
  const std::string log = ReadFile(cluster.log_dir() + "/agent-0.log");
  EXPECT_THAT(log, ::testing::HasSubstr("health: live NOT_SERVING")) << log;
}

}  // namespace
}  // namespace cohort::testing
