// CoordinatorServer: the coordinator's gRPC server (agent and admin services) around one
// Coordinator, with its timer thread. It also serves grpc.health.v1 (the overall service "" and
// one "cohort.pool.<pool>" per pool: SERVING while that pool is READY, see health.h), gRPC
// server reflection (for grpcurl), and, when asked, Prometheus metrics over HTTP (metrics.h).
#ifndef COHORT_COORDINATOR_SERVER_H_
#define COHORT_COORDINATOR_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/timer_queue.h"
#include "common/transport_security.h"
#include "coordinator/coordinator.h"
#include "coordinator/health.h"
#include "coordinator/metrics.h"
#include "coordinator/services.h"
#include "grpcpp/grpcpp.h"

namespace cohort::coordinator {

struct ServerOptions {
  // host:port to listen on; port 0 picks a free one (read it back with port()).
  std::string listen_address = "127.0.0.1:0";
  // IP:PORT of the Prometheus endpoint (GET /metrics); port 0 picks a free one (read it back
  // with metrics_port()). Empty: no metrics, and no per-RPC metrics interceptor.
  std::string metrics_listen_address;
  CoordinatorOptions coordinator;
  // Credentials of the listening port (insecure by default).
  TransportSecurityOptions transport_security;
};

class CoordinatorServer {
 public:
  // Errors: UNAVAILABLE if the address (or the metrics address) cannot be bound;
  // INVALID_ARGUMENT if the metrics address is not IP:PORT; the state file's errors
  // (StateFile::Open: an unusable path, or a file that does not load without
  // --state-file-reset), before anything is built.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(ServerOptions options);
  ~CoordinatorServer();

  int port() const { return port_; }
  // "host:port" with the real port.
  std::string address() const;
  Coordinator& coordinator() { return *coordinator_; }
  // The metrics endpoint's real port and URL ("http://HOST:PORT/metrics"); 0 and "" when
  // metrics are off.
  int metrics_port() const { return exposer_ == nullptr ? 0 : exposer_->port(); }
  std::string metrics_url() const { return exposer_ == nullptr ? "" : exposer_->url(); }
  // nullptr when metrics are off.
  CoordinatorMetrics* metrics() { return metrics_.get(); }
  std::shared_ptr<grpc::Channel> InProcessChannel();

  // Stops accepting calls and ends open ones (sessions included) within `grace`.
  void Shutdown(absl::Duration grace = absl::Seconds(2));

 private:
  CoordinatorServer() = default;

  ServerOptions options_;
  // The Coordinator keeps their event listeners for its whole life, and the server's
  // interceptors record into metrics_: declared before coordinator_ and server_, so destroyed
  // after them.
  std::unique_ptr<CoordinatorMetrics> metrics_;
  std::unique_ptr<PoolHealth> health_;
  std::unique_ptr<TimerQueue> timers_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<AgentServiceImpl> agent_service_;
  std::unique_ptr<AdminServiceImpl> admin_service_;
  std::unique_ptr<grpc::Server> server_;
  // Scrapes call into coordinator_: destroyed before it.
  std::unique_ptr<MetricsExposer> exposer_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_SERVER_H_
