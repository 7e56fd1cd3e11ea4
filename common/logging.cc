#include "common/logging.h"

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace cohort {

absl::Status SetupLogging(absl::string_view name, absl::string_view level) {
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
  spdlog::drop(std::string(name));  // SetupLogging may run more than once (tests)
  auto logger = spdlog::stderr_color_mt(std::string(name));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n %P] %v");
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return absl::OkStatus();
}

}  // namespace cohort
