#include "cli/cohortctl.h"

#include "CLI/CLI.hpp"
#include "cli/inspect_commands.h"
#include "cli/layout_command.h"
#include "cli/online_commands.h"
#include "cli/version_command.h"
#include "common/command_line.h"

namespace cohort::cli {

int RunCohortctl(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app{"cohortctl: compute, form and inspect the communicator groups of cohort pools"};
  app.name("cohortctl");
  app.require_subcommand(1);
  app.footer(
      "Run 'cohortctl <command> --help' for the flags of one command. Commands that reach the\n"
      "coordinator need TLS (--tls-cert/--tls-key/--tls-ca, or $COHORT_TLS_CERT, $COHORT_TLS_KEY,\n"
      "$COHORT_TLS_CA) or --insecure (plaintext).");
  AddVersionFlag(&app);
  LayoutCommand layout;
  CLI::App* layout_cmd = layout.Register(&app);
  InitCommand init;
  CLI::App* init_cmd = init.Register(&app);
  CheckCommand check;
  CLI::App* check_cmd = check.Register(&app);
  DestroyCommand destroy;
  CLI::App* destroy_cmd = destroy.Register(&app);
  StateCommand state;
  CLI::App* state_cmd = state.Register(&app);
  StatusCommand status;
  CLI::App* status_cmd = status.Register(&app);
  MembersCommand members;
  CLI::App* members_cmd = members.Register(&app);
  GroupsCommand groups;
  CLI::App* groups_cmd = groups.Register(&app);
  DescribeCommand describe;
  CLI::App* describe_cmd = describe.Register(&app);
  EventsCommand events;
  CLI::App* events_cmd = events.Register(&app);
  WatchCommand watch;
  CLI::App* watch_cmd = watch.Register(&app);
  WaitCommand wait;
  CLI::App* wait_cmd = wait.Register(&app);
  DeletePoolCommand delete_pool;
  CLI::App* delete_cmd = delete_pool.Register(&app);
  VersionCommand version;
  CLI::App* version_cmd = version.Register(&app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    // Help of the innermost subcommand that was named.
    CLI::App* target = &app;
    for (bool deeper = true; deeper;) {
      deeper = false;
      for (CLI::App* sub : target->get_subcommands()) {
        target = sub;
        deeper = true;
        break;
      }
    }
    out << target->help();
    return 0;
  } catch (const CLI::CallForAllHelp& e) {
    out << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::CallForVersion& e) {
    out << e.what() << "\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    err << ParseErrorLine(app, e);
    return kExitBadFlags;
  }
  if (layout_cmd->parsed()) return layout.Run(out, err);
  if (init_cmd->parsed()) return init.Run(out, err);
  if (destroy_cmd->parsed()) return destroy.Run(out, err);
  if (check_cmd->parsed()) return check.Run(out, err);
  if (state_cmd->parsed()) return state.Run(out, err);
  if (status_cmd->parsed()) return status.Run(out, err);
  if (members_cmd->parsed()) return members.Run(out, err);
  if (groups_cmd->parsed()) return groups.Run(out, err);
  if (describe_cmd->parsed()) return describe.Run(out, err);
  if (events_cmd->parsed()) return events.Run(out, err);
  if (watch_cmd->parsed()) return watch.Run(out, err);
  if (wait_cmd->parsed()) return wait.Run(out, err);
  if (delete_cmd->parsed()) return delete_pool.Run(out, err);
  if (version_cmd->parsed()) return version.Run(out, err);
  err << "error: no command given (run 'cohortctl --help')\n";
  return 2;
}

}  // namespace cohort::cli
