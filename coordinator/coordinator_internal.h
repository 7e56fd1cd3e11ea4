// Small helpers shared by the files that implement Coordinator (coordinator*.cc) and plan.cc.
// Not part of the public API.
#ifndef COHORT_COORDINATOR_COORDINATOR_INTERNAL_H_
#define COHORT_COORDINATOR_COORDINATOR_INTERNAL_H_

#include <string>

#include "cohort/v1/admin.pb.h"

namespace cohort::coordinator::internal {

inline constexpr char kDefaultPool[] = "default";

// The pool a request names; empty means "default".
inline std::string PoolName(const std::string& requested) {
  return requested.empty() ? kDefaultPool : requested;
}

inline bool IsKnownBackend(const std::string& backend) {
  return backend == "gloo" || backend == "nccl" || backend == "none";
}

// The backend of a pool's options; unset means gloo.
inline std::string BackendOf(const v1::InitOptions& options) {
  return options.backend().empty() ? "gloo" : options.backend();
}

}  // namespace cohort::coordinator::internal

#endif  // COHORT_COORDINATOR_COORDINATOR_INTERNAL_H_
