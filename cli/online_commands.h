// cohortctl commands that change a pool (init, destroy) and its full state dump (state). The
// inspection commands live in inspect_commands.h.
#ifndef COHORT_CLI_ONLINE_COMMANDS_H_
#define COHORT_CLI_ONLINE_COMMANDS_H_

#include <ostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/time/time.h"
#include "cli/admin_rpc.h"
#include "cli/output.h"
#include "cohort/v1/admin.pb.h"
#include "common/config_flags.h"

namespace cohort::cli {

struct InitCommand {
  ConnectionFlags connection;
  ConfigFlags config;
  std::string backend = "gloo";
  std::string init_mode = "split";
  int64_t deadline_ms = 60000;
  bool no_verify = false;
  bool wait = false;
  absl::Duration timeout = absl::Seconds(120);
  CLI::App* Register(CLI::App* app);
  int Run(std::ostream& out, std::ostream& err) const;
};

// `cohortctl delete pool NAME [--force]`: the coordinator forgets a pool.
struct DeletePoolCommand {
  ConnectionFlags connection;
  std::string name;
  bool force = false;
  CLI::App* Register(CLI::App* app);
  int Run(std::ostream& out, std::ostream& err) const;
};

// `cohortctl check`: every member runs the verification all-reduce on every group again.
struct CheckCommand {
  ConnectionFlags connection;
  absl::Duration timeout = absl::Seconds(60);
  CLI::App* Register(CLI::App* app);
  int Run(std::ostream& out, std::ostream& err) const;
};

struct DestroyCommand {
  ConnectionFlags connection;
  bool all = false;
  bool wait = false;
  absl::Duration timeout = absl::Seconds(60);
  CLI::App* Register(CLI::App* app);
  int Run(std::ostream& out, std::ostream& err) const;
};

// `state`: the whole pool in one view. -o json/yaml print the PoolState message itself.
struct StateCommand {
  ConnectionFlags connection;
  OutputFlags output;
  CLI::App* Register(CLI::App* app);
  int Run(std::ostream& out, std::ostream& err) const;
};

// The human-readable pool state: header, members, and groups with timings; `wide` adds the
// members' device, incarnation and generation.
void PrintPoolState(const v1::PoolState& state, const Style& style, bool wide, std::ostream& out);

}  // namespace cohort::cli

#endif  // COHORT_CLI_ONLINE_COMMANDS_H_
