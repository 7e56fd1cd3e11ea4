// Coordinator in process: standbys and refill, rejoining, recovery after a coordinator restart
// (with and without a state file), durable ranks and elastic dp.
#include "tests/coordinator_fixture.h"

namespace cohort::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST_F(CoordinatorTest, SessionNeverAttached_RankIsGivenBack) {
  v1::JoinRequest request;
  request.set_identity("slow");
  request.set_incarnation("1");
  ASSERT_TRUE(coordinator_->Join(request).ok());
  EXPECT_EQ(State().members_size(), 1);
  clock_.Advance(absl::Seconds(31));
  timers_.FireDue();
  EXPECT_EQ(State().members_size(), 0);
}

TEST_F(CoordinatorTest, StandbyPromotedWhenTheWorldGrows) {
  ASSERT_TRUE(Init({.world_size = 1}).ok());
  std::vector<Joined> agents = JoinWorld(1);
  Joined spare = JoinAgent("spare");
  EXPECT_EQ(spare.rank, -1);
  ASSERT_TRUE(Report(agents[0], 1, true).ok());
  v1::DestroyRequest destroy;
  destroy.set_scope(v1::DESTROY_SCOPE_ALL);
  ASSERT_TRUE(coordinator_->Destroy(destroy).ok());
  ASSERT_TRUE(TeardownDone(agents[0], 1, v1::DESTROY_SCOPE_ALL).ok());
  ASSERT_TRUE(Init({.world_size = 2, .data_parallel_size = 2}).ok());
  ASSERT_FALSE(spare.sink->messages.empty());
  EXPECT_EQ(spare.sink->messages[0].rank_assignment().rank(), 1);
  ASSERT_EQ(spare.sink->plans().size(), 1u);
  EXPECT_EQ(spare.sink->plans()[0].rank(), 1);
}

// ---- Failures, refills and recovery ----------------------------------------------------------

TEST_F(CoordinatorTest, MemberLost_Degraded_SameIdentityBack_NextGenerationSameLayout) {
  std::vector<Joined> agents = JoinWorld(4);
  const ParallelConfig config{.world_size = 4, .data_parallel_size = 2, .tensor_parallel_size = 2};
  ASSERT_TRUE(Init(config).ok());
  for (auto& a : agents) ASSERT_TRUE(Report(a, 1, true).ok());
  coordinator_->Detach(agents[2].session_id, agents[2].sink, "killed");
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_DEGRADED);
  for (int r : {0, 1, 3}) {
    ASSERT_FALSE(agents[r].sink->teardowns().empty());
    EXPECT_TRUE(agents[r].sink->teardowns().back().abort());
  }
  // The restarted process (new incarnation) gets its old rank; generation 2 starts by itself
  // once the loss has settled.
  Joined back = JoinAgent("agent-2", std::nullopt, "inc-2");
  EXPECT_EQ(back.rank, 2);
  SettleLosses();
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(State().generation(), 2);
  ASSERT_EQ(back.sink->plans().size(), 1u);
  EXPECT_EQ(agents[0].sink->plans().back().generation(), 2);
  EXPECT_EQ(agents[0].sink->plans().back().layout().DebugString(),
            agents[0].sink->plans().front().layout().DebugString());
  // Stale reports from generation 1 are refused.
  EXPECT_EQ(Report(agents[0], 1, true).code(), absl::StatusCode::kAborted);
}

TEST_F(CoordinatorTest, MemberLost_StandbyTakesItsRankAtOnce) {
  std::vector<Joined> agents = JoinWorld(2);
  ASSERT_TRUE(Init({.world_size = 2, .data_parallel_size = 2}).ok());
  Joined spare = JoinAgent("spare");
  ASSERT_EQ(spare.rank, -1);
  for (auto& a : agents) ASSERT_TRUE(Report(a, 1, true).ok());
  coordinator_->Detach(agents[1].session_id, agents[1].sink, "killed");
  ASSERT_FALSE(spare.sink->messages.empty());
  EXPECT_EQ(spare.sink->messages[0].rank_assignment().rank(), 1);
  SettleLosses();
  ASSERT_EQ(spare.sink->plans().size(), 1u);
  EXPECT_EQ(spare.sink->plans()[0].generation(), 2);
  EXPECT_EQ(spare.sink->plans()[0].rank(), 1);
  // The replaced agent, back later, is a standby.
  Joined old = JoinAgent("agent-1", std::nullopt, "inc-2");
  EXPECT_EQ(old.rank, -1);
}

