#include "common/rank_generator.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace cohort {
namespace {

int64_t* SizeByName(RankGeneratorSizes& s, absl::string_view name) {
  if (name == "tp") return &s.tp;
  if (name == "sp") return &s.sp;
  if (name == "pp") return &s.pp;
  if (name == "cfg") return &s.cfg;
  if (name == "dp") return &s.dp;
  return nullptr;
}

// Contiguous blocks [i*block + offset, (i+1)*block + offset) for i < count.
RankGroups ContiguousBlocks(int64_t count, int64_t block, int64_t offset) {
  RankGroups groups(count);
  for (int64_t i = 0; i < count; ++i) {
    groups[i].resize(block);
    for (int64_t j = 0; j < block; ++j) groups[i][j] = static_cast<int>(i * block + j + offset);
  }
  return groups;
}

}  // namespace

absl::StatusOr<RankGroups> GenerateMaskedOrthogonalRankGroups(
    int64_t world_size, const std::vector<int64_t>& parallel_size, const std::vector<bool>& mask) {
  if (parallel_size.size() != mask.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mask has ", mask.size(), " entries but there are ", parallel_size.size(), " dimensions"));
  }
  const size_t k = parallel_size.size();
  std::vector<int64_t> stride(k);
  int64_t product = 1;
  for (size_t i = 0; i < k; ++i) {
    if (parallel_size[i] < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("dimension ", i, " has size ", parallel_size[i], "; sizes must be >= 1"));
    }
    stride[i] = product;
    product *= parallel_size[i];
  }
  if (world_size > product) {
    return absl::InvalidArgumentError(absl::StrCat(
        "world_size ", world_size, " exceeds the product of the dimension sizes (", product, ")"));
  }
  std::vector<size_t> masked, unmasked;
  for (size_t i = 0; i < k; ++i) (mask[i] ? masked : unmasked).push_back(i);
  int64_t group_size = 1;
  for (size_t i : masked) group_size *= parallel_size[i];
  const int64_t num_groups = world_size / group_size;

  // Offsets of the members of a group relative to its base: the mixed-radix expansion of
  // j < group_size over the masked dimensions. The same for every group.
  std::vector<int64_t> member_offsets(group_size);
  for (int64_t j = 0; j < group_size; ++j) {
    int64_t rest = j, offset = 0;
    for (size_t i : masked) {
      offset += (rest % parallel_size[i]) * stride[i];
      rest /= parallel_size[i];
    }
    member_offsets[j] = offset;
  }
  RankGroups groups(num_groups);
  for (int64_t g = 0; g < num_groups; ++g) {
    int64_t rest = g, base = 0;
    for (size_t i : unmasked) {
      base += (rest % parallel_size[i]) * stride[i];
      rest /= parallel_size[i];
    }
    RankList& group = groups[g];
    group.resize(group_size);
    for (int64_t j = 0; j < group_size; ++j) group[j] = static_cast<int>(base + member_offsets[j]);
  }
  return groups;
}

absl::StatusOr<RankGenerator> RankGenerator::Create(const RankGeneratorSizes& sizes,
                                                    absl::string_view order, int64_t rank_offset) {
  RankGenerator gen;
  gen.sizes_ = sizes;
  gen.rank_offset_ = rank_offset;
  gen.order_ = absl::AsciiStrToLower(order);
  for (const char* name : {"tp", "sp", "pp", "cfg", "dp", "fs"}) {
    const int64_t size = name == absl::string_view("fs") ? sizes.fs : *SizeByName(gen.sizes_, name);
    if (size < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("rank generator size ", name, " is ", size, "; sizes must be >= 1"));
    }
  }
  gen.order_names_ = absl::StrSplit(gen.order_, '-');
  for (const char* name : {"tp", "sp", "pp", "cfg", "dp"}) {
    const bool present =
        std::find(gen.order_names_.begin(), gen.order_names_.end(), name) != gen.order_names_.end();
    if (present) continue;
    const int64_t size = *SizeByName(gen.sizes_, name);
    if (size != 1) {
      return absl::InvalidArgumentError(absl::StrCat("the size of ", name, " is ", size,
                                                     " but the order '", gen.order_,
                                                     "' does not name it; add it to the order"));
    }
    gen.order_names_.push_back(name);
    gen.order_ = absl::StrCat(gen.order_, "-", name);
  }
  for (const std::string& name : gen.order_names_) {
    int64_t* size = SizeByName(gen.sizes_, name);
    if (size == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown dimension '", name, "' in order '",
                                                     gen.order_, "'; use tp, sp, pp, cfg, dp"));
    }
    gen.ordered_size_.push_back(*size);
  }
  gen.world_size_ = sizes.tp * sizes.sp * sizes.pp * sizes.cfg * sizes.dp;
  gen.ep_ = sizes.tp * sizes.sp * sizes.cfg * sizes.dp;
  return gen;
}

