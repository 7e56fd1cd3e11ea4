#include "agent/comm/nccl_status.h"

#include "absl/strings/str_cat.h"

namespace cohort::agent {

absl::Status NcclToStatus(NcclApi& api, ncclResult_t result, absl::string_view expr,
                          ncclComm_t comm) {
  if (result == ncclSuccess || result == ncclInProgress) return absl::OkStatus();
  absl::StatusCode code;
  switch (result) {
    case ncclSystemError:
    case ncclRemoteError:
      code = absl::StatusCode::kUnavailable;
      break;
    case ncclInvalidArgument:
      code = absl::StatusCode::kInvalidArgument;
      break;
    case ncclInvalidUsage:
      code = absl::StatusCode::kFailedPrecondition;
      break;
    default:
      code = absl::StatusCode::kInternal;
      break;
  }
  // ncclGetLastError is a thread-local/comm-local string with the detail NCCL logged; it is the
  // part that says *why* (e.g. "Duplicate GPU detected").
  const char* last = api.NcclGetLastError(comm);
  return absl::Status(
      code, absl::StrCat(expr, ": ", api.NcclGetErrorString(result),
                         (last != nullptr && *last != '\0') ? absl::StrCat(" (", last, ")")
                                                            : std::string()));
}

absl::Status CudaToStatus(NcclApi& api, cudaError_t result, absl::string_view expr) {
  if (result == cudaSuccess) return absl::OkStatus();
  const absl::StatusCode code =
      (result == cudaErrorNoDevice || result == cudaErrorInsufficientDriver ||
       result == cudaErrorInvalidDevice)
          ? absl::StatusCode::kFailedPrecondition
          : absl::StatusCode::kInternal;
  return absl::Status(code, absl::StrCat(expr, ": ", api.CudaGetErrorName(result), ": ",
                                         api.CudaGetErrorString(result)));
}

}  // namespace cohort::agent