TEST_F(CoordinatorTest, StandbyAttachingToADegradedPool_RefillsTheLostRank) {
  std::vector<Joined> agents = ReadyWorld({.world_size = 2, .data_parallel_size = 2});
  ASSERT_EQ(agents.size(), 2u);
  coordinator_->Detach(agents[0].session_id, agents[0].sink, "killed");
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_DEGRADED);
  Joined spare = JoinAgent("spare");  // attaches after the loss
  ASSERT_FALSE(spare.sink->messages.empty());
  EXPECT_EQ(spare.sink->messages[0].rank_assignment().rank(), 0);
  SettleLosses();
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  ASSERT_FALSE(spare.sink->plans().empty());
  EXPECT_EQ(spare.sink->plans().back().rank(), 0);
}

TEST_F(CoordinatorTest, Rejoin_HoldingAGenerationThePoolMovedPast_IsToldToAbort) {
  std::vector<Joined> agents = ReadyWorld({.world_size = 2, .tensor_parallel_size = 2});
  ASSERT_EQ(agents.size(), 2u);
  coordinator_->Detach(agents[1].session_id, agents[1].sink, "network blip");
  v1::HeldState held;
  held.set_holding(true);
  held.set_rank(1);
  held.set_world_size(2);
  held.set_generation(1);
  Joined back = JoinAgent("agent-1", std::nullopt, "inc-1", "", held);
  ASSERT_FALSE(back.sink->teardowns().empty());
  EXPECT_TRUE(back.sink->teardowns()[0].abort());
  EXPECT_EQ(back.sink->teardowns()[0].generation(), 1);
  SettleLosses();
  ASSERT_FALSE(back.sink->plans().empty());
  EXPECT_EQ(back.sink->plans().back().generation(), 2);
}

class RecoveryTest : public CoordinatorTest {
 protected:
  RecoveryTest() {
    state_file_ = ::testing::TempDir() + "/cohort-state-" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".json";
    std::remove(state_file_.c_str());
    CoordinatorOptions options;
    options.state_file = state_file_;
    Reset(options);
  }

  // A READY pool of `n`, then a coordinator restart (same state file).
  void ReadyThenRestart(int n, const ParallelConfig& config) {
    agents_ = JoinWorld(n);
    ASSERT_TRUE(Init(config).ok());
    for (auto& a : agents_) ASSERT_TRUE(Report(a, 1, true).ok());
    ASSERT_EQ(State().phase(), v1::POOL_PHASE_READY);
    CoordinatorOptions options;
    options.state_file = state_file_;
    sinks_.clear();
    Reset(options);
  }

  std::string state_file_;
  std::vector<Joined> agents_;
};

TEST_F(RecoveryTest, StateFile_KeepsConfigGenerationAndRanks) {
  const ParallelConfig config{.world_size = 2, .data_parallel_size = 2};
  ReadyThenRestart(2, config);
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_RECOVERING);
  EXPECT_EQ(s.generation(), 1);
  EXPECT_EQ(s.config().data_parallel_size(), 2);
  // An agent with no hint that comes back gets its old rank from the state file.
  Joined one = JoinAgent("agent-1");
  EXPECT_EQ(one.rank, 1);
}

TEST_F(RecoveryTest, EveryMemberBackHoldingTheSameGeneration_ReadyWithoutRebuilding) {
  const ParallelConfig config{.world_size = 4, .cfg_parallel_size = 2, .ulysses_degree = 2};
  ReadyThenRestart(4, config);
  std::vector<Joined> back;
  for (int r = 3; r >= 0; --r) {
    back.push_back(
        JoinAgent("agent-" + std::to_string(r), std::nullopt, "inc-1", "", HeldOf(r, 1, config)));
    EXPECT_EQ(back.back().rank, r);
  }
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_READY);
  EXPECT_EQ(s.generation(), 1);
  EXPECT_EQ(s.members_ready(), 4);
  for (const Joined& j : back) {
    EXPECT_TRUE(j.sink->plans().empty());
    EXPECT_TRUE(j.sink->teardowns().empty());
  }
}

