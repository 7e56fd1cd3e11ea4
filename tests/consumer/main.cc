// An engine embedding the agent, reduced to what proves the package works: the installed
// headers compile, cohort::agent links, and a call goes through the library. Agent::Start
// against a closed port must fail with an error rather than hang or crash.
#include <iostream>

#include "agent/agent.h"
#include "agent/parallel_state.h"
#include "common/cohort_config.h"
#include "common/layout.h"

int main() {
  const cohort::ParallelConfig config{
      .world_size = 8, .data_parallel_size = 2, .tensor_parallel_size = 4};
  absl::StatusOr<cohort::Layout> layout = cohort::Layout::Build(config);
  if (!layout.ok()) {
    std::cerr << "Layout::Build: " << layout.status() << "\n";
    return 1;
  }
  cohort::agent::AgentOptions options;
  options.coordinator_address = "127.0.0.1:1";  // nothing listens there
  options.identity = "consumer";
  options.connect_timeout = absl::Milliseconds(200);
  auto agent = cohort::agent::Agent::Start(options);
  if (agent.ok()) {
    std::cerr << "Agent::Start succeeded against a closed port\n";
    return 1;
  }
  std::cout << "cohort " << COHORT_VERSION << " consumer ok: " << layout->world_size()
            << " ranks; Agent::Start: " << agent.status().code() << "\n";
  return 0;
}
