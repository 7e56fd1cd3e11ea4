// Coordinator logic in-process, with a fake clock and fake session sinks: membership, ranks,
// plans, reports, deadlines, heartbeats, teardown and the rendezvous store.
#include "coordinator/coordinator.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/layout_proto.h"
#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class FakeSink : public SessionSink {
 public:
  void Send(const v1::CoordinatorMessage& m) override { messages.push_back(m); }
  void Close(const std::string& reason) override { closed = reason; }
  std::vector<v1::CoordinatorMessage> messages;
  std::optional<std::string> closed;

  std::vector<v1::Plan> plans() const {
    std::vector<v1::Plan> out;
    for (const auto& m : messages) {
      if (m.has_plan()) out.push_back(m.plan());
    }
    return out;
  }
  std::vector<v1::Teardown> teardowns() const {
    std::vector<v1::Teardown> out;
    for (const auto& m : messages) {
      if (m.has_teardown()) out.push_back(m.teardown());
    }
    return out;
  }
};

class CoordinatorTest : public ::testing::Test {
 protected:
  CoordinatorTest() { Reset(CoordinatorOptions{}); }

  void Reset(CoordinatorOptions options) {
    coordinator_.reset();
    coordinator_ = std::make_unique<Coordinator>(std::move(options), &clock_, &timers_);
  }

  struct Joined {
    std::string session_id;
    int rank;
    FakeSink* sink;
  };

  // Joins and attaches an agent.
  Joined JoinAgent(const std::string& identity, std::optional<int> hint = std::nullopt,
                   const std::string& incarnation = "inc-1", const std::string& pool = "",
                   const v1::HeldState& held = v1::HeldState()) {
    v1::JoinRequest request;
    *request.mutable_held() = held;
    request.set_pool(pool);
    request.set_identity(identity);
    request.set_incarnation(incarnation);
    request.add_backends("gloo");
    if (hint.has_value()) request.set_rank_hint(*hint);
    absl::StatusOr<v1::JoinResponse> joined = coordinator_->Join(request);
    EXPECT_TRUE(joined.ok()) << joined.status();
    if (!joined.ok()) return {"", -2, nullptr};
    sinks_.push_back(std::make_unique<FakeSink>());
    EXPECT_TRUE(coordinator_->Attach(joined->session_id(), sinks_.back().get()).ok());
    return {joined->session_id(), joined->rank(), sinks_.back().get()};
  }

  absl::StatusOr<v1::InitializeResponse> Init(ParallelConfig config, int64_t deadline_ms = 0) {
    v1::InitializeRequest request;
    *request.mutable_config() = ToProto(config);
    request.mutable_options()->set_backend("gloo");
    request.mutable_options()->set_deadline_ms(deadline_ms);
    return coordinator_->Initialize(request);
  }

  absl::Status Report(const Joined& j, int64_t generation, bool ok, const std::string& error = "") {
    v1::AgentMessage m;
    m.mutable_report()->set_generation(generation);
    m.mutable_report()->set_ok(ok);
    m.mutable_report()->set_error(error);
    return coordinator_->HandleAgentMessage(j.session_id, m);
  }

  absl::Status TeardownDone(const Joined& j, int64_t generation, v1::DestroyScope scope) {
    v1::AgentMessage m;
    m.mutable_teardown()->set_generation(generation);
    m.mutable_teardown()->set_scope(scope);
    m.mutable_teardown()->set_ok(true);
    return coordinator_->HandleAgentMessage(j.session_id, m);
  }

  v1::PoolState State(const std::string& pool = "default") {
    absl::StatusOr<v1::PoolState> s = coordinator_->GetState(pool);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : v1::PoolState();
  }

  // Moves the clock second by second, every agent heartbeating, firing due timers.
  void Tick(const std::vector<Joined>& agents, int seconds) {
    v1::AgentMessage heartbeat;
    heartbeat.mutable_heartbeat();
    for (int i = 0; i < seconds; ++i) {
      clock_.Advance(absl::Seconds(1));
      for (const Joined& j : agents) {
        ASSERT_TRUE(coordinator_->HandleAgentMessage(j.session_id, heartbeat).ok());
      }
      timers_.FireDue();
    }
  }

  // agent-0 .. agent-(world-1) joined, `config` initialized and generation 1 READY (empty if
  // any step failed, with the failure reported).
  std::vector<Joined> ReadyWorld(const ParallelConfig& config) {
    std::vector<Joined> agents = JoinWorld(static_cast<int>(config.world_size));
    absl::StatusOr<v1::InitializeResponse> init = Init(config);
    EXPECT_TRUE(init.ok()) << init.status();
    if (!init.ok()) return {};
    for (const Joined& a : agents) {
      absl::Status reported = Report(a, 1, true);
      EXPECT_TRUE(reported.ok()) << reported;
      if (!reported.ok()) return {};
    }
    EXPECT_EQ(State().phase(), v1::POOL_PHASE_READY);
    return agents;
  }

