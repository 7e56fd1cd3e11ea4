#include "agent/agent_health.h"

#include "absl/strings/str_cat.h"

namespace cohort::agent {

AgentHealth::AgentHealth(absl::Duration wedge_timeout) : wedge_timeout_(wedge_timeout) {}

void AgentHealth::ObservationStarted(absl::Time now) {
  absl::MutexLock lock(&mu_);
  observing_since_ = now;
}

void AgentHealth::ObservationFinished(absl::Time /*now*/, const AgentObservation& observed) {
  absl::MutexLock lock(&mu_);
  observing_since_.reset();
  last_ = observed;
}

void AgentHealth::MarkBroken(const std::string& reason) {
  absl::MutexLock lock(&mu_);
  if (!broken_.has_value()) broken_ = reason;
}

HealthVerdict AgentHealth::Evaluate(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  if (broken_.has_value()) return {false, false, *broken_};
  if (observing_since_.has_value() && now - *observing_since_ >= wedge_timeout_) {
    return {false, false,
            absl::StrCat("wedged: the agent has not answered a health observation for ",
                         absl::FormatDuration(now - *observing_since_),
                         " (a lock of its control path is held)")};
  }
  if (!last_.has_value()) return {true, false, "joining"};
  const AgentObservation& seen = *last_;
  switch (seen.session) {
    case SessionState::kAttached:
      return {true, true,
              seen.rank >= 0 ? absl::StrCat("joined as rank ", seen.rank,
                                            seen.ready_generation > 0
                                                ? absl::StrCat(", generation ",
                                                               seen.ready_generation, " READY")
                                                : std::string())
                             : std::string("joined as a standby")};
    case SessionState::kLost:
      return {false, false, "the session with the coordinator is lost for good"};
    case SessionState::kJoining:
    case SessionState::kRejoining:
    case SessionState::kLeaving:
    case SessionState::kStopping:
      break;
  }
  return {true, false, std::string(ToString(seen.session))};
}

}  // namespace cohort::agent
