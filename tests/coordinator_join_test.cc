// Coordinator in process: joins and rank assignment, the checks at the door and the limits,
// Initialize, generations (plans, reports, deadlines), Check and deleting pools.
#include "tests/coordinator_fixture.h"

namespace cohort::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

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

// An agent that reads runs gets its groups as runs (a whole world in a few bytes); one that does
// not (an older agent) gets them listed; both are the layout's groups.
TEST_F(CoordinatorTest, Generation_PlansAsRunsOnlyForAgentsThatAcceptThem) {
  std::vector<Joined> agents;
  for (int r = 0; r < 8; ++r) {
    accepts_rank_runs_ = r % 2 == 0;
    agents.push_back(JoinAgent(absl::StrCat("agent-", r), r));
  }
  ASSERT_TRUE(Init(kDp2Cfg2U2).ok());
  absl::StatusOr<Layout> layout = Layout::Build(kDp2Cfg2U2);
  ASSERT_TRUE(layout.ok());
  for (const Joined& j : agents) {
    ASSERT_EQ(j.sink->plans().size(), 1u);
    const v1::Plan plan = j.sink->plans()[0];
    for (const v1::GroupSet& set : plan.layout().group_sets()) {
      const v1::RankGroup& group = set.groups(0);
      EXPECT_EQ(group.compact().runs_size() > 0, j.rank % 2 == 0) << j.rank;
      EXPECT_EQ(group.ranks_size() > 0, j.rank % 2 != 0) << j.rank;
      absl::StatusOr<RankList> ranks = RanksOf(group, 8);
      ASSERT_TRUE(ranks.ok()) << ranks.status();
      EXPECT_EQ(*ranks, layout->GroupOf(*FromProto(set.kind()), j.rank));
    }
  }
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

// GetState of one rank builds only that member's record (not a snapshot of the whole pool) and
// that rank's groups; the counts still cover the whole pool.
TEST_F(CoordinatorTest, GetState_OneRank_OnlyThatMemberAndItsGroups_CountsOverThePool) {
  std::vector<Joined> agents = ReadyWorld(kDp2Cfg2U2);
  ASSERT_EQ(agents.size(), 8u);
  JoinAgent("spare");
  absl::StatusOr<v1::PoolState> s = coordinator_->GetState("default", 3);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->members_size(), 1);
  EXPECT_EQ(s->members(0).rank(), 3);
  EXPECT_EQ(s->members(0).identity(), "agent-3");
  EXPECT_EQ(s->members_ready(), 8);
  EXPECT_EQ(s->members_standby(), 1);
  absl::StatusOr<Layout> layout = Layout::Build(kDp2Cfg2U2);
  ASSERT_EQ(s->layout().group_sets_size(), static_cast<int>(layout->kinds().size()));
  for (const v1::GroupSet& set : s->layout().group_sets()) {
    const GroupKind kind = *FromProto(set.kind());
    ASSERT_EQ(set.groups_size(), 1);
    EXPECT_EQ(set.groups(0).index(), layout->GroupIndexOf(kind, 3));
    EXPECT_EQ(RankList(set.groups(0).ranks().begin(), set.groups(0).ranks().end()),
              layout->GroupOf(kind, 3));
  }
  // The whole pool: every member, in rank order, standbys last, and the whole layout.
  const v1::PoolState all = State();
  ASSERT_EQ(all.members_size(), 9);
  for (int r = 0; r < 8; ++r) EXPECT_EQ(all.members(r).rank(), r);
  EXPECT_EQ(all.members(8).identity(), "spare");
  EXPECT_EQ(all.members_ready(), 8);
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
  EXPECT_EQ(coordinator_->Initialize(other).status().code(), absl::StatusCode::kFailedPrecondition);
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
  for (const std::string& bad : {std::string("evil\nINFO forged line"), std::string("red\x1b[31m"),
                                 std::string(300, 'a'), std::string("spa ce")}) {
    request.set_identity(bad);
    absl::StatusOr<v1::JoinResponse> joined = coordinator_->Join(request);
    EXPECT_EQ(joined.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(joined.status().message(),
                ::testing::AnyOf(HasSubstr("letters, digits"), HasSubstr("--max-identity-length")));
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
  EXPECT_TRUE(coordinator_->ListPools()->empty());
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
