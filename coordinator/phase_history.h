// PhaseHistory: a pool's phase and its recent transitions (shown in PoolState.transitions, e.g.
// by cohortctl status). The Coordinator decides when a pool moves; this keeps what it moved
// through, bounded.
//
// Thread safety: none; the Coordinator guards each pool's history with its lock.
#ifndef COHORT_COORDINATOR_PHASE_HISTORY_H_
#define COHORT_COORDINATOR_PHASE_HISTORY_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

#include "absl/time/time.h"
#include "cohort/v1/admin.pb.h"

namespace cohort::coordinator {

class PhaseHistory {
 public:
  // Transitions kept (the oldest are dropped first).
  static constexpr size_t kMaxTransitions = 32;

  v1::PoolPhase phase() const { return phase_; }
  // Moves to `phase`, recording when, in which generation and why (`reason`, e.g. "left" for
  // DEGRADED; may be empty). Returns false, recording nothing, when the pool is already in
  // `phase`.
  bool Set(v1::PoolPhase phase, absl::Time now, int64_t generation, std::string reason = "");
  // Why the pool is in its phase now (the reason given when it moved there).
  const std::string& reason() const { return reason_; }
  // Oldest first.
  const std::deque<v1::PhaseTransition>& transitions() const { return transitions_; }

 private:
  v1::PoolPhase phase_ = v1::POOL_PHASE_WAITING;
  std::string reason_;
  std::deque<v1::PhaseTransition> transitions_;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_PHASE_HISTORY_H_
