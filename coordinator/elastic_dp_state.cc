#include "coordinator/elastic_dp_state.h"

#include <utility>

#include "coordinator/elastic_dp.h"

namespace cohort::coordinator {

void ElasticDpState::Shrunk(const ParallelConfig& from) {
  if (!full_config_.has_value()) full_config_ = from;
}

bool ElasticDpState::ShouldGrow(int available) const {
  return full_config_.has_value() && !growing_ && CanGrowBack(*full_config_, available);
}

std::optional<ParallelConfig> ElasticDpState::FinishGrowing() {
  if (!growing_) return std::nullopt;
  growing_ = false;
  std::optional<ParallelConfig> full = std::move(full_config_);
  full_config_.reset();
  return full;
}

void ElasticDpState::Reset() {
  full_config_.reset();
  growing_ = false;
}

}  // namespace cohort::coordinator
