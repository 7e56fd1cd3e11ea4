// Live communicator state: a communicator that fails after READY shows up in the coordinator's
// state (and event log) without anyone asking, through the agent's GroupStates reports.
#include "absl/strings/match.h"
#include "common/layout_proto.h"
#include "gmock/gmock.h"
#include "tests/inprocess_pool.h"

namespace cohort::testing {
namespace {

class GroupStateTest : public InProcessPoolTest {};

TEST_F(GroupStateTest, CommunicatorAbortedAfterReady_ReportedWithoutAsking) {
  StartAgents(2);
  v1::InitializeRequest init;
  *init.mutable_config() = ToProto(ParallelConfig{.world_size = 2, .tensor_parallel_size = 2});
  ASSERT_TRUE(client_->Initialize(init).ok());
  ASSERT_TRUE(
      WaitFor([](const v1::PoolState& s) { return s.phase() == v1::POOL_PHASE_READY; }).ok());
  std::shared_ptr<const agent::GroupMap> groups = agents_[1]->groups();
  ASSERT_NE(groups, nullptr);
  // The engine's tp communicator on rank 1 fails (here: aborted locally).
  groups->get(GroupKind::kTp)->comm().Abort();
  absl::StatusOr<v1::PoolState> seen = WaitFor([](const v1::PoolState& s) {
    for (const v1::MemberState& m : s.members()) {
      if (m.rank() != 1) continue;
      for (const v1::GroupReport& g : m.groups()) {
        if (g.kind() == v1::GROUP_KIND_TP) return g.state() == v1::COMM_STATE_ABORTED;
      }
    }
    return false;
  });
  ASSERT_TRUE(seen.ok()) << seen.status();
  // Rank 0's tp group and rank 1's other groups are untouched.
  for (const v1::MemberState& m : seen->members()) {
    for (const v1::GroupReport& g : m.groups()) {
      if (m.rank() == 1 && g.kind() == v1::GROUP_KIND_TP) {
        EXPECT_THAT(g.async_error(), ::testing::HasSubstr("aborted"));
        continue;
      }
      EXPECT_EQ(g.state(), v1::COMM_STATE_READY) << "rank " << m.rank() << " kind " << g.kind();
    }
  }
  absl::StatusOr<std::vector<v1::Event>> events = server_->coordinator().GetEvents("default", 0, 0);
  ASSERT_TRUE(events.ok());
  int group_state_events = 0;
  for (const v1::Event& e : *events) {
    if (e.kind() == v1::EVENT_KIND_GROUP_STATE && e.rank() == 1) ++group_state_events;
  }
  EXPECT_EQ(group_state_events, 1);  // one change, one report: unchanged groups send nothing
}

TEST_F(GroupStateTest, EmbeddedAgentRefusesChecksUnlessTheEngineAllowsThem) {
  // Rank 1 is embedded in an engine that drives its communicators itself: no check on them.
  StartAgents(2, [](int r, agent::AgentOptions& options) { options.allow_checks = r != 1; });
  v1::InitializeRequest init;
  *init.mutable_config() = ToProto(ParallelConfig{.world_size = 2, .tensor_parallel_size = 2});
  ASSERT_TRUE(client_->Initialize(init).ok());
  ASSERT_TRUE(
      WaitFor([](const v1::PoolState& s) { return s.phase() == v1::POOL_PHASE_READY; }).ok());
  ASSERT_TRUE(client_->Check("default").ok());
  absl::StatusOr<v1::PoolState> answered = WaitFor([](const v1::PoolState& s) {
    for (const v1::MemberState& m : s.members()) {
      if (m.rank() != 1) continue;
      for (const v1::GroupReport& g : m.groups()) {
        if (!absl::StrContains(g.error(), "check refused")) return false;
      }
      return m.groups_size() > 0;
    }
    return false;
  });
  ASSERT_TRUE(answered.ok()) << answered.status();
  for (const v1::MemberState& m : answered->members()) {
    for (const v1::GroupReport& g : m.groups()) {
      // The refusal leaves the communicators as they are; rank 0 ran its checks.
      EXPECT_EQ(g.state(), v1::COMM_STATE_READY);
      if (m.rank() == 0) {
        EXPECT_EQ(g.error(), "");
      }
    }
  }
  EXPECT_EQ(answered->phase(), v1::POOL_PHASE_READY);
}

}  // namespace
}  // namespace cohort::testing
