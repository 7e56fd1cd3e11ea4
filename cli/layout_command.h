// `cohortctl layout`: computes and prints a layout offline (no coordinator).
#ifndef COHORT_CLI_LAYOUT_COMMAND_H_
#define COHORT_CLI_LAYOUT_COMMAND_H_

#include <optional>
#include <ostream>
#include <string>

#include "CLI/CLI.hpp"
#include "common/config_flags.h"
#include "common/layout.h"

namespace cohort::cli {

struct LayoutCommand {
  ConfigFlags flags;
  std::optional<int64_t> rank;
  std::string output = "table";

  // Adds the `layout` subcommand to `app`; Run() executes it after parsing.
  CLI::App* Register(CLI::App* app);
  // Returns the process exit status: 0, or 2 for an invalid config or rank (one `error:` line
  // on `err`, nothing on `out`).
  int Run(std::ostream& out, std::ostream& err) const;
};

// The human-readable layout table (every kind and its groups).
void PrintLayoutTable(const Layout& layout, std::ostream& out);
// One rank's view: the group of each kind that holds it, and the seed's getter values.
void PrintRankTable(const Layout& layout, int rank, std::ostream& out);

}  // namespace cohort::cli

#endif  // COHORT_CLI_LAYOUT_COMMAND_H_
