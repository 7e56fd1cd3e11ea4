// The plan each rank of a generation gets: its pool, generation, rank, the config and its own
// group of each kind (not the whole layout: a rank needs only its groups), the backend, init
// mode, deadline and whether to verify. A pure function of the pool's settings.
#ifndef COHORT_COORDINATOR_PLAN_H_
#define COHORT_COORDINATOR_PLAN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "cohort/v1/admin.pb.h"
#include "cohort/v1/agent.pb.h"
#include "common/layout.h"
#include "common/parallel_config.h"

namespace cohort::coordinator {

// `layout` is Layout::Build(config); `rank` is inside its world. The deadline is the options'
// deadline_ms, or `default_deadline` when they give none; verify defaults to on; the backend to
// gloo. `rank_runs`: the groups' ranks as runs (RankGroup.runs, for an agent that accepts them:
// a few bytes for a whole world), else listed (O(world) bytes per plan for the world group).
// A plan's deadline_ms: the options' deadline_ms, or `default_deadline` when they give none.
int64_t PlanDeadlineMs(const v1::InitOptions& options, absl::Duration default_deadline);

v1::Plan BuildPlan(const std::string& pool_name, int64_t generation, const ParallelConfig& config,
                   const Layout& layout, const v1::InitOptions& options,
                   absl::Duration default_deadline, int rank, bool rank_runs);

// BuildPlan for every rank of one generation: what all plans share is built once, and each
// group's message once (turning the world group of 16,384 ranks into runs took 16,384 steps per
// plan, O(world²) per generation: 2.5 s of StartGeneration at 16,384 ranks). Build(rank, runs)
// equals BuildPlan(..., rank, runs). `layout` must outlive the builder.
class PlanBuilder {
 public:
  PlanBuilder(const std::string& pool_name, int64_t generation, const ParallelConfig& config,
              const Layout& layout, const v1::InitOptions& options,
              absl::Duration default_deadline);
  v1::Plan Build(int rank, bool rank_runs);

 private:
  const v1::RankGroup& Group(size_t kind_index, int rank, bool rank_runs);

  const Layout& layout_;
  const std::vector<GroupKind> kinds_;
  // Everything but the rank and its groups.
  v1::Plan common_;
  // [rank_runs][position in kinds_][group index]: built on first use.
  std::vector<std::vector<std::optional<v1::RankGroup>>> groups_[2];
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_PLAN_H_
