// Elastic data parallelism as pure functions of a config: which smaller config survives the loss
// of some ranks, where each surviving rank goes, and when the full config can come back. The
// Coordinator decides when to call them (a whole dp replica lost and not refilled within
// --elastic-dp-after) and applies the result to its members.
#ifndef COHORT_COORDINATOR_ELASTIC_DP_H_
#define COHORT_COORDINATOR_ELASTIC_DP_H_

#include <map>
#include <vector>

#include "absl/status/statusor.h"
#include "common/parallel_config.h"

namespace cohort::coordinator {

struct DpShrink {
  // `config` with data_parallel_size (and world_size) reduced by the replicas dropped.
  ParallelConfig config;
  // Old rank -> new rank for every rank of a surviving replica. A rank not in the map belonged
  // to a dropped replica (its agent, if still there, waits as a standby).
  std::map<int, int> new_rank;
  int replicas_dropped = 0;
};

// Drops every dp replica that misses a rank in `missing_ranks`. dp is the outermost dimension
// of the rank layout, so replica d holds ranks [d * R, (d + 1) * R) with R = world / dp; the
// surviving replicas keep their order, and ranks above a dropped replica move down by R.
// Nothing missing: the same config and every rank in place.
// Errors: INVALID_ARGUMENT (`config` is not valid, or a missing rank is outside its world);
// FAILED_PRECONDITION (every replica misses a rank, or the smaller config is not valid or would
// be a standalone HSDP layout, which has another group structure: the message says which).
absl::StatusOr<DpShrink> ShrinkDp(const ParallelConfig& config,
                                  const std::vector<int>& missing_ranks);

// Whether `available` agents are enough to rebuild `full` (the config before the pool shrank).
bool CanGrowBack(const ParallelConfig& full, int available);

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_ELASTIC_DP_H_
