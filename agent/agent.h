// Agent: one per GPU. Joins a pool, holds the session with the coordinator, builds and verifies
// each generation's communicators from the plans it receives, reports, and tears them down.
//
// Threads: a session thread reads coordinator messages (aborts act at once, from this thread);
// a worker thread carries out plans and teardowns in order; a heartbeat thread keeps the
// session alive. Everything the engine sees goes through groups(), WaitForReady() and the
// failure callback.
#ifndef COHORT_AGENT_AGENT_H_
#define COHORT_AGENT_AGENT_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/comm/backend.h"
#include "agent/coordinator_client.h"
#include "agent/group.h"
#include "agent/identity.h"
#include "cohort/v1/agent.pb.h"

namespace cohort::agent {

struct AgentOptions {
  // host:port of the coordinator. Ignored when `channel` is set (tests use in-process channels).
  std::string coordinator_address = "127.0.0.1:7070";
  std::shared_ptr<grpc::Channel> channel;
  std::string pool = "default";
  // Stable identity (pod name, host:gpu). Empty: from identity_provider.
  std::string identity;
  // Where the identity comes from when `identity` is empty (identity.h); null:
  // HostnameDeviceIdentity(device), "<hostname>:<device>".
  std::shared_ptr<IdentityProvider> identity_provider;
  // Per-process incarnation. Empty: generated (pid + start time + random).
  std::string incarnation;
  std::optional<int> rank_hint;
  // CUDA device index for NCCL; -1 for CPU-only agents.
  int device = -1;
  // Backends offered to the coordinator; empty: every backend compiled in.
  std::vector<std::string> backends;
  // The address peers reach this agent at (Gloo binds here).
  std::string host_address = "127.0.0.1";
  // How long Start() keeps retrying an unreachable coordinator, and one RPC's timeout.
  absl::Duration connect_timeout = absl::Seconds(60);
  absl::Duration rpc_timeout = absl::Seconds(10);
  BackendOptions backend_options;
  // Whether the coordinator's Check (cohortctl check) may run its all-reduces on this agent's
  // communicators. An engine that embeds the agent drives the same communicators itself, and a
  // check collective interleaved with its own would corrupt both: embedded agents refuse checks
  // unless the engine allows them (and then it must keep its own collectives off those
  // communicators while a check runs). The cohort-agent binary, which owns its communicators
  // alone, allows them. A refused check is answered with every group's error saying so.
  bool allow_checks = false;
  // For tests only: called on the worker thread at each step of building a generation, so that a
  // test can inject an abort exactly there: "world" (before the world communicator is created),
  // "groups" (before the model-parallel groups), "groups built" (after they were created, before
  // they are published), "verify <kind>" (before each verification all-reduce) and "report"
  // (before the generation is declared READY). Backends add their own steps through
  // BackendOptions::build_step_hook (Gloo: "connected <kind>/<index>", from its group threads).
  // The hook runs without any of the agent's locks held and may block. Leave empty otherwise.
  std::function<void(std::string_view step)> build_step_hook;
};

class Agent {
 public:
  // Joins the pool (retrying transport failures with backoff and jitter until connect_timeout)
  // and starts the session. Errors: the identity provider's error; the coordinator's refusal (e.g. ALREADY_EXISTS for a
  // duplicate identity); UNAVAILABLE if it stays unreachable.
  static absl::StatusOr<std::unique_ptr<Agent>> Start(AgentOptions options);
  // Stop(): orderly teardown of every communicator, then the session ends.
  ~Agent();
  void Stop();

  const AgentOptions& options() const { return options_; }
  // -1 while a standby.
  int rank() const;
  int world_size() const;
  CoordinatorClient& client() { return *client_; }

  // Waits until a generation >= min_generation is READY here and returns it. Errors: that
  // generation's failure (ABORTED/INTERNAL with the reason); DEADLINE_EXCEEDED.
  absl::StatusOr<int64_t> WaitForReady(absl::Duration timeout, int64_t min_generation = 1);
  // Waits until generation `generation` was torn down here (model-parallel groups, and the
  // world too if `world_too`). Errors: DEADLINE_EXCEEDED.
  absl::Status WaitForTeardown(absl::Duration timeout, int64_t generation, bool world_too);
  // Blocks until Stop() or until the session is lost for good; returns why it ended.
  absl::Status Wait();

