// Backend "nccl" (compiled only when COHORT_WITH_NCCL). Buffers are device pointers on the
// communicator's CUDA device; ops run on a stream the communicator owns and are complete when the
// call returns.
//
// Everything is non-blocking (ncclConfig_t.blocking = 0) and polled with ncclCommGetAsyncError
// against a deadline, so nothing can hang for NCCL's own ~10 minute timeouts: a stuck init or
// split is aborted at the deadline (ncclCommAbort, DEADLINE_EXCEEDED), a stuck op returns
// DEADLINE_EXCEEDED and the communicator moves to kError, Abort() from another thread wakes every
// poll of an op at once, and CancelBuilds() wakes every init or split (which then aborts its own
// communicator). NCCL has no completion callback, so these waits are polls (50 us doubling to
// 1 ms); the pause between polls is an absl::Mutex wait that Abort()/CancelBuilds() interrupt.
//
// World: world rank 0 creates the unique id (ncclGetUniqueId; the id's bootstrap listener lives
// in this process until every rank joined) and publishes it under "world/nccl_id"; the others
// read it. Groups: NcclGroupMode::kSplitFromWorld (default) splits the world once per request
// (colour = group index, key = rank in group; every world rank takes part in every split, so all
// ranks must pass the same kinds in the same order). kPerGroupUniqueId: group rank 0 creates an id
// and publishes "<kind>/<index>/nccl_id". Two ranks of one communicator cannot share a GPU
// (NCCL refuses "Duplicate GPU detected" up to 2.29).
//
// Every NCCL and CUDA call goes through an NcclApi (nccl_api.h): BackendOptions::nccl_api, or
// RealNcclApi() when that is null (production). Tests pass a double to run this code without a GPU.

#ifndef COHORT_AGENT_COMM_NCCL_BACKEND_H_
#define COHORT_AGENT_COMM_NCCL_BACKEND_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/comm/backend.h"

namespace cohort::agent {

class NcclApi;  // nccl_api.h

// "2.21.5": the NCCL version compiled in.
std::string NcclVersion();
// QueryDeviceIdentity (backend.h) when NCCL is compiled in: cudaDeviceGetPCIBusId and the UUID of
// cudaGetDeviceProperties, through RealNcclApi(). Clears CUDA's sticky "no device" error after
// failed calls.
DeviceIdentity NcclDeviceIdentity(int device);
// The same through `api` (tests).
DeviceIdentity NcclDeviceIdentity(NcclApi& api, int device);

class NcclBackend final : public Backend {
 public:
  // Uses options.nccl_api, or RealNcclApi() when it is null.
  explicit NcclBackend(BackendOptions options);

  // The NCCL and CUDA calls of this backend and of its communicators go here.
  NcclApi& api() const { return api_; }

  absl::string_view name() const override { return "nccl"; }
  std::string version() const override { return NcclVersion(); }
  // Errors (beyond Backend's): FAILED_PRECONDITION no usable GPU at spec.device_index;
  //         INVALID_ARGUMENT the published id has the wrong size.
  absl::StatusOr<std::unique_ptr<Communicator>> CreateWorld(const WorldSpec& spec,
                                                            RendezvousStore& store,
                                                            absl::Time deadline) override;
  // `world` must be an NCCL communicator of this process, with no op running during the call.
  // Errors (beyond Backend's): INVALID_ARGUMENT world is not an NCCL communicator.
  absl::StatusOr<GroupSet> CreateGroups(Communicator& world,
                                        const std::vector<GroupRequest>& requests,
                                        RendezvousStore& store, absl::Time deadline) override;

  // An init or split waiting for its peers stops polling at once, aborts its communicator
  // (ncclCommAbort, on the building thread: NCCL's handle is not shared across threads) and the
  // build ends with ABORTED "cancelled: <reason>"; builds started before ResumeBuilds() fail so
  // at once.
  void CancelBuilds(const std::string& reason) override;
  void ResumeBuilds() override;

 private:
  // Waits up to `d`, or until CancelBuilds(); true if cancelled.
  bool PauseUnlessCancelled(absl::Duration d);
  // ABORTED "<label>cancelled: <reason>" after a cancel, else `s` with `label` in front.
  absl::Status BuildError(const absl::Status& s, absl::string_view label);

  NcclApi& api_;
  absl::Mutex cancel_mu_;
  std::optional<std::string> cancelled_ ABSL_GUARDED_BY(cancel_mu_);
};

// MakeBackend("nccl", options).
absl::StatusOr<std::unique_ptr<Backend>> MakeNcclBackend(const BackendOptions& options);

// A fresh ncclUniqueId as its raw bytes (sizeof(ncclUniqueId) = 128). Works without a GPU. Starts
// NCCL's bootstrap listener in this process, which stays until the id is used.
// Errors: UNAVAILABLE / INTERNAL from ncclGetUniqueId (e.g. no usable network interface).
absl::StatusOr<std::string> NewNcclUniqueId();
// The same through `api` (RealNcclApi() above).
absl::StatusOr<std::string> NewNcclUniqueId(NcclApi& api);

// Store key of the world's id, and of a group's id in per-group-id mode.
inline constexpr absl::string_view kWorldNcclIdKey = "world/nccl_id";
std::string GroupNcclIdKey(GroupKind kind, int group_index);

}  // namespace cohort::agent

#endif  // COHORT_AGENT_COMM_NCCL_BACKEND_H_
