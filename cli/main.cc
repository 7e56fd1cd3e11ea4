#include <iostream>

#include "cli/cohortctl.h"

int main(int argc, char** argv) {
  return cohort::cli::RunCohortctl(argc, argv, std::cout, std::cerr);
}
