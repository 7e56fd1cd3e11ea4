// cohortctl's inspection commands: status, members, groups (inspect_commands.cc), describe
// (describe_command.cc) and events, watch, wait (event_commands.cc). Every one prints -o table
// (default), wide, json (the protobuf JSON of the response message, one document) or yaml (the same
// data), and maps failures to the exit statuses of admin_rpc.h.
#ifndef COHORT_CLI_INSPECT_COMMANDS_H_
#define COHORT_CLI_INSPECT_COMMANDS_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/time/time.h"
#include "cli/admin_rpc.h"
#include "cli/output.h"
#include "cohort/v1/admin.pb.h"

namespace cohort::cli {

// `status`: every pool in one table (ListPools), or with --pool just that pool's row.
struct StatusCommand {
  ConnectionFlags connection;
  OutputFlags output;
  CLI::App* cmd = nullptr;
  CLI::App* Register(CLI::App* app);
  int Run(std::ostream& out, std::ostream& err) const;
};

// `members`: one row per member (ranked, then standbys) and a row per missing rank.
struct MembersCommand {
  ConnectionFlags connection;
  OutputFlags output;
  CLI::App* Register(CLI::App* app);
  int Run(std::ostream& out, std::ostream& err) const;
};

// `groups [--kind K] [--rank R]`: one row per group with its members' communicator state.
struct GroupsCommand {
  ConnectionFlags connection;
  OutputFlags output;
  std::string kind;
  std::optional<int> rank;
  CLI::App* Register(CLI::App* app);
  int Run(std::ostream& out, std::ostream& err) const;
};

// `describe rank R` and `describe group KIND INDEX`.
struct DescribeCommand {
  ConnectionFlags connection;
  OutputFlags output;
  CLI::App* rank_cmd = nullptr;
  CLI::App* group_cmd = nullptr;
  int rank = 0;
  std::string kind;
  int index = 0;
  CLI::App* Register(CLI::App* app);
  int Run(std::ostream& out, std::ostream& err) const;

 private:
  int RunRank(std::ostream& out, std::ostream& err) const;
  int RunGroup(std::ostream& out, std::ostream& err) const;
};

// `events [--limit N]`: the pool's event log, oldest first.
struct EventsCommand {
  ConnectionFlags connection;
  OutputFlags output;
  int limit = 0;
  CLI::App* Register(CLI::App* app);
  int Run(std::ostream& out, std::ostream& err) const;
};

// `watch [--snapshot] [--all-pools] [--max-events N]`: events as they happen, one line (or one
// json/yaml document) each, until SIGINT (exit 0), the stream ends, or N were printed.
struct WatchCommand {
  ConnectionFlags connection;
  OutputFlags output;
  bool snapshot = false;
  bool all_pools = false;
  int64_t max_events = 0;
  CLI::App* Register(CLI::App* app);
  int Run(std::ostream& out, std::ostream& err) const;
};

// `wait --state S [--generation G] [--timeout D]`: long-polls until the pool is in phase S
// (at generation G or later). 0 reached; 3 timed out (the state and missing ranks on stderr);
// 1 the pool FAILED while waiting for another phase.
struct WaitCommand {
  ConnectionFlags connection;
  OutputFlags output;
  std::string state;
  std::optional<int64_t> generation;
  absl::Duration timeout = absl::Seconds(60);
  CLI::App* Register(CLI::App* app);
  int Run(std::ostream& out, std::ostream& err) const;
};

}  // namespace cohort::cli

#endif  // COHORT_CLI_INSPECT_COMMANDS_H_
