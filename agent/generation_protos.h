// The protos of one generation and the communicator layer: a plan's groups as backend requests,
// communicators as the group reports the coordinator reads. Pure functions, for GenerationRunner.
#ifndef COHORT_AGENT_GENERATION_PROTOS_H_
#define COHORT_AGENT_GENERATION_PROTOS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/comm/communicator.h"
#include "cohort/v1/agent.pb.h"

namespace cohort::agent {

v1::CommState ToProto(CommState state);

// A new report of `comm` in `reports`, with what identifies the group (kind, index, rank in
// group, size) and its creation time.
v1::GroupReport* AddGroupReport(const Communicator& comm,
                                google::protobuf::RepeatedPtrField<v1::GroupReport>* reports);

// What the verification all-reduce of the global ranks must sum to over `comm`.
int64_t ExpectedSum(const Communicator& comm);

// The plan's model-parallel groups (every kind but the world) as backend requests, in the plan's
// order. Errors: INVALID_ARGUMENT for a plan that does not carry exactly this rank's group per
// kind, or a group without this rank.
absl::StatusOr<std::vector<GroupSpec>> GroupRequests(const v1::Plan& plan);

}  // namespace cohort::agent

#endif  // COHORT_AGENT_GENERATION_PROTOS_H_
