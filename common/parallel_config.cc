#include "common/parallel_config.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cohort {
namespace {

struct NamedDegree {
  const char* field;
  int64_t value;
};

// Multiplies positive factors, failing once the product passes kMaxWorldSize (so no overflow).
bool CheckedProduct(std::initializer_list<int64_t> factors, int64_t* out) {
  int64_t product = 1;
  for (int64_t f : factors) {
    if (f <= 0 || product > kMaxWorldSize / f) return false;
    product *= f;
  }
  *out = product;
  return true;
}

}  // namespace

std::string ParallelConfig::ShortString() const {
  std::vector<std::string> parts;
  auto add = [&](const char* name, int64_t v) {
    if (v != 1) parts.push_back(absl::StrCat(name, v));
  };
  add("dp", data_parallel_size);
  add("cfg", cfg_parallel_size);
  add("pp", pipeline_parallel_size);
  add("ulysses", ulysses_degree);
  add("ring", ring_degree);
  add("tp", tensor_parallel_size);
  add("fs", fully_shard_degree);
  add("hsdp-replicate", hsdp_replicate_size);
  if (enable_expert_parallel) {
    parts.push_back(absl::StrCat("ep(", EpLayoutName(ep_layout), ")"));
  }
  if (parts.empty()) parts.push_back("no parallelism");
  return absl::StrCat(absl::StrJoin(parts, " x "), " (world ", world_size, ")");
}

absl::StatusOr<DerivedSizes> ValidateParallelConfig(const ParallelConfig& c) {
  const NamedDegree degrees[] = {
      {"world_size", c.world_size},
      {"data_parallel_size", c.data_parallel_size},
      {"cfg_parallel_size", c.cfg_parallel_size},
      {"ulysses_degree", c.ulysses_degree},
      {"ring_degree", c.ring_degree},
      {"tensor_parallel_size", c.tensor_parallel_size},
      {"pipeline_parallel_size", c.pipeline_parallel_size},
      {"fully_shard_degree", c.fully_shard_degree},
      {"hsdp_replicate_size", c.hsdp_replicate_size},
  };
  for (const NamedDegree& d : degrees) {
    if (d.value < 1) {
      return absl::InvalidArgumentError(absl::StrCat(d.field, " must be at least 1, got ", d.value,
                                                     "; use 1 to leave that dimension unused"));
    }
    if (d.value > kMaxWorldSize) {
      return absl::InvalidArgumentError(absl::StrCat(d.field, " is ", d.value,
                                                     ", above the largest supported world (",
                                                     kMaxWorldSize, " ranks)"));
    }
  }

  DerivedSizes out;
  if (!CheckedProduct({c.ulysses_degree, c.ring_degree}, &out.sequence_parallel_size)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ulysses_degree x ring_degree (", c.ulysses_degree, " x ", c.ring_degree,
                     ") exceeds the largest supported world (", kMaxWorldSize, " ranks)"));
  }
  if (c.sequence_parallel_size.has_value() &&
      *c.sequence_parallel_size != out.sequence_parallel_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence_parallel_size (", *c.sequence_parallel_size,
                     ") must equal ulysses_degree x ring_degree (", c.ulysses_degree, " x ",
                     c.ring_degree, " = ", out.sequence_parallel_size,
                     "); leave sequence_parallel_size unset to derive it, or change the degrees"));
  }

  int64_t dit = 0;
  if (!CheckedProduct({c.data_parallel_size, c.cfg_parallel_size, out.sequence_parallel_size,
                       c.pipeline_parallel_size, c.tensor_parallel_size},
                      &dit)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the product of the degrees (dp ", c.data_parallel_size, " x cfg ",
                     c.cfg_parallel_size, " x sp ", out.sequence_parallel_size, " x pp ",
                     c.pipeline_parallel_size, " x tp ", c.tensor_parallel_size,
                     ") exceeds the largest supported world (", kMaxWorldSize, " ranks)"));
  }
  const int64_t fs = c.fully_shard_degree;
  const int64_t rep = c.hsdp_replicate_size;
  if (rep > 1 && fs == 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("hsdp_replicate_size (", rep,
                     ") needs fully_shard_degree > 1: HSDP replicates fully-sharded groups; set "
                     "fully_shard_degree to the shard size or hsdp_replicate_size to 1"));
  }
  out.standalone_hsdp = (dit == 1 && fs > 1);
  out.effective_dp_size = c.data_parallel_size;
  std::string product_text = absl::StrCat(
      "tp ", c.tensor_parallel_size, " x sp ", out.sequence_parallel_size, " x pp ",
      c.pipeline_parallel_size, " x cfg ", c.cfg_parallel_size, " x dp ", c.data_parallel_size);
  if (out.standalone_hsdp) {
    if (!CheckedProduct({fs, rep}, &dit)) {
      return absl::InvalidArgumentError(
          absl::StrCat("fully_shard_degree x hsdp_replicate_size (", fs, " x ", rep,
                       ") exceeds the largest supported world (", kMaxWorldSize, " ranks)"));
    }
    out.effective_dp_size = dit;
    product_text = absl::StrCat("fully_shard_degree ", fs, " x hsdp_replicate_size ", rep,
                                " (standalone HSDP)");
  }
  out.dit_parallel_size = dit;

  if (c.world_size < dit) {
    return absl::InvalidArgumentError(
        absl::StrCat("world_size (", c.world_size, ") is smaller than the product of the degrees (",
                     product_text, " = ", dit, "); set world_size to ", dit, " or lower a degree"));
  }
  if (c.world_size > dit) {
    return absl::InvalidArgumentError(
        absl::StrCat("world_size (", c.world_size, ") is larger than the product of the degrees (",
                     product_text, " = ", dit, "): ranks ", dit, "..", c.world_size - 1,
                     " would belong to no group; set world_size to ", dit,
                     " or raise a degree (e.g. data_parallel_size) to cover every rank"));
  }
  if (!out.standalone_hsdp && fs > 1) {
    if (fs > dit) {
      return absl::InvalidArgumentError(absl::StrCat("fully_shard_degree (", fs,
                                                     ") exceeds the number of ranks (", dit,
                                                     "); set it to a divisor of ", dit));
    }
    if (dit % fs != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("fully_shard_degree (", fs, ") does not divide the number of ranks (", dit,
                       "): ranks ", dit - dit % fs, "..", dit - 1,
                       " would be in no shard group; set it to a divisor of ", dit));
    }
    if (rep > 1 && fs * rep != dit) {
      return absl::InvalidArgumentError(absl::StrCat(
          "hsdp_replicate_size (", rep, ") x fully_shard_degree (", fs, ") must equal the ", dit,
          " ranks of the model; set hsdp_replicate_size to ", dit / fs, " or to 1"));
    }
  }
  if (c.enable_expert_parallel && !c.is_moe) {
    return absl::InvalidArgumentError(
        "enable_expert_parallel needs an MoE model: set is_moe (--moe) or turn expert "
        "parallelism off");
  }
  return out;
}

absl::string_view EpLayoutName(EpLayout layout) {
  return layout == EpLayout::kSeed ? "seed" : "masked";
}

absl::StatusOr<EpLayout> ParseEpLayout(absl::string_view name) {
  if (name == "seed") return EpLayout::kSeed;
  if (name == "masked") return EpLayout::kMasked;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ep layout '", name, "'; use 'seed' or 'masked'"));
}

}  // namespace cohort
