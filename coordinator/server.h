// CoordinatorServer: the coordinator's gRPC server (agent and admin services) around one
// Coordinator, with its timer thread. It also serves grpc.health.v1 (the overall service "" and
// one "cohort.pool.<pool>" per pool: SERVING while that pool is READY, see health.h), gRPC
// server reflection (for grpcurl) when asked, and, when asked, Prometheus metrics over HTTP or
// HTTPS (metrics.h). With TLS, a second plaintext port (health_listen_address) can serve
// grpc.health.v1 alone, with the same statuses, for probes that speak no TLS (the kubelet's).
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
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"

namespace cohort::coordinator {

struct ServerOptions {
  // host:port to listen on; port 0 picks a free one (read it back with port()).
  std::string listen_address = "127.0.0.1:0";
  // IP:PORT of the Prometheus endpoint (GET /metrics); port 0 picks a free one (read it back
  // with metrics_port()). Empty: no metrics, and no per-RPC metrics interceptor.
  std::string metrics_listen_address;
  CoordinatorOptions coordinator;
  // Credentials of the listening port (insecure by default) and of the metrics endpoint.
  TransportSecurityOptions transport_security;
  // With TLS, serve metrics over plain HTTP anyway (--metrics-insecure). Otherwise they are
  // served over HTTPS with the same files, which needs a civetweb that can
  // (CivetwebTlsSupport(): not Debian 12's with OpenSSL 3).
  bool metrics_insecure = false;
  // host:port of a plaintext port that serves grpc.health.v1 and nothing else (port 0: any;
  // read it back with health_port()). Empty: none.
  std::string health_listen_address;
  // Serve gRPC server reflection on the main port (cohort-coordinator turns it off by default
  // with TLS: it lists every method to anyone who connects).
  bool reflection = true;
};

class CoordinatorServer {
 public:
  // Errors: UNAVAILABLE if the address (or the metrics or health address) cannot be bound;
  // INVALID_ARGUMENT for transport options that do not Validate(kServer); FAILED_PRECONDITION
  // for HTTPS metrics where civetweb cannot serve HTTPS (CivetwebTlsSupport);
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
  // The plaintext health port and its "host:port"; 0 and "" when there is none.
  int health_port() const { return health_port_; }
  std::string health_address() const;
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
  std::unique_ptr<grpc::CallbackGenericService> health_unimplemented_;
  std::unique_ptr<grpc::Server> health_server_;
  // Scrapes call into coordinator_: destroyed before it.
  std::unique_ptr<MetricsExposer> exposer_;
  int port_ = 0;
  int health_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_SERVER_H_
