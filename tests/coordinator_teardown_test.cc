// Coordinator in process: members lost (heartbeats, a stalled coordinator), Destroy and its
// failures, and the group states a teardown leaves.
#include "tests/coordinator_fixture.h"

namespace cohort::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST_F(CoordinatorTest, MissedHeartbeats_MemberLost_SurvivorsAborted) {
  std::vector<Joined> agents = JoinWorld(2);
  ASSERT_TRUE(Init({.world_size = 2, .data_parallel_size = 2}).ok());
  ASSERT_TRUE(Report(agents[0], 1, true).ok());
  ASSERT_TRUE(Report(agents[1], 1, true).ok());
  v1::AgentMessage heartbeat;
  heartbeat.mutable_heartbeat()->set_generation(1);
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(1));
    ASSERT_TRUE(coordinator_->HandleAgentMessage(agents[0].session_id, heartbeat).ok());
    timers_.FireDue();
  }
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_DEGRADED);
  EXPECT_THAT(s.error(), HasSubstr("rank 1 (agent-1) was lost: no heartbeat"));
  EXPECT_TRUE(agents[1].sink->closed.has_value());
  ASSERT_FALSE(agents[0].sink->teardowns().empty());
  EXPECT_TRUE(agents[0].sink->teardowns().back().abort());
  EXPECT_FALSE(agents[0].sink->closed.has_value());
}

TEST_F(CoordinatorTest, Destroy_ModelParallel_ThenInitializeReusesWorld) {
  std::vector<Joined> agents =
      ReadyWorld({.world_size = 4, .data_parallel_size = 2, .tensor_parallel_size = 2});
  ASSERT_EQ(agents.size(), 4u);
  v1::DestroyRequest destroy;
  ASSERT_TRUE(coordinator_->Destroy(destroy).ok());
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_DESTROYING);
  for (auto& a : agents) {
    ASSERT_EQ(a.sink->teardowns().size(), 1u);
    EXPECT_FALSE(a.sink->teardowns()[0].abort());
    ASSERT_TRUE(TeardownDone(a, 1, v1::DESTROY_SCOPE_MODEL_PARALLEL).ok());
  }
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_DESTROYED);
  ASSERT_TRUE(Init({.world_size = 4, .pipeline_parallel_size = 4}).ok());
  for (auto& a : agents) {
    ASSERT_EQ(a.sink->plans().size(), 2u);
    EXPECT_TRUE(a.sink->plans()[1].reuse_world());
    EXPECT_EQ(a.sink->plans()[1].reuse_world_generation(), 1);
    EXPECT_EQ(a.sink->plans()[1].generation(), 2);
  }
}

TEST_F(CoordinatorTest, Destroy_All_NextInitializeBuildsANewWorld) {
  std::vector<Joined> agents = ReadyWorld({.world_size = 2, .tensor_parallel_size = 2});
  ASSERT_EQ(agents.size(), 2u);
  v1::DestroyRequest destroy;
  destroy.set_scope(v1::DESTROY_SCOPE_ALL);
  ASSERT_TRUE(coordinator_->Destroy(destroy).ok());
  for (auto& a : agents) ASSERT_TRUE(TeardownDone(a, 1, v1::DESTROY_SCOPE_ALL).ok());
  ASSERT_TRUE(Init({.world_size = 2, .tensor_parallel_size = 2}).ok());
  EXPECT_FALSE(agents[0].sink->plans()[1].reuse_world());
  EXPECT_EQ(coordinator_->Destroy(v1::DestroyRequest()).status().code(), absl::StatusCode::kOk);
}