TEST_F(RecoveryTest, ConflictingGenerations_HoldersAbort_NextGenerationStarts) {
  const ParallelConfig config{.world_size = 2, .tensor_parallel_size = 2};
  ReadyThenRestart(2, config);
  Joined a = JoinAgent("agent-0", std::nullopt, "inc-1", "", HeldOf(0, 1, config));
  Joined b = JoinAgent("agent-1", std::nullopt, "inc-1", "", HeldOf(1, 3, config));
  ASSERT_FALSE(a.sink->teardowns().empty());
  EXPECT_TRUE(a.sink->teardowns()[0].abort());
  ASSERT_FALSE(b.sink->teardowns().empty());
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(s.generation(), 4);  // after the highest generation reported
  ASSERT_EQ(a.sink->plans().size(), 1u);
  EXPECT_EQ(a.sink->plans()[0].generation(), 4);
}

TEST_F(RecoveryTest, NotEveryoneBackInTime_AbortAndWait) {
  const ParallelConfig config{.world_size = 2, .tensor_parallel_size = 2};
  ReadyThenRestart(2, config);
  Joined a = JoinAgent("agent-0", std::nullopt, "inc-1", "", HeldOf(0, 1, config));
  Tick({a}, 31);
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_WAITING);
  ASSERT_FALSE(a.sink->teardowns().empty());
  EXPECT_TRUE(a.sink->teardowns()[0].abort());
}

TEST_F(CoordinatorTest, NoStateFile_PoolRebuiltFromTheMembersReports) {
  const ParallelConfig config{.world_size = 2, .data_parallel_size = 2};
  v1::HeldState held = HeldOf(0, 7, config);
  held.set_rank(1);
  Joined one = JoinAgent("agent-1", std::nullopt, "inc-1", "", held);
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_RECOVERING);
  held.set_rank(0);
  Joined zero = JoinAgent("agent-0", std::nullopt, "inc-1", "", held);
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_READY);
  EXPECT_EQ(s.generation(), 7);
  EXPECT_EQ(s.config().data_parallel_size(), 2);
  EXPECT_TRUE(one.sink->plans().empty());
}

// ---- Issue 8: recovery with standbys, hints, coordinator stalls, destroyed groups -------------

TEST_F(RecoveryTest, StandbyBackFirst_WaitsWhileRecovering_HoldersKeepTheirRanks) {
  const ParallelConfig config{.world_size = 4, .cfg_parallel_size = 2, .ulysses_degree = 2};
  ReadyThenRestart(4, config);
  // The standby reconnects before any holder: the lowest free rank (0) belongs to agent-0.
  Joined spare = JoinAgent("spare");
  EXPECT_EQ(spare.rank, -1);
  std::vector<Joined> back;
  for (int r = 0; r < 4; ++r) {
    back.push_back(
        JoinAgent("agent-" + std::to_string(r), std::nullopt, "inc-1", "", HeldOf(r, 1, config)));
    EXPECT_EQ(back.back().rank, r);
  }
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_READY);
  EXPECT_EQ(s.generation(), 1);
  for (const Joined& j : back) {
    EXPECT_TRUE(j.sink->plans().empty());
    EXPECT_TRUE(j.sink->teardowns().empty());
  }
  EXPECT_TRUE(spare.sink->plans().empty());
}

TEST_F(CoordinatorTest, NoStateFile_StandbyJoinedBeforeTheHolders_IsDemoted_PoolRestored) {
  const ParallelConfig config{.world_size = 2, .data_parallel_size = 2};
  v1::HeldState held = HeldOf(0, 7, config);
  // A fresh standby reaches the restarted coordinator first: the pool is unknown, so it takes
  // rank 0 — until the first holder shows the pool is recovering.
  Joined spare = JoinAgent("spare");
  EXPECT_EQ(spare.rank, 0);
  held.set_rank(1);
  Joined one = JoinAgent("agent-1", std::nullopt, "inc-1", "", held);
  EXPECT_EQ(one.rank, 1);
  ASSERT_FALSE(spare.sink->messages.empty());
  EXPECT_EQ(spare.sink->messages.back().rank_assignment().rank(), -1);
  held.set_rank(0);
  Joined zero = JoinAgent("agent-0", std::nullopt, "inc-1", "", held);
  EXPECT_EQ(zero.rank, 0);
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_READY);
  EXPECT_EQ(s.generation(), 7);
  EXPECT_TRUE(zero.sink->teardowns().empty());
  EXPECT_TRUE(one.sink->teardowns().empty());
}

