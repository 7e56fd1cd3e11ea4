// Coordinator in process: the rendezvous store and the long-polls (KvGet, WaitForState), their
// limits and cancellation.
#include "tests/coordinator_fixture.h"

namespace cohort::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

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

// A store request that arrives after a destroy of a generation still being built is refused
// with the destroy as the reason, the same reason the agents' abort carries: an agent whose next
// get reaches the coordinator before the abort message reaches it fails its build for the same
// stated reason either way.
TEST_F(CoordinatorTest, Kv_AfterDestroyWhileBuilding_AbortedNamesTheDestroy) {
  std::vector<Joined> agents = JoinWorld(2);
  ASSERT_TRUE(Init({.world_size = 2, .tensor_parallel_size = 2}).ok());
  v1::DestroyRequest destroy;
  destroy.set_scope(v1::DESTROY_SCOPE_ALL);
  ASSERT_TRUE(coordinator_->Destroy(destroy).ok());
  v1::KvGetRequest get;
  get.set_generation(1);
  get.add_keys("world/0/0");
  get.set_timeout_ms(60000);
  std::optional<absl::StatusOr<v1::KvGetResponse>> got;
  coordinator_->KvGet(get, [&](absl::StatusOr<v1::KvGetResponse> r) { got = r; });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(got->status().message(), HasSubstr("POOL_PHASE_DESTROYING"));
  EXPECT_THAT(got->status().message(), HasSubstr("destroy requested"));
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

}  // namespace
}  // namespace cohort::coordinator
