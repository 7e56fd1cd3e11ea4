// PoolHealth: the grpc.health.v1 statuses of the coordinator's pools.
//
// The server's overall service "" is SERVING while it runs (gRPC's default health service).
// Each pool gets the service name "cohort.pool.<pool>", SERVING while the pool's phase is READY
// and NOT_SERVING in every other phase, so that `grpc_health_probe -service cohort.pool.default`
// (or a Kubernetes gRPC readiness probe) tells whether that pool's communicators are usable.
//
// Statuses follow the Coordinator's PHASE events. The event listener runs under the
// coordinator's lock, so it only records the wanted status; a worker thread hands it to gRPC's
// health service (whose SetServingStatus takes its own locks and writes to Watch streams)
// outside that lock. Latest wins: a pool that flips several times between two runs of the
// worker is published once, with its last status.
#ifndef COHORT_COORDINATOR_HEALTH_H_
#define COHORT_COORDINATOR_HEALTH_H_

#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "cohort/v1/admin.pb.h"
#include "coordinator/coordinator.h"
#include "grpcpp/health_check_service_interface.h"

namespace cohort::coordinator {

class PoolHealth {
 public:
  // "cohort.pool.<pool>".
  static std::string ServiceName(absl::string_view pool);

  // Registers an event listener on `coordinator` and records every existing pool (call it
  // before the server serves, so that no event slips between the two). The Coordinator keeps
  // the listener for its whole life: this object must outlive it.
  explicit PoolHealth(Coordinator* coordinator);
  // Stop()s.
  ~PoolHealth();
  PoolHealth(const PoolHealth&) = delete;
  PoolHealth& operator=(const PoolHealth&) = delete;

  // Starts publishing to `services` (the health services of the main grpc::Server and of the
  // plaintext health port, which must outlive Stop()); null entries are skipped.
  void Start(std::vector<grpc::HealthCheckServiceInterface*> services);
  // Stops the worker; later phase changes are recorded but not published. Idempotent.
  void Stop();

 private:
  void OnEvent(const v1::Event& event);
  void Run();

  absl::Mutex mu_;
  // pool -> SERVING? (the wanted status of every pool seen), and the pools whose status has
  // changed since the worker last published.
  std::map<std::string, bool> serving_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> changed_ ABSL_GUARDED_BY(mu_);
  std::vector<grpc::HealthCheckServiceInterface*> services_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread worker_;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_HEALTH_H_
