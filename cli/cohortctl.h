// cohortctl: the command-line tool. RunCohortctl is main() minus the process, so tests can call
// it in-process.
#ifndef COHORT_CLI_COHORTCTL_H_
#define COHORT_CLI_COHORTCTL_H_

#include <ostream>

namespace cohort::cli {

// Exit statuses: 0 success; 1 the operation failed (e.g. the coordinator refused, an unknown
// pool, a pool that FAILED); 2 bad usage or invalid input (the error line says which); 3 a wait
// timed out; 4 the coordinator could not be reached.
int RunCohortctl(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace cohort::cli

#endif  // COHORT_CLI_COHORTCTL_H_
