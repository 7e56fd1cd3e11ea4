// What agents send, checked and cleaned at the coordinator's door: pure functions over the
// messages and the limits, with no coordinator state, so every rule is tested on its own.
#ifndef COHORT_COORDINATOR_AGENT_INPUT_H_
#define COHORT_COORDINATOR_AGENT_INPUT_H_

#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "cohort/v1/agent.pb.h"
#include "coordinator/limits.h"

namespace cohort::coordinator {

// A request refused at the door: which check refused it (the refusals metric's label, e.g.
// "identity", "max-world-size") and the status to answer with.
struct Refusal {
  Refusal(std::string check, absl::Status status)
      : check(std::move(check)), status(std::move(status)) {}
  std::string check;
  absl::Status status;
};

// The checks of a JoinRequest that need no state: names, ranges, sizes. nullopt: it passes.
// Statuses: INVALID_ARGUMENT (a missing or malformed field), RESOURCE_EXHAUSTED (past a limit,
// naming the flag).
std::optional<Refusal> CheckJoinRequest(const v1::JoinRequest& request, const Limits& limits);

// INVALID_ARGUMENT unless a store request names 1..kMaxKeysPerRequest keys (key(i) for i in
// [0, count)) of 1..kMaxKeyLength bytes.
absl::Status CheckKeys(int count, const std::function<const std::string&(int)>& key);

// Cuts every free-text field of an agent message to printable bytes and bounds its repeated
// fields, before anything of it reaches state, logs or events.
void CleanAgentMessage(v1::AgentMessage* m);

// Records in `report` (a member's latest report of its groups) what a teardown released: the
// groups the agent names, or, from an agent that names none, every group the scope covers, as
// `state` (DESTROYED, or ABORTED for an abort). A teardown of another generation changes nothing.
void ApplyTeardown(const v1::TeardownReport& teardown, v1::CommState state,
                   v1::GenerationReport* report);

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_AGENT_INPUT_H_
