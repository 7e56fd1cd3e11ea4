// Logging setup: spdlog, one process-wide logger writing to stderr.
#ifndef COHORT_COMMON_LOGGING_H_
#define COHORT_COMMON_LOGGING_H_

#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace cohort {

// Sets the global spdlog logger to stderr with `name` as the logger name and `level` as its
// threshold (trace, debug, info, warn, error, critical, off). An empty level reads COHORT_LOG_LEVEL
// and falls back to info.
// Errors: INVALID_ARGUMENT for an unknown level name.
absl::Status SetupLogging(absl::string_view name, absl::string_view level);

}  // namespace cohort

#endif  // COHORT_COMMON_LOGGING_H_
