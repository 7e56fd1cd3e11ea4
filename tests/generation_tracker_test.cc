// GenerationTracker on its own, on a FakeClock: a generation is READY once every rank of its
// world reported READY (each counted once), and its build time runs from the plans to the last.
#include "coordinator/generation_tracker.h"

#include "common/clock.h"
#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

TEST(GenerationTracker, AllRanksReady_ReadyWithTheTimeFromThePlans) {
  FakeClock clock;
  GenerationTracker tracker;
  tracker.Start(3, clock.Now());
  clock.Advance(absl::Milliseconds(40));
  EXPECT_FALSE(tracker.MarkReady(2, clock.Now()));
  EXPECT_FALSE(tracker.MarkReady(0, clock.Now()));
  EXPECT_EQ(tracker.init_ms(), 0);
  clock.Advance(absl::Milliseconds(210));
  EXPECT_TRUE(tracker.MarkReady(1, clock.Now()));
  EXPECT_EQ(tracker.ready(), 3);
  EXPECT_EQ(tracker.init_ms(), 250);
}

TEST(GenerationTracker, SameRankTwice_CountsOnce) {
  FakeClock clock;
  GenerationTracker tracker;
  tracker.Start(2, clock.Now());
  EXPECT_FALSE(tracker.MarkReady(0, clock.Now()));
  EXPECT_FALSE(tracker.MarkReady(0, clock.Now()));
  EXPECT_EQ(tracker.ready(), 1);
  EXPECT_TRUE(tracker.MarkReady(1, clock.Now()));
}

TEST(GenerationTracker, RanksOutsideTheWorld_CountNothing) {
  FakeClock clock;
  GenerationTracker tracker;
  tracker.Start(1, clock.Now());
  EXPECT_FALSE(tracker.MarkReady(-1, clock.Now()));
  EXPECT_FALSE(tracker.MarkReady(1, clock.Now()));
  EXPECT_EQ(tracker.ready(), 0);
  EXPECT_TRUE(tracker.MarkReady(0, clock.Now()));
}

TEST(GenerationTracker, NotStarted_NeverReady) {
  FakeClock clock;
  GenerationTracker tracker;
  EXPECT_FALSE(tracker.MarkReady(0, clock.Now()));
  EXPECT_EQ(tracker.init_ms(), 0);
}

TEST(GenerationTracker, NextStart_ForgetsReadyRanksAndTheLastBuildTime) {
  FakeClock clock;
  GenerationTracker tracker;
  tracker.Start(1, clock.Now());
  clock.Advance(absl::Milliseconds(7));
  ASSERT_TRUE(tracker.MarkReady(0, clock.Now()));
  ASSERT_EQ(tracker.init_ms(), 7);
  tracker.Start(2, clock.Now());
  EXPECT_EQ(tracker.ready(), 0);
  EXPECT_EQ(tracker.init_ms(), 0);
  EXPECT_FALSE(tracker.MarkReady(0, clock.Now()));
  clock.Advance(absl::Milliseconds(3));
  EXPECT_TRUE(tracker.MarkReady(1, clock.Now()));
  EXPECT_EQ(tracker.init_ms(), 3);
}

}  // namespace
}  // namespace cohort::coordinator