  std::vector<Joined> JoinWorld(int n) {
    std::vector<Joined> out;
    for (int r = 0; r < n; ++r) out.push_back(JoinAgent("agent-" + std::to_string(r), r));
    return out;
  }

  FakeClock clock_;
  TimerQueue timers_{&clock_};
  std::vector<std::unique_ptr<FakeSink>> sinks_;
  std::unique_ptr<Coordinator> coordinator_;
};

const ParallelConfig kDp2Cfg2U2{.world_size = 8, .data_parallel_size = 2,
                                .cfg_parallel_size = 2, .ulysses_degree = 2};

// What an agent reports holding when it joins again: rank `rank` of a READY generation of
// `config` on Gloo (its world communicator READY).
v1::HeldState HeldOf(int rank, int64_t generation, const ParallelConfig& config) {
  v1::HeldState held;
  held.set_holding(true);
  held.set_rank(rank);
  held.set_world_size(static_cast<int>(config.world_size));
  held.set_generation(generation);
  *held.mutable_config() = ToProto(config);
  held.set_backend("gloo");
  v1::GroupReport* g = held.add_groups();
  g->set_kind(v1::GROUP_KIND_WORLD);
  g->set_state(v1::COMM_STATE_READY);
  return held;
}

TEST_F(CoordinatorTest, Join_RankHintWins_OtherwiseArrivalOrder) {
  EXPECT_EQ(JoinAgent("a", 3).rank, 3);
  EXPECT_EQ(JoinAgent("b").rank, 0);
  EXPECT_EQ(JoinAgent("c").rank, 1);
  EXPECT_EQ(JoinAgent("d", 3).rank, 2);  // hint taken: lowest free rank
}

TEST_F(CoordinatorTest, Join_WithoutIdentityOrIncarnation_InvalidArgument) {
  v1::JoinRequest request;
  request.set_incarnation("x");
  EXPECT_EQ(coordinator_->Join(request).status().code(), absl::StatusCode::kInvalidArgument);
  request.set_identity("a");
  request.clear_incarnation();
  EXPECT_THAT(coordinator_->Join(request).status().message(), HasSubstr("incarnation"));
}

TEST_F(CoordinatorTest, Join_DuplicateLiveIdentity_IsRefused) {
  JoinAgent("agent-0", 0, "inc-1");
  v1::JoinRequest request;
  request.set_identity("agent-0");
  request.set_incarnation("inc-2");
  absl::StatusOr<v1::JoinResponse> second = coordinator_->Join(request);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(second.status().message(), HasSubstr("held by a live agent"));
}