TEST_F(CoordinatorTest, NoStateFile_HintOutsideTheRecoveredWorld_IsAStandbyThatRefills) {
  const ParallelConfig config{.world_size = 2, .tensor_parallel_size = 2};
  v1::HeldState held = HeldOf(0, 3, config);
  held.set_rank(0);
  std::vector<Joined> agents;
  agents.push_back(JoinAgent("agent-0", std::nullopt, "inc-1", "", held));
  // World 2 is not fully known yet (only one holder is back): a hint of 2 must not make rank 2.
  Joined spare = JoinAgent("spare", 2);
  EXPECT_EQ(spare.rank, -1);
  held.set_rank(1);
  agents.push_back(JoinAgent("agent-1", std::nullopt, "inc-1", "", held));
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_READY);
  // The standby refills a lost rank like any other.
  coordinator_->Detach(agents[1].session_id, agents[1].sink, "killed");
  SettleLosses();
  ASSERT_FALSE(spare.sink->plans().empty());
  EXPECT_EQ(spare.sink->plans().back().rank(), 1);
  EXPECT_EQ(spare.sink->plans().back().generation(), 4);
}

TEST_F(CoordinatorTest, Join_HeldStateInconsistentWithItsConfig_InvalidArgument) {
  v1::HeldState held;
  held.set_holding(true);
  held.set_rank(1);
  held.set_world_size(2);
  held.set_generation(7);
  *held.mutable_config() = ToProto(ParallelConfig{.world_size = 1});
  v1::JoinRequest request;
  request.set_identity("liar");
  request.set_incarnation("x");
  *request.mutable_held() = held;
  absl::StatusOr<v1::JoinResponse> joined = coordinator_->Join(request);
  EXPECT_EQ(joined.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(joined.status().message(), HasSubstr("differs from its config"));
  held.set_rank(5);
  *request.mutable_held() = held;
  EXPECT_EQ(coordinator_->Join(request).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CoordinatorTest, ElasticDp_GrowBack_GivesEveryAgentItsRankHint) {
  CoordinatorOptions options;
  options.elastic_dp_after = absl::Seconds(5);
  options.refill_from_standby = false;
  Reset(options);
  std::vector<Joined> agents = JoinWorld(4);  // agent-r with rank hint r
  const ParallelConfig full{.world_size = 4, .data_parallel_size = 2, .tensor_parallel_size = 2};
  ASSERT_TRUE(Init(full).ok());
  for (auto& a : agents) ASSERT_TRUE(Report(a, 1, true).ok());
  // Replica 0 (ranks 0, 1) loses rank 1: dp shrinks, agents 2 and 3 move down to ranks 0, 1.
  coordinator_->Detach(agents[1].session_id, agents[1].sink, "killed");
  Tick({agents[0], agents[2], agents[3]}, 6);
  ASSERT_EQ(State().world_size(), 2);
  EXPECT_EQ(agents[2].sink->plans().back().rank(), 0);
  ASSERT_TRUE(Report(agents[2], 2, true).ok());
  ASSERT_TRUE(Report(agents[3], 2, true).ok());
  ASSERT_EQ(State().phase(), v1::POOL_PHASE_READY);
  // agent-1 (rank hint 1) returns: the pool grows back and every pod gets its own ordinal.
  Joined back = JoinAgent("agent-1", 1, "inc-2");
  ASSERT_EQ(State().phase(), v1::POOL_PHASE_DESTROYING);
  ASSERT_TRUE(TeardownDone(agents[2], 2, v1::DESTROY_SCOPE_ALL).ok());
  ASSERT_TRUE(TeardownDone(agents[3], 2, v1::DESTROY_SCOPE_ALL).ok());
  v1::PoolState s = State();
  ASSERT_EQ(s.phase(), v1::POOL_PHASE_INITIALIZING);
  ASSERT_EQ(s.world_size(), 4);
  EXPECT_EQ(agents[0].sink->plans().back().rank(), 0);
  EXPECT_EQ(back.sink->plans().back().rank(), 1);
  EXPECT_EQ(agents[2].sink->plans().back().rank(), 2);
  EXPECT_EQ(agents[3].sink->plans().back().rank(), 3);
  for (const v1::MemberState& m : s.members()) {
    EXPECT_EQ(m.identity(), absl::StrCat("agent-", m.rank()));
  }
}

// ---- Issue 9: hostile and oversized input ---------------------------------------------------

TEST_F(CoordinatorTest, DurableRanks_OneIdentityPerRank) {
  // Fifty identities take rank 0 one after another and never attach (each is dropped at the
  // attach timeout): the state file remembers the last one only, not fifty.
  CoordinatorOptions options;
  options.state_file = ::testing::TempDir() + "/cohort-durable-ranks.json";
  std::remove(options.state_file.c_str());
  Reset(options);
  for (int i = 0; i < 50; ++i) {
    v1::JoinRequest request;
    request.set_identity(absl::StrCat("pod-", i));
    request.set_incarnation("x");
    request.set_rank_hint(0);
    absl::StatusOr<v1::JoinResponse> joined = coordinator_->Join(request);
    ASSERT_TRUE(joined.ok()) << joined.status();
    EXPECT_EQ(joined->rank(), 0);
    clock_.Advance(absl::Seconds(31));
    timers_.FireDue();
  }
  std::ifstream in(options.state_file);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("pod-49"), std::string::npos) << text.str();
  EXPECT_EQ(text.str().find("pod-48"), std::string::npos) << text.str();
}

TEST_F(CoordinatorTest, ElasticDp_LostReplicaShrinksThenGrowsBack) {
  CoordinatorOptions options;
  options.elastic_dp_after = absl::Seconds(5);
  options.refill_from_standby = false;
  Reset(options);
  std::vector<Joined> agents = JoinWorld(4);
  const ParallelConfig full{.world_size = 4, .data_parallel_size = 2, .tensor_parallel_size = 2};
  ASSERT_TRUE(Init(full).ok());
  for (auto& a : agents) ASSERT_TRUE(Report(a, 1, true).ok());
  coordinator_->Detach(agents[3].session_id, agents[3].sink, "killed");
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_DEGRADED);
  Tick({agents[0], agents[1], agents[2]}, 6);
  // dp replica 1 (ranks 2, 3) lost rank 3: dp shrinks to 1; rank 2's agent waits as a standby.
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(s.generation(), 2);
  EXPECT_EQ(s.world_size(), 2);
  EXPECT_EQ(s.config().data_parallel_size(), 1);
  EXPECT_EQ(agents[0].sink->plans().back().generation(), 2);
  EXPECT_EQ(agents[2].sink->plans().size(), 1u);  // none for generation 2
  EXPECT_EQ(agents[2].sink->messages.back().rank_assignment().rank(), -1);
  ASSERT_TRUE(Report(agents[0], 2, true).ok());
  ASSERT_TRUE(Report(agents[1], 2, true).ok());
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_READY);
  // The lost agent returns: enough agents for dp 2 again; the pool rebuilds the full config.
  Joined back = JoinAgent("agent-3", std::nullopt, "inc-2");
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_DESTROYING);
  ASSERT_TRUE(TeardownDone(agents[0], 2, v1::DESTROY_SCOPE_ALL).ok());
  ASSERT_TRUE(TeardownDone(agents[1], 2, v1::DESTROY_SCOPE_ALL).ok());
  s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(s.generation(), 3);
  EXPECT_EQ(s.world_size(), 4);
  EXPECT_EQ(s.config().data_parallel_size(), 2);
  EXPECT_EQ(agents[2].sink->plans().back().rank(), 2);
  EXPECT_EQ(back.sink->plans().back().rank(), 3);
}

}  // namespace
}  // namespace cohort::coordinator
