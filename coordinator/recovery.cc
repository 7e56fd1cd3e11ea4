#include "coordinator/recovery.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/layout_proto.h"
#include "google/protobuf/util/message_differencer.h"

namespace cohort::coordinator {

RecoveryVerdict JudgeRecovery(const Roster& roster, int world, bool complete,
                              const std::optional<ParallelConfig>& config, int64_t generation) {
  using google::protobuf::util::MessageDifferencer;
  RecoveryVerdict verdict;
  std::optional<v1::HeldState> reference;
  bool consistent = complete && config.has_value();
  const std::vector<const Member*> by_rank = roster.ByRank(world);
  for (int r = 0; r < world && consistent; ++r) {
    const Member* m = by_rank[r];
    if (m == nullptr || !m->held.holding()) {
      consistent = false;
      break;
    }
    if (!reference.has_value()) {
      reference = m->held;
      continue;
    }
    consistent = m->held.generation() == reference->generation() &&
                 m->held.world_only() == reference->world_only() &&
                 m->held.backend() == reference->backend() &&
                 MessageDifferencer::Equals(m->held.config(), reference->config());
  }
  verdict.highest_generation = generation;
  for (const auto& [identity, m] : roster.members()) {
    if (!m.held.holding()) continue;
    verdict.highest_generation = std::max(verdict.highest_generation, m.held.generation());
    verdict.reports.push_back(absl::StrCat(identity, ": rank ", m.held.rank(), " generation ",
                                           m.held.generation(),
                                           m.held.world_only() ? " (world only)" : ""));
  }
  if (consistent && reference.has_value() &&
      MessageDifferencer::Equals(reference->config(), ToProto(*config))) {
    verdict.restore = std::move(reference);
  }
  return verdict;
}

}  // namespace cohort::coordinator
