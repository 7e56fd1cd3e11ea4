// SIGTERM on the coordinator, with real processes on loopback: a rolling update of the
// coordinator never aborts a READY pool. The stopping coordinator declares no loss, saves the
// pool as READY and closes the sessions; its successor on the same address and state file
// restores the pool at the same generation from the agents' reports. Every wait has a deadline.
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "tests/cluster.h"

namespace cohort::testing {
namespace {

constexpr absl::Duration kDeadline = absl::Seconds(30);
const ParallelConfig kConfig{.world_size = 4, .data_parallel_size = 2, .ulysses_degree = 2};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(Drain, SigtermOnCoordinatorOfReadyPool_NoLossNoAbort_RestoredSameGeneration) {
  const std::string state_file =
      ::testing::TempDir() + "/drain-state-" + std::to_string(getpid()) + ".json";
  std::remove(state_file.c_str());
  Cluster cluster(
      {"--state-file", state_file, "--heartbeat-interval-ms", "250", "--heartbeat-misses", "40"});
  ASSERT_TRUE(cluster.ok());
  cluster.StartAgents(kConfig.world_size);
  absl::StatusOr<v1::InitializeResponse> init = cluster.Initialize(kConfig);
  ASSERT_TRUE(init.ok()) << init.status();
  absl::StatusOr<v1::PoolState> ready =
      cluster.WaitForPhase(v1::POOL_PHASE_READY, 1, absl::Seconds(60));
  ASSERT_TRUE(ready.ok()) << ready.status();
  ASSERT_EQ(ready->phase(), v1::POOL_PHASE_READY) << ready->error();

  cluster.coordinator().Signal(SIGTERM);
  std::optional<int> exited = cluster.coordinator().WaitExit(kDeadline);
  ASSERT_TRUE(exited.has_value()) << "the coordinator did not exit on SIGTERM";
  EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0) << *exited;
  // The stopping coordinator declared nobody lost and failed no generation.
  const std::string old_log = ReadFile(cluster.log_dir() + "/coordinator-0.log");
  EXPECT_FALSE(absl::StrContains(old_log, ") lost: ")) << old_log;
  EXPECT_FALSE(absl::StrContains(old_log, "failed")) << old_log;

  cluster.RestartCoordinator();
  absl::StatusOr<v1::PoolState> restored = cluster.WaitFor(
      [](const v1::PoolState& s) {
        int connected = 0;
        for (const v1::MemberState& m : s.members()) connected += m.connected();
        return s.phase() == v1::POOL_PHASE_READY && connected == kConfig.world_size;
      },
      kDeadline);
  ASSERT_TRUE(restored.ok()) << restored.status() << " (logs in " << cluster.log_dir() << ")";
  EXPECT_EQ(restored->generation(), 1);
  for (const v1::Event& e : cluster.Events()) {
    EXPECT_NE(e.kind(), v1::EVENT_KIND_ABORT) << e.message();
    EXPECT_NE(e.kind(), v1::EVENT_KIND_PLAN) << e.message();
    EXPECT_NE(e.kind(), v1::EVENT_KIND_MEMBER_LOST) << e.message();
  }
  for (int r = 0; r < kConfig.world_size; ++r) {
    EXPECT_FALSE(cluster.agent(r).WaitExit(absl::ZeroDuration()).has_value()) << "agent " << r;
  }
  std::remove(state_file.c_str());
}

}  // namespace
}  // namespace cohort::testing
