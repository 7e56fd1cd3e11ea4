// cohortctl commands that talk to a coordinator: init, destroy, state.
#ifndef COHORT_CLI_ONLINE_COMMANDS_H_
#define COHORT_CLI_ONLINE_COMMANDS_H_

#include <ostream>
#include <string>

#include "CLI/CLI.hpp"
#include "cli/config_flags.h"
#include "cohort/v1/admin.pb.h"

namespace cohort::cli {

// Exit statuses of the online commands.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;       // refused by the coordinator, or the pool FAILED
inline constexpr int kExitUsage = 2;        // bad flags or an invalid config
inline constexpr int kExitTimeout = 3;      // --wait ran out of time
inline constexpr int kExitUnreachable = 4;  // the coordinator could not be reached

struct ConnectionFlags {
  std::string coordinator;  // default: $COHORT_COORDINATOR or 127.0.0.1:7070
  std::string pool = "default";
  void Register(CLI::App* app);
  std::string Address() const;
};

struct InitCommand {
  ConnectionFlags connection;
  ConfigFlags config;
  std::string backend = "gloo";
  std::string init_mode = "split";
  int64_t deadline_ms = 60000;
  bool no_verify = false;
  bool wait = false;
  double timeout_s = 120;
  CLI::App* Register(CLI::App* app);
  int Run(std::ostream& out, std::ostream& err) const;
};

struct DestroyCommand {
  ConnectionFlags connection;
  bool all = false;
  bool wait = false;
  double timeout_s = 60;
  CLI::App* Register(CLI::App* app);
  int Run(std::ostream& out, std::ostream& err) const;
};

struct StateCommand {
  ConnectionFlags connection;
  std::string output = "table";
  CLI::App* Register(CLI::App* app);
  int Run(std::ostream& out, std::ostream& err) const;
};

// The human-readable pool state: header, members, and groups with timings.
void PrintPoolState(const v1::PoolState& state, std::ostream& out);

}  // namespace cohort::cli

#endif  // COHORT_CLI_ONLINE_COMMANDS_H_
