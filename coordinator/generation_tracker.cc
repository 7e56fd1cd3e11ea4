#include "coordinator/generation_tracker.h"

namespace cohort::coordinator {

void GenerationTracker::Start(int world, absl::Time now) {
  world_ = world;
  plans_sent_at_ = now;
  ready_.clear();
  init_ms_ = 0;
}

bool GenerationTracker::MarkReady(int rank, absl::Time now) {
  if (rank < 0 || rank >= world_ || !ready_.insert(rank).second) return false;
  if (static_cast<int>(ready_.size()) != world_) return false;
  init_ms_ = absl::ToInt64Milliseconds(now - plans_sent_at_);
  return true;
}

}  // namespace cohort::coordinator
