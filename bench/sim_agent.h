// SimAgent: one simulated agent for the scale benchmarks, many per process. It is the agent's
// own control plane (the real Session: join with backoff, the session stream, heartbeats,
// rejoin; the real GenerationRunner over the "none" backend: plan -> build -> GenerationReport,
// abort, teardown), wired like agent::Agent but cheaper per instance:
//   * agent::Agent costs three threads (session reader, worker, its own TimerQueue) and, unless
//     given one, its own channel: 16,384 agents are 49,152 threads, whose stacks and guard pages
//     alone are ~98,000 memory mappings, over Linux's default vm.max_map_count (65,530);
//   * a SimAgent costs one thread (the Session's reader): plans, teardowns and checks run inline
//     on it (with backend none a build never waits for peers, so the reader is not held up), the
//     heartbeats run on a TimerQueue shared by many SimAgents, and the channel is shared.
// What differs from Agent is only that wiring (the worker thread and Agent::OnMessage's queue);
// every byte on the wire comes from the agent's code.
//
// Every event a benchmark waits for (joined, plan, READY, abort, teardown) is counted in a shared
// SimTracker, with the time it happened, so that the benchmark can wait with a deadline and read
// per-agent latencies.
#ifndef COHORT_BENCH_SIM_AGENT_H_
#define COHORT_BENCH_SIM_AGENT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/coordinator_client.h"
#include "agent/generation_runner.h"
#include "agent/session.h"
#include "common/timer_queue.h"

namespace cohort::bench {

// Counts per generation of what the simulated agents saw, with the times.
class SimTracker {
 public:
  enum class Event { kPlan, kReady, kAbort, kTornDown };
  void Record(Event event, int64_t generation, absl::Time at);
  // Waits until `count` events of `event` for `generation` were recorded, at most until
  // `deadline`; returns how many were recorded.
  int WaitFor(Event event, int64_t generation, int count, absl::Time deadline);
  // The times recorded for (event, generation).
  std::vector<absl::Time> Times(Event event, int64_t generation);
  // The largest plan received (serialized bytes).
  void NotePlanBytes(size_t bytes);
  size_t max_plan_bytes();

 private:
  absl::Mutex mu_;
  std::map<std::pair<Event, int64_t>, std::vector<absl::Time>> times_ ABSL_GUARDED_BY(mu_);
  size_t max_plan_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

class SimAgent final : private agent::SessionListener {
 public:
  // `channel` and `timers` (started, real clock) are shared and must outlive the agent.
  SimAgent(std::string identity, std::string pool, int rank_hint,
           std::shared_ptr<grpc::Channel> channel, TimerQueue* timers, SimTracker* tracker);
  ~SimAgent() override;

  // Session::Join() then Session::Start(). Errors: as Session::Join.
  absl::Status JoinAndStart();
  // Cuts the session at once, like a killed process: the stream is cancelled, nothing more is
  // sent. Stop() must follow (it joins the session thread).
  void Kill();
  // Ends the session (the agent stops).
  void Stop();
  int rank() const { return runner_.rank(); }
  int HeldCommunicators() const { return runner_.HeldCommunicators(); }

 private:
  v1::HeldState Held() override { return runner_.Held(); }
  void OnJoined(const v1::JoinResponse& response) override;
  void OnMessage(const v1::CoordinatorMessage& message) override;
  int64_t HeartbeatGeneration() override { return runner_.ready_generation(); }
  void AfterHeartbeat() override { runner_.ReportGroupStateChanges(); }
  void OnSessionLost(const absl::Status& why) override;
  void OnSessionOver(const absl::Status& why) override { runner_.SessionEnded(why); }

  SimTracker* const tracker_;
  agent::CoordinatorClient client_;
  agent::GenerationRunner runner_;
  std::unique_ptr<agent::Session> session_;
};

}  // namespace cohort::bench

#endif  // COHORT_BENCH_SIM_AGENT_H_
