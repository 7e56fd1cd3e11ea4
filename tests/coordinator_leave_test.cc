// Planned leave (AgentMessage.leave) in the Coordinator, on a fake clock: a member that leaves
// on purpose is recorded as LEFT, not as a failure; its session ends with OK after a
// SessionClosed; the pool goes DEGRADED with reason "left" and refills like after any loss.
#include "tests/coordinator_fixture.h"

namespace cohort::coordinator {
namespace {

absl::Status Leave(Coordinator& coordinator, const std::string& session_id,
                   const std::string& reason) {
  v1::AgentMessage m;
  m.mutable_leave()->set_reason(reason);
  return coordinator.HandleAgentMessage(session_id, m);
}

int CountEvents(const std::vector<v1::Event>& events, v1::EventKind kind) {
  int n = 0;
  for (const v1::Event& e : events) n += e.kind() == kind;
  return n;
}

std::vector<v1::Event> PoolEvents(Coordinator& coordinator) {
  absl::StatusOr<std::vector<v1::Event>> events = coordinator.GetEvents("default", 0, 1000);
  EXPECT_TRUE(events.ok()) << events.status();
  return events.ok() ? *events : std::vector<v1::Event>();
}

TEST_F(CoordinatorTest, Leave_ReadyMember_LeftNotFailed_DegradedReasonLeft_SurvivorsAbort) {
  std::vector<Joined> agents = ReadyWorld({.world_size = 4, .data_parallel_size = 4});
  ASSERT_EQ(agents.size(), 4u);
  ASSERT_TRUE(Leave(*coordinator_, agents[2].session_id, "SIGTERM (pod terminating)").ok());

  // Answered: a SessionClosed naming the leave, then the stream ends with OK.
  FakeSink& leaver = *agents[2].sink;
  ASSERT_FALSE(leaver.messages.empty());
  ASSERT_TRUE(leaver.messages.back().has_closed());
  EXPECT_THAT(leaver.messages.back().closed().reason(), ::testing::HasSubstr("left pool"));
  ASSERT_TRUE(leaver.closed.has_value());
  EXPECT_TRUE(leaver.closed->ok()) << *leaver.closed;
  // The leaver is told nothing else: it tears its own communicators down in order.
  EXPECT_TRUE(leaver.teardowns().empty());

  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_DEGRADED);
  EXPECT_EQ(s.reason(), "left");
  EXPECT_THAT(s.error(), ::testing::HasSubstr("rank 2 (agent-2) left: SIGTERM (pod terminating)"));
  EXPECT_EQ(s.members_failed(), 0);
  ASSERT_FALSE(s.transitions().empty());
  EXPECT_EQ(s.transitions().rbegin()->phase(), v1::POOL_PHASE_DEGRADED);
  EXPECT_EQ(s.transitions().rbegin()->reason(), "left");
  bool seen = false;
  for (const v1::MemberState& m : s.members()) {
    if (m.identity() != "agent-2") continue;
    seen = true;
    EXPECT_EQ(m.phase(), v1::MEMBER_PHASE_LEFT);
    EXPECT_EQ(m.rank(), 2);
    EXPECT_FALSE(m.connected());
  }
  EXPECT_TRUE(seen);
  EXPECT_EQ(s.missing_ranks_size(), 1);
  // The survivors abort the generation, as after any loss.
  for (int r : {0, 1, 3}) {
    ASSERT_FALSE(agents[r].sink->teardowns().empty()) << r;
    EXPECT_TRUE(agents[r].sink->teardowns().back().abort()) << r;
  }
  const std::vector<v1::Event> events = PoolEvents(*coordinator_);
  EXPECT_EQ(CountEvents(events, v1::EVENT_KIND_LEFT), 1);
  EXPECT_EQ(CountEvents(events, v1::EVENT_KIND_MEMBER_LOST), 0);
  EXPECT_EQ(CountEvents(events, v1::EVENT_KIND_FAILED), 0) << "a leave fails no generation";

  // Messages on the closed session are refused; the stream's end that follows changes nothing.
  v1::AgentMessage heartbeat;
  heartbeat.mutable_heartbeat();
  EXPECT_EQ(coordinator_->HandleAgentMessage(agents[2].session_id, heartbeat).code(),
            absl::StatusCode::kNotFound);
  coordinator_->Detach(agents[2].session_id, agents[2].sink, "session stream closed");
  EXPECT_EQ(CountEvents(PoolEvents(*coordinator_), v1::EVENT_KIND_MEMBER_LOST), 0);
  EXPECT_EQ(State().reason(), "left");
}

TEST_F(CoordinatorTest, Leave_PodBack_SameRank_ReadyAgain_ReasonCleared) {
  std::vector<Joined> agents = ReadyWorld({.world_size = 2, .data_parallel_size = 2});
  ASSERT_EQ(agents.size(), 2u);
  ASSERT_TRUE(Leave(*coordinator_, agents[1].session_id, "rolling restart").ok());
  // The pod comes back (a new process, the same pod name): its rank, generation 2.
  Joined back = JoinAgent("agent-1", std::nullopt, "inc-2");
  EXPECT_EQ(back.rank, 1);
  SettleLosses();
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(State().reason(), "");
  ASSERT_TRUE(Report(agents[0], 2, true).ok());
  ASSERT_TRUE(Report(back, 2, true).ok());
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_READY);
  EXPECT_EQ(State().reason(), "");
}

