// The one mapper between absl::Status (our code) and grpc::Status (the wire). Codes map one to
// one; the message travels unchanged.
#ifndef COHORT_COMMON_GRPC_STATUS_H_
#define COHORT_COMMON_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace cohort {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// True for failures of the transport rather than refusals by the coordinator: the caller may
// retry the same call with backoff (UNAVAILABLE, and DEADLINE_EXCEEDED of the RPC itself).
bool IsTransportFailure(const absl::Status& status);

}  // namespace cohort

#endif  // COHORT_COMMON_GRPC_STATUS_H_
