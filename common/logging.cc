#include "common/logging.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace cohort {
namespace {

// Serializes the creation of the libraries' logger (spdlog's registry refuses a second logger of
// the same name with an exception).
absl::Mutex library_logger_mu(absl::kConstInit);

// `label` names the process in every line ("[agent 1234]").
std::string Pattern(absl::string_view label) {
  return absl::StrCat("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [", label, " %P] %v");
}

// The level named by `wanted`, or by COHORT_LOG_LEVEL when it is empty, or info.
absl::StatusOr<spdlog::level::level_enum> ParseLevel(absl::string_view level) {
  std::string wanted(level);
  if (wanted.empty()) {
    const char* env = std::getenv("COHORT_LOG_LEVEL");
    wanted = env != nullptr && *env != '\0' ? env : "info";
  }
  const spdlog::level::level_enum parsed = spdlog::level::from_str(wanted);
  // from_str maps unknown names to "off"; only "off" itself may mean that.
  if (parsed == spdlog::level::off && wanted != "off") {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown log level '", wanted, "'; use trace, debug, info, warn, error, critical or off"));
  }
  return parsed;
}

// Replaces the libraries' logger with one over `sinks`. Caller holds library_logger_mu.
std::shared_ptr<spdlog::logger> RegisterLibraryLogger(std::vector<spdlog::sink_ptr> sinks,
                                                      absl::string_view label,
                                                      spdlog::level::level_enum level)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(library_logger_mu) {
  spdlog::drop(kLibraryLoggerName);
  auto logger = std::make_shared<spdlog::logger>(kLibraryLoggerName, sinks.begin(), sinks.end());
  logger->set_pattern(Pattern(label));
  logger->set_level(level);
  logger->flush_on(spdlog::level::info);
  spdlog::register_logger(logger);
  return logger;
}

}  // namespace

absl::Status SetupLogging(absl::string_view name, absl::string_view level) {
  absl::StatusOr<spdlog::level::level_enum> parsed = ParseLevel(level);
  if (!parsed.ok()) return parsed.status();
  spdlog::drop(std::string(name));  // SetupLogging may run more than once (tests)
  auto logger = spdlog::stderr_color_mt(std::string(name));
  logger->set_pattern(Pattern("%n"));
  logger->set_level(*parsed);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  absl::MutexLock lock(&library_logger_mu);
  RegisterLibraryLogger(logger->sinks(), name, *parsed);
  return absl::OkStatus();
}

std::shared_ptr<spdlog::logger> Log() {
  if (std::shared_ptr<spdlog::logger> logger = spdlog::get(kLibraryLoggerName)) return logger;
  absl::MutexLock lock(&library_logger_mu);
  if (std::shared_ptr<spdlog::logger> logger = spdlog::get(kLibraryLoggerName)) return logger;
  absl::StatusOr<spdlog::level::level_enum> level = ParseLevel("");
  return RegisterLibraryLogger({std::make_shared<spdlog::sinks::stderr_color_sink_mt>()},
                               kLibraryLoggerName, level.ok() ? *level : spdlog::level::info);
}

}  // namespace cohort
