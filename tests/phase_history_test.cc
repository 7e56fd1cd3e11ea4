// PhaseHistory on its own: a pool starts WAITING; each change is recorded with its time and
// generation; staying in a phase records nothing; the history is bounded.
#include "coordinator/phase_history.h"

#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

TEST(PhaseHistory, StartsWaitingWithNoTransitions) {
  PhaseHistory h;
  EXPECT_EQ(h.phase(), v1::POOL_PHASE_WAITING);
  EXPECT_TRUE(h.transitions().empty());
}

TEST(PhaseHistory, EachChangeRecordedWithTimeAndGeneration_SamePhaseIgnored) {
  PhaseHistory h;
  EXPECT_FALSE(h.Set(v1::POOL_PHASE_WAITING, kT0, 0));
  EXPECT_TRUE(h.Set(v1::POOL_PHASE_INITIALIZING, kT0 + absl::Seconds(1), 1));
  EXPECT_FALSE(h.Set(v1::POOL_PHASE_INITIALIZING, kT0 + absl::Seconds(2), 1));
  EXPECT_TRUE(h.Set(v1::POOL_PHASE_READY, kT0 + absl::Seconds(3), 1));
  EXPECT_EQ(h.phase(), v1::POOL_PHASE_READY);
  ASSERT_EQ(h.transitions().size(), 2u);
  EXPECT_EQ(h.transitions()[0].phase(), v1::POOL_PHASE_INITIALIZING);
  EXPECT_EQ(h.transitions()[0].unix_ms(), absl::ToUnixMillis(kT0 + absl::Seconds(1)));
  EXPECT_EQ(h.transitions()[1].phase(), v1::POOL_PHASE_READY);
  EXPECT_EQ(h.transitions()[1].generation(), 1);
}

TEST(PhaseHistory, BoundedOldestDropped) {
  PhaseHistory h;
  for (int i = 0; i < 100; ++i) {
    h.Set(i % 2 == 0 ? v1::POOL_PHASE_INITIALIZING : v1::POOL_PHASE_FAILED, kT0 + absl::Seconds(i),
          i);
  }
  ASSERT_EQ(h.transitions().size(), PhaseHistory::kMaxTransitions);
  EXPECT_EQ(h.transitions().back().generation(), 99);
  EXPECT_EQ(h.transitions().front().generation(), 100 - PhaseHistory::kMaxTransitions);
}

}  // namespace
}  // namespace cohort::coordinator
