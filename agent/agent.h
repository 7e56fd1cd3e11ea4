// Agent: one per GPU. Joins a pool, holds the session with the coordinator, builds and verifies
// each generation's communicators from the plans it receives, reports, and tears them down.
//
// A facade over two parts with their own tests: the Session (session.h: join with backoff, the
// session stream, heartbeats, rejoin) and the GenerationRunner (generation_runner.h: build,
// verify, teardown, abort and check over Backend, no gRPC). The Agent wires them: coordinator
// messages from the session go to the runner, the runner's reports go out on the session.
//
// Threads: the session thread reads coordinator messages (aborts act at once, from this thread);
// a worker thread carries out plans, teardowns and checks in order; heartbeats run on a timer
// thread. Everything the engine sees goes through groups(), WaitForReady() and the failure
// callback.
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
#include "agent/agent_health.h"
#include "agent/comm/backend.h"
#include "agent/coordinator_client.h"
#include "agent/generation_runner.h"
#include "agent/group.h"
#include "agent/identity.h"
#include "agent/session.h"
#include "cohort/v1/agent.pb.h"
#include "common/timer_queue.h"

namespace cohort::agent {

struct AgentOptions {
  // host:port of the coordinator. Ignored when `channel` is set (tests use in-process channels).
  std::string coordinator_address = "127.0.0.1:7070";
  std::shared_ptr<grpc::Channel> channel;
  // How the channel to the coordinator is secured (common/transport_security.h; insecure by
  // default for embedding, while cohort-agent asks for --insecure or TLS flags). Ignored when
  // `channel` is set.
  TransportSecurityOptions transport_security;
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
  // Creates the backends; empty: MakeBackend. For tests: a backend double (e.g. of NCCL).
  BackendFactory backend_factory;
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

class Agent : private SessionListener {
 public:
  // Joins the pool (retrying transport failures with backoff and jitter until connect_timeout)
  // and starts the session. Errors: the identity provider's error; the coordinator's refusal
  // (e.g. ALREADY_EXISTS for a duplicate identity); UNAVAILABLE if it stays unreachable.
  static absl::StatusOr<std::unique_ptr<Agent>> Start(AgentOptions options);
  // Stop(): orderly teardown of every communicator, then the session ends.
  ~Agent() override;
  // Ends the session and tears every communicator down in order. The coordinator sees the
  // session end and counts this agent lost (a failure); to go on purpose, call Leave().
  void Stop();
  // A planned leave (SIGTERM in a pod that is going away): tells the coordinator this agent is
  // leaving and waits for its answer (at most `timeout`), then Stop(). The coordinator records
  // the member as LEFT, not FAILED; the pool goes DEGRADED with reason "left" and refills.
  // Returns whether the coordinator acknowledged: errors as Session::Leave (the agent stops
  // all the same, and the coordinator then counts it lost).
  absl::Status Leave(const std::string& reason, absl::Duration timeout);

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
  // A snapshot for the agent's health (agent_health.h, which says what "broken" means): where
  // the session stands, the rank and the READY generation. Takes the agent's, the session's and
  // the generation runner's locks in turn and waits for nothing else, so a call that does not
  // return within a deadline shows a wedged control path. Any thread, also after Stop().
  AgentObservation Observe() const;

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
  // Carries out plans, teardowns and checks in the order they came (the worker thread).
  void WorkerLoop();

  // SessionListener: the session's side of the wiring.
  v1::HeldState Held() override;
  void OnJoined(const v1::JoinResponse& response) override;
  void OnMessage(const v1::CoordinatorMessage& message) override;
  int64_t HeartbeatGeneration() override;
  void AfterHeartbeat() override;
  void OnSessionLost(const absl::Status& why) override;
  void OnSessionOver(const absl::Status& why) override;

  const AgentOptions options_;
  std::unique_ptr<CoordinatorClient> client_;
  std::unique_ptr<GenerationRunner> runner_;
  // Declared before the session: destroyed after it (the session cancels its timers first).
  std::unique_ptr<TimerQueue> timers_;
  std::unique_ptr<Session> session_;

  mutable absl::Mutex mu_;
  // Plans, teardowns and checks for the worker, in the order they came.
  std::deque<v1::CoordinatorMessage> work_ ABSL_GUARDED_BY(mu_);
  // Stop() was called, or the session is over: the worker ends.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  // Leave() was called (the coordinator's SessionClosed is then the expected answer).
  bool leaving_ ABSL_GUARDED_BY(mu_) = false;
  std::thread worker_thread_;
};

// The sum of `value` over the group (verification): comm.SumOverGroup(value), which takes host
// memory for Gloo and stages through device memory for NCCL. Errors: as AllReduce.
absl::StatusOr<int64_t> SumOverGroup(Communicator& comm, int64_t value);

}  // namespace cohort::agent

#endif  // COHORT_AGENT_AGENT_H_
