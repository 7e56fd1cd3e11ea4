// Group: one communicator group as an inference engine sees it — its ranks, this rank's place,
// the seed's topology helpers (first/last/next/prev/skip rank) and the collectives.
#ifndef COHORT_AGENT_GROUP_H_
#define COHORT_AGENT_GROUP_H_

#include <map>
#include <memory>
#include <vector>

#include "agent/comm/communicator.h"
#include "common/layout.h"

namespace cohort::agent {

class Group {
 public:
  explicit Group(std::shared_ptr<Communicator> comm) : comm_(std::move(comm)) {}

  GroupKind kind() const { return comm_->kind(); }
  int index() const { return comm_->group_index(); }
  const std::vector<int>& ranks() const { return comm_->ranks(); }
  int rank_in_group() const { return comm_->rank(); }
  int world_size() const { return comm_->size(); }
  // Global ranks, as the seed's GroupCoordinator defines them.
  int rank() const { return ranks()[rank_in_group()]; }
  int first_rank() const { return ranks().front(); }
  int last_rank() const { return ranks().back(); }
  bool is_first_rank() const { return rank() == first_rank(); }
  bool is_last_rank() const { return rank() == last_rank(); }
  int next_rank() const { return ranks()[(rank_in_group() + 1) % world_size()]; }
  int prev_rank() const { return ranks()[(rank_in_group() - 1 + world_size()) % world_size()]; }
  int skip_rank() const { return ranks()[world_size() - 1 - rank_in_group()]; }

  // Collectives (host buffers for Gloo, device buffers for NCCL), and the raw handle
  // (ncclComm_t for NCCL) for an inference engine that drives the communicator itself.
  Communicator& comm() const { return *comm_; }
  void* raw_handle() const { return comm_->raw_handle(); }

 private:
  std::shared_ptr<Communicator> comm_;
};

// The groups of one READY generation on this rank.
struct GroupMap {
  int64_t generation = 0;
  int rank = -1;
  int world_size = 0;
  std::map<GroupKind, std::shared_ptr<Group>> groups;

  // nullptr if the generation has no group of that kind (ep when disabled).
  const Group* get(GroupKind kind) const {
    auto it = groups.find(kind);
    return it == groups.end() ? nullptr : it->second.get();
  }
};

}  // namespace cohort::agent

#endif  // COHORT_AGENT_GROUP_H_
