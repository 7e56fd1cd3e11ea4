// AgentHealthServer: cohort-agent's --health-listen port. A plaintext gRPC server with
// grpc.health.v1 and nothing else (gRPC's default health service; no reflection, every other
// method UNIMPLEMENTED), whose statuses AgentHealth (agent_health.h) decides: "" for liveness,
// "cohort.agent.ready" for readiness.
//
// Plaintext on purpose: the kubelet's gRPC probe speaks no TLS and has no client certificate
// (the coordinator's --health-listen does the same). It reveals nothing but SERVING or
// NOT_SERVING for those two names.
//
// Threads: an observer calls the observe function (Agent::Observe) every probe_interval and
// records when each call began and ended; a publisher evaluates AgentHealth every
// probe_interval (and after each observation) and hands changed statuses to gRPC's health
// service. The publisher never calls into the agent, so a wedged agent (an observation that
// does not return) still gets its NOT_SERVING published. gRPC answers each probe from the
// statuses last published, without calling into the agent: a probe costs the agent nothing.
#ifndef COHORT_AGENT_AGENT_HEALTH_SERVER_H_
#define COHORT_AGENT_AGENT_HEALTH_SERVER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/agent_health.h"
#include "common/clock.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/server.h"

namespace cohort::agent {

struct AgentHealthServerOptions {
  // IP:PORT to listen on, plaintext (port 0: any; read it back with port()).
  std::string listen_address;
  // How often the agent is observed and the statuses evaluated.
  absl::Duration probe_interval = absl::Seconds(1);
  // An observation outstanding this long means the agent is wedged (agent_health.h).
  absl::Duration wedge_timeout = AgentHealth::kDefaultWedgeTimeout;
  // Measures observations against wedge_timeout; null: the real clock. The waits between
  // rounds are real time.
  Clock* clock = nullptr;
};

class AgentHealthServer {
 public:
  // Binds and serves: live, not ready (joining) until Attach(). Call before Agent::Start, so
  // that probes are answered while the first join is retried.
  // Errors: UNAVAILABLE if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<AgentHealthServer>> Start(AgentHealthServerOptions options);
  // Stop().
  ~AgentHealthServer();
  AgentHealthServer(const AgentHealthServer&) = delete;
  AgentHealthServer& operator=(const AgentHealthServer&) = delete;

  // Starts observing: `observe` (e.g. Agent::Observe) is called every probe_interval from the
  // observer thread until Stop(); what it observes must outlive that. Call once.
  void Attach(std::function<AgentObservation()> observe);
  // The process gives up (the first join failed, the session is lost): NOT_SERVING for both
  // names, published before this returns. Final.
  void MarkBroken(const std::string& reason);
  // Stops observing and serving (gRPC then answers NOT_SERVING until the port closes).
  // Idempotent. Waits for an observation in progress to return.
  void Stop();

  int port() const { return port_; }
  // "IP:PORT" with the bound port.
  std::string address() const;

 private:
  explicit AgentHealthServer(AgentHealthServerOptions options);
  void ObserveLoop();
  void PublishLoop();
  // Evaluates AgentHealth and publishes what changed.
  void Publish();

  const AgentHealthServerOptions options_;
  Clock* const clock_;
  AgentHealth health_;
  std::unique_ptr<grpc::CallbackGenericService> unimplemented_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;

  absl::Mutex mu_;
  std::function<AgentObservation()> observe_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // An observation finished since the publisher last ran.
  bool observed_ ABSL_GUARDED_BY(mu_) = false;

  // Serializes publishing (the publisher thread and MarkBroken).
  absl::Mutex publish_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::optional<HealthVerdict> published_ ABSL_GUARDED_BY(publish_mu_);
  bool stopped_publishing_ ABSL_GUARDED_BY(publish_mu_) = false;

  std::thread observer_;
  std::thread publisher_;
};

}  // namespace cohort::agent

#endif  // COHORT_AGENT_AGENT_HEALTH_SERVER_H_
