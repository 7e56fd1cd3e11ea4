// The parallel-config flags shared by `cohortctl layout`, `cohortctl init` and the coordinator's
// startup pool. Part of cohort_flags (CLI11), which embedding engines never link.
#ifndef COHORT_COMMON_CONFIG_FLAGS_H_
#define COHORT_COMMON_CONFIG_FLAGS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "common/parallel_config.h"

namespace cohort {

struct ConfigFlags {
  int64_t world_size = 0;
  int64_t dp = 1, cfg = 1, ulysses = 1, ring = 1, tp = 1, pp = 1, fs = 1, hsdp_replicate = 1;
  std::optional<int64_t> sp;
  bool ep = false;
  bool moe = false;
  std::string ep_layout = "seed";

  // Registers --world-size, --dp, --cfg, --sp, --ulysses, --ring, --tp, --pp, --fs,
  // --hsdp-replicate, --ep, --moe, --ep-layout on `app`. `world_size_required` makes
  // --world-size mandatory.
  void Register(CLI::App* app, bool world_size_required);

  // The config the flags describe (not yet validated: Layout::Build does that).
  // Errors: INVALID_ARGUMENT for an unknown --ep-layout.
  absl::StatusOr<ParallelConfig> ToConfig() const;
};

}  // namespace cohort

#endif  // COHORT_COMMON_CONFIG_FLAGS_H_
