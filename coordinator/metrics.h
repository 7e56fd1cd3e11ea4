// CoordinatorMetrics: the coordinator's Prometheus metrics, and MetricsExposer, the HTTP
// endpoint (`--metrics-listen`) that serves them at /metrics.
//
// Three sources feed the metrics, none of which holds the coordinator's lock for longer than an
// atomic increment:
//  * an event listener on the Coordinator (events by kind, failures detected, time to READY);
//  * a gRPC server interceptor (RPCs by method and status code, their latency, and the NCCL
//    unique ids relayed through the rendezvous store — KvSet has no event);
//  * a scrape-time collector that reads Coordinator::AllStates() in Collect(), on the HTTP
//    server's thread (pools and members by phase, generation, world size, heartbeat age).
//
// Metric names (labels in braces):
//   cohort_events_total{pool,kind}                 counter
//   cohort_failures_detected_total{pool}           counter  (MEMBER_LOST events)
//   cohort_time_to_ready_seconds{pool}             histogram (plans sent -> pool READY)
//   cohort_unique_ids_relayed_total{pool}          counter  (KvSet entries ending in "nccl_id"
//                                                             that were stored)
//   cohort_kv_entries_set_total{pool}              counter  (every KvSet entry stored)
//   cohort_rpcs_total{service,method,code}         counter  (every RPC, streams included;
//                                                             unknown methods: method
//                                                             "unimplemented")
//   cohort_rpc_duration_seconds{service,method}    histogram (unary RPCs; KvGet includes its wait)
//   cohort_pools{phase}                            gauge    (scrape time)
//   cohort_pool_phase{pool,phase}                  gauge    1 for the pool's phase, else 0
//   cohort_pool_members{pool,phase}                gauge    members by MemberPhase
//   cohort_pool_generation{pool}                   gauge
//   cohort_pool_world_size{pool}                   gauge
//   cohort_pool_init_seconds{pool}                 gauge    the last generation's time to READY
//   cohort_member_heartbeat_age_seconds{pool,rank,identity}  gauge (connected members; standbys
//                                                             have rank "-1")
//   cohort_coordinator_limit_refusals_total{check}  counter (scrape time: requests refused by
//                                                             an input check or past a limit;
//                                                             check = the limit's flag, e.g.
//                                                             "max-pools", or the field)
//   cohort_coordinator_access_denied_total{action,role_needed,code}  counter (scrape time:
//                                                             requests the policy or the store's
//                                                             rules refused; action as
//                                                             ActionName, code e.g.
//                                                             "PERMISSION_DENIED")
// Phase and kind label values are the enum names, lower case, without their prefix ("ready",
// "member_lost").
#ifndef COHORT_COORDINATOR_METRICS_H_
#define COHORT_COORDINATOR_METRICS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cohort/v1/admin.pb.h"
#include "common/metrics_util.h"
#include "coordinator/coordinator.h"
#include "grpcpp/support/server_interceptor.h"
#include "grpcpp/support/status.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace prometheus {
class Exposer;
}

namespace cohort::coordinator {

class CoordinatorMetrics {
 public:
  // Registers an event listener on `coordinator`. The Coordinator keeps the listener for its
  // whole life, so this object must outlive the Coordinator (declare it first).
  explicit CoordinatorMetrics(Coordinator* coordinator);
  ~CoordinatorMetrics();
  CoordinatorMetrics(const CoordinatorMetrics&) = delete;
  CoordinatorMetrics& operator=(const CoordinatorMetrics&) = delete;

  // A factory for ServerBuilder::experimental().SetInterceptorCreators(). Its interceptors
  // record into this object, which must outlive the grpc::Server.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewInterceptorFactory();

  // What an exposer serves: the event/RPC registry and the scrape-time state collector.
  std::vector<std::weak_ptr<prometheus::Collectable>> collectables() const;
  // Everything in the Prometheus text format (what GET /metrics answers).
  std::string Serialize() const;

  // Feeds; the listener and the interceptor call them. Thread-safe, quick, never call into the
  // Coordinator.
  void RecordEvent(const v1::Event& event);
  // `method_path` as gRPC gives it: "/cohort.v1.AgentService/KvSet". `latency` is recorded only
  // for unary calls (a stream's duration says nothing about the server).
  void RecordRpc(absl::string_view method_path, grpc::StatusCode code, bool unary,
                 absl::Duration latency);
  // A KvSet that stored `entries` entries, `unique_ids` of them NCCL unique ids.
  void RecordKvSet(const std::string& pool, int entries, int unique_ids);

 private:
  class StateCollector;

  Coordinator* const coordinator_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<StateCollector> state_collector_;
  prometheus::Family<prometheus::Counter>& events_;
  prometheus::Family<prometheus::Counter>& failures_;
  prometheus::Family<prometheus::Histogram>& time_to_ready_;
  prometheus::Family<prometheus::Counter>& unique_ids_;
  prometheus::Family<prometheus::Counter>& kv_entries_;
  prometheus::Family<prometheus::Counter>& rpcs_;
  prometheus::Family<prometheus::Histogram>& rpc_duration_;

  // When each pool's current generation sent its plans (from PLAN events): the fallback for
  // time to READY if a READY event's message does not carry it.
  absl::Mutex mu_;
  std::map<std::string, int64_t> plans_sent_unix_ms_ ABSL_GUARDED_BY(mu_);
};

// The HTTP endpoint serving the collectables at /metrics.
using MetricsExposer = ::cohort::MetricsEndpoint;

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_METRICS_H_