TEST_F(CoordinatorTest, Join_NewIncarnationOfDeadMember_TakesItsRank) {
  JoinAgent("x", 0);
  Joined old = JoinAgent("agent-5", 5, "inc-1");
  coordinator_->Detach(old.session_id, old.sink, "killed");
  Joined again = JoinAgent("agent-5", std::nullopt, "inc-2");
  EXPECT_EQ(again.rank, 5);
  // The old session is gone for good.
  v1::AgentMessage heartbeat;
  heartbeat.mutable_heartbeat();
  EXPECT_EQ(coordinator_->HandleAgentMessage(old.session_id, heartbeat).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CoordinatorTest, Join_CompletePool_BecomesStandby) {
  ASSERT_TRUE(Init({.world_size = 2, .data_parallel_size = 2}).ok());
  JoinWorld(2);
  Joined extra = JoinAgent("spare");
  EXPECT_EQ(extra.rank, -1);
  v1::PoolState s = State();
  ASSERT_EQ(s.members_size(), 3);
  EXPECT_EQ(s.members(2).phase(), v1::MEMBER_PHASE_STANDBY);
  EXPECT_TRUE(extra.sink->plans().empty());
}

TEST_F(CoordinatorTest, Join_UnknownPool_NotFoundWhenPoolsAreFixed) {
  CoordinatorOptions options;
  options.create_pools_on_join = false;
  options.pools.push_back({"jobs", kDp2Cfg2U2, {}});
  Reset(options);
  v1::JoinRequest request;
  request.set_pool("nope");
  request.set_identity("a");
  request.set_incarnation("1");
  absl::StatusOr<v1::JoinResponse> joined = coordinator_->Join(request);
  EXPECT_EQ(joined.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(joined.status().message(), HasSubstr("pools: jobs"));
}

TEST_F(CoordinatorTest, Initialize_InvalidConfig_InvalidArgumentWithEngineMessage) {
  absl::StatusOr<v1::InitializeResponse> r = Init({.world_size = 6, .ulysses_degree = 2});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("world_size (6) is larger"));
  v1::InitializeRequest bad_backend;
  *bad_backend.mutable_config() = ToProto(kDp2Cfg2U2);
  bad_backend.mutable_options()->set_backend("mpi");
  EXPECT_THAT(coordinator_->Initialize(bad_backend).status().message(),
              HasSubstr("unknown backend 'mpi'"));
}

TEST_F(CoordinatorTest, Initialize_BackendAMemberCannotDrive_IsRefused) {
  v1::JoinRequest request;
  request.set_identity("cpu-only");
  request.set_incarnation("1");
  request.add_backends("gloo");
  ASSERT_TRUE(coordinator_->Join(request).ok());
  v1::InitializeRequest init;
  *init.mutable_config() = ToProto({.world_size = 1});
  init.mutable_options()->set_backend("nccl");
  EXPECT_THAT(coordinator_->Initialize(init).status().message(),
              HasSubstr("cannot drive backend 'nccl'"));
}

TEST_F(CoordinatorTest, Generation_PlansMatchLayout_ReadyWhenAllReport) {
  std::vector<Joined> agents = JoinWorld(8);
  absl::StatusOr<v1::InitializeResponse> init = Init(kDp2Cfg2U2);
  ASSERT_TRUE(init.ok()) << init.status();
  EXPECT_TRUE(init->started());
  EXPECT_EQ(init->generation(), 1);
  absl::StatusOr<Layout> layout = Layout::Build(kDp2Cfg2U2);
  for (const Joined& j : agents) {
    ASSERT_EQ(j.sink->plans().size(), 1u);
    const v1::Plan plan = j.sink->plans()[0];
    EXPECT_EQ(plan.rank(), j.rank);
    EXPECT_EQ(plan.generation(), 1);
    EXPECT_EQ(plan.layout().group_sets_size(), static_cast<int>(layout->kinds().size()));
    for (const v1::GroupSet& set : plan.layout().group_sets()) {
      const GroupKind kind = *FromProto(set.kind());
      ASSERT_EQ(set.groups_size(), 1);
      EXPECT_EQ(set.groups(0).index(), layout->GroupIndexOf(kind, j.rank));
      EXPECT_EQ(RankList(set.groups(0).ranks().begin(), set.groups(0).ranks().end()),
                layout->GroupOf(kind, j.rank));
    }
  }
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  for (size_t i = 0; i + 1 < agents.size(); ++i) ASSERT_TRUE(Report(agents[i], 1, true).ok());
  EXPECT_EQ(State().members_ready(), 7);
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  ASSERT_TRUE(Report(agents.back(), 1, true).ok());
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_READY);
}

TEST_F(CoordinatorTest, Report_StaleGeneration_Aborted) {
  std::vector<Joined> agents = JoinWorld(2);
  ASSERT_TRUE(Init({.world_size = 2, .tensor_parallel_size = 2}).ok());
  absl::Status stale = Report(agents[0], 0, true);
  EXPECT_EQ(stale.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(stale.message(), HasSubstr("is at generation 1"));
  EXPECT_EQ(State().members_ready(), 0);
}

TEST_F(CoordinatorTest, Initialize_WhileReady_FailedPrecondition) {
  std::vector<Joined> agents = JoinWorld(1);
  ASSERT_TRUE(Init({.world_size = 1}).ok());
  ASSERT_TRUE(Report(agents[0], 1, true).ok());
  EXPECT_EQ(Init({.world_size = 1}).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(CoordinatorTest, KeepPendingConfig_RefusesToReplaceAWaitingConfig) {
  ASSERT_TRUE(Init({.world_size = 2, .tensor_parallel_size = 2}).ok());
  v1::InitializeRequest other;
  *other.mutable_config() = ToProto({.world_size = 2, .data_parallel_size = 2});
  other.set_keep_pending_config(true);
  EXPECT_EQ(coordinator_->Initialize(other).status().code(),
            absl::StatusCode::kFailedPrecondition);
  other.set_keep_pending_config(false);  // an operator may reconfigure a waiting pool
  ASSERT_TRUE(coordinator_->Initialize(other).ok());
  EXPECT_EQ(State().config().data_parallel_size(), 2);
}

TEST_F(CoordinatorTest, ConfigFirst_StartsWhenTheLastRankAttaches) {
  ASSERT_TRUE(Init(kDp2Cfg2U2).ok());
  std::vector<Joined> agents;
  for (int r = 0; r < 7; ++r) agents.push_back(JoinAgent("agent-" + std::to_string(r), r));
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_WAITING);
  EXPECT_THAT(State().missing_ranks(), ::testing::ElementsAre(7));
  agents.push_back(JoinAgent("agent-7", 7));
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(agents[0].sink->plans().size(), 1u);
}

TEST_F(CoordinatorTest, FailedReport_FailsGeneration_AbortsSurvivors) {
  std::vector<Joined> agents = JoinWorld(2);
  ASSERT_TRUE(Init({.world_size = 2, .data_parallel_size = 2}).ok());
  ASSERT_TRUE(Report(agents[0], 1, false, "groups: gloo connect timed out").ok());
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_FAILED);
  EXPECT_THAT(s.error(), HasSubstr("rank 0 (agent-0): groups: gloo connect timed out"));
  ASSERT_EQ(agents[1].sink->teardowns().size(), 1u);
  EXPECT_TRUE(agents[1].sink->teardowns()[0].abort());
}

TEST_F(CoordinatorTest, Deadline_FailsNamingRanksNotReady) {
  std::vector<Joined> agents = JoinWorld(4);
  ASSERT_TRUE(Init({.world_size = 4, .data_parallel_size = 4}, /*deadline_ms=*/5000).ok());
  ASSERT_TRUE(Report(agents[0], 1, true).ok());
  ASSERT_TRUE(Report(agents[2], 1, true).ok());
  Tick(agents, 5);
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);  // 1 s of grace
  Tick(agents, 2);
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_FAILED);
  EXPECT_THAT(s.error(), HasSubstr("ranks not READY: 1 (agent-1), 3 (agent-3)"));
}

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

