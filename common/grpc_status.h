// The one mapper between absl::Status (our code) and grpc::Status (the wire). Codes map one to
// one; the message travels unchanged.
#ifndef COHORT_COMMON_GRPC_STATUS_H_
#define COHORT_COMMON_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace cohort {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// True for UNAVAILABLE only: the transport failed (no connection, connection reset, server
// shutting down) rather than the coordinator refusing, so the caller may retry the same call
// with backoff. DEADLINE_EXCEEDED is not counted: it also comes back from the coordinator for
// a wait that ran out, so a caller that set its own RPC deadline and wants to treat that as
// "unreachable" checks for it itself (as cohortctl's ReportRpcError does).
bool IsTransportFailure(const absl::Status& status);

}  // namespace cohort

#endif  // COHORT_COMMON_GRPC_STATUS_H_
