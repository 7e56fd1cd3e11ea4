// GenerationRunner: the agent's data-plane half. It carries out what the coordinator asks of one
// agent's communicators (build a generation from its plan, verify it, tear it down, abort it,
// check it) over Backend and Communicator, and keeps what the engine and the coordinator read
// back: the READY generation's groups, failures and teardowns for the waiters, and the state this
// agent holds for a rejoin. It knows nothing of gRPC: plans, teardowns and checks come in as
// protos, reports and progress go out through a send callback, and each build's rendezvous store
// comes from a store factory. The Agent (agent.h) feeds it from its session; tests drive it
// directly (tests/generation_runner_test.cc).
//
// One generation, as Build() runs it:
//
//   plan --> [aborted or superseded already?] --yes--> skip (no report)
//              | no
//              v
//            world (reused, or CreateWorld) --> groups (CreateGroups) --> verify (SumOverGroup per
//            group, backends with a data plane) --> READY: groups() published, report ok
//              \______________________ any failure or abort ______________________/
//                                          v
//                       report not ok, communicators of the build released
//
// Threads: Build, TearDown, Check and ReleaseAll are "worker" calls: one at a time (the Agent's
// worker thread), in the order the coordinator sent them. AbortNow, NotePlan, CancelBuilds and
// everything else may be called from any thread at any time, concurrently with a worker call:
// AbortNow interrupts a build or an op in progress.
#ifndef COHORT_AGENT_GENERATION_RUNNER_H_
#define COHORT_AGENT_GENERATION_RUNNER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/comm/backend.h"
#include "agent/comm/rendezvous_store.h"
#include "agent/group.h"
#include "cohort/v1/agent.pb.h"

namespace cohort::agent {

struct GenerationRunnerOptions {
  // Names this agent in log lines.
  std::string identity;
  // CUDA device index for NCCL; -1 for CPU-only agents (the backends get device 0).
  int device = -1;
  // The address peers reach this agent at (Gloo binds here).
  std::string host_address = "127.0.0.1";
  BackendOptions backend_options;
  // Whether Check() may run its all-reduces (AgentOptions::allow_checks).
  bool allow_checks = false;
  // For tests: AgentOptions::build_step_hook.
  std::function<void(std::string_view step)> build_step_hook;
  // Creates the backends; empty: MakeBackend. The seam a backend double plugs into.
  BackendFactory backend_factory;
};

class GenerationRunner {
 public:
  // Where the runner's messages to the coordinator go: generation reports and progress, teardown
  // reports, group states. Called from the thread of the call that produced the message; must
  // not block for long and must not call back into the runner.
  using SendFn = std::function<void(const v1::AgentMessage& message)>;
  // The rendezvous store of one build: the keys of generation `generation` of pool `pool`. The
  // runner cancels it (RendezvousStore::Cancel) when the build is aborted.
  using StoreFactory =
      std::function<std::unique_ptr<RendezvousStore>(const std::string& pool, int64_t generation)>;

  GenerationRunner(GenerationRunnerOptions options, StoreFactory stores, SendFn send);
  // Releases what is still held (ReleaseAll) after cutting a build short. No worker call may be
  // running.
  ~GenerationRunner();
  GenerationRunner(const GenerationRunner&) = delete;
  GenerationRunner& operator=(const GenerationRunner&) = delete;

  const GenerationRunnerOptions& options() const { return options_; }

  // --- Worker calls (one at a time) ------------------------------------------------------------
  // Builds and verifies the plan's generation and sends its GenerationReport (progress on the
  // way). A failure is reported (ok=false with the error) and also ends WaitForReady for that
  // generation with ABORTED. A plan aborted (AbortNow) or superseded (NotePlan of a newer one)
  // before it started is not built and sends nothing.
  void Build(const v1::Plan& plan);
  // Destroys (or, with teardown.abort(), aborts) the model-parallel groups, and the world too for
  // DESTROY_SCOPE_ALL, and sends the TeardownReport. An abort reports as soon as every
  // communicator is interrupted and frees them after.
  void TearDown(const v1::Teardown& teardown);
  // Answers a check with GroupStates: one all-reduce per group of the READY generation (when
  // allow_checks and the backend has a data plane); an empty answer if that generation is not
  // the one held.
  void Check(const v1::Check& check);
  // The orderly teardown of everything still held, without reports (the agent is stopping).
  void ReleaseAll();

