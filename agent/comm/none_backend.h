// Backend "none": the control protocol without a data plane, for scale simulation and for agents
// on machines without a usable transport. Creation and teardown succeed at once with the right
// rank/size/ranks and touch neither network nor store. Ops on a size-1 group do what they would
// do anywhere (copies; nothing to exchange); ops on larger groups return UNIMPLEMENTED ("backend
// none has no data plane") and leave the communicator ready. Inventing results for ranks that
// never contributed would make verification pass vacuously, so it does not.

#ifndef COHORT_AGENT_COMM_NONE_BACKEND_H_
#define COHORT_AGENT_COMM_NONE_BACKEND_H_

#include <memory>

#include "agent/comm/backend.h"
#include "agent/comm/communicator.h"

namespace cohort::agent {

class NoneCommunicator final : public Communicator {
 public:
  // Returns a ready communicator.
  static std::unique_ptr<NoneCommunicator> Create(GroupSpec group, absl::Duration default_timeout,
                                                  absl::string_view backend_name = "none");
  ~NoneCommunicator() override;

  absl::string_view backend_name() const override { return backend_name_; }
  bool has_data_plane() const override { return false; }
  void* raw_handle() const override { return nullptr; }

 protected:
  absl::Status DoAllReduce(void* buf, size_t count, DataType dtype, ReduceOp op,
                           absl::Duration timeout) override;
  absl::Status DoAllGather(const void* in, void* out, size_t count, DataType dtype,
                           absl::Duration timeout) override;
  absl::Status DoBroadcast(void* buf, size_t count, DataType dtype, int root,
                           absl::Duration timeout) override;
  absl::Status DoBarrier(absl::Duration timeout) override;
  absl::Status DoSend(const void* buf, size_t count, DataType dtype, int peer,
                      absl::Duration timeout) override;
  absl::Status DoRecv(void* buf, size_t count, DataType dtype, int peer,
                      absl::Duration timeout) override;
  absl::Status DoAllToAll(const void* in, void* out, size_t count_per_peer, DataType dtype,
                          absl::Duration timeout) override;
  void Interrupt() override {}
  bool release_waits() const override { return false; }
  absl::Status Release(bool, absl::Time) override { return absl::OkStatus(); }

 private:
  NoneCommunicator(GroupSpec group, absl::Duration default_timeout, absl::string_view backend_name)
      : Communicator(std::move(group), default_timeout), backend_name_(backend_name) {}
  absl::Status NoDataPlane() const;

  const std::string backend_name_;
};

class NoneBackend final : public Backend {
 public:
  explicit NoneBackend(BackendOptions options) : Backend(std::move(options)) {}

  absl::string_view name() const override { return "none"; }
  bool has_data_plane() const override { return false; }
  // Errors: INVALID_ARGUMENT bad spec.
  absl::StatusOr<std::unique_ptr<Communicator>> CreateWorld(const WorldSpec& spec,
                                                            RendezvousStore& store,
                                                            absl::Time deadline) override;
  // Errors: INVALID_ARGUMENT bad requests; FAILED_PRECONDITION world not ready.
  absl::StatusOr<GroupSet> CreateGroups(Communicator& world,
                                        const std::vector<GroupRequest>& requests,
                                        RendezvousStore& store, absl::Time deadline) override;
};

}  // namespace cohort::agent

#endif  // COHORT_AGENT_COMM_NONE_BACKEND_H_