  // How many communicators this agent holds now (the world and the model-parallel groups, READY
  // or being built). For inspection and tests.
  int HeldCommunicators() const;
  // The current generation's groups; nullptr while none is READY.
  std::shared_ptr<const GroupMap> groups() const;
  // Called (from the session thread) when the coordinator aborts this agent's communicators.
  void OnAbort(std::function<void(const absl::Status&)> callback);
  // The status of the generation the engine uses: OK while READY; ABORTED (with the reason)
  // once the coordinator aborted it.
  absl::Status generation_status() const;

 private:
  explicit Agent(AgentOptions options);
  absl::Status JoinWithRetry(absl::Time deadline);
  void SessionLoop();
  void WorkerLoop();
  void HeartbeatLoop();
  void Dispatch(const v1::CoordinatorMessage& message);
  void BuildGeneration(const v1::Plan& plan);
  void TearDown(const v1::Teardown& teardown);
  void AbortNow(const v1::Teardown& teardown);
  // Ends the build in progress (if any) at once with ABORTED and `reason`: its backend calls
  // and its rendezvous-store waits.
  void CancelBuildLocked(const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CheckGroups(const v1::Check& check);
  // Sends GroupStates for communicators whose state changed since the last report (an error or
  // abort after READY), so inspection shows the live state of every group.
  void ReportGroupStateChanges();
  // What this agent holds, for a join after a lost session or a coordinator restart.
  v1::HeldState Held() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Send(const v1::AgentMessage& message);
  // Backends are created on first use and kept: one per (name, init mode).
  absl::StatusOr<Backend*> GetBackend(const std::string& name,
                                      v1::InitMode mode = v1::INIT_MODE_SPLIT);

  const AgentOptions options_;
  std::unique_ptr<CoordinatorClient> client_;

  mutable absl::Mutex mu_;
  std::string session_id_ ABSL_GUARDED_BY(mu_);
  // Shared: Send() may write while the session thread replaces a broken session.
  std::shared_ptr<CoordinatorClient::Session> session_ ABSL_GUARDED_BY(mu_);
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = absl::Seconds(1);
  int rank_ ABSL_GUARDED_BY(mu_) = -1;
  int world_size_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status ended_ ABSL_GUARDED_BY(mu_);
  bool session_over_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<v1::CoordinatorMessage> work_ ABSL_GUARDED_BY(mu_);
  // Generation bookkeeping for waiters.
  int64_t ready_generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int64_t, absl::Status> failed_ ABSL_GUARDED_BY(mu_);
  int64_t torn_down_generation_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status generation_status_ ABSL_GUARDED_BY(mu_);
  // (generation, kind) -> the communicator state last reported after READY.
  std::map<std::pair<int64_t, int>, CommState> reported_states_ ABSL_GUARDED_BY(mu_);
  bool world_torn_down_ ABSL_GUARDED_BY(mu_) = false;
  // Communicators. The worker owns their life cycle; AbortNow may abort them concurrently.
  std::shared_ptr<Communicator> world_ ABSL_GUARDED_BY(mu_);
  int64_t world_generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::string world_backend_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Communicator>> groups_comms_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const GroupMap> groups_ ABSL_GUARDED_BY(mu_);
  // The plan and report of the READY generation (for HeldState).
  v1::Plan ready_plan_ ABSL_GUARDED_BY(mu_);
  v1::GenerationReport ready_report_ ABSL_GUARDED_BY(mu_);
  int64_t building_generation_ ABSL_GUARDED_BY(mu_) = 0;
  // The highest generation the coordinator told this agent to abort: its plan, if still
  // queued, is not built.
  int64_t aborted_generation_ ABSL_GUARDED_BY(mu_) = 0;
  // The highest generation the coordinator sent a plan for: a build of an older one is obsolete
  // (the coordinator moved on; its peers may have given it up) and is cancelled.
  int64_t latest_plan_generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool abort_building_ ABSL_GUARDED_BY(mu_) = false;
  // The rendezvous store of the build in progress (owned by BuildGeneration), so that an abort
  // can end its waits for peers.
  CoordinatorRendezvousStore* building_store_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<std::function<void(const absl::Status&)>> abort_callbacks_ ABSL_GUARDED_BY(mu_);

  absl::Mutex backends_mu_;
  std::map<std::string, std::unique_ptr<Backend>> backends_ ABSL_GUARDED_BY(backends_mu_);

  std::thread session_thread_;
  std::thread worker_thread_;
  std::thread heartbeat_thread_;
};

// The sum of `value` over the group (verification): comm.SumOverGroup(value), which takes host
// memory for Gloo and stages through device memory for NCCL. Errors: as AllReduce.
absl::StatusOr<int64_t> SumOverGroup(Communicator& comm, int64_t value);

}  // namespace cohort::agent

#endif  // COHORT_AGENT_AGENT_H_
