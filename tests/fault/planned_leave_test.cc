// Planned leave with real processes on loopback (issue 12): SIGTERM on a cohort-agent of a READY
// pool tells the coordinator it is leaving. The member is recorded as LEFT (an EVENT_KIND_LEFT,
// no MEMBER_LOST, nobody FAILED), the pool goes DEGRADED with reason "left", the agent exits 0
// after tearing its communicators down, and a standby refills the rank: READY again at the next
// generation. Every wait has a deadline.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/cluster.h"
#include "tests/scratch_dir.h"

namespace cohort::testing {
namespace {

constexpr absl::Duration kDeadline = absl::Seconds(60);
const ParallelConfig kConfig{.world_size = 4, .data_parallel_size = 2, .ulysses_degree = 2};

// Agent r as a StatefulSet pod: identity and rank hint from POD_NAME / POD_INDEX.
std::vector<std::string> PodEnv(int r) {
  return {absl::StrCat("POD_NAME=cohort-agent-", r), absl::StrCat("POD_INDEX=", r)};
}

TEST(PlannedLeave, SigtermOnReadyAgent_LeftNotLost_DegradedLeft_StandbyRefillsReady) {
  Cluster cluster;
  ASSERT_TRUE(cluster.ok());
  for (int r = 0; r < kConfig.world_size; ++r) cluster.StartPodAgent(r, PodEnv(r));
  ASSERT_TRUE(cluster.Initialize(kConfig).ok());
  absl::StatusOr<v1::PoolState> ready = cluster.WaitForPhase(v1::POOL_PHASE_READY, 1, kDeadline);
  ASSERT_TRUE(ready.ok()) << ready.status();
  ASSERT_EQ(ready->phase(), v1::POOL_PHASE_READY) << ready->error();
  // A standby (pod index beyond the world): it waits without a rank.
  cluster.StartPodAgent(kConfig.world_size, PodEnv(static_cast<int>(kConfig.world_size)));
  ASSERT_TRUE(cluster
                  .WaitFor(
                      [](const v1::PoolState& s) {
                        return s.members_standby() == 1 && s.phase() == v1::POOL_PHASE_READY;
                      },
                      kDeadline)
                  .ok());

  cluster.agent(2).Signal(SIGTERM);
  std::optional<int> exited = cluster.agent(2).WaitExit(kDeadline);
  ASSERT_TRUE(exited.has_value()) << "the agent did not exit on SIGTERM";
  EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0) << *exited;
  const std::string log = ScratchDir::Read(cluster.pod_agent_log(2));
  EXPECT_TRUE(absl::StrContains(log, "the coordinator recorded the leave")) << log;

  absl::StatusOr<v1::PoolState> refilled = cluster.WaitFor(
      [](const v1::PoolState& s) {
        return s.phase() == v1::POOL_PHASE_READY && s.generation() == 2;
      },
      kDeadline);
  ASSERT_TRUE(refilled.ok()) << refilled.status() << " (logs in " << cluster.log_dir() << ")";
  // The pool went DEGRADED for the leave, with reason "left".
  bool degraded_left = false;
  for (const v1::PhaseTransition& t : refilled->transitions()) {
    if (t.phase() == v1::POOL_PHASE_DEGRADED) degraded_left |= t.reason() == "left";
  }
  EXPECT_TRUE(degraded_left) << refilled->DebugString();
  for (const v1::MemberState& m : refilled->members()) {
    if (m.identity() == "cohort-agent-2") {
      EXPECT_EQ(m.phase(), v1::MEMBER_PHASE_LEFT);
      EXPECT_LT(m.rank(), 0) << "the standby took its rank";
    }
    if (m.identity() == "cohort-agent-4") {
      EXPECT_EQ(m.rank(), 2);
    }
  }
  EXPECT_EQ(refilled->members_failed(), 0);
  int left = 0;
  for (const v1::Event& e : cluster.Events()) {
    EXPECT_NE(e.kind(), v1::EVENT_KIND_MEMBER_LOST) << e.message();
    EXPECT_NE(e.kind(), v1::EVENT_KIND_FAILED) << e.message();
    if (e.kind() == v1::EVENT_KIND_LEFT) {
      ++left;
      EXPECT_EQ(e.identity(), "cohort-agent-2");
      EXPECT_TRUE(absl::StrContains(e.message(), "planned leave: Terminated")) << e.message();
    }
  }
  EXPECT_EQ(left, 1);
}

// SIGTERM while the agent is still trying to join (the coordinator unreachable): nothing to
// leave, so it exits 0 at once instead of after --connect-timeout (past a pod's grace period).
TEST(PlannedLeave, SigtermWhileStillJoining_ExitsAtOnceNotAfterTheConnectTimeout) {
  // A bound port nobody listens on: every connection attempt is refused, so the join retries.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string target = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  const std::string log = ::testing::TempDir() + "/joining-agent-" + std::to_string(getpid());
  auto agent =
      ChildProcess::Spawn({std::string(COHORT_BIN_DIR) + "/cohort-agent", "--insecure",
                           "--coordinator", target, "--identity", "joining", "--connect-timeout",
                           "1h", "--health-listen", "127.0.0.1:0", "--log-level", "info"},
                          log, Cluster::NoPodEnv());
  ASSERT_TRUE(agent.has_value());
  // Printed right before the first join starts.
  std::optional<std::string> health = agent->ReadLine(kDeadline);
  ASSERT_TRUE(health.has_value() && absl::StartsWith(*health, "health on "))
      << ScratchDir::Read(log);

  agent->Signal(SIGTERM);
  std::optional<int> exited = agent->WaitExit(kDeadline);
  ASSERT_TRUE(exited.has_value()) << "still joining after SIGTERM: " << ScratchDir::Read(log);
  EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0) << *exited;
  EXPECT_TRUE(absl::StrContains(ScratchDir::Read(log), "before the agent joined: nothing to leave"))
      << ScratchDir::Read(log);
  close(fd);
  std::remove(log.c_str());
}

}  // namespace
}  // namespace cohort::testing
