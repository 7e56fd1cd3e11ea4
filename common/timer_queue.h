// TimerQueue: callbacks at points in time of an injected Clock. Deadlines of waiting RPCs,
// generation deadlines and heartbeat sweeps run through it.
//
// With a real clock, Start() runs a thread that fires due timers. With a FakeClock, tests call
// FireDue() after advancing the clock; no thread and no sleeping.
#ifndef COHORT_COMMON_TIMER_QUEUE_H_
#define COHORT_COMMON_TIMER_QUEUE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"

namespace cohort {

class TimerQueue {
 public:
  using TimerId = uint64_t;

  explicit TimerQueue(Clock* clock) : clock_(clock) {}
  ~TimerQueue() { Stop(); }
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Starts the firing thread (real clocks only).
  void Start();
  // Stops the thread; pending timers are dropped without running.
  void Stop();

  // Runs `fn` once the clock reaches `when` (on the firing thread, or in FireDue). Callbacks run
  // without the queue's lock held, so they may schedule or cancel timers.
  TimerId Schedule(absl::Time when, std::function<void()> fn);
  // Returns false if the timer already ran or never existed.
  bool Cancel(TimerId id);
  // Runs every timer due at the clock's current time; returns how many ran.
  int FireDue();
  size_t pending() const;

 private:
  void Loop();

  Clock* const clock_;
  mutable absl::Mutex mu_;
  // Keyed by (when, id): earliest first, FIFO among equal times.
  std::map<std::pair<absl::Time, TimerId>, std::function<void()>> timers_ ABSL_GUARDED_BY(mu_);
  std::map<TimerId, absl::Time> when_ ABSL_GUARDED_BY(mu_);
  TimerId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace cohort

#endif  // COHORT_COMMON_TIMER_QUEUE_H_
