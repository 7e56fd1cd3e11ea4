// The settle window after member losses (CoordinatorOptions::regroup_settle), in process on a fake
// clock: losses arriving together are rebuilt by one generation, not one each; the window opens
// at the first loss, each later loss pushes it back up to a cap; nothing starts the generation
// early but an operator's
// Initialize; a destroy or a deleted pool closes it; a failure that is no loss does not wait.
#include "tests/coordinator_fixture.h"

namespace cohort::coordinator {
namespace {

using ::testing::UnorderedElementsAre;

constexpr absl::Duration kSettle = absl::Milliseconds(250);

int CountEvents(Coordinator& coordinator, v1::EventKind kind) {
  absl::StatusOr<std::vector<v1::Event>> events = coordinator.GetEvents("default", 0, 1000);
  EXPECT_TRUE(events.ok()) << events.status();
  int n = 0;
  for (const v1::Event& e : events.value_or(std::vector<v1::Event>())) n += e.kind() == kind;
  return n;
}

absl::Status Leave(Coordinator& coordinator, const std::string& session_id) {
  v1::AgentMessage m;
  m.mutable_leave()->set_reason("node drain");
  return coordinator.HandleAgentMessage(session_id, m);
}

class SettleTest : public CoordinatorTest {
 protected:
  SettleTest() { Reset(SettleOptions(kSettle)); }

  static CoordinatorOptions SettleOptions(absl::Duration settle) {
    CoordinatorOptions options;
    options.regroup_settle = settle;
    return options;
  }

  // A READY world of `world` ranks (dp = world) and `spares` standbys, spare-0 .. spare-N.
  void ReadyWithSpares(int world, int spares) {
    agents_ = ReadyWorld({.world_size = world, .data_parallel_size = world});
    ASSERT_EQ(agents_.size(), static_cast<size_t>(world));
    for (int i = 0; i < spares; ++i) {
      spares_.push_back(JoinAgent(absl::StrCat("spare-", i)));
      ASSERT_EQ(spares_.back().rank, -1);
    }
  }

  void Kill(int rank) {
    coordinator_->Detach(agents_[rank].session_id, agents_[rank].sink, "killed");
  }

  std::vector<Joined> agents_;
  std::vector<Joined> spares_;
};

TEST_F(SettleTest, ThreeLossesInARow_OneGeneration_StandbysInTheLostRanks) {
  ReadyWithSpares(8, 3);
  Kill(1);
  Kill(4);
  Kill(6);
  // The standbys hold the lost ranks at once; nothing is planned before the window passes.
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_DEGRADED);
  EXPECT_EQ(s.generation(), 1);
  EXPECT_EQ(s.missing_ranks_size(), 0);
  for (const Joined& spare : spares_) EXPECT_TRUE(spare.sink->plans().empty());

  SettleLosses();
  s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(s.generation(), 2);
  EXPECT_EQ(CountEvents(*coordinator_, v1::EVENT_KIND_PLAN), 2);  // generations 1 and 2
  for (int r : {0, 2, 3, 5, 7}) {
    // One abort (the first loss) and one new plan, not one of each per loss.
    EXPECT_EQ(agents_[r].sink->teardowns().size(), 1u) << r;
    ASSERT_EQ(agents_[r].sink->plans().size(), 2u) << r;
    EXPECT_EQ(agents_[r].sink->plans().back().generation(), 2) << r;
  }
  std::vector<int> spare_ranks;
  for (const Joined& spare : spares_) {
    ASSERT_EQ(spare.sink->plans().size(), 1u);
    EXPECT_EQ(spare.sink->plans()[0].generation(), 2);
    spare_ranks.push_back(spare.sink->plans()[0].rank());
  }
  EXPECT_THAT(spare_ranks, UnorderedElementsAre(1, 4, 6));

  for (int r : {0, 2, 3, 5, 7}) ASSERT_TRUE(Report(agents_[r], 2, true).ok());
  for (const Joined& spare : spares_) ASSERT_TRUE(Report(spare, 2, true).ok());
  s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_READY);
  EXPECT_EQ(s.generation(), 2);
  for (const v1::MemberState& m : s.members()) {
    if (m.rank() == 1 || m.rank() == 4 || m.rank() == 6) {
      EXPECT_EQ(m.identity().rfind("spare-", 0), 0u) << m.rank() << " " << m.identity();
    }
  }
}

