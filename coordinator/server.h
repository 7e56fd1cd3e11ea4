// CoordinatorServer: the coordinator's gRPC server (agent and admin services) around one
// Coordinator, with its timer thread.
#ifndef COHORT_COORDINATOR_SERVER_H_
#define COHORT_COORDINATOR_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/timer_queue.h"
#include "coordinator/coordinator.h"
#include "coordinator/services.h"
#include "grpcpp/grpcpp.h"

namespace cohort::coordinator {

struct ServerOptions {
  // host:port to listen on; port 0 picks a free one (read it back with port()).
  std::string listen_address = "127.0.0.1:0";
  CoordinatorOptions coordinator;
};

class CoordinatorServer {
 public:
  // Errors: UNAVAILABLE if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(ServerOptions options);
  ~CoordinatorServer();

  int port() const { return port_; }
  // "host:port" with the real port.
  std::string address() const;
  Coordinator& coordinator() { return *coordinator_; }
  std::shared_ptr<grpc::Channel> InProcessChannel();

  // Stops accepting calls and ends open ones (sessions included) within `grace`.
  void Shutdown(absl::Duration grace = absl::Seconds(2));

 private:
  CoordinatorServer() = default;

  ServerOptions options_;
  std::unique_ptr<TimerQueue> timers_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<AgentServiceImpl> agent_service_;
  std::unique_ptr<AdminServiceImpl> admin_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_SERVER_H_
