// StateWaiters on their own: a long-poll is released once the version passes its threshold (in
// the order they came), taken once at most, and everything goes when the pool does.
#include "coordinator/state_waiters.h"

#include <string>
#include <vector>

#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

// A callback that appends `name` to `calls` when run.
StateWaiters::Done Record(std::vector<std::string>& calls, std::string name) {
  return [&calls, name](absl::StatusOr<v1::PoolState>) { calls.push_back(name); };
}

void RunAll(std::vector<StateWaiters::Waiter>& waiters) {
  for (auto& w : waiters) w.done(v1::PoolState());
}

TEST(StateWaiters, Add_GivesDistinctNonZeroIds) {
  StateWaiters waiters;
  std::vector<std::string> calls;
  const uint64_t a = waiters.Add(0, Record(calls, "a"));
  const uint64_t b = waiters.Add(0, Record(calls, "b"));
  EXPECT_NE(a, 0u);
  EXPECT_NE(a, b);
  EXPECT_EQ(waiters.size(), 2u);
}

TEST(StateWaiters, Release_OnlyThoseBelowTheVersion_InOrderOfArrival) {
  StateWaiters waiters;
  std::vector<std::string> calls;
  waiters.Add(5, Record(calls, "at5"));
  waiters.Add(3, Record(calls, "at3"));
  waiters.Add(4, Record(calls, "at4"));
  std::vector<StateWaiters::Waiter> due = waiters.Release(5);  // satisfies 3 and 4, not 5
  RunAll(due);
  EXPECT_THAT(calls, ::testing::ElementsAre("at3", "at4"));
  EXPECT_EQ(waiters.size(), 1u);
  EXPECT_TRUE(waiters.Release(5).empty());
  EXPECT_EQ(waiters.Release(6).size(), 1u);
  EXPECT_EQ(waiters.size(), 0u);
}

TEST(StateWaiters, Release_ReturnsEachTimerToCancel) {
  StateWaiters waiters;
  std::vector<std::string> calls;
  const uint64_t id = waiters.Add(1, Record(calls, "a"));
  waiters.SetTimer(id, 42);
  std::vector<StateWaiters::Waiter> due = waiters.Release(2);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].timer, 42u);
  EXPECT_EQ(due[0].after_version, 1);
}

TEST(StateWaiters, Take_OnceOnly_AndNotAfterRelease) {
  StateWaiters waiters;
  std::vector<std::string> calls;
  const uint64_t a = waiters.Add(1, Record(calls, "a"));
  const uint64_t b = waiters.Add(1, Record(calls, "b"));
  waiters.SetTimer(a, 7);
  std::optional<StateWaiters::Waiter> taken = waiters.Take(a);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->timer, 7u);
  taken->done(v1::PoolState());
  EXPECT_THAT(calls, ::testing::ElementsAre("a"));
  EXPECT_FALSE(waiters.Take(a).has_value());
  EXPECT_EQ(waiters.Release(2).size(), 1u);  // b
  EXPECT_FALSE(waiters.Take(b).has_value());
}

TEST(StateWaiters, SetTimer_OnAGoneWaiter_DoesNothing) {
  StateWaiters waiters;
  std::vector<std::string> calls;
  const uint64_t a = waiters.Add(1, Record(calls, "a"));
  ASSERT_TRUE(waiters.Take(a).has_value());
  waiters.SetTimer(a, 9);
  EXPECT_EQ(waiters.size(), 0u);
  EXPECT_TRUE(waiters.timers().empty());
}

TEST(StateWaiters, TakeAll_EmptiesInOrder_TimersKeepTheWaiters) {
  StateWaiters waiters;
  std::vector<std::string> calls;
  const uint64_t a = waiters.Add(1, Record(calls, "a"));
  const uint64_t b = waiters.Add(9, Record(calls, "b"));
  waiters.SetTimer(a, 1);
  waiters.SetTimer(b, 2);
  EXPECT_THAT(waiters.timers(), ::testing::ElementsAre(1u, 2u));
  EXPECT_EQ(waiters.size(), 2u);
  std::vector<StateWaiters::Waiter> all = waiters.TakeAll();
  RunAll(all);
  EXPECT_THAT(calls, ::testing::ElementsAre("a", "b"));
  EXPECT_EQ(waiters.size(), 0u);
  // Ids are not reused after everything went.
  EXPECT_GT(waiters.Add(0, Record(calls, "c")), b);
}

}  // namespace
}  // namespace cohort::coordinator