TEST_F(CoordinatorTest, Destroy_NothingToDestroy_FailedPrecondition) {
  JoinWorld(1);
  EXPECT_EQ(coordinator_->Destroy(v1::DestroyRequest()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  v1::DestroyRequest unknown;
  unknown.set_pool("ghost");
  EXPECT_EQ(coordinator_->Destroy(unknown).status().code(), absl::StatusCode::kNotFound);
}

// ---- Teardown failures: the pool's error and the DESTROYED event name who and why ----------

class DestroyFailureTest : public CoordinatorTest {
 protected:
  // Two members, READY at generation 1, then a model-parallel destroy (DESTROYING).
  void SetUp() override {
    agents_ = JoinWorld(2);
    ASSERT_TRUE(Init({.world_size = 2, .tensor_parallel_size = 2}).ok());
    for (auto& a : agents_) ASSERT_TRUE(Report(a, 1, true).ok());
    ASSERT_EQ(State().phase(), v1::POOL_PHASE_READY);
    ASSERT_TRUE(coordinator_->Destroy(v1::DestroyRequest()).ok());
    ASSERT_EQ(State().phase(), v1::POOL_PHASE_DESTROYING);
  }

  absl::Status TeardownFailed(const Joined& j, const std::string& error) {
    v1::AgentMessage m;
    m.mutable_teardown()->set_generation(1);
    m.mutable_teardown()->set_scope(v1::DESTROY_SCOPE_MODEL_PARALLEL);
    m.mutable_teardown()->set_ok(false);
    m.mutable_teardown()->set_error(error);
    return coordinator_->HandleAgentMessage(j.session_id, m);
  }

  // The message of the pool's DESTROYED event; "" when there is none.
  std::string DestroyedEvent() {
    absl::StatusOr<std::vector<v1::Event>> events = coordinator_->GetEvents("default", 0, 0);
    EXPECT_TRUE(events.ok()) << events.status();
    if (!events.ok()) return "";
    for (const v1::Event& e : *events) {
      if (e.kind() == v1::EVENT_KIND_DESTROYED) return e.message();
    }
    ADD_FAILURE() << "no DESTROYED event";
    return "";
  }

  std::vector<Joined> agents_;
};

TEST_F(DestroyFailureTest, MemberLostBeforeItsReport_ErrorAndEventNameRankIdentityReason) {
  ASSERT_TRUE(TeardownDone(agents_[0], 1, v1::DESTROY_SCOPE_MODEL_PARALLEL).ok());
  coordinator_->Detach(agents_[1].session_id, agents_[1].sink, "connection reset by peer");
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_DESTROYED);
  const std::string expected = "rank 1 (agent-1) was lost during the teardown: connection reset";
  EXPECT_THAT(s.error(), HasSubstr(expected));
  EXPECT_THAT(DestroyedEvent(), HasSubstr("with errors: " + expected));
}

TEST_F(DestroyFailureTest, FailedTeardownReport_ErrorAndEventNameRankIdentityReason) {
  ASSERT_TRUE(TeardownFailed(agents_[1], "ncclCommDestroy: unhandled cuda error").ok());
  ASSERT_TRUE(TeardownDone(agents_[0], 1, v1::DESTROY_SCOPE_MODEL_PARALLEL).ok());
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_DESTROYED);
  const std::string expected =
      "rank 1 (agent-1) failed its teardown: ncclCommDestroy: unhandled cuda error";
  EXPECT_THAT(s.error(), HasSubstr(expected));
  EXPECT_THAT(DestroyedEvent(), HasSubstr(expected));
}

TEST_F(DestroyFailureTest, TwoFailures_BothNamed) {
  ASSERT_TRUE(TeardownFailed(agents_[0], "").ok());
  coordinator_->Detach(agents_[1].session_id, agents_[1].sink, "killed");
  const std::string error = State().error();
  EXPECT_THAT(error, HasSubstr("rank 0 (agent-0) failed its teardown: teardown failed"));
  EXPECT_THAT(error, HasSubstr("rank 1 (agent-1) was lost during the teardown: killed"));
}

TEST_F(DestroyFailureTest, NoReportByTheDeadline_NamesRankAndIdentity) {
  ASSERT_TRUE(TeardownDone(agents_[0], 1, v1::DESTROY_SCOPE_MODEL_PARALLEL).ok());
  // Both stay connected and heartbeating; rank 1 just never reports.
  Tick(agents_, static_cast<int>(absl::ToInt64Seconds(CoordinatorOptions{}.teardown_deadline)));
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_DESTROYED);
  EXPECT_THAT(s.error(), HasSubstr("no teardown report within 30s from rank 1 (agent-1)"));
  EXPECT_THAT(DestroyedEvent(), HasSubstr("rank 1 (agent-1)"));
}

TEST_F(DestroyFailureTest, MemberLeavesAfterItsReport_TeardownStillClean) {
  ASSERT_TRUE(TeardownDone(agents_[0], 1, v1::DESTROY_SCOPE_MODEL_PARALLEL).ok());
  coordinator_->Detach(agents_[0].session_id, agents_[0].sink, "left after its teardown");
  ASSERT_TRUE(TeardownDone(agents_[1], 1, v1::DESTROY_SCOPE_MODEL_PARALLEL).ok());
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_DESTROYED);
  EXPECT_EQ(s.error(), "");
  EXPECT_THAT(DestroyedEvent(), Not(HasSubstr("error")));
}

