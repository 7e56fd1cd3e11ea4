// HeartbeatMonitor: when an attached member counts as lost for missing its heartbeats. A member
// is overdue once more than `interval * misses` has passed since it was last heard — or since
// the coordinator itself last stalled, whichever is later: a sweep that fires a whole interval
// late shows that this process was not running (SIGSTOP, a paused VM, CPU throttling), or held
// its lock for that long (the fan-out of a generation of 16,384 ranks), while the agents'
// heartbeats sat unread in its sockets or waited for the lock; that absence is not the agents'
// fault. The Coordinator measures the lateness once the sweep holds the lock. The
// Coordinator runs the sweep (its timer, closing sessions, losing members); this only decides.
//
// Thread safety: none; the Coordinator guards it with its lock.
#ifndef COHORT_COORDINATOR_HEARTBEAT_MONITOR_H_
#define COHORT_COORDINATOR_HEARTBEAT_MONITOR_H_

#include "absl/time/time.h"

namespace cohort::coordinator {

class HeartbeatMonitor {
 public:
  // `interval`: how often agents heartbeat (and the sweep runs); `misses`: how many intervals
  // may pass unheard before a member is overdue.
  HeartbeatMonitor(absl::Duration interval, int misses);

  // How long a member may stay unheard: interval * misses.
  absl::Duration window() const { return interval_ * misses_; }

  // A sweep starts at `now`, `late` after it was due. Returns true when it is a whole interval
  // late (the coordinator stalled): from then on every member's window counts from `now` at the
  // earliest, so nobody is overdue before a full window of live reading.
  bool StartSweep(absl::Time now, absl::Duration late);

  // Whether a member last heard at `last_heard` is overdue at `now`.
  bool Overdue(absl::Time last_heard, absl::Time now) const;

 private:
  const absl::Duration interval_;
  const int misses_;
  // When a late sweep last showed a stall (InfinitePast: never).
  absl::Time stalled_until_ = absl::InfinitePast();
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_HEARTBEAT_MONITOR_H_