TEST_F(CoordinatorTest, Leave_StandbyRefillsTheRankAtOnce) {
  std::vector<Joined> agents = ReadyWorld({.world_size = 2, .data_parallel_size = 2});
  ASSERT_EQ(agents.size(), 2u);
  Joined spare = JoinAgent("spare");
  ASSERT_EQ(spare.rank, -1);
  ASSERT_TRUE(Leave(*coordinator_, agents[0].session_id, "node drain").ok());
  ASSERT_FALSE(spare.sink->messages.empty());
  EXPECT_EQ(spare.sink->messages[0].rank_assignment().rank(), 0);
  SettleLosses();
  ASSERT_EQ(spare.sink->plans().size(), 1u);
  EXPECT_EQ(spare.sink->plans()[0].generation(), 2);
}

TEST_F(CoordinatorTest, Leave_Standby_IsDroppedWithoutTouchingThePool) {
  std::vector<Joined> agents = ReadyWorld({.world_size = 2, .data_parallel_size = 2});
  ASSERT_EQ(agents.size(), 2u);
  Joined spare = JoinAgent("spare");
  ASSERT_TRUE(Leave(*coordinator_, spare.session_id, "scaled down").ok());
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_READY);
  EXPECT_EQ(s.members_size(), 2);
  EXPECT_TRUE(agents[0].sink->teardowns().empty());
  ASSERT_TRUE(spare.sink->closed.has_value());
  EXPECT_TRUE(spare.sink->closed->ok());
}

TEST_F(CoordinatorTest, Lost_DegradedReasonLost_FailedMember) {
  std::vector<Joined> agents = ReadyWorld({.world_size = 2, .data_parallel_size = 2});
  ASSERT_EQ(agents.size(), 2u);
  coordinator_->Detach(agents[1].session_id, agents[1].sink, "session stream closed");
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_DEGRADED);
  EXPECT_EQ(s.reason(), "lost");
  EXPECT_EQ(s.members_failed(), 1);
  EXPECT_EQ(CountEvents(PoolEvents(*coordinator_), v1::EVENT_KIND_MEMBER_LOST), 1);
  EXPECT_EQ(CountEvents(PoolEvents(*coordinator_), v1::EVENT_KIND_FAILED), 1);
}

TEST_F(CoordinatorTest, Leave_DuringTeardown_CountsAsTornDown_DestroyFinishesClean) {
  std::vector<Joined> agents = ReadyWorld({.world_size = 2, .data_parallel_size = 2});
  ASSERT_EQ(agents.size(), 2u);
  v1::DestroyRequest destroy;
  destroy.set_scope(v1::DESTROY_SCOPE_ALL);
  ASSERT_TRUE(coordinator_->Destroy(destroy).ok());
  ASSERT_TRUE(TeardownDone(agents[0], 1, v1::DESTROY_SCOPE_ALL).ok());
  ASSERT_TRUE(Leave(*coordinator_, agents[1].session_id, "SIGTERM").ok());
  v1::PoolState s = State();
  EXPECT_NE(s.phase(), v1::POOL_PHASE_DESTROYING);
  EXPECT_NE(s.phase(), v1::POOL_PHASE_FAILED);
  EXPECT_EQ(s.error(), "");
}

TEST_F(CoordinatorTest, Leave_WhileStopping_IsNoChange) {
  std::vector<Joined> agents = ReadyWorld({.world_size = 2, .data_parallel_size = 2});
  ASSERT_EQ(agents.size(), 2u);
  coordinator_->BeginShutdown();
  // The sessions are closed (UNAVAILABLE: join the successor), so a leave finds none.
  ASSERT_TRUE(agents[0].sink->closed.has_value());
  EXPECT_EQ(agents[0].sink->closed->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Leave(*coordinator_, agents[0].session_id, "SIGTERM").code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_READY);
}

// The coordinator going away (SIGTERM: BeginShutdown) ends watchers and long-polls at once with
// UNAVAILABLE "coordinator restarting", instead of leaving them to the server's grace deadline.
class ClosingWatch : public WatchSink {
 public:
  bool Send(const v1::WatchEvent&) override { return true; }
  void Close(const absl::Status& why) override { closed = why; }
  std::optional<absl::Status> closed;
};

TEST_F(CoordinatorTest, Shutdown_EndsWatchersAndLongPollsWithUnavailable) {
  std::vector<Joined> agents = ReadyWorld({.world_size = 2, .data_parallel_size = 2});
  ASSERT_EQ(agents.size(), 2u);
  ClosingWatch watch;
  ASSERT_TRUE(coordinator_->AddWatcher("default", false, &watch).ok());
  std::optional<absl::StatusOr<v1::PoolState>> polled;
  coordinator_->WaitForState("default", State().version(), clock_.Now() + absl::Hours(1),
                             [&](absl::StatusOr<v1::PoolState> s) { polled = std::move(s); });
  ASSERT_FALSE(polled.has_value());

  coordinator_->BeginShutdown();

  ASSERT_TRUE(watch.closed.has_value());
  EXPECT_EQ(watch.closed->code(), absl::StatusCode::kUnavailable) << *watch.closed;
  ASSERT_TRUE(polled.has_value());
  EXPECT_EQ(polled->status().code(), absl::StatusCode::kUnavailable) << polled->status();
  EXPECT_THAT(std::string(polled->status().message()), ::testing::HasSubstr("restarting"));
}

}  // namespace
}  // namespace cohort::coordinator
