#include "coordinator/phase_history.h"

#include <utility>

namespace cohort::coordinator {

bool PhaseHistory::Set(v1::PoolPhase phase, absl::Time now, int64_t generation,
                       std::string reason) {
  if (phase_ == phase) return false;
  phase_ = phase;
  reason_ = reason;
  v1::PhaseTransition t;
  t.set_phase(phase);
  t.set_unix_ms(absl::ToUnixMillis(now));
  t.set_generation(generation);
  t.set_reason(std::move(reason));
  transitions_.push_back(t);
  while (transitions_.size() > kMaxTransitions) transitions_.pop_front();
  return true;
}

}  // namespace cohort::coordinator
