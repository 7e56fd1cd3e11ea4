// The rendezvous store's key scheme and who may touch each key, as a pure function of a
// generation's layout. The agent's backends write (agent/comm):
//   <kind>/<group index>/<group rank>   Gloo: the addresses published by that member of the group
//   <kind>/<group index>/nccl_id        NCCL (per-group ids): written by rank 0 of the group
//   world/nccl_id                       NCCL: the world's id, written by global rank 0
// <kind> is a group kind of the layout ("world", "tp", "dp", ...). A member writes only the keys
// its rank owns and reads only keys of groups it belongs to (every rank is in the world group).
#ifndef COHORT_COORDINATOR_STORE_ACCESS_H_
#define COHORT_COORDINATOR_STORE_ACCESS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/layout.h"

namespace cohort::coordinator {

struct KeyScope {
  GroupKind kind = GroupKind::kWorld;
  int group_index = 0;
  // The global ranks of the group the key belongs to; the key's owner (the only writer).
  RankList group;
  int owner = 0;
  // "rank 0 of tp group 1"
  std::string owner_role;
};

// Errors: INVALID_ARGUMENT for a key outside the scheme (the message lists the scheme).
absl::StatusOr<KeyScope> ScopeOfKey(const Layout& layout, absl::string_view key);

// OK when global rank `rank` may write (`write`) or read every key. Errors: PERMISSION_DENIED
// naming the key, its owner or group and the caller's rank; INVALID_ARGUMENT (ScopeOfKey).
absl::Status CheckStoreKeys(const Layout& layout, int rank, const std::vector<std::string>& keys,
                            bool write);

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_STORE_ACCESS_H_
