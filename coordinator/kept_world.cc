#include "coordinator/kept_world.h"

#include <utility>

namespace cohort::coordinator {

void KeptWorld::Keep(int64_t generation, std::map<int, std::string> incarnations) {
  alive_ = true;
  generation_ = generation;
  incarnations_ = std::move(incarnations);
}

void KeptWorld::Drop() {
  alive_ = false;
  incarnations_.clear();
}

bool KeptWorld::ReusableBy(int world,
                           const std::function<const std::string*(int)>& incarnation_at) const {
  if (!alive_) return false;
  for (int r = 0; r < world; ++r) {
    const std::string* now = incarnation_at(r);
    auto it = incarnations_.find(r);
    if (now == nullptr || it == incarnations_.end() || it->second != *now) return false;
  }
  return true;
}

}  // namespace cohort::coordinator