TEST_F(SettleTest, LaterLossPushesTheStartBack) {
  ReadyWithSpares(4, 2);
  Kill(0);
  clock_.Advance(absl::Milliseconds(100));
  timers_.FireDue();
  Kill(2);
  // Past the first loss's window, 1 ms short of the second's: still settling.
  clock_.Advance(kSettle - absl::Milliseconds(1));
  timers_.FireDue();
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_DEGRADED);
  EXPECT_EQ(State().generation(), 1);
  clock_.Advance(absl::Milliseconds(1));
  timers_.FireDue();
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(State().generation(), 2);
  EXPECT_EQ(agents_[1].sink->plans().size(), 2u);
  EXPECT_EQ(agents_[3].sink->teardowns().size(), 1u);  // one abort for both losses
}

TEST_F(SettleTest, LossesThatKeepComing_StartAtTheCapAfterTheFirst) {
  CoordinatorOptions options = SettleOptions(kSettle);
  options.regroup_settle_max = absl::Seconds(1);
  Reset(options);
  ReadyWithSpares(8, 7);
  // A loss every 200 ms: each pushes the start back, until 1 s after the first.
  for (int r = 0; r < 5; ++r) {
    if (r > 0) {
      clock_.Advance(absl::Milliseconds(200));
      timers_.FireDue();
      EXPECT_EQ(State().generation(), 1) << "before the loss of rank " << r;
    }
    Kill(r);
  }
  clock_.Advance(absl::Milliseconds(199));
  timers_.FireDue();
  EXPECT_EQ(State().generation(), 1);
  // 1 s after the first loss (the last one was 200 ms ago): started although the last loss's
  // own window has 50 ms to go.
  clock_.Advance(absl::Milliseconds(1));
  timers_.FireDue();
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(State().generation(), 2);
  // A loss during the next generation's init opens a new window, capped from that loss.
  Kill(5);
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_DEGRADED);
  clock_.Advance(kSettle);
  timers_.FireDue();
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(State().generation(), 3);
}

TEST_F(SettleTest, StandbyAttachingDuringTheWindow_DoesNotStartEarly) {
  ReadyWithSpares(2, 0);
  Kill(0);
  Joined spare = JoinAgent("spare");  // attaches after the loss: takes rank 0 at once
  ASSERT_FALSE(spare.sink->messages.empty());
  EXPECT_EQ(spare.sink->messages[0].rank_assignment().rank(), 0);
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_DEGRADED);
  EXPECT_TRUE(spare.sink->plans().empty());
  SettleLosses();
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  ASSERT_EQ(spare.sink->plans().size(), 1u);
  EXPECT_EQ(spare.sink->plans()[0].generation(), 2);
}

TEST_F(SettleTest, WindowOverWithARankMissing_WaitsThenStartsWhenTheRankIsBack) {
  ReadyWithSpares(2, 0);
  Kill(1);
  SettleLosses();
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_DEGRADED);
  EXPECT_EQ(State().generation(), 1);
  // The window is over: the rank coming back starts the next generation at once.
  Joined back = JoinAgent("agent-1", std::nullopt, "inc-2");
  EXPECT_EQ(back.rank, 1);
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(State().generation(), 2);
}

TEST_F(SettleTest, PlannedLeavesSettleToo) {
  ReadyWithSpares(4, 2);
  ASSERT_TRUE(Leave(*coordinator_, agents_[1].session_id).ok());
  ASSERT_TRUE(Leave(*coordinator_, agents_[3].session_id).ok());
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_DEGRADED);
  EXPECT_EQ(State().reason(), "left");
  SettleLosses();
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(State().generation(), 2);
  EXPECT_EQ(agents_[0].sink->teardowns().size(), 1u);
}

