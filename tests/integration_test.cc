// The whole flow with real processes on loopback (Gloo): a coordinator and N agents form a
// layout, verify every group, go READY; then a model-parallel destroy and a different config on
// the same world (no process restarted, the world communicator reused); then a full destroy and
// an orderly exit of every agent.
#include <fstream>

#include "coordinator/store_access.h"
#include "gmock/gmock.h"
#include "tests/cluster.h"

namespace cohort::testing {
namespace {

struct FlowCase {
  std::string name;
  ParallelConfig first;
  ParallelConfig second;
};

class FlowTest : public ::testing::TestWithParam<FlowCase> {};

TEST_P(FlowTest, FormVerifyDestroyReinitializeDestroyAll) {
  const FlowCase& c = GetParam();
  const int n = static_cast<int>(c.first.world_size);
  Cluster cluster;
  ASSERT_TRUE(cluster.ok());
  cluster.StartAgents(n);
  const absl::Duration deadline = absl::Seconds(60);

  absl::StatusOr<v1::InitializeResponse> init = cluster.Initialize(c.first);
  ASSERT_TRUE(init.ok()) << init.status();
  absl::StatusOr<v1::PoolState> ready =
      cluster.WaitForPhase(v1::POOL_PHASE_READY, init->generation(), deadline);
  ASSERT_TRUE(ready.ok()) << ready.status();
  ASSERT_EQ(ready->phase(), v1::POOL_PHASE_READY) << ready->error();
  ExpectReportsMatchLayout(*ready, *Layout::Build(c.first));

  ASSERT_TRUE(cluster.Destroy(v1::DESTROY_SCOPE_MODEL_PARALLEL).ok());
  absl::StatusOr<v1::PoolState> destroyed =
      cluster.WaitForPhase(v1::POOL_PHASE_DESTROYED, init->generation(), deadline);
  ASSERT_TRUE(destroyed.ok()) << destroyed.status();
  EXPECT_EQ(destroyed->error(), "");

  absl::StatusOr<v1::InitializeResponse> second = cluster.Initialize(c.second);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->generation(), init->generation() + 1);
  ready = cluster.WaitForPhase(v1::POOL_PHASE_READY, second->generation(), deadline);
  ASSERT_TRUE(ready.ok()) << ready.status();
  ASSERT_EQ(ready->phase(), v1::POOL_PHASE_READY) << ready->error();
  ExpectReportsMatchLayout(*ready, *Layout::Build(c.second));
  // The world communicator survived the model-parallel destroy and was reused, not rebuilt.
  for (const v1::MemberState& m : ready->members()) {
    for (const v1::GroupReport& g : m.groups()) {
      if (g.kind() == v1::GROUP_KIND_WORLD) {
        EXPECT_EQ(g.create_us(), 0) << "rank " << m.rank();
      }
    }
  }

  ASSERT_TRUE(cluster.Destroy(v1::DESTROY_SCOPE_ALL).ok());
  destroyed = cluster.WaitForPhase(v1::POOL_PHASE_DESTROYED, second->generation(), deadline);
  ASSERT_TRUE(destroyed.ok()) << destroyed.status();
  EXPECT_EQ(destroyed->error(), "");

