// GenerationTracker: how far the generation being built (phase INITIALIZING) has got — which
// ranks reported READY since the plans went out, whether that is every rank of the world, and
// how long the build took (PoolState.init_ms, the init-seconds metric). The Coordinator sends the
// plans, runs the deadline, fails the generation on an error report and moves the phase; this
// only counts. A failed generation needs no reset here: the next Start begins from nothing.
//
// Thread safety: none; the Coordinator guards each pool's tracker with its lock.
#ifndef COHORT_COORDINATOR_GENERATION_TRACKER_H_
#define COHORT_COORDINATOR_GENERATION_TRACKER_H_

#include <cstdint>
#include <set>

#include "absl/time/time.h"

namespace cohort::coordinator {

class GenerationTracker {
 public:
  // The plans of a generation of `world` ranks went out at `now`: no rank is READY yet, and the
  // last build's time is forgotten (init_ms() is 0 until this one is READY).
  void Start(int world, absl::Time now);
  // `rank` reported READY at `now` (a rank reports once; again, or outside the world, it counts
  // nothing). Returns true when that makes every rank of the world READY, recording the build's
  // time; false otherwise (also for a world of 0, which never starts).
  bool MarkReady(int rank, absl::Time now);
  // Ranks READY since Start.
  int ready() const { return static_cast<int>(ready_.size()); }
  // Milliseconds from the plans to the last rank READY; 0 before the generation is READY.
  int64_t init_ms() const { return init_ms_; }

 private:
  int world_ = 0;
  absl::Time plans_sent_at_;
  std::set<int> ready_;
  int64_t init_ms_ = 0;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_GENERATION_TRACKER_H_
