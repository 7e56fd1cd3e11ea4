// Communicator backends: one Backend object per agent process creates the world communicator and
// the model-parallel groups of one generation, and tears them down.
//
//   auto backend = MakeBackend("gloo", options);                      // once per process
//   auto world = (*backend)->CreateWorld({rank, world_size, gpu}, store, deadline);
//   auto groups = (*backend)->CreateGroups(**world, requests, store, deadline);
//   ... verify, run ...
//   (*backend)->DestroyAll(pointers, /*abort=*/failed);              // in parallel
//
// Store keys (relative to the store passed in; the caller prefixes generation/pool):
//   world/nccl_id             NCCL: world rank 0 publishes the unique id, others read it
//   <kind>/<index>/nccl_id    NCCL per-group-id mode: group rank 0 publishes, others read
//   <kind>/<index>/<key>      Gloo: the full-mesh rendezvous of group <kind>/<index> (world/0/...)

#ifndef COHORT_AGENT_COMM_BACKEND_H_
#define COHORT_AGENT_COMM_BACKEND_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/comm/communicator.h"
#include "agent/comm/rendezvous_store.h"

namespace cohort::agent {

class NcclApi;  // nccl_api.h, in builds with NCCL

enum class NcclGroupMode : int {
  // ncclCommSplit from the world, one split per group kind (colour = group index, key = rank in
  // group). No store traffic; every world rank takes part in every split.
  kSplitFromWorld,
  // A fresh unique id per group: group rank 0 creates it and publishes <kind>/<index>/nccl_id.
  kPerGroupUniqueId,
};

struct BackendOptions {
  // Gloo: the address the TCP transport binds to and advertises to peers. Must be an IP literal or
  // a name that resolves: Gloo aborts the process on an unresolvable hostname, so MakeBackend
  // resolves it first and refuses it with INVALID_ARGUMENT.
  std::string gloo_host = "127.0.0.1";
  // Gloo: a network interface name ("eth0", "lo"); when set it wins over gloo_host.
  std::string gloo_interface;
  NcclGroupMode nccl_group_mode = NcclGroupMode::kSplitFromWorld;
  // Default for every op of the communicators this backend creates (Communicator::Timeout).
  absl::Duration op_timeout = absl::Seconds(30);
  // DestroyAll: how long orderly teardown may take before falling back to abort.
  absl::Duration teardown_timeout = absl::Seconds(10);
  // For tests only: called at internal steps of CreateWorld/CreateGroups (Gloo: "connected
  // <kind>/<index>" once a group's context is up), possibly from several threads at once, so a
  // test can act (e.g. cancel the build) at that point. Leave empty otherwise.
  std::function<void(std::string_view step)> build_step_hook;
  // For tests only: the NCCL backend makes every NCCL and CUDA call through this instead of the
  // real libraries (null: RealNcclApi()), so its code runs on a test double without a GPU. Not
  // owned; must outlive the backend and every communicator it creates. Ignored by other backends.
  NcclApi* nccl_api = nullptr;
};

struct WorldSpec {
  int rank = 0;
  int world_size = 1;
  int device_index = 0;  // CUDA device (NCCL); ignored by Gloo and none
};

// One group this rank belongs to. ranks are global and ascending; ranks[rank_in_group] is this
// rank's world rank.
using GroupRequest = GroupSpec;

struct GroupSet {
  // Same order as the requests.
  std::vector<std::unique_ptr<Communicator>> comms;
  std::vector<GroupTiming> timings;
};

struct TeardownReport {
  absl::Status status;                 // first failure (OK if all succeeded), with a count
  std::vector<absl::Status> per_comm;  // same order as the input
  std::vector<absl::Duration> durations;
  absl::Duration total;  // wall time of the whole (parallel) teardown
};

class Backend {
 public:
  virtual ~Backend() = default;

  // "gloo", "nccl", "none".
  virtual absl::string_view name() const = 0;
  // Whether its communicators move data (false for "none": builds are not verified and checks
  // report groups READY without an all-reduce). Callers ask this, never compare names.
  virtual bool has_data_plane() const { return true; }
  // The version of the library under the backend ("2.21.5" for NCCL); empty when it has none
  // worth reporting.
  virtual std::string version() const { return ""; }
  const BackendOptions& options() const { return options_; }