TEST_F(CoordinatorTest, Destroy_CleanTeardownOfADegradedPool_ClearsTheOldError) {
  std::vector<Joined> agents = ReadyWorld({.world_size = 2, .tensor_parallel_size = 2});
  ASSERT_EQ(agents.size(), 2u);
  coordinator_->Detach(agents[1].session_id, agents[1].sink, "killed");
  ASSERT_EQ(State().phase(), v1::POOL_PHASE_DEGRADED);
  ASSERT_THAT(State().error(), HasSubstr("rank 1 (agent-1) was lost"));
  ASSERT_TRUE(coordinator_->Destroy(v1::DestroyRequest()).ok());
  ASSERT_TRUE(TeardownDone(agents[0], 1, v1::DESTROY_SCOPE_MODEL_PARALLEL).ok());
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_DESTROYED);
  EXPECT_EQ(s.error(), "");
}

TEST_F(CoordinatorTest, CoordinatorStall_LateSweepDeclaresNobodyLost_SilentMemberLostAfterWindow) {
  std::vector<Joined> agents = ReadyWorld({.world_size = 2, .data_parallel_size = 2});
  ASSERT_EQ(agents.size(), 2u);
  // The coordinator does not run for 5 s (SIGSTOP, a paused VM): the heartbeats sent meanwhile
  // are unread when the overdue sweep fires first.
  clock_.Advance(absl::Seconds(5));
  timers_.FireDue();
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_READY);
  EXPECT_FALSE(agents[0].sink->closed.has_value());
  EXPECT_FALSE(agents[1].sink->closed.has_value());
  // Live again: agent-0 heartbeats, agent-1 stays silent and is lost once a full window passes.
  Tick({agents[0]}, 5);
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_DEGRADED);
  EXPECT_THAT(s.error(), HasSubstr("rank 1 (agent-1) was lost: no heartbeat"));
  EXPECT_FALSE(agents[0].sink->closed.has_value());
}

std::map<v1::GroupKind, v1::CommState> GroupStatesOf(const v1::MemberState& m) {
  std::map<v1::GroupKind, v1::CommState> out;
  for (const v1::GroupReport& g : m.groups()) out[g.kind()] = g.state();
  return out;
}

TEST_F(CoordinatorTest, Destroy_GroupStatesShowWhatWasDestroyed) {
  std::vector<Joined> agents = JoinWorld(2);
  ASSERT_TRUE(Init({.world_size = 2, .tensor_parallel_size = 2}).ok());
  for (auto& a : agents) {
    ASSERT_TRUE(ReportWithGroups(*coordinator_, a.session_id, a.sink->plans().back()).ok());
  }
  ASSERT_EQ(State().phase(), v1::POOL_PHASE_READY);
  ASSERT_TRUE(coordinator_->Destroy(v1::DestroyRequest()).ok());
  // agent-0 names what it released; agent-1 (an older agent) only says which scope.
  v1::AgentMessage named;
  named.mutable_teardown()->set_generation(1);
  named.mutable_teardown()->set_ok(true);
  v1::GroupReport* tp = named.mutable_teardown()->add_groups();
  tp->set_kind(v1::GROUP_KIND_TP);
  tp->set_state(v1::COMM_STATE_DESTROYED);
  ASSERT_TRUE(coordinator_->HandleAgentMessage(agents[0].session_id, named).ok());
  ASSERT_TRUE(TeardownDone(agents[1], 1, v1::DESTROY_SCOPE_MODEL_PARALLEL).ok());
  v1::PoolState s = State();
  ASSERT_EQ(s.phase(), v1::POOL_PHASE_DESTROYED);
  ASSERT_EQ(s.members_size(), 2);
  for (const v1::MemberState& m : s.members()) {
    std::map<v1::GroupKind, v1::CommState> states = GroupStatesOf(m);
    EXPECT_EQ(states[v1::GROUP_KIND_WORLD], v1::COMM_STATE_READY) << m.identity();
    EXPECT_EQ(states[v1::GROUP_KIND_TP], v1::COMM_STATE_DESTROYED) << m.identity();
  }
  // Destroying the kept world too leaves nothing READY.
  v1::DestroyRequest all;
  all.set_scope(v1::DESTROY_SCOPE_ALL);
  ASSERT_TRUE(coordinator_->Destroy(all).ok());
  for (auto& a : agents) ASSERT_TRUE(TeardownDone(a, 1, v1::DESTROY_SCOPE_ALL).ok());
  const v1::PoolState after = State();
  ASSERT_EQ(after.members_size(), 2);
  for (const v1::MemberState& m : after.members()) {
    for (const auto& [kind, state] : GroupStatesOf(m)) {
      EXPECT_EQ(state, v1::COMM_STATE_DESTROYED) << m.identity() << " " << kind;
    }
  }
}

}  // namespace
}  // namespace cohort::coordinator
