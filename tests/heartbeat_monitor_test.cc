// HeartbeatMonitor on its own, on a FakeClock: a member is overdue only after a full window
// unheard, and a sweep that ran a whole interval late (the coordinator stalled) gives every
// member a full window from then.
#include "coordinator/heartbeat_monitor.h"

#include "common/clock.h"
#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

constexpr absl::Duration kInterval = absl::Seconds(1);

TEST(HeartbeatMonitor, Window_IsIntervalTimesMisses) {
  EXPECT_EQ(HeartbeatMonitor(kInterval, 3).window(), absl::Seconds(3));
}

TEST(HeartbeatMonitor, Overdue_OnlyPastTheWholeWindow) {
  FakeClock clock;
  HeartbeatMonitor monitor(kInterval, 3);
  const absl::Time heard = clock.Now();
  clock.Advance(absl::Seconds(3));
  EXPECT_FALSE(monitor.Overdue(heard, clock.Now()));  // exactly the window: not yet
  clock.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(monitor.Overdue(heard, clock.Now()));
}

TEST(HeartbeatMonitor, OnTimeOrSlightlyLateSweep_IsNoStall) {
  FakeClock clock;
  HeartbeatMonitor monitor(kInterval, 3);
  const absl::Time heard = clock.Now();
  clock.Advance(absl::Seconds(4));
  EXPECT_FALSE(monitor.StartSweep(clock.Now(), absl::ZeroDuration()));
  EXPECT_FALSE(monitor.StartSweep(clock.Now(), kInterval));  // late by exactly one interval
  EXPECT_TRUE(monitor.Overdue(heard, clock.Now()));
}

TEST(HeartbeatMonitor, StalledSweep_GivesEveryMemberAFullWindowFromThen) {
  FakeClock clock;
  HeartbeatMonitor monitor(kInterval, 3);
  const absl::Time heard = clock.Now();
  clock.Advance(absl::Seconds(10));  // the coordinator was stopped meanwhile
  EXPECT_TRUE(monitor.StartSweep(clock.Now(), absl::Seconds(9)));
  EXPECT_FALSE(monitor.Overdue(heard, clock.Now()));
  clock.Advance(absl::Seconds(3));
  EXPECT_FALSE(monitor.Overdue(heard, clock.Now()));
  clock.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(monitor.Overdue(heard, clock.Now()));
}

TEST(HeartbeatMonitor, HeardAfterTheStall_CountsFromItsOwnHeartbeat) {
  FakeClock clock;
  HeartbeatMonitor monitor(kInterval, 3);
  clock.Advance(absl::Seconds(10));
  ASSERT_TRUE(monitor.StartSweep(clock.Now(), absl::Seconds(9)));
  clock.Advance(absl::Seconds(2));
  const absl::Time heard = clock.Now();
  clock.Advance(absl::Seconds(3));
  EXPECT_FALSE(monitor.Overdue(heard, clock.Now()));
  clock.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(monitor.Overdue(heard, clock.Now()));
}

TEST(HeartbeatMonitor, LaterOnTimeSweeps_KeepTheLastStall) {
  FakeClock clock;
  HeartbeatMonitor monitor(kInterval, 3);
  const absl::Time heard = clock.Now();
  clock.Advance(absl::Seconds(10));
  const absl::Time stall = clock.Now();
  ASSERT_TRUE(monitor.StartSweep(stall, absl::Seconds(9)));
  clock.Advance(kInterval);
  EXPECT_FALSE(monitor.StartSweep(clock.Now(), absl::ZeroDuration()));
  EXPECT_FALSE(monitor.Overdue(heard, stall + absl::Seconds(3)));
  EXPECT_TRUE(monitor.Overdue(heard, stall + absl::Seconds(3) + absl::Milliseconds(1)));
}

}  // namespace
}  // namespace cohort::coordinator
