// WriteStarter: tasks run on its own thread, never in Add's caller (which holds the
// Coordinator's lock), in the order they were added.
#include "coordinator/write_starter.h"

#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "tests/test_util.h"

namespace cohort::coordinator {
namespace {

TEST(WriteStarter, TasksRunOnItsThread_AddDoesNotWaitForThem) {
  WriteStarter starter;
  absl::Notification blocked, release, second_ran;
  std::thread::id second_thread;
  starter.Add([&] {
    blocked.Notify();
    release.WaitForNotification();
  });
  ASSERT_TRUE(blocked.WaitForNotificationWithTimeout(absl::Seconds(30)));
  // The starter is busy: Add returns without running anything.
  starter.Add([&] {
    second_thread = std::this_thread::get_id();
    second_ran.Notify();
  });
  EXPECT_FALSE(second_ran.HasBeenNotified());
  release.Notify();
  ASSERT_TRUE(second_ran.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_NE(second_thread, std::this_thread::get_id());
}

TEST(WriteStarter, EachAddersTasksRunInTheirOrder_TaskAddedByATaskRunsAfterIt) {
  constexpr int kThreads = 4, kTasks = 500;
  std::vector<std::vector<int>> seen(kThreads);
  absl::Mutex mu;
  int done = 0;
  {
    WriteStarter starter;
    std::vector<std::thread> adders;
    for (int t = 0; t < kThreads; ++t) {
      adders.emplace_back([&, t] {
        for (int i = 0; i < kTasks; ++i) {
          starter.Add([&, t, i] {
            seen[t].push_back(i);  // tasks run one at a time
            if (i + 1 == kTasks) {
              // Added from a task: runs after every task added before it.
              starter.Add([&] {
                absl::MutexLock lock(&mu);
                ++done;
              });
            }
          });
        }
      });
    }
    for (std::thread& a : adders) a.join();
    absl::MutexLock lock(&mu);
    auto all_done = [&] { return done == kThreads; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all_done), absl::Seconds(60)));
  }
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(seen[t].size(), static_cast<size_t>(kTasks)) << "adder " << t;
    for (int i = 0; i < kTasks; ++i) ASSERT_EQ(seen[t][i], i) << "adder " << t;
  }
}

}  // namespace
}  // namespace cohort::coordinator