TEST_F(CoordinatorTest, Kv_GetWaitsForSet_SetOnceRefusesReuse_StaleGenerationAborted) {
  std::vector<Joined> agents = JoinWorld(2);
  ASSERT_TRUE(Init({.world_size = 2, .tensor_parallel_size = 2}).ok());
  v1::KvGetRequest get;
  get.set_generation(1);
  get.add_keys("world/nccl_id");
  get.set_timeout_ms(10000);
  std::optional<absl::StatusOr<v1::KvGetResponse>> got;
  coordinator_->KvGet(get, [&](absl::StatusOr<v1::KvGetResponse> r) { got = r; });
  EXPECT_FALSE(got.has_value());
  v1::KvSetRequest set;
  set.set_generation(1);
  set.set_set_once(true);
  auto* e = set.add_entries();
  e->set_key("world/nccl_id");
  e->set_value("id-bytes");
  ASSERT_TRUE(coordinator_->KvSet(set).ok());
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->ok());
  EXPECT_EQ((*got)->entries(0).value(), "id-bytes");
  EXPECT_EQ(coordinator_->KvSet(set).code(), absl::StatusCode::kAlreadyExists);
  set.set_generation(0);
  EXPECT_EQ(coordinator_->KvSet(set).code(), absl::StatusCode::kAborted);
}

TEST_F(CoordinatorTest, Kv_GetDeadline_NamesMissingKeys) {
  JoinWorld(1);
  ASSERT_TRUE(Init({.world_size = 1}).ok());
  v1::KvGetRequest get;
  get.set_generation(1);
  get.add_keys("a");
  get.add_keys("b");
  get.set_timeout_ms(500);
  std::optional<absl::StatusOr<v1::KvGetResponse>> got;
  coordinator_->KvGet(get, [&](absl::StatusOr<v1::KvGetResponse> r) { got = r; });
  clock_.Advance(absl::Milliseconds(501));
  timers_.FireDue();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(got->status().message(), HasSubstr("a, b"));
}

TEST_F(CoordinatorTest, Kv_FailedGeneration_WakesWaitersWithAborted) {
  std::vector<Joined> agents = JoinWorld(2);
  ASSERT_TRUE(Init({.world_size = 2, .tensor_parallel_size = 2}).ok());
  v1::KvGetRequest get;
  get.set_generation(1);
  get.add_keys("tp/0/addr/1");
  get.set_timeout_ms(60000);
  std::optional<absl::StatusOr<v1::KvGetResponse>> got;
  coordinator_->KvGet(get, [&](absl::StatusOr<v1::KvGetResponse> r) { got = r; });
  coordinator_->Detach(agents[1].session_id, agents[1].sink, "killed");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status().code(), absl::StatusCode::kAborted);
}

TEST_F(CoordinatorTest, WaitForState_AnswersOnChangeOrDeadline) {
  JoinWorld(1);
  const int64_t version = State().version();
  std::optional<absl::StatusOr<v1::PoolState>> seen;
  coordinator_->WaitForState("default", version, clock_.Now() + absl::Seconds(10),
                             [&](absl::StatusOr<v1::PoolState> s) { seen = s; });
  EXPECT_FALSE(seen.has_value());
  ASSERT_TRUE(Init({.world_size = 1}).ok());
  ASSERT_TRUE(seen.has_value());
  EXPECT_GT((*seen)->version(), version);

  std::optional<absl::StatusOr<v1::PoolState>> timed_out;
  coordinator_->WaitForState("default", State().version(), clock_.Now() + absl::Seconds(1),
                             [&](absl::StatusOr<v1::PoolState> s) { timed_out = s; });
  clock_.Advance(absl::Seconds(1));
  timers_.FireDue();
  ASSERT_TRUE(timed_out.has_value());
  EXPECT_TRUE(timed_out->ok());
}