  // Forms the world communicator (rank spec.rank of spec.world_size). Blocks until every rank has
  // joined or `deadline`.
  // Errors: INVALID_ARGUMENT bad spec; DEADLINE_EXCEEDED a rank did not show up in time (the
  //         message names the missing rank(s)/keys); UNAVAILABLE transport or store failure;
  //         FAILED_PRECONDITION the device cannot be used (NCCL: no GPU / bad device index).
  virtual absl::StatusOr<std::unique_ptr<Communicator>> CreateWorld(const WorldSpec& spec,
                                                                    RendezvousStore& store,
                                                                    absl::Time deadline) = 0;

  // Forms this rank's group of each requested kind. Every rank of `world` must call it with the
  // same kinds in the same order (each passing its own group of each kind). On failure every
  // communicator created so far is aborted and the error names the group ("tp/3: ...").
  // Errors: INVALID_ARGUMENT malformed requests (ValidateGroupRequests); FAILED_PRECONDITION the
  //         world is not ready; otherwise as CreateWorld.
  virtual absl::StatusOr<GroupSet> CreateGroups(Communicator& world,
                                                const std::vector<GroupRequest>& requests,
                                                RendezvousStore& store, absl::Time deadline) = 0;

  // Tears the communicators down in parallel, one thread each (inline if !release_waits()):
  // Abort() when `abort` (failure paths: a peer died, the generation moved on), otherwise
  // Destroy() with options().teardown_timeout, which falls back to abort when it runs out.
  // Returns once every thread has finished; null entries are skipped. The communicators stay
  // owned by the caller.
  virtual TeardownReport DestroyAll(std::vector<Communicator*> comms, bool abort);

  // Interrupts every CreateWorld/CreateGroups in progress (from any thread), and makes those
  // started later fail at once, until ResumeBuilds(): they end with ABORTED instead of waiting
  // for a peer that will never come. The default does nothing (builds end at their deadline).
  virtual void CancelBuilds(const std::string& reason) { (void)reason; }
  virtual void ResumeBuilds() {}

 protected:
  explicit Backend(BackendOptions options) : options_(std::move(options)) {}

 private:
  const BackendOptions options_;
};

// --- The registry: what this build compiled in. The agent asks these instead of testing
// COHORT_WITH_NCCL or calling CUDA itself, so every CUDA and NCCL call stays in the NCCL backend
// (made through its NcclApi, nccl_api.h).

// The names MakeBackend accepts in this build, preferred first: "nccl" (when compiled in),
// "gloo", "none".
std::vector<std::string> CompiledBackends();

// What identifies the agent's GPU to the coordinator and to people.
struct DeviceIdentity {
  std::string pci_bus_id;  // "0000:3b:00.0"
  std::string gpu_uuid;    // "GPU-1b2c...": stable across reboots and device renumbering
};
// The identity of CUDA device `device`, with what the CUDA runtime can tell: empty fields for a
// device < 0, without NCCL compiled in, or without a GPU or driver (the calls fail cleanly; they
// never need libcuda at link time). Never fails.
DeviceIdentity QueryDeviceIdentity(int device);

// The NCCL version compiled in ("2.21.5"); empty without NCCL.
std::string CompiledNcclVersion();

// Creates a backend by name: MakeBackend's signature, so that a test can hand the agent its own
// backends (a double of NCCL, say) in place of the real ones.
using BackendFactory = std::function<absl::StatusOr<std::unique_ptr<Backend>>(
    absl::string_view name, const BackendOptions& options)>;

// Creates the backend called `name`: "gloo", "nccl" or "none".
// Errors: UNIMPLEMENTED "nccl" in a build without NCCL; INVALID_ARGUMENT unknown name, or a
//         gloo_host that does not resolve.
absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(absl::string_view name,
                                                     const BackendOptions& options);

// Checks requests against the world: ranks ascending, unique and in [0, world size), this rank at
// ranks[rank_in_group], no kind twice, group_index >= 0.
// Errors: INVALID_ARGUMENT naming the request.
absl::Status ValidateGroupRequests(const Communicator& world,
                                   const std::vector<GroupRequest>& requests);

// Checks rank/world_size/device_index. Errors: INVALID_ARGUMENT.
absl::Status ValidateWorldSpec(const WorldSpec& spec);

// The world's group: kind world, index 0, ranks 0..world_size-1.
GroupSpec WorldGroup(const WorldSpec& spec);

}  // namespace cohort::agent

#endif  // COHORT_AGENT_COMM_BACKEND_H_
