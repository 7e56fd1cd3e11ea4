// StateWaiters: one pool's long-polls (WaitForState) — each waits for the pool's version to pass
// the one it last saw, or for its deadline. This keeps the waiters, their ids and thresholds and
// the id of each one's deadline timer; the Coordinator schedules and cancels the timers, builds
// the state they get and calls them (outside its lock).
//
// Thread safety: none; the Coordinator guards each pool's waiters with its lock.
#ifndef COHORT_COORDINATOR_STATE_WAITERS_H_
#define COHORT_COORDINATOR_STATE_WAITERS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "cohort/v1/admin.pb.h"
#include "common/timer_queue.h"

namespace cohort::coordinator {

class StateWaiters {
 public:
  using Done = std::function<void(absl::StatusOr<v1::PoolState>)>;
  struct Waiter {
    // Satisfied by any version above this.
    int64_t after_version = 0;
    Done done;
    // Its deadline timer (0: none set).
    TimerQueue::TimerId timer = 0;
  };

  size_t size() const { return waiters_.size(); }

  // Adds a waiter for a version above `after_version`. Returns its id: never 0, never reused.
  uint64_t Add(int64_t after_version, Done done);
  // Records the deadline timer of waiter `id`; does nothing once it is gone.
  void SetTimer(uint64_t id, TimerQueue::TimerId timer);

  // Removes and returns the waiters that `version` satisfies, in the order they were added.
  std::vector<Waiter> Release(int64_t version);
  // Removes and returns waiter `id` (its deadline came, or its caller went away); nullopt when
  // it is already gone (released, or taken before).
  std::optional<Waiter> Take(uint64_t id);
  // Removes and returns every waiter, in the order they were added (the pool is deleted).
  std::vector<Waiter> TakeAll();
  // The deadline timer of every waiter (to cancel at shutdown; the waiters stay).
  std::vector<TimerQueue::TimerId> timers() const;

 private:
  std::map<uint64_t, Waiter> waiters_;
  uint64_t next_id_ = 1;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_STATE_WAITERS_H_
