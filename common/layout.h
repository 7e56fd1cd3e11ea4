// Layout: every group of a parallel configuration, exactly as the seed builds them
// (seed/SEMANTICS.md §5.4), with per-rank queries (the golden data's `per_rank`).
//
// Kinds are listed in the seed's creation order: world, dp, cfg, pp, ulysses, ring, sp, tp, fs,
// ep (only when expert parallelism is enabled), dit. Within a kind, groups are in the seed's
// creation order and members ascend, so a rank's index in its group list equals torch's group
// rank (SEMANTICS S10).
#ifndef COHORT_COMMON_LAYOUT_H_
#define COHORT_COMMON_LAYOUT_H_

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/parallel_config.h"
#include "common/rank_generator.h"

namespace cohort {

enum class GroupKind : int {
  kWorld = 0,
  kDp,
  kCfg,
  kPp,
  kUlysses,
  kRing,
  kSp,
  kTp,
  kFs,
  kEp,
  kDit,
};
inline constexpr int kNumGroupKinds = 11;

// All kinds in creation order.
inline constexpr std::array<GroupKind, kNumGroupKinds> kAllGroupKinds = {
    GroupKind::kWorld,   GroupKind::kDp,   GroupKind::kCfg, GroupKind::kPp,
    GroupKind::kUlysses, GroupKind::kRing, GroupKind::kSp,  GroupKind::kTp,
    GroupKind::kFs,      GroupKind::kEp,   GroupKind::kDit};

// "world", "dp", ..., as in the golden data.
absl::string_view GroupKindName(GroupKind kind);
std::optional<GroupKind> ParseGroupKind(absl::string_view name);

// One rank's view of the layout: the golden `per_rank` record.
struct RankView {
  int rank = 0;
  // Indexed by GroupKind. rank_in_group of the group of that kind that holds the rank; -1 for a
  // kind the layout does not have (ep when disabled).
  std::array<int, kNumGroupKinds> rank_in_group{};
  std::array<int, kNumGroupKinds> group_size{};
  std::array<int, kNumGroupKinds> group_index{};
  int ulysses_rank = 0;
  int ulysses_world_size = 1;
  int ring_rank = 0;
  int ring_world_size = 1;
  bool is_pipeline_first_stage = true;
  bool is_pipeline_last_stage = true;
  // The seed's is_dp_last_group: last in its sp, cfg and pp groups (ignores dp and tp, S8).
  bool is_dp_last_group = true;
  // Product of the dp, cfg, sp, pp and tp group sizes.
  int dit_world_size = 1;
  int pp_next_rank = 0;  // global rank at cyclic index +1 in the pp group
  int pp_prev_rank = 0;  // global rank at cyclic index -1
  int pp_skip_rank = 0;  // global rank at the mirror index ws-1-i
};

class Layout {
 public:
  // Validates the config (ValidateParallelConfig) and builds every group.
  // Errors: INVALID_ARGUMENT with the validation message.
  static absl::StatusOr<Layout> Build(const ParallelConfig& config);

  const ParallelConfig& config() const { return config_; }
  const DerivedSizes& derived() const { return derived_; }
  int world_size() const { return static_cast<int>(config_.world_size); }

  // Whether the layout has groups of this kind (every kind but ep, which needs
  // enable_expert_parallel).
  bool has(GroupKind kind) const { return !groups(kind).empty(); }
  // The groups of a kind in creation order; empty if the layout lacks the kind.
  const RankGroups& groups(GroupKind kind) const { return groups_[static_cast<int>(kind)]; }
  // The kinds this layout has, in creation order.
  std::vector<GroupKind> kinds() const;

  // The index (in groups(kind)) of the group holding `rank`, and the rank's position in it.
  // Preconditions: has(kind), 0 <= rank < world_size().
  int GroupIndexOf(GroupKind kind, int rank) const {
    return group_of_[static_cast<int>(kind)][rank];
  }
  int RankInGroup(GroupKind kind, int rank) const {
    return position_of_[static_cast<int>(kind)][rank];
  }
  const RankList& GroupOf(GroupKind kind, int rank) const {
    return groups(kind)[GroupIndexOf(kind, rank)];
  }

  // Precondition: 0 <= rank < world_size().
  RankView ViewOf(int rank) const;

 private:
  Layout() = default;
  void IndexRanks();

  ParallelConfig config_;
  DerivedSizes derived_;
  std::array<RankGroups, kNumGroupKinds> groups_;
  std::array<std::vector<int>, kNumGroupKinds> group_of_;
  std::array<std::vector<int>, kNumGroupKinds> position_of_;
};

}  // namespace cohort

#endif  // COHORT_COMMON_LAYOUT_H_
