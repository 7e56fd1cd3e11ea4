// `cohortctl version`: this client's version and, when the coordinator answers within
// --timeout, the coordinator's (ListPoolsResponse.coordinator_version).
#ifndef COHORT_CLI_VERSION_COMMAND_H_
#define COHORT_CLI_VERSION_COMMAND_H_

#include <ostream>

#include "CLI/CLI.hpp"
#include "absl/time/time.h"
#include "cli/admin_rpc.h"

namespace cohort::cli {

struct VersionCommand {
  ConnectionFlags connection;
  absl::Duration timeout = absl::Seconds(2);
  bool client_only = false;

  CLI::App* Register(CLI::App* app);
  // Prints "cohortctl <version>", then "coordinator <version> at <address>" when the coordinator
  // answers. Returns 0 either way: an unreachable coordinator is a note on `err`, since the
  // client's version is the one thing asked for that is always known.
  int Run(std::ostream& out, std::ostream& err) const;
};

}  // namespace cohort::cli

#endif  // COHORT_CLI_VERSION_COMMAND_H_