  // --- Any thread ------------------------------------------------------------------------------
  // The coordinator aborted this agent's communicators (teardown.abort()): interrupts every
  // operation and the build in progress at once, marks generation_status() ABORTED and runs the
  // OnAbort callbacks. The communicators are released by the TearDown that follows.
  void AbortNow(const v1::Teardown& teardown);
  // The coordinator sent a plan for `generation`: a build of an older generation is obsolete (its
  // peers may have given it up) and is cancelled.
  void NotePlan(int64_t generation);
  // Cuts the build in progress short with ABORTED and `reason`, and every later one until the
  // next Build starts (the agent is stopping: ReleaseAll follows).
  void CancelBuilds(const std::string& reason);
  // Sends GroupStates for the communicators of the READY generation whose state changed since
  // the last report (an asynchronous error, an abort), so that inspection shows live states.
  void ReportGroupStateChanges();

  // What this agent holds, for a join after a lost session or a coordinator restart.
  v1::HeldState Held() const;
  // The rank and world size the coordinator gave this agent (a join, a rank assignment, a plan).
  void SetAssignment(int rank, int world_size);
  void SetRank(int rank);
  int rank() const;
  int world_size() const;
  // The last READY generation (0 before the first).
  int64_t ready_generation() const;
  // The newest generation this agent built or is building.
  int64_t current_generation() const;
  // The session with the coordinator is over for good: waiters for a generation stop waiting and
  // get `why` (UNAVAILABLE "session ended" when OK).
  void SessionEnded(absl::Status why);

  // As Agent (agent.h): HeldCommunicators, groups, OnAbort, generation_status, WaitForReady,
  // WaitForTeardown.
  int HeldCommunicators() const;
  std::shared_ptr<const GroupMap> groups() const;
  void OnAbort(std::function<void(const absl::Status&)> callback);
  absl::Status generation_status() const;
  // Errors: the generation's failure (ABORTED with the reason); DEADLINE_EXCEEDED; the session's
  // end (SessionEnded).
  absl::StatusOr<int64_t> WaitForReady(absl::Duration timeout, int64_t min_generation);
  // Errors: DEADLINE_EXCEEDED.
  absl::Status WaitForTeardown(absl::Duration timeout, int64_t generation, bool world_too);

 private:
  // Ends the build in progress (if any) at once with ABORTED and `reason`: its backend calls and
  // its rendezvous-store waits.
  void CancelBuildLocked(const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Backends are created on first use and kept: one per (name, init mode).
  absl::StatusOr<Backend*> GetBackend(const std::string& name,
                                      v1::InitMode mode = v1::INIT_MODE_SPLIT);
  // Releases `comms` through their backend (in parallel). Errors: the backend's, or the first
  // teardown failure.
  absl::Status Release(const std::vector<std::shared_ptr<Communicator>>& comms, bool abort);
  void Send(const v1::AgentMessage& message) { send_(message); }
  void Step(std::string_view step) {
    if (options_.build_step_hook) options_.build_step_hook(step);
  }

  const GenerationRunnerOptions options_;
  const StoreFactory stores_;
  const SendFn send_;

  mutable absl::Mutex mu_;
  int rank_ ABSL_GUARDED_BY(mu_) = -1;
  int world_size_ ABSL_GUARDED_BY(mu_) = 0;
  bool session_over_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status session_end_ ABSL_GUARDED_BY(mu_);
  // Generation bookkeeping for waiters.
  int64_t ready_generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int64_t, absl::Status> failed_ ABSL_GUARDED_BY(mu_);
  int64_t torn_down_generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool world_torn_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status generation_status_ ABSL_GUARDED_BY(mu_);
  // (generation, kind) -> the communicator state last reported after READY.
  std::map<std::pair<int64_t, int>, CommState> reported_states_ ABSL_GUARDED_BY(mu_);
  // Communicators. Worker calls own their life cycle; AbortNow may interrupt them concurrently.
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
  // and is cancelled.
  int64_t latest_plan_generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool abort_building_ ABSL_GUARDED_BY(mu_) = false;
  // The rendezvous store of the build in progress (owned by Build), so that an abort can end its
  // waits for peers.
  RendezvousStore* building_store_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<std::function<void(const absl::Status&)>> abort_callbacks_ ABSL_GUARDED_BY(mu_);

  absl::Mutex backends_mu_;
  std::map<std::string, std::unique_ptr<Backend>> backends_ ABSL_GUARDED_BY(backends_mu_);
};

}  // namespace cohort::agent

#endif  // COHORT_AGENT_GENERATION_RUNNER_H_