TEST_F(CoordinatorTest, Heartbeats_DoNotWakeStateWaiters) {
  std::vector<Joined> agents = JoinWorld(1);
  const int64_t version = State().version();
  v1::AgentMessage heartbeat;
  heartbeat.mutable_heartbeat();
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(coordinator_->HandleAgentMessage(agents[0].session_id, heartbeat).ok());
  }
  EXPECT_EQ(State().version(), version);
}

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
  const ParallelConfig config{.world_size = 4, .data_parallel_size = 2,
                              .tensor_parallel_size = 2};
  ASSERT_TRUE(Init(config).ok());
  for (auto& a : agents) ASSERT_TRUE(Report(a, 1, true).ok());
  coordinator_->Detach(agents[2].session_id, agents[2].sink, "killed");
  v1::PoolState s = State();
  EXPECT_EQ(s.phase(), v1::POOL_PHASE_DEGRADED);
  for (int r : {0, 1, 3}) {
    ASSERT_FALSE(agents[r].sink->teardowns().empty());
    EXPECT_TRUE(agents[r].sink->teardowns().back().abort());
  }
  // The restarted process (new incarnation) gets its old rank; generation 2 starts by itself.
  Joined back = JoinAgent("agent-2", std::nullopt, "inc-2");
  EXPECT_EQ(back.rank, 2);
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
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
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
    back.push_back(JoinAgent("agent-" + std::to_string(r), std::nullopt, "inc-1", "",
                             HeldOf(r, 1, config)));
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
    back.push_back(JoinAgent("agent-" + std::to_string(r), std::nullopt, "inc-1", "",
                             HeldOf(r, 1, config)));
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

