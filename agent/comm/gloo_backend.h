// Backend "gloo": one full-mesh gloo::rendezvous::Context per group (the world too) over TCP.
// This class connects the mesh (gloo_backend.cc); GlooCommunicator runs the ops over it
// (gloo_communicator.h).
//
// Gloo (Debian libgloo-dev, 2022 snapshot) has no cheap split: every group is a fresh context
// whose ranks exchange their listening addresses through the rendezvous store under the group's
// own prefix "<kind>/<index>/". CreateGroups forms all requested groups concurrently (one thread
// each): the time is spent waiting for peers, so the groups overlap instead of adding up. A group
// of one gets a context without pairs over a private in-process store: no network, no store keys.
//
// Timeouts: creation waits are bounded by the deadline (store waits directly; Gloo's pair connect
// waits 5x the context timeout, so that is set to a fifth of the time left). Every op passes its
// own timeout to Gloo (the *Options::setTimeout of each algorithm, waitSend/waitRecv for
// send/recv). When an op times out Gloo closes every pair of the context, so the communicator
// moves to kError.
//
// Abort: Gloo 2022 has no public abort. gloo::Context::closeConnections() (tcp::Pair::close: sets
// SO_LINGER 0 and closes the socket) stores no error in the pairs and wakes no waiting buffer; in
// a test, an all-reduce in flight then died on an enforce failure ("epoll_ctl: Bad file
// descriptor") from racing the closed fd: a crash risk, not an abort. What works is what the TCP
// transport context's signalException does (the path Gloo itself takes on an op timeout): store an
// IoException in every pair (tcp::Pair::signalExceptionExternal), which wakes every buffer and
// connect waiting on it and closes the socket, so a blocked op or connect throws at once and the
// peers see the connection drop. The backend signals the pairs in parallel (each close waits for
// a tick of Gloo's event loop) through the exported symbol (see gloo_communicator.cc).
//
// Connecting: the full mesh is connected by the backend itself (Gloo's protocol and store keys),
// not by gloo::rendezvous::Context::connectFullMesh, which hides its pairs until all are
// connected: CancelBuilds then reaches a connect waiting for a peer that will never come.
// (A wait on the rendezvous store is ended by the store: the coordinator fails the waits of a
// generation that failed.)
//
// Every Gloo exception is caught at this edge and becomes an absl::Status.
//
// SIGPIPE: Gloo writes without MSG_NOSIGNAL, so a write to a peer that closed (aborted, died)
// raises SIGPIPE, which by default kills the process. GlooBackend::Create sets SIGPIPE to SIG_IGN
// when its disposition is still the default (a program's own handler is left alone).

#ifndef COHORT_AGENT_COMM_GLOO_BACKEND_H_
#define COHORT_AGENT_COMM_GLOO_BACKEND_H_

#include <map>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/comm/backend.h"
#include "gloo/rendezvous/context.h"

namespace gloo::transport {
class Context;
class Device;
}  // namespace gloo::transport

namespace cohort::agent {

class GlooBackend final : public Backend {
 public:
  // Resolves the address and creates the TCP device (its event-loop thread is shared by every
  // context of this backend).
  // Errors: INVALID_ARGUMENT gloo_host does not resolve / gloo_interface does not exist;
  //         UNAVAILABLE Gloo could not create the device.
  static absl::StatusOr<std::unique_ptr<GlooBackend>> Create(BackendOptions options);

  absl::string_view name() const override { return "gloo"; }
  absl::StatusOr<std::unique_ptr<Communicator>> CreateWorld(const WorldSpec& spec,
                                                            RendezvousStore& store,
                                                            absl::Time deadline) override;
  absl::StatusOr<GroupSet> CreateGroups(Communicator& world,
                                        const std::vector<GroupRequest>& requests,
                                        RendezvousStore& store, absl::Time deadline) override;
  // Fails every context still connecting (Gloo's own failure path wakes its pairs), and every
  // one started before ResumeBuilds().
  void CancelBuilds(const std::string& reason) override;
  void ResumeBuilds() override;

 private:
  GlooBackend(BackendOptions options, std::shared_ptr<gloo::transport::Device> device)
      : Backend(std::move(options)), device_(std::move(device)) {}

  // Forms one group's context through `store` (already prefixed for the group).
  absl::StatusOr<std::unique_ptr<Communicator>> CreateGroup(const GroupSpec& group,
                                                            RendezvousStore& store,
                                                            absl::Time deadline);

  const std::shared_ptr<gloo::transport::Device> device_;
  // The transport contexts (every pair created) of the groups connecting now, so that
  // CancelBuilds can fail their pairs.
  absl::Mutex building_mu_;
  std::map<uint64_t, std::shared_ptr<gloo::transport::Context>> building_
      ABSL_GUARDED_BY(building_mu_);
  uint64_t next_building_ ABSL_GUARDED_BY(building_mu_) = 1;
  std::optional<std::string> cancelled_ ABSL_GUARDED_BY(building_mu_);
};

// MakeBackend("gloo", options).
absl::StatusOr<std::unique_ptr<Backend>> MakeGlooBackend(const BackendOptions& options);

}  // namespace cohort::agent

#endif  // COHORT_AGENT_COMM_GLOO_BACKEND_H_
