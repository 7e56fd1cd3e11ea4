// The rule a restarted coordinator recovers a pool by (phase RECOVERING), as a pure function of
// what its members report holding: the pool is restored as it was only if every rank of the
// world is back and all hold the same generation, config and backend (all READY, or all
// world-only), and that config is the pool's. Anything else is a conflict: every holder aborts
// and the next generation starts after the highest one reported. The Coordinator decides when
// to judge (every rank back, or the attach timeout), and applies the verdict.
#ifndef COHORT_COORDINATOR_RECOVERY_H_
#define COHORT_COORDINATOR_RECOVERY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cohort/v1/agent.pb.h"
#include "common/parallel_config.h"
#include "coordinator/roster.h"

namespace cohort::coordinator {

struct RecoveryVerdict {
  // What every rank holds, when the pool can be restored from it; nullopt: it cannot.
  std::optional<v1::HeldState> restore;
  // The highest generation any member holds, at least the pool's own.
  int64_t highest_generation = 0;
  // One line per member that holds something, by identity ("id: rank R generation G", with
  // " (world only)"), for the log and the event that say why recovery failed.
  std::vector<std::string> reports;
};

// Judges the held states of `roster`'s members for a pool of `world` ranks with `config` (none
// when neither the state file nor a holder gave one) at `generation`. `complete`: every rank of
// the world is held by an attached member; without it nothing is restored.
RecoveryVerdict JudgeRecovery(const Roster& roster, int world, bool complete,
                              const std::optional<ParallelConfig>& config, int64_t generation);

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_RECOVERY_H_
