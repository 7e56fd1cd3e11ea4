// AgentHealth: what an agent's grpc.health.v1 statuses say, decided from observations of the
// agent, with no gRPC types (AgentHealthServer, agent_health_server.h, publishes them).
//
// Two services, for the two kinds of Kubernetes probe:
//
//   ""                    liveness: SERVING unless the agent is broken. A failing liveness
//                         probe restarts the container, so it must never fail while the agent
//                         merely waits: joining, a standby, waiting for a plan, building,
//                         READY, rejoining a restarting coordinator (within connect_timeout),
//                         leaving or stopping in order.
//   "cohort.agent.ready"  readiness: SERVING while the agent is joined and its session stream is
//                         up (a rank or a standby), NOT_SERVING while it joins, rejoins, leaves,
//                         stops or is broken. Readiness restarts nothing: it gates a rolling
//                         update (the next pod is replaced once this one has joined again) and
//                         the PodDisruptionBudget's count of available agents.
//
// Broken means one of:
//   - the session is lost for good: no rejoin succeeded within connect_timeout, or the
//     coordinator refused it (SessionState::kLost). The agent tears its communicators down and
//     cohort-agent exits with status 1; NOT_SERVING says so in the meantime.
//   - the process gave up (MarkBroken): e.g. the first join failed, the agent ended with an
//     error. cohort-agent exits right after.
//   - the control path is wedged: an observation of the agent (Agent::Observe, which takes the
//     agent's, the session's and the generation runner's locks in turn and waits for nothing
//     else) has been outstanding for wedge_timeout or longer. Those locks are held only for
//     short steps (never across a build, a rendezvous wait or a join), so a lock held that long
//     is a deadlock or a hung call under a lock, which no coordinator message can cure: the
//     restart is the remedy. The worker thread is deliberately not probed: it legitimately
//     spends a whole build (up to the plan's deadline) on one message.
// A wedge that clears (the observation returns) makes the agent live again.
//
// Time comes in as arguments (`now`), so tests decide it; thread-safe.
#ifndef COHORT_AGENT_AGENT_HEALTH_H_
#define COHORT_AGENT_AGENT_HEALTH_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/session_state.h"

namespace cohort::agent {

// What Agent::Observe sees.
struct AgentObservation {
  SessionState session = SessionState::kJoining;
  // -1: a standby (or not joined yet).
  int rank = -1;
  // The generation READY here; 0: none.
  int64_t ready_generation = 0;
};

// The statuses to publish, and why (for logs).
struct HealthVerdict {
  bool live = true;
  bool ready = false;
  std::string reason;

  friend bool operator==(const HealthVerdict& a, const HealthVerdict& b) {
    return a.live == b.live && a.ready == b.ready;
  }
  friend bool operator!=(const HealthVerdict& a, const HealthVerdict& b) { return !(a == b); }
};

class AgentHealth {
 public:
  // The readiness service name; liveness is the overall service "".
  static constexpr char kReadyService[] = "cohort.agent.ready";
  static constexpr absl::Duration kDefaultWedgeTimeout = absl::Seconds(30);

  explicit AgentHealth(absl::Duration wedge_timeout = kDefaultWedgeTimeout);

  // An observation of the agent begins at `now` (the observer calls Agent::Observe next).
  void ObservationStarted(absl::Time now);
  // ... and returned at `now` with `observed`.
  void ObservationFinished(absl::Time now, const AgentObservation& observed);
  // The process gives up (`reason` for logs); final.
  void MarkBroken(const std::string& reason);

  // The statuses at `now`. Before any observation finished (the first join is still being
  // retried, the agent does not exist yet): live, not ready.
  HealthVerdict Evaluate(absl::Time now) const;

 private:
  const absl::Duration wedge_timeout_;
  mutable absl::Mutex mu_;
  std::optional<std::string> broken_ ABSL_GUARDED_BY(mu_);
  // When the observation in progress began; nullopt when none is.
  std::optional<absl::Time> observing_since_ ABSL_GUARDED_BY(mu_);
  std::optional<AgentObservation> last_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cohort::agent

#endif  // COHORT_AGENT_AGENT_HEALTH_H_