absl::StatusOr<std::vector<bool>> RankGenerator::GetMask(absl::string_view token) const {
  std::vector<bool> mask(order_names_.size(), false);
  for (absl::string_view part : absl::StrSplit(token, '-')) {
    auto it = std::find(order_names_.begin(), order_names_.end(), part);
    if (it == order_names_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", part, "' is not a dimension of the order '", order_, "'"));
    }
    mask[it - order_names_.begin()] = true;
  }
  return mask;
}

absl::StatusOr<RankGroups> RankGenerator::GetRanks(absl::string_view token,
                                                   bool independent_ranks) const {
  if (independent_ranks && token == "fs") {
    return ContiguousBlocks(world_size_ / sizes_.fs, sizes_.fs, rank_offset_);
  }
  if (token == "ep") {
    return ContiguousBlocks(sizes_.pp, ep_, rank_offset_);
  }
  absl::StatusOr<std::vector<bool>> mask = GetMask(token);
  if (!mask.ok()) return mask.status();
  absl::StatusOr<RankGroups> groups =
      GenerateMaskedOrthogonalRankGroups(world_size_, ordered_size_, *mask);
  if (groups.ok() && rank_offset_ > 0) {
    for (RankList& g : *groups) {
      for (int& r : g) r += static_cast<int>(rank_offset_);
    }
  }
  return groups;
}

absl::StatusOr<UlyssesRingGroups> SplitSequenceParallelGroups(int64_t ulysses_degree,
                                                              int64_t ring_degree,
                                                              int64_t world_size,
                                                              const RankGroups* sp_groups,
                                                              bool use_ulysses_low) {
  if (ulysses_degree < 1 || ring_degree < 1) {
    return absl::InvalidArgumentError(absl::StrCat("ulysses_degree (", ulysses_degree,
                                                   ") and ring_degree (", ring_degree,
                                                   ") must both be >= 1"));
  }
  const int64_t sp = ulysses_degree * ring_degree;
  if (world_size % sp != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "world_size ", world_size, " is not a multiple of the sequence-parallel size ", sp));
  }
  RankGroups implicit;
  if (sp_groups == nullptr) {
    implicit = ContiguousBlocks(world_size / sp, sp, 0);
    sp_groups = &implicit;
  }
  if (static_cast<int64_t>(sp_groups->size()) * sp != world_size) {
    return absl::InvalidArgumentError(absl::StrCat("expected ", world_size / sp,
                                                   " sequence-parallel groups of size ", sp,
                                                   ", got ", sp_groups->size(), " groups"));
  }
  // Runs of `run` consecutive members (count of them), then combs of stride `run`.
  const int64_t run = use_ulysses_low ? ulysses_degree : ring_degree;
  const int64_t runs = sp / run;
  UlyssesRingGroups out;
  RankGroups& run_groups = use_ulysses_low ? out.ulysses : out.ring;
  RankGroups& comb_groups = use_ulysses_low ? out.ring : out.ulysses;
  run_groups.reserve(sp_groups->size() * runs);
  comb_groups.reserve(sp_groups->size() * run);
  for (const RankList& g : *sp_groups) {
    if (static_cast<int64_t>(g.size()) != sp) {
      return absl::InvalidArgumentError(absl::StrCat("sequence-parallel group of size ", g.size(),
                                                     " where ", sp, " was expected"));
    }
    for (int64_t i = 0; i < runs; ++i) {
      run_groups.emplace_back(g.begin() + i * run, g.begin() + (i + 1) * run);
    }
    for (int64_t i = 0; i < run; ++i) {
      RankList comb;
      comb.reserve(runs);
      for (int64_t j = i; j < sp; j += run) comb.push_back(g[j]);
      comb_groups.push_back(std::move(comb));
    }
  }
  return out;
}

}  // namespace cohort
