// The seed's rank arithmetic (seed/SEMANTICS.md §2-§4): masked orthogonal rank groups, the
// RankGenerator over the dimension order "tp-sp-pp-cfg-dp", and the Ulysses/Ring split of the
// sequence-parallel groups.
//
// Unlike the seed's RankGenerator, sizes are passed by name (RankGeneratorSizes), so a new
// dimension cannot silently shift a positional argument (SEMANTICS B15), and every failure is a
// Status instead of a Python exception.
#ifndef COHORT_COMMON_RANK_GENERATOR_H_
#define COHORT_COMMON_RANK_GENERATOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cohort {

using RankList = std::vector<int>;
using RankGroups = std::vector<RankList>;

inline constexpr absl::string_view kDefaultOrder = "tp-sp-pp-cfg-dp";

// Groups of `world_size` ranks laid out over the mixed-radix dimensions `parallel_size`
// (innermost first). mask[i] == true means dimension i varies inside a group. Members ascend;
// groups ascend by smallest member.
// Errors: INVALID_ARGUMENT if the spans differ in length, a size is < 1, or world_size exceeds
// the product of the sizes (the seed's digit-recomposition assert).
absl::StatusOr<RankGroups> GenerateMaskedOrthogonalRankGroups(
    int64_t world_size, const std::vector<int64_t>& parallel_size, const std::vector<bool>& mask);

struct RankGeneratorSizes {
  int64_t tp = 1;
  int64_t sp = 1;
  int64_t pp = 1;
  int64_t cfg = 1;
  int64_t dp = 1;
  int64_t fs = 1;  // used only by GetRanks("fs", /*independent_ranks=*/true)
};

class RankGenerator {
 public:
  // Errors: INVALID_ARGUMENT if a size is < 1, if a dimension whose size is not 1 is missing from
  // `order`, or if `order` names an unknown dimension (only tp, sp, pp, cfg, dp; fs is never an
  // order dimension).
  static absl::StatusOr<RankGenerator> Create(const RankGeneratorSizes& sizes,
                                              absl::string_view order = kDefaultOrder,
                                              int64_t rank_offset = 0);

  // tp*sp*pp*cfg*dp: excludes fs, as in the seed.
  int64_t world_size() const { return world_size_; }
  // tp*sp*cfg*dp: the size of one seed EP block.
  int64_t ep() const { return ep_; }
  // The order after missing size-1 dimensions were appended (e.g. "tp-dp-sp-pp-cfg").
  const std::string& order() const { return order_; }
  const std::vector<int64_t>& ordered_size() const { return ordered_size_; }

  // True at the position of every dimension named in the hyphenated `token`.
  // Errors: INVALID_ARGUMENT naming the first token part that is not in the order.
  absl::StatusOr<std::vector<bool>> GetMask(absl::string_view token) const;

  // The groups for `token`:
  //  * "fs" with independent_ranks: contiguous blocks of fs ranks (a trailing partial block is
  //    dropped, as in the seed);
  //  * "ep": pp contiguous blocks of ep() ranks (the seed's EP layout, SEMANTICS B1);
  //  * anything else, including hyphenated tokens like "tp-dp": masked orthogonal groups.
  // rank_offset is added to every rank (for masked groups only when > 0, as in the seed).
  // Errors: INVALID_ARGUMENT for an unknown token.
  absl::StatusOr<RankGroups> GetRanks(absl::string_view token,
                                      bool independent_ranks = false) const;

 private:
  RankGenerator() = default;

  RankGeneratorSizes sizes_;
  int64_t world_size_ = 1;
  int64_t ep_ = 1;
  int64_t rank_offset_ = 0;
  std::string order_;
  std::vector<std::string> order_names_;
  std::vector<int64_t> ordered_size_;
};

struct UlyssesRingGroups {
  RankGroups ulysses;  // in creation order (SP-group major), not sorted
  RankGroups ring;     // in creation order (SP-group major), not sorted
};

// The seed's set_seq_parallel_pg, for all ranks at once. With `sp_groups` (the seed's explicit
// mode, the only one initialize_model_parallel uses) the split follows those groups; with nullptr
// the SP groups are assumed to be the contiguous blocks [k*sp, (k+1)*sp) (the legacy implicit
// mode, wrong for tp > 1, kept for parity). With use_ulysses_low, each SP group g yields ring
// ulysses runs g[i*U .. i*U+U) then U ring combs g[i], g[i+U], ...; otherwise U ring runs of R
// then R ulysses combs.
// Errors: INVALID_ARGUMENT if a degree is < 1, world_size is not a multiple of ulysses*ring, or
// the explicit groups do not number world_size/sp or are not all of size sp.
absl::StatusOr<UlyssesRingGroups> SplitSequenceParallelGroups(int64_t ulysses_degree,
                                                              int64_t ring_degree,
                                                              int64_t world_size,
                                                              const RankGroups* sp_groups,
                                                              bool use_ulysses_low = true);

}  // namespace cohort

#endif  // COHORT_COMMON_RANK_GENERATOR_H_
