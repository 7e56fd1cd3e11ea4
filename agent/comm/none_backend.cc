#include "agent/comm/none_backend.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace cohort::agent {

std::unique_ptr<NoneCommunicator> NoneCommunicator::Create(GroupSpec group,
                                                           absl::Duration default_timeout,
                                                           absl::string_view backend_name) {
  std::unique_ptr<NoneCommunicator> comm(
      new NoneCommunicator(std::move(group), default_timeout, backend_name));
  GroupTiming timing = comm->creation_timing();
  timing.method = "none";
  comm->MarkReady(std::move(timing));
  return comm;
}

NoneCommunicator::~NoneCommunicator() { ReleaseOnDestruction(); }

absl::Status NoneCommunicator::NoDataPlane() const {
  return absl::UnimplementedError(
      absl::StrCat(Describe(), "backend none has no data plane (group of ", size(), ")"));
}

// On a group of one every collective is the identity (or a copy into `out`).
absl::Status NoneCommunicator::DoAllReduce(void*, size_t, DataType, ReduceOp, absl::Duration) {
  return size() == 1 ? absl::OkStatus() : NoDataPlane();
}

absl::Status NoneCommunicator::DoAllGather(const void* in, void* out, size_t count, DataType dtype,
                                           absl::Duration) {
  if (size() != 1) return NoDataPlane();
  if (in != out) std::memmove(out, in, count * DataTypeSize(dtype));
  return absl::OkStatus();
}

absl::Status NoneCommunicator::DoBroadcast(void*, size_t, DataType, int, absl::Duration) {
  return size() == 1 ? absl::OkStatus() : NoDataPlane();
}

absl::Status NoneCommunicator::DoBarrier(absl::Duration) {
  return size() == 1 ? absl::OkStatus() : NoDataPlane();
}

// Unreachable on a group of one (the only peer would be self, refused by the base class).
absl::Status NoneCommunicator::DoSend(const void*, size_t, DataType, int, absl::Duration) {
  return NoDataPlane();
}

absl::Status NoneCommunicator::DoRecv(void*, size_t, DataType, int, absl::Duration) {
  return NoDataPlane();
}

absl::Status NoneCommunicator::DoAllToAll(const void* in, void* out, size_t count_per_peer,
                                          DataType dtype, absl::Duration) {
  if (size() != 1) return NoDataPlane();
  if (in != out) std::memmove(out, in, count_per_peer * DataTypeSize(dtype));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Communicator>> NoneBackend::CreateWorld(const WorldSpec& spec,
                                                                       RendezvousStore&,
                                                                       absl::Time) {
  if (absl::Status s = ValidateWorldSpec(spec); !s.ok()) return s;
  return NoneCommunicator::Create(WorldGroup(spec), options().op_timeout);
}

absl::StatusOr<GroupSet> NoneBackend::CreateGroups(Communicator& world,
                                                   const std::vector<GroupRequest>& requests,
                                                   RendezvousStore&, absl::Time) {
  if (absl::Status s = ValidateGroupRequests(world, requests); !s.ok()) return s;
  GroupSet set;
  for (const GroupRequest& request : requests) {
    set.comms.push_back(NoneCommunicator::Create(request, options().op_timeout));
    set.timings.push_back(set.comms.back()->creation_timing());
  }
  return set;
}

}  // namespace cohort::agent
