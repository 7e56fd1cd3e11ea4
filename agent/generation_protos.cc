#include "agent/generation_protos.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/layout_proto.h"

namespace cohort::agent {
namespace {

int64_t Micros(absl::Duration d) { return absl::ToInt64Microseconds(d); }

}  // namespace

v1::CommState ToProto(CommState state) {
  switch (state) {
    case CommState::kCreating:
      return v1::COMM_STATE_CREATING;
    case CommState::kReady:
      return v1::COMM_STATE_READY;
    case CommState::kError:
      return v1::COMM_STATE_ERROR;
    case CommState::kAborted:
      return v1::COMM_STATE_ABORTED;
    case CommState::kDestroyed:
      return v1::COMM_STATE_DESTROYED;
  }
  return v1::COMM_STATE_UNSPECIFIED;
}

v1::GroupReport* AddGroupReport(const Communicator& comm,
                                google::protobuf::RepeatedPtrField<v1::GroupReport>* reports) {
  v1::GroupReport* g = reports->Add();
  g->set_kind(ToProto(comm.kind()));
  g->set_index(comm.group_index());
  g->set_rank_in_group(comm.rank());
  g->set_size(comm.size());
  g->set_create_us(Micros(comm.creation_timing().total));
  return g;
}

int64_t ExpectedSum(const Communicator& comm) {
  return std::accumulate(comm.ranks().begin(), comm.ranks().end(), int64_t{0});
}

absl::StatusOr<std::vector<GroupSpec>> GroupRequests(const v1::Plan& plan) {
  std::vector<GroupSpec> requests;
  for (const v1::GroupSet& set : plan.layout().group_sets()) {
    absl::StatusOr<GroupKind> kind = FromProto(set.kind());
    if (!kind.ok() || set.groups_size() != 1) {
      return absl::InvalidArgumentError(
          "malformed plan: each kind must carry exactly this rank's group");
    }
    if (*kind == GroupKind::kWorld) continue;
    GroupSpec spec;
    spec.kind = *kind;
    spec.group_index = set.groups(0).index();
    absl::StatusOr<RankList> ranks = RanksOf(set.groups(0), plan.world_size());
    if (!ranks.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("malformed plan: ", GroupKindName(*kind),
                                                     " group: ", ranks.status().message()));
    }
    spec.ranks = *std::move(ranks);
    auto pos = std::find(spec.ranks.begin(), spec.ranks.end(), plan.rank());
    if (pos == spec.ranks.end()) {
      return absl::InvalidArgumentError("malformed plan: rank not in its group");
    }
    spec.rank_in_group = static_cast<int>(pos - spec.ranks.begin());
    requests.push_back(std::move(spec));
  }
  return requests;
}

}  // namespace cohort::agent
