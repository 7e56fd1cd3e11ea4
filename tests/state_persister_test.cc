// StatePersister on its own (a fake store and a counter as the "state"), and the Coordinator's
// durable state saved outside its lock: a burst of joins during one blocked save costs one more
// save, not one per join.
#include "coordinator/state_persister.h"

#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "common/layout_proto.h"
#include "common/timer_queue.h"
#include "coordinator/coordinator.h"
#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

// Records every saved state; while `block` is set, each Save waits until Release is called.
class FakeStore : public StateStore {
 public:
  absl::StatusOr<v1::DurableState> Load() override {
    absl::MutexLock lock(&mu_);
    if (!load_error_.ok()) return load_error_;
    return v1::DurableState();
  }
  absl::Status Save(const v1::DurableState& state) override {
    absl::MutexLock lock(&mu_);
    saved_.push_back(state);
    if (!block_) return absl::OkStatus();
    ++blocked_;
    mu_.Await(absl::Condition(
        +[](bool* released) { return *released; }, &released_));
    return absl::OkStatus();
  }
  std::string Describe() const override { return "fake"; }

  void Block() {
    absl::MutexLock lock(&mu_);
    block_ = true;
  }
  // Waits until a Save is blocked.
  void AwaitBlocked() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* n) { return *n > 0; }, &blocked_));
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    block_ = false;
    released_ = true;
  }
  void FailLoads(absl::Status status) {
    absl::MutexLock lock(&mu_);
    load_error_ = std::move(status);
  }
  std::vector<v1::DurableState> saved() const {
    absl::MutexLock lock(&mu_);
    return saved_;
  }

 private:
  mutable absl::Mutex mu_;
  bool block_ ABSL_GUARDED_BY(mu_) = false;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  int blocked_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status load_error_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::DurableState> saved_ ABSL_GUARDED_BY(mu_);
};

// The state is one pool whose generation counts the changes.
class Counter {
 public:
  void Change() {
    absl::MutexLock lock(&mu_);
    ++changes_;
  }
  std::optional<v1::DurableState> Snapshot() {
    absl::MutexLock lock(&mu_);
    v1::DurableState state;
    state.add_pools()->set_generation(changes_);
    return state;
  }

 private:
  absl::Mutex mu_;
  int64_t changes_ ABSL_GUARDED_BY(mu_) = 0;
};

int64_t GenerationOf(const v1::DurableState& state) { return state.pools(0).generation(); }

TEST(StatePersister, NothingChanged_NothingSaved) {
  FakeStore store;
  Counter counter;
  StatePersister persister(&store, [&] { return counter.Snapshot(); });
  persister.WriteIfDirty();
  persister.Flush();
  EXPECT_EQ(persister.saves(), 0);
}

TEST(StatePersister, EachChangeAlone_IsSavedByTheCallThatMadeIt) {
  FakeStore store;
  Counter counter;
  StatePersister persister(&store, [&] { return counter.Snapshot(); });
  for (int i = 1; i <= 3; ++i) {
    counter.Change();
    persister.MarkDirty();
    persister.WriteIfDirty();
    ASSERT_EQ(persister.saves(), i);
    EXPECT_EQ(GenerationOf(store.saved().back()), i);
  }
}

TEST(StatePersister, ChangesDuringABlockedSave_CostOneMoreSave_TheLatest) {
  FakeStore store;
  Counter counter;
  StatePersister persister(&store, [&] { return counter.Snapshot(); });
  store.Block();
  counter.Change();
  persister.MarkDirty();
  std::thread writer([&] { persister.WriteIfDirty(); });
  store.AwaitBlocked();
  for (int i = 0; i < 1000; ++i) {
    counter.Change();
    persister.MarkDirty();
    persister.WriteIfDirty();  // the writer is busy: returns at once
  }
  store.Release();
  writer.join();
  EXPECT_EQ(persister.saves(), 2);
  EXPECT_EQ(GenerationOf(store.saved().back()), 1001);
}

TEST(StatePersister, Flush_WaitsForTheOtherWriter_AndItsPendingChanges) {
  FakeStore store;
  Counter counter;
  StatePersister persister(&store, [&] { return counter.Snapshot(); });
  store.Block();
  counter.Change();
  persister.MarkDirty();
  std::thread writer([&] { persister.WriteIfDirty(); });
  store.AwaitBlocked();
  counter.Change();
  persister.MarkDirty();
  absl::Notification flushed;
  std::thread flusher([&] {
    persister.Flush();
    flushed.Notify();
  });
  EXPECT_FALSE(flushed.HasBeenNotified());  // the first Save is still blocked
  store.Release();
  flushed.WaitForNotification();
  EXPECT_EQ(GenerationOf(store.saved().back()), 2);
  writer.join();
  flusher.join();
}

TEST(StatePersister, SnapshotRefused_NothingSaved) {
  FakeStore store;
  StatePersister persister(&store, [] { return std::optional<v1::DurableState>(); });
  persister.MarkDirty();
  persister.WriteIfDirty();
  EXPECT_EQ(persister.saves(), 0);
  EXPECT_TRUE(store.saved().empty());
}

class NullSink : public SessionSink {
 public:
  void Send(const v1::CoordinatorMessage&) override {}
  void Close(const absl::Status&) override {}
};

