// Debian's Abseil checks every Mutex acquisition for lock-order cycles (its debug default): a
// graph update, under one process-wide lock, per Mutex taken while another is held. In the
// coordinator that was 2-3 % of its CPU at 4,096 agents; in scale_bench, whose 16,384 simulated
// agents hold a Mutex each, it was 10 % of the samples in the graph lookup plus a third in the
// futex wakes of its global lock (perf). Release builds of the binaries skip it, as Abseil's own
// release builds do; debug and sanitizer builds (and every test) keep it.
#ifndef COHORT_COMMON_LOCK_ORDER_CHECKS_H_
#define COHORT_COMMON_LOCK_ORDER_CHECKS_H_

#include "absl/synchronization/mutex.h"

namespace cohort {

// Call first thing in main().
inline void SkipLockOrderChecksInReleaseBuilds() {
#ifdef NDEBUG
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
}

}  // namespace cohort

#endif  // COHORT_COMMON_LOCK_ORDER_CHECKS_H_
