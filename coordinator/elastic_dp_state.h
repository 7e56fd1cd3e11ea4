// ElasticDpState: what elastic data parallelism remembers about one pool between its steps — the
// config the pool had before it first shrank (to grow back to), and whether a grow-back teardown
// is running. The rules kept here: the first shrink remembers the full config and later shrinks
// keep it (the pool grows back to what the operator asked for, not to an intermediate size); one
// grow-back at a time; the full config is handed over, and forgotten, when that teardown ends;
// an operator's Initialize forgets everything. The decisions on configs are pure functions
// (elastic_dp.h); the Coordinator runs the timer, the teardown and the rebuild.
//
// Thread safety: none; the Coordinator guards each pool's state with its lock.
#ifndef COHORT_COORDINATOR_ELASTIC_DP_STATE_H_
#define COHORT_COORDINATOR_ELASTIC_DP_STATE_H_

#include <optional>

#include "common/parallel_config.h"

namespace cohort::coordinator {

class ElasticDpState {
 public:
  // The pool shrank from `from`. Remembered as the config to grow back to unless the pool had
  // already shrunk (then the first full config stays).
  void Shrunk(const ParallelConfig& from);
  // The config to grow back to; nullopt unless the pool has shrunk.
  const std::optional<ParallelConfig>& full_config() const { return full_config_; }
  // Whether a grow-back teardown is running.
  bool growing() const { return growing_; }

  // Whether to start growing back with `available` attached agents: the pool has shrunk, is not
  // growing already, and they are enough for the full config (CanGrowBack). The caller checks
  // that the pool is READY.
  bool ShouldGrow(int available) const;
  // A grow-back teardown starts (after ShouldGrow said so).
  void StartGrowing() { growing_ = true; }
  // A teardown ended. When it was the grow-back, returns the full config to rebuild and forgets
  // it (the pool is full again); otherwise nullopt, and nothing changes.
  std::optional<ParallelConfig> FinishGrowing();

  // An operator's config replaces whatever elastic dp was doing.
  void Reset();

 private:
  std::optional<ParallelConfig> full_config_;
  bool growing_ = false;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_ELASTIC_DP_STATE_H_
