// Hostile clients, item 5: unbounded state keyed by client input (pools, members, store,
// waiters, watchers, sessions that never attach, fake groups) is refused past each limit.
//
// Each test starts a real coordinator and a READY pool of 4 Gloo agents (tp2 x dp2), attacks,
// asserts the refusal, and then that the pool is still READY at the same generation and passes
// a check. Shared helpers and the fixture: hostile_fixture.h; the suite's overview and how to
// run it against another coordinator binary: hostile_sessions_test.cc.
#include "tests/fault/hostile_fixture.h"

namespace cohort::testing {
namespace {

using ::testing::HasSubstr;

// ---- 5. Unbounded state keyed by client input -----------------------------------------------

// Pools past --max-pools, by Join and by Initialize; DeletePool frees one (NOT_FOUND for an
// unknown pool, FAILED_PRECONDITION while members are attached).
TEST_F(Hostile, Item5_PoolsPastMaxPools_Refused_DeletePool) {
  ASSERT_NO_FATAL_FAILURE(StartPool({{"--max-pools", "4"}}));
  ASSERT_TRUE(Initialize(SmallPool("p1")).ok());
  ASSERT_TRUE(Join(Joiner("p2", "lonely")).ok());
  ASSERT_TRUE(Initialize(SmallPool("p3")).ok());
  ExpectRefused(Join(Joiner("p4", "lonely")), grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-pools");
  ExpectRefused(Initialize(SmallPool("p5")), grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-pools");
  v1::ListPoolsResponse pools;
  ASSERT_TRUE(admin_->ListPools(Context().get(), v1::ListPoolsRequest(), &pools).ok());
  EXPECT_EQ(pools.pools_size(), 4);

  ExpectRefused(DeletePool("no-such-pool", false), grpc::StatusCode::NOT_FOUND, "no-such-pool");
  ExpectRefused(DeletePool("default", false), grpc::StatusCode::FAILED_PRECONDITION,
                "4 attached members");
  EXPECT_TRUE(DeletePool("p1", false).ok());
  EXPECT_EQ(State("p1").status().code(), absl::StatusCode::kNotFound);
  // The slot is free again.
  grpc::Status s = Join(Joiner("p4", "lonely"));
  EXPECT_TRUE(s.ok()) << Describe(s);
  RecordRss();
  ExpectPoolIntact();
}

// Members per pool, identity length and charset, pool-name length and charset, a held world of
// 2*10^7; every refusal counted in cohort_coordinator_limit_refusals_total.
TEST_F(Hostile, Item5_MembersNamesHeldWorld_Refused_AndCounted) {
  ASSERT_NO_FATAL_FAILURE(
      StartPool({{"--max-members-per-pool", "8"}, {"--metrics-listen", "127.0.0.1:0"}}));
  for (int i = 0; i < 4; ++i) {
    grpc::Status s = Join(Joiner("default", absl::StrCat("standby-", i)));
    ASSERT_TRUE(s.ok()) << Describe(s);
  }
  ExpectRefused(Join(Joiner("default", "standby-4")), grpc::StatusCode::RESOURCE_EXHAUSTED,
                "--max-members-per-pool");
  ExpectRefused(Join(Joiner("default", std::string(300, 'a'))), grpc::StatusCode::INVALID_ARGUMENT,
                "--max-identity-length");
  ExpectRefused(Join(Joiner("default", "evil\nname")), grpc::StatusCode::INVALID_ARGUMENT,
                kAllowedCharacters);
  ExpectRefused(Join(Joiner("default", "\x1b[31mred")), grpc::StatusCode::INVALID_ARGUMENT,
                kAllowedCharacters);
  ExpectRefused(Join(Joiner(std::string(100, 'p'), "pooled")), grpc::StatusCode::INVALID_ARGUMENT,
                "--max-pool-name-length");
  ExpectRefused(Join(Joiner("a/b", "pooled")), grpc::StatusCode::INVALID_ARGUMENT,
                kAllowedCharacters);
  ExpectRefused(Initialize(SmallPool("bad pool")), grpc::StatusCode::INVALID_ARGUMENT,
                kAllowedCharacters);
  v1::JoinRequest held = Joiner("default", "big-holder");
  held.mutable_held()->set_holding(true);
  held.mutable_held()->set_rank(0);
  held.mutable_held()->set_world_size(20000000);
  held.mutable_held()->set_generation(1);
  const grpc::Status s = Join(held);
  EXPECT_TRUE(s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ||
              s.error_code() == grpc::StatusCode::INVALID_ARGUMENT)
      << Describe(s);
  EXPECT_THAT(s.error_message(), HasSubstr("--max-world-size"));

  // The refusals metric (the coordinator's second stdout line names the metrics URL).
  std::optional<std::string> line = cluster_->coordinator().ReadLine(absl::Seconds(10));
  ASSERT_TRUE(line.has_value()) << "no metrics URL";
  const std::string scrape = HttpGet(line->substr(line->rfind(' ') + 1));
  ASSERT_THAT(scrape, HasSubstr("cohort_coordinator_"));
  EXPECT_GE(Refusals(scrape, "max-members-per-pool"), 1);
  EXPECT_GE(Refusals(scrape, "identity"), 3);
  EXPECT_GE(Refusals(scrape, "pool-name"), 3);
  EXPECT_GE(Refusals(scrape, "max-world-size"), 1);
  RecordRss();
  ExpectPoolIntact();
}

// The rendezvous store past --max-store-keys / --max-store-bytes, long-polls past
// --max-state-waiters, watchers past --max-watchers, an Initialize past --max-world-size.
TEST_F(Hostile, Item5_StoreWaitersWatchersWorldSize_Refused) {
  ASSERT_NO_FATAL_FAILURE(StartPool({{"--max-store-keys", "200"},
                                     {"--max-store-bytes", "65536"},
                                     {"--max-state-waiters", "10"},
                                     {"--max-watchers", "3"},
                                     {"--max-world-size", "64"}}));
  {
    v1::KvSetRequest set;
    set.set_pool("default");
    set.set_generation(generation_);
    for (int i = 0; i < 201; ++i) {
      v1::KvEntry* e = set.add_entries();
      e->set_key(absl::StrCat("hostile/k", i));
      e->set_value("v");
    }
    v1::KvSetResponse response;
    ExpectRefused(agent_->KvSet(Context().get(), set, &response),
                  grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-store-keys");
    set.clear_entries();
    v1::KvEntry* big = set.add_entries();
    big->set_key("hostile/big");
    big->set_value(std::string(70000, 'x'));
    ExpectRefused(agent_->KvSet(Context().get(), set, &response),
                  grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-store-bytes");
  }
  {
    absl::StatusOr<v1::PoolState> now = State();
    ASSERT_TRUE(now.ok()) << now.status();
    Calls<v1::GetStateRequest, v1::GetStateResponse> polls(
        [this](grpc::ClientContext* c, const v1::GetStateRequest* q, v1::GetStateResponse* r,
               std::function<void(grpc::Status)> done) {
          admin_->async()->GetState(c, q, r, std::move(done));
        });
    v1::GetStateRequest poll;
    poll.set_pool("default");
    poll.mutable_wait()->set_after_version(now->version());
    poll.mutable_wait()->set_timeout_ms(20000);
    for (int i = 0; i < 11; ++i) polls.Add(poll, absl::Seconds(30));
    // Nothing changes the pool meanwhile: the only answer is the refusal of the eleventh.
    EXPECT_TRUE(polls.WaitDone(1, absl::Seconds(15))) << "no long-poll was refused";
    bool refused = false;
    for (int i = 0; i < polls.size(); ++i) {
      if (!polls.finished(i)) continue;
      ExpectRefused(polls.status(i), grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-state-waiters");
      refused = true;
    }
    EXPECT_TRUE(refused);
    EXPECT_EQ(polls.done(), 1);
  }
  {
    std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
    std::vector<std::unique_ptr<grpc::ClientReader<v1::WatchEvent>>> watchers;
    v1::WatchRequest watch;
    watch.set_pool("default");
    watch.set_snapshot(true);
    for (int i = 0; i < 3; ++i) {
      contexts.push_back(Context(absl::Seconds(60)));
      watchers.push_back(admin_->Watch(contexts.back().get(), watch));
      v1::WatchEvent first;
      ASSERT_TRUE(watchers.back()->Read(&first)) << "watcher " << i;  // registered
      EXPECT_TRUE(first.has_snapshot());
    }
    auto context = Context(absl::Seconds(20));
    auto fourth = admin_->Watch(context.get(), watch);
    v1::WatchEvent event;
    const bool streamed = fourth->Read(&event);
    EXPECT_FALSE(streamed) << "a fourth watcher was served";
    if (streamed) context->TryCancel();
    ExpectRefused(fourth->Finish(), grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-watchers");
    for (size_t i = 0; i < watchers.size(); ++i) {
      contexts[i]->TryCancel();
      (void)watchers[i]->Finish();
    }
  }
  {
    v1::InitializeRequest init;
    init.set_pool("big");
    *init.mutable_config() = ToProto(ParallelConfig{.world_size = 128, .data_parallel_size = 128});
    init.mutable_options()->set_backend("none");
    ExpectRefused(Initialize(init), grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-world-size");
  }
  RecordRss();
  ExpectPoolIntact();
}

// A session stream that never attaches is closed after --attach-timeout-ms.
TEST_F(Hostile, Item5_SessionThatNeverAttaches_ClosedAfterAttachTimeout) {
  ASSERT_NO_FATAL_FAILURE(StartPool({{"--attach-timeout-ms", "2000"}}));
  RawSession idle(agent_.get(), absl::Seconds(15));  // sends nothing at all
  const grpc::Status s = idle.Finish();
  ExpectRefused(s, grpc::StatusCode::DEADLINE_EXCEEDED, "attach");
  RecordRss();
  ExpectPoolIntact();
}

// A member of its own one-rank pool (backend none: nothing to build) sends one GroupStates of
// 5,000 made-up groups: at most one event per group it really holds (and at most 64) follows,
// not thousands. Then DeletePool of that pool: refused while its member is attached, done with
// force (the member's session is closed).
TEST_F(Hostile, Item5_GroupStatesOfThousandsOfFakeGroups_NoFlood_DeletePoolForce) {
  ASSERT_NO_FATAL_FAILURE(StartPool());
  v1::JoinResponse joined;
  grpc::Status s = Join(Joiner("flood", "flooder"), &joined);
  ASSERT_TRUE(s.ok()) << Describe(s);
  ASSERT_EQ(joined.rank(), 0);
  RawSession session(agent_.get(), absl::Seconds(60));
  ASSERT_TRUE(session.Attach(joined.session_id()));
  ASSERT_TRUE(Initialize(SmallPool("flood")).ok());
  v1::CoordinatorMessage message;
  while (session.Read(&message) && !message.has_plan()) {
  }
  ASSERT_TRUE(message.has_plan()) << "no plan for the flood pool";
  const int64_t generation = message.plan().generation();
  session.StartHeartbeats(absl::Milliseconds(100));
  v1::AgentMessage report;
  report.mutable_report()->set_generation(generation);
  report.mutable_report()->set_ok(true);
  v1::GroupReport* world = report.mutable_report()->add_groups();
  world->set_kind(v1::GROUP_KIND_WORLD);
  world->set_size(1);
  world->set_state(v1::COMM_STATE_READY);
  ASSERT_TRUE(session.Write(report));
  absl::StatusOr<v1::PoolState> ready =
      cluster_->WaitFor([](const v1::PoolState& st) { return st.phase() == v1::POOL_PHASE_READY; },
                        kDeadline, "flood");
  ASSERT_TRUE(ready.ok()) << ready.status();
  const int64_t version = ready->version();
  const int64_t after = Events("flood").back().seq();

  v1::AgentMessage flood;
  flood.mutable_group_states()->set_generation(generation);
  for (int i = 0; i < 5000; ++i) {
    v1::GroupReport* g = flood.mutable_group_states()->add_groups();
    g->set_kind(i % 2 == 0 ? v1::GROUP_KIND_WORLD : v1::GROUP_KIND_TP);
    g->set_index(i % 2 == 0 ? 0 : i);
    g->set_state(v1::COMM_STATE_ERROR);
    g->set_async_error("made up");
  }
  ASSERT_TRUE(session.Write(flood));
  // The message was handled once the pool's version moves.
  absl::StatusOr<v1::PoolState> handled = cluster_->WaitFor(
      [version](const v1::PoolState& st) { return st.version() > version; }, kDeadline, "flood");
  ASSERT_TRUE(handled.ok()) << handled.status();
  int group_states = 0;
  const std::vector<v1::Event> events = Events("flood", after);
  for (const v1::Event& e : events) group_states += e.kind() == v1::EVENT_KIND_GROUP_STATE;
  EXPECT_LE(group_states, 64);
  EXPECT_LE(events.size(), 100u);
  RecordProperty("flood_group_state_events", group_states);

  ExpectRefused(DeletePool("flood", false), grpc::StatusCode::FAILED_PRECONDITION, "attached");
  s = DeletePool("flood", true);
  EXPECT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(State("flood").status().code(), absl::StatusCode::kNotFound);
  const grpc::Status closed = session.Finish();
  ExpectRefused(closed, grpc::StatusCode::ABORTED, "deleted");
  RecordRss();
  ExpectPoolIntact();
}

}  // namespace
}  // namespace cohort::testing
