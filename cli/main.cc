#include <iostream>

#include "cli/cohortctl.h"
#include "cli/terminal_safe.h"

int main(int argc, char** argv) {
  // Nothing from the network reaches the terminal raw (identities, hosts, errors).
  cohort::cli::TerminalSafeBuf safe_out(std::cout.rdbuf());
  cohort::cli::TerminalSafeBuf safe_err(std::cerr.rdbuf());
  std::streambuf* out_buf = std::cout.rdbuf(&safe_out);
  std::streambuf* err_buf = std::cerr.rdbuf(&safe_err);
  const int rc = cohort::cli::RunCohortctl(argc, argv, std::cout, std::cerr);
  std::cout.flush();
  std::cerr.flush();
  std::cout.rdbuf(out_buf);
  std::cerr.rdbuf(err_buf);
  return rc;
}
