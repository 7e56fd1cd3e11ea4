#include "common/command_line.h"

#include "common/cohort_config.h"

namespace cohort {

std::string CohortVersion() { return COHORT_VERSION; }

void AddVersionFlag(CLI::App* app) {
  app->set_version_flag("--version", app->get_name() + " " + CohortVersion(),
                        "Print the version and exit");
}

std::string ParseErrorLine(const CLI::App& app, const CLI::ParseError& error) {
  std::string line = std::string("error: ") + error.what();
  std::string unrecognized;
  for (const std::string& arg : app.remaining(/*recurse=*/true)) {
    if (line.find(arg) != std::string::npos) continue;
    unrecognized += (unrecognized.empty() ? "" : " ") + arg;
  }
  if (!unrecognized.empty()) line += "; not recognized: " + unrecognized;
  return line + " (run '" + app.get_name() + " --help')\n";
}

std::optional<int> ParseCommandLine(CLI::App* app, int argc, const char* const* argv,
                                    std::ostream& out, std::ostream& err) {
  try {
    app->parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help, --help-all and --version are "errors" with exit code 0 (CLI::Success).
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {
      return app->exit(e, out, err);
    }
    err << ParseErrorLine(*app, e);
    return kExitBadFlags;
  }
  return std::nullopt;
}

}  // namespace cohort
