#include "common/layout.h"

#include <numeric>

namespace cohort {
namespace {

constexpr std::array<absl::string_view, kNumGroupKinds> kKindNames = {
    "world", "dp", "cfg", "pp", "ulysses", "ring", "sp", "tp", "fs", "ep", "dit"};

RankList Iota(int n) {
  RankList ranks(n);
  std::iota(ranks.begin(), ranks.end(), 0);
  return ranks;
}

int Index(GroupKind kind) { return static_cast<int>(kind); }

}  // namespace

absl::string_view GroupKindName(GroupKind kind) { return kKindNames[Index(kind)]; }

std::optional<GroupKind> ParseGroupKind(absl::string_view name) {
  for (GroupKind kind : kAllGroupKinds) {
    if (GroupKindName(kind) == name) return kind;
  }
  return std::nullopt;
}

absl::StatusOr<Layout> Layout::Build(const ParallelConfig& config) {
  absl::StatusOr<DerivedSizes> derived = ValidateParallelConfig(config);
  if (!derived.ok()) return derived.status();

  Layout layout;
  layout.config_ = config;
  layout.derived_ = *derived;
  RankGeneratorSizes sizes;
  sizes.tp = config.tensor_parallel_size;
  sizes.sp = derived->sequence_parallel_size;
  sizes.pp = config.pipeline_parallel_size;
  sizes.cfg = config.cfg_parallel_size;
  sizes.dp = derived->effective_dp_size;
  sizes.fs = config.fully_shard_degree;
  absl::StatusOr<RankGenerator> gen = RankGenerator::Create(sizes);
  if (!gen.ok()) return gen.status();

  auto& g = layout.groups_;
  auto assign = [&](GroupKind kind, absl::StatusOr<RankGroups> groups) -> absl::Status {
    if (!groups.ok()) return groups.status();
    g[Index(kind)] = *std::move(groups);
    return absl::OkStatus();
  };
  // Validation guarantees every call below succeeds; the statuses are still propagated so a
  // future rule change cannot turn into a crash.
  g[Index(GroupKind::kWorld)] = {Iota(layout.world_size())};
  absl::Status s;
  if (!(s = assign(GroupKind::kSp, gen->GetRanks("sp"))).ok()) return s;
  if (!(s = assign(GroupKind::kDp, gen->GetRanks("dp"))).ok()) return s;
  if (!(s = assign(GroupKind::kCfg, gen->GetRanks("cfg"))).ok()) return s;
  if (!(s = assign(GroupKind::kPp, gen->GetRanks("pp"))).ok()) return s;
  absl::StatusOr<UlyssesRingGroups> split =
      SplitSequenceParallelGroups(config.ulysses_degree, config.ring_degree,
                                  derived->dit_parallel_size, &g[Index(GroupKind::kSp)]);
  if (!split.ok()) return split.status();
  g[Index(GroupKind::kUlysses)] = std::move(split->ulysses);
  g[Index(GroupKind::kRing)] = std::move(split->ring);
  if (!(s = assign(GroupKind::kTp, gen->GetRanks("tp"))).ok()) return s;
  if (!(s = assign(GroupKind::kFs, gen->GetRanks("fs", /*independent_ranks=*/true))).ok()) {
    return s;
  }
  if (config.enable_expert_parallel) {
    const bool seed = config.ep_layout == EpLayout::kSeed;
    if (!(s = assign(GroupKind::kEp, gen->GetRanks(seed ? "ep" : "tp-sp-cfg-dp"))).ok()) return s;
  }
  g[Index(GroupKind::kDit)] = {Iota(static_cast<int>(derived->dit_parallel_size))};
  layout.IndexRanks();
  return layout;
}

void Layout::IndexRanks() {
  for (GroupKind kind : kAllGroupKinds) {
    const int k = Index(kind);
    group_of_[k].assign(world_size(), -1);
    position_of_[k].assign(world_size(), -1);
    for (size_t gi = 0; gi < groups_[k].size(); ++gi) {
      const RankList& group = groups_[k][gi];
      for (size_t pos = 0; pos < group.size(); ++pos) {
        group_of_[k][group[pos]] = static_cast<int>(gi);
        position_of_[k][group[pos]] = static_cast<int>(pos);
      }
    }
  }
}

std::vector<GroupKind> Layout::kinds() const {
  std::vector<GroupKind> out;
  for (GroupKind kind : kAllGroupKinds) {
    if (has(kind)) out.push_back(kind);
  }
  return out;
}

RankView Layout::ViewOf(int rank) const {
  RankView v;
  v.rank = rank;
  for (GroupKind kind : kAllGroupKinds) {
    const int k = Index(kind);
    if (!has(kind)) {
      v.rank_in_group[k] = v.group_size[k] = v.group_index[k] = -1;
      continue;
    }
    v.group_index[k] = group_of_[k][rank];
    v.rank_in_group[k] = position_of_[k][rank];
    v.group_size[k] = static_cast<int>(groups_[k][v.group_index[k]].size());
  }
  auto in = [&](GroupKind kind) { return v.rank_in_group[Index(kind)]; };
  auto size = [&](GroupKind kind) { return v.group_size[Index(kind)]; };
  v.ulysses_rank = in(GroupKind::kUlysses);
  v.ulysses_world_size = size(GroupKind::kUlysses);
  v.ring_rank = in(GroupKind::kRing);
  v.ring_world_size = size(GroupKind::kRing);
  v.is_pipeline_first_stage = in(GroupKind::kPp) == 0;
  v.is_pipeline_last_stage = in(GroupKind::kPp) == size(GroupKind::kPp) - 1;
  v.is_dp_last_group = in(GroupKind::kSp) == size(GroupKind::kSp) - 1 &&
                       in(GroupKind::kCfg) == size(GroupKind::kCfg) - 1 &&
                       in(GroupKind::kPp) == size(GroupKind::kPp) - 1;
  v.dit_world_size = size(GroupKind::kDp) * size(GroupKind::kCfg) * size(GroupKind::kSp) *
                     size(GroupKind::kPp) * size(GroupKind::kTp);
  const RankList& pp = GroupOf(GroupKind::kPp, rank);
  const int n = static_cast<int>(pp.size());
  const int i = in(GroupKind::kPp);
  v.pp_next_rank = pp[(i + 1) % n];
  v.pp_prev_rank = pp[(i - 1 + n) % n];
  v.pp_skip_rank = pp[n - 1 - i];
  return v;
}

}  // namespace cohort
