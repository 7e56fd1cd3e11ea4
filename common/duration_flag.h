// One duration syntax for every timeout and interval flag of cohortctl, the coordinator and the
// agent ("500ms", "60s", "2m", "1h30m" or a number of seconds), and the hidden `--...-ms`
// integer aliases that the daemons kept from before. Part of cohort_flags (CLI11).
#ifndef COHORT_COMMON_DURATION_FLAG_H_
#define COHORT_COMMON_DURATION_FLAG_H_

#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cohort {

// "60s", "500ms", "2m", "1h30m" or a plain number of seconds ("0.3"). Errors: INVALID_ARGUMENT
// naming the accepted forms, for anything else (nan, inf) or a negative duration.
absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& text);

// Registers a duration flag that ParseDurationFlag reads into `*target`; `*target` is the default
// shown in --help. A bad value is a parse error naming the flag (exit status 2).
CLI::Option* AddDurationOption(CLI::App* app, const std::string& name, absl::Duration* target,
                               const std::string& description);

// Registers `name` (e.g. "--heartbeat-interval-ms") as a deprecated integer alias of a duration
// flag: a whole number of milliseconds into `*target`. Listed under "Deprecated" in --help; the
// last of the two given wins.
CLI::Option* AddMillisecondsAlias(CLI::App* app, const std::string& name, absl::Duration* target,
                                  const std::string& duration_flag);

// A check for a duration flag, or with `milliseconds` for its -ms alias: the value lies in
// [min, max]. The message names the bounds, e.g. "must be between 1ms and 24h".
CLI::Validator DurationRange(absl::Duration min, absl::Duration max, bool milliseconds = false);

}  // namespace cohort

#endif  // COHORT_COMMON_DURATION_FLAG_H_
