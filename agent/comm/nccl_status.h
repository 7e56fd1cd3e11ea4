// NCCL and CUDA results as absl::Status, for the NCCL backend (nccl_backend.cc), which is the only
// code that uses NCCL or CUDA (the agent reaches them through Backend, Communicator and the
// registry of backend.h), always through an NcclApi (nccl_api.h). Every failure the backend
// returns goes through these; its polls read the not-yet-done results themselves (ncclInProgress,
// cudaErrorNotReady), and its best-effort device queries (NcclDeviceIdentity) only test for
// success. The error text comes from the same `api` that produced the result, so a test double's
// handles never reach the real library. Compiled only when COHORT_WITH_NCCL.

#ifndef COHORT_AGENT_COMM_NCCL_STATUS_H_
#define COHORT_AGENT_COMM_NCCL_STATUS_H_

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "agent/comm/nccl_api.h"

namespace cohort::agent {

// ncclSuccess and ncclInProgress -> OK (in progress is not an error on a non-blocking
// communicator: the caller polls ncclCommGetAsyncError). Otherwise the message carries `expr`,
// api.NcclGetErrorString and api.NcclGetLastError(comm) (comm may be null). Codes, by how to react:
//   ncclSystemError, ncclRemoteError -> UNAVAILABLE (network, a peer died: rebuild)
//   ncclInvalidArgument              -> INVALID_ARGUMENT
//   ncclInvalidUsage                 -> FAILED_PRECONDITION
//   ncclUnhandledCudaError, ncclInternalError, others -> INTERNAL
absl::Status NcclToStatus(NcclApi& api, ncclResult_t result, absl::string_view expr,
                          ncclComm_t comm = nullptr);

// cudaSuccess -> OK; no device / no driver -> FAILED_PRECONDITION; others -> INTERNAL. The message
// carries `expr`, api.CudaGetErrorName and api.CudaGetErrorString.
absl::Status CudaToStatus(NcclApi& api, cudaError_t result, absl::string_view expr);

}  // namespace cohort::agent

// Returns from the enclosing function (returning absl::Status or StatusOr) when the NCCL result
// `expr` is a failure; ncclInProgress passes (poll afterwards). The message names `expr` as
// written; `api` supplies the error text. (nccl_backend.cc spells its checks out instead, so that
// its messages name the C function, "ncclCommGetAsyncError(...)", not the api method.)
#define COHORT_NCCL_RETURN_IF_ERROR(api, expr, comm)                     \
  do {                                                                   \
    if (absl::Status _cohort_nccl_status =                               \
            ::cohort::agent::NcclToStatus((api), (expr), #expr, (comm)); \
        !_cohort_nccl_status.ok()) {                                     \
      return _cohort_nccl_status;                                        \
    }                                                                    \
  } while (0)

#define COHORT_CUDA_RETURN_IF_ERROR(api, expr)                                                  \
  do {                                                                                          \
    if (absl::Status _cohort_cuda_status = ::cohort::agent::CudaToStatus((api), (expr), #expr); \
        !_cohort_cuda_status.ok()) {                                                            \
      return _cohort_cuda_status;                                                               \
    }                                                                                           \
  } while (0)

#endif  // COHORT_AGENT_COMM_NCCL_STATUS_H_
