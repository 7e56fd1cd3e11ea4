#include "cli/cohortctl.h"

#include "CLI/CLI.hpp"
#include "cli/layout_command.h"
#include "cli/online_commands.h"

namespace cohort::cli {

int RunCohortctl(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app{"cohortctl: compute, form and inspect the communicator groups of cohort pools"};
  app.name("cohortctl");
  app.require_subcommand(1);
  app.footer("Run 'cohortctl <command> --help' for the flags of one command.");
  LayoutCommand layout;
  CLI::App* layout_cmd = layout.Register(&app);
  InitCommand init;
  CLI::App* init_cmd = init.Register(&app);
  DestroyCommand destroy;
  CLI::App* destroy_cmd = destroy.Register(&app);
  StateCommand state;
  CLI::App* state_cmd = state.Register(&app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    // Help of the innermost subcommand that was named.
    CLI::App* target = &app;
    for (CLI::App* sub : app.get_subcommands()) target = sub;
    out << target->help();
    return 0;
  } catch (const CLI::CallForAllHelp& e) {
    out << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::ParseError& e) {
    err << "error: " << e.what() << " (run 'cohortctl --help')\n";
    return 2;
  }
  if (layout_cmd->parsed()) return layout.Run(out, err);
  if (init_cmd->parsed()) return init.Run(out, err);
  if (destroy_cmd->parsed()) return destroy.Run(out, err);
  if (state_cmd->parsed()) return state.Run(out, err);
  err << "error: no command given (run 'cohortctl --help')\n";
  return 2;
}

}  // namespace cohort::cli
