#include "coordinator/plan.h"

#include "common/layout_proto.h"
#include "coordinator/coordinator_internal.h"

namespace cohort::coordinator {

using internal::BackendOf;

int64_t PlanDeadlineMs(const v1::InitOptions& options, absl::Duration default_deadline) {
  return options.deadline_ms() > 0 ? options.deadline_ms()
                                   : absl::ToInt64Milliseconds(default_deadline);
}

v1::Plan BuildPlan(const std::string& pool_name, int64_t generation, const ParallelConfig& config,
                   const Layout& layout, const v1::InitOptions& options,
                   absl::Duration default_deadline, int rank, bool rank_runs) {
  v1::Plan plan;
  plan.set_pool(pool_name);
  plan.set_generation(generation);
  plan.set_rank(rank);
  plan.set_world_size(layout.world_size());
  *plan.mutable_config() = ToProto(config);
  for (GroupKind kind : layout.kinds()) {
    v1::GroupSet* set = plan.mutable_layout()->add_group_sets();
    set->set_kind(ToProto(kind));
    v1::RankGroup* group = set->add_groups();
    SetRanks(layout.GroupOf(kind, rank), rank_runs, group);
    group->set_index(layout.GroupIndexOf(kind, rank));
  }
  plan.set_backend(BackendOf(options));
  plan.set_init_mode(options.init_mode());
  plan.set_deadline_ms(PlanDeadlineMs(options, default_deadline));
  plan.set_verify(!options.has_verify() || options.verify());
  return plan;
}

}  // namespace cohort::coordinator
