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
  return PlanBuilder(pool_name, generation, config, layout, options, default_deadline)
      .Build(rank, rank_runs);
}

PlanBuilder::PlanBuilder(const std::string& pool_name, int64_t generation,
                         const ParallelConfig& config, const Layout& layout,
                         const v1::InitOptions& options, absl::Duration default_deadline)
    : layout_(layout), kinds_(layout.kinds()) {
  common_.set_pool(pool_name);
  common_.set_generation(generation);
  common_.set_world_size(layout.world_size());
  *common_.mutable_config() = ToProto(config);
  common_.set_backend(BackendOf(options));
  common_.set_init_mode(options.init_mode());
  common_.set_deadline_ms(PlanDeadlineMs(options, default_deadline));
  common_.set_verify(!options.has_verify() || options.verify());
  for (auto& by_kind : groups_) {
    for (GroupKind kind : kinds_) by_kind.emplace_back(layout.groups(kind).size());
  }
}

const v1::RankGroup& PlanBuilder::Group(size_t kind_index, int rank, bool rank_runs) {
  const GroupKind kind = kinds_[kind_index];
  const int index = layout_.GroupIndexOf(kind, rank);
  std::optional<v1::RankGroup>& group = groups_[rank_runs ? 1 : 0][kind_index][index];
  if (!group.has_value()) {
    group.emplace();
    SetRanks(layout_.GroupOf(kind, rank), rank_runs, &*group);
    group->set_index(index);
  }
  return *group;
}

v1::Plan PlanBuilder::Build(int rank, bool rank_runs) {
  v1::Plan plan = common_;
  plan.set_rank(rank);
  for (size_t k = 0; k < kinds_.size(); ++k) {
    v1::GroupSet* set = plan.mutable_layout()->add_group_sets();
    set->set_kind(ToProto(kinds_[k]));
    *set->add_groups() = Group(k, rank, rank_runs);
  }
  return plan;
}

}  // namespace cohort::coordinator