  for (int r = 0; r < n; ++r) cluster.agent(r).Signal(SIGTERM);
  for (int r = 0; r < n; ++r) {
    std::optional<int> status = cluster.agent(r).WaitExit(absl::Seconds(20));
    ASSERT_TRUE(status.has_value()) << "agent " << r << " did not exit";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "agent " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Loopback, FlowTest,
    ::testing::Values(
        FlowCase{"world1", {.world_size = 1}, {.world_size = 1}},
        FlowCase{"world2_tp2_then_cfg2",
                 {.world_size = 2, .tensor_parallel_size = 2},
                 {.world_size = 2, .cfg_parallel_size = 2}},
        FlowCase{
            "world8_dp2cfg2u2_then_tp2u2r2",
            {.world_size = 8, .data_parallel_size = 2, .cfg_parallel_size = 2, .ulysses_degree = 2},
            {.world_size = 8, .ulysses_degree = 2, .ring_degree = 2, .tensor_parallel_size = 2}},
        FlowCase{"world16_tp2u2r2pp2_then_docstring16_ep",
                 {.world_size = 16,
                  .ulysses_degree = 2,
                  .ring_degree = 2,
                  .tensor_parallel_size = 2,
                  .pipeline_parallel_size = 2},
                 {.world_size = 16,
                  .data_parallel_size = 2,
                  .cfg_parallel_size = 2,
                  .ulysses_degree = 2,
                  .pipeline_parallel_size = 2,
                  .enable_expert_parallel = true,
                  .is_moe = true}}),
    [](const ::testing::TestParamInfo<FlowCase>& info) { return info.param.name; });

TEST(Flow, StartupPool_StartsItselfWhenTheWorldIsComplete) {
  Cluster cluster({"--world-size", "4", "--dp", "2", "--tp", "2"});
  ASSERT_TRUE(cluster.ok());
  cluster.StartAgents(4);
  absl::StatusOr<v1::PoolState> ready =
      cluster.WaitForPhase(v1::POOL_PHASE_READY, 1, absl::Seconds(60));
  ASSERT_TRUE(ready.ok()) << ready.status();
  ASSERT_EQ(ready->phase(), v1::POOL_PHASE_READY) << ready->error();
  const Layout layout =
      *Layout::Build({.world_size = 4, .data_parallel_size = 2, .tensor_parallel_size = 2});
  ExpectReportsMatchLayout(*ready, layout);
  // The agent processes send their session with every store call, so the coordinator held them
  // to the ownership rules (a foreign key would have failed the build); what they wrote fits the
  // scheme, and inspection shows the names.
  EXPECT_GT(ready->store_key_count(), 0);
  for (const std::string& key : ready->store_keys()) {
    EXPECT_TRUE(coordinator::ScopeOfKey(layout, key).ok()) << key;
  }
  EXPECT_THAT(ready->store_keys(), ::testing::IsSupersetOf({"world/0/0", "world/0/3", "tp/1/1"}));
}

TEST(Flow, AgentBeyondTheWorld_WaitsAsStandby) {
  Cluster cluster({"--world-size", "2", "--dp", "2"});
  ASSERT_TRUE(cluster.ok());
  cluster.StartAgents(2);
  ASSERT_TRUE(cluster.WaitForPhase(v1::POOL_PHASE_READY, 1, absl::Seconds(60)).ok());
  cluster.StartAgent(2, -1);
  absl::StatusOr<v1::PoolState> s = cluster.WaitFor(
      [](const v1::PoolState& s) {
        return s.phase() == v1::POOL_PHASE_READY && s.members_size() == 3;
      },
      absl::Seconds(60));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->members(2).identity(), "agent-2");
  EXPECT_EQ(s->members(2).rank(), -1);
  EXPECT_EQ(s->members(2).phase(), v1::MEMBER_PHASE_STANDBY);
}

TEST(Flow, DuplicateIdentity_SecondProcessIsRefusedAndExits) {
  Cluster cluster;
  ASSERT_TRUE(cluster.ok());
  cluster.StartAgent(0, 0);
  ASSERT_TRUE(
      cluster
          .WaitFor([](const v1::PoolState& s) { return s.members_size() == 1; }, absl::Seconds(30))
          .ok());
  // Same identity, new process: refused while the first is alive. It retries for its connect
  // timeout (the first might be dying), then gives up with the coordinator's message.
  cluster.StartAgent(1, -1, {"--identity", "agent-0", "--connect-timeout-ms", "1500"});
  std::optional<int> status = cluster.agent(1).WaitExit(absl::Seconds(30));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  const std::string log = absl::StrCat(cluster.log_dir(), "/agent-1.log");
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(absl::StrContains(text, "held by a live agent")) << text;
}

}  // namespace
}  // namespace cohort::testing
