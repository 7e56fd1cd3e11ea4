// What the three binaries (cohort-coordinator, cohort-agent, cohortctl) share on their command
// lines: --version, and one way to end on a parse error (exit status 2, one `error:` line that
// names the flag and points at --help). Part of cohort_flags (CLI11).
#ifndef COHORT_COMMON_COMMAND_LINE_H_
#define COHORT_COMMON_COMMAND_LINE_H_

#include <optional>
#include <ostream>
#include <string>

#include "CLI/CLI.hpp"

namespace cohort {

// Exit status of a bad command line (unknown flag, bad value, missing argument) in every binary.
inline constexpr int kExitBadFlags = 2;

// The one `error:` line for a parse error of `app`: CLI11's message, the arguments it did not
// recognise when its message does not name them (e.g. "A subcommand is required" for
// `cohortctl --bogus`), and where to find help.
std::string ParseErrorLine(const CLI::App& app, const CLI::ParseError& error);

// The version of this build: the CMake project version (common/cohort_config.h).
std::string CohortVersion();

// Adds --version, which prints "<app name> <CohortVersion()>" and exits 0.
void AddVersionFlag(CLI::App* app);

// Parses argv into `app`. Returns std::nullopt when the program should go on; otherwise the
// exit status: 0 after --help or --version (printed on `out`), kExitBadFlags after a parse
// error (printed on `err` as "error: <what> (run '<name> --help')"). CLI11_PARSE instead exits
// with CLI11's own codes (105, 109, ...), which scripts cannot tell from a runtime failure.
std::optional<int> ParseCommandLine(CLI::App* app, int argc, const char* const* argv,
                                    std::ostream& out, std::ostream& err);

}  // namespace cohort

#endif  // COHORT_COMMON_COMMAND_LINE_H_
