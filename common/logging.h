// Logging setup: spdlog. The binaries' own messages go to spdlog's default logger (SetupLogging);
// cohort's libraries (the agent, its backends) log to the named logger "cohort" (Log()), never to
// the default one, which belongs to whatever process embeds them.
#ifndef COHORT_COMMON_LOGGING_H_
#define COHORT_COMMON_LOGGING_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "spdlog/logger.h"

namespace cohort {

// The name of the libraries' logger in spdlog's registry.
inline constexpr char kLibraryLoggerName[] = "cohort";

// Sets the global spdlog logger to stderr with `name` as the logger name and `level` as its
// threshold (trace, debug, info, warn, error, critical, off), and makes the libraries' logger
// (Log()) share its sink and level, its lines labelled `name` too. An empty level reads
// COHORT_LOG_LEVEL and falls back to info. For the binaries; an embedding engine does not call it.
// Errors: INVALID_ARGUMENT for an unknown level name.
absl::Status SetupLogging(absl::string_view name, absl::string_view level);

// The logger of cohort's libraries: "cohort" from spdlog's registry. An engine that embeds the
// agent may register its own "cohort" logger (its sinks, its level) before it starts the agent;
// otherwise the first call creates one writing to stderr at the level of COHORT_LOG_LEVEL (info
// when unset or unknown). Thread-safe. Never returns null.
std::shared_ptr<spdlog::logger> Log();

}  // namespace cohort

#endif  // COHORT_COMMON_LOGGING_H_
