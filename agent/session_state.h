// SessionState: where an agent's session with the coordinator stands, as Session::state()
// reports it. A header of its own, without gRPC types, so that the health logic
// (agent_health.h) can decide from it without depending on the session.
#ifndef COHORT_AGENT_SESSION_STATE_H_
#define COHORT_AGENT_SESSION_STATE_H_

#include <string_view>

namespace cohort::agent {

enum class SessionState {
  // The first join is being retried (until connect_timeout).
  kJoining,
  // Joined, and the session stream is open: coordinator messages arrive.
  kAttached,
  // The stream broke; joining again (until connect_timeout), communicators kept.
  kRejoining,
  // Leave() was called: the coordinator is being told, the agent then stops.
  kLeaving,
  // Stop() was called, or the session is over after one: an orderly end.
  kStopping,
  // No rejoin succeeded within connect_timeout, or the coordinator refused it: the session is
  // lost for good and the agent tears its communicators down (cohort-agent then exits).
  kLost,
};

constexpr std::string_view ToString(SessionState state) {
  switch (state) {
    case SessionState::kJoining:
      return "joining";
    case SessionState::kAttached:
      return "attached";
    case SessionState::kRejoining:
      return "rejoining";
    case SessionState::kLeaving:
      return "leaving";
    case SessionState::kStopping:
      return "stopping";
    case SessionState::kLost:
      return "lost";
  }
  return "unknown";
}

}  // namespace cohort::agent

#endif  // COHORT_AGENT_SESSION_STATE_H_