v1::JoinRequest JoinOf(const std::string& identity) {
  v1::JoinRequest request;
  request.set_identity(identity);
  request.set_incarnation("inc-1");
  request.add_backends("gloo");
  return request;
}

TEST(CoordinatorState, BurstOf4096JoinsDuringABlockedSave_FewSaves_LastHoldsEveryone) {
  FakeClock clock;
  TimerQueue timers(&clock);
  auto owned = std::make_unique<FakeStore>();
  FakeStore* store = owned.get();
  CoordinatorOptions options;
  options.limits.max_members_per_pool = 8192;
  Coordinator coordinator(options, &clock, &timers, std::move(owned));
  store->Block();
  // The first join saves on its own thread, and blocks there.
  std::thread first([&] { ASSERT_TRUE(coordinator.Join(JoinOf("agent-0")).ok()); });
  store->AwaitBlocked();
  // Every other join finds the save in progress and returns without writing.
  for (int i = 1; i < 4096; ++i) {
    ASSERT_TRUE(coordinator.Join(JoinOf("agent-" + std::to_string(i))).ok());
  }
  store->Release();
  first.join();
  coordinator.FlushState();
  EXPECT_LE(coordinator.StateSaves(), 3);
  const std::vector<v1::DurableState> saved = store->saved();
  ASSERT_FALSE(saved.empty());
  ASSERT_EQ(saved.back().pools_size(), 1);
  const auto& ranks = saved.back().pools(0).ranks();
  EXPECT_EQ(ranks.size(), 4096u);
  std::set<int> distinct;
  for (int i = 0; i < 4096; ++i) {
    auto it = ranks.find("agent-" + std::to_string(i));
    ASSERT_NE(it, ranks.end()) << "agent-" << i;
    distinct.insert(it->second);
  }
  EXPECT_EQ(distinct.size(), 4096u);
}

TEST(CoordinatorState, ChangeWithNobodyElseSaving_IsSavedBeforeTheCallReturns) {
  FakeClock clock;
  TimerQueue timers(&clock);
  auto owned = std::make_unique<FakeStore>();
  FakeStore* store = owned.get();
  Coordinator coordinator(CoordinatorOptions{}, &clock, &timers, std::move(owned));
  ASSERT_TRUE(coordinator.Join(JoinOf("agent-0")).ok());
  ASSERT_EQ(store->saved().size(), 1u);
  EXPECT_EQ(store->saved().back().pools(0).ranks().at("agent-0"), 0);
}

// An operator's command is durable once answered, as it was before saves left the lock: an
// Initialize that arrives while another thread's save is in progress waits for the save that
// holds its config (a coordinator killed right after the answer restarts with the config).
// Agent-driven changes (joins) still return at once; agents restore them by reporting what they
// hold.
TEST(CoordinatorState, InitializeDuringAnotherSave_ReturnsOnceItsConfigIsSaved) {
  FakeClock clock;
  TimerQueue timers(&clock);
  auto owned = std::make_unique<FakeStore>();
  FakeStore* store = owned.get();
  Coordinator coordinator(CoordinatorOptions{}, &clock, &timers, std::move(owned));
  store->Block();
  std::thread first([&] { ASSERT_TRUE(coordinator.Join(JoinOf("agent-0")).ok()); });
  store->AwaitBlocked();
  v1::InitializeRequest init;
  *init.mutable_config() = ToProto(ParallelConfig{.world_size = 2, .tensor_parallel_size = 2});
  init.mutable_options()->set_backend("gloo");
  // The blocked save is released only once Initialize has changed the pool (its completions
  // run before it returns), so the Initialize certainly arrives during that save.
  absl::StatusOr<v1::PoolState> before = coordinator.GetState("default");
  ASSERT_TRUE(before.ok());
  coordinator.WaitForState("default", before->version(), absl::InfiniteFuture(),
                           [store](absl::StatusOr<v1::PoolState>) { store->Release(); });
  std::optional<v1::DurableState> saved_when_answered;
  std::thread operator_call([&] {
    absl::StatusOr<v1::InitializeResponse> answer = coordinator.Initialize(init);
    ASSERT_TRUE(answer.ok()) << answer.status();
    saved_when_answered = store->saved().back();
  });
  operator_call.join();
  first.join();
  ASSERT_TRUE(saved_when_answered.has_value());
  ASSERT_EQ(saved_when_answered->pools_size(), 1);
  EXPECT_EQ(saved_when_answered->pools(0).config().world_size(), 2);
}

TEST(CoordinatorState, StoreThatCannotBeLoaded_IsNeverSaved) {
  FakeClock clock;
  TimerQueue timers(&clock);
  auto owned = std::make_unique<FakeStore>();
  FakeStore* store = owned.get();
  store->FailLoads(absl::DataLossError("does not parse"));
  Coordinator coordinator(CoordinatorOptions{}, &clock, &timers, std::move(owned));
  ASSERT_TRUE(coordinator.Join(JoinOf("agent-0")).ok());
  coordinator.FlushState();
  EXPECT_TRUE(store->saved().empty());
  EXPECT_EQ(coordinator.StateSaves(), 0);
}

}  // namespace
}  // namespace cohort::coordinator
