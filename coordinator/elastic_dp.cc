#include "coordinator/elastic_dp.h"

#include <set>
#include <string>

#include "absl/strings/str_cat.h"

namespace cohort::coordinator {

absl::StatusOr<DpShrink> ShrinkDp(const ParallelConfig& config,
                                  const std::vector<int>& missing_ranks) {
  if (absl::StatusOr<DerivedSizes> valid = ValidateParallelConfig(config); !valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot shrink an invalid config: ", valid.status().message()));
  }
  const int world = static_cast<int>(config.world_size);
  const int dp = static_cast<int>(config.data_parallel_size);
  const int replica = world / dp;
  std::set<int> broken;
  for (int r : missing_ranks) {
    if (r < 0 || r >= world) {
      return absl::InvalidArgumentError(
          absl::StrCat("missing rank ", r, " is outside the world of ", world));
    }
    broken.insert(r / replica);
  }
  DpShrink out;
  out.replicas_dropped = static_cast<int>(broken.size());
  out.config = config;
  out.config.data_parallel_size = dp - out.replicas_dropped;
  out.config.world_size = out.config.data_parallel_size * replica;
  if (out.config.data_parallel_size < 1) {
    return absl::FailedPreconditionError("no dp replica is complete");
  }
  absl::StatusOr<DerivedSizes> derived = ValidateParallelConfig(out.config);
  if (!derived.ok()) return absl::FailedPreconditionError(derived.status().message());
  if (derived->standalone_hsdp) {
    return absl::FailedPreconditionError(
        absl::StrCat("the smaller config ", out.config.ShortString(),
                     " would be a standalone HSDP layout, with other groups"));
  }
  for (int d = 0, next = 0; d < dp; ++d) {
    if (broken.count(d)) continue;
    for (int i = 0; i < replica; ++i) out.new_rank[d * replica + i] = next * replica + i;
    ++next;
  }
  return out;
}

bool CanGrowBack(const ParallelConfig& full, int available) { return available >= full.world_size; }

}  // namespace cohort::coordinator
