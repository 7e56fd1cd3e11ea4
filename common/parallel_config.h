// ParallelConfig: the degrees of one parallel configuration, and its up-front validation.
//
// Field names follow vllm-omni's initialize_model_parallel (seed/SEMANTICS.md §5.1), plus the
// world size (which the seed takes from torch.distributed) and is_moe (which the seed reads from
// its forward context).
#ifndef COHORT_COMMON_PARALLEL_CONFIG_H_
#define COHORT_COMMON_PARALLEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cohort {

// The largest world cohort accepts. Far above any real job; it bounds memory and keeps every
// product of degrees inside int32 rank arithmetic.
inline constexpr int64_t kMaxWorldSize = 1 << 20;

// How the expert-parallel groups are laid out (seed/SEMANTICS.md B1).
enum class EpLayout {
  // The seed's: pp contiguous blocks of W/pp ranks. Mixes pipeline stages when pp>1 and cfg*dp>1.
  kSeed,
  // The masked orthogonal groups of token "tp-sp-cfg-dp": every rank of one pipeline stage that
  // shares a pp coordinate. Equal to kSeed whenever pp == 1 or cfg*dp == 1.
  kMasked,
};

struct ParallelConfig {
  int64_t world_size = 1;
  int64_t data_parallel_size = 1;
  int64_t cfg_parallel_size = 1;
  // Unset means ulysses_degree * ring_degree; if set it must equal that product.
  std::optional<int64_t> sequence_parallel_size;
  int64_t ulysses_degree = 1;
  int64_t ring_degree = 1;
  int64_t tensor_parallel_size = 1;
  int64_t pipeline_parallel_size = 1;
  int64_t fully_shard_degree = 1;
  int64_t hsdp_replicate_size = 1;
  bool enable_expert_parallel = false;
  bool is_moe = false;
  EpLayout ep_layout = EpLayout::kSeed;

  // "dp2 x cfg2 x ulysses2 (world 8)": the degrees that are not 1, for logs and tables.
  std::string ShortString() const;
};

// Quantities derived from a config, as the seed computes them (SEMANTICS §5.2, §5.3).
struct DerivedSizes {
  int64_t sequence_parallel_size = 1;  // ulysses * ring
  int64_t dit_parallel_size = 1;       // dp*cfg*sp*pp*tp, or fs*rep in standalone HSDP
  bool standalone_hsdp = false;        // every other degree is 1 and fs > 1
  int64_t effective_dp_size = 1;       // fs*rep in standalone HSDP, else data_parallel_size
};

// Checks a config before anything is built and derives its sizes.
// Errors: INVALID_ARGUMENT, with one sentence that names the offending field(s), their values and
// the fix, for: a degree or world size < 1; sequence_parallel_size != ulysses*ring; a product of
// degrees above kMaxWorldSize; world_size different from the product of the degrees (too small
// or too large: the seed hangs on the latter); hsdp_replicate_size > 1 without fully_shard_degree;
// fully_shard_degree above or not dividing the dit size; a combined-HSDP replicate size that
// contradicts dit/fs; expert parallelism without an MoE model.
absl::StatusOr<DerivedSizes> ValidateParallelConfig(const ParallelConfig& config);

absl::string_view EpLayoutName(EpLayout layout);
// Errors: INVALID_ARGUMENT naming the accepted values.
absl::StatusOr<EpLayout> ParseEpLayout(absl::string_view name);

}  // namespace cohort

#endif  // COHORT_COMMON_PARALLEL_CONFIG_H_