// Reports READY for `j` with one group per kind of its plan.
absl::Status ReportWithGroups(Coordinator& coordinator, const std::string& session_id,
                              const v1::Plan& plan) {
  v1::AgentMessage m;
  m.mutable_report()->set_generation(plan.generation());
  m.mutable_report()->set_ok(true);
  for (const v1::GroupSet& set : plan.layout().group_sets()) {
    v1::GroupReport* g = m.mutable_report()->add_groups();
    g->set_kind(set.kind());
    g->set_index(set.groups(0).index());
    g->set_state(v1::COMM_STATE_READY);
  }
  return coordinator.HandleAgentMessage(session_id, m);
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

TEST_F(CoordinatorTest, ElasticDp_GrowBack_GivesEveryAgentItsRankHint) {
  CoordinatorOptions options;
  options.elastic_dp_after = absl::Seconds(5);
  options.refill_from_standby = false;
  Reset(options);
  std::vector<Joined> agents = JoinWorld(4);  // agent-r with rank hint r
  const ParallelConfig full{.world_size = 4, .data_parallel_size = 2,
                            .tensor_parallel_size = 2};
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

TEST_F(CoordinatorTest, Join_RankHintOutsideEveryWorld_RefusedAndLaterJoinsWork) {
  v1::JoinRequest request;
  request.set_identity("greedy");
  request.set_incarnation("x");
  request.set_rank_hint(2147483647);
  absl::StatusOr<v1::JoinResponse> joined = coordinator_->Join(request);
  EXPECT_EQ(joined.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(joined.status().message(), HasSubstr("--max-world-size"));
  request.set_rank_hint(-7);
  EXPECT_EQ(coordinator_->Join(request).status().code(), absl::StatusCode::kInvalidArgument);
  // Nothing was left behind: the pool forms as usual.
  std::vector<Joined> agents = JoinWorld(2);
  EXPECT_EQ(agents[1].rank, 1);
  ASSERT_TRUE(Init({.world_size = 2, .tensor_parallel_size = 2}).ok());
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(coordinator_->RefusalCounts()["rank-hint"], 2);
}

TEST_F(CoordinatorTest, Join_IdentitiesAndPoolNamesAreCheckedAtTheDoor) {
  v1::JoinRequest request;
  request.set_incarnation("x");
  for (const std::string& bad : {std::string("evil\nINFO forged line"),
                                 std::string("red\x1b[31m"), std::string(300, 'a'),
                                 std::string("spa ce")}) {
    request.set_identity(bad);
    absl::StatusOr<v1::JoinResponse> joined = coordinator_->Join(request);
    EXPECT_EQ(joined.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(joined.status().message(), ::testing::AnyOf(HasSubstr("letters, digits"),
                                                            HasSubstr("--max-identity-length")));
    // The message itself is printable.
    for (char c : joined.status().message()) EXPECT_GE(static_cast<unsigned char>(c), 0x20);
  }
  request.set_identity("pod-0");
  request.set_pool("bad/pool");
  EXPECT_EQ(coordinator_->Join(request).status().code(), absl::StatusCode::kInvalidArgument);
  request.set_pool("");
  request.set_incarnation("inc\r");
  EXPECT_EQ(coordinator_->Join(request).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CoordinatorTest, Limits_PoolsMembersAndWorldSize_RefusedNamingTheFlag) {
  CoordinatorOptions options;
  options.limits.max_pools = 2;
  options.limits.max_members_per_pool = 3;
  options.limits.max_world_size = 4;
  Reset(options);
  JoinAgent("a", std::nullopt, "inc-1", "p1");
  JoinAgent("b", std::nullopt, "inc-1", "p2");
  v1::JoinRequest request;
  request.set_identity("c");
  request.set_incarnation("x");
  request.set_pool("p3");
  absl::StatusOr<v1::JoinResponse> joined = coordinator_->Join(request);
  EXPECT_EQ(joined.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(joined.status().message(), HasSubstr("--max-pools"));
  request.set_pool("p1");
  for (const std::string id : {"c", "d"}) {
    request.set_identity(id);
    ASSERT_TRUE(coordinator_->Join(request).ok());
  }
  request.set_identity("e");
  joined = coordinator_->Join(request);
  EXPECT_EQ(joined.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(joined.status().message(), HasSubstr("--max-members-per-pool"));
  absl::StatusOr<v1::InitializeResponse> big = Init({.world_size = 8, .data_parallel_size = 8});
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(big.status().message(), HasSubstr("--max-world-size"));
  EXPECT_GE(coordinator_->RefusalCounts()["max-members-per-pool"], 1);
}

TEST_F(CoordinatorTest, Join_SameIdentityAndIncarnationWithoutTheSession_CannotHijack) {
  std::vector<Joined> agents = ReadyWorld({.world_size = 2, .tensor_parallel_size = 2});
  ASSERT_EQ(agents.size(), 2u);
  // An attacker copies agent-1's identity and incarnation (both in GetState).
  v1::JoinRequest request;
  request.set_identity("agent-1");
  request.set_incarnation("inc-1");
  absl::StatusOr<v1::JoinResponse> hijack = coordinator_->Join(request);
  EXPECT_EQ(hijack.status().code(), absl::StatusCode::kAlreadyExists);
  request.set_previous_session_id("0123456789abcdef0123456789abcdef");
  EXPECT_EQ(coordinator_->Join(request).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE(agents[1].sink->closed.has_value());
  EXPECT_TRUE(agents[1].sink->teardowns().empty());
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_READY);
  // The real process, naming its session and what it holds, replaces its session at once.
  request.set_previous_session_id(agents[1].session_id);
  request.mutable_held()->set_holding(true);
  request.mutable_held()->set_rank(1);
  request.mutable_held()->set_world_size(2);
  request.mutable_held()->set_generation(1);
  ASSERT_TRUE(coordinator_->Join(request).ok());
  EXPECT_TRUE(agents[1].sink->closed.has_value());
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_READY);
}

TEST_F(CoordinatorTest, MemberRejoiningWithoutItsGeneration_PoolIsNotReady) {
  std::vector<Joined> agents = ReadyWorld({.world_size = 2, .tensor_parallel_size = 2});
  ASSERT_EQ(agents.size(), 2u);
  // The same process comes back on a new session holding nothing (it lost its communicators).
  v1::JoinRequest request;
  request.set_identity("agent-1");
  request.set_incarnation("inc-1");
  request.set_previous_session_id(agents[1].session_id);
  ASSERT_TRUE(coordinator_->Join(request).ok());
  v1::PoolState s = State();
  EXPECT_NE(s.phase(), v1::POOL_PHASE_READY);
  EXPECT_THAT(s.error(), HasSubstr("rejoined without the communicators of generation 1"));
  ASSERT_FALSE(agents[0].sink->teardowns().empty());
  EXPECT_TRUE(agents[0].sink->teardowns().back().abort());
}

TEST_F(CoordinatorTest, Store_QuotaAndRequestChecks_MissingKeysSummarised) {
  CoordinatorOptions options;
  options.limits.max_store_keys = 3;
  Reset(options);
  std::vector<Joined> agents = JoinWorld(2);
  ASSERT_TRUE(Init({.world_size = 2, .tensor_parallel_size = 2}).ok());
  v1::KvSetRequest set;
  set.set_generation(1);
  for (int i = 0; i < 4; ++i) {
    v1::KvEntry* e = set.add_entries();
    e->set_key(absl::StrCat("k", i));
    e->set_value("v");
  }
  absl::Status s = coordinator_->KvSet(set);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("--max-store-keys"));
  set.clear_entries();
  set.add_entries()->set_key("");
  EXPECT_EQ(coordinator_->KvSet(set).code(), absl::StatusCode::kInvalidArgument);
  // 1,000 missing keys: the error names a few and counts the rest.
  v1::KvGetRequest get;
  get.set_generation(1);
  for (int i = 0; i < 1000; ++i) get.add_keys(absl::StrCat("missing-", i));
  get.set_timeout_ms(100);
  std::optional<absl::Status> answer;
  coordinator_->KvGet(get, [&](absl::StatusOr<v1::KvGetResponse> r) { answer = r.status(); });
  clock_.Advance(absl::Seconds(1));
  timers_.FireDue();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(answer->message(), HasSubstr("and 984 more"));
  EXPECT_LT(answer->message().size(), 2000u);
  get.set_timeout_ms(int64_t{1} << 50);
  coordinator_->KvGet(get, [&](absl::StatusOr<v1::KvGetResponse> r) { answer = r.status(); });
  EXPECT_EQ(answer->code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CoordinatorTest, Waiters_CancelledOnesAreDroppedAtOnce_LimitsHold) {
  CoordinatorOptions options;
  options.limits.max_kv_waiters = 2;
  options.limits.max_state_waiters = 2;
  Reset(options);
  std::vector<Joined> agents = JoinWorld(2);
  ASSERT_TRUE(Init({.world_size = 2, .tensor_parallel_size = 2}).ok());
  v1::KvGetRequest get;
  get.set_generation(1);
  get.add_keys("never");
  get.set_timeout_ms(600000);
  int answered = 0;
  auto count = [&](absl::StatusOr<v1::KvGetResponse>) { ++answered; };
  // Two waiters fill the limit; a third is refused at once.
  Coordinator::Cancel first = coordinator_->KvGet(get, count);
  Coordinator::Cancel second = coordinator_->KvGet(get, count);
  ASSERT_TRUE(first && second);
  std::optional<absl::Status> third;
  coordinator_->KvGet(get, [&](absl::StatusOr<v1::KvGetResponse> r) { third = r.status(); });
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third->message(), HasSubstr("--max-kv-waiters"));
  // Their callers go away: the waiters go at once, not at their timeout, and room is back.
  first();
  second();
  EXPECT_EQ(answered, 0);
  EXPECT_TRUE(coordinator_->KvGet(get, count) != nullptr);
  // The same for state long-polls.
  const int64_t version = State().version();
  std::vector<Coordinator::Cancel> polls;
  for (int i = 0; i < 2; ++i) {
    polls.push_back(coordinator_->WaitForState("default", version, clock_.Now() + absl::Hours(1),
                                               [](absl::StatusOr<v1::PoolState>) {}));
  }
  std::optional<absl::Status> refused;
  coordinator_->WaitForState("default", version, clock_.Now() + absl::Hours(1),
                             [&](absl::StatusOr<v1::PoolState> s) { refused = s.status(); });
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->code(), absl::StatusCode::kResourceExhausted);
  for (auto& cancel : polls) cancel();
  EXPECT_TRUE(coordinator_->WaitForState("default", version, clock_.Now() + absl::Hours(1),
                                         [](absl::StatusOr<v1::PoolState>) {}) != nullptr);
}

TEST_F(CoordinatorTest, StateWaiters_ShareOneSnapshotOfTheChange) {
  std::vector<Joined> agents = JoinWorld(1);
  const int64_t version = State().version();
  std::vector<int64_t> seen;
  for (int i = 0; i < 100; ++i) {
    coordinator_->WaitForState("default", version, clock_.Now() + absl::Hours(1),
                               [&](absl::StatusOr<v1::PoolState> s) {
                                 ASSERT_TRUE(s.ok());
                                 seen.push_back(s->version());
                               });
  }
  JoinAgent("late");
  ASSERT_EQ(seen.size(), 100u);
  for (int64_t v : seen) EXPECT_EQ(v, seen[0]);
  EXPECT_GT(seen[0], version);
}

TEST_F(CoordinatorTest, EnumsAndDeadlinesOutOfRange_Refused) {
  std::vector<Joined> agents = ReadyWorld({.world_size = 2, .tensor_parallel_size = 2});
  ASSERT_EQ(agents.size(), 2u);
  v1::DestroyRequest destroy;
  destroy.set_scope(static_cast<v1::DestroyScope>(99));
  EXPECT_EQ(coordinator_->Destroy(destroy).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(State().phase(), v1::POOL_PHASE_READY);
  v1::InitializeRequest init;
  init.set_pool("other");
  *init.mutable_config() = ToProto(ParallelConfig{.world_size = 1});
  init.mutable_options()->set_deadline_ms(-5);
  EXPECT_EQ(coordinator_->Initialize(init).status().code(), absl::StatusCode::kInvalidArgument);
  init.mutable_options()->set_deadline_ms(int64_t{1} << 50);
  EXPECT_EQ(coordinator_->Initialize(init).status().code(), absl::StatusCode::kInvalidArgument);
  init.mutable_options()->set_deadline_ms(0);
  init.mutable_options()->set_init_mode(static_cast<v1::InitMode>(42));
  EXPECT_EQ(coordinator_->Initialize(init).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CoordinatorTest, AgentInput_GroupStatesOfUnknownGroupsAndHugeTexts_StayBounded) {
  CoordinatorOptions options;
  options.limits.max_event_log_bytes = 64 * 1024;
  Reset(options);
  std::vector<Joined> agents = JoinWorld(2);
  ASSERT_TRUE(Init({.world_size = 2, .tensor_parallel_size = 2}).ok());
  for (auto& a : agents) {
    ASSERT_TRUE(ReportWithGroups(*coordinator_, a.session_id, a.sink->plans().back()).ok());
  }
  const size_t before = coordinator_->GetEvents("default", 0, 0)->size();
  v1::AgentMessage flood;
  flood.mutable_group_states()->set_generation(1);
  for (int i = 0; i < 10000; ++i) {
    v1::GroupReport* g = flood.mutable_group_states()->add_groups();
    g->set_kind(v1::GROUP_KIND_TP);
    g->set_index(1000 + i);  // no such group
    g->set_async_error(std::string(1000, 'x'));
  }
  ASSERT_TRUE(coordinator_->HandleAgentMessage(agents[0].session_id, flood).ok());
  EXPECT_EQ(coordinator_->GetEvents("default", 0, 0)->size(), before);
  // A known group with a huge, hostile error: stored cut and printable, and the log stays small.
  v1::AgentMessage bad;
  bad.mutable_group_states()->set_generation(1);
  v1::GroupReport* g = bad.mutable_group_states()->add_groups();
  g->set_kind(v1::GROUP_KIND_WORLD);
  g->set_state(v1::COMM_STATE_ERROR);
  g->set_async_error("line\n\x1b[2J" + std::string(1 << 20, 'y'));
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(coordinator_->HandleAgentMessage(agents[0].session_id, bad).ok());
  }
  size_t bytes = 0;
  const std::vector<v1::Event> events = *coordinator_->GetEvents("default", 0, 0);
  for (const v1::Event& e : events) {
    bytes += e.ByteSizeLong();
    EXPECT_EQ(e.message().find('\x1b'), std::string::npos);
    EXPECT_EQ(e.message().find('\n'), std::string::npos);
  }
  EXPECT_LE(bytes, 64u * 1024);
  const v1::PoolState state = State();
  for (const v1::MemberState& m : state.members()) {
    // Cut to 4 KiB before escaping (an escaped byte takes four).
    for (const v1::GroupReport& r : m.groups()) EXPECT_LE(r.async_error().size(), 5000u);
  }
}

TEST_F(CoordinatorTest, DeletePool_RefusedWhileAttachedUnlessForced) {
  std::vector<Joined> agents = JoinWorld(2);
  EXPECT_EQ(coordinator_->DeletePool("ghost", false).code(), absl::StatusCode::kNotFound);
  absl::Status refused = coordinator_->DeletePool("default", false);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("--force"));
  ASSERT_TRUE(coordinator_->DeletePool("default", true).ok());
  EXPECT_TRUE(agents[0].sink->closed.has_value());
  EXPECT_EQ(coordinator_->GetState("default").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(coordinator_->ListPools().empty());
}

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
  const ParallelConfig full{.world_size = 4, .data_parallel_size = 2,
                            .tensor_parallel_size = 2};
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

TEST_F(CoordinatorTest, Check_SendsEveryMemberACheckOfTheReadyGeneration) {
  std::vector<Joined> agents = JoinWorld(2);
  v1::CheckRequest unknown;
  unknown.set_pool("ghost");
  EXPECT_EQ(coordinator_->Check(unknown).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(Init({.world_size = 2, .tensor_parallel_size = 2}).ok());
  EXPECT_EQ(coordinator_->Check(v1::CheckRequest()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  for (auto& a : agents) ASSERT_TRUE(Report(a, 1, true).ok());
  ASSERT_TRUE(coordinator_->Check(v1::CheckRequest()).ok());
  for (auto& a : agents) {
    ASSERT_FALSE(a.sink->messages.empty());
    EXPECT_EQ(a.sink->messages.back().check().generation(), 1);
  }
}

}  // namespace
}  // namespace cohort::coordinator