TEST_F(SettleTest, LossDuringTheNextGenerationsInit_OpensANewWindow) {
  ReadyWithSpares(4, 2);
  Kill(0);
  SettleLosses();
  ASSERT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  ASSERT_EQ(State().generation(), 2);
  Kill(2);  // generation 2 fails; generation 3 waits for its own window
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_DEGRADED);
  EXPECT_EQ(State().generation(), 2);
  SettleLosses();
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(State().generation(), 3);
}

TEST_F(SettleTest, ZeroSettle_EveryLossStartsAGenerationAtOnce) {
  Reset(SettleOptions(absl::ZeroDuration()));
  ReadyWithSpares(4, 3);
  Kill(0);
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(State().generation(), 2);
  Kill(1);
  Kill(2);
  // The old behaviour: one generation per loss.
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(State().generation(), 4);
  EXPECT_EQ(agents_[3].sink->plans().size(), 4u);
}

TEST_F(SettleTest, DestroyDuringTheWindow_NoGenerationAfterwards) {
  ReadyWithSpares(2, 1);
  Kill(0);
  ASSERT_EQ(State().phase(), v1::POOL_PHASE_DEGRADED);
  v1::DestroyRequest destroy;
  destroy.set_scope(v1::DESTROY_SCOPE_ALL);
  ASSERT_TRUE(coordinator_->Destroy(destroy).ok());
  // The window would have closed while the teardown runs, and after it: nothing starts.
  SettleLosses();
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_DESTROYING);
  ASSERT_TRUE(TeardownDone(agents_[1], 1, v1::DESTROY_SCOPE_ALL).ok());
  ASSERT_TRUE(TeardownDone(spares_[0], 1, v1::DESTROY_SCOPE_ALL).ok());
  ASSERT_EQ(State().phase(), v1::POOL_PHASE_DESTROYED);
  clock_.Advance(absl::Seconds(1));
  timers_.FireDue();
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_DESTROYED);
  EXPECT_EQ(State().generation(), 1);
  EXPECT_TRUE(spares_[0].sink->plans().empty());
  EXPECT_EQ(agents_[1].sink->plans().size(), 1u);
}

TEST_F(SettleTest, InitializeDuringTheWindow_StartsAtOnce_WindowClosed) {
  ReadyWithSpares(2, 1);
  Kill(1);
  ASSERT_EQ(State().phase(), v1::POOL_PHASE_DEGRADED);
  absl::StatusOr<v1::InitializeResponse> init = Init({.world_size = 2, .data_parallel_size = 2});
  ASSERT_TRUE(init.ok()) << init.status();
  EXPECT_TRUE(init->started());
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(State().generation(), 2);
  // The window it closed does not start another generation.
  SettleLosses();
  EXPECT_EQ(State().generation(), 2);
  EXPECT_EQ(spares_[0].sink->plans().size(), 1u);
}

TEST_F(SettleTest, DeletedPoolDuringTheWindow_TimerDoesNothing) {
  ReadyWithSpares(2, 1);
  Kill(0);
  ASSERT_TRUE(coordinator_->DeletePool("default", /*force=*/true).ok());
  SettleLosses();
  EXPECT_EQ(coordinator_->GetState("default").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(spares_[0].sink->plans().empty());
}

TEST_F(SettleTest, CommunicatorErrorIsNoLoss_NextGenerationAtOnce) {
  std::vector<Joined> agents = JoinWorld(2);
  ASSERT_TRUE(Init({.world_size = 2, .tensor_parallel_size = 2}).ok());
  for (const Joined& a : agents) {
    ASSERT_TRUE(ReportWithGroups(*coordinator_, a.session_id, a.sink->plans().back()).ok());
  }
  ASSERT_EQ(State().phase(), v1::POOL_PHASE_READY);
  v1::AgentMessage error;
  error.mutable_group_states()->set_generation(1);
  v1::GroupReport* g = error.mutable_group_states()->add_groups();
  g->set_kind(v1::GROUP_KIND_WORLD);
  g->set_state(v1::COMM_STATE_ERROR);
  ASSERT_TRUE(coordinator_->HandleAgentMessage(agents[0].session_id, error).ok());
  // Every rank is still attached: nothing to wait for.
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(State().generation(), 2);
}

}  // namespace
}  // namespace cohort::coordinator
