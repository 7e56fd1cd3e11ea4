// Conversions between the layout engine's types and their protobuf forms (wire and documents).
#ifndef COHORT_COMMON_LAYOUT_PROTO_H_
#define COHORT_COMMON_LAYOUT_PROTO_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "cohort/v1/layout.pb.h"
#include "common/layout.h"
#include "common/parallel_config.h"

namespace cohort {

v1::ParallelConfig ToProto(const ParallelConfig& config);
// Unset degrees become 1. Does not validate (ValidateParallelConfig / Layout::Build do).
ParallelConfig FromProto(const v1::ParallelConfig& proto);

v1::GroupKind ToProto(GroupKind kind);
// Errors: INVALID_ARGUMENT for GROUP_KIND_UNSPECIFIED or an unknown value.
absl::StatusOr<GroupKind> FromProto(v1::GroupKind kind);

v1::Layout ToProto(const Layout& layout);

// Sets `group`'s ranks (ascending): as runs when `compact` (RankGroup.compact: one run per stretch
// of equally spaced ranks, so a whole world is one run), else listed.
void SetRanks(const RankList& ranks, bool compact, v1::RankGroup* group);
// The ranks of `group`, listed or as runs. Errors (INVALID_ARGUMENT, naming the fault): both forms
// or neither, a run with count or stride below 1, a rank outside [0, world), ranks not ascending.
// Never allocates more than `world` ranks, whatever the runs say.
absl::StatusOr<RankList> RanksOf(const v1::RankGroup& group, int world);
v1::RankRecord ToRankRecord(const RankView& view, bool has_ep);

// The `cohortctl layout -o json` document; `rank` adds per_rank.
v1::LayoutDocument ToLayoutDocument(const Layout& layout, std::optional<int> rank);

// Prints a message as JSON with the proto field names (snake_case), as every cohort JSON
// output does. `pretty` indents it; the default is one line.
std::string ToJson(const google::protobuf::Message& message, bool pretty = false);

}  // namespace cohort

#endif  // COHORT_COMMON_LAYOUT_PROTO_H_
